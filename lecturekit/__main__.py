"""Command line: ``python -m lecturekit download [names]``, ``info``, ``gallery`` and ``slides``."""
from __future__ import annotations

import argparse
import sys

from . import config, paintings, zoo

#: The ImageNet models the notebooks use (prefetched by Binder's postBuild).
NOTEBOOK_MODELS = list(zoo.IMAGENET)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lecturekit")
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="fetch ImageNet weights (any torchvision classification model) into the torch hub cache")
    dl.add_argument("names", nargs="*", help=f"models, or 'paintings' for the style images (default: all "
                    f"the notebooks use: {', '.join(NOTEBOOK_MODELS)}, paintings)")
    sub.add_parser("info", help="settings and which weights are cached")
    for command, what in (("gallery", "render them to HTML with their figures"),
                          ("slides", "make a reveal.js deck of each one's figures")):
        run = sub.add_parser(command, help=f"run notebooks (full mode) and {what}")
        run.add_argument("notebooks", nargs="*", help="notebook names (05_occlusion) or .ipynb paths (default: all)")
        run.add_argument("--notebooks", dest="folder", metavar="DIR",
                         help="folder to find notebooks in (default: ./notebooks, else the checkout's)")
        run.add_argument("--out", default=command, help=f"output folder (default: {command})")
        run.add_argument("--quick", action="store_true", help="quick mode: small sizes, for a fast check")
        if command == "slides":
            run.add_argument("--reveal-prefix", metavar="URL", help="where reveal.js is (default: a CDN)")
    args = parser.parse_args(argv)

    if args.command == "slides":
        from . import render, slides
        try:
            results = slides.build(render.find(args.notebooks, args.folder), args.out, quick=args.quick,
                                   reveal_prefix=args.reveal_prefix)
        except (FileNotFoundError, ImportError) as err:
            print(err, file=sys.stderr)
            return 2
        failed = {k: v["status"] for k, v in results.items() if v["status"] != "ok"}
        print(f"{len(results) - len(failed)} of {len(results)} decks written to {args.out}/index.html")
        for name, why in failed.items():
            print(f"  {name} failed: {why}", file=sys.stderr)
        return 1 if failed else 0

    if args.command == "gallery":
        from . import render
        try:
            results = render.render(render.find(args.notebooks, args.folder), args.out, quick=args.quick)
        except (FileNotFoundError, ImportError) as err:
            print(err, file=sys.stderr)
            return 2
        failed = {k: v for k, v in results.items() if v != "ok"}
        print(f"{len(results) - len(failed)} of {len(results)} notebooks rendered to {args.out}/index.html")
        for name, why in failed.items():
            print(f"  {name} failed: {why}", file=sys.stderr)
        return 1 if failed else 0

    if args.command == "info":
        try:
            print(config.summary())
            config.net_timeout()
        except ValueError as err:                   # LECTUREKIT_DEVICE or LECTUREKIT_NET_TIMEOUT
            print(err, file=sys.stderr)
            return 2
        print(config.data_summary())
        if not zoo.known(config.model_name()):
            print(f"LECTUREKIT_MODEL={config.model_name()!r} is not a model of the zoo. Valid: {', '.join(zoo.NAMES)}, "
                  "or any torchvision classification model", file=sys.stderr)
            return 2
        for name in zoo.IMAGENET:
            state = "cached" if zoo.is_cached(name) else "missing"
            print(f"  {name:14s} {state:7s} {zoo.weights_path(name)} ({zoo.weights_size_mb(name):.0f} MB)")
        for name in paintings.PAINTINGS:
            state = "cached" if paintings.path(name).is_file() else "missing"
            print(f"  {name:14s} {state:7s} {paintings.path(name)}")
        return 0

    names = args.names or [*NOTEBOOK_MODELS, "paintings"]
    bad = [n for n in names if n not in zoo.torchvision_names() and n != "paintings"]
    if bad:
        print(f"Unknown model(s): {', '.join(bad)}. Valid: {', '.join(zoo.IMAGENET)}, paintings, or any torchvision "
              "classification model", file=sys.stderr)
        return 2
    failed = 0
    stalled: set[str] = set()                       # hosts that sent nothing: not asked again this run
    items = [(p, paintings.PAINTINGS[p].url) for p in paintings.PAINTINGS] if "paintings" in names else []
    items = [(n, zoo._weights(n).url) for n in names if n != "paintings"] + items
    for name, url in items:
        host = url.split("/")[2]
        if host in stalled:
            print(f"{name}: skipped, {host} did not answer for {config.net_timeout():g} s just before", file=sys.stderr)
            failed += 1
            continue
        try:
            path = paintings.fetch(name) if name in paintings.PAINTINGS else zoo.download(name)
            print(f"{name}: {path}")
        except (paintings.PaintingUnavailable, zoo.WeightsUnavailable) as err:
            print(err, file=sys.stderr)
            failed += 1
            if "LECTUREKIT_NET_TIMEOUT" in str(err):
                stalled.add(host)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
