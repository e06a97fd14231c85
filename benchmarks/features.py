"""Speed of the pieces behind notebooks 02-04: feature extraction, t-SNE, widget redraws.

    python benchmarks/features.py

Prints a Markdown table. Targets on 2 cores: t-SNE of 2,000 points at most 30 s; a widget
update from cached features at most 150 ms.
"""
from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("LECTUREKIT_DEVICE", "cpu")

import torch  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from torchvision.models import get_model  # noqa: E402

import lecturekit as lk  # noqa: E402
from lecturekit.train_teaching import augment  # noqa: E402


def timed(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main():
    rows = []
    teaching = lk.zoo.load("teaching")
    imgs, labels = lk.teaching.load_sample()
    extract = lambda model, x, layer, pre: lk.features.extract(model, x, layer, pre, lk.features.global_average,  # noqa: E731
                                                                 progress=False)
    t, _ = timed(lambda: extract(teaching.model, imgs, "gap", teaching.preprocess))
    rows.append(("feature extraction, teaching model, 28x28", f"{len(imgs) / t:,.0f} images/s", ""))

    squeeze = lk.zoo.prepare(get_model("squeezenet1_1"))        # random weights: speed does not depend on values
    gallery, _, _ = lk.gallery.photo_crops(224, per_photo=8)
    pre, _ = lk.zoo.normalizer()
    t, _ = timed(lambda: extract(squeeze, gallery, "features", pre), repeat=2)
    rows.append(("feature extraction, SqueezeNet 1.1, 224x224", f"{len(gallery) / t:,.1f} images/s", ""))

    gen = torch.Generator().manual_seed(0)
    big = torch.cat([imgs] + [augment(imgs, gen) for _ in range(3)])               # 2,000 real images
    feats = extract(teaching.model, big, "gap", teaching.preprocess)["gap"].numpy()
    t, _ = timed(lambda: TSNE(2, init="pca", random_state=0).fit_transform(feats), repeat=1)
    rows.append((f"t-SNE of {len(feats):,} teaching-model features (128-d)", f"{t:.1f} s", "<= 30 s"))

    cache = lk.features.LayerCache(teaching.model, imgs, teaching.preprocess, reduce=lk.features.spatial_max)
    cache.prefetch(teaching.stages)

    def draw(layer, channel):
        p = lk.receptive.max_patches(cache, teaching.model, layer, channel, k=9)
        return lk.plotting.image_grid(list(p.patches), [f"{v:.2f}" for v in p.value.tolist()], ncols=9, size=1.5,
                                      suptitle=f"{layer} channel {channel}")
    view = lk.widgets.Interactive(draw, {"layer": teaching.stages, "channel": (0, 31)}, show=False)
    times = []
    for c in range(1, 11):
        start = time.perf_counter()
        view.set(layer=teaching.stages[c % 4], channel=c)
        times.append(time.perf_counter() - start)
    assert cache.runs == 1
    rows.append(("widget update from cache (9 top patches, redraw + PNG)", f"{1000 * statistics.median(times):.0f} ms",
                 "<= 150 ms"))

    nn_imgs = [imgs[i] for i in range(14)]
    def rotated(q):
        return lk.plotting.image_grid(nn_imgs[q:] + nn_imgs[:q], [str(i) for i in range(14)], ncols=7, size=1.7)

    view = lk.widgets.Interactive(rotated, {"q": (0, 13)}, show=False)
    times = []
    for q in range(1, 11):
        start = time.perf_counter()
        view.set(q=q)
        times.append(time.perf_counter() - start)
    rows.append(("widget update, 2x7 image grid (notebook 03's neighbours)",
                 f"{1000 * statistics.median(times):.0f} ms", "<= 150 ms"))

    print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}\n")
    print("| measurement | result | target |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
