"""Execute notebooks and render them to HTML with their figures: the reading gallery.

    python -m lecturekit gallery                     # every notebook, full mode, into gallery/
    python -m lecturekit gallery --quick notebooks/05_occlusion.ipynb

Each notebook runs top to bottom in a fresh kernel (the same as opening it and choosing
"Run all"); the HTML keeps every figure embedded, so a page can be read, shared or put on a
slide without Python. A notebook that fails still gets its page, with the error where it
happened, and the command reports it and exits non-zero.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def render(paths, out: Path, quick: bool = False, timeout: int = 3600, progress: bool = True) -> dict[str, str]:
    """Run each notebook and write ``out/<name>.html`` (plus ``index.html``).
    Returns {name: "ok" or the error}."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no notebook at {', '.join(missing)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("LECTUREKIT_QUICK")
    os.environ["LECTUREKIT_QUICK"] = "1" if quick else "0"
    results: dict[str, str] = {}
    try:
        for path in tqdm(paths, desc="notebooks", disable=not progress):
            nb = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            try:
                ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
                    nb, {"metadata": {"path": str(path.parent)}})
                results[path.stem] = "ok"
            except CellExecutionError as err:
                message = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
                results[path.stem] = message[-1][:300] if message else type(err).__name__
            nb.metadata["lecturekit"] = {"seconds": round(time.perf_counter() - start, 1), "quick": quick}
            html, _ = HTMLExporter().from_notebook_node(nb)
            (out / f"{path.stem}.html").write_text(html, encoding="utf-8")
    finally:
        if saved is None:
            os.environ.pop("LECTUREKIT_QUICK", None)
        else:
            os.environ["LECTUREKIT_QUICK"] = saved
    items = "\n".join(f'<li><a href="{name}.html">{name}</a>{"" if state == "ok" else " (failed: " + state + ")"}</li>'
                      for name, state in results.items())
    (out / "index.html").write_text(f"<!doctype html><meta charset='utf-8'><title>Visualizing and Understanding: "
                                    f"gallery</title><h1>Notebooks</h1><ul>{items}</ul>", encoding="utf-8")
    return results
