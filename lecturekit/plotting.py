"""Figures good enough for slides: every panel titled, colorbars where values matter.

One convention, decided here and nowhere else:

* images are shown as the model sees them: RGB in natural colours, one channel in gray,
  both on the fixed range 0..1 (never stretched to a panel's own min/max);
* a signed map uses one diverging colormap (``SIGNED_CMAP``), white at a stated reference
  (0 for gradients, the unoccluded probability for occlusion) -- see :func:`signed`;
* a magnitude uses one sequential colormap (``MAGNITUDE_CMAP``) from 0 to a stated top,
  by default the ``CLIP_PERCENTILE`` percentile (the top 1% of a gradient clipped, as captum
  does) -- see :func:`magnitude`;
* a class map (CAM, attention) is drawn over its image at ``OVERLAY_ALPHA`` -- see :func:`overlay`;
* titles are sized (and wrapped) to fit their panel, between ``TITLE_MIN`` and ``TITLE_MAX`` pt.

:func:`image_grid` and :func:`heatmap` take tensors (an image when it has a channel axis,
(1,3,H,W)/(3,H,W)/(1,H,W); a map when it is (H, W)) or the panels above. :func:`audit` lists
what is wrong with a drawn figure (NaN or constant panels, titles wider than their axes).

Each function returns the matplotlib ``Figure`` (so widgets can re-render it).
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

IMAGE_CMAP = "gray"
SIGNED_CMAP = "RdBu_r"
MAGNITUDE_CMAP = "inferno"
CLIP_PERCENTILE = 99.0
OVERLAY_ALPHA = 0.5
TITLE_MAX, TITLE_MIN = 10.0, 7.0
_CHAR_EM = 0.6                      # average width of a DejaVu Sans character, in ems (a little generous)


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
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.clip(img, 0, 1), IMAGE_CMAP
    return np.clip(img, 0, 1), None


def _to_map(heat) -> np.ndarray:
    """A map (H, W) from a tensor or array with leading axes of size 1."""
    a = heat.detach().float().cpu().numpy() if isinstance(heat, torch.Tensor) else np.asarray(heat, dtype=np.float32)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"expected a map of shape (H, W), got {a.shape}")
    return a.astype(np.float32)


def _resize(a: np.ndarray, hw) -> np.ndarray:
    if a.shape == tuple(hw):
        return a
    return F.interpolate(torch.from_numpy(a)[None, None], size=tuple(hw), mode="bilinear", align_corners=False)[0, 0].numpy()


@dataclass
class Panel:
    """What one panel shows and how: ``data`` on ``cmap`` from ``vmin`` to ``vmax``, over ``under`` if given."""
    data: np.ndarray
    cmap: str | None
    vmin: float = 0.0
    vmax: float = 1.0
    under: np.ndarray | None = None
    label: str = ""

    @property
    def is_map(self) -> bool:
        return self.cmap not in (None, IMAGE_CMAP) or self.under is not None

    def draw(self, ax, cmap: str | None = None):
        cmap = (cmap if self.is_map and cmap else None) or self.cmap
        if self.under is None:
            return ax.imshow(self.data, cmap=cmap, vmin=self.vmin, vmax=self.vmax, interpolation="nearest")
        ax.imshow(self.under, cmap=IMAGE_CMAP if self.under.ndim == 2 else None, vmin=0, vmax=1)
        return ax.imshow(self.data, cmap=cmap, vmin=self.vmin, vmax=self.vmax, alpha=OVERLAY_ALPHA)


def photo(img) -> Panel:
    """An image as the model sees it: RGB in natural colours, one channel in gray, range 0..1."""
    arr, cmap = _to_display(img)
    return Panel(arr, cmap, 0.0, 1.0)


def magnitude(heat, vmax: float | None = None, percentile: float = CLIP_PERCENTILE, label: str = "") -> Panel:
    """A map of sizes (>= 0) on the sequential colormap from 0 to ``vmax`` (default: its
    ``percentile`` percentile, so a few extreme pixels do not make the rest black)."""
    a = _to_map(heat)
    if not np.isfinite(a).all():
        raise ValueError("the map has NaN or infinite values")
    top = float(np.percentile(a, percentile)) if vmax is None else float(vmax)
    if top <= 0:
        top = float(a.max()) if a.max() > 0 else 1.0
    return Panel(a, MAGNITUDE_CMAP, 0.0, top, label=label)


def signed(heat, center: float = 0.0, span: float | None = None, percentile: float = 100.0, label: str = "") -> Panel:
    """A signed map on the diverging colormap, white at ``center`` (the stated reference) and
    saturated at ``center +- span`` (default: the ``percentile`` percentile of ``|heat - center|``)."""
    a = _to_map(heat)
    if not np.isfinite(a).all():
        raise ValueError("the map has NaN or infinite values")
    if span is None:
        span = float(np.percentile(np.abs(a - center), percentile))
    span = float(span) if span > 0 else 1.0
    return Panel(a, SIGNED_CMAP, center - span, center + span, label=label)


def overlay(img, heat, vmax: float | None = None, percentile: float = CLIP_PERCENTILE, label: str = "") -> Panel:
    """A magnitude map (CAM, attention) drawn over its image at ``OVERLAY_ALPHA``, resized to the image."""
    under, _ = _to_display(img)
    p = magnitude(_resize(_to_map(heat), under.shape[:2]), vmax=vmax, percentile=percentile, label=label)
    p.under = under
    return p


def panel(item) -> Panel:
    """The convention applied to one item: a Panel as it is, an (H, W) map signed when it has
    negative values and a magnitude otherwise, anything with a channel axis an image."""
    if isinstance(item, Panel):
        return item
    if isinstance(item, torch.Tensor) and item.dim() == 2 or isinstance(item, np.ndarray) and item.ndim == 2:
        a = _to_map(item)
        return signed(a) if a.min() < 0 else magnitude(a)
    return photo(item)


def show(ax, item, title: str | None = None, cmap: str | None = None):
    """Draw one item on ``ax`` by the convention (see :func:`panel`), axis off, title fitted to the
    axes. For figures laid out by hand; returns the image artist (for a colorbar)."""
    im = panel(item).draw(ax, cmap)
    ax.axis("off")
    if title:
        _set_title(ax, title, ax.get_position().width * ax.figure.get_figwidth())
    return im


def title_size(text: str, width_in: float, largest: float = TITLE_MAX) -> tuple[str, float]:
    """A title and font size (pt) so that it fits ``width_in`` inches: shrink to ``TITLE_MIN``, then wrap."""
    width_pt = width_in * 72
    longest = max((len(line) for line in text.split("\n")), default=1) or 1
    size = min(largest, width_pt / (_CHAR_EM * longest))
    readable = min(largest, TITLE_MIN + 2)
    if size >= readable:
        return text, size

    def wrap(pt):
        chars = max(4, int(width_pt / (_CHAR_EM * pt)))
        return "\n".join(textwrap.fill(line, chars, break_long_words=True) for line in text.split("\n"))
    wrapped = wrap(readable)                         # rather two lines at a readable size than one tiny one
    if wrapped.count("\n") <= text.count("\n") + 1:
        return wrapped, readable
    return (text, size) if size >= TITLE_MIN else (wrap(TITLE_MIN), TITLE_MIN)


def _set_title(ax, text: str, width_in: float, **kw):
    text, size = title_size(text, width_in * 0.97)
    ax.set_title(text, fontsize=size, **kw)


def _suptitle(fig, text: str, width_in: float, **kw):
    text, size = title_size(text, width_in * 0.96, largest=12.0)
    fig.suptitle(text, fontsize=size, **kw)


def image_grid(imgs: Sequence, titles: Sequence[str] | None = None, ncols: int | None = None,
               size: float = 2.6, suptitle: str | None = None, cmap: str | None = None, colorbar: bool = False):
    """Panels side by side, each with its title. ``imgs``: images (tensors (1,C,H,W)/(C,H,W) or
    HxWx3 arrays), maps ((H, W) tensors or arrays) or panels (:func:`photo`, :func:`signed`,
    :func:`magnitude`, :func:`overlay`). ``cmap`` recolours maps only (images keep their colours);
    ``colorbar`` adds one to every map panel."""
    panels = [panel(i) for i in imgs]
    if not panels:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"{len(panels)} images but {len(titles)} titles")
    ncols = ncols or min(len(panels), 6)
    nrows = math.ceil(len(panels) / ncols)
    fitted = [title_size(t, size * 0.97) for t in titles] if titles is not None else []
    lines = max((t.count("\n") + 1 for t, _ in fitted), default=0)
    fontsize = min((s for _, s in fitted), default=TITLE_MAX)
    title_in = lines * fontsize * 1.25 / 72 + 0.1          # inches above each row for its titles
    top_in = 0.45 if suptitle else 0.05
    height = nrows * (size + title_in) + top_in
    width = size * ncols * (1.1 if colorbar else 1.0) + (0.8 if colorbar else 0.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    # fixed spacing instead of tight_layout: no extra draw, so widgets redraw fast
    right = 1 - (0.8 if colorbar else 0.01 * width) / width       # colorbars: room for the last one's tick labels
    fig.subplots_adjust(left=0.01, right=right, bottom=0.01, top=1 - (top_in + title_in) / height,
                        wspace=0.06 + (0.3 if colorbar else 0), hspace=title_in / size)
    for ax in axes.flat:
        ax.axis("off")
    for i, p in enumerate(panels):
        ax = axes.flat[i]
        im = p.draw(ax, cmap)
        if colorbar and p.is_map:
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        if titles is not None:
            ax.set_title(fitted[i][0], fontsize=fontsize)      # one size per figure
    if suptitle:
        _suptitle(fig, suptitle, width, y=1 - 0.08 / height)
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
    _suptitle(fig, title or f"{n} filters of {kh}x{kw}{which}", size * ncols)
    fig.tight_layout()
    return fig


def heatmap(img: torch.Tensor, heat, title: str | None = None, label: str = "value",
            cmap: str | None = None, alpha: float = OVERLAY_ALPHA, size: float = 3.2, center: float | None = None,
            vmax: float | None = None, percentile: float = CLIP_PERCENTILE, bounds: tuple[float, float] | None = None):
    """Image, heat map (with colorbar) and overlay side by side. ``heat`` is (H, W) at any resolution.

    The convention picks the colours: with ``center`` (the stated reference, e.g. the unoccluded
    probability) or negative values, a diverging map white at ``center`` (default 0) and saturated
    at ``center +- vmax``; otherwise a magnitude from 0 to ``vmax`` (default: the ``percentile``
    percentile). ``cmap`` overrides the colormap only. ``bounds``: the values the quantity can
    take (a probability: ``(0, 1)``); the colorbar stops there, the colours stay as they are."""
    arr, gray = _to_display(img)
    hm = _resize(_to_map(heat), arr.shape[:2])
    if center is not None or hm.min() < 0:
        p = signed(hm, center=center or 0.0, span=vmax, percentile=100.0 if vmax is None else percentile)
    else:
        p = magnitude(hm, vmax=vmax, percentile=percentile)
    cmap = cmap or p.cmap
    clipped = "max" if p.cmap == MAGNITUDE_CMAP and hm.max() > p.vmax else "neither"
    fig, axes = plt.subplots(1, 3, figsize=(size * 3 + 0.6, size))
    axes[0].imshow(arr, cmap=gray, vmin=0, vmax=1)
    _set_title(axes[0], "image", size)
    im = axes[1].imshow(hm, cmap=cmap, vmin=p.vmin, vmax=p.vmax)
    _set_title(axes[1], label, size * 0.75)                 # the colorbar takes a quarter of this panel
    bar = fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, extend=clipped)
    if bounds is not None:
        bar.ax.set_ylim(max(bounds[0], p.vmin), min(bounds[1], p.vmax))
    axes[2].imshow(arr, cmap=gray, vmin=0, vmax=1)
    axes[2].imshow(hm, cmap=cmap, vmin=p.vmin, vmax=p.vmax, alpha=alpha)
    _set_title(axes[2], "overlay", size)
    for ax in axes:
        ax.axis("off")
    if title:
        _suptitle(fig, title, size * 3 + 0.6)
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
        ax.imshow(shown[c], cmap=MAGNITUDE_CMAP, vmin=0 if normalize else None, vmax=1 if normalize else None)
        _set_title(ax, str(c), size, pad=1)
    h, w = act.shape[-2:]
    _suptitle(fig, title or f"{len(channels)} channels of {h}x{w}", size * ncols)
    fig.tight_layout()
    return fig


def scatter_by_class(points, labels, class_names: Sequence[str], title: str = "", ax=None, legend: bool = True):
    """2-D points coloured by class, with a legend (``legend=False``: none, e.g. for one legend per figure)."""
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
    if legend:
        ax.legend(fontsize=7, markerscale=1.5, loc="best", framealpha=0.6)
    return ax.figure


def thumbnail_scatter(points, images: torch.Tensor, labels=None, title: str = "", zoom: float = 0.6,
                      size: float = 8.0, border: int = 2):
    """Each image drawn as a thumbnail at its 2-D point; a coloured frame shows its class if given.

    Every point is a dot; a thumbnail is drawn only where it does not cover one already drawn
    (visiting the points in order), as in scikit-learn's embedding of the digits, so the map
    stays readable however dense a cluster is."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    points = np.asarray(points, dtype=float)
    if len(points) != len(images):
        raise ValueError(f"{len(points)} points but {len(images)} images")
    fig, ax = plt.subplots(figsize=(size, size))
    cmap = plt.get_cmap("tab10")
    colors = [cmap(int(c) % 10) for c in labels] if labels is not None else "0.5"
    ax.scatter(points[:, 0], points[:, 1], s=6, c=colors)
    span = np.ptp(points, axis=0)
    span[span == 0] = 1.0
    unit = (points - points.min(0)) / span                        # 0..1 on both axes
    drawn: list[np.ndarray] = []
    for i, (p, img) in enumerate(zip(points, images)):
        arr, gray = _to_display(img)
        # the thumbnail's side as a fraction of the axes (about 0.85 of the figure)
        side = (max(arr.shape[:2]) + 2 * border) * zoom / (fig.dpi * size * 0.85)
        if drawn and np.abs(np.array(drawn) - unit[i]).max(1).min() < side:
            continue
        drawn.append(unit[i])
        if labels is not None:
            color = np.array(cmap(int(labels[i]) % 10)[:3])
            rgb = np.repeat(arr[:, :, None], 3, 2) if arr.ndim == 2 else arr
            framed = np.ones((rgb.shape[0] + 2 * border, rgb.shape[1] + 2 * border, 3)) * color
            framed[border:-border, border:-border] = rgb
            arr, gray = framed, None
        box = OffsetImage(arr, zoom=zoom, cmap=gray)
        ax.add_artist(AnnotationBbox(box, p, frameon=False))
    ax.set_title(f"{title} ({len(drawn)} of {len(points)} shown as images)" if title else title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def signed_image(grad: torch.Tensor, percentile: float = CLIP_PERCENTILE) -> torch.Tensor:
    """A signed gradient (C, H, W) or (1, C, H, W) for display: zero is mid-grey, the ``percentile``
    percentile of its magnitude reaches 0 or 1 (the top 1% clipped). Gradient images are shown this
    way in the guided-backprop papers."""
    g = grad.detach().float().cpu()
    g = g[0] if g.dim() == 4 else g
    top = torch.quantile(g.abs().flatten(), percentile / 100).clamp_min(1e-12)
    return (g / (2 * top) + 0.5).clamp(0, 1)



def audit(fig) -> list[str]:
    """What is wrong with a figure, drawn or not: an image panel with NaN or one value everywhere
    (a flat panel shows nothing), a colour range of zero width, a title wider than its axes or a
    suptitle wider than the figure. Cheap: one draw of the figure if it has not been drawn."""
    problems = []
    renderer = fig._get_renderer()
    for k, ax in enumerate(fig.axes):
        name = ax.get_title() or f"axes {k}"
        for im in ax.get_images():
            a = np.ma.getdata(im.get_array()).astype(float)
            if np.isnan(a).any():
                problems.append(f"{name!r}: NaN in the image")
            elif a.size and a.max() == a.min() and len(ax.get_images()) == 1:
                problems.append(f"{name!r}: every pixel is {a.flat[0]:.3g} (a flat panel)")
            elif a.ndim == 2 and im.get_clim()[1] <= im.get_clim()[0]:
                lo, hi = im.get_clim()
                problems.append(f"{name!r}: colour range of zero width ({lo:.3g}..{hi:.3g})")
        for title in (ax.title, ax._left_title, ax._right_title):
            if title.get_text():
                tw = title.get_window_extent(renderer).width
                aw = ax.get_window_extent(renderer).width
                if tw > aw + 2:
                    problems.append(f"title {title.get_text()!r} is wider than its axes ({tw:.0f} > {aw:.0f} px)")
    sup = fig._suptitle
    if sup is not None and sup.get_text():
        box = sup.get_window_extent(renderer)
        if box.x0 < -1 or box.x1 > fig.bbox.width + 1:
            problems.append(f"suptitle {sup.get_text()!r} is wider than the figure")
    return problems


def install_audit(report) -> None:
    """Audit every figure as it is rendered (inline backend, savefig, widgets), appending one JSON
    line {"title", "problems"} per figure to the file ``report``. Used by the gallery tests."""
    import json
    from matplotlib.backend_bases import FigureCanvasBase
    if getattr(FigureCanvasBase.print_figure, "_audited", False):
        return
    original = FigureCanvasBase.print_figure

    def print_figure(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        fig = self.figure
        titles = [t for t in ([fig._suptitle.get_text()] if fig._suptitle else []) + [a.get_title() for a in fig.axes] if t]
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({"title": titles[0] if titles else "", "problems": audit(fig)}) + "\n")
        return result
    print_figure._audited = True
    FigureCanvasBase.print_figure = print_figure
