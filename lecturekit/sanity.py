"""Are attribution maps right? Two checks from the literature.

* Model randomisation (Adebayo et al. 2018): re-initialise the weights layer by layer from the
  top; a map that explains the *model* must change as the model is destroyed. The change is
  measured with Spearman's rank correlation between the original and the new map.
* Deletion and insertion (Petsiuk et al. 2018): remove pixels in order of attribution (most
  important first) and track the target probability; a faithful map makes it fall fast (low
  area under the deletion curve). Insertion starts from nothing and adds pixels back.
"""
from __future__ import annotations

import copy
import math
import numbers

import torch
from torch import nn

from . import checks, hooks
from .attribution import target_logits


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the conv and linear layers, from the output back to the input."""
    model = checks.model(model)
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))][::-1]


def randomized(model: nn.Module, upto: int, generator: torch.Generator | None = None) -> nn.Module:
    """A copy with the top ``upto`` conv/linear layers re-initialised (cascading randomisation), each
    weight and bias drawn like PyTorch's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    from ``generator`` (by default a new one seeded 0; the global random stream is never used)."""
    layers = weight_layers(model)
    if not (checks.whole(upto) and 0 <= upto <= len(layers)):
        raise ValueError(f"upto must be in 0..{len(layers)}, a whole number (the model has {len(layers)} conv/linear "
                         f"layers), not {upto!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, not {type(generator).__name__}")
    gen = generator or torch.Generator().manual_seed(0)
    clone = copy.deepcopy(model)
    modules = dict(clone.named_modules())
    with torch.no_grad():
        for name in layers[:upto]:
            weight, bias = modules[name].weight, modules[name].bias
            bound = 1 / math.sqrt(weight[0].numel())                    # fan_in = inputs of one output unit
            for p in (weight, bias) if bias is not None else (weight,):
                u = torch.rand(p.shape, generator=gen, device=gen.device, dtype=torch.float32)
                p.copy_((2 * u - 1) * bound)                            # to the parameter's device and dtype
    clone.requires_grad_(False)
    return clone.eval()


def ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 of the values of a 1-D tensor, tied values sharing their mean rank (as scipy's rankdata)."""
    sorted_v, order = v.sort()
    _, group, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(v.dtype)                     # each group of ties ends at rank ends - 1
    out = torch.empty_like(v)
    out[order] = (ends - (counts.to(v.dtype) + 1) / 2)[group]
    return out


def rank_correlation(a: torch.Tensor, b: torch.Tensor, absolute: bool = True) -> float:
    """Mean Spearman correlation between maps ``a`` and ``b`` (N, H, W), image by image
    (of absolute values by default, as Adebayo et al. do): the Pearson correlation of the ranks."""
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("the maps hold NaN or infinite values, which have no rank")
    a, b = (a.abs(), b.abs()) if absolute else (a, b)
    values = []
    for x, y in zip(a.detach().flatten(1).double(), b.detach().flatten(1).double()):
        if x.min() == x.max() or y.min() == y.max():        # a constant map has no ranking
            values.append(0.0)
            continue
        rx, ry = ranks(x), ranks(y)
        rx, ry = rx - rx.mean(), ry - ry.mean()
        values.append(float((rx * ry).sum() / (rx.norm() * ry.norm())))
    return sum(values) / len(values)


@torch.no_grad()
def deletion_curve(model: nn.Module, x: torch.Tensor, target, heat: torch.Tensor, steps: int = 20,
                   mode: str = "deletion", baseline: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Target probability as pixels are deleted (or inserted) in order of ``heat`` (N, H, W).

    Deletion sets pixels to ``baseline`` (0 = the data mean after normalisation); insertion starts
    from an all-``baseline`` input and puts pixels back. Returns (fractions (steps+1,), probs (N, steps+1)),
    both on ``x``'s device in ``x``'s dtype.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', not {mode!r}")
    if not (checks.whole(steps) and steps >= 1):
        raise ValueError(f"steps must be a whole number >= 1 (points on the curve after the start), not {steps!r}")
    if not (isinstance(baseline, numbers.Real) and math.isfinite(baseline)):
        raise ValueError(f"baseline must be a finite number (a model-input value), not {baseline!r}")
    x, t = checks.attribution_args(model, x, target)
    n, c, h, w = x.shape
    if not isinstance(heat, torch.Tensor) or heat.shape != (n, h, w):
        shape = tuple(heat.shape) if isinstance(heat, torch.Tensor) else type(heat).__name__
        raise ValueError(f"heat must be (N, H, W) = {(n, h, w)}, got {shape}")
    if not torch.isfinite(heat).all():
        raise ValueError("heat holds NaN or infinite values, which give no order to delete pixels in")
    steps = int(steps)
    order = heat.flatten(1).argsort(1, descending=True).to(x.device)    # most important first
    fractions = torch.linspace(0, 1, steps + 1, device=x.device, dtype=x.dtype)
    probs = torch.zeros(n, steps + 1, device=x.device, dtype=x.dtype)
    base = torch.full_like(x, baseline)
    with hooks.preserved(model):
        model.eval()                                        # batch norm statistics stay as they are
        for s in range(steps + 1):
            k = round(s * h * w / steps)                    # exact, whatever x's dtype
            mask = torch.zeros(n, h * w, dtype=torch.bool, device=x.device)
            mask.scatter_(1, order[:, :k], True)
            mask = mask.view(n, 1, h, w)
            current = torch.where(mask, base, x) if mode == "deletion" else torch.where(mask, x, base)
            logits = model(current).log_softmax(1)
            probs[:, s] = target_logits(logits, t, model).exp()     # the target's range checked on the first pass
    return fractions, probs


def auc(fractions: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Area under each curve (N,), by the trapezoid rule."""
    return torch.trapezoid(probs, fractions, dim=-1)
