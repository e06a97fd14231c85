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
| occlusion            | patch, stride, fill, batch_size, fast, progress (no neuron) | target probability, patch at each place | Zeiler & Fergus 2014 |
| saliency             | reduce='max_abs'                            | abs(d score / d x), max over channels  | Simonyan et al. 2014 |
| gradient_x_input     | reduce='sum'                                | x * d score / d x, summed over channels| Shrikumar et al. 2016 |
| smoothgrad           | samples, noise, generator, batch_size, reduce='max_abs' | gradient averaged over noisy copies | Smilkov et al. 2017 |
| integrated_gradients | baseline, steps, rule, batch_size, reduce='sum' | (x - x') * mean gradient on the path | Sundararajan et al. 2017 |
| deconvnet            | reduce='max_abs'                            | ReLUs pass back positive gradients     | Zeiler & Fergus 2014 |
| guided_backprop      | reduce='max_abs'                            | ... where their input was positive too | Springenberg et al. 2015 |
| deeplift             | baseline, reduce='sum'                      | (x - x') * gradient with (f(a)-f(a'))/(a-a') for f'(a) | Shrikumar et al. 2017 |
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
import warnings
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checks, hooks

__all__ = ["occlusion", "saliency", "gradient_x_input", "smoothgrad", "integrated_gradients", "deconvnet",
           "guided_backprop", "deeplift", "cam", "grad_cam", "guided_grad_cam", "METHODS", "reduce_channels",
           "relu_rule", "gap_linear"]


def target_logits(logits: torch.Tensor, target, model: nn.Module | None = None) -> torch.Tensor:
    """The logit of each image's target (N,) from logits (N, K), the target checked against K."""
    t = checks.targets(target, logits.shape[0], logits.shape[1], model)
    return logits.gather(1, t.to(logits.device)[:, None])[:, 0]


@contextmanager
def _borrowed(model: nn.Module):
    """For one attribution: eval mode, no parameter asks for a gradient (nothing lands in ``.grad``,
    autograd records only what depends on the input), no in-place modules, all restored on exit;
    gradients recorded even inside ``torch.no_grad()``."""
    with hooks.preserved(model, borrow=True), torch.enable_grad():
        yield model


def _scores(model: nn.Module, x: torch.Tensor, target, neuron: str | None = None, position=None,
            paired: bool = False) -> torch.Tensor:
    """What is explained, one number per image (N,): the unnormalised class score of ``target``, or
    with ``neuron`` the activation of channel ``target`` of that layer at ``position`` (row, col)
    or, by default, where it is largest (``paired``: ``x`` is inputs then their baselines, and the
    place is where the unit fires most on the input, for both)."""
    if neuron is None:
        if position is not None:
            raise ValueError("position= is a place in the map of neuron=; give neuron= too, or leave position out")
        return target_logits(model(x), target, model)
    act = hooks.run(model, x, neuron, detach=False)[0][neuron]     # the pass stops after the neuron's layer
    what = f"channel of {neuron}"
    t = checks.targets(target, x.shape[0], act.shape[1], what=what).to(act.device)
    rows = torch.arange(len(t), device=act.device)
    if act.dim() == 2:
        if position is not None:
            raise ValueError(f"{neuron} has no spatial output (shape {tuple(act.shape)}); leave position out")
        return act[rows, t]
    if act.dim() != 4:
        raise ValueError(f"neuron= needs a layer with (N, C) or (N, C, h, w) output; {neuron} gives {tuple(act.shape)}")
    maps = act[rows, t]                                              # (N, h, w)
    if position is None:
        flat = maps.flatten(1)
        where = flat[:len(flat) // 2].argmax(1).repeat(2) if paired else flat.argmax(1)
        return flat.gather(1, where[:, None])[:, 0]
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


# ---------------------------------------------------------------- gradients of the input

@checks.one_call_shape
def saliency(model: nn.Module, x: torch.Tensor, target, *, neuron: str | None = None, position=None,
             reduce: str | None = "max_abs") -> torch.Tensor:
    """Simonyan et al. 2014: |d score / d x|, the largest over the colour channels."""
    x, target = checks.attribution_args(model, x, target, neuron)
    with _borrowed(model):
        x = x.detach().clone().requires_grad_(True)
        score = _scores(model, x, target, neuron, position)            # (N,): the class score of each image
        grad, = torch.autograd.grad(score.sum(), x)                    # (N, C, H, W)
    return grad.abs().amax(1) if reduce == "max_abs" else reduce_channels(grad, reduce)


def _input_gradient(model: nn.Module, x: torch.Tensor, target, neuron: str | None = None,
                    position=None) -> torch.Tensor:
    """d score / dx (N, C, H, W), as in ``saliency``; the model already borrowed."""
    x = x.detach().clone().requires_grad_(True)
    grad, = torch.autograd.grad(_scores(model, x, target, neuron, position).sum(), x)
    return grad


@checks.one_call_shape
def gradient_x_input(model: nn.Module, x: torch.Tensor, target, *, neuron: str | None = None, position=None,
                     reduce: str | None = "sum") -> torch.Tensor:
    """x * d score / d x, summed over channels (exact for a linear model: the score's share of each pixel)."""
    x, target = checks.attribution_args(model, x, target, neuron)
    with _borrowed(model):
        grad = _input_gradient(model, x, target, neuron, position)
    return reduce_channels(x * grad, reduce)


@checks.one_call_shape
def smoothgrad(model: nn.Module, x: torch.Tensor, target, *, samples: int = 25, noise: float = 0.15,
               generator: torch.Generator | None = None, batch_size: int = 8, neuron: str | None = None,
               position=None, reduce: str | None = "max_abs") -> torch.Tensor:
    """The gradient averaged over ``samples`` noisy copies x + N(0, sigma^2), sigma = ``noise`` times
    (max - min) of each image, then reduced like saliency (Smilkov et al. 2017).

    The noise comes from ``generator`` (by default a new one seeded 0, so a call gives the same map
    every time; the global random stream is never used), image after image, in the order of the batch."""
    x, target = checks.attribution_args(model, x, target, neuron)
    samples = checks.whole_number(samples, "samples", least=1)
    batch_size = checks.whole_number(batch_size, "batch_size", least=1)
    noise = checks.finite_number(noise, "noise", least=0, meaning="the noise's std as a fraction of each image's "
                                 "value range; 0.1 to 0.2 in the paper")
    gen = checks.generator(generator, x.device)
    total = torch.zeros_like(x)
    with _borrowed(model):
        for i in range(len(x)):
            sigma = noise * (x[i].max() - x[i].min())
            for start in range(0, samples, batch_size):
                k = min(batch_size, samples - start)
                eps = torch.randn((k, *x.shape[1:]), generator=gen, device=gen.device).to(x)  # float32 draws
                total[i] += _input_gradient(model, x[i:i + 1] + sigma * eps, target[i], neuron, position).sum(0)
    return reduce_channels(total / samples, reduce)


RULES = ("left", "right", "middle", "gausslegendre")


def path_points(steps: int, rule: str = "middle") -> tuple[torch.Tensor, torch.Tensor]:
    """Points alpha_k in (0, 1) and weights w_k (float64) with sum_k w_k g(alpha_k) ~ integral_0^1 g:
    Riemann sums at the left ends, right ends or middles of ``steps`` equal pieces, or Gauss-Legendre."""
    steps = checks.whole_number(steps, "steps", least=1)
    k = torch.arange(steps, dtype=torch.float64)
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)          # on [-1, 1]
        return torch.from_numpy(0.5 * (nodes + 1)), torch.from_numpy(0.5 * weights)
    offset = {"left": 0.0, "right": 1.0, "middle": 0.5}.get(rule)
    if offset is None:
        raise ValueError(f"rule must be one of {', '.join(map(repr, RULES))}, not {rule!r}")
    return (k + offset) / steps, torch.full((steps,), 1 / steps, dtype=torch.float64)


@checks.one_call_shape
def integrated_gradients(model: nn.Module, x: torch.Tensor, target, *, baseline=None, steps: int = 32,
                         rule: str = "middle", batch_size: int = 8, neuron: str | None = None, position=None,
                         reduce: str | None = "sum") -> torch.Tensor:
    """(x - x') times the gradient averaged along the straight path from the ``baseline`` x'
    (default zeros: the data mean after normalisation) to x, by the quadrature ``rule`` with
    ``steps`` points, ``batch_size`` of them per pass (Sundararajan et al. 2017). Summed over
    channels (the default ``reduce='sum'``), the map adds up to score(x) - score(x')."""
    x, target = checks.attribution_args(model, x, target, neuron)
    alphas, weights = (v.to(x) for v in path_points(steps, rule))
    batch_size = checks.whole_number(batch_size, "batch_size", least=1)
    base = checks.baseline(baseline, x)
    total = torch.zeros_like(x)
    with _borrowed(model):
        for i in range(len(x)):
            delta = x[i:i + 1] - base[i:i + 1]
            for start in range(0, len(alphas), batch_size):
                a, w = alphas[start:start + batch_size, None, None, None], weights[start:start + batch_size]
                grads = _input_gradient(model, base[i:i + 1] + a * delta, target[i], neuron, position)
                total[i] += torch.einsum("k,kchw->chw", w, grads)
    return reduce_channels((x - base) * total, reduce)


# ---------------------------------------------------------------- modified ReLU backward rules

class _GuidedReLU(torch.autograd.Function):
    """ReLU, or a clamp to [lo, hi] such as ReLU6, passing back the positive part of the gradient
    where the input was inside (lo, hi): where the unit was active."""
    @staticmethod
    def forward(ctx, inp, lo=0.0, hi=None):
        active = inp > lo if hi is None else (inp > lo) & (inp < hi)
        ctx.save_for_backward(active)
        return inp.clamp(min=lo, max=hi)

    @staticmethod
    def backward(ctx, grad):
        active, = ctx.saved_tensors
        return grad.clamp(min=0) * active, None, None


class _GuidedReLUFast(torch.autograd.Function):
    """``_GuidedReLU`` for a plain ReLU in one backward kernel, ReLU's own (``threshold_backward``: the
    gradient where the saved output is positive), and no mask kept: guided backprop on SqueezeNet
    took 25.5 ms instead of 32.9 (``benchmarks/peers.py``). Tested equal to ``_GuidedReLU``."""
    @staticmethod
    def forward(ctx, inp):
        out = inp.clamp(min=0)
        ctx.save_for_backward(out)                     # out > 0 exactly where inp > 0
        return out

    @staticmethod
    def backward(ctx, grad):
        out, = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad.clamp(min=0), out, 0)


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

    def forward_of(m):
        if isinstance(m, nn.ReLU):
            return _GuidedReLUFast.apply if rule is _GuidedReLU else rule.apply
        return functools.partial(rule.apply, lo=m.min_val, hi=m.max_val)
    with _replaced_forwards(relus, forward_of):
        yield model


@contextmanager
def _replaced_forwards(modules: list[nn.Module], forward_of):
    """Each module's ``forward`` is ``forward_of(module)`` for a while, set on the instance; on exit a
    forward someone else had set on the instance is put back, and ours removed."""
    own = {m: m.__dict__["forward"] for m in modules if "forward" in m.__dict__}
    try:
        for m in modules:
            m.forward = forward_of(m)
        yield
    finally:
        for m in modules:
            if m in own:
                m.forward = own[m]
            else:
                m.__dict__.pop("forward", None)


@checks.one_call_shape
def guided_backprop(model: nn.Module, x: torch.Tensor, target, *, neuron: str | None = None, position=None,
                    reduce: str | None = "max_abs") -> torch.Tensor:
    """Gradient with every ReLU passing back only positive gradients where its input was positive."""
    x, target = checks.attribution_args(model, x, target, neuron)
    with _borrowed(model), relu_rule(model, _GuidedReLU):
        return reduce_channels(_input_gradient(model, x, target, neuron, position), reduce)


@checks.one_call_shape
def deconvnet(model: nn.Module, x: torch.Tensor, target, *, neuron: str | None = None, position=None,
              reduce: str | None = "max_abs") -> torch.Tensor:
    """Gradient with every ReLU passing back the positive part of the gradient, whatever its input was."""
    x, target = checks.attribution_args(model, x, target, neuron)
    with _borrowed(model), relu_rule(model, _DeconvReLU):
        return reduce_channels(_input_gradient(model, x, target, neuron, position), reduce)


# ---------------------------------------------------------------- DeepLIFT: differences from a baseline

#: Where an activation's input is this close to its value at the baseline, DeepLIFT's multiplier
#: (f(a) - f(a')) / (a - a') is 0 / 0: the activation's own derivative is used (as in captum).
EPS = 1e-10

#: Activations applied element by element, whose backward the Rescale rule replaces.
ELEMENTWISE = (nn.ReLU, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
               nn.Tanh, nn.Softplus, nn.Hardswish, nn.Hardsigmoid)


def _both_halves(t: torch.Tensor) -> torch.Tensor:
    """For a batch of inputs then their baselines (2N, ...): the difference a - a', for both halves."""
    d = t[:len(t) // 2] - t[len(t) // 2:]
    return torch.cat([d, d])


class _Rescale(torch.autograd.Function):
    """DeepLIFT's Rescale rule for an activation ``f`` applied to inputs then baselines (2N, ...): the
    gradient passes back times (f(a) - f(a')) / (a - a'), the same multiplier for an input and its
    baseline; where a is within ``EPS`` of a', times f's own derivative."""
    @staticmethod
    def forward(ctx, a, f):
        out = f(a)
        ctx.save_for_backward(a, out)
        ctx.f = f
        return out

    @staticmethod
    def backward(ctx, grad):
        a, out = ctx.saved_tensors
        da, dout = _both_halves(a), _both_halves(out)
        with torch.enable_grad():
            at = a.detach().requires_grad_(True)
            plain, = torch.autograd.grad(ctx.f(at), at, grad)
        return torch.where(da.abs() < EPS, plain, grad * dout / da), None


@contextmanager
def _rescale_rules(model: nn.Module):
    """Every element-wise activation module of ``model`` back-propagates by the Rescale rule for a while
    (its ``forward`` set on the instance); all restored on exit. (A ``F.relu`` call inside a ``forward``
    keeps its gradient, as in captum; without activation modules the map is (x - x') times the gradient.)"""
    activations = [m for m in model.modules() if isinstance(m, ELEMENTWISE)]
    with _replaced_forwards(activations, lambda m: functools.partial(_Rescale.apply, f=type(m).forward.__get__(m))):
        yield model


@checks.one_call_shape
def deeplift(model: nn.Module, x: torch.Tensor, target, *, baseline=None, neuron: str | None = None, position=None,
             reduce: str | None = "sum") -> torch.Tensor:
    """DeepLIFT with the Rescale rule (Shrikumar, Greenside & Kundaje 2017): (x - x') times a gradient in
    which every activation passes back (f(a) - f(a')) / (a - a') instead of f'(a), a' its input at the
    ``baseline`` x' (default zeros). The inputs and baselines go through the model as one batch; one
    backward pass gives the map. Summed over channels, it adds up to score(x) - score(x'): exactly on
    networks of linear layers, activations and average pooling. Max pooling passes back its gradient
    (the default of DeepLIFT's own implementation, and what captum's ``DeepLift`` computes where a ReLU
    feeds the pooling), which breaks the sum: measured on AlexNet and SqueezeNet with random weights,
    within 2 % of score(x) - score(x') with the zero baseline, off by 25-540 % with a blurred or a
    noise baseline."""
    x, target = checks.attribution_args(model, x, target, neuron)
    base = checks.baseline(baseline, x)
    with _borrowed(model), _rescale_rules(model):
        both = torch.cat([x, base]).detach().requires_grad_(True)
        score = _scores(model, both, target.repeat(2), neuron, position, paired=True)
        grad, = torch.autograd.grad(score.sum(), both)
    return reduce_channels((x - base) * grad[:len(x)], reduce)


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


@checks.one_call_shape
def grad_cam(model: nn.Module, x: torch.Tensor, target, *, layer: str, neuron: str | None = None, position=None,
             upsample: bool = True) -> torch.Tensor:
    """Grad-CAM at ``layer``: ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of d score / d A_k.
    The backward pass starts at ``layer`` (the input needs no gradient)."""
    x, target = checks.attribution_args(model, x, target, neuron)
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


@checks.one_call_shape
def cam(model: nn.Module, x: torch.Tensor, target, *, layer: str | None = None, upsample: bool = True) -> torch.Tensor:
    """Class activation map: sum_k w_k^c A_k at the layer feeding global average pooling."""
    x, target = checks.attribution_args(model, x, target)
    feed, fc = gap_linear(model)
    layer = layer or feed
    hooks.get_layer(model, layer)
    with _borrowed(model), torch.no_grad():
        acts = hooks.activations(model, x, layer)[layer]          # (N, K, h, w)
        t = checks.targets(target, x.shape[0], fc.out_features)
        w = fc.weight[t.to(fc.weight.device)]                       # (N, K)
        maps = torch.einsum("nk,nkhw->nhw", w, acts)
    return _upsample(maps, x.shape[2:]) if upsample else maps


@checks.one_call_shape
def guided_grad_cam(model: nn.Module, x: torch.Tensor, target, *, layer: str, neuron: str | None = None,
                    position=None, reduce: str | None = "max_abs") -> torch.Tensor:
    """Guided backprop (per channel) times the upsampled Grad-CAM map, then reduced over channels."""
    x, target = checks.attribution_args(model, x, target, neuron)
    hooks.get_layer(model, layer)
    gb = guided_backprop(model, x, target, neuron=neuron, position=position, reduce=None)   # (N, C, H, W)
    gc = grad_cam(model, x, target, layer=layer, neuron=neuron, position=position)          # (N, H, W)
    return reduce_channels(gb * gc[:, None], reduce)


@contextmanager
def channels_last(model: nn.Module):
    """The fast path of ``occlusion``: the model's 4-D weights (and buffers) in channels_last memory
    format for a while (faster convolutions on CPU for many small batches), then back exactly as they
    were: the very tensors, with their strides (a weight with a size-1 dimension is contiguous in both
    formats, so asking for a contiguous copy would keep the channels_last strides, and the model's later
    outputs would drift in the last bits). Values never change."""
    tensors = list(dict.fromkeys(t for t in [*model.parameters(), *model.buffers()] if t.dim() == 4))
    originals = [t.data for t in tensors]
    try:
        for t in tensors:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
        yield model
    finally:
        for t, original in zip(tensors, originals):
            t.data = original


#: Occlusion asks for this many forward passes or more: it says so before it starts.
MANY_PASSES = 20_000


@checks.one_call_shape
@torch.no_grad()
def occlusion(model: nn.Module, x: torch.Tensor, target, *, patch: int = 8, stride: int = 4, fill: float = 0.0,
              batch_size: int | None = None, fast: bool = True, progress: bool = True) -> torch.Tensor:
    """Probability of ``target`` with a ``patch`` x ``patch`` square of value ``fill`` (in model-input
    units; 0 is the data mean after normalisation) at each place, stepping by ``stride``. Each
    pixel gets the mean over the placements that cover it: low values mark evidence.

    Occluded copies run in batches of ``batch_size`` (by default about 400,000 pixels a batch,
    which measured fastest on CPU; see benchmarks/attribution.py). ``fast`` runs them with the
    weights and inputs in channels_last memory format (``channels_last``; the same map, tested);
    ``fast=False`` is the plain loop. One forward pass per placement and image: a run of
    ``MANY_PASSES`` or more is announced with a warning, and one that lasts over 2 s shows a progress bar
    (``progress=False``: none)."""
    x, target = checks.attribution_args(model, x, target)
    n, c, h, w = x.shape
    patch, stride, fill, batch_size = checks.occlusion_args(x, patch, stride, fill, batch_size)

    def places(size):
        p = list(range(0, size - patch + 1, stride))
        return p + [size - patch] if p[-1] != size - patch else p
    spots = [(r, s) for r in places(h) for s in places(w)]
    if n * len(spots) >= MANY_PASSES:
        warnings.warn(f"occlusion: {n * len(spots):,} forward passes ({n} image(s) of {h}x{w} px, {len(spots):,} "
                      f"placements of a {patch} px patch every {stride} px); a larger stride or patch, or a smaller "
                      "image, takes fewer", stacklevel=4)
    layout = torch.channels_last if fast else torch.contiguous_format
    total = torch.zeros(n, h, w, device=x.device, dtype=x.dtype)
    count = torch.zeros(h, w, device=x.device, dtype=x.dtype)
    for r, s in spots:
        count[r:r + patch, s:s + patch] += 1
    with _borrowed(model), channels_last(model) if fast else nullcontext(), \
            tqdm(total=n * len(spots), desc="occlusion", unit="pass", disable=not progress, delay=2) as bar:
        t = checks.targets(target, n, model(x[:1]).shape[1], model)   # the class range, before the many passes
        for i in range(n):
            for start in range(0, len(spots), batch_size):
                chunk = spots[start:start + batch_size]
                batch = x[i:i + 1].repeat(len(chunk), 1, 1, 1)
                for j, (r, s) in enumerate(chunk):
                    batch[j, :, r:r + patch, s:s + patch] = fill
                probs = model(batch.contiguous(memory_format=layout)).softmax(1)[:, t[i]]
                for p, (r, s) in zip(probs, chunk):
                    total[i, r:r + patch, s:s + patch] += p
                bar.update(len(chunk))
    return total / count


METHODS = {"occlusion": occlusion, "saliency": saliency, "gradient_x_input": gradient_x_input,
           "smoothgrad": smoothgrad, "integrated_gradients": integrated_gradients, "deconvnet": deconvnet,
           "guided_backprop": guided_backprop, "deeplift": deeplift, "cam": cam, "grad_cam": grad_cam,
           "guided_grad_cam": guided_grad_cam}
