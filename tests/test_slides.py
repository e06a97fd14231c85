import base64

import nbformat
import pytest

from lecturekit import slides
from lecturekit.__main__ import main
from lecturekit.render import CHECKOUT_NOTEBOOKS

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really an image %d").decode()


def _figure(n):
    return nbformat.v4.new_output("display_data", data={"image/png": PNG.replace("A", chr(66 + n)),
                                                        "text/plain": "<Figure>"})


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
    assert deck.cells[0].source == "# 05 · Occlusion\n\nCover a patch and watch the score."
    assert deck.cells[1].source == "## The map\n\nSimonyan et al. found that maps mark the object."
    assert deck.cells[-1].source == "## What to notice\n\nlow values mark evidence."
    figures = [c for c in deck.cells if c.cell_type == "code"]
    assert all(c.source == "" and all(o.output_type == "display_data" for o in c.outputs) for c in figures)
    page = slides.to_html(deck)
    assert "reveal" in page and "plt.plot" not in page and "a printed line" not in page
    assert all(PNG.replace("A", chr(66 + n)) in page for n in range(3))


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
    page = slides.to_html(slides.deck(nb))
    assert all(png in page for png in drawn)
    assert "First-layer filters" in page and "What to notice" in page
