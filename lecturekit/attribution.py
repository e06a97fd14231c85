"""Which pixels matter: one call shape for every attribution method.

    heat = attribution.saliency(model, x, target)            # (N, H, W) at input resolution

``x`` is the model input (N, C, H, W) (already preprocessed); ``target`` a class index or a
list of them, one per image. Every method returns raw values (normalise only to display)
and leaves the model exactly as it was: hooks removed, modes and ``requires_grad`` restored,
even when it raises. ``x`` itself is never modified.

Methods (each as in its paper):
    occlusion        Zeiler & Fergus 2014: target probability with a patch covering each place
    saliency         Simonyan et al. 2014: |d score / d pixel|, max over channels
    deconvnet        Zeiler & Fergus 2014: ReLUs pass back the positive part of the gradient
    guided_backprop  Springenberg et al. 2015: ReLUs pass back positive gradient where the input was positive
    cam              Zhou et al. 2016: sum_k w_k^c A_k for global-average-pooling + linear models
    grad_cam         Selvaraju et al. 2017: ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of dS/dA_k
    guided_grad_cam  Selvaraju et al. 2017: guided backprop x upsampled Grad-CAM
"""
from __future__ import annotations

import math
import numbers
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import hooks

__all__ = ["occlusion", "saliency", "deconvnet", "guided_backprop", "cam", "grad_cam", "guided_grad_cam",
           "METHODS", "reduce_channels"]


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


def _checked(model: nn.Module, x, target, layer: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The checks every method makes first (``hooks.check_input``, ``_targets``): a model input ``x``
    (N, C, H, W) and its targets (N,): class indices, or with ``layer`` channel indices; their range
    is checked once the model has run."""
    __tracebackhide__ = True
    x = hooks.check_input(model, x)
    if layer is not None:
        hooks.get_layer(model, layer)
    what = "target" if layer is None else f"channel of {layer}"
    return x, _targets(target, x.shape[0], model=model, what=what)


@contextmanager
def _borrowed(model: nn.Module):
    """Eval mode and restored modes/flags for the duration of one attribution."""
    with hooks.preserved(model):
        model.eval()
        yield model


def _class_scores(model: nn.Module, x: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor]:
    """(unnormalised class scores of the targets (N,), logits (N, K))."""
    logits = model(x)
    t = _targets(target, x.shape[0], logits.shape[1], model)
    return logits.gather(1, t.to(logits.device)[:, None])[:, 0], logits


def reduce_channels(grad: torch.Tensor, how: str | None = "max_abs") -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): ``max_abs`` (Simonyan et al.), ``sum_abs``, ``norm``; None keeps channels."""
    if how is None:
        return grad
    if how == "max_abs":
        return grad.abs().amax(1)
    if how == "sum_abs":
        return grad.abs().sum(1)
    if how == "norm":
        return grad.norm(dim=1)
    raise ValueError(f"reduce must be 'max_abs', 'sum_abs', 'norm' or None, not {how!r}")


def _input_gradient(model: nn.Module, x: torch.Tensor, target, layer: str | None = None,
                    position=None) -> torch.Tensor:
    """d(score)/dx, where score is a class score, or with ``layer`` the activation of channel
    ``target`` of that layer at ``position`` (row, col) or, by default, where it is largest."""
    x = x.detach().clone().requires_grad_(True)
    if layer is None:
        scores, _ = _class_scores(model, x, target)
    else:
        with hooks.capture(model, layer, detach=False) as rec:
            model(x)
        act = rec.activations[layer]
        if act.dim() != 4:
            raise ValueError(f"layer {layer} has no spatial output (shape {tuple(act.shape)})")
        t = _targets(target, x.shape[0], act.shape[1], what=f"channel of {layer}")
        maps = act[torch.arange(len(t), device=act.device), t.to(act.device)]          # (N, h, w)
        if position is None:
            scores = maps.flatten(1).max(1).values
        else:
            r, c = position
            if not (0 <= r < maps.shape[1] and 0 <= c < maps.shape[2]):
                raise ValueError(f"position {position} outside the {maps.shape[1]}x{maps.shape[2]} map of {layer}")
            scores = maps[:, r, c]
    grad, = torch.autograd.grad(scores.sum(), x)
    return grad


def saliency(model: nn.Module, x: torch.Tensor, target, layer: str | None = None, position=None,
             reduce: str | None = "max_abs") -> torch.Tensor:
    """|d score / d x|, max over channels. With ``layer``, ``target`` is a channel of that layer."""
    x, target = _checked(model, x, target, layer)
    with _borrowed(model):
        return reduce_channels(_input_gradient(model, x, target, layer, position), reduce)


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inp):
        out = inp.clamp(min=0)
        ctx.save_for_backward(inp)
        return out

    @staticmethod
    def backward(ctx, grad):
        inp, = ctx.saved_tensors
        return grad.clamp(min=0) * (inp > 0)


class _DeconvReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inp):
        return inp.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


@contextmanager
def relu_rule(model: nn.Module, rule: type[torch.autograd.Function]):
    """Every ``nn.ReLU`` of ``model`` computes its forward as usual but back-propagates by ``rule``.
    Done with forward hooks that replace the output; all removed on exit."""
    handles = []
    try:
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                handles.append(m.register_forward_hook(lambda mod, inp, out: rule.apply(inp[0])))
        if not handles:
            raise ValueError(f"{type(model).__name__} has no nn.ReLU modules; this method needs them")
        yield model
    finally:
        for h in handles:
            h.remove()


def guided_backprop(model: nn.Module, x: torch.Tensor, target, layer: str | None = None, position=None,
                    reduce: str | None = "max_abs") -> torch.Tensor:
    """Gradient with every ReLU passing back only positive gradients where its input was positive."""
    x, target = _checked(model, x, target, layer)
    with _borrowed(model), relu_rule(model, _GuidedReLU):
        return reduce_channels(_input_gradient(model, x, target, layer, position), reduce)


def deconvnet(model: nn.Module, x: torch.Tensor, target, layer: str | None = None, position=None,
              reduce: str | None = "max_abs") -> torch.Tensor:
    """Gradient with every ReLU passing back the positive part of the gradient, whatever its input was."""
    x, target = _checked(model, x, target, layer)
    with _borrowed(model), relu_rule(model, _DeconvReLU):
        return reduce_channels(_input_gradient(model, x, target, layer, position), reduce)


def _upsample(maps: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def grad_cam(model: nn.Module, x: torch.Tensor, target, layer: str, upsample: bool = True) -> torch.Tensor:
    """Grad-CAM at ``layer``: ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of d score / d A_k."""
    x, target = _checked(model, x, target)
    hooks.get_layer(model, layer)
    with _borrowed(model):
        x = x.detach().clone().requires_grad_(True)                 # so the graph reaches A even if weights are frozen
        with hooks.capture(model, layer, detach=False) as rec:
            scores, _ = _class_scores(model, x, target)
        act = rec.activations[layer]
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


def cam(model: nn.Module, x: torch.Tensor, target, layer: str | None = None, upsample: bool = True) -> torch.Tensor:
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


def guided_grad_cam(model: nn.Module, x: torch.Tensor, target, layer: str,
                    reduce: str | None = "max_abs") -> torch.Tensor:
    """Guided backprop (per channel) times the upsampled Grad-CAM map, then reduced over channels."""
    x, target = _checked(model, x, target)
    gb = guided_backprop(model, x, target, reduce=None)             # (N, C, H, W)
    gc = grad_cam(model, x, target, layer)                          # (N, H, W)
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


@torch.no_grad()
def occlusion(model: nn.Module, x: torch.Tensor, target, patch: int = 8, stride: int = 4, fill: float = 0.0,
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
        t = _targets(t, n, model(x[:1]).shape[1])           # the class range, before the many occluded passes
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


METHODS = {"occlusion": occlusion, "saliency": saliency, "deconvnet": deconvnet,
           "guided_backprop": guided_backprop, "cam": cam, "grad_cam": grad_cam,
           "guided_grad_cam": guided_grad_cam}
