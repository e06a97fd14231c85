"""Cold-import cost of lecturekit over what every notebook imports anyway.

    python benchmarks/import_time.py [--rounds 7]

Each measurement is a fresh interpreter (``python -c ...``), timed from outside: its CPU time
(user + system, which another load on the machine barely changes) and its wall time. The
commands alternate, and the table shows medians and ranges. Target: ``import lecturekit``
costs at most 0.2 s more than ``import torch, torchvision, matplotlib``.
"""
from __future__ import annotations

import argparse
import resource
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
    cpu = {name: [] for name in COMMANDS}
    wall = {name: [] for name in COMMANDS}
    for _ in range(args.rounds + 1):                      # the first round warms the file cache, not counted
        for name, code in COMMANDS.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            wall[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    first = next(iter(COMMANDS))
    base_cpu, base_wall = statistics.median(cpu[first][1:]), statistics.median(wall[first][1:])
    print("| import | CPU s, median (min-max) | over the first row | wall s, median (min-max) | over the first row |")
    print("|---|---|---|---|---|")
    for name in COMMANDS:
        c, w = cpu[name][1:], wall[name][1:]
        print(f"| {name} | {statistics.median(c):.2f} ({min(c):.2f}-{max(c):.2f}) | "
              f"{statistics.median(c) - base_cpu:+.2f} | {statistics.median(w):.2f} ({min(w):.2f}-{max(w):.2f}) | "
              f"{statistics.median(w) - base_wall:+.2f} |")
    # Python's own accounting: the cumulative import time of the lecturekit package once torch,
    # torchvision and matplotlib are imported (independent of how busy the machine is)
    own = []
    for _ in range(args.rounds):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c",
                              "import torch, torchvision, matplotlib; import lecturekit"],
                             capture_output=True, text=True, check=True).stderr
        line = next(row for row in err.splitlines() if row.rstrip().endswith("| lecturekit"))
        own.append(int(line.split("|")[1]) / 1e6)
    print(f"\n-X importtime, lecturekit after torch + torchvision + matplotlib: {statistics.median(own):.3f} s "
          f"(min {min(own):.3f}, max {max(own):.3f})")
    extra = statistics.median(cpu["... + lecturekit"][1:]) - base_cpu
    print(f"\nimport lecturekit costs {extra:+.2f} s of CPU over torch + torchvision + matplotlib (target <= 0.2 s)")

if __name__ == "__main__":
    main()
