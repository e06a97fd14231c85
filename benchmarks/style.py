"""Speed of style transfer (notebooks 14-16) and the measurement behind the offline features.

    python benchmarks/style.py

Rows: seconds per style-transfer iteration (one L-BFGS loss evaluation: forward to the last
style layer + backward to the pixels) at 256 px and the GFLOP/s it achieves, as a fraction of
a float32 matrix multiply measured in the same run (FLOPs counted by torch.utils.flop_counter);
time for L-BFGS and Adam to reach a fixed loss; the fast-style network's forward pass at 256
and 512 px and its speed-up over 100 iterations of optimisation at the same size; and the
checkerboard test that chose the offline feature network. VGG-16 runs with random weights:
its speed does not depend on the values.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("LECTUREKIT_DEVICE", "cpu")
os.environ.setdefault("LECTUREKIT_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import lecturekit as lk  # noqa: E402
from ascent import matmul_gflops  # noqa: E402  (benchmarks/ascent.py)

CONTENT, STYLE = "chelsea", "hubble_deep_field"


def iteration(net, size):
    """Seconds and FLOPs of one loss evaluation (content + style + TV, forward and backward)."""
    content = lk.images.load(CONTENT, size=size)
    loss = lk.style.style_loss(net, lk.images.load(STYLE, size=size), content_img=content)
    img = content.clone().requires_grad_(True)

    def once():
        acts, _ = lk.hooks.run(net.model, net.preprocess(img), loss.layers, detach=False)
        (loss(acts).sum() + 1e-3 * lk.losses.total_variation(img).sum()).backward()
    once()
    with FlopCounterMode(display=False) as counter:
        once()
    repeat = 3
    start = time.perf_counter()
    for _ in range(repeat):
        once()
    return (time.perf_counter() - start) / repeat, counter.get_total_flops()


def time_to_loss(net, size, steps):
    content, style_img = lk.images.load(CONTENT, size=size), lk.images.load(STYLE, size=size)
    runs = {opt: lk.style.transfer(net, content, style_img, steps=steps, optimizer=opt, progress=False)
            for opt in ("lbfgs", "adam")}
    goal = runs["adam"].history[-1]
    return goal, {opt: next(t for t, h in zip(r.seconds, r.history) if h <= goal) for opt, r in runs.items()}


def checkerboard_period(net, size=64, steps=150):
    y, x = torch.meshgrid(torch.arange(96), torch.arange(96), indexing="ij")
    board = ((y // 8 + x // 8) % 2).float()[None, None].expand(1, 3, 96, 96).clone()
    out = {}
    for depth in net.depths:
        img = lk.style.synthesize(net, board, size, steps=steps, layers=net.layers_up_to(depth), progress=False).image
        g = img.mean(1)[0] - img.mean()
        out[depth] = float(((g[:, 8:] * g[:, :-8]).mean() + (g[8:] * g[:-8]).mean()) / (2 * g.pow(2).mean()))
    return out


def main():
    peak = matmul_gflops()
    print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}; "
          f"float32 matmul 2048x2048: {peak:.1f} GFLOP/s\n")
    vgg = lk.style.feature_net("vgg16-random", last="relu4_1")
    multi = lk.style.feature_net("random-multiscale")
    print("| style-transfer iteration at 256 px | s/iteration | GFLOP/iteration | GFLOP/s | fraction of matmul |")
    print("|---|---|---|---|---|")
    per_iter = {}
    for label, net in (("VGG-16 to relu4_1 (ImageNet layout)", vgg), ("random filters 1-15 px (offline)", multi)):
        seconds, flops = iteration(net, 256)
        per_iter[label] = seconds
        print(f"| {label} | {seconds:.2f} | {flops / 1e9:.1f} | {flops / seconds / 1e9:.1f} | "
              f"{flops / seconds / 1e9 / peak:.2f} |")

    print("\n| time to the loss Adam reaches in 100 iterations, 256 px, random filters | L-BFGS (s) | Adam (s) |")
    print("|---|---|---|")
    goal, times = time_to_loss(multi, 256, 100)
    print(f"| loss {goal:.3f} | {times['lbfgs']:.1f} | {times['adam']:.1f} |")

    cin, _ = lk.faststyle.load()
    print("\n| fast-style forward pass | seconds | 100 optimisation iterations (s) | speed-up |")
    print("|---|---|---|---|")
    for size in (256, 512):
        photo = lk.images.load(CONTENT, size=size)
        with torch.no_grad():
            cin(photo, style=0)
            start = time.perf_counter()
            for _ in range(5):
                cin(photo, style=0)
            forward_s = (time.perf_counter() - start) / 5
        opt_s = 100 * (per_iter["random filters 1-15 px (offline)"] if size == 256 else iteration(multi, size)[0])
        print(f"| {size} px | {forward_s:.3f} | {opt_s:.0f} | {opt_s / forward_s:.0f}x |")

    print("\n| checkerboard (16 px period), 64 px synthesis, 150 L-BFGS evaluations | "
          "autocorrelation at half a period, smallest -> largest layer set (exemplar: -1) |")
    print("|---|---|")
    for label, source in (("VGG-16, random weights", "vgg16-random"), ("random filters 1-15 px", "random-multiscale")):
        ac = checkerboard_period(lk.style.feature_net(source))
        print(f"| {label} | " + ", ".join(f"{d} {v:+.2f}" for d, v in ac.items()) + " |")


if __name__ == "__main__":
    main()
