"""Models for the notebooks, with their class names and pre-/de-processing.

    bundle = zoo.load("auto")        # ImageNet SqueezeNet if its weights are here (or online), else "teaching"
    bundle = zoo.load("alexnet")     # any name in zoo.NAMES
    x = bundle.preprocess(img)       # 0..1 image -> model input
    bundle.model(x)                  # eval mode, parameters frozen, no in-place ReLU

ImageNet weights come through torchvision's weights API and live in the standard torch
hub cache (``$TORCH_HOME/hub/checkpoints``). They are downloaded with a progress bar when
online; offline (``LECTUREKIT_OFFLINE=1`` or no network) a missing file is a clear
message naming the file, its size and ``python -m lecturekit download NAME``.
"""
from __future__ import annotations

import hashlib
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

from . import config, teaching

#: ImageNet models the notebooks use, with a short description.
IMAGENET = {
    "squeezenet1_1": "SqueezeNet 1.1, ImageNet (1.2 M parameters)",
    "alexnet": "AlexNet, ImageNet (61 M parameters, conv1 is 64x3x11x11)",
    "vgg16": "VGG-16, ImageNet (138 M parameters)",
    "resnet18": "ResNet-18, ImageNet (11.7 M parameters)",
    "vit_b_16": "ViT-B/16, ImageNet (86 M parameters, 14x14 patches of 16 px)",
}
NAMES = ["auto", "teaching", *IMAGENET]

#: Per model: one named layer per stage, shallow to deep (what layer sliders offer), and the
#: penultimate layer whose (spatially averaged) output is "the feature vector" of an image.
STAGES = {
    "teaching": ["relu1", "relu2", "relu3", "relu4"],
    "squeezenet1_1": ["features.1", "features.4", "features.7", "features.10", "features.12"],
    "alexnet": ["features.1", "features.4", "features.7", "features.9", "features.11"],
    "vgg16": ["features.3", "features.8", "features.15", "features.22", "features.29"],
    "resnet18": ["relu", "layer1", "layer2", "layer3", "layer4"],
    "vit_b_16": [f"encoder.layers.encoder_layer_{i}" for i in (2, 5, 8, 11)],
    "vit_tiny": ["blocks.0", "blocks.1", "blocks.2", "blocks.3"],
}
FEATURE_LAYER = {"teaching": "gap", "squeezenet1_1": "features", "alexnet": "classifier.5",
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
        return list(STAGES[self.name])

    @property
    def blank(self) -> float:
        """The model-input value that means "nothing here", for occluding and deleting pixels:
        black for Fashion-MNIST (its background), the data mean (0 after normalisation) for ImageNet."""
        if self.name == "teaching":
            return float(self.normalise(torch.zeros(1, 1, 1, 1, dtype=torch.float64)))   # exact in any dtype
        return 0.0

    @property
    def verified(self) -> bool:
        """Are claims about this model's behaviour checked by this project's tests? True for the models
        trained here; False for ImageNet weights (the tests use stand-ins). See ``lecturekit.claims``."""
        return self.name in ("teaching", "vit_tiny")

    @property
    def feature_layer(self) -> str:
        """The penultimate layer: its output, averaged over space, is the image's feature vector."""
        return FEATURE_LAYER[self.name]

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


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"Unknown model {name!r}. Valid names: {', '.join(NAMES)}")


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
    if name not in IMAGENET:
        raise ValueError(f"{name!r} is not an ImageNet model of the zoo. Valid: {', '.join(IMAGENET)}")


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
    preprocess, deprocess = normalizer()
    size = int(getattr(weights.transforms(), "crop_size", [224])[0])
    return Bundle(name, prepare(model), list(weights.meta["categories"]), preprocess, deprocess, size,
                  f"{IMAGENET[name]}; torchvision weights {weights} ({check})", path,
                  {"checksum_ok": ok, **{k: v for k, v in weights.meta.items() if not k.startswith("_d")}})


def load(name: str | None = None, device: torch.device | str | None = None) -> Bundle:
    """The model called ``name`` (default: ``LECTUREKIT_MODEL`` or ``auto``) as a ``Bundle``.

    ``auto`` picks ImageNet SqueezeNet 1.1 when its weights are cached or can be downloaded,
    and the embedded teaching model otherwise, saying which on screen.
    """
    __tracebackhide__ = True
    name = config.model_name() if name is None else name
    _check_name(name)
    if name == "auto":
        target = "squeezenet1_1"
        why = None
        if obtainable(target):
            try:
                bundle = _load_imagenet(target)
            except WeightsUnavailable as err:       # a stalled or failed download, a damaged file
                why = str(err).splitlines()[0]
        else:
            why = "LECTUREKIT_OFFLINE is set" if config.offline() else "the network cannot be reached"
            why = f"they are not in {weights_path(target)} and {why}"
        if why is not None:
            bundle = _load_teaching()
            print(f"Using the embedded teaching model: ImageNet SqueezeNet weights cannot be used ({why}). "
                  f"Online, run: {_fetch_command(target)}")
    elif name == "teaching":
        bundle = _load_teaching()
    else:
        bundle = _load_imagenet(name)
    bundle.model.to(device or config.device())
    return bundle


def available(name: str) -> bool:
    """Can ``load(name)`` succeed right now without a download? (always true for ``teaching``)."""
    _check_name(name)
    if name in ("teaching", "auto"):
        return True
    return is_cached(name)
