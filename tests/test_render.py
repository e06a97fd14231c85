import nbformat

from lecturekit.__main__ import main


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def test_gallery_renders_figures_and_reports_failures(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    good = _notebook(tmp_path / "01_good.ipynb", [
        "import os\nprint('quick mode:', os.environ['LECTUREKIT_QUICK'])",
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('a figure')\nplt.show()"])
    bad = _notebook(tmp_path / "02_bad.ipynb", ["raise ValueError('broken on purpose')"])
    out = tmp_path / "gallery"
    assert main(["gallery", "--out", str(out), str(good), str(bad)]) == 1
    html = (out / "01_good.html").read_text()
    assert "data:image/png;base64" in html and "quick mode: 0" in html
    assert "broken on purpose" in (out / "02_bad.html").read_text()
    index = (out / "index.html").read_text()
    assert 'href="01_good.html"' in index and "02_bad.html" in index and "failed" in index
    err = capsys.readouterr()
    assert "1 of 2 notebooks rendered" in err.out and "02_bad failed: ValueError: broken on purpose" in err.err
    assert main(["gallery", "--out", str(out), str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook at" in capsys.readouterr().err
