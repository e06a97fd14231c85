"""Which pixels matter: one call shape for every attribution method.

    heat = attribution.saliency(model, x, target)                        # (N, H, W) at input resolution
    heat = attribution.saliency(model, x, 5, neuron="relu3")             # channel 5 of relu3, where it fires most
    heat = attribution.grad_cam(model, x, target, layer="relu4")         # maps of relu4 weighted by gradients

``x`` is the model input (N, C, H, W) (already preprocessed); ``target`` a class index, a class
name, or a list of them, one per image. Options are keywords, and a keyword means the same
thing in every method:

    neuron=     the layer whose unit is explained instead of a class score; ``target`` is then
                its channel, ``position=(row, col)`` the place (default: where it fires most)
    layer=      the layer whose activation maps make the heat map (Grad-CAM, CAM only)
    reduce=     how channels become one map: 'max_abs', 'sum_abs', 'norm', 'sum', None (keep them)
    batch_size= how many copies of an image go through the model at once (noise, path, occlusion)

| method               | keywords (besides neuron=, position=)       | returns (N, H, W)                      | paper |
|----------------------|---------------------------------------------|----------------------------------------|-------|
| occlusion            | patch, stride, fill, batch_size (no neuron) | target probability, patch at each place| Zeiler & Fergus 2014 |
| saliency             | reduce='max_abs'                            | abs(d score / d x), max over channels  | Simonyan et al. 2014 |
| gradient_x_input     | reduce='sum'                                | x * d score / d x, summed over channels| Shrikumar et al. 2016 |
| smoothgrad           | samples, noise, generator, batch_size, reduce='max_abs' | gradient averaged over noisy copies | Smilkov et al. 2017 |
| integrated_gradients | baseline, steps, rule, batch_size, reduce='sum' | (x - x') * mean gradient on the path | Sundararajan et al. 2017 |
| deconvnet            | reduce='max_abs'                            | ReLUs pass back positive gradients     | Zeiler & Fergus 2014 |
| guided_backprop      | reduce='max_abs'                            | ... where their input was positive too | Springenberg et al. 2015 |
| cam                  | layer (default: the one feeding GAP), upsample (no neuron) | sum_k w_k^c A_k | Zhou et al. 2016 |
| grad_cam             | layer (required), upsample                  | ReLU(sum_k alpha_k A_k)                | Selvaraju et al. 2017 |
| guided_grad_cam      | layer (required), reduce='max_abs'          | guided backprop x upsampled Grad-CAM   | Selvaraju et al. 2017 |

Every method returns raw values (normalise only to display), works on any classifier as it is
given (in-place ReLUs included) and leaves the model exactly as it was: hooks removed, modes,
``requires_grad`` and ``inplace`` flags restored, no ``.grad`` on parameters, even when it
raises. ``x`` itself is never modified. Deconvnet and guided backprop change the backward of
``nn.ReLU`` modules and clamps to [0, max] (``nn.ReLU6``, as in EfficientNet-Lite); a ``F.relu`` call
inside a ``forward`` keeps its plain gradient, as in captum.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import hooks

__all__ = ["occlusion", "saliency", "gradient_x_input", "smoothgrad", "integrated_gradients", "deconvnet",
           "guided_backprop", "cam", "grad_cam", "guided_grad_cam", "METHODS", "reduce_channels", "relu_rule",
           "gap_linear"]


def _class_names(model: nn.Module | None) -> list[str] | None:
    """The class names of ``model`` when they are known: the teaching model's, or a ``classes`` attribute."""
    if model is None:
        return None
    from . import teaching
    if isinstance(model, teaching.TeachingNet):
        return list(teaching.CLASSES)
    names = getattr(model, "classes", None)
    return list(names) if isinstance(names, (list, tuple)) else None


def _targets(target, n: int, n_classes: int | None = None, model: nn.Module | None = None,
             what: str = "target") -> torch.Tensor:
    """``target`` as ``n`` class (or channel) indices: one index for every image or one per image.
    Integers of any kind (Python, NumPy, integer tensors) are taken; a class name is resolved
    against the model's class list when it is known. Anything else (None, 3.7, True) is an error."""
    __tracebackhide__ = True
    items = [target] if isinstance(target, str) else target
    if isinstance(items, (list, tuple)) and any(isinstance(v, str) for v in items):
        if what != "target":
            raise ValueError(f"{what} must be an integer channel index, not {target!r}")
        names = _class_names(model)
        if names is None:
            raise ValueError(f"{what} {target!r} is a name, but this model does not carry its class names; "
                             "give the class index, e.g. bundle.classes.index('name')")
        unknown = [v for v in items if isinstance(v, str) and v not in names]
        if unknown:
            raise ValueError(f"unknown class name {unknown[0]!r}. Valid: {', '.join(names)}")
        items = [names.index(v) if isinstance(v, str) else v for v in items]
        target = items[0] if isinstance(target, str) else items
    if target is None:
        raise ValueError(f"{what} is None; give the class index to explain (one for all images or one per "
                         "image), e.g. the predicted class: model(x).argmax(1)")
    try:
        t = torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be an integer index or a list of them, not {target!r}") from None
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        shown = target if isinstance(target, numbers.Number) else t.flatten()[:4].tolist()
        kind = "a bool" if t.dtype == torch.bool else "a float"
        raise ValueError(f"{what} must be an integer index (or one per image), not {kind} {shown}: "
                         "a class or channel is a whole number")
    t = t.long().flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{what} must be one index or one per image ({n}), got {t.numel()}")
    if n_classes is not None and ((t < 0) | (t >= n_classes)).any():
        valid = "the model has classes" if what == "target" else "valid channels are"
        raise ValueError(f"{what} {t.tolist()} out of range: {valid} 0..{n_classes - 1}")
    return t


def _checked(model: nn.Module, x, target, neuron: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The checks every method makes first (``hooks.check_input``, ``_targets``): a model input ``x``
    (N, C, H, W) and its targets (N,): class indices, or with ``neuron`` channel indices of that
    layer; their range is checked once the model has run."""
    __tracebackhide__ = True
    x = hooks.check_input(model, x)
    if neuron is not None:
        hooks.get_layer(model, neuron)
    what = "target" if neuron is None else f"channel of {neuron}"
    return x, _targets(target, x.shape[0], model=model, what=what)


def target_logits(logits: torch.Tensor, target, model: nn.Module | None = None) -> torch.Tensor:
    """The logit of each image's target (N,) from logits (N, K), the target checked against K."""
    t = _targets(target, logits.shape[0], logits.shape[1], model)
    return logits.gather(1, t.to(logits.device)[:, None])[:, 0]


def _borrowed(model: nn.Module):
    """For one attribution: eval mode, no parameter asks for a gradient (nothing lands in ``.grad``,
    autograd records only what depends on the input), no in-place modules; all restored on exit."""
    return hooks.preserved(model, borrow=True)


def _scores(model: nn.Module, x: torch.Tensor, target, neuron: str | None = None, position=None) -> torch.Tensor:
    """What is explained, one number per image (N,): the unnormalised class score of ``target``, or
    with ``neuron`` the activation of channel ``target`` of that layer at ``position`` (row, col)
    or, by default, where it is largest."""
    if neuron is None:
        if position is not None:
            raise ValueError("position= is a place in the map of neuron=; give neuron= too, or leave position out")
        return target_logits(model(x), target, model)
    act = hooks.run(model, x, neuron, detach=False)[0][neuron]     # the pass stops after the neuron's layer
    what = f"channel of {neuron}"
    t = _targets(target, x.shape[0], act.shape[1], what=what).to(act.device)
    rows = torch.arange(len(t), device=act.device)
    if act.dim() == 2:
        if position is not None:
            raise ValueError(f"{neuron} has no spatial output (shape {tuple(act.shape)}); leave position out")
        return act[rows, t]
    if act.dim() != 4:
        raise ValueError(f"neuron= needs a layer with (N, C) or (N, C, h, w) output; {neuron} gives {tuple(act.shape)}")
    maps = act[rows, t]                                              # (N, h, w)
    if position is None:
        return maps.flatten(1).max(1).values
    r, c = position
    if not (0 <= r < maps.shape[1] and 0 <= c < maps.shape[2]):
        raise ValueError(f"position {position} outside the {maps.shape[1]}x{maps.shape[2]} map of {neuron}")
    return maps[:, r, c]


def reduce_channels(grad: torch.Tensor, how: str | None = "max_abs") -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): ``max_abs`` (Simonyan et al.), ``sum_abs``, ``norm``, ``sum`` (signed,
    keeps the total of integrated gradients); None keeps the channels."""
    if how is None:
        return grad
    if how == "max_abs":
        return grad.abs().amax(1)
    if how == "sum_abs":
        return grad.abs().sum(1)
    if how == "norm":
        return grad.norm(dim=1)
    if how == "sum":
        return grad.sum(1)
    raise ValueError(f"reduce must be 'max_abs', 'sum_abs', 'norm', 'sum' or None, not {how!r}")


# ---------------------------------------------------------------- one call shape

_ROLE = {"neuron": "the layer whose unit is explained (target is then its channel)",
         "layer": "the layer whose activation maps make the heat map (grad_cam, guided_grad_cam, cam)"}


def _keyword_error(name: str, key: str, allowed: list[str], model) -> str:
    valid = f" Valid layer names: {', '.join(hooks.layer_names(model))}" if isinstance(model, nn.Module) else ""
    if key == "layer" and "neuron" in allowed:
        return (f"{name} has no layer=; to explain a unit of an intermediate layer give neuron= ({_ROLE['neuron']}), "
                f"e.g. {name}(model, x, channel, neuron='<layer>'). layer= is {_ROLE['layer']}.{valid}")
    if key == "neuron":
        return (f"{name} explains a class score and has no neuron=; for a unit of an intermediate layer use "
                f"saliency, guided_backprop or grad_cam with neuron=.{valid}")
    if key == "layer":
        return f"{name} has no layer= ({_ROLE['layer']}). Its options: {', '.join(allowed)}"
    return f"{name} has no option {key}=. Its options: {', '.join(allowed)}"


def _one_call_shape(fn):
    """``fn(model, x, target, **options)``: a positional option or an unknown keyword is an error
    that names the keyword meant (``layer=`` on saliency points to ``neuron=``)."""
    allowed = [p.name for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY]

    @functools.wraps(fn)
    def method(model, x, target, *args, **options):
        __tracebackhide__ = True
        if args:
            raise ValueError(f"{fn.__name__} takes (model, x, target) and its options by keyword "
                             f"({', '.join(k + '=' for k in allowed)}), not {len(args)} more positional argument(s) "
                             f"{args!r}")
        for key in options:
            if key not in allowed:
                raise ValueError(_keyword_error(fn.__name__, key, allowed, model))
        return fn(model, x, target, **options)
    return method


def _whole(v, name: str, least: int = 1) -> int:
    if not (hooks.whole(v) and v >= least):
        raise ValueError(f"{name} must be a whole number >= {least}, not {v!r}")
    return int(v)


# ---------------------------------------------------------------- gradients of the input

def _input_gradient(model: nn.Module, x: torch.Tensor, target, neuron: str | None = None,
                    position=None) -> torch.Tensor:
    """d(score)/dx (N, C, H, W), the score as in ``_scores``."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        scores = _scores(model, x, target, neuron, position)
        grad, = torch.autograd.grad(scores.sum(), x)
    return grad


@_one_call_shape
def saliency(model: nn.Module, x: torch.Tensor, target, *, neuron: str | None = None, position=None,
             reduce: str | None = "max_abs") -> torch.Tensor:
    """|d score / d x|, max over channels."""
    x, target = _checked(model, x, target, neuron)
    with _borrowed(model):
        return reduce_channels(_input_gradient(model, x, target, neuron, position), reduce)


@_one_call_shape
def gradient_x_input(model: nn.Module, x: torch.Tensor, target, *, neuron: str | None = None, position=None,
                     reduce: str | None = "sum") -> torch.Tensor:
    """x * d score / d x, summed over channels (exact for a linear model: the score's share of each pixel)."""
    x, target = _checked(model, x, target, neuron)
    with _borrowed(model):
        return reduce_channels(x * _input_gradient(model, x, target, neuron, position), reduce)


@_one_call_shape
def smoothgrad(model: nn.Module, x: torch.Tensor, target, *, samples: int = 25, noise: float = 0.15,
               generator: torch.Generator | None = None, batch_size: int = 8, neuron: str | None = None,
               position=None, reduce: str | None = "max_abs") -> torch.Tensor:
    """The gradient averaged over ``samples`` noisy copies x + N(0, sigma^2), sigma = ``noise`` times
    (max - min) of each image, then reduced like saliency (Smilkov et al. 2017).

    The noise comes from ``generator`` (by default a new one seeded 0, so a call gives the same map
    every time; the global random stream is never used), image after image, in the order of the batch."""
    x, target = _checked(model, x, target, neuron)
    samples, batch_size = _whole(samples, "samples"), _whole(batch_size, "batch_size")
    if not (isinstance(noise, numbers.Real) and not isinstance(noise, bool) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0 (the noise's std as a fraction of each image's "
                         f"value range; 0.1 to 0.2 in the paper), not {noise!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, not {type(generator).__name__}")
    gen = generator or torch.Generator(device=x.device).manual_seed(0)
    total = torch.zeros_like(x)
    with _borrowed(model):
        for i in range(len(x)):
            sigma = float(noise) * (x[i].max() - x[i].min())
            for start in range(0, samples, batch_size):
                k = min(batch_size, samples - start)
                eps = torch.randn((k, *x.shape[1:]), generator=gen, device=gen.device).to(x)  # float32 draws
                grads = _input_gradient(model, x[i:i + 1] + sigma * eps, target[i], neuron, position)
                total[i] += grads.sum(0)
    return reduce_channels(total / samples, reduce)


RULES = ("left", "right", "middle", "gausslegendre")


def path_points(steps: int, rule: str = "middle") -> tuple[torch.Tensor, torch.Tensor]:
    """Points alpha_k in (0, 1) and weights w_k (float64) with sum_k w_k g(alpha_k) ~ integral_0^1 g:
    Riemann sums at the left ends, right ends or middles of ``steps`` equal pieces, or Gauss-Legendre."""
    steps = _whole(steps, "steps")
    k = torch.arange(steps, dtype=torch.float64)
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)          # on [-1, 1]
        return torch.from_numpy(0.5 * (nodes + 1)), torch.from_numpy(0.5 * weights)
    offset = {"left": 0.0, "right": 1.0, "middle": 0.5}.get(rule)
    if offset is None:
        raise ValueError(f"rule must be one of {', '.join(map(repr, RULES))}, not {rule!r}")
    return (k + offset) / steps, torch.full((steps,), 1 / steps, dtype=torch.float64)


@_one_call_shape
def integrated_gradients(model: nn.Module, x: torch.Tensor, target, *, baseline=None, steps: int = 32,
                         rule: str = "middle", batch_size: int = 8, neuron: str | None = None, position=None,
                         reduce: str | None = "sum") -> torch.Tensor:
    """(x - x') times the gradient averaged along the straight path from the ``baseline`` x'
    (default zeros: the data mean after normalisation) to x, by the quadrature ``rule`` with
    ``steps`` points, ``batch_size`` of them per pass (Sundararajan et al. 2017). Summed over
    channels (the default ``reduce='sum'``), the map adds up to score(x) - score(x')."""
    x, target = _checked(model, x, target, neuron)
    alphas, weights = (v.to(x) for v in path_points(steps, rule))
    batch_size = _whole(batch_size, "batch_size")
    base = _baseline(baseline, x)
    total = torch.zeros_like(x)
    with _borrowed(model):
        for i in range(len(x)):
            delta = x[i:i + 1] - base[i:i + 1]
            for start in range(0, len(alphas), batch_size):
                a, w = alphas[start:start + batch_size, None, None, None], weights[start:start + batch_size]
                grads = _input_gradient(model, base[i:i + 1] + a * delta, target[i], neuron, position)
                total[i] += torch.einsum("k,kchw->chw", w, grads)
    return reduce_channels((x - base) * total, reduce)


def _baseline(baseline, x: torch.Tensor) -> torch.Tensor:
    """The baseline as a tensor of ``x``'s shape: None is zeros, a number fills, a tensor broadcasts."""
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        baseline = torch.tensor(float(baseline))
    if not isinstance(baseline, torch.Tensor) or not baseline.is_floating_point():
        raise ValueError(f"baseline must be None (zeros), a number or a float tensor, not {type(baseline).__name__}")
    try:
        base = baseline.to(x).expand_as(x)
    except RuntimeError:
        raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to x {tuple(x.shape)}") from None
    if not torch.isfinite(base).all():
        raise ValueError("baseline holds NaN or infinite values")
    return base


# ---------------------------------------------------------------- modified ReLU backward rules

class _GuidedReLU(torch.autograd.Function):
    """ReLU, or a clamp to [lo, hi] such as ReLU6, passing back the positive part of the gradient
    where the input was inside (lo, hi): where the unit was active."""
    @staticmethod
    def forward(ctx, inp, lo=0.0, hi=None):
        out = inp.clamp(min=lo, max=hi)
        ctx.save_for_backward(out if hi is None else (inp > lo) & (inp < hi))   # ReLU: out > 0 where inp > 0
        ctx.relu = hi is None and lo == 0
        return out

    @staticmethod
    def backward(ctx, grad):
        saved, = ctx.saved_tensors
        if ctx.relu:     # the positive part of the gradient, where the input was positive: ReLU's own backward kernel
            return torch.ops.aten.threshold_backward(grad.clamp(min=0), saved, 0), None, None
        return grad.clamp(min=0) * saved, None, None


class _DeconvReLU(torch.autograd.Function):
    """ReLU, or a clamp to [lo, hi], passing back the positive part of the gradient whatever its input."""
    @staticmethod
    def forward(ctx, inp, lo=0.0, hi=None):
        return inp.clamp(min=lo, max=hi)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0), None, None


def _rectifier(m: nn.Module) -> bool:
    """Does a modified backward rule replace this activation? ReLU, and clamps to a range with a lower
    bound of 0 (``nn.ReLU6`` and other ``nn.Hardtanh``s), as EfficientNet-Lite and MobileNetV2 use."""
    return isinstance(m, nn.ReLU) or (isinstance(m, nn.Hardtanh) and m.min_val == 0)


@contextmanager
def relu_rule(model: nn.Module, rule: type[torch.autograd.Function]):
    """Every ``nn.ReLU`` of ``model`` (and every clamp to [0, hi]: ``nn.ReLU6``, ``nn.Hardtanh(0, hi)``)
    computes its forward as usual but back-propagates by ``rule``: its ``forward`` is ``rule.apply``
    for a while (out of place, whatever its ``inplace`` flag says); all restored on exit."""
    relus = [m for m in model.modules() if _rectifier(m)]
    if not relus:
        raise ValueError(f"{type(model).__name__} has no nn.ReLU, nn.ReLU6 or nn.Hardtanh(0, max) modules; "
                         "this method needs them")
    own = {m: m.__dict__["forward"] for m in relus if "forward" in m.__dict__}   # set on the instance by someone
    try:
        for m in relus:
            m.forward = rule.apply if isinstance(m, nn.ReLU) else functools.partial(rule.apply, lo=m.min_val,
                                                                                    hi=m.max_val)
        yield model
    finally:
        for m in relus:
            if m in own:
                m.forward = own[m]
            else:
                m.__dict__.pop("forward", None)


@_one_call_shape
def guided_backprop(model: nn.Module, x: torch.Tensor, target, *, neuron: str | None = None, position=None,
                    reduce: str | None = "max_abs") -> torch.Tensor:
    """Gradient with every ReLU passing back only positive gradients where its input was positive."""
    x, target = _checked(model, x, target, neuron)
    with _borrowed(model), relu_rule(model, _GuidedReLU):
        return reduce_channels(_input_gradient(model, x, target, neuron, position), reduce)


@_one_call_shape
def deconvnet(model: nn.Module, x: torch.Tensor, target, *, neuron: str | None = None, position=None,
              reduce: str | None = "max_abs") -> torch.Tensor:
    """Gradient with every ReLU passing back the positive part of the gradient, whatever its input was."""
    x, target = _checked(model, x, target, neuron)
    with _borrowed(model), relu_rule(model, _DeconvReLU):
        return reduce_channels(_input_gradient(model, x, target, neuron, position), reduce)


# ---------------------------------------------------------------- class activation maps

def _upsample(maps: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


@contextmanager
def _graph_from(model: nn.Module, layer: str):
    """Autograd starts at ``layer``'s output: a forward hook swaps it for a copy of a new leaf that
    requires grad (``start['act']``), so nothing before the layer is recorded."""
    start = {}

    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"layer {layer} gives a {type(output).__name__}, not a tensor of activation maps")
        start["act"] = output.detach().requires_grad_(True)
        return start["act"].clone()            # a later in-place op changes the copy, not the leaf
    handle = hooks.get_layer(model, layer).register_forward_hook(hook)
    try:
        yield start
    finally:
        handle.remove()


@_one_call_shape
def grad_cam(model: nn.Module, x: torch.Tensor, target, *, layer: str, neuron: str | None = None, position=None,
             upsample: bool = True) -> torch.Tensor:
    """Grad-CAM at ``layer``: ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of d score / d A_k.
    The backward pass starts at ``layer`` (the input needs no gradient)."""
    x, target = _checked(model, x, target, neuron)
    hooks.get_layer(model, layer)
    with _borrowed(model), _graph_from(model, layer) as start, torch.enable_grad():
        scores = _scores(model, x, target, neuron, position)
        act = start.get("act")
        if act is None or not scores.requires_grad:
            raise ValueError(f"the score does not depend on layer {layer}: neuron {neuron} comes before it; "
                             "give a layer at or before the neuron's")
        if act.dim() != 4:
            raise ValueError(f"Grad-CAM needs a conv layer with a spatial output; {layer} gives {tuple(act.shape)}")
        grad, = torch.autograd.grad(scores.sum(), act)
        alpha = grad.mean((2, 3), keepdim=True)                     # (N, C, 1, 1)
        maps = F.relu((alpha * act).sum(1)).detach()                # (N, h, w)
    return _upsample(maps, x.shape[2:]) if upsample else maps


def gap_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """For a model ending in global average pooling + one linear layer: (name of the layer that
    feeds the pooling, the linear layer). Anything else is an error naming the model's ending."""
    ends = [(n, m) for n, m in model.named_children() if not isinstance(m, nn.Flatten)]
    if len(ends) >= 3 and isinstance(ends[-1][1], nn.Linear) and isinstance(ends[-2][1], nn.AdaptiveAvgPool2d) \
            and ends[-2][1].output_size in (1, (1, 1)):
        return ends[-3][0], ends[-1][1]
    raise ValueError(f"CAM needs global average pooling followed by one linear layer at the end of the model; "
                     f"{type(model).__name__} ends with {[n for n, _ in ends[-3:]]}. "
                     "Use grad_cam, which works on any conv layer.")


@_one_call_shape
def cam(model: nn.Module, x: torch.Tensor, target, *, layer: str | None = None, upsample: bool = True) -> torch.Tensor:
    """Class activation map: sum_k w_k^c A_k at the layer feeding global average pooling."""
    x, target = _checked(model, x, target)
    feed, fc = gap_linear(model)
    layer = layer or feed
    hooks.get_layer(model, layer)
    with _borrowed(model), torch.no_grad():
        acts = hooks.activations(model, x, layer)[layer]          # (N, K, h, w)
        t = _targets(target, x.shape[0], fc.out_features)
        w = fc.weight[t.to(fc.weight.device)]                       # (N, K)
        maps = torch.einsum("nk,nkhw->nhw", w, acts)
    return _upsample(maps, x.shape[2:]) if upsample else maps


@_one_call_shape
def guided_grad_cam(model: nn.Module, x: torch.Tensor, target, *, layer: str, neuron: str | None = None,
                    position=None, reduce: str | None = "max_abs") -> torch.Tensor:
    """Guided backprop (per channel) times the upsampled Grad-CAM map, then reduced over channels."""
    x, target = _checked(model, x, target, neuron)
    hooks.get_layer(model, layer)
    gb = guided_backprop(model, x, target, neuron=neuron, position=position, reduce=None)   # (N, C, H, W)
    gc = grad_cam(model, x, target, layer=layer, neuron=neuron, position=position)          # (N, H, W)
    return reduce_channels(gb * gc[:, None], reduce)


@contextmanager
def channels_last(model: nn.Module):
    """The model's 4-D weights in channels_last memory format for a while (faster convolutions on
    CPU for many small batches), then back as they were. Values never change."""
    params = [p for p in model.parameters() if p.dim() == 4]
    was_contiguous = [p.is_contiguous() for p in params]
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        for p, contiguous in zip(params, was_contiguous):
            if contiguous:
                p.data = p.data.contiguous()


@_one_call_shape
@torch.no_grad()
def occlusion(model: nn.Module, x: torch.Tensor, target, *, patch: int = 8, stride: int = 4, fill: float = 0.0,
              batch_size: int | None = None) -> torch.Tensor:
    """Probability of ``target`` with a ``patch`` x ``patch`` square of value ``fill`` (in model-input
    units; 0 is the data mean after normalisation) at each place, stepping by ``stride``. Each
    pixel gets the mean over the placements that cover it: low values mark evidence.

    Occluded copies run in batches of ``batch_size`` (by default about 400,000 pixels a batch,
    which measured fastest on CPU; see benchmarks/attribution.py) in channels_last format."""
    x, target = _checked(model, x, target)
    n, c, h, w = x.shape
    if not (hooks.whole(patch) and hooks.whole(stride) and 1 <= patch <= min(h, w) and stride >= 1):
        raise ValueError(f"patch must be in 1..{min(h, w)} and stride >= 1, both whole numbers "
                         f"(got patch={patch!r}, stride={stride!r})")
    if not (isinstance(fill, numbers.Real) and not isinstance(fill, bool) and math.isfinite(fill)):
        raise ValueError(f"fill must be a finite number (the model-input value of the patch), not {fill!r}")
    if batch_size is not None and not (hooks.whole(batch_size) and batch_size >= 1):
        raise ValueError(f"batch_size must be a whole number >= 1 (or None for the default), not {batch_size!r}")
    batch_size = int(batch_size or max(4, min(64, 400_000 // (h * w))))
    patch, stride, fill = int(patch), int(stride), float(fill)

    def places(size):
        p = list(range(0, size - patch + 1, stride))
        return p + [size - patch] if p[-1] != size - patch else p
    spots = [(r, s) for r in places(h) for s in places(w)]
    t = target
    total = torch.zeros(n, h, w, device=x.device, dtype=x.dtype)
    count = torch.zeros(h, w, device=x.device, dtype=x.dtype)
    for r, s in spots:
        count[r:r + patch, s:s + patch] += 1
    with _borrowed(model), channels_last(model):
        t = _targets(t, n, model(x[:1]).shape[1], model)    # the class range, before the many occluded passes
        for i in range(n):
            for start in range(0, len(spots), batch_size):
                chunk = spots[start:start + batch_size]
                batch = x[i:i + 1].repeat(len(chunk), 1, 1, 1)
                for j, (r, s) in enumerate(chunk):
                    batch[j, :, r:r + patch, s:s + patch] = fill
                logits = model(batch.contiguous(memory_format=torch.channels_last))
                probs = logits.softmax(1)[:, t[i]]
                for p, (r, s) in zip(probs, chunk):
                    total[i, r:r + patch, s:s + patch] += p
    return total / count


METHODS = {"occlusion": occlusion, "saliency": saliency, "gradient_x_input": gradient_x_input,
           "smoothgrad": smoothgrad, "integrated_gradients": integrated_gradients, "deconvnet": deconvnet,
           "guided_backprop": guided_backprop, "cam": cam, "grad_cam": grad_cam, "guided_grad_cam": guided_grad_cam}
