import base64
import io

import nbformat
import numpy as np
import pytest
from PIL import Image

from lecturekit import npm, slides
from lecturekit.__main__ import main
from lecturekit.render import CHECKOUT_NOTEBOOKS

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really an image %d").decode()
#: Stand-ins for the texts of reveal.js and MathJax a deck inlines.
ASSETS = {"reveal.js": "var Reveal = {initialize() {}}; // </script> in a string", "reveal.css": ".reveal {}",
          "theme.css": "section {}", "mathjax.js": "var MathJax = {};"}


@pytest.fixture(autouse=True)
def _no_npm(monkeypatch):
    """reveal.js and MathJax are the stand-ins above: these tests need neither npm nor its cache."""
    monkeypatch.setattr(slides, "_assets", lambda: dict(ASSETS))


def _figure(n):
    return nbformat.v4.new_output("display_data", data={"image/png": PNG.replace("A", chr(66 + n)),
                                                        "text/plain": "<Figure>"})


def _png(rows: list[int], width: int = 300, gap: int = 20, titles: bool = False) -> str:
    """A white PNG with a black panel of each height in ``rows``, ``gap`` white rows around each;
    with ``titles``, a line of "text" (sparse ink) above each panel, 6 rows clear of it."""
    title = 12 + 6 if titles else 0
    img = np.full((sum(rows) + (gap + title) * len(rows) + gap, width, 3), 255, np.uint8)
    y = gap
    for h in rows:
        if titles:
            img[y:y + 12, 100:200:3] = 0
            y += title
        img[y:y + h, 10:width - 10] = 0
        y += h + gap
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _height(output) -> int:
    return Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"]))).height


def _executed():
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("plt.plot(x)", id="plot")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a printed line"), _figure(0)]
    two = nbformat.v4.new_code_cell("for i in range(2): show(i)", id="two")
    two.outputs = [_figure(1)]
    more = nbformat.v4.new_code_cell("show()", id="more")
    more.outputs = [_figure(2)]
    quiet = nbformat.v4.new_code_cell("x = 1", id="quiet")
    nb.cells = [
        nbformat.v4.new_markdown_cell("[![Open In Colab](badge)](link)\n\n# 05 · Occlusion\n\nLecture 12, part B.6 "
                                      "(Zeiler & Fergus 2014). Cover a patch and watch the score. More text."),
        nbformat.v4.new_code_cell("import lecturekit", id="setup"),
        nbformat.v4.new_markdown_cell("## The map\n\nSimonyan et al. found that maps mark the object. Then more."),
        code, quiet, two, more,
        nbformat.v4.new_markdown_cell("## Exercises\n\n1. Try it.\n\n**What to notice:** low values mark evidence. "
                                      "Second sentence."),
    ]
    return nb


def test_deck_has_a_slide_per_figure_with_its_message():
    deck = slides.deck(_executed())
    kinds = [(c.cell_type, c.metadata["slideshow"]["slide_type"]) for c in deck.cells]
    assert kinds == [("markdown", "slide"), ("markdown", "slide"), ("code", "-"), ("markdown", "subslide"),
                     ("code", "-"), ("markdown", "subslide"), ("code", "-"), ("markdown", "slide")]
    assert deck.cells[0].source == ("# 05 · Occlusion\n\n<p class=\"reference\">Lecture 12, part B.6 (Zeiler &amp; "
                                    "Fergus 2014)</p>\n\nCover a patch and watch the score.")
    assert deck.cells[1].source == "## The map\n\nSimonyan et al. found that maps mark the object."
    assert deck.cells[-1].source == "## What to notice\n\nlow values mark evidence."
    figures = [c for c in deck.cells if c.cell_type == "code"]
    assert all(c.source == "" and all(o.output_type == "display_data" for o in c.outputs) for c in figures)
    page = slides.to_html(deck, ASSETS)
    assert "Reveal.initialize" in page and "plt.plot" not in page and "a printed line" not in page
    assert all(PNG.replace("A", chr(66 + n)) in page for n in range(3))
    assert page.count('<section class="lk') == 5 and page.count("<section>") == 1     # one column of three


def test_a_deck_is_one_file_with_reveal_and_mathjax_inline():
    page = slides.to_html(slides.deck(_executed()), ASSETS)
    assert all(text.replace("</script", "<\\/script") in page for text in ASSETS.values())
    assert "</script> in a string" not in page                   # a script cannot end the page's <script> early
    assert "http://" not in page and "https://" not in page and "<link" not in page


def _lecture(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(c) if isinstance(c, str) else c for c in cells]
    return nb


def _drawing(*outputs):
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = list(outputs)
    return cell


LONG = ("Occlusion needs one forward pass per placement; the gradient answers \"which pixels matter\" in one "
        "backward pass: how much does the *unnormalised* class score change when one pixel changes, for "
        "every pixel of the image at once, whatever the model is?")


def test_title_slide_has_whole_sentences_and_the_formula_they_lead_into():
    opening = slides.deck(_lecture(f"# 06 · Saliency maps\n\nLecture 12, part B.7 (Simonyan et al. 2014). {LONG} "
                                   "More.")).cells[0].source
    assert LONG in opening and "…" not in opening                # never cut, however long
    assert '<p class="reference">Lecture 12, part B.7 (Simonyan et al. 2014)</p>' in opening
    formula = "$$\\mathcal{L}(x) = \\alpha\\,C(x) + \\beta\\,S(x)$$"
    opening = slides.deck(_lecture(f"# 15 · Style\n\nLecture 12, part D.15. Optimise an image $x$ so that it "
                                   f"matches:\n\n{formula}\n\nwith $C$ the content loss. Then more.")).cells[0].source
    assert opening.endswith(f"Optimise an image $x$ so that it matches:\n\n{formula}\n\nwith $C$ the content loss.")
    opening = slides.deck(_lecture("# 09 · Checks\n\nLecture 12, part B. Two checks ask whether a map "
                                   "explains the *model*:\n\n* **Randomisation**: destroy the weights. Then "
                                   "look.\n* **Deletion**: remove pixels.")).cells[0].source
    assert opening.endswith("the *model*:\n\n* **Randomisation**: destroy the weights.\n* **Deletion**: remove pixels.")
    opening = slides.deck(_lecture("# 17 · ViT\n\nBeyond the lecture notes. Tokens are mixed with "
                                   "weights\n\n```python\nA = softmax(q @ k)\n```")).cells[0].source
    assert opening.endswith("Tokens are mixed with weights.")   # no formula to finish it: a full stop
    assert "Beyond the lecture notes" in opening


def test_sections_without_figures_get_their_formula_or_sentence():
    formula = "$$\\hat M_c(x) = \\frac{1}{n}\\sum_i \\nabla_x S_c(x + \\varepsilon_i)$$"
    deck = slides.deck(_lecture(
        "# 06 · Saliency\n\nMaps.",
        "## SmoothGrad\n\nThe gradient is grainy. Smilkov et al. average it over noisy copies:\n\n"
        f"{formula}\n\nBy hand first.", nbformat.v4.new_code_cell("assert True"),
        "## Integrated gradients\n\nThe gradient is local. Integrate it:\n\n$$IG = \\int g$$",
        _drawing(_figure(0)), _drawing(_figure(1)),
        "## By hand\n\nWritten out, then checked against the helper. More.", nbformat.v4.new_code_cell("x = 1"),
        "## Nothing to say", nbformat.v4.new_code_cell("x = 2"),
        "## Exercises\n\n1. Try it.\n\n**What to notice:** maps differ. Really."))
    shown = [(c.metadata["slideshow"]["slide_type"], c.source) for c in deck.cells]
    assert shown[1] == ("slide", "## SmoothGrad\n\nThe gradient is grainy.\n\n"
                                 f"Smilkov et al. average it over noisy copies:\n\n{formula}")
    assert shown[2] == ("slide", "## Integrated gradients\n\nThe gradient is local.\n\nIntegrate it:\n\n"
                                 "$$IG = \\int g$$")
    assert shown[3:7] == [("subslide", "## Integrated gradients"), ("-", ""), ("subslide", "## Integrated gradients"),
                          ("-", "")]                     # its figures below its formula
    assert shown[7] == ("slide", "## By hand\n\nWritten out, then checked against the helper.")
    assert shown[8:] == [("slide", "## What to notice\n\nmaps differ.")]      # no slide for an empty section


def test_a_tall_figure_is_cut_between_its_panel_rows():
    tall = nbformat.v4.new_output("display_data", data={"image/png": _png([300, 300, 300, 300]), "text/plain": "<F>"})
    pieces = slides.split(tall)
    assert len(pieces) >= 2 and all(_height(p) <= slides.FIGURE_HEIGHT for p in pieces)
    assert sum(_height(p) for p in pieces) == _height(tall)
    for piece in pieces:                                     # every cut in a white gap: each piece holds whole panels
        rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(piece["data"]["image/png"]))).convert("RGB"))
        assert (rgb[0] == 255).all() or piece is pieces[0]
        assert (rgb[-1] == 255).all()
    titled = nbformat.v4.new_output("display_data", data={"image/png": _png([300] * 4, titles=True)})
    pieces = slides.split(titled)
    assert len(pieces) >= 2
    for piece in pieces:                                     # each piece opens with a title, never with a panel
        rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(piece["data"]["image/png"]))).convert("RGB"))
        first = rgb[(rgb != 255).any(axis=(1, 2))][0]
        assert (first != 255).any(axis=1).mean() < 0.3
    short = nbformat.v4.new_output("display_data", data={"image/png": _png([300, 300])})
    assert slides.split(short) == [short]                    # fits as it is
    solid = nbformat.v4.new_output("display_data", data={"image/png": _png([1200])})
    assert slides.split(solid) == [solid]                    # nowhere to cut: the slide scales it
    deck = slides.deck(_lecture("# T\n\nA.", "## Grid\n\nFour rows.", _drawing(tall)))
    kinds = [c.metadata["slideshow"]["slide_type"] for c in deck.cells]
    assert kinds == ["slide", "slide", "-"] + ["subslide", "-"] * (len(pieces) - 1)


def test_without_npm_or_a_cached_copy_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("LECTUREKIT_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", str(tmp_path))                    # no npm
    monkeypatch.delenv("LECTUREKIT_OFFLINE")
    with pytest.raises(npm.Unavailable, match="npm is not installed.*download slides.*apt-get install npm"):
        npm.read("reveal.js", "dist/reveal.js")
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "1")
    with pytest.raises(npm.Unavailable, match="LECTUREKIT_OFFLINE=1 forbids"):
        npm.fetch()
    assert main(["download", "slides"]) == 1


def test_slides_command_writes_a_deck_and_refuses_unknown_notebooks(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")             # the figures must still be kept
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · A plot\n\nOne line about it."),
                nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]); plt.title('t');")]
    nbformat.write(nb, folder / "01_plot.ipynb")
    out = tmp_path / "slides"
    assert main(["slides", "--notebooks", str(folder), "--out", str(out)]) == 0
    assert (out / "01_plot.slides.html").read_text().count('src="data:image/png;base64') == 1
    assert "01_plot.slides.html" in (out / "index.html").read_text()
    assert "1 of 1 decks written" in capsys.readouterr().out
    assert main(["slides", "--notebooks", str(folder), "05_occlusion"]) == 2
    assert "no notebook at '05_occlusion'" in capsys.readouterr().err


def test_a_lecture_notebook_deck_holds_its_figures(monkeypatch):
    """One real deck (notebook 01 in quick mode, offline): every figure the notebook drew is in it."""
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "1")
    nb, status = slides.execute(CHECKOUT_NOTEBOOKS / "01_first_layer_filters.ipynb", quick=True)
    assert status == "ok"
    drawn = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "image/png" in o.get("data", {})]
    assert len(drawn) >= 3
    page = slides.to_html(slides.deck(nb), ASSETS)
    assert all(png in page for png in drawn)
    assert "First-layer filters" in page and "What to notice" in page


FAKE_NPM = """#!/bin/sh
# npm pack SPEC... --pack-destination DIR: a tarball per spec holding package/FILE for each FILE below
echo "$@" >> "$(dirname "$0")/calls"
dest=$(eval echo \\${$#})
work=$(mktemp -d)
mkdir -p "$work/package/dist/theme" "$work/package/es5"
for f in dist/reveal.js dist/reveal.css dist/theme/white.css es5/tex-svg-full.js; do
  echo "/* $f */" > "$work/package/$f"
done
for spec in "$@"; do
  case "$spec" in *@*) tar czf "$dest/$(echo "$spec" | tr @ -).tgz" -C "$work" package ;; esac
done
"""


def test_download_slides_packs_each_package_once_with_npm(monkeypatch, tmp_path, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.delenv("LECTUREKIT_OFFLINE")
    assert main(["download", "slides"]) == 0
    assert "reveal.js-5.2.1.tgz" in capsys.readouterr().out
    assert (bin_dir / "calls").read_text().split()[:3] == ["pack", "reveal.js@5.2.1", "mathjax@3.2.2"]
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "1")                # from the cache now: no npm, no network
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert npm.read("mathjax", "es5/tex-svg-full.js") == "/* es5/tex-svg-full.js */\n"
    assert main(["download", "slides"]) == 0
    assert len((bin_dir / "calls").read_text().splitlines()) == 1
