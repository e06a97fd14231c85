"""Wall time and peak memory of every notebook, in quick and full mode, on the default models
or on the ImageNet code path (stand-in weight files for all five ImageNet models).

    python benchmarks/notebooks.py                      # all notebooks, both modes; prints a Markdown table
    python benchmarks/notebooks.py --modes quick         # one mode
    python benchmarks/notebooks.py --weights standins    # the ImageNet path, as on Binder (real sizes, random values)

Each run is a fresh kernel, offline, on the CPU, figures drawn as in Jupyter (the inline backend),
with an empty torch cache (so the models that
install with lecturekit are used: EfficientNet-Lite0 and the original VGG-19) or a temporary one
holding the stand-ins.
Peak memory is the kernel's maximum resident set size. Targets on 2 cores: all notebooks in
quick mode together at most 10 minutes; any notebook in full mode at most 3 minutes; peak
memory of any notebook under 2 GB (Binder's limit).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def run_one(path: Path, mode: str, save: Path | None = None) -> dict:
    """Execute one notebook in this process's child kernel; report wall time and the kernel's peak RSS."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    wall = time.perf_counter() - start
    if save:                               # the executed notebook, figures included, to look at afterwards
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / f"{path.stem}.{mode}.ipynb")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss       # Linux: KiB, largest child
    return {"notebook": path.stem, "mode": mode, "seconds": round(wall, 1), "peak_mb": round(peak_kib / 1024)}


def measure(path: Path, mode: str, torch_home: str | None = None, save: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as empty:
        home = torch_home or empty
        env = {**os.environ, "LECTUREKIT_OFFLINE": "1", "LECTUREKIT_STANDINS": "1", "LECTUREKIT_DEVICE": "cpu",
               "TORCH_HOME": home, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
               "LECTUREKIT_QUICK": "1" if mode == "quick" else "0"}
        env.pop("LECTUREKIT_MODEL", None)
        if torch_home:                     # the torchvision path: SqueezeNet as the chosen model
            env["LECTUREKIT_MODEL"] = "squeezenet1_1"
        command = [sys.executable, __file__, "--one", str(path), "--mode", mode]
        if save:
            command += ["--save", str(save)]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:                # reported, and the other notebooks still run
        print(f"{path.name} failed in {mode} mode:\n{out.stderr[-3000:]}", file=sys.stderr)
        return {"notebook": path.stem, "mode": mode, "seconds": float("nan"), "peak_mb": 0, "failed": True}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["quick", "full"], choices=["quick", "full"])
    parser.add_argument("--weights", default="embedded", choices=["embedded", "standins"],
                        help="embedded: empty torch cache; standins: stand-ins for all five ImageNet models")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help="folder for the executed notebooks (NAME.MODE.ipynb)")
    parser.add_argument("notebooks", nargs="*", help="notebook names (default: all)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.mode, args.save)))
        return
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if p.stem in args.notebooks or p.name in args.notebooks]
    rows = {p.stem: {} for p in paths}
    standins = tempfile.TemporaryDirectory() if args.weights == "standins" else None
    if standins:
        subprocess.run([sys.executable, str(ROOT / "tests" / "standins.py"), standins.name], check=True,
                       capture_output=True)
    for mode in args.modes:
        for p in paths:
            r = measure(p, mode, standins.name if standins else None, args.save)
            rows[p.stem][mode] = r
            print(f"  {p.stem} {mode}: {r['seconds']} s, {r['peak_mb']} MB", file=sys.stderr)
    print(f"weights: {args.weights}")
    head = "| notebook | " + " | ".join(f"{m} s | {m} peak MB" for m in args.modes) + " |"
    print(head)
    print("|---" * (1 + 2 * len(args.modes)) + "|")
    for stem, r in rows.items():
        cells = ["failed | -" if r[m].get("failed") else f"{r[m]['seconds']} | {r[m]['peak_mb']}" for m in args.modes]
        print(f"| {stem} | " + " | ".join(cells) + " |")
    totals = {m: sum(r[m]["seconds"] for r in rows.values()) for m in args.modes}
    peaks = {m: max(r[m]["peak_mb"] for r in rows.values()) for m in args.modes}
    print("| **all** | " + " | ".join(f"{totals[m]:.1f} | {peaks[m]}" for m in args.modes) + " |")
    if "quick" in totals:
        print(f"\nquick mode, all notebooks: {totals['quick']:.0f} s (target <= 600 s)")
    if "full" in totals:
        worst = max(rows, key=lambda s: rows[s]["full"]["seconds"])
        print(f"full mode, slowest notebook: {worst} {rows[worst]['full']['seconds']} s (target <= 180 s)")
    print(f"peak memory, any notebook: {max(peaks.values())} MB (target < 2048 MB)")
    failed = [f"{stem} ({m})" for stem, r in rows.items() for m in args.modes if r[m].get("failed")]
    if failed:
        raise SystemExit("failed: " + ", ".join(failed))


if __name__ == "__main__":
    main()
