import nbformat

from lecturekit.__main__ import main


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def test_gallery_renders_figures_by_name_and_reports_failures(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")             # as tasks.sh sets it: the figures must still be kept
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "01_good.ipynb", [
        "import os\nprint('quick mode:', os.environ['LECTUREKIT_QUICK'])",
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('a figure')\nplt.show()",
        "plt.figure(); plt.imshow([[0, 1], [1, 0]])   # shown at the end of the cell, without plt.show()"])
    bad = _notebook(folder / "02_<img src=x onerror=alert(1)>.ipynb", ["raise ValueError('<script>broken on purpose</script>')"])
    out = tmp_path / "gallery"
    assert main(["gallery", "--out", str(out), "--notebooks", str(folder), "01_good", str(bad)]) == 1
    page = (out / "01_good.html").read_text()
    assert page.count('src="data:image/png;base64') == 2 and "quick mode: 0" in page
    index = (out / "index.html").read_text()
    assert 'href="01_good.html"' in index and "failed" in index
    assert "<img" not in index and "<script>" not in index                  # names and errors are escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in index and "&lt;script&gt;broken" in index
    err = capsys.readouterr()
    assert "1 of 2 notebooks rendered" in err.out and "broken on purpose" in err.err


def test_gallery_refuses_what_it_cannot_find(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["gallery", "--notebooks", str(empty)]) == 2
    assert "no notebooks in" in capsys.readouterr().err
    _notebook(empty / "07_there.ipynb", ["1"])
    assert main(["gallery", "--notebooks", str(empty), "05_occlusion"]) == 2
    err = capsys.readouterr().err
    assert "no notebook at '05_occlusion'" in err and "07_there" in err
    assert main(["gallery", "--out", str(tmp_path / "g"), str(tmp_path / "missing.ipynb")]) == 2
    assert not (tmp_path / "g" / "index.html").exists()


def test_gallery_finds_the_checkout_notebooks_by_name(tmp_path, monkeypatch):
    from lecturekit import render
    monkeypatch.chdir(tmp_path)                          # no ./notebooks here: the checkout's are used
    assert [p.name for p in render.find(["05_occlusion"])] == ["05_occlusion.ipynb"]
    assert len(render.find()) >= 19


def test_gallery_without_nbconvert_names_the_extra(monkeypatch, capsys, tmp_path):
    import builtins
    real_import = builtins.__import__

    def no_nbconvert(name, *args, **kwargs):
        if name.startswith("nbconvert"):
            raise ImportError("No module named 'nbconvert'", name="nbconvert")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_nbconvert)
    path = _notebook(tmp_path / "01_x.ipynb", ["1"])
    assert main(["gallery", "--out", str(tmp_path / "g"), str(path)]) == 2
    assert "lecturekit[gallery]" in capsys.readouterr().err


def test_pages_need_no_network_widget_outputs_are_left_out():
    import nbformat
    from nbconvert import HTMLExporter

    from lecturekit import render
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("view")
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    cell.outputs = [nbformat.v4.new_output("display_data", {render.WIDGET_VIEW: view, "text/plain": "IntSlider(value=3)"}),
                    nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    nb.cells = [cell]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    page, _ = HTMLExporter().from_notebook_node(render.static(nb))
    assert "data:image/png;base64,iVBORw0KGgo=" in page
    assert "IntSlider" not in page and "widget-view" not in page and "cdn.jsdelivr" not in page
