"""Train the small vision transformer on Fashion-MNIST and write it to ``data/``.

    python -m lecturekit.train_vit                 # about 14 minutes on 2 CPU cores
    python -m lecturekit.train_vit --epochs 1 --out /tmp/try

Same data and augmentation as the teaching CNN (``lecturekit.train_teaching``): 4x4-pixel
patches, 4 blocks of 4 heads, width 64; AdamW with a one-cycle schedule. Saves
``vit_fmnist.pt`` (state dict, architecture and metadata; loaded with ``weights_only=True``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from . import config
from .teaching import load_fashion_mnist
from .train_teaching import accuracy, fit
from .vit import WEIGHTS_FILE, TinyViT

ARCH = {"size": 28, "patch": 4, "channels": 1, "dim": 64, "depth": 4, "heads": 4, "mlp": 128, "num_classes": 10}


def train(epochs: int = 20, batch: int = 128, lr: float = 2e-3, seed: int = 0):
    gen = config.seed(seed)
    xtr, ytr = load_fashion_mnist("train")
    xte, yte = load_fashion_mnist("test")
    model = TinyViT(**ARCH)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * (len(xtr) // batch),
                                                pct_start=0.15)
    seconds = fit(model, opt, sched, (xtr, ytr, xte, yte), epochs, batch, gen, label_smoothing=0.1, clip=1.0)
    meta = {"test_accuracy": accuracy(model, xte, yte), "epochs": epochs, "batch": batch, "max_lr": lr, "seed": seed,
            "train_seconds": round(seconds, 1), "torch": str(torch.__version__),
            "dataset": "Fashion-MNIST (Zalando Research, MIT licence)"}
    return model.eval(), meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=config.DATA_DIR)
    args = parser.parse_args(argv)
    model, meta = train(args.epochs, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "config": ARCH, "meta": meta}, args.out / WEIGHTS_FILE)
    print(f"test accuracy {meta['test_accuracy']:.4f} after {meta['train_seconds']} s -> {args.out / WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
