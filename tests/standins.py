"""Stand-in ImageNet weight files: the real architectures with random values, saved under
the real file names in a torch cache, so that the ImageNet code path runs offline.

    python tests/standins.py DIR [names]      # then: TORCH_HOME=DIR jupyter ...
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torchvision.models import get_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lecturekit import weights, zoo  # noqa: E402


def write_standins(torch_home: Path, names=tuple(zoo.IMAGENET)) -> list[Path]:
    """Write random-valued weights for ``names`` into ``torch_home``/hub/checkpoints (the same values
    on every run; the caller's global random state is left as it was)."""
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    try:
        paths = []
        for name in names:
            with torch.random.fork_rng():                # torchvision initialises from the global RNG
                torch.manual_seed(0)
                model = get_model(name, weights=None)
            path = weights.weights_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), path)
            paths.append(path)
        return paths
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in write_standins(Path(sys.argv[1]), sys.argv[2:] or tuple(zoo.IMAGENET)):
        print(p)
