"""Famous public-domain paintings as style images, fetched once into the torch cache.

    img = paintings.load("starry_night", size=256)   # the painting online or cached,
                                                     # else a bundled photo (saying which)
    paintings.fetch("great_wave")                     # download only; returns the cached path
    python -m lecturekit download paintings           # fetch them all ahead of class

Files come from Wikimedia Commons (``Special:FilePath``, 1024 px wide) and are checked to be
readable images, and against the SHA-256 pinned for the painting where one is, before they are
kept. A server that sends nothing for ``LECTUREKIT_NET_TIMEOUT`` seconds (default 10) gives up. Offline, or when a fetch fails, ``load`` says why and
returns its fallback, one of the photos bundled with scikit-image / scikit-learn.
"""
from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from . import config, images, zoo

URL = "https://commons.wikimedia.org/wiki/Special:FilePath/{file}?width=1024"
MAX_BYTES = 30_000_000            # larger answers are not a 1024 px painting


@dataclass(frozen=True)
class Painting:
    title: str
    artist: str
    file: str                     # Wikimedia Commons file name
    fallback: str                 # bundled sample used when the painting cannot be had
    sha256: str | None = None     # of the bytes ``url`` serves; None: not pinned yet (any readable image is kept)

    @property
    def url(self) -> str:
        return URL.format(file=urllib.parse.quote(self.file))


#: ``sha256`` is None for every painting until someone with network access pins it: the SHA-1
#: that Commons publishes is of the original upload, not of the 1024 px rendering fetched here, so
#: it cannot be used. To pin: ``hashlib.sha256(paintings.path(name).read_bytes()).hexdigest()``
#: after a download checked by eye.
PAINTINGS = {
    "starry_night": Painting("The Starry Night", "Vincent van Gogh, 1889",
                             "Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg", "gravel", sha256=None),
    "great_wave": Painting("The Great Wave off Kanagawa", "Katsushika Hokusai, about 1831",
                           "Tsunami_by_hokusai_19th_century.jpg", "coffee", sha256=None),
    "composition_vii": Painting("Composition VII", "Wassily Kandinsky, 1913",
                                "Vassily_Kandinsky,_1913_-_Composition_7.jpg", "flower", sha256=None),
    "the_scream": Painting("The Scream", "Edvard Munch, 1893",
                           "Edvard_Munch,_1893,_The_Scream,_oil,_tempera_and_pastel_on_cardboard,"
                           "_National_Gallery_of_Norway.jpg", "rocket", sha256=None),
}


class PaintingUnavailable(RuntimeError):
    """The painting is not cached and cannot be downloaded now."""


def _painting(name: str) -> Painting:
    if name not in PAINTINGS:
        raise ValueError(f"unknown painting {name!r}. Valid: {', '.join(PAINTINGS)}")
    return PAINTINGS[name]


def cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "lecturekit" / "paintings"


def path(name: str) -> Path:
    """Where the painting is cached (whether or not it is there yet)."""
    return cache_dir() / f"{name}.jpg"


def fetch(name: str, timeout: float | None = None) -> Path:
    """Download the painting into the cache (no-op when cached) and return its path.
    Raises ``PaintingUnavailable`` with the reason when offline or the fetch fails, when the
    server sends nothing for ``timeout`` seconds (default ``config.net_timeout()``), or when the
    file does not match the painting's pinned SHA-256."""
    painting = _painting(name)
    timeout = config.net_timeout() if timeout is None else timeout
    target = path(name)
    if target.is_file():
        return target
    if config.offline():
        raise PaintingUnavailable(f"{painting.title} is not cached and LECTUREKIT_OFFLINE forbids the network")
    if not zoo.reachable(painting.url, timeout):
        raise PaintingUnavailable(f"{painting.title} is not cached and {urllib.parse.urlparse(painting.url).hostname} "
                                  "cannot be reached")
    request = urllib.request.Request(painting.url, headers={"User-Agent": "lecturekit (course notebooks)"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            data = answer.read(MAX_BYTES + 1)
    except OSError as err:                      # URLError, HTTPError and timeouts are all OSErrors
        if isinstance(err, TimeoutError) or "timed out" in str(err):
            err = f"no answer for {timeout:g} s (LECTUREKIT_NET_TIMEOUT)"
        raise PaintingUnavailable(f"downloading {painting.title} from {painting.url} failed: {err}") from None
    if len(data) > MAX_BYTES:
        raise PaintingUnavailable(f"{painting.url} sent more than {MAX_BYTES // 1_000_000} MB; not kept")
    if painting.sha256 is not None and hashlib.sha256(data).hexdigest() != painting.sha256:
        raise PaintingUnavailable(f"{painting.url} sent a file whose SHA-256 ({hashlib.sha256(data).hexdigest()[:12]}...) "
                                  f"does not match the one pinned for {painting.title}; not kept")
    try:
        images.load(data)
    except (images.ImageError, ValueError) as err:
        raise PaintingUnavailable(f"{painting.url} did not send a readable image ({err}); not kept") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    os.replace(partial, target)                 # never leave a half-written file under the real name
    return target


def load(name: str, size: int | None = None, fallback: str | None = None, verbose: bool = True) -> torch.Tensor:
    """The painting as a (1, 3, H, W) tensor (shorter side ``size`` and centre-cropped when given).
    When it cannot be had, prints why and returns the bundled photo ``fallback``
    (default: the painting's own fallback)."""
    painting = _painting(name)
    try:
        img = images.load(fetch(name))
        if verbose:
            print(f"Style image: {describe(name)}")
    except PaintingUnavailable as err:
        fallback = fallback or painting.fallback
        if verbose:
            print(f"Style image: the bundled photo '{fallback}' instead of {painting.title} ({err}).")
        img = images.load(fallback)
    return images.square(img, size) if size is not None else img


def describe(name: str) -> str:
    painting = _painting(name)
    return f"{painting.title}, {painting.artist} (public domain, Wikimedia Commons)"
