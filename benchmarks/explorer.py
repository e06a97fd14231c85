"""The explorer's interaction latency: the time from a choice (a new class, a new layer) to the redrawn
figure, per panel, computed and drawn to PNG (what the page then shows; the browser's part, sending a
PNG of 50-100 kB over the loopback, is not included).

    python benchmarks/explorer.py                 # EfficientNet-Lite0 at 224 px, full-mode sizes
    python benchmarks/explorer.py --model teaching --repeat 2

Each panel is timed alone (one panel on the page, so the two lanes do not share the cores), over
``--repeat`` class changes (median), then a layer change for the panels that depend on the layer,
then the way back to the first class, which the cache answers. Target: the gradient methods within
about a second on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("LECTUREKIT_DEVICE", "cpu")
os.environ.setdefault("LECTUREKIT_OFFLINE", "1")

import torch  # noqa: E402

import lecturekit as lk  # noqa: E402


def latency(app, **change) -> float:
    start = time.perf_counter()
    app.choose(**change).wait()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--repeat", type=int, default=3, help="class changes per panel (median)")
    parser.add_argument("--panels", nargs="*", default=list(lk.explorer.PANELS))
    args = parser.parse_args()
    print(f"{args.model}, {'quick' if lk.quick() else 'full'}-mode sizes, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    print("| panel | lane | new class s | new layer s | back to a figure seen before s |")
    print("|---|---|---|---|---|")
    for panel in args.panels:
        app = lk.explorer.Explorer(model=args.model, panels=(panel,))
        try:
            app.wait()                                         # the first draw (loads the model) is not timed
            classes = [name for name, _ in app.top5()]
            first = app.resolved()
            by_class = by_layer = "-"
            if "target" in lk.explorer.PANELS[panel].needs:
                times = [latency(app, target=classes[1 + i % 4]) for i in range(args.repeat)]
                by_class = f"{statistics.median(times):.2f}"
                back = latency(app, target=None)                 # the first class: from the cache
            if "layer" in lk.explorer.PANELS[panel].needs:
                stages = [s for s in app.bundle.stages if s in app.w["layer"].options and s != first.layer]
                by_layer = f"{latency(app, layer=stages[-1]):.2f}"
                back = latency(app, layer=first.layer)           # the first layer: from the cache
            assert not app.errors, app.errors
            print(f"| {lk.explorer.PANELS[panel].label} | {lk.explorer.PANELS[panel].lane} | "
                  f"{by_class} | {by_layer} | {back:.3f} |", flush=True)
        finally:
            app.close()


if __name__ == "__main__":
    main()
