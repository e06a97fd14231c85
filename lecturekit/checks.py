"""Argument checks, in one place, so that each technique's own function holds its formula.

Every public technique begins with one call from here and then reads as its paper's formula:

    x, target = checks.attribution_args(model, x, target, neuron)      # attribution methods
    steps = checks.whole_number(steps, "steps", least=1)

What is checked, and what the errors say:

* ``model_input``: a float tensor (N, C, H, W) or (C, H, W), finite, not empty, with the channel
  count of the model's first convolution, in the model's dtype, and large enough for the network
  (``smallest_side``); a ``zoo.Bundle`` given for its model is named as such;
* ``image``: a 0..1 image (what ``bundle.preprocess`` takes): a tensor, a PIL image or a NumPy array;
* ``targets``: one class (or channel) index for every image, or one per image; integers of any
  kind, or class names when the model carries them; the range checked against the model's output;
* ``whole_number``, ``positive_number``, ``index``: numbers, with what the number means;
* ``baseline``: None (zeros), a number or a tensor that broadcasts to the input;
* ``one_call_shape``: every attribution method is ``fn(model, x, target, **options)``; an unknown
  keyword names the one meant (``layer=`` on saliency points to ``neuron=``).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import numbers
import weakref
from collections import OrderedDict
import numpy as np
import torch
from torch import nn

from . import hooks, images


def whole(v) -> bool:
    """A whole number: a Python or NumPy integer (not a bool, not a float)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def whole_number(value, what: str, least: int = 0) -> int:
    """``value`` as an int when it is a whole number >= ``least`` (Python or NumPy); else a clear error."""
    __tracebackhide__ = True
    if not (whole(value) and value >= least):
        raise ValueError(f"{what} must be a whole number >= {least}, not {value!r}")
    return int(value)


def positive_number(value, what: str) -> float:
    """``value`` as a float when it is a finite number > 0; else a clear error."""
    __tracebackhide__ = True
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < math.inf):
        raise ValueError(f"{what} must be a finite number > 0, not {value!r}")
    return float(value)


def finite_number(value, what: str, least: float = -math.inf, meaning: str = "") -> float:
    """``value`` as a float when it is a finite number >= ``least``; else a clear error that says
    what the number means."""
    __tracebackhide__ = True
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and value >= least):
        bound = "" if least == -math.inf else f" >= {least:g}"
        raise ValueError(f"{what} must be a finite number{bound}{f' ({meaning})' if meaning else ''}, not {value!r}")
    return float(value)


def index(value, size: int, what: str) -> int:
    """``value`` as an index into ``size`` things; else an error giving the valid range."""
    __tracebackhide__ = True
    whole_number(value, what)
    if not 0 <= value < size:
        raise ValueError(f"{what} {value} is out of range: valid values are 0..{size - 1}")
    return int(value)


def device(value, what: str = "device") -> torch.device:
    """``value`` as a ``torch.device`` that exists on this machine: 'cpu', 'cuda' (or 'cuda:1') where torch
    finds that NVIDIA GPU, 'mps' where Apple's GPU is available; else a clear error, before any work."""
    __tracebackhide__ = True
    allowed = "use 'cpu', 'cuda' (an NVIDIA GPU) or 'mps' (an Apple GPU), or leave it out for the best one found"
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not a device; {allowed}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{what} '{dev}': torch finds no CUDA GPU on this machine (torch.cuda.is_available() "
                             "is False); use 'cpu', or leave the device out for the best one found")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{what} '{dev}': this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError(f"{what} '{dev}': Apple's GPU (mps) is not available here; use 'cpu', or leave the "
                         "device out for the best one found")
    return dev


def model(m, what: str = "model") -> nn.Module:
    """``m`` must be an ``nn.Module``; a ``zoo.Bundle`` (which carries one) is named as the mistake it is."""
    __tracebackhide__ = True
    if isinstance(m, nn.Module):
        return m
    if hasattr(m, "model") and isinstance(getattr(m, "model"), nn.Module):
        raise ValueError(f"{what} must be the network itself: give bundle.model, not the {type(m).__name__}")
    raise ValueError(f"{what} must be a torch nn.Module, not {type(m).__name__}")


def model_input(net: nn.Module, x, what: str = "x") -> torch.Tensor:
    """``x`` as a model input (N, C, H, W): a single (C, H, W) image gets a batch dimension; not a
    float tensor, NaN or infinite values, or a channel count the model's first convolution does not
    take are errors that say what is allowed."""
    __tracebackhide__ = True
    net = model(net)
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a model input tensor of shape (N, C, H, W) or (C, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{what} is a {str(x.dtype).replace('torch.', '')} tensor; a model input is a float tensor "
                         "(a 0..1 image passed through the model's preprocess, e.g. bundle.preprocess(img))")
    x = x[None] if x.dim() == 3 else x
    if x.numel() == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)})")
    finite(x, what)
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and x.shape[1] != conv.in_channels:
        kinds = {1: "grayscale", 3: "RGB"}
        raise ValueError(f"{what} has {x.shape[1]} channels but {type(net).__name__} takes {conv.in_channels} "
                         f"({kinds.get(conv.in_channels, 'channels')}); preprocess the image for this model "
                         "(bundle.preprocess converts RGB to grayscale for the teaching model; a grayscale image "
                         "for an RGB model: img.expand(-1, 3, -1, -1))")
    same_dtype(net, x, what)
    large_enough(net, x.shape[1], x.shape[-2:], what)
    return x


def finite(x: torch.Tensor, what: str = "x") -> torch.Tensor:
    """``x`` when it holds no NaN or infinite value; else an error saying results would be NaN."""
    __tracebackhide__ = True
    # a NaN or an infinity makes the sum non-finite (one reduction, no mask); so can an overflow, so look closer
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError(f"{what} holds NaN or infinite values; every result computed from it would be NaN")
    return x


def same_dtype(net: nn.Module, x: torch.Tensor, what: str = "x") -> None:
    """``x`` must be in the dtype of ``net``'s weights (as a convolution needs), unless autocast
    converts them on the way."""
    __tracebackhide__ = True
    p = next(net.parameters(), None)
    if p is None or not p.is_floating_point() or x.dtype == p.dtype or torch.is_autocast_enabled(x.device.type):
        return
    dt = str(p.dtype).replace("torch.", "")
    raise ValueError(f"{what} is {str(x.dtype).replace('torch.', '')} but {type(net).__name__}'s weights are {dt}: "
                     f"cast it (x.to(torch.{dt})), or make it with bundle.preprocess(img), which moves an image "
                     "to the model's device and dtype")


# Per network: {input channels: the smallest square side it runs on, or None when none tried runs;
#  (channels, h, w): whether it runs on that size}
_SMALLEST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Inputs with a side below this are tried on the network before use (one forward pass of zeros per size, once).
SMALL = 64
#: The largest square side tried when looking for the smallest one.
LARGEST_TRIED = 512


def runs(net: nn.Module, channels: int, h: int, w: int) -> bool:
    """Does ``net`` run on a (1, channels, h, w) input? Remembered per network; tried in eval mode,
    without gradients or the network's forward hooks (a user's hooks do not see it), the model left as it was."""
    known = _SMALLEST.setdefault(net, {})
    if (channels, h, w) not in known:
        p = next(net.parameters())
        with hooks.preserved(net), _without_forward_hooks(net), torch.no_grad():
            net.eval()
            try:
                net(torch.zeros(1, channels, h, w, device=p.device, dtype=p.dtype))
                known[channels, h, w] = True
            except Exception:           # too small for a pooling or a convolution, or a fixed input size
                known[channels, h, w] = False
    return known[channels, h, w]


@contextlib.contextmanager
def _without_forward_hooks(net: nn.Module):
    """The network's own forward hooks set aside for a moment, the very same ones given back."""
    kinds = ("_forward_pre_hooks", "_forward_hooks")
    saved = [(m, [getattr(m, k) for k in kinds]) for m in net.modules()]
    try:
        for m, _ in saved:
            for k in kinds:
                setattr(m, k, OrderedDict())
        yield net
    finally:
        for m, dicts in saved:
            for k, d in zip(kinds, dicts):
                setattr(m, k, d)


def smallest_side(net: nn.Module, channels: int) -> int | None:
    """The smallest square input side (pixels) ``net`` runs on with ``channels`` input channels, found by
    trying sides 1, 2, 4, ... up to ``LARGEST_TRIED`` and halving the gap (each try one forward pass of
    zeros, as ``runs``); remembered per network. None when no side tried runs (a model that takes one
    fixed size, such as a vision transformer, or one that fails for another reason)."""
    known = _SMALLEST.setdefault(net, {})
    if channels not in known:
        side = None
        if next(net.parameters(), None) is not None:
            fits = next((s for s in (2 ** k for k in range(LARGEST_TRIED.bit_length())) if runs(net, channels, s, s)),
                        None)
            if fits is not None:
                lo, side = fits // 2, fits             # lo does not run (or is 0), side does
                while side - lo > 1:
                    mid = (lo + side) // 2
                    lo, side = (lo, mid) if runs(net, channels, mid, mid) else (mid, side)
        known[channels] = side
    return known[channels]


def large_enough(net: nn.Module, channels: int, size, what: str = "x") -> None:
    """An input of ``size`` (H, W) with a side below ``SMALL`` must be one ``net`` runs on; when it is
    not, and it is smaller than the smallest square the network runs on (its pooling and strided layers
    leave nothing of it), the error names that size."""
    __tracebackhide__ = True
    h, w = (int(v) for v in size)
    if min(h, w) >= SMALL or next(net.parameters(), None) is None or runs(net, channels, h, w):
        return
    least = smallest_side(net, channels)
    if least is not None and min(h, w) < least:
        raise ValueError(f"{what} is {h}x{w} px, too small for {type(net).__name__}: its inputs need at least "
                         f"{least}x{least} px (its pooling and strided layers leave nothing of a smaller one); "
                         f"resize the image (images.resize(img, size)), or use the model's own input size")


def image(img, what: str = "image", values: bool = True) -> torch.Tensor:
    """``img`` as a 0..1 image batch (N, C, H, W): a tensor (float, or uint8 0..255), a PIL image or
    an (H, W, 3) NumPy array (both read by ``images.load``). ``values=False`` checks the shape and
    dtype only, not that the values are finite and in 0..1 (an image being optimised may step outside)."""
    __tracebackhide__ = True
    if isinstance(img, np.ndarray) or type(img).__module__.startswith("PIL."):
        return images.load(img)
    if isinstance(img, torch.Tensor) and img.dim() == 2:
        raise ValueError(f"the {what} is 2-D {tuple(img.shape)}; an image is (N, C, H, W) or (C, H, W): a "
                         "grayscale (H, W) picture is img[None] (one channel)")
    if values:
        return images.checked(img, what)
    if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4) or img.numel() == 0:
        return images.checked(img, what)                   # its message for what is not an image
    img = img[None] if img.dim() == 3 else img
    if img.dtype == torch.uint8:
        return img.float() / 255
    if not img.is_floating_point():
        return images.checked(img, what)
    return img


def same_width(query, gallery) -> None:
    """A query (D,) (or a feature map, flattened) and gallery rows (N, D) (each flattened) of the same width D."""
    __tracebackhide__ = True
    for what, t, least in (("query", query, 1), ("gallery", gallery, 2)):
        if not isinstance(t, torch.Tensor) or t.dim() < least or t.numel() == 0:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            want = "one feature vector (D,)" if what == "query" else "one feature row per image (N, D)"
            raise ValueError(f"{what} must be a non-empty tensor, {want}, got {shape}")
    d, rows = query.numel(), gallery[0].numel()
    if d != rows:
        raise ValueError(f"the query has {d} features but the gallery rows have {rows}: compare features of the same "
                         "layer, reduced the same way (e.g. both features.global_average)")


def class_names(net: nn.Module | None) -> list[str] | None:
    """The class names of ``net`` when they are known: the teaching model's, or a ``classes`` attribute."""
    if net is None:
        return None
    from . import teaching
    if isinstance(net, teaching.TeachingNet):
        return list(teaching.CLASSES)
    names = getattr(net, "classes", None)
    return list(names) if isinstance(names, (list, tuple)) else None


def targets(target, n: int, n_classes: int | None = None, net: nn.Module | None = None,
            what: str = "target") -> torch.Tensor:
    """``target`` as ``n`` class (or channel) indices: one index for every image or one per image.
    Integers of any kind (Python, NumPy, integer tensors) are taken; a class name is resolved
    against the model's class list when it is known. Anything else (None, 3.7, True) is an error."""
    __tracebackhide__ = True
    items = [target] if isinstance(target, str) else target
    if isinstance(items, (list, tuple)) and any(isinstance(v, str) for v in items):
        if what != "target":
            raise ValueError(f"{what} must be an integer channel index, not {target!r}")
        names = class_names(net)
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


def attribution_args(net: nn.Module, x, target, neuron: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """What every attribution method checks first: a model input ``x`` (N, C, H, W) and its targets
    (N,): class indices, or with ``neuron`` channel indices of that layer (their range is checked
    once the model has run)."""
    __tracebackhide__ = True
    x = model_input(net, x)
    if neuron is not None:
        hooks.get_layer(net, neuron)
    what = "target" if neuron is None else f"channel of {neuron}"
    return x, targets(target, x.shape[0], net=net, what=what)


def baseline(value, x: torch.Tensor) -> torch.Tensor:
    """The baseline as a tensor of ``x``'s shape: None is zeros, a number fills, a tensor broadcasts."""
    __tracebackhide__ = True
    if value is None:
        return torch.zeros_like(x)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = torch.tensor(float(value))
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise ValueError(f"baseline must be None (zeros), a number or a float tensor, not {type(value).__name__}")
    try:
        base = value.to(x).expand_as(x)
    except RuntimeError:
        raise ValueError(f"baseline of shape {tuple(value.shape)} does not broadcast to x {tuple(x.shape)}") from None
    if not torch.isfinite(base).all():
        raise ValueError("baseline holds NaN or infinite values")
    return base


def occlusion_args(x: torch.Tensor, patch, stride, fill, batch_size) -> tuple[int, int, float, int]:
    """Occlusion's options for the input ``x`` (N, C, H, W): a patch that fits, a stride, a finite
    fill value, and a batch size (by default about 400,000 pixels a batch, which measured fastest on
    CPU; see benchmarks/attribution.py)."""
    __tracebackhide__ = True
    h, w = x.shape[-2:]
    if not (whole(patch) and whole(stride) and 1 <= patch <= min(h, w) and stride >= 1):
        raise ValueError(f"patch must be in 1..{min(h, w)} and stride >= 1, both whole numbers "
                         f"(got patch={patch!r}, stride={stride!r})")
    fill = finite_number(fill, "fill", meaning="the model-input value of the patch")
    if batch_size is not None and not (whole(batch_size) and batch_size >= 1):
        raise ValueError(f"batch_size must be a whole number >= 1 (or None for the default), not {batch_size!r}")
    return int(patch), int(stride), fill, int(batch_size or max(4, min(64, 400_000 // (h * w))))


def generator(gen, device) -> torch.Generator:
    """``gen``, or a new generator on ``device`` seeded 0 (the global random stream is never used)."""
    __tracebackhide__ = True
    if gen is not None and not isinstance(gen, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, not {type(gen).__name__}")
    return gen or torch.Generator(device=device).manual_seed(0)


# ---------------------------------------------------------------- one call shape

_ROLE = {"neuron": "the layer whose unit is explained (target is then its channel)",
         "layer": "the layer whose activation maps make the heat map (grad_cam, guided_grad_cam, cam)"}


def _keyword_error(name: str, key: str, allowed: list[str], net) -> str:
    valid = f" Valid layer names: {', '.join(hooks.layer_names(net))}" if isinstance(net, nn.Module) else ""
    if key == "layer" and "neuron" in allowed:
        return (f"{name} has no layer=; to explain a unit of an intermediate layer give neuron= ({_ROLE['neuron']}), "
                f"e.g. {name}(model, x, channel, neuron='<layer>'). layer= is {_ROLE['layer']}.{valid}")
    if key == "neuron":
        return (f"{name} explains a class score and has no neuron=; for a unit of an intermediate layer use "
                f"saliency, guided_backprop or grad_cam with neuron=.{valid}")
    if key == "layer":
        return f"{name} has no layer= ({_ROLE['layer']}). Its options: {', '.join(allowed)}"
    return f"{name} has no option {key}=. Its options: {', '.join(allowed)}"


def one_call_shape(fn):
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
