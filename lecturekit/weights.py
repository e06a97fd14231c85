"""Where torchvision's ImageNet weights come from: the torch hub cache, a download with a progress
bar when online, the checksum in the published file name, and whether the network can be reached.

    weights.weights_path("alexnet")     # $TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth
    weights.download("alexnet")         # fetched once; offline, a clear message naming file and size
    weights.prefer("vgg16", "random filters")   # True, or says on screen what is used instead

Offline (``LECTUREKIT_OFFLINE=1`` or no network) nothing is probed and a missing file is a
``WeightsUnavailable`` that names the file, its size and ``python -m lecturekit download NAME``.
"""
from __future__ import annotations

import difflib
import hashlib
import socket
import urllib.parse
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, TypeVar

import torch

from . import config

T = TypeVar("T")


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are not on this machine and cannot be fetched now."""


def torchvision_names() -> list[str]:
    """Every torchvision classification model (``torchvision.models.list_models(module=torchvision.models)``)."""
    from torchvision import models
    return sorted(models.list_models(module=models))


def unknown_model(name, valid: list[str]) -> str:
    """The end of an "unknown model" message: the closest names, then what is valid."""
    close = difflib.get_close_matches(name, [*valid, *torchvision_names()], n=3) if isinstance(name, str) else []
    hint = f" Closest: {', '.join(close)}." if close else ""
    return (f"{hint} Valid names: {', '.join(valid)}, or any of the {len(torchvision_names())} torchvision "
            "classification models (torchvision.models.list_models(module=torchvision.models)).")


def check_imagenet(name: str, valid: list[str] = ()) -> None:
    """``name`` must be a torchvision classification model; ``valid`` are the names to suggest first."""
    if not (isinstance(name, str) and name in torchvision_names()):
        raise ValueError(f"{name!r} is not a torchvision ImageNet model.{unknown_model(name, list(valid))}")


def published(name: str):
    """torchvision's default weights of ``name`` (``get_model_weights(name).DEFAULT``): URL, transforms, meta."""
    from torchvision.models import get_model_weights
    return get_model_weights(name).DEFAULT


def fetch_command(name: str) -> str:
    return f"python -m lecturekit download {name}"


def checkpoint_dir() -> Path:
    """Where torch keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(name: str) -> Path:
    """The cache file of an ImageNet model's weights (whether or not it exists yet)."""
    check_imagenet(name)
    return checkpoint_dir() / Path(urllib.parse.urlparse(published(name).url).path).name


def weights_size_mb(name: str) -> float:
    check_imagenet(name)
    return float(published(name).meta.get("_file_size", float("nan")))


def is_cached(name: str) -> bool:
    return weights_path(name).is_file()


def obtainable(name: str) -> bool:
    """Are ``name``'s weights cached, or can they be downloaded now? (never probes when offline)"""
    return is_cached(name) or reachable(published(name).url)


def prefer(name: str, instead: str) -> bool:
    """True when ImageNet ``name`` can be had; otherwise say on screen that ``instead`` is used
    and how to fetch ``name``, and return False."""
    if obtainable(name):
        return True
    print(f"Using {instead}: ImageNet {name} weights are not here (online, run: {fetch_command(name)})")
    return False


def or_else(load: Callable[[], T], instead: str, fallback: Callable[[], T], imagenet: str | None = None) -> T:
    """``load()``, or where its weights cannot be had, ``fallback()``, saying on screen that ``instead``
    is used and why. With ``imagenet`` (a torchvision name) nothing is tried when those weights are
    neither cached nor downloadable (``prefer``); a download that stalls or fails falls back too.
    The one place a loader falls back (the chosen model, the style features, the transformer)."""
    if imagenet is None or prefer(imagenet, instead):
        try:
            return load()
        except WeightsUnavailable as err:
            print(f"Using {instead}: {str(err).splitlines()[0]}")
    return fallback()


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


def unavailable(name: str, why: str) -> WeightsUnavailable:
    """The error for weights that are not here: why, the file and its size, how to fetch it."""
    return WeightsUnavailable(
        f"ImageNet weights for {name} are not available: {why}\n"
        f"  file: {weights_path(name)} ({weights_size_mb(name):.0f} MB)\n"
        f"  fetch it on a machine with internet: {fetch_command(name)}\n"
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
                                     f"  Delete it and fetch it again: {fetch_command(name)}")
        if not checksum_ok(name):
            message = (f"{path} does not match the published checksum of {name}'s weights (a damaged download, "
                       f"or a stand-in): its predictions would mean nothing")
            if not config.standins():
                raise WeightsUnavailable(f"{message}.\n  Delete it and fetch it again: {fetch_command(name)}\n"
                                         "  (test stand-ins with random values are loaded with LECTUREKIT_STANDINS=1)")
            warnings.warn(f"{message}; loaded because LECTUREKIT_STANDINS=1", stacklevel=3)
        return path
    url = published(name).url
    if config.offline():
        raise unavailable(name, "the file is not cached and LECTUREKIT_OFFLINE forbids the network.")
    if not reachable(url):
        raise unavailable(name, "the file is not cached and the download server cannot be reached.")
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name.rsplit(".", 1)[0]
    hash_prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None
    try:
        with network_timeout():
            torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=progress)
    except (OSError, RuntimeError) as err:
        why = f"no answer for {config.net_timeout():g} s (LECTUREKIT_NET_TIMEOUT)" \
            if isinstance(err, TimeoutError) or "timed out" in str(err) else str(err)
        raise unavailable(name, f"the download failed ({why}).") from None
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
