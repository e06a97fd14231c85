"""Figures good enough for slides: every panel titled, colorbars where values matter.

Each function returns the matplotlib ``Figure`` (so widgets can re-render it).
"""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F


def _to_display(img) -> tuple[np.ndarray, str | None]:
    """Tensor or array -> (array for imshow, colormap): RGB as HxWx3, one channel as HxW gray."""
    if isinstance(img, torch.Tensor):
        img = img.detach().float().cpu()
        while img.dim() > 3:
            if img.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of shape {tuple(img.shape)}")
            img = img[0]
        if img.dim() == 3:
            img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
        img = img.numpy()
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img, "gray"
    return np.clip(img, 0, 1), None


def image_grid(imgs: Sequence, titles: Sequence[str] | None = None, ncols: int | None = None,
               size: float = 2.6, suptitle: str | None = None, cmap: str | None = None):
    """Images side by side, each with its title. ``imgs``: tensors (1,3,H,W)/(3,H,W)/(H,W) or arrays."""
    imgs = list(imgs)
    if not imgs:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(titles)} titles")
    ncols = ncols or min(len(imgs), 6)
    nrows = math.ceil(len(imgs) / ncols)
    lines = max((t.count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    title_in = 0.2 * lines + 0.1                       # inches above each row for its titles
    top_in = 0.45 if suptitle else 0.05
    height = nrows * (size + title_in) + top_in
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, height), squeeze=False)
    # fixed spacing instead of tight_layout: no extra draw, so widgets redraw fast
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - (top_in + title_in) / height,
                        wspace=0.06, hspace=title_in / size)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(imgs):
        arr, default_cmap = _to_display(img)
        ax = axes.flat[i]
        ax.imshow(arr, cmap=cmap or default_cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=10 if size >= 2 else 8)
    if suptitle:
        fig.suptitle(suptitle, y=1 - 0.08 / height)
    return fig


def normalize_tiles(weight: torch.Tensor) -> torch.Tensor:
    """Scale each filter on its own into 0..1 (min -> 0, max -> 1), the usual way to show filters."""
    w = weight.detach().float().cpu()
    flat = w.flatten(1)
    lo = flat.min(1).values.view(-1, *[1] * (w.dim() - 1))
    hi = flat.max(1).values.view(-1, *[1] * (w.dim() - 1))
    return (w - lo) / (hi - lo).clamp_min(1e-12)


def filter_tiles(weight: torch.Tensor, channel: int | None = None, ncols: int | None = None,
                 title: str | None = None, size: float = 0.9, upsample: int = 1):
    """Conv filters (out, in, kh, kw) as tiles: RGB when in == 3, gray when in == 1.

    For deeper layers (in not 1 or 3) pass ``channel`` to show each filter's weights on that
    input channel. Each tile is normalised on its own.
    """
    if weight.dim() != 4:
        raise ValueError(f"expected conv weights of shape (out, in, kh, kw), got {tuple(weight.shape)}")
    cin = weight.shape[1]
    if channel is not None:
        if not 0 <= channel < cin:
            raise ValueError(f"channel must be in 0..{cin - 1} for weights with {cin} input channels, not {channel}")
        weight = weight[:, channel:channel + 1]
    elif cin not in (1, 3):
        raise ValueError(f"these filters have {cin} input channels; pass channel=0..{cin - 1} to show one of them")
    tiles = normalize_tiles(weight)
    if upsample > 1:
        tiles = F.interpolate(tiles, scale_factor=upsample, mode="nearest")
    n = tiles.shape[0]
    ncols = ncols or min(n, 16)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        arr, cmap = _to_display(tiles[i])
        axes.flat[i].imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    kh, kw = weight.shape[-2:]
    which = f", input channel {channel}" if channel is not None else ""
    fig.suptitle(title or f"{n} filters of {kh}x{kw}{which}")
    fig.tight_layout()
    return fig


def heatmap(img: torch.Tensor, heat, title: str | None = None, label: str = "value",
            cmap: str = "jet", alpha: float = 0.5, size: float = 3.2):
    """Image, heat map (with colorbar) and overlay side by side. ``heat`` is (H, W) at any resolution."""
    arr, _ = _to_display(img)
    heat_t = torch.as_tensor(np.asarray(heat.detach().cpu() if isinstance(heat, torch.Tensor) else heat),
                             dtype=torch.float32)
    while heat_t.dim() > 2:
        heat_t = heat_t[0]
    h, w = arr.shape[:2]
    if tuple(heat_t.shape) != (h, w):
        heat_t = F.interpolate(heat_t[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    hm = heat_t.numpy()
    fig, axes = plt.subplots(1, 3, figsize=(size * 3 + 0.6, size))
    axes[0].imshow(arr, cmap="gray" if arr.ndim == 2 else None)
    axes[0].set_title("image")
    im = axes[1].imshow(hm, cmap=cmap)
    axes[1].set_title(label)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
    axes[2].imshow(arr, cmap="gray" if arr.ndim == 2 else None)
    axes[2].imshow(hm, cmap=cmap, alpha=alpha)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def normalize_channels(act: torch.Tensor) -> torch.Tensor:
    """Per-channel display scaling of activations (C, H, W) -> 0..1, the classic Keras recipe:
    subtract the channel's mean, divide by its std, map to 0.5 +- 0.25 per std, clip."""
    a = act.detach().float().cpu()
    mean = a.mean((-2, -1), keepdim=True)
    std = a.std((-2, -1), keepdim=True).nan_to_num(0.0)
    return ((a - mean) / (std + 1e-5) * 0.25 + 0.5).clamp(0, 1)


def activation_grid(act: torch.Tensor, channels: Sequence[int] | None = None, ncols: int = 16,
                    title: str | None = None, size: float = 0.9, normalize: bool = True):
    """Every channel (or the given ``channels``) of one activation (C, H, W), each scaled on its own."""
    if act.dim() == 4:
        act = act[0]
    if act.dim() != 3:
        raise ValueError(f"expected an activation of shape (C, H, W), got {tuple(act.shape)}")
    channels = list(range(act.shape[0])) if channels is None else list(channels)
    shown = (normalize_channels(act) if normalize else act.detach().float().cpu()).numpy()
    ncols = min(ncols, len(channels))
    nrows = math.ceil(len(channels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, c in zip(axes.flat, channels):
        ax.imshow(shown[c], cmap="viridis", vmin=0 if normalize else None, vmax=1 if normalize else None)
        ax.set_title(str(c), fontsize=7, pad=1)
    h, w = act.shape[-2:]
    fig.suptitle(title or f"{len(channels)} channels of {h}x{w}")
    fig.tight_layout()
    return fig


def scatter_by_class(points, labels, class_names: Sequence[str], title: str = "", ax=None):
    """2-D points coloured by class, with a legend."""
    points = np.asarray(points)
    labels = np.asarray(labels)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for c, name in enumerate(class_names):
        sel = labels == c
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=10, color=cmap(c % cmap.N), label=name)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5, loc="best", framealpha=0.6)
    return ax.figure


def thumbnail_scatter(points, images: torch.Tensor, labels=None, title: str = "", zoom: float = 0.6,
                      size: float = 8.0, border: int = 2):
    """Each image drawn as a thumbnail at its 2-D point; a coloured frame shows its class if given."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    points = np.asarray(points, dtype=float)
    if len(points) != len(images):
        raise ValueError(f"{len(points)} points but {len(images)} images")
    fig, ax = plt.subplots(figsize=(size, size))
    ax.scatter(points[:, 0], points[:, 1], s=0)
    cmap = plt.get_cmap("tab10")
    for i, (p, img) in enumerate(zip(points, images)):
        arr, gray = _to_display(img)
        if labels is not None:
            color = np.array(cmap(int(labels[i]) % 10)[:3])
            rgb = np.repeat(arr[:, :, None], 3, 2) if arr.ndim == 2 else arr
            framed = np.ones((rgb.shape[0] + 2 * border, rgb.shape[1] + 2 * border, 3)) * color
            framed[border:-border, border:-border] = rgb
            arr, gray = framed, None
        box = OffsetImage(arr, zoom=zoom, cmap=gray)
        ax.add_artist(AnnotationBbox(box, p, frameon=False))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def signed_image(grad: torch.Tensor) -> torch.Tensor:
    """A signed gradient (C, H, W) or (1, C, H, W) for display: zero is mid-grey, the largest
    magnitude reaches 0 or 1. Gradient images are shown this way in the guided-backprop papers."""
    g = grad.detach().float().cpu()
    g = g[0] if g.dim() == 4 else g
    return (g / (2 * g.abs().max().clamp_min(1e-12)) + 0.5).clamp(0, 1)
