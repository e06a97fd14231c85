"""Lecture slides from the notebooks: one reveal.js deck per notebook, its key figures with a
one-line message each.

    python -m lecturekit slides                           # every notebook, full mode, into slides/
    python -m lecturekit slides 06_saliency 11_fooling_images --out ~/course/slides
    python -m lecturekit slides --quick 05_occlusion      # small sizes, for a fast check

Each notebook runs top to bottom in a fresh kernel, as for the gallery (``lecturekit.render``),
then the deck is chosen by rules, so that editing a notebook never needs slide metadata:

* the title slide: the notebook's title and the first sentence under it;
* one slide per code cell that draws a figure: the figure (no code), under the section heading
  (``## ...``) it belongs to and the first sentence of that section's text, its one-line message;
  a second figure of the same section goes on a slide below it (reveal.js's vertical slides);
* the closing slide: the notebook's "What to notice" line.

The slide notebook gets nbconvert's ``slideshow`` metadata and is exported with nbconvert's
``SlidesExporter``; the deck is one HTML file with the figures embedded, reveal.js itself is
loaded from a CDN when it is opened (``--reveal-prefix`` points it at a local copy instead).
"""
from __future__ import annotations

import copy
import html
import re
import time
from pathlib import Path

from tqdm.auto import tqdm

from .render import execute, prepare

FIGURE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
NOTICE = re.compile(r"\*\*What to notice:?\*\*:?\s*(.*)", re.S)


#: A sentence ends at . ! or ? before a space and a capital letter (or the end), not after "et al." or "e.g.".
SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)[.!?](?=\s+[A-Z(*_`]|\s*$)")


def _sentence(text: str, limit: int = 220) -> str:
    """The first sentence of a markdown paragraph, on one line; a leading "Lecture 12, part ..."
    reference is skipped for the sentence after it."""
    text = " ".join(text.split())
    sentences = []
    while text:
        end = SENTENCE_END.search(text)
        cut = end.end() if end else len(text)
        sentences.append(text[:cut].strip())
        text = text[cut:].strip()
    useful = [x for x in sentences if not x.startswith("Lecture ")] or sentences or [""]
    sentence = useful[0]
    return sentence if len(sentence) <= limit else sentence[:limit - 1].rsplit(" ", 1)[0] + "…"


def _sections(source: str) -> tuple[str | None, str]:
    """(the last heading of a markdown cell, or None; the first sentence of its first paragraph
    that is neither a heading, a badge nor a list)."""
    heading, text = None, ""
    for block in re.split(r"\n\s*\n", source.strip()):
        block = block.strip()
        if block.startswith("#"):
            heading, text = block.lstrip("#").strip().splitlines()[0], ""
        elif not text and block and not block.startswith(("[![", "<", "*", "-", "1.", "|", "```", "$$")):
            text = _sentence(block)
    return heading, text


def _figures(cell) -> list:
    """The outputs of a code cell that hold a figure (images only: text, errors and widgets dropped)."""
    return [o for o in cell.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")
            and any(t in o.get("data", {}) for t in FIGURE_TYPES)]


def _slide(text: str, kind: str):
    import nbformat
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["slideshow"] = {"slide_type": kind}
    return cell


def deck(nb):
    """An executed notebook -> the slide notebook (title, one slide per figure, what to notice)."""
    import nbformat
    cells = []
    title, message, notice = None, "", ""
    heading, section_text, shown_in_section = None, "", 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            h, text = _sections(cell.source)
            if title is None and h is not None:
                title, message = h, text
                continue
            if h is not None:
                heading, section_text, shown_in_section = h, text, 0
            elif text and not section_text:
                section_text = text
            found = NOTICE.search(cell.source)
            if found:
                notice = _sentence(found.group(1), limit=400)
            continue
        figures = _figures(cell) if cell.cell_type == "code" else []
        if not figures:
            continue
        kind = "subslide" if shown_in_section else "slide"
        line = section_text if not shown_in_section else ""
        cells.append(_slide(f"## {heading or title or ''}\n\n{line}", kind))
        figure_cell = nbformat.v4.new_code_cell("", id=cell.get("id"))
        figure_cell.outputs = copy.deepcopy(figures)
        figure_cell.metadata["slideshow"] = {"slide_type": "-"}
        cells.append(figure_cell)
        shown_in_section += 1
    opening = _slide(f"# {title or 'Notebook'}\n\n{message}", "slide")
    closing = [_slide(f"## What to notice\n\n{notice}", "slide")] if notice else []
    out = nbformat.v4.new_notebook(cells=[opening, *cells, *closing], metadata=copy.deepcopy(nb.metadata))
    return out


def to_html(slide_nb, reveal_prefix: str | None = None) -> str:
    """The slide notebook as one reveal.js HTML page (figures embedded, no code shown)."""
    from nbconvert import SlidesExporter
    exporter = SlidesExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    if reveal_prefix:
        exporter.reveal_url_prefix = reveal_prefix
    page, _ = exporter.from_notebook_node(slide_nb)
    return page


def build(paths, out: Path, quick: bool = False, timeout: int = 3600, reveal_prefix: str | None = None,
          progress: bool = True) -> dict[str, dict]:
    """Run each notebook and write ``out/<name>.slides.html`` (plus ``index.html``).
    Returns {name: {"status": "ok" or the error, "figures": n, "seconds": s}}; a notebook that fails
    gets no deck."""
    paths, out = prepare(paths, out, "slides")
    results: dict[str, dict] = {}
    for path in tqdm(paths, desc="notebooks", disable=not progress):
        start = time.perf_counter()
        nb, status = execute(path, quick, timeout)
        slides = deck(nb)
        figures = sum(len(_figures(c)) for c in slides.cells if c.cell_type == "code")
        if status == "ok":
            (out / f"{path.stem}.slides.html").write_text(to_html(slides, reveal_prefix), encoding="utf-8")
        results[path.stem] = {"status": status, "figures": figures, "seconds": round(time.perf_counter() - start, 1)}
    items = "\n".join(
        f'<li><a href="{html.escape(name, quote=True)}.slides.html">{html.escape(name)}</a> ({r["figures"]} figures)</li>'
        if r["status"] == "ok" else f'<li>{html.escape(name)} (failed: {html.escape(r["status"])})</li>'
        for name, r in results.items())
    (out / "index.html").write_text(f"<!doctype html><meta charset='utf-8'><title>Visualizing and Understanding: "
                                    f"slides</title><h1>Slides</h1><ul>{items}</ul>", encoding="utf-8")
    return results
