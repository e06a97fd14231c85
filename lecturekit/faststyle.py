"""Fast style transfer (Johnson et al. 2016) and one network for many styles (Dumoulin et al. 2017).

    net = faststyle.TransformNet(n_styles=3)                     # conditional instance norm
    history = faststyle.train(net, features, [style_a, style_b, style_c], steps=300)
    out = net(photo, style=[0.5, 0.5, 0.0])                       # blend two styles in one pass

The transformation network: a 9x9 convolution, two stride-2 convolutions down, residual
blocks, two bilinear upsamplings each followed by a convolution and a 9x9 convolution back to
RGB. Transposed convolutions leave checkerboard artefacts (Odena et al. 2016); so does
nearest-neighbour upsampling in a network this small, which learns to draw on the 2-pixel grid
it leaves (``grid_artefact`` measures it: 0.06-0.08 for a nearest-neighbour network trained
the same way, under 0.02 for the bilinear one). Every convolution but the last is
followed by instance normalisation and a ReLU. The normalisation's scale and shift (gamma, beta)
are the only weights that differ between styles: ``n_styles`` rows of them, mixed by the style
weights given to ``forward``. A sigmoid maps the last layer to 0..1. (Predicting a change to the
photo instead trains fast on one batch but cannot give every photo the style's colours: instance
normalisation hides the photo's own.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import config, gallery, hooks, images, losses, style

#: The shipped network (two paintings), in the package data.
WEIGHTS_FILE = "faststyle_cin.pt"


class ConditionalInstanceNorm(nn.Module):
    """Instance normalisation with one (gamma, beta) row per style:
    y = gamma(w) * (x - mean) / std + beta(w), gamma(w) = sum_s w_s gamma_s (likewise beta)."""

    def __init__(self, channels: int, n_styles: int = 1, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))
        self.eps = eps

    def params(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) for style weights (N, n_styles): each (N, channels)."""
        return weights @ self.gamma, weights @ self.beta

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.params(weights)
        # one pass: the N images as one image of N*C channels, each channel with its own gamma and beta
        n, c = x.shape[:2]
        y = F.instance_norm(x.reshape(1, n * c, *x.shape[2:]), weight=gamma.reshape(-1), bias=beta.reshape(-1),
                            eps=self.eps)
        return y.view_as(x)


class _ConvNormReLU(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, n_styles: int, upsample: str | None = None,
                 relu=True):
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, padding_mode="reflect")
        self.norm = ConditionalInstanceNorm(cout, n_styles)
        self.relu = relu

    def forward(self, x, weights):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode=self.upsample)
        x = self.norm(self.conv(x), weights)
        return F.relu(x) if self.relu else x


class _Residual(nn.Module):
    def __init__(self, channels: int, n_styles: int):
        super().__init__()
        self.a = _ConvNormReLU(channels, channels, 3, 1, n_styles)
        self.b = _ConvNormReLU(channels, channels, 3, 1, n_styles, relu=False)

    def forward(self, x, weights):
        return x + self.b(self.a(x, weights), weights)


class TransformNet(nn.Module):
    """Image (N, 3, H, W) in 0..1 -> stylised image of the same size in 0..1.
    ``width`` channels at full resolution (2x and 4x that after each downsampling); ``upsample``:
    "bilinear" (the default) or "nearest" (as in Johnson et al.'s and pytorch/examples' network)."""

    UPSAMPLING = ("bilinear", "nearest")

    def __init__(self, n_styles: int = 1, width: int = 16, blocks: int = 3, upsample: str = "bilinear"):
        super().__init__()
        if upsample not in self.UPSAMPLING:
            raise ValueError(f"upsample must be one of {self.UPSAMPLING}, not {upsample!r}")
        w = width
        self.n_styles = n_styles
        self.upsample = upsample
        self.down = nn.ModuleList([_ConvNormReLU(3, w, 9, 1, n_styles), _ConvNormReLU(w, 2 * w, 3, 2, n_styles),
                                   _ConvNormReLU(2 * w, 4 * w, 3, 2, n_styles)])
        self.res = nn.ModuleList([_Residual(4 * w, n_styles) for _ in range(blocks)])
        self.up = nn.ModuleList([_ConvNormReLU(4 * w, 2 * w, 3, 1, n_styles, upsample=upsample),
                                 _ConvNormReLU(2 * w, w, 3, 1, n_styles, upsample=upsample)])
        self.out = nn.Conv2d(w, 3, 9, padding=4, padding_mode="reflect")

    def style_weights(self, style, n: int, device=None, dtype=None) -> torch.Tensor:
        """``style``: an index, a list of n_styles weights (a blend), or an (N, n_styles) tensor.
        The weights are on ``device`` in ``dtype``, by default those of the network's parameters."""
        if style is None:
            if self.n_styles != 1:
                raise ValueError(f"this network knows {self.n_styles} styles: give style= an index "
                                 f"0..{self.n_styles - 1} or {self.n_styles} blend weights")
            style = 0
        device = self.out.weight.device if device is None else device
        dtype = self.out.weight.dtype if dtype is None else dtype
        if isinstance(style, (int, np.integer)) and not isinstance(style, (bool, np.bool_)):
            if not 0 <= style < self.n_styles:
                raise ValueError(f"style index {style} out of range 0..{self.n_styles - 1}")
            w = F.one_hot(torch.tensor(int(style)), self.n_styles).to(dtype)
        else:
            try:
                w = torch.as_tensor(style, dtype=dtype)
            except (TypeError, ValueError, RuntimeError):
                w = torch.full((0, 0, 0), float("nan"))
            if w.dim() not in (1, 2) or not torch.isfinite(w).all():
                raise ValueError(f"style must be an index 0..{self.n_styles - 1} or {self.n_styles} finite blend "
                                 f"weights (one row per image), not {style!r}")
            if w.shape[-1] != self.n_styles:
                raise ValueError(f"{w.shape[-1]} style weights for a network of {self.n_styles} styles")
            if (w < 0).any() or (w.sum(-1) <= 0).any():
                raise ValueError(f"style blend weights must be >= 0 with a positive sum (how much of each style, "
                                 f"one row per image, e.g. [1.0{', 0.0' * (self.n_styles - 1)}] for the first), "
                                 f"not {w.tolist()}")
        return w.expand(n, -1).to(device) if w.dim() == 1 else w.to(device)

    def forward(self, x: torch.Tensor, style=None) -> torch.Tensor:
        weights = self.style_weights(style, x.shape[0])
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            raise ValueError(f"image sides must be multiples of 4 (two downsamplings), got {h}x{w}")
        y = x
        for layer in self.down:
            y = layer(y, weights)
        for block in self.res:
            y = block(y, weights)
        for layer in self.up:
            y = layer(y, weights)
        return torch.sigmoid(self.out(y))

    def norms(self) -> list[ConditionalInstanceNorm]:
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm)]

    def single(self, weights) -> "TransformNet":
        """A one-style network whose normalisation parameters are those of ``weights``
        (an index or blend weights): the same function as ``self(x, style=weights)``."""
        w = self.style_weights(weights, 1)
        one = TransformNet(1, self.down[0].conv.out_channels, len(self.res), self.upsample).to(self.out.weight)
        one.load_state_dict({k: v for k, v in self.state_dict().items() if not k.endswith(("gamma", "beta"))},
                            strict=False)
        with torch.no_grad():
            for src, dst in zip(self.norms(), one.norms()):
                gamma, beta = src.params(w)
                dst.gamma.copy_(gamma)
                dst.beta.copy_(beta)
        return one


def _neighbour_differences(img: torch.Tensor, period: int) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (rows and columns together) of each
    image in (N, C, H, W), by the position of the pair mod ``period``: shape (N, period)."""
    dw = (img[..., :, 1:] - img[..., :, :-1]).abs()
    dh = (img[..., 1:, :] - img[..., :-1, :]).abs()
    return torch.stack([dw[..., p::period].flatten(1).mean(1) + dh[..., p::period, :].flatten(1).mean(1)
                        for p in range(period)], 1)


def grid_artefact(out: torch.Tensor, photo: torch.Tensor, period: int = 2) -> torch.Tensor:
    """How strongly the stylised ``out`` (N, C, H, W) shows the upsampling grid, per image: the mean
    absolute difference between neighbouring pixels at positions ``p`` mod ``period`` (max minus min
    over ``p``), in units of the ``photo``'s mean neighbour difference. A photo has the same edges at
    every position (about 0.01); nearest-neighbour upsampling that the convolutions after it have not
    smoothed over leaves blocks and checkerboards aligned to its 2-pixel grid (0.06 and more)."""
    if out.shape != photo.shape or out.dim() != 4:
        raise ValueError(f"out and photo must be (N, C, H, W) of the same shape, got {tuple(out.shape)} "
                         f"and {tuple(photo.shape)}")
    by_phase = _neighbour_differences(out, period)
    return (by_phase.amax(1) - by_phase.amin(1)) / _neighbour_differences(photo, 1)[:, 0]


def loss_terms(features: style.FeatureNet, out: torch.Tensor, photos: torch.Tensor,
               targets: dict[str, torch.Tensor], content_weight: float, style_weight: float,
               tv_weight: float) -> dict[str, torch.Tensor]:
    """The three weighted losses of a batch (means over its images), as in optimisation-based transfer:
    the stylised ``out`` against the ``photos``' features at the content layer and the style's Gram
    ``targets`` at the style layers, and the total variation of ``out``."""
    layers = [*targets, features.content_layer]
    with torch.no_grad():
        phi = hooks.activations(features.model, features.preprocess(photos), features.content_layer)
    acts, _ = hooks.run(features.model, features.preprocess(out), layers, detach=False)
    content = losses.feature_match(features.content_layer, phi[features.content_layer])(acts)
    style_loss = sum(losses.gram_match(name, t)(acts) for name, t in targets.items()) / len(targets)
    return {"content": content_weight * content.mean(), "style": style_weight * style_loss.mean(),
            "tv": tv_weight * losses.total_variation(out).mean()}


def photo_batches(size: int, batch: int, seed: int = 0, photos: Sequence[str] = gallery.PHOTOS):
    """Endless batches of random crops and flips of the bundled photos, (batch, 3, size, size)."""
    gen = torch.Generator().manual_seed(seed)
    sources = [images.load(p) for p in photos]
    sources = [images.resize(s, max(size, min(512, min(s.shape[-2:])))) for s in sources]
    while True:
        picks = torch.randint(len(sources), (batch,), generator=gen).tolist()
        yield torch.cat([gallery.random_crops(sources[i], 1, size, gen, scale=(0.3, 1.0)) for i in picks])


def train(net: TransformNet, features: style.FeatureNet, style_imgs: Sequence[torch.Tensor], steps: int = 300,
          size: int = 128, batch: int = 4, lr: float = 1e-3, content_weight: float = 1.0, style_weight: float = 10.0,
          tv_weight: float = 1e-3, photos: Sequence[str] = gallery.PHOTOS, seed: int = 0,
          progress: bool = True) -> list[dict[str, float]]:
    """Train ``net`` on crops of the bundled ``photos`` to stylise them like ``style_imgs`` (one image
    per style of the network; each step trains one style, in turn). Returns per step the style
    ``index`` and the ``total``, ``content``, ``style`` and ``tv`` losses."""
    if isinstance(style_imgs, torch.Tensor):
        style_imgs = [style_imgs]
    if len(style_imgs) != net.n_styles:
        raise ValueError(f"the network has {net.n_styles} style(s) but {len(style_imgs)} style image(s) were given")
    if size % 4:
        raise ValueError(f"size must be a multiple of 4, not {size}")
    device = config.device()
    targets = [style.style_targets(features, [img]) for img in style_imgs]
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    batches = photo_batches(size, batch, seed, photos)
    try:
        with hooks.preserved(features.model, borrow=True):
            for step in tqdm(range(steps), desc="training", disable=not progress, leave=False):
                s = step % net.n_styles
                batch = next(batches).to(device=device, dtype=net.out.weight.dtype)
                terms = loss_terms(features, net(batch, style=s), batch, targets[s],
                                   content_weight, style_weight, tv_weight)
                loss = sum(terms.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history.append({"index": s, "total": loss.item(), **{k: v.item() for k, v in terms.items()}})
    finally:
        net.eval()                                   # also when interrupted: the network is ready to use
    return history


def save(net: TransformNet, path, meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "n_styles": net.n_styles, "width": net.down[0].conv.out_channels,
                "blocks": len(net.res), "upsample": net.upsample, "meta": meta or {}}, path)
    return path


def load(path=None) -> tuple[TransformNet, dict]:
    """A saved network and its metadata (loaded with ``weights_only=True``); by default the shipped
    network of two paintings (``python -m lecturekit.train_faststyle`` retrains it)."""
    path = config.data_file(WEIGHTS_FILE) if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no fast-style weights at '{path}'")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        # files saved before the upsampling was a choice were trained with nearest-neighbour upsampling
        net = TransformNet(ckpt["n_styles"], ckpt["width"], ckpt["blocks"], ckpt.get("upsample", "nearest"))
        net.load_state_dict(ckpt["state_dict"])
        meta = ckpt["meta"]
    except Exception as err:          # not a torch file, another torch file, or one that does not fit the network
        why = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}" if str(err).strip() else type(err).__name__
        raise ValueError(f"'{path}' is not a fast-style network: load takes a file written by faststyle.save "
                         f"(a torch file holding state_dict, n_styles, width, blocks and meta), or no path for the "
                         f"shipped one ({why})") from None
    return net.eval(), meta
