"""Command line: ``python -m lecturekit download [names]`` and ``python -m lecturekit info``."""
from __future__ import annotations

import argparse
import sys

from . import config, zoo

#: The ImageNet models the notebooks use (prefetched by Binder's postBuild).
NOTEBOOK_MODELS = list(zoo.IMAGENET)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lecturekit")
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="fetch ImageNet weights into the torch hub cache")
    dl.add_argument("names", nargs="*", help=f"models (default: all the notebooks use: {', '.join(NOTEBOOK_MODELS)})")
    sub.add_parser("info", help="settings and which weights are cached")
    args = parser.parse_args(argv)

    if args.command == "info":
        print(config.summary())
        for name in zoo.IMAGENET:
            state = "cached" if zoo.is_cached(name) else "missing"
            print(f"  {name:14s} {state:7s} {zoo.weights_path(name)} ({zoo.weights_size_mb(name):.0f} MB)")
        return 0

    names = args.names or NOTEBOOK_MODELS
    bad = [n for n in names if n not in zoo.IMAGENET]
    if bad:
        print(f"Unknown model(s): {', '.join(bad)}. Valid: {', '.join(zoo.IMAGENET)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        try:
            path = zoo.download(name)
            print(f"{name}: {path}")
        except zoo.WeightsUnavailable as err:
            print(err, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
