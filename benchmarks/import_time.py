"""Cold-import cost of lecturekit over what every notebook imports anyway.

    python benchmarks/import_time.py [--rounds 7]

Each measurement is a fresh interpreter (``python -c ...``), timed from outside; the two
commands alternate, and the table shows medians and ranges. Target: ``import lecturekit``
costs at most 0.2 s more than ``import torch, torchvision, matplotlib``.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "torch, torchvision, matplotlib": "import torch, torchvision, matplotlib",
    "... + lecturekit": "import torch, torchvision, matplotlib, lecturekit",
    "... + lecturekit, first use of zoo, attribution, plotting":
        "import torch, torchvision, matplotlib, lecturekit as lk; lk.zoo, lk.attribution, lk.plotting",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times = {name: [] for name in COMMANDS}
    for _ in range(args.rounds + 1):                      # the first round warms the file cache, not counted
        for name, code in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["torch, torchvision, matplotlib"][1:])
    print("| import | median s | min-max s | over the first row, s |")
    print("|---|---|---|---|")
    for name, values in times.items():
        values = values[1:]
        med = statistics.median(values)
        print(f"| {name} | {med:.2f} | {min(values):.2f}-{max(values):.2f} | {med - base:+.2f} |")
    extra = statistics.median(times["... + lecturekit"][1:]) - base
    print(f"\nimport lecturekit costs {extra:+.2f} s over torch + torchvision + matplotlib (target <= 0.2 s)")


if __name__ == "__main__":
    main()
