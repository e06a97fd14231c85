"""Famous public-domain paintings as style images, fetched once, used offline.

    img = paintings.load("starry_night", size=256)   # prints which copy it uses
    paintings.fetch("great_wave")                     # the path of a copy (downloading if it must)
    python -m lecturekit download paintings           # get them all ahead of class

Three sources, in this order:

1. Wikimedia Commons (``Special:FilePath``, 1024 px wide), downloaded once into the torch cache
   (``$TORCH_HOME/hub/lecturekit/paintings``), checked to be a readable image (and against the
   SHA-256 pinned for the painting where one is). A server that sends nothing for
   ``LECTUREKIT_NET_TIMEOUT`` seconds (default 10) gives up; ``LECTUREKIT_OFFLINE=1`` skips it.
2. Debian's packages, for The Starry Night (``opencv-doc``, 752 x 600) and The Scream
   (``darknet``, 352 x 448): ``python -m lecturekit download`` takes them out of the packages at
   install time (see ``lecturekit.debian``) into ``~/.cache/lecturekit`` (``$LECTUREKIT_CACHE``),
   and every use checks them against their pinned SHA-256.
3. A photo bundled with scikit-image / scikit-learn, with ``load`` saying why.
"""
from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from . import config, debian, images, weights

URL = "https://commons.wikimedia.org/wiki/Special:FilePath/{file}?width=1024"
MAX_BYTES = 30_000_000            # larger answers are not a 1024 px painting


@dataclass(frozen=True)
class Painting:
    title: str
    artist: str
    file: str                     # Wikimedia Commons file name
    fallback: str                 # bundled sample used when the painting cannot be had
    sha256: str | None = None     # of the bytes ``url`` serves; None: not pinned yet (any readable image is kept)
    debian: debian.DebianFile | None = None   # a copy inside a Debian package, used when Wikimedia's cannot be had
    debian_frame: int = 0         # pixels of picture frame around the Debian copy, cut off by ``load``

    @property
    def url(self) -> str:
        return URL.format(file=urllib.parse.quote(self.file))


#: ``sha256`` is None for every painting until someone with network access pins it: the SHA-1
#: that Commons publishes is of the original upload, not of the 1024 px rendering fetched here, so
#: it cannot be used. To pin: ``hashlib.sha256(paintings.path(name).read_bytes()).hexdigest()``
#: after a download checked by eye. The Debian copies are pinned: SHA-256 of the files in
#: opencv-doc 4.6.0+dfsg-12 and darknet 0.0.0+git20180914.61c9d02e-2+b4 (Debian 12).
PAINTINGS = {
    "starry_night": Painting("The Starry Night", "Vincent van Gogh, 1889",
                             "Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg", "gravel", sha256=None,
                             debian=debian.DebianFile(
                                 "opencv-doc", "usr/share/doc/opencv-doc/examples/data/starry_night.jpg",
                                 "accda7a19a90f22a4a922fdc8c230167d7abf5f80882171e2cee125c5f12481d"),
                             debian_frame=22),          # a black frame and the bare canvas edge
    "great_wave": Painting("The Great Wave off Kanagawa", "Katsushika Hokusai, about 1831",
                           "Tsunami_by_hokusai_19th_century.jpg", "coffee", sha256=None),
    "composition_vii": Painting("Composition VII", "Wassily Kandinsky, 1913",
                                "Vassily_Kandinsky,_1913_-_Composition_7.jpg", "flower", sha256=None),
    "the_scream": Painting("The Scream", "Edvard Munch, 1893",
                           "Edvard_Munch,_1893,_The_Scream,_oil,_tempera_and_pastel_on_cardboard,"
                           "_National_Gallery_of_Norway.jpg", "rocket", sha256=None,
                           debian=debian.DebianFile(
                               "darknet", "usr/share/darknet/data/scream.jpg",
                               "dcab7bae866fbb396e01ab27a9c8d2d40b3e80911dafb05a5fa18d1bac6b8d17")),
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


REFETCH = "python -m lecturekit download paintings"


def from_wikimedia(name: str, timeout: float | None = None) -> Path:
    """Wikimedia's copy: downloaded into the torch cache (no-op when cached); its path.
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
    if not weights.reachable(painting.url, timeout):
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


def from_debian(name: str) -> Path:
    """The copy taken out of a Debian package at install time, checked against its pinned SHA-256;
    its path. Raises ``PaintingUnavailable`` saying why (none, not taken out, damaged) and how to get it."""
    painting = _painting(name)
    copy = painting.debian
    if copy is None:
        raise PaintingUnavailable(f"no Debian package carries {painting.title}")
    try:
        return copy.checked(painting.title, REFETCH)
    except debian.Unusable as err:
        raise PaintingUnavailable(str(err)) from None


def fetch(name: str, timeout: float | None = None) -> Path:
    """The path of the best copy that can be had: Wikimedia's (cached, or downloaded now), else
    Debian's (taken out at install time). Raises ``PaintingUnavailable`` with the reasons for both."""
    try:
        return from_wikimedia(name, timeout)
    except PaintingUnavailable as wikimedia:
        if _painting(name).debian is None:
            raise
        try:
            return from_debian(name)
        except PaintingUnavailable as err:
            raise PaintingUnavailable(f"{wikimedia}; {err}") from None


def load(name: str, size: int | None = None, fallback: str | None = None, verbose: bool = True) -> torch.Tensor:
    """The painting as a (1, 3, H, W) tensor (shorter side ``size`` and centre-cropped when given),
    without the frame a copy may have. Prints which copy it uses; when none can be had, prints why
    and returns the bundled photo ``fallback`` (default: the painting's own fallback)."""
    painting = _painting(name)
    try:
        where = fetch(name)
        img = images.load(where)
        frame = painting.debian_frame if painting.debian is not None and where == painting.debian.path else 0
        img = img[..., frame:img.shape[-2] - frame, frame:img.shape[-1] - frame]
        if verbose:
            print(f"Style image: {describe(name, where)}, {img.shape[-1]}x{img.shape[-2]}.")
    except PaintingUnavailable as err:
        fallback = fallback or painting.fallback
        if verbose:
            print(f"Style image: the bundled photo '{fallback}' instead of {painting.title} ({err}).")
        img = images.load(fallback)
    return images.square(img, size) if size is not None else img


def describe(name: str, where: Path | None = None) -> str:
    """Title, artist and source of the copy at ``where`` (default: Wikimedia's)."""
    painting = _painting(name)
    source = "Wikimedia Commons"
    if where is not None and painting.debian is not None and Path(where) == painting.debian.path:
        source = f"the copy in Debian's {painting.debian.package} package"
    return f"{painting.title}, {painting.artist} (public domain; {source})"
