"""Command line: ``python -m lecturekit download [names]``, ``info``, ``gallery`` and ``slides``."""
from __future__ import annotations

import argparse
import sys

from . import config, debian, efficientnet, images, npm, paintings, weights, zoo

#: The ImageNet models the notebooks use (prefetched by Binder's postBuild).
NOTEBOOK_MODELS = list(zoo.IMAGENET)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lecturekit")
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="fetch ImageNet weights (any torchvision classification model) into the "
                        "torch hub cache, and the paintings and sample photos")
    dl.add_argument("names", nargs="*", help=f"models, 'paintings' for the style images, 'photos' for the sample "
                    f"photos from Debian's packages, 'slides' for reveal.js and MathJax from the npm registry "
                    f"(default: all the notebooks use: {', '.join(NOTEBOOK_MODELS)}, paintings, photos)")
    sub.add_parser("info", help="settings and which weights are cached")
    for command, what in (("gallery", "render them to HTML with their figures"),
                          ("slides", "make a reveal.js deck of each one's figures")):
        run = sub.add_parser(command, help=f"run notebooks (full mode) and {what}")
        run.add_argument("notebooks", nargs="*", help="notebook names (05_occlusion) or .ipynb paths (default: all)")
        run.add_argument("--notebooks", dest="folder", metavar="DIR",
                         help="folder to find notebooks in (default: ./notebooks, else the checkout's)")
        run.add_argument("--out", default=command, help=f"output folder (default: {command})")
        run.add_argument("--quick", action="store_true", help="quick mode: small sizes, for a fast check")
    args = parser.parse_args(argv)

    if args.command == "slides":
        from . import render, slides
        try:
            results = slides.build(render.find(args.notebooks, args.folder), args.out, quick=args.quick)
        except (OSError, ImportError, npm.Unavailable) as err:   # no such notebook, an output folder that cannot be made
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
        except (OSError, ImportError) as err:         # no such notebook, an output folder that cannot be made
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
        for name in zoo.PACKAGED:
            try:
                where = f"{efficientnet.weights_file()} (installed with {efficientnet.PACKAGE})"
                state = "ok" if efficientnet.checksum_ok(efficientnet.weights_file()) else "damaged"
            except efficientnet.WeightsMissing:
                where, state = f"missing: {efficientnet.INSTALL}", "missing"
            print(f"  {name:14s} {state:7s} {where}")
        for name in zoo.IMAGENET:
            state = "cached" if weights.is_cached(name) else "missing"
            print(f"  {name:14s} {state:7s} {weights.weights_path(name)} ({weights.weights_size_mb(name):.0f} MB)")
        for name, painting in paintings.PAINTINGS.items():
            state = "cached" if paintings.path(name).is_file() else "missing"
            print(f"  {name:14s} {state:7s} {paintings.path(name)}")
            if painting.debian is not None:
                print(f"  {'':14s} {painting.debian.status():7s} {painting.debian.path} (Debian's copy)")
        every = images.samples(include_missing=True)
        missing = [s.name for s in every.values() if not s.available]
        print(f"  sample photos: {len(every) - len(missing)} at hand (Debian's in "
              f"{debian.cache_dir() / 'debian'})"
              + (f"; not at hand: {', '.join(missing)} ({images.REFETCH})" if missing else ""))
        return 0
    return download(args.names)


def _from_debian(packages: set[str]) -> bool:
    """Take everything lecturekit uses out of each of ``packages`` (one fetch each, so a package
    is fetched once for both its paintings and its photos). A failure is a one-line note, never
    an error; returns False after such a note."""
    wanted = [p.debian for p in paintings.PAINTINGS.values() if p.debian is not None]
    wanted += [s.debian for s in images.samples(include_missing=True).values() if s.debian is not None]
    order = sorted(packages)
    for i, package in enumerate(order):
        try:
            problems = debian.extract(package, [f for f in wanted if f.package == package])
        except debian.DebianUnavailable as err:             # the others are not tried: the same would happen
            print(f"note: no paintings or photos from Debian's {', '.join(order[i:])}: {err}; the "
                  "notebooks use the bundled photos in their place", file=sys.stderr)
            return False
        for why in problems.values():
            print(f"note: {why}", file=sys.stderr)
    return True


def download(names: list[str]) -> int:
    """``python -m lecturekit download [names]``: the exit status (1 when something could not be had)."""
    names = names or [*NOTEBOOK_MODELS, "paintings", "photos"]
    if "slides" in names:
        names = [n for n in names if n != "slides"]
        try:
            print(f"slides: {', '.join(str(p) for p in npm.fetch())}")
        except npm.Unavailable as err:
            print(err, file=sys.stderr)
            return 1
        if not names:
            return 0
    for name in [n for n in names if n in zoo.PACKAGED]:      # nothing to fetch: installed with lecturekit
        try:
            print(f"{name}: {efficientnet.weights_file()} (installed with {efficientnet.PACKAGE})")
        except efficientnet.WeightsMissing as err:
            print(err, file=sys.stderr)
            return 1
    names = [n for n in names if n not in zoo.PACKAGED]
    if not names:
        return 0
    bad = [n for n in names if n not in weights.torchvision_names() and n not in ("paintings", "photos")]
    if bad:
        valid = ", ".join([*zoo.PACKAGED, *zoo.IMAGENET])
        print(f"Unknown model(s): {', '.join(bad)}. Valid: {valid}, paintings, photos, or any "
              "torchvision classification model", file=sys.stderr)
        return 2
    failed = 0
    stalled: set[str] = set()                       # hosts that sent nothing: not asked again this run
    items = [(p, paintings.PAINTINGS[p].url) for p in paintings.PAINTINGS] if "paintings" in names else []
    items = [(n, weights.published(n).url) for n in names if n not in ("paintings", "photos")] + items
    to_debian: list[str] = []                       # paintings Wikimedia could not give
    for name, url in items:
        host = url.split("/")[2]
        if host in stalled:
            print(f"{name}: skipped, {host} did not answer for {config.net_timeout():g} s just before", file=sys.stderr)
        else:
            try:
                path = paintings.from_wikimedia(name) if name in paintings.PAINTINGS else weights.download(name)
                print(f"{name}: {path}")
                continue
            except (paintings.PaintingUnavailable, zoo.WeightsUnavailable) as err:
                print(err, file=sys.stderr)
                if "LECTUREKIT_NET_TIMEOUT" in str(err):
                    stalled.add(host)
        if name in paintings.PAINTINGS and paintings.PAINTINGS[name].debian is not None:
            to_debian.append(name)
        else:
            failed += 1
    photos = [s for s in images.samples(include_missing=True).values() if s.debian] if "photos" in names else []
    copies = [paintings.PAINTINGS[n].debian for n in to_debian]
    packages = {c.package for c in copies if c.status() != "ok"}
    packages |= {s.debian.package for s in photos if not s.available}
    noted = packages and not _from_debian(packages)     # the note said why: no more lines about it
    for name in to_debian:
        try:
            print(f"{name}: {paintings.from_debian(name)} (Debian's {paintings.PAINTINGS[name].debian.package})")
        except paintings.PaintingUnavailable as err:
            failed += 1
            if not noted:
                print(f"{name}: {err}", file=sys.stderr)
    here = [s.name for s in photos if s.available]
    if here:
        print(f"photos: {len(here)} of {len(photos)} from Debian's packages in {debian.cache_dir() / 'debian'} "
              f"({', '.join(here)})")
    failed += len(here) < len(photos)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
