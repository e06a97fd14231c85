"""Speed of the gradient-ascent loop: steps per second and achieved GFLOP/s.

    python benchmarks/ascent.py

FLOPs of one step (forward to the last needed layer + backward to the pixels) are counted with
torch.utils.flop_counter; the machine's practical peak is a float32 matrix multiply measured
in the same run. Models: SqueezeNet 1.1 at 224 px (random weights: speed does not depend on
the values) and the teaching model at 28 and 224 px.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("LECTUREKIT_DEVICE", "cpu")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision.models import get_model  # noqa: E402

import lecturekit as lk  # noqa: E402


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * n ** 3 * repeat / (time.perf_counter() - start) / 1e9


def step_flops(model, objective, size, preprocess) -> float:
    img = torch.rand(1, 3, size, size, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        acts, logits = lk.hooks.run(model, preprocess(img), list(objective.layers), stop=not objective.needs_logits,
                                     detach=False)
        (-objective(acts, logits).sum()).backward()
    return counter.get_total_flops()


def measure(model, objective, size, preprocess, steps):
    grey = lk.ascent.Pixels.grey
    lk.ascent.ascend(model, objective, grey(1, 3, size, size), preprocess, steps=3, progress=False)   # warm-up
    start = time.perf_counter()
    lk.ascent.ascend(model, objective, grey(1, 3, size, size), preprocess, steps=steps, progress=False)
    per_step = (time.perf_counter() - start) / steps
    return 1 / per_step, step_flops(model, objective, size, preprocess) / per_step / 1e9


def main():
    peak = matmul_gflops()
    teaching = lk.zoo.load("teaching")
    squeeze = lk.zoo.prepare(get_model("squeezenet1_1"))
    norm, _ = lk.zoo.normalizer()
    cases = [("SqueezeNet 1.1, 224 px, class score", squeeze, lk.ascent.class_score(1), 224, norm, 20),
             ("SqueezeNet 1.1, 224 px, features.7 channel (stops early)", squeeze, lk.ascent.channel("features.7", 3),
              224, norm, 20),
             ("teaching, 28 px, class score", teaching.model, lk.ascent.class_score(1), 28, teaching.preprocess, 200),
             ("teaching, 224 px, class score", teaching.model, lk.ascent.class_score(1), 224, teaching.preprocess, 20)]
    print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}; "
          f"float32 matmul 2048x2048: {peak:.1f} GFLOP/s\n")
    print("| loop | steps/s | GFLOP/s | fraction of matmul |\n|---|---|---|---|")
    for label, model, obj, size, pre, steps in cases:
        rate, gflops = measure(model, obj, size, pre, steps)
        print(f"| {label} | {rate:.1f} | {gflops:.1f} | {gflops / peak:.2f} |")


if __name__ == "__main__":
    main()
