"""Losses that are minimised: feature match (the content loss, and feature inversion), the Gram
matrix and its style loss, total variation. Style transfer, fast style transfer and feature
inversion share them; gradient ascent (``lecturekit.ascent``) keeps its objectives for what is
maximised, and ``ascent.ascend`` minimises a ``Loss`` as readily.

    g = losses.gram(features)                                  # (N, C, C) = F F^T / (H W)
    loss = 1.0 * losses.feature_match("relu4_2", phi) + 10.0 * losses.gram_match("relu1_1", g_style)
    loss(acts)                                                 # (N,): one value per image

Each loss is relative (divided by the squared size of its target), so that layers of very
different activation sizes weigh alike and a weight of 1 means the same at every layer.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of a (N, C, H, W) feature map: G = F F^T / (H W), shape (N, C, C) (Gatys et al. 2015).
    Where the features are is averaged away; dividing by H W makes it independent of the image size."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.mT / (h * w)


class _GramProduct(torch.autograd.Function):
    """F F^T for F of shape (C, M) or (N, C, M), with one product in its backward: autograd's rule for
    a product takes two, dG F + dG^T F; G is symmetric in F, so (dG + dG^T) F does it."""

    @staticmethod
    def forward(ctx, f):
        ctx.save_for_backward(f)
        return f @ f.mT

    @staticmethod
    def backward(ctx, grad):
        f, = ctx.saved_tensors
        return (grad + grad.mT) @ f


def gram_fast(features: torch.Tensor) -> torch.Tensor:
    """``gram``, faster in an optimisation loop: one product in the backward pass, and for one image a
    2-D product (a reshape, not ``f[0]``, whose backward fills a zero tensor). A Gatys loss evaluation
    took 0.93-1.0x the PyTorch tutorial's time with it, 1.2x without (``benchmarks/peers.py``).
    Tested equal to ``gram``, values and gradients."""
    n, c, h, w = features.shape
    f = features.reshape(c, h * w) if n == 1 else features.reshape(n, c, h * w)
    g = _GramProduct.apply(f).div_(h * w)
    return g[None] if n == 1 else g


def relative_error(value: torch.Tensor, target: torch.Tensor, what: str = "the value") -> torch.Tensor:
    """||value - target||^2 / ||target||^2 per image (N,): 0 at the target, 1 at zero."""
    target = target.detach()
    if value.shape[1:] != target.shape[1:]:
        raise ValueError(f"the target {tuple(target.shape)} does not match {what} {tuple(value.shape)}")
    scale = target.pow(2).flatten(1).sum(1).clamp_min(1e-12)
    return (value - target).pow(2).flatten(1).sum(1) / scale


def total_variation(img: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels of (N, C, H, W), down and across, per image (N,)."""
    dh = (img[..., 1:, :] - img[..., :-1, :]).pow(2).flatten(1).mean(1)
    dw = (img[..., :, 1:] - img[..., :, :-1]).pow(2).flatten(1).mean(1)
    return dh + dw


class Loss:
    """A loss to minimise, one value per image: ``fn(acts) -> (N,)`` from the activations of ``layers``
    (a dict of layer name to tensor). Losses add, and scale by numbers."""

    def __init__(self, fn: Callable, layers: Sequence[str], name: str = ""):
        self.fn, self.layers, self.name = fn, tuple(layers), name

    def __call__(self, acts: dict, logits: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: "Loss") -> "Loss":
        if not isinstance(other, Loss):
            raise TypeError(f"a Loss adds to a Loss, not to a {type(other).__name__}")
        return Loss(lambda a: self(a) + other(a), tuple(dict.fromkeys(self.layers + other.layers)),
                    f"{self.name} + {other.name}")

    def __mul__(self, k: float) -> "Loss":
        return Loss(lambda a: k * self(a), self.layers, f"{k:.3g} * {self.name}")

    __rmul__ = __mul__

    def __radd__(self, other) -> "Loss":
        if isinstance(other, (int, float)) and other == 0:    # sum() of losses starts from 0
            return self
        return NotImplemented

    def __repr__(self) -> str:
        return f"Loss({self.name})"


def feature_match(layer: str, target: torch.Tensor) -> Loss:
    """The relative squared distance of ``layer``'s activations to ``target``: the content loss of
    style transfer (Gatys et al.) and the loss of feature inversion (Mahendran & Vedaldi 2015)."""
    target = target.detach()
    return Loss(lambda a: relative_error(a[layer], target, f"{layer}'s features"), [layer], f"match {layer}")


def gram_match(layer: str, target: torch.Tensor) -> Loss:
    """The style loss of one layer: the relative squared distance of its Gram matrix to ``target``."""
    target = target.detach()
    return Loss(lambda a: relative_error(gram_fast(a[layer]), target, f"{layer}'s Gram matrix"), [layer], f"gram {layer}")
