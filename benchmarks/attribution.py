"""Attribution methods: time per 224x224 image, as a ratio to one forward + backward pass.

    python benchmarks/attribution.py

Models: SqueezeNet 1.1 (architecture with random weights: speed does not depend on the values)
and the teaching model run at 224x224. Targets: saliency and Grad-CAM at most 1.3x one
forward+backward. Occlusion is compared with a naive loop of one window at a time, and the
batched version with and without channels_last memory format.
"""
from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("LECTUREKIT_DEVICE", "cpu")

import torch  # noqa: E402
from torchvision.models import get_model  # noqa: E402

import lecturekit as lk  # noqa: E402


def timed(fn, repeat=5):
    fn()                                                   # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_backward(model, x, target):
    x = x.clone().requires_grad_(True)
    model(x)[0, target].backward()


@torch.no_grad()
def naive_occlusion(model, x, target, patch, stride, fill=0.0):
    """One window at a time: the loop as first written, for comparison."""
    h, w = x.shape[2:]
    out = []
    for r in range(0, h - patch + 1, stride):
        for c in range(0, w - patch + 1, stride):
            y = x.clone()
            y[..., r:r + patch, c:c + patch] = fill
            out.append(model(y).softmax(1)[0, target])
    return torch.stack(out)


def main():
    gen = torch.Generator().manual_seed(0)
    teaching = lk.zoo.load("teaching").model
    squeeze = lk.zoo.prepare(get_model("squeezenet1_1"))
    models = {"SqueezeNet 1.1": (squeeze, torch.randn(1, 3, 224, 224, generator=gen), "features.12"),
              "teaching (224 px)": (teaching, torch.randn(1, 1, 224, 224, generator=gen), "relu4")}
    print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}\n")
    print("| model | method | ms per image | x forward+backward |\n|---|---|---|---|")
    for label, (model, x, layer) in models.items():
        base = timed(lambda: forward_backward(model, x, 1))
        print(f"| {label} | forward+backward | {1000 * base:.1f} | 1.00 |")
        runs = {"saliency": lambda: lk.attribution.saliency(model, x, 1),
                "deconvnet": lambda: lk.attribution.deconvnet(model, x, 1),
                "guided backprop": lambda: lk.attribution.guided_backprop(model, x, 1),
                "Grad-CAM": lambda: lk.attribution.grad_cam(model, x, 1, layer=layer),
                "guided Grad-CAM": lambda: lk.attribution.guided_grad_cam(model, x, 1, layer=layer)}
        if label.startswith("teaching"):
            runs["CAM"] = lambda: lk.attribution.cam(model, x, 1)
        for name, fn in runs.items():
            t = timed(fn)
            print(f"| {label} | {name} | {1000 * t:.1f} | {t / base:.2f} |")
        t = timed(lambda: lk.attribution.occlusion(model, x, 1, patch=32, stride=16), repeat=2)
        print(f"| {label} | occlusion (32 px patch, stride 16, 169 windows) | {1000 * t:.0f} | {t / base:.1f} |")

    print("\nOcclusion on SqueezeNet 1.1, 224 px, 32 px patch, stride 16:\n")
    print("| variant | s per image |\n|---|---|")
    x = models["SqueezeNet 1.1"][1]
    variants = {"naive loop, one window per forward pass": lambda: naive_occlusion(squeeze, x, 1, 32, 16)}
    for bs in (64, 32, 8):
        variants[f"batched, batch {bs}, channels_last"] = \
            lambda bs=bs: lk.attribution.occlusion(squeeze, x, 1, patch=32, stride=16, batch_size=bs)
    variants["lecturekit default (batch ~400k pixels = 8 here, channels_last)"] = \
        lambda: lk.attribution.occlusion(squeeze, x, 1, patch=32, stride=16)
    for name, fn in variants.items():
        print(f"| {name} | {timed(fn, repeat=2):.2f} |")
    with torch.inference_mode():
        naive = timed(variants["naive loop, one window per forward pass"], 2)
        print(f"| naive loop under inference_mode | {naive:.2f} |")
    params = [p for p in squeeze.parameters() if p.dim() == 4]
    assert all(p.is_contiguous() for p in params)           # the model's layout is given back


if __name__ == "__main__":
    main()
