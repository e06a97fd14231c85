"""Every notebook can be opened alone: the Colab badge at the top, the same setup cell first,
nothing read from beside it; the README and the tour list every notebook."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB = "https://colab.research.google.com/github/cs231n-companion/visualizing-understanding/blob/main/notebooks/"


def _cells(path):
    return [("".join(c["source"]), c["cell_type"]) for c in json.loads(path.read_text())["cells"]]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 19


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_and_setup_cell(path):
    cells = _cells(path)
    title, kind = cells[0]
    assert kind == "markdown" and f"]({COLAB}{path.name})" in title.splitlines()[0]
    setup, kind = cells[1]
    assert kind == "code" and setup == _cells(NOTEBOOKS[0])[1][0]          # the same cell everywhere
    assert 'find_spec("lecturekit") is None' in setup and "git+https://github.com/cs231n-companion" in setup
    code = "\n".join(src for src, kind in cells if kind == "code")
    assert not re.search(r"\.\./|DATA_DIR|open\(", code), "a notebook must not read files beside it"


def test_readme_and_tour_list_every_notebook():
    readme = (ROOT / "README.md").read_text()
    tour = "\n".join(src for src, _ in _cells(ROOT / "notebooks" / "00_tour.ipynb"))
    for path in NOTEBOOKS:
        assert f"[{path.stem}](notebooks/{path.name})" in readme and f"({COLAB}{path.name})" in readme
        assert path.stem == "00_tour" or f'"{path.stem}"' in tour


@pytest.mark.parametrize("path", NOTEBOOKS + sorted((ROOT / "assignments").glob("*.ipynb")), ids=lambda p: p.stem)
def test_the_notebook_is_valid_nbformat_with_unique_cell_ids(path):
    nbformat = pytest.importorskip("nbformat")
    raw = json.loads(path.read_text())
    ids = [c.get("id") for c in raw["cells"]]              # as stored: nbformat.read would invent missing ones
    assert (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5) and None not in ids and len(set(ids)) == len(ids), ids
    nbformat.validate(nbformat.from_dict(raw))
