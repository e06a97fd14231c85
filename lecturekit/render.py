"""Execute notebooks and render them to HTML with their figures: the reading gallery.

    python -m lecturekit gallery                          # every notebook, full mode, into gallery/
    python -m lecturekit gallery --quick 05_occlusion     # by name, or give paths to .ipynb files
    python -m lecturekit gallery --notebooks ~/course/notebooks    # from an installed package

Each notebook runs top to bottom in a fresh kernel (the same as opening it and choosing
"Run all"), with matplotlib's inline backend whatever ``MPLBACKEND`` says, so every figure is
kept. The HTML embeds the figures, so a page can be read, shared or put on a slide without
Python. A notebook that fails still gets its page, with the error where it happened, and the
command reports it and exits non-zero.
"""
from __future__ import annotations

import html
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

#: The notebooks of a checkout (the wheel does not carry them: pass a folder instead).
CHECKOUT_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
INLINE = "module://matplotlib_inline.backend_inline"


def notebooks_folder(folder=None) -> Path:
    """``folder`` if given, else ``./notebooks``, else the checkout's ``notebooks/``."""
    if folder is not None:
        return Path(folder).expanduser()
    here = Path.cwd() / "notebooks"
    return here if here.is_dir() else CHECKOUT_NOTEBOOKS


def find(names=(), folder=None) -> list[Path]:
    """Notebook files from paths or names (``05_occlusion`` or ``05_occlusion.ipynb``, looked up in
    ``folder``); all numbered notebooks of ``folder`` when no names are given."""
    where = notebooks_folder(folder)
    available = sorted(where.glob("[0-9]*.ipynb")) if where.is_dir() else []
    if not names:
        if not available:
            raise FileNotFoundError(f"no notebooks in {where}; give a folder with --notebooks DIR, or notebook paths")
        return available
    paths = []
    for name in names:
        path = Path(name).expanduser()
        if path.suffix != ".ipynb" or not path.is_file():
            path = where / (Path(name).name if Path(name).suffix == ".ipynb" else f"{name}.ipynb")
        if not path.is_file():
            known = ", ".join(p.stem for p in available) or "none"
            raise FileNotFoundError(f"no notebook at {name!r}: not a file, nor a notebook of {where} "
                                    f"(there: {known})")
        paths.append(path)
    return paths


@contextmanager
def _environ(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def prepare(paths, out: Path, what: str = "the gallery") -> tuple[list[Path], Path]:
    """The checks before running notebooks: nbconvert is installed, every path is a notebook file;
    (the paths, the output folder, made)."""
    try:
        import nbconvert  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as err:
        raise ImportError(f"making {what} needs nbconvert ({err.name} is missing): "
                          "pip install \"lecturekit[gallery]\"") from None
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no notebook at {', '.join(missing)}")
    out = Path(out)
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(f"{what} goes in a folder, but '{blocker}' is a file: give an output folder "
                                 f"(--out DIR, made if missing) that is not a file or inside one, not '{out}'")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot make the output folder '{out}' for {what}: {err.strerror or err}") from None
    return paths, out


def execute(path: Path, quick: bool = False, timeout: int = 3600):
    """Run a notebook top to bottom in a fresh kernel with the inline backend:
    (the executed notebook, "ok" or the last line of the error)."""
    import nbformat
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor
    nb = nbformat.read(path, as_version=4)
    with _environ(LECTUREKIT_QUICK="1" if quick else "0", MPLBACKEND=INLINE):
        try:
            ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
                nb, {"metadata": {"path": str(Path(path).parent)}})
            return nb, "ok"
        except CellExecutionError as err:
            lines = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
            return nb, lines[-1][:300] if lines else type(err).__name__


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def static(nb):
    """The notebook as a page that needs no network. Live widgets would be blank slots there (their
    JavaScript comes from a CDN), and a stored widget output holds only its state when first shown
    (a progress bar at 0%), so widget outputs are left out: the figure a set of controls drives is
    an image output of its own, and stays."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell["outputs"] = [o for o in cell.get("outputs", []) if WIDGET_VIEW not in o.get("data", {})]
    nb.metadata.pop("widgets", None)                     # no widget state: no widget manager script from a CDN
    return nb


def render(paths, out: Path, quick: bool = False, timeout: int = 3600, progress: bool = True) -> dict[str, str]:
    """Run each notebook and write ``out/<name>.html`` (plus ``index.html``).
    Returns {name: "ok" or the error}."""
    paths, out = prepare(paths, out, "the gallery")
    from nbconvert import HTMLExporter
    results: dict[str, str] = {}
    for path in tqdm(paths, desc="notebooks", disable=not progress):
        start = time.perf_counter()
        nb, results[path.stem] = execute(path, quick, timeout)
        nb.metadata["lecturekit"] = {"seconds": round(time.perf_counter() - start, 1), "quick": quick}
        page, _ = HTMLExporter().from_notebook_node(static(nb))
        (out / f"{path.stem}.html").write_text(page, encoding="utf-8")
    items = "\n".join(
        f'<li><a href="{html.escape(name, quote=True)}.html">{html.escape(name)}</a>'
        f'{"" if state == "ok" else " (failed: " + html.escape(state) + ")"}</li>' for name, state in results.items())
    (out / "index.html").write_text(f"<!doctype html><meta charset='utf-8'><title>Visualizing and Understanding: "
                                    f"gallery</title><h1>Notebooks</h1><ul>{items}</ul>", encoding="utf-8")
    return results
