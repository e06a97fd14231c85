"""One place for the switches every notebook reads.

Environment variables (all optional):

``LECTUREKIT_QUICK=1``     quick mode: small sizes and few iterations (CI uses it).
``LECTUREKIT_OFFLINE=1``   never touch the network; missing weights give a clear message.
``LECTUREKIT_MODEL=name``  the model the notebooks load (default ``auto``, see ``lecturekit.zoo``).
``LECTUREKIT_DEVICE=cpu``  force a device (default: cuda, then mps, then cpu).
``LECTUREKIT_DATA=dir``    a folder to read the shipped weights and samples from instead.
``LECTUREKIT_CACHE=dir``   where paintings and photos taken out of Debian's packages are kept
                           (default ``~/.cache/lecturekit``).
``LECTUREKIT_STANDINS=1``  load cached ImageNet files that do not match their published checksum
                           (the tests' stand-ins, random values under the real names) with a warning;
                           without it such a file is an error.
``LECTUREKIT_NET_TIMEOUT=10`` seconds without progress before a download or a connection gives
                           up (default 10): a stalled server then gives the fallback or a clear
                           message instead of a hang.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on"}

#: Where lecturekit's source lives; installs from git use it too.
REPOSITORY = "https://github.com/cs231n-companion/visualizing-understanding"


def _find_data() -> tuple[Path, str]:
    """The folder with the shipped weights and samples, and where it comes from: ``LECTUREKIT_DATA``,
    the installed package (a wheel puts ``data/`` at ``lecturekit/data``), or a checkout's ``data/``."""
    if os.environ.get("LECTUREKIT_DATA"):
        return Path(os.environ["LECTUREKIT_DATA"]).expanduser(), "LECTUREKIT_DATA"
    here = Path(__file__).resolve().parent
    if (here / "data").is_dir():
        return here / "data", "the installed package"
    return here.parent / "data", "the repository checkout"


#: The folder with the shipped weights and samples (``DATA_SOURCE`` says where it comes from).
DATA_DIR, DATA_SOURCE = _find_data()


def data_file(name: str) -> Path:
    """The path of a shipped file (weights or samples); a clear error naming the fix when it is missing."""
    path = DATA_DIR / name
    if not path.is_file():
        fix = ("point LECTUREKIT_DATA at a folder that holds it, or unset it" if DATA_SOURCE == "LECTUREKIT_DATA"
               else "restore it with: git checkout -- data/" if DATA_SOURCE == "the repository checkout"
               else f"reinstall lecturekit: pip install --force-reinstall --no-deps \"git+{REPOSITORY}\"")
        raise FileNotFoundError(f"The shipped file {name} is missing from {DATA_DIR} (data from "
                                f"{DATA_SOURCE}). It comes with lecturekit; {fix}.")
    return path


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def quick() -> bool:
    """True in quick mode (``LECTUREKIT_QUICK=1``)."""
    return _flag("LECTUREKIT_QUICK")


def pick(full, quick_value):
    """Every expensive number goes through here: ``steps = pick(200, 10)``."""
    return quick_value if quick() else full


def standins() -> bool:
    """True when stand-in weight files may load (``LECTUREKIT_STANDINS=1``, the tests)."""
    return _flag("LECTUREKIT_STANDINS")


def offline() -> bool:
    """True when the network must not be used (``LECTUREKIT_OFFLINE=1``)."""
    return _flag("LECTUREKIT_OFFLINE")


#: Seconds without progress before a network operation gives up (``LECTUREKIT_NET_TIMEOUT``).
NET_TIMEOUT_S = 10.0


def net_timeout() -> float:
    """``LECTUREKIT_NET_TIMEOUT`` in seconds (default 10): how long a connection or a download may
    make no progress before it gives up."""
    raw = os.environ.get("LECTUREKIT_NET_TIMEOUT", "").strip()
    if not raw:
        return NET_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise ValueError(f"LECTUREKIT_NET_TIMEOUT={raw!r} is not a usable timeout; give a positive number of "
                         f"seconds (default {NET_TIMEOUT_S:g})")
    return value


def model_name() -> str:
    """The model the notebooks use, chosen in one place (``LECTUREKIT_MODEL``, default ``auto``)."""
    return os.environ.get("LECTUREKIT_MODEL", "auto").strip() or "auto"


def device() -> torch.device:
    """``LECTUREKIT_DEVICE`` if set, else cuda, then Apple's mps, then cpu."""
    forced = os.environ.get("LECTUREKIT_DEVICE", "").strip()
    if forced:
        try:
            return torch.device(forced)
        except RuntimeError as err:
            raise ValueError(f"LECTUREKIT_DEVICE={forced!r} is not a device; use cpu, cuda or mps") from err
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(n: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a seeded ``torch.Generator`` for explicit use."""
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)
    return torch.Generator().manual_seed(n)


def summary() -> str:
    """One line: mode, network policy, device, model choice."""
    mode = "quick" if quick() else "full"
    net = "offline" if offline() else "online allowed"
    return f"mode: {mode} | network: {net} | device: {device()} | model: {model_name()}"


def data_summary() -> str:
    """One line: where the shipped weights and samples are read from."""
    return f"shipped data: {DATA_DIR} (from {DATA_SOURCE})"
