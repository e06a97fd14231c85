"""Exact receptive fields from the architecture, and the image patches under them.

For each layer, three numbers describe which input pixels a unit sees (Araujo et al. 2019):
``size`` (r), ``stride`` (the jump j between neighbouring units, in pixels) and ``offset``
(where the centre of the first unit lies). Layer by layer, with kernel k, stride s,
padding p and dilation d (k_eff = d (k - 1) + 1)::

    r_out = r_in + (k_eff - 1) j_in      j_out = j_in s      offset_out = offset_in + ((k_eff - 1)/2 - p) j_in

Unit (row, col) of a layer sees the input square of side r centred on
(offset + row * stride, offset + col * stride).

Containers are walked in the order their children are registered (true for the torchvision
classifiers and the teaching model); SqueezeNet's Fire modules and ResNet's blocks take their
widest branch. Global pooling and linear layers see the whole image.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, features, hooks

_UNCHANGED = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.GELU, nn.Sigmoid, nn.Tanh,
              nn.BatchNorm2d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.LocalResponseNorm, nn.InstanceNorm2d,
              nn.GroupNorm)


@dataclass(frozen=True)
class RF:
    """Receptive field of one layer's units, in input pixels. ``size`` is None for global layers."""
    size: int | None
    stride: int | None
    offset: float | None

    @property
    def is_global(self) -> bool:
        return self.size is None

    def box(self, row: int, col: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of unit (row, col)'s field, clipped to the image; bottom/right exclusive."""
        if self.is_global:
            return 0, 0, height, width
        top = round(self.offset + row * self.stride - (self.size - 1) / 2)
        left = round(self.offset + col * self.stride - (self.size - 1) / 2)
        return max(top, 0), max(left, 0), min(top + self.size, height), min(left + self.size, width)

    def __str__(self) -> str:
        return "whole image" if self.is_global else f"{self.size} px, stride {self.stride}, offset {self.offset:g}"


def _square(value, what: str, layer: str) -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"layer {layer}: non-square {what} {value} is not supported")
        value = value[0]
    return int(value)


def _step(rf: RF, module: nn.Module, name: str) -> RF:
    k = _square(module.kernel_size, "kernel", name)
    s = _square(module.stride, "stride", name)
    p = _square(module.padding, "padding", name) if not isinstance(module.padding, str) else None
    if hasattr(module, "left_padding"):                      # TensorFlow's "SAME" padding of a strided conv
        p = module.left_padding
    elif p is None:                                            # padding="same" / "valid" on a conv
        p = (k - 1) // 2 if module.padding == "same" else 0
    d = _square(getattr(module, "dilation", 1), "dilation", name)
    k_eff = d * (k - 1) + 1
    return RF(rf.size + (k_eff - 1) * rf.stride, rf.stride * s, rf.offset + ((k_eff - 1) / 2 - p) * rf.stride)


GLOBAL = RF(None, None, None)


def _walk(module: nn.Module, name: str, rf: RF, out: dict) -> RF:
    kind = type(module).__name__
    if rf.is_global:
        pass
    elif isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        rf = _step(rf, module, name)
    elif isinstance(module, nn.AdaptiveAvgPool2d) or isinstance(module, nn.AdaptiveMaxPool2d):
        size = module.output_size
        # output 1x1 pools everything; other sizes are identities at the standard input size
        rf = GLOBAL if _square(size, "output size", name) == 1 else rf
    elif isinstance(module, nn.Linear):
        rf = GLOBAL
    elif isinstance(module, (nn.Flatten,) + _UNCHANGED) or kind == "CaffeInput":     # per pixel: the original VGG's input
        pass
    elif kind == "Fire":                                     # SqueezeNet: squeeze, then 1x1 and 3x3 side by side
        mid = _walk(module.squeeze, f"{name}.squeeze", rf, out)
        mid = _walk(module.squeeze_activation, f"{name}.squeeze_activation", mid, out)
        _walk(module.expand1x1, f"{name}.expand1x1", mid, out)
        out[f"{name}.expand1x1_activation"] = out[f"{name}.expand1x1"]
        rf = _walk(module.expand3x3, f"{name}.expand3x3", mid, out)
        out[f"{name}.expand3x3_activation"] = rf
    elif kind in ("BasicBlock", "Bottleneck"):               # ResNet: the main path is the widest
        convs = ["conv1", "conv2"] + (["conv3"] if kind == "Bottleneck" else [])
        start = rf
        for c in convs:
            rf = _walk(getattr(module, c), f"{name}.{c}", rf, out)
            bn = c.replace("conv", "bn")
            out[f"{name}.{bn}"] = rf
            if c == "conv1":
                out[f"{name}.relu"] = rf
        if module.downsample is not None:
            for child_name, child in module.downsample.named_children():
                start = _walk(child, f"{name}.downsample.{child_name}", start, out)
            out[f"{name}.downsample"] = start
    elif len(list(module.children())):
        for child_name, child in module.named_children():
            rf = _walk(child, f"{name}.{child_name}" if name else child_name, rf, out)
    else:
        raise ValueError(f"receptive fields: layer {name!r} is a {kind}, which has no rule here. Supported: "
                         "Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Linear, Flatten, activations, "
                         "normalisation, Dropout, Identity, SqueezeNet Fire, ResNet blocks")
    if name:
        out[name] = rf
    return rf


def receptive_fields(model: nn.Module) -> dict[str, RF]:
    """The receptive field of every named layer of ``model``."""
    out: dict[str, RF] = {}
    _walk(checks.model(model), "", RF(1, 1, 0.0), out)
    return out


def receptive_field(model: nn.Module, layer: str) -> RF:
    hooks.get_layer(checks.model(model), layer)                            # unknown names list the valid ones
    return receptive_fields(model)[layer]


def linearized(model: nn.Module) -> nn.Module:
    """A copy whose gradient support is exactly the theoretical receptive field: all weights
    positive, no biases, ReLUs (and ReLU6) and batch norm removed, max pooling replaced by average pooling.
    The copy stays on the model's device and in its dtype, except that half precision is raised
    to float32 (products of many small averaged weights would underflow to zero)."""
    model = copy.deepcopy(checks.model(model))
    if any(p.dtype in (torch.float16, torch.bfloat16) for p in model.parameters()):
        model = model.float()

    def swap(parent: nn.Module):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
            elif isinstance(child, (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.BatchNorm2d, nn.Dropout)):
                setattr(parent, name, nn.Identity())
            else:
                swap(child)
    swap(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
    return model.eval()


def gradient_box(model: nn.Module, layer: str, input_size: int, in_channels: int = 3) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the input pixels with a non-zero gradient for the centre unit of
    ``layer`` (summed over channels), for an input of ``input_size`` x ``input_size``."""
    grad = unit_gradient(model, layer, input_size, in_channels)
    rows = torch.nonzero(grad.abs().sum(1) > 0).flatten()
    cols = torch.nonzero(grad.abs().sum(0) > 0).flatten()
    if len(rows) == 0:
        return 0, 0, 0, 0
    return rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1


def unit_gradient(model: nn.Module, layer: str, input_size: int, in_channels: int = 3,
                  x: torch.Tensor | None = None) -> torch.Tensor:
    """|d (centre unit of ``layer``, summed over channels) / d input|, summed over input channels: (H, W).
    Without ``x`` the input is all ones, on the model's device in its dtype; a given ``x`` is moved
    to the model's device."""
    hooks.get_layer(checks.model(model), layer)
    p = next(model.parameters())
    if x is None:
        if not (checks.whole(input_size) and input_size >= 1 and checks.whole(in_channels) and in_channels >= 1):
            raise ValueError(f"input_size and in_channels must be whole numbers >= 1, not {input_size!r} and "
                             f"{in_channels!r}")
        x = torch.ones(1, int(in_channels), int(input_size), int(input_size), device=p.device, dtype=p.dtype)
    x = checks.model_input(model, x).detach().to(p.device).clone().requires_grad_(True)
    with hooks.preserved(model), hooks.capture(model, layer, detach=False) as rec:
        model.eval()                                        # batch norm statistics stay as they are
        model(x)
        act = rec.activations[layer]
        if act.dim() != 4:
            raise ValueError(f"layer {layer} has no spatial output (shape {tuple(act.shape)})")
        h, w = act.shape[2:]
        grad, = torch.autograd.grad(act[0, :, (h - 1) // 2, (w - 1) // 2].sum(), x)   # no .grad on parameters
    return grad[0].abs().sum(0)


def crop(img: torch.Tensor, rf: RF, row: int, col: int, fill: float = 0.5) -> torch.Tensor:
    """The patch (C, r, r) under unit (row, col); parts outside the image are filled with ``fill``."""
    img = img[0] if img.dim() == 4 else img
    c, h, w = img.shape
    if rf.is_global:
        return img
    top = round(rf.offset + row * rf.stride - (rf.size - 1) / 2)
    left = round(rf.offset + col * rf.stride - (rf.size - 1) / 2)
    pad = (max(0, -left), max(0, left + rf.size - w), max(0, -top), max(0, top + rf.size - h))
    padded = F.pad(img, pad, value=fill)
    row, col = top + pad[2], left + pad[0]
    return padded[:, row:row + rf.size, col:col + rf.size]


@dataclass
class Patches:
    """The top-k units of one channel over a data set: image index, activation, position, patch."""
    index: torch.Tensor      # (k,) image indices
    value: torch.Tensor      # (k,) activations
    row: torch.Tensor        # (k,)
    col: torch.Tensor        # (k,)
    patches: torch.Tensor    # (k, C, r, r)


def top_patches(maxima: tuple, images: torch.Tensor, rf: RF, channel: int, k: int = 9) -> Patches:
    """The ``k`` images where ``channel`` fires most and the patch under the maximum.

    ``maxima``: ``features.spatial_max`` of the layer over ``images`` ((values, rows, cols), each (N, C)).
    """
    values, rows, cols = maxima
    n, channels = values.shape
    if not (checks.whole(channel) and 0 <= channel < channels):
        raise ValueError(f"channel must be in 0..{channels - 1} for this layer ({channels} channels), not {channel}")
    if not (checks.whole(k) and 1 <= k <= n):
        raise ValueError(f"k must be between 1 and the number of images ({n}), not {k}")
    channel, k = int(channel), int(k)
    top = values[:, channel].topk(k)
    idx = top.indices
    r, c = rows[idx, channel], cols[idx, channel]
    patches = torch.stack([crop(images[i], rf, int(rr), int(cc)) for i, rr, cc in zip(idx, r, c)])
    return Patches(idx, top.values, r, c, patches)


def max_patches(cache: features.LayerCache, model: nn.Module, layer: str, channel: int, k: int = 9) -> Patches:
    """Top-k patches of ``layer``/``channel`` using a ``LayerCache`` built with ``features.spatial_max``."""
    return top_patches(cache(layer), cache.images, receptive_field(model, layer), channel, k)
