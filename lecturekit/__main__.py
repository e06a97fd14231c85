"""Command line: ``python -m lecturekit download [names]``, ``info``, ``gallery``, ``slides`` and ``explore``."""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path

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
    ex = sub.add_parser("explore", help="serve the explorer (your image, every method, any layer) as a web page "
                        "with Voila, on 127.0.0.1 with a token")
    ex.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default: 8866)")
    ex.add_argument("--no-browser", action="store_true", help="only print the address, do not open a browser")
    ex.add_argument("--notebook", metavar="PATH", help="serve this notebook instead of the generated one-cell page "
                    "(e.g. notebooks/19_explorer.ipynb)")
    args = parser.parse_args(argv)

    if args.command == "explore":
        return explore(args.port, browser=not args.no_browser, notebook=args.notebook)

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


VOILA_HINT = 'the explorer page needs Voila: pip install "voila>=0.5" (or the lab extra: pip install -e ".[lab]")'


def _voila_installed() -> bool:
    return importlib.util.find_spec("voila") is not None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


#: Voila's lab page, less the stylesheets it links from a CDN (FontAwesome's, for widget icons): the
#: explorer fetches nothing from the network. Where a later Voila changes those lines, they stay (the
#: page then asks the CDN, as Voila's own does, and works without it).
OFFLINE_TEMPLATE = "lecturekit-offline"
_OFFLINE_PAGE = """{%- extends 'voila/templates/lab/index.html.j2' -%}
{%- block notebook_css -%}
{%- for line in super().splitlines() if not (line.lstrip().startswith('<link') and '://' in line) %}
{{ line }}
{%- endfor %}
{%- endblock notebook_css -%}
"""


def _offline_template(folder: Path) -> Path:
    """Write the template ``OFFLINE_TEMPLATE`` under ``folder`` (a Jupyter data folder: JUPYTER_PATH)."""
    where = folder / "voila" / "templates" / OFFLINE_TEMPLATE
    where.mkdir(parents=True)
    (where / "conf.json").write_text('{"base_template": "lab"}\n')
    (where / "index.html.j2").write_text(_OFFLINE_PAGE)
    return folder


def voila_command(notebook, port: int, token: str, folder) -> list[str]:
    """The Voila server of ``explore``: this Python's, on 127.0.0.1 only, with ``token``, on exactly
    ``port`` (no other when it is taken: the printed address would be wrong), no tracebacks in the
    page, the kernels' connection files in ``folder``, and the template ``OFFLINE_TEMPLATE`` (which
    needs JUPYTER_PATH to hold the folder ``_offline_template`` wrote in). Voila, unlike JupyterLab,
    runs as root without an --allow-root."""
    return [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}", "--Voila.port_retries=0",
            "--Voila.ip=127.0.0.1", f"--token={token}", "--show_tracebacks=False", f"--template={OFFLINE_TEMPLATE}",
            f"--Voila.connection_dir_root={folder}"]


def explore(port: int = 8866, browser: bool = True, notebook: str | None = None) -> int:
    """``python -m lecturekit explore``: serve the explorer with Voila until Ctrl-C. The exit status
    (2 for a bad argument or a missing Voila, else Voila's own)."""
    if not _voila_installed():
        print(VOILA_HINT, file=sys.stderr)
        return 2
    if notebook is not None and not Path(notebook).is_file():
        print(f"no notebook {notebook}", file=sys.stderr)
        return 2
    if not 0 < port < 65536:
        print(f"--port must be between 1 and 65535, not {port}", file=sys.stderr)
        return 2
    if not _port_free(port):
        print(f"port {port} on 127.0.0.1 is in use (another explorer or Jupyter?); choose another with --port",
              file=sys.stderr)
        return 2
    token = secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}/?token={token}"
    with tempfile.TemporaryDirectory(prefix="lecturekit-explorer-") as tmp:
        if notebook is None:
            import nbformat
            from . import explorer
            notebook = Path(tmp) / "explorer.ipynb"
            nbformat.write(explorer.app_notebook(), notebook)
        data = _offline_template(Path(tmp) / "jupyter")
        env = {**os.environ, "JUPYTER_PATH": os.pathsep.join(p for p in (str(data), os.environ.get("JUPYTER_PATH")) if p)}
        print(f"The explorer, served by Voila (Ctrl-C stops it):\n    {url}", flush=True)
        server = subprocess.Popen(voila_command(Path(notebook).resolve(), port, token, tmp), env=env)
        with _sigterm_as_interrupt():
            try:
                if browser and _answers(port, server):
                    webbrowser.open(url)
                return server.wait()
            except KeyboardInterrupt:                   # Voila had the terminal's SIGINT too: it stops its kernels
                _stop(server)
                print("stopped", file=sys.stderr)
                return 0


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (kill, a test's terminate()) stops the server as Ctrl-C does, rather than leaving Voila
    and its kernel running and the temporary folder behind."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    try:
        before = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:                                  # not the main thread: leave SIGTERM as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _answers(port: int, server: subprocess.Popen, timeout: float = 120) -> bool:
    """Whether the server answers on ``port`` before it exits or ``timeout`` s pass. It is asked for a
    static folder, not the page: each request of the page starts a kernel."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/voila/static/", timeout=2).close()
            return True
        except urllib.error.HTTPError:                  # a 403 or 404 is an answer all the same
            return True
        except OSError:
            time.sleep(0.5)
    return False


def _stop(server: subprocess.Popen) -> None:
    """Let Voila finish its own shutdown after Ctrl-C; SIGTERM it (which it handles as Ctrl-C: it stops its
    kernels) where only we had the signal, or where it ignores SIGINT (started in the background); then kill."""
    for sig, wait in ((None, 3), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if sig is not None:
            try:
                server.send_signal(sig)
            except ProcessLookupError:
                return
        try:
            server.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:                       # a second Ctrl-C: stop at once
            server.kill()
            server.wait()
            return


if __name__ == "__main__":
    sys.exit(main())
