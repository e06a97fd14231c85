"""Lecture slides from the notebooks: one reveal.js deck per notebook, for a 16:9 screen (1280 x 720).

    python -m lecturekit slides                           # every notebook, full mode, into slides/
    python -m lecturekit slides 06_saliency 11_fooling_images --out ~/course/slides
    python -m lecturekit slides --quick 05_occlusion      # small sizes, for a fast check

Each notebook runs top to bottom in a fresh kernel, as for the gallery (``lecturekit.render``),
then the deck is chosen by rules, so that editing a notebook never needs slide metadata:

* the title slide: the notebook's title, its lecture reference ("Lecture 12, part B.7 (...)") and
  the first whole sentence after it, with the formula or list that sentence leads into;
* per section (``## ...``): a slide with its display formulas (``$$...$$``), each with the sentence
  that leads into it, when it has any; one slide per figure it draws, the first with the section's
  first sentence (a section's further figures go below it, reveal.js's vertical slides); and a slide
  with the first sentence alone for a section with neither;
* a figure taller than a slide holds at a readable size is cut at the white rows between its panel
  rows onto slides of their own; every figure is scaled down to the height its slide leaves it;
* the closing slide: the notebook's "What to notice" line.

Sentences are never cut. The slide notebook gets nbconvert's ``slideshow`` metadata (it opens as a
slideshow in Jupyter too); the deck is one HTML file with the figures, reveal.js and MathJax inline
(from the npm registry, see ``lecturekit.npm``), so it is shown without a network.
"""
from __future__ import annotations

import base64
import copy
import html
import io
import json
import re
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import npm
from .render import execute, prepare

FIGURE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
NOTICE = re.compile(r"\*\*What to notice:?\*\*:?\s*(.*)", re.S)
#: The opening sentence that places a notebook in the lecture; shown small on the title slide.
REFERENCE = re.compile(r"^(Lecture \d|Beyond the lecture)")
#: Sections that are not lecture material: the closing slide takes their "What to notice" line.
CLOSING = ("Exercises",)

#: The slide, in CSS pixels, and the height a figure gets under a heading and a sentence or two.
WIDTH, HEIGHT, FIGURE_HEIGHT = 1280, 720, 520
#: A figure is cut into pieces when fitting it whole would shrink it below this scale.
MIN_SCALE = 0.7

#: A sentence ends at . ! or ? before a space and a capital letter (or the end), not after "et al." or "e.g.".
SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)[.!?](?=\s+[A-Z(*_`]|\s*$)")


def _sentences(text: str) -> list[str]:
    """A markdown paragraph as its sentences, each on one line."""
    text, out = " ".join(text.split()), []
    while text:
        end = SENTENCE_END.search(text)
        cut = end.end() if end else len(text)
        out.append(text[:cut].strip())
        text = text[cut:].strip()
    return out


def _sentence(text: str) -> str:
    """The first sentence of a markdown paragraph, whole; a leading lecture reference is skipped."""
    sentences = _sentences(text)
    useful = [x for x in sentences if not REFERENCE.match(x)] or sentences or [""]
    return useful[0]


def _is_formula(block: str) -> bool:
    return block.startswith("$$")


def _is_list(block: str) -> bool:
    return bool(re.match(r"([*-]|\d+\.)\s", block))


def _is_prose(block: str) -> bool:
    return bool(block) and not block.startswith(("#", "[![", "<", "|", "```", "$$")) and not _is_list(block)


def _blocks(source: str) -> list[str]:
    """A markdown cell as blocks: paragraphs, lists, formulas, and each heading line on its own."""
    blocks = []
    for block in re.split(r"\n\s*\n", source.strip()):
        block = block.strip()
        if block.startswith("#"):
            heading, _, rest = block.partition("\n")
            blocks += [heading.strip(), rest.strip()] if rest.strip() else [heading.strip()]
        elif block:
            blocks.append(block)
    return blocks


def _list_items(block: str) -> list[str]:
    """The first sentence of each item of a markdown list, as list lines."""
    items = re.split(r"\n(?=(?:[*-]|\d+\.)\s)", block)
    return [re.match(r"(?:[*-]|\d+\.)\s", item).group(0) + _sentence(re.sub(r"^(?:[*-]|\d+\.)\s", "", item))
            for item in items]


def _lead(blocks: list[str]) -> list[str]:
    """The first whole sentence of the first paragraph (a lecture reference skipped), as markdown
    blocks: when the sentence ends its paragraph and runs into a formula or a list (it ends with a
    colon, or without a full stop), that formula, with the words after it that end the sentence,
    or the first sentence of each list item, come with it."""
    for i, block in enumerate(blocks):
        if not _is_prose(block):
            continue
        sentences = [s for s in _sentences(block) if not REFERENCE.match(s)]
        if not sentences:
            continue
        first = sentences[0]
        if len(sentences) > 1 or first.endswith((".", "!", "?")):
            return [first]
        after = blocks[i + 1] if i + 1 < len(blocks) else ""
        if _is_formula(after):
            return [first, *_formula_with_tail(blocks, i + 1)]
        if _is_list(after):
            return [first, "\n".join(_list_items(after))]
        return [first.rstrip(":") + "."]
    return []


def _formula_with_tail(blocks: list[str], i: int) -> list[str]:
    """The formula ``blocks[i]`` and, when the next paragraph goes on with the same sentence (it
    starts in lower case), that sentence's end."""
    after = blocks[i + 1] if i + 1 < len(blocks) else ""
    if _is_prose(after) and after[0].islower():
        return [blocks[i], _sentences(after)[0]]
    return [blocks[i]]


def _formulas(blocks: list[str], lead: list[str]) -> list[str]:
    """Every display formula of a section not already in ``lead``, each after the sentence that leads
    into it (the last sentence of the paragraph before it)."""
    out = []
    for i, block in enumerate(blocks):
        if not _is_formula(block) or block in lead:
            continue
        before = blocks[i - 1] if i and _is_prose(blocks[i - 1]) else ""
        intro = _sentences(before)[-1] if before else ""
        out += [x for x in [intro] if x and x not in lead] + _formula_with_tail(blocks, i)
    return out


def _figures(cell) -> list:
    """The outputs of a code cell that hold a figure (images only: text, errors and widgets dropped)."""
    return [o for o in cell.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")
            and any(t in o.get("data", {}) for t in FIGURE_TYPES)]


def _cuts(rgb) -> list[int]:
    """Rows where a figure (H, W, 3) may be cut: the middles of runs of at least 4 rows of its
    background colour (its top-left pixel's) that follow a row of panels, never the margins. A run
    after a title or a line of tick labels is no place to cut (it would part them from their
    panels): the band of rows above a cut must be mostly ink from its first inked column to its
    last (a row of panels is, a line of text is not)."""
    ink = (rgb != rgb[0, 0]).any(axis=2)                 # (H, W)
    rows = ink.any(axis=1)
    cuts, band_start, y, h = [], None, 0, len(rows)
    while y < h:
        if rows[y]:
            band_start = y if band_start is None else band_start
            y += 1
            continue
        end = y
        while end < h and not rows[end]:
            end += 1
        if band_start is not None and end < h and end - y >= 4:
            band = ink[band_start:y]
            inked = band.any(axis=0).nonzero()[0]
            if band[:, inked[0]:inked[-1] + 1].mean() >= 0.7:      # panels: 0.8-1; titles, labels: under 0.6
                cuts.append((y + end) // 2)
        if end - y >= 4 or band_start is None:
            band_start = None
        y = end
    return cuts


def split(figure, height: int = FIGURE_HEIGHT, min_scale: float = MIN_SCALE) -> list:
    """A PNG figure output taller than ``height / min_scale`` pixels as pieces cut at white rows between
    its panel rows (outputs of the same shape), each at most ``height`` rows tall where the rows allow
    and never more than ``height / min_scale``; otherwise ``[figure]``. A figure without such rows, or
    one Pillow cannot read, stays whole (its slide scales it)."""
    import numpy as np
    from PIL import Image
    data = figure.get("data", {}).get("image/png")
    if not data:
        return [figure]
    try:
        img = Image.open(io.BytesIO(base64.b64decode(data)))
        if img.height <= height / min_scale:
            return [figure]
        cuts = _cuts(np.asarray(img.convert("RGB")))
    except OSError:                                      # not a PNG Pillow can read
        return [figure]
    h, edges = img.height, [0]
    while edges[-1] < h:                                 # each piece ends at the last cut within `height`
        top = edges[-1]
        within = [c for c in cuts if top < c <= top + height]
        cut = h if h - top <= height else max(within) if within else min((c for c in cuts if c > top), default=h)
        if cut - top > height / min_scale:
            return [figure]
        edges.append(cut)
    pieces = []
    for top, bottom in zip(edges, edges[1:]):
        buffer = io.BytesIO()
        img.crop((0, top, img.width, bottom)).save(buffer, format="PNG")
        piece = copy.deepcopy(figure)
        piece["data"] = {"image/png": base64.b64encode(buffer.getvalue()).decode(), "text/plain": "<Figure piece>"}
        pieces.append(piece)
    return pieces


def _slide(text: str, kind: str):
    import nbformat
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["slideshow"] = {"slide_type": kind}
    return cell


def _sections(nb):
    """The notebook as [heading, markdown blocks, figure outputs] per heading (before the first:
    heading None)."""
    sections = [[None, [], []]]
    for cell in nb.cells:
        if cell.cell_type == "code":
            sections[-1][2].extend(_figures(cell))
            continue
        if cell.cell_type != "markdown":
            continue
        for block in _blocks(cell.source):
            if block.startswith("#"):
                sections.append([block.lstrip("#").strip(), [], []])
            else:
                sections[-1][1].append(block)
    return sections


def deck(nb):
    """An executed notebook -> the slide notebook (the rules of this module's docstring)."""
    import nbformat
    sections = [s for s in _sections(nb) if s[0] is not None or s[2]]
    title, intro, _ = sections[0] if sections and sections[0][0] else (None, [], [])
    reference = next((s for b in intro if _is_prose(b) for s in _sentences(b)[:1] if REFERENCE.match(s)), "")
    opening = [f"# {title or 'Notebook'}"]
    if reference:
        opening.append(f'<p class="reference">{html.escape(reference.rstrip("."))}</p>')
    cells = [_slide("\n\n".join([*opening, *_lead(intro)]), "slide")]
    notice = ""
    for n, (heading, blocks, figures) in enumerate(sections):
        found = NOTICE.search("\n\n".join(blocks))
        if found:
            notice = _sentence(found.group(1))
        if heading in CLOSING or found:
            continue
        name = f"## {heading or title or ''}"
        if n == 0 and title is not None:                 # the title slide has its sentence and formula
            lead, formulas, text_slide = [], [], True
        else:
            lead = _lead(blocks)
            formulas = _formulas(blocks, lead)
            text_slide = bool(formulas or any(map(_is_formula, lead)) or (lead and not figures))
            if text_slide:                               # the formulas, or the sentence of a section without figures
                cells.append(_slide("\n\n".join([name, *lead, *formulas]), "slide"))
        for i, figure in enumerate(p for f in figures for p in split(f)):
            first = i == 0 and not text_slide            # the section's first slide carries its sentence
            cells.append(_slide("\n\n".join([name, *(lead if first else [])]), "slide" if first else "subslide"))
            figure_cell = nbformat.v4.new_code_cell("")
            figure_cell.outputs = [copy.deepcopy(figure)]
            figure_cell.metadata["slideshow"] = {"slide_type": "-"}
            cells.append(figure_cell)
    if notice:
        cells.append(_slide(f"## What to notice\n\n{notice}", "slide"))
    return nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(nb.metadata))


#: The deck's own layout: every slide is a column of the slide's height; a figure takes the height
#: the text leaves it and is scaled down (never up) to fit it.
CSS = f"""
.reveal {{ font-family: "Source Sans Pro", "Helvetica Neue", Helvetica, Arial, sans-serif; font-size: 30px; }}
.reveal .slides section.lk {{ height: {HEIGHT}px; box-sizing: border-box; padding: 28px 40px 36px;
  flex-direction: column; justify-content: center; align-items: center; text-align: center; }}
.reveal .slides section.lk-figure {{ justify-content: flex-start; }}
.reveal h1 {{ font-size: 64px; margin: 0 0 20px; text-transform: none; line-height: 1.15; }}
.reveal h2 {{ font-size: 42px; margin: 0 0 12px; text-transform: none; line-height: 1.15; }}
.reveal p, .reveal ul, .reveal ol {{ margin: 0 0 14px; line-height: 1.3; max-width: 1150px; }}
.reveal ul, .reveal ol {{ text-align: left; display: block; }}
.reveal p.reference {{ font-size: 24px; color: #666; }}
.reveal a.anchor-link {{ display: none; }}
.reveal code {{ font-size: 0.85em; color: #333; }}
.reveal figure {{ flex: 1 1 0; min-height: 0; width: 100%; margin: 0; display: flex; justify-content: center;
  align-items: center; }}
.reveal figure img {{ max-width: 100%; max-height: 100%; object-fit: contain; margin: 0; }}
.reveal mjx-container[display="true"] {{ margin: 10px 0 18px !important; max-width: 100%; }}
.reveal mjx-container[display="true"] > svg {{ max-width: 100%; height: auto; }}
"""

MATHJAX_CONFIG = {"tex": {"inlineMath": [["$", "$"], ["\\(", "\\)"]], "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
                          "processEscapes": True},
                  "options": {"enableMenu": False}, "svg": {"fontCache": "global"}}

REVEAL_CONFIG = {"width": WIDTH, "height": HEIGHT, "margin": 0.02, "center": False, "display": "flex",
                 "hash": True, "slideNumber": "c/t", "transition": "slide"}


def _assets() -> dict[str, str]:
    """The texts a deck inlines: reveal.js (script, style, white theme without its web-font import)
    and MathJax (TeX to SVG, every extension in the one file: nothing is loaded later)."""
    theme = re.sub(r"@import url\([^)]*\);", "", npm.read("reveal.js", "dist/theme/white.css"))
    return {"reveal.js": npm.read("reveal.js", "dist/reveal.js"),
            "reveal.css": npm.read("reveal.js", "dist/reveal.css"), "theme.css": theme,
            "mathjax.js": npm.read("mathjax", "es5/tex-svg-full.js")}


def _script(text: str) -> str:
    return text.replace("</script", "<\\/script")


def _figure_html(output) -> str:
    data = output["data"]
    kind = next(t for t in FIGURE_TYPES if t in data)
    payload = data[kind]
    if kind == "image/svg+xml":
        payload = base64.b64encode((payload if isinstance(payload, str) else "".join(payload)).encode()).decode()
    meta = output.get("metadata", {}).get(kind, {})
    size = "".join(f' {k}="{int(meta[k])}"' for k in ("width", "height") if k in meta)
    return f'<figure><img src="data:{kind};base64,{payload.strip()}"{size} alt=""></figure>'


def _slides_html(slide_nb) -> str:
    """The slide notebook's cells as reveal.js sections: a "slide" cell opens a column, "subslide" a
    slide below, "-" continues the slide."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    columns: list[list[list[str]]] = []
    for cell in slide_nb.cells:
        kind = cell.metadata.get("slideshow", {}).get("slide_type", "-")
        if kind == "slide" or not columns:
            columns.append([[]])
        elif kind == "subslide":
            columns[-1].append([])
        if cell.cell_type == "markdown":
            columns[-1][-1].append(markdown2html_mistune(cell.source))
        else:
            columns[-1][-1] += [_figure_html(o) for o in _figures(cell)]

    def section(parts):
        kind = "lk-figure" if any(p.startswith("<figure") for p in parts) else "lk-text"
        return f'<section class="lk {kind}">\n' + "\n".join(parts) + "\n</section>"

    return "\n".join(section(c[0]) if len(c) == 1 else "<section>\n" + "\n".join(map(section, c)) + "\n</section>"
                     for c in columns)


def to_html(slide_nb, assets: dict[str, str] | None = None) -> str:
    """The slide notebook as one reveal.js page that needs no network: figures, reveal.js and MathJax
    inline (``assets``: the texts of ``_assets()``, read from the npm cache when not given)."""
    assets = assets or _assets()
    title = html.escape(next((c.source.splitlines()[0].lstrip("# ") for c in slide_nb.cells
                              if c.cell_type == "markdown" and c.source), "Slides"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · slides</title>
<style>{assets["reveal.css"]}</style>
<style>{assets["theme.css"]}</style>
<style>{CSS}</style>
<script>window.MathJax = {json.dumps(MATHJAX_CONFIG)};</script>
<script>{_script(assets["mathjax.js"])}</script>
</head>
<body>
<div class="reveal"><div class="slides">
{_slides_html(slide_nb)}
</div></div>
<script>{_script(assets["reveal.js"])}</script>
<script>Reveal.initialize({json.dumps(REVEAL_CONFIG)});</script>
</body>
</html>
"""


def build(paths, out: Path, quick: bool = False, timeout: int = 3600, progress: bool = True) -> dict[str, dict]:
    """Run each notebook and write ``out/<name>.slides.html`` (plus ``index.html``).
    Returns {name: {"status": "ok" or the error, "figures": n, "seconds": s}}; a notebook that fails
    gets no deck. reveal.js and MathJax are read (fetched on first use) before any notebook runs."""
    paths, out = prepare(paths, out, "slides")
    assets = _assets()
    results: dict[str, dict] = {}
    for path in tqdm(paths, desc="notebooks", disable=not progress):
        start = time.perf_counter()
        nb, status = execute(path, quick, timeout)
        slides = deck(nb)
        figures = sum(len(_figures(c)) for c in nb.cells if c.cell_type == "code")
        if status == "ok":
            (out / f"{path.stem}.slides.html").write_text(to_html(slides, assets), encoding="utf-8")
        results[path.stem] = {"status": status, "figures": figures, "seconds": round(time.perf_counter() - start, 1)}
    items = "\n".join(
        f'<li><a href="{html.escape(name, quote=True)}.slides.html">{html.escape(name)}</a> ({r["figures"]} figures)</li>'
        if r["status"] == "ok" else f'<li>{html.escape(name)} (failed: {html.escape(r["status"])})</li>'
        for name, r in results.items())
    (out / "index.html").write_text(f"<!doctype html><meta charset='utf-8'><title>Visualizing and Understanding: "
                                    f"slides</title><h1>Slides</h1><ul>{items}</ul>", encoding="utf-8")
    return results
