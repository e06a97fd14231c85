"""Gram matrices, neural texture synthesis and style transfer (Gatys et al. 2015, 2016).

    net = style.feature_net()                                    # VGG-16 features, truncated
    result = style.transfer(net, content_img, style_img, steps=200)
    texture = style.synthesize(net, style_img, size=128, steps=200)

The feature network is ImageNet VGG-16 when its weights are here (or can be downloaded), and
otherwise the same architecture with fixed random weights: random convolutional filters are
known to keep enough texture statistics for synthesis (Ustyuzhaninov et al. 2017), and
``benchmarks/style.py`` measures this choice against the teaching model. Which one is in use
is printed and stored in ``net.description``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from . import ascent, config, hooks, zoo

#: VGG-16 ``features`` indices by their usual names.
VGG16_NAMES = ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
               "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
               "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "pool3",
               "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "pool4",
               "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "pool5"]
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
CONTENT_LAYER = "relu3_2"


@dataclass
class FeatureNet:
    model: nn.Sequential                               # named VGG layers, up to the last one needed
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    description: str
    pretrained: bool


def feature_net(source: str = "auto", last: str = "relu4_1", seed: int = 0) -> FeatureNet:
    """VGG-16 ``features`` up to layer ``last``, with the layers named ``conv1_1`` ... ``relu5_3``.

    ``source``: ``"vgg16"`` (ImageNet weights; downloaded when online), ``"vgg16-random"``
    (the architecture with seeded random weights, always available) or ``"auto"`` (the first
    when its weights are cached or downloadable, else the second, saying so).
    """
    if source not in ("auto", "vgg16", "vgg16-random"):
        raise ValueError(f"source must be 'auto', 'vgg16' or 'vgg16-random', not {source!r}")
    if last not in VGG16_NAMES:
        raise ValueError(f"unknown VGG-16 layer {last!r}. Valid: {', '.join(VGG16_NAMES)}")
    if source == "auto":
        source = "vgg16" if zoo.obtainable("vgg16") else "vgg16-random"
        if source == "vgg16-random":
            print("Style features: VGG-16 with fixed random weights (ImageNet VGG-16 weights are not here; "
                  "online, run: python -m lecturekit download vgg16)")
    if source == "vgg16":
        bundle = zoo.load("vgg16", device="cpu")
        features, description, pretrained = bundle.model.features, "VGG-16 features, ImageNet weights", True
    else:
        from torchvision.models import get_model
        torch.manual_seed(seed)
        features = get_model("vgg16", weights=None).features
        description, pretrained = f"VGG-16 features with fixed random weights (seed {seed})", False
    keep = VGG16_NAMES.index(last) + 1
    model = nn.Sequential(OrderedDict(zip(VGG16_NAMES[:keep], list(features.children())[:keep])))
    preprocess, _ = zoo.normalizer()
    return FeatureNet(zoo.prepare(model).to(config.device()), preprocess, description, pretrained)


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of a (N, C, H, W) feature map: G = F F^T / (H W), shape (N, C, C).
    Spatial layout is averaged away; dividing by H W makes it independent of the image size."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def gram_match(layer: str, target: torch.Tensor) -> ascent.Objective:
    """Minus the relative squared Frobenius distance between ``layer``'s Gram matrix and ``target``."""
    target = target.detach()

    def fn(a, _):
        g = gram(a[layer])
        if g.shape[1:] != target.shape[1:]:
            raise ValueError(f"target Gram {tuple(target.shape)} does not match {layer}'s {tuple(g.shape)}")
        return -(g - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1).clamp_min(1e-12)
    return ascent.Objective(fn, [layer], name=f"gram {layer}")


def style_targets(net: FeatureNet, style_imgs: Sequence[torch.Tensor], layers: Sequence[str],
                  mix: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Gram targets of one style image, or a weighted mix of several (weights ``mix``)."""
    mix = [1.0] * len(style_imgs) if mix is None else list(mix)
    if len(mix) != len(style_imgs):
        raise ValueError(f"{len(style_imgs)} style images but {len(mix)} mix weights")
    total = sum(mix)
    targets: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for img, w in zip(style_imgs, mix):
            acts = hooks.activations(net.model, net.preprocess(img.to(config.device())), list(layers))
            for name in layers:
                targets[name] = targets.get(name, 0) + (w / total) * gram(acts[name])
    return targets


def style_objective(net: FeatureNet, style_imgs, layers: Sequence[str] = STYLE_LAYERS, mix=None,
                    content_img: torch.Tensor | None = None, content_layer: str = CONTENT_LAYER,
                    content_weight: float = 1.0, style_weight: float = 1.0) -> ascent.Objective:
    """content_weight x (feature match at ``content_layer``) + style_weight x mean Gram match over ``layers``."""
    if isinstance(style_imgs, torch.Tensor):
        style_imgs = [style_imgs]
    targets = style_targets(net, style_imgs, layers, mix)
    objective = None
    for name in layers:
        term = (style_weight / len(layers)) * gram_match(name, targets[name])
        objective = term if objective is None else objective + term
    if content_img is not None and content_weight > 0:
        with torch.no_grad():
            phi = hooks.activations(net.model, net.preprocess(content_img.to(config.device())), content_layer)
        objective = objective + content_weight * ascent.feature_match(content_layer, phi[content_layer])
    return objective


def transfer(net: FeatureNet, content: torch.Tensor, style_imgs, steps: int = 200, content_weight: float = 1.0,
             style_weight: float = 10.0, tv_weight: float = 1e-3, optimizer: str = "lbfgs", lr: float | None = None,
             layers: Sequence[str] = STYLE_LAYERS, content_layer: str = CONTENT_LAYER, mix=None,
             init: str = "content", seed: int = 0, progress: bool = True) -> ascent.Result:
    """Neural style transfer: start from the content image (or noise) and minimise
    content + style + total-variation losses. Returns the ascent ``Result`` (its history is minus the loss)."""
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', not {init!r}")
    objective = style_objective(net, style_imgs, layers, mix, content, content_layer, content_weight, style_weight)
    if init == "content":
        start = content
    else:
        start = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed))
    lr = lr if lr is not None else (1.0 if optimizer == "lbfgs" else 0.02)
    return _finish(ascent.ascend(net.model, objective, ascent.Pixels(start), net.preprocess, steps=steps, lr=lr,
                                 optimizer=optimizer, penalties=[ascent.tv(tv_weight)] if tv_weight else [],
                                 post=_post(optimizer), seed=seed, progress=progress))


def _post(optimizer: str) -> list:
    # L-BFGS keeps a model of the curvature; clipping between its steps breaks it, so it runs
    # unconstrained and the result is clipped once at the end
    return [] if optimizer == "lbfgs" else [ascent.clamp()]


def _finish(result: ascent.Result) -> ascent.Result:
    result.image = result.image.clamp(0, 1)
    return result


def synthesize(net: FeatureNet, exemplar: torch.Tensor, size: int, steps: int = 200,
               layers: Sequence[str] = STYLE_LAYERS, optimizer: str = "lbfgs", seed: int = 0,
               progress: bool = True) -> ascent.Result:
    """Neural texture synthesis: match the Gram matrices of ``layers`` starting from noise."""
    objective = style_objective(net, [exemplar], layers)
    start = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return _finish(ascent.ascend(net.model, objective, ascent.Pixels(start), net.preprocess, steps=steps,
                                 lr=1.0 if optimizer == "lbfgs" else 0.02, optimizer=optimizer,
                                 post=_post(optimizer), seed=seed, progress=progress))
