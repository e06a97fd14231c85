"""The embedded teaching model: a small CNN trained on Fashion-MNIST by this project.

It works offline on any machine: the weights (``data/teaching_fmnist.pt``) and a
sample of 500 test images (``data/fashion_sample.pt``) ship with the repository.
``python -m lecturekit.train_teaching`` reproduces the weights.

Layout (every layer has a name, so hooks and sliders can address it)::

    conv1 5x5, 32 filters  -> bn1 -> relu1 -> pool1   28x28 -> 14x14
    conv2 3x3, 64          -> bn2 -> relu2 -> pool2   14x14 ->  7x7
    conv3 3x3, 128         -> bn3 -> relu3             7x7
    conv4 3x3, 128         -> bn4 -> relu4             7x7
    gap (global average pooling) -> flatten -> fc (128 -> 10)

Global average pooling followed by one linear layer is what CAM needs.
"""
from __future__ import annotations

import gzip
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import config

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530          # Fashion-MNIST training-set statistics
INPUT_SIZE = 28
WEIGHTS_FILE = "teaching_fmnist.pt"
SAMPLE_FILE = "fashion_sample.pt"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")   # Debian package dataset-fashion-mnist


def _block(i: int, cin: int, cout: int, k: int):
    return [(f"conv{i}", nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)),
            (f"bn{i}", nn.BatchNorm2d(cout)),
            (f"relu{i}", nn.ReLU())]


class TeachingNet(nn.Sequential):
    """Four conv blocks, global average pooling, one linear layer (see module docstring)."""

    def __init__(self, num_classes: int = 10):
        layers = (_block(1, 1, 32, 5) + [("pool1", nn.MaxPool2d(2))]
                  + _block(2, 32, 64, 3) + [("pool2", nn.MaxPool2d(2))]
                  + _block(3, 64, 128, 3) + _block(4, 128, 128, 3)
                  + [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                     ("fc", nn.Linear(128, num_classes))])
        super().__init__(OrderedDict(layers))


def preprocess(img: torch.Tensor) -> torch.Tensor:
    """0..1 image (N, 3 or 1, H, W) -> normalised grayscale model input (N, 1, H, W)."""
    if img.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype, device=img.device)
        img = (img * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
    return (img - MEAN) / STD


def deprocess(x: torch.Tensor) -> torch.Tensor:
    """Model input (N, 1, H, W) -> 0..1 image (N, 3, H, W) for display."""
    return (x * STD + MEAN).clamp(0, 1).expand(-1, 3, -1, -1)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(split: str = "train", root: Path | None = None):
    """The full Fashion-MNIST split as (uint8 images (N, 28, 28), int64 labels (N,)).

    Reads the Debian package's files (``apt install dataset-fashion-mnist``) or, when they
    are missing and the network is allowed, torchvision's download into ``root``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    prefix = "train" if split == "train" else "t10k"
    if (DEBIAN_DIR / f"{prefix}-images-idx3-ubyte.gz").exists():
        images = _read_idx(DEBIAN_DIR / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(DEBIAN_DIR / f"{prefix}-labels-idx1-ubyte.gz")
        return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
    if config.offline():
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {DEBIAN_DIR} and the network is off (LECTUREKIT_OFFLINE). "
            "Install it with: sudo apt-get install dataset-fashion-mnist")
    from torchvision.datasets import FashionMNIST
    root = Path(root or Path(torch.hub.get_dir()).parent / "datasets")
    ds = FashionMNIST(str(root), train=(split == "train"), download=True)
    return ds.data.clone(), ds.targets.clone()


def load_sample():
    """The shipped test sample: (images 0..1 float (N, 1, 28, 28), labels (N,)), 50 per class."""
    blob = torch.load(config.data_file(SAMPLE_FILE), map_location="cpu", weights_only=True)
    return blob["images"].float().div(255).unsqueeze(1), blob["labels"].long()


def load_model() -> tuple[TeachingNet, dict]:
    """The trained teaching model (eval mode) and its metadata (test accuracy, training set-up).
    The network is built on the meta device and takes the loaded tensors as they are: no random
    initialisation, so the global random stream is left where it was."""
    blob = torch.load(config.data_file(WEIGHTS_FILE), map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = TeachingNet(len(CLASSES))
    model.load_state_dict(blob["state_dict"], assign=True)
    return model.eval(), dict(blob.get("meta", {}))
