"""reveal.js and MathJax for the slides, from the npm registry: each package is fetched once with
``npm pack`` into ``~/.cache/lecturekit/npm`` (``LECTUREKIT_CACHE`` moves it) and its files are read
straight out of the tarball, so a deck can carry them inline and needs no network when shown.

    python -m lecturekit download slides      # fetch them now (needs npm); the slides command also does
"""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

from . import config, debian

#: The npm packages a deck inlines, at the versions it is tested with.
PACKAGES = {"reveal.js": "5.2.1", "mathjax": "3.2.2"}


class Unavailable(RuntimeError):
    """A package is neither cached nor fetchable; the message says what to install."""


def folder() -> Path:
    return debian.cache_dir() / "npm"


def tarball(name: str) -> Path:
    """Where ``npm pack`` leaves the package (``reveal.js-5.2.1.tgz``)."""
    return folder() / f"{name}-{PACKAGES[name]}.tgz"


def _how() -> str:
    specs = " ".join(f"{n}@{v}" for n, v in PACKAGES.items())
    return (f"run `python -m lecturekit download slides` with npm installed (Debian: apt-get install npm; or "
            f"Node.js from nodejs.org), or put the tarballs of `npm pack {specs}` into {folder()}")


def fetch(names=None) -> list[Path]:
    """The tarballs of ``names`` (default: all), fetched with ``npm pack`` where missing."""
    paths = [tarball(n) for n in (names or PACKAGES)]
    missing = [(n, p) for n, p in zip(names or PACKAGES, paths) if not p.is_file()]
    if not missing:
        return paths
    specs = [f"{n}@{PACKAGES[n]}" for n, _ in missing]
    if config.offline():
        raise Unavailable(f"the slides need {', '.join(specs)} from the npm registry and LECTUREKIT_OFFLINE=1 "
                          f"forbids fetching them: {_how()}")
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable(f"the slides need {', '.join(specs)} from the npm registry and npm is not installed: "
                          f"{_how()}")
    folder().mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "pack", *specs, "--pack-destination", str(folder())], capture_output=True, text=True,
                          timeout=max(120.0, 10 * config.net_timeout()))
    still = [str(p) for _, p in missing if not p.is_file()]
    if done.returncode != 0 or still:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise Unavailable(f"npm pack {' '.join(specs)} failed ({why}): {_how()}")
    return paths


def read(name: str, member: str) -> str:
    """The text of one file of a package (``read("reveal.js", "dist/reveal.js")``), fetched if needed."""
    path = fetch([name])[0]
    try:
        with tarfile.open(path) as tar:
            return tar.extractfile(f"package/{member}").read().decode("utf-8")
    except (tarfile.TarError, KeyError, AttributeError, OSError) as err:
        raise Unavailable(f"{path} is damaged or lacks {member} ({err}): delete it and {_how()}") from None
