"""Train the embedded teaching model on Fashion-MNIST and write it to ``data/``.

    python -m lecturekit.train_teaching            # about 8 minutes on 2 CPU cores
    python -m lecturekit.train_teaching --epochs 2 --out /tmp/try

Reads the Debian package ``dataset-fashion-mnist`` (or downloads with torchvision when
online), trains with SGD + one-cycle learning rate, random flips and shifts, and saves
``teaching_fmnist.pt`` (state dict + metadata) and ``fashion_sample.pt`` (50 test images
per class, uint8) so that every notebook works offline.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import config
from .teaching import CLASSES, MEAN, STD, SAMPLE_FILE, WEIGHTS_FILE, TeachingNet, load_fashion_mnist


def augment(x: torch.Tensor, gen: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random horizontal flip and a random integer shift of up to ``shift`` pixels, per image."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (shift,) * 4)
    dx, dy = (torch.randint(0, 2 * shift + 1, (2, n), generator=gen))
    rows = (dy.view(-1, 1) + torch.arange(x.shape[2])).view(n, 1, -1, 1)
    cols = (dx.view(-1, 1) + torch.arange(x.shape[3])).view(n, 1, 1, -1)
    channels = torch.arange(x.shape[1]).view(1, -1, 1, 1)
    return padded[torch.arange(n).view(-1, 1, 1, 1), channels, rows, cols]


@torch.no_grad()
def accuracy(model, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = (images[i:i + batch].float().div(255).unsqueeze(1) - MEAN) / STD
        correct += (model(x.contiguous(memory_format=torch.channels_last)).argmax(1) == labels[i:i + batch]).sum().item()
    return correct / len(images)


def balanced_sample(labels: torch.Tensor, per_class: int, gen: torch.Generator) -> torch.Tensor:
    idx = [torch.nonzero(labels == c).flatten() for c in range(len(CLASSES))]
    idx = [i[torch.randperm(len(i), generator=gen)[:per_class]] for i in idx]
    return torch.stack(idx, 1).flatten()       # interleaved: one of each class, repeated


def fit(model, opt, sched, data, epochs: int, batch: int, gen: torch.Generator, label_smoothing: float = 0.0,
        clip: float | None = None, channels_last: bool = False) -> float:
    """The training loop shared by the project's Fashion-MNIST models: ``epochs`` passes over the
    shuffled training set (``data`` = train images, train labels, test images, test labels; uint8
    images), random flips and shifts, cross-entropy, one optimiser and scheduler step per batch,
    test accuracy after each epoch on the progress bar. Returns the seconds it took."""
    xtr, ytr, xte, yte = data
    layout = torch.channels_last if channels_last else torch.contiguous_format
    start = time.time()
    bar = tqdm(total=epochs * (len(xtr) // batch), desc="training")
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(len(xtr) // batch):
            j = order[i * batch:(i + 1) * batch]
            x = augment(xtr[j].float().div(255).unsqueeze(1), gen)
            x = ((x - MEAN) / STD).contiguous(memory_format=layout)
            loss = F.cross_entropy(model(x), ytr[j], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            bar.update()
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", test_acc=f"{accuracy(model, xte, yte):.4f}")
    bar.close()
    return time.time() - start


def train(epochs: int = 15, batch: int = 128, lr: float = 0.1, seed: int = 0):
    gen = config.seed(seed)
    xtr, ytr = load_fashion_mnist("train")
    xte, yte = load_fashion_mnist("test")
    model = TeachingNet(len(CLASSES)).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * (len(xtr) // batch))
    seconds = fit(model, opt, sched, (xtr, ytr, xte, yte), epochs, batch, gen, channels_last=True)
    acc = accuracy(model, xte, yte)
    meta = {"test_accuracy": acc, "epochs": epochs, "batch": batch, "max_lr": lr, "seed": seed,
            "train_seconds": round(seconds, 1), "torch": str(torch.__version__),
            "dataset": "Fashion-MNIST (Zalando Research, MIT licence)"}
    sample = balanced_sample(yte, 50, gen)
    return model.eval(), meta, {"images": xte[sample].clone(), "labels": yte[sample].clone()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=config.DATA_DIR)
    args = parser.parse_args(argv)
    model, meta, sample = train(args.epochs, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": meta}, args.out / WEIGHTS_FILE)
    torch.save(sample, args.out / SAMPLE_FILE)
    print(f"test accuracy {meta['test_accuracy']:.4f} after {meta['train_seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
