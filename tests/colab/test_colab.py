"""Google Colab as it is: lecturekit in an environment holding Colab's packages (constraints.txt).

`bash tasks.sh test` builds that environment (.venv-colab: the pins and the test tools, not
lecturekit) and runs these tests in it with LECTUREKIT_COLAB_WHEEL naming a wheel of this checkout:

* installing the wheel would replace none of the installed packages (pip's own dry-run report);
* every notebook runs top to bottom alone in an empty folder, as "Open in Colab" opens it, in quick
  mode and offline; its setup cell installs lecturekit from the wheel (pip reaches the index for
  the dependencies Colab lacks), prints no pip error and leaves Colab's packages as they were;
* notebook 00 is given a photo through its upload button, sent over the comm as ipywidgets 7's
  JavaScript sends one, and classifies it;
* the widget state stored in each notebook is of the protocol Colab's front end renders (ipywidgets
  7: @jupyter-widgets/controls 1.5.0), progress bars included; no cell prints a warning.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import frontend

pytestmark = pytest.mark.colab

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# The widget modules and versions of ipywidgets 7.x, which Colab renders (ipywidgets 8 writes
# controls 2.0.0 and base 2.0.0, which it does not); the state format itself is 2.0 in both.
COLAB_MODULES = {"@jupyter-widgets/controls": "1.5.0", "@jupyter-widgets/base": "1.2.0",
                 "@jupyter-widgets/output": "1.0.0"}
VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """{package: version} from constraints.txt."""
    lines = (Path(__file__).with_name("constraints.txt")).read_text().splitlines()
    return {_norm(n): v for n, v in (line.split("#")[0].strip().split("==") for line in lines
                                     if line.strip() and not line.lstrip().startswith("#"))}


def installed() -> dict[str, str]:
    """{package: version} installed in this environment, read afresh by pip."""
    out = subprocess.run([sys.executable, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                         check=True).stdout
    return {_norm(p["name"]): p["version"] for p in json.loads(out)}


def _pip(*args):
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def wheel():
    path = os.environ.get("LECTUREKIT_COLAB_WHEEL")
    if not path or not Path(path).is_file():
        pytest.fail("LECTUREKIT_COLAB_WHEEL must name a wheel of this checkout (bash tasks.sh test builds one: "
                    "python -m pip wheel --no-deps -w DIR .)")
    return Path(path)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    return tmp_path_factory.mktemp("torch_home")


def test_the_environment_holds_colabs_pins():
    have = installed()
    wrong = {name: have.get(name, "missing") for name, version in pins().items() if have.get(name) != version}
    assert not wrong, f"this environment is not Colab's: {wrong} (expected {pins()}); rebuild .venv-colab"


def test_installing_lecturekit_replaces_nothing(wheel, tmp_path):
    _pip("uninstall", "-y", "-q", "lecturekit")
    before = installed()
    assert "lecturekit" not in before
    report = tmp_path / "report.json"
    run = _pip("install", "--dry-run", "--quiet", "--report", str(report), str(wheel))
    assert run.returncode == 0, f"pip could not resolve lecturekit here:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    plan = {_norm(item["metadata"]["name"]): item["metadata"]["version"] for item in json.loads(report.read_text())["install"]}
    assert "lecturekit" in plan, plan
    replaced = {name: f"{before[name]} -> {version}" for name, version in plan.items() if name in before}
    pinned = sorted(set(replaced) & set(pins()))
    assert not replaced, (f"installing lecturekit would replace {replaced}"
                          + (f", of them Colab's pinned {pinned}" if pinned else "") + f"; it would add {plan}")


def _kernel_env(wheel, torch_home) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LECTUREKIT_", "PYTHON", "MPLBACKEND", "JUPYTER", "VIRTUAL_ENV"))}
    env.update(LECTUREKIT_OFFLINE="1", LECTUREKIT_QUICK="1", LECTUREKIT_DEVICE="cpu", LECTUREKIT_PIP=str(wheel),
               TORCH_HOME=str(torch_home))
    return env


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output["text"]
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    return output.get("data", {}).get("text/plain", "")


def run_alone(path: Path, folder: Path, env: dict, after=None, extra=()) -> nbformat.NotebookNode:
    """Run a copy of the notebook alone in ``folder``, cell by cell, in a kernel of this environment;
    ``after(index, cell, client)`` is called after each cell; the ``extra`` code cells run last."""
    folder.mkdir(parents=True)
    shutil.copy(path, folder)
    nb = nbformat.read(folder / path.name, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    with client.setup_kernel(env=env):
        cells = list(nb.cells)
        for code in extra:
            nb.cells.append(nbformat.v4.new_code_cell(code))
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)            # raises CellExecutionError, naming the cell
            if after is not None and index < len(cells):
                after(index, cell, client)
        client.set_widgets_metadata()
    return nb


def check_widgets(nb, name: str) -> set:
    """Every widget shown has stored state of Colab's protocol; returns the model names."""
    state = nb.metadata.get("widgets", {}).get(STATE)
    uses_widgets = any(c.cell_type == "code" and re.search(r"interactive\(|FileUpload\(", c.source) for c in nb.cells)
    if state is None:
        assert not uses_widgets, f"{name}: shows widgets but stored no widget state"
        return set()
    assert (state["version_major"], state["version_minor"]) == (2, 0), f"{name}: widget state format {state}"
    wrong = {mid: (m["model_module"], m["model_module_version"]) for mid, m in state["state"].items()
             if COLAB_MODULES.get(m["model_module"]) != m["model_module_version"]}
    assert not wrong, f"{name}: widgets of a protocol Colab does not render: {wrong} (Colab's: {COLAB_MODULES})"
    views = [o["data"][VIEW] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if VIEW in o.get("data", {})]
    assert views or not uses_widgets, f"{name}: no widget view in the outputs"
    for view in views:
        assert view["version_major"] == 2 and view["model_id"] in state["state"], f"{name}: view {view} has no state"
    return {m["model_name"] for m in state["state"].values()}


def check_quiet(nb, name: str):
    """No cell wrote a warning or a pip error."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            text = _text(output)
            noisy = re.search(r"\w*Warning\b.*|^ERROR.*|.*requires .*but you have.*", text, re.M)
            assert not noisy, f"{name}, cell {index}: printed {noisy.group(0)!r}\n--- cell:\n{cell.source[:400]}"


def test_the_tour_installs_itself_and_classifies_an_uploaded_photo(wheel, torch_home, tmp_path):
    import io

    import numpy as np
    from PIL import Image
    _pip("uninstall", "-y", "-q", "lecturekit")
    before = installed()
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :, 0] = np.linspace(0, 255, 64, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    uploaded = []

    def after(index, cell, client):
        if "FileUpload(" not in cell.source:
            return
        model_id = next(o["data"][VIEW]["model_id"] for o in cell.outputs if VIEW in o.get("data", {}))
        data, buffers = frontend.upload_update({"my photo.png": buf.getvalue()}, major=7)
        kc = client.kc
        kc.session.send(kc.shell_channel.socket, kc.session.msg("comm_msg", {"comm_id": model_id, "data": data}),
                        buffers=buffers)
        uploaded.append(index)

    nb = run_alone(ROOT / "notebooks" / "00_tour.ipynb", tmp_path / "alone", _kernel_env(wheel, torch_home), after,
                   extra=["print(repr(source), tuple(mine.shape), best)",
                          "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='features'): pass"])
    assert uploaded, "notebook 00 has no FileUpload cell"
    setup = "".join(_text(o) for o in nb.cells[1].outputs)
    assert f"installing lecturekit from {wheel}" in setup, setup
    shown = "".join(_text(o) for o in nb.cells[-2].outputs).split()
    assert shown[:2] == ["'my", "photo.png'"] and shown[2:6] == ["(1,", "3,", "48,", "64)"], shown
    check_quiet(nb, "00_tour")
    models = check_widgets(nb, "00_tour")
    assert {"FileUploadModel", "FloatProgressModel", "HBoxModel"} <= models, models
    after_install = installed()
    changed = {n: f"{v} -> {after_install.get(n, 'removed')}" for n, v in before.items() if after_install.get(n) != v}
    assert not changed, f"the setup cell changed Colab's packages: {changed}"
    assert "lecturekit" in after_install


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name != "00_tour.ipynb"], ids=lambda p: p.stem)
def test_the_notebook_runs_alone_with_colabs_packages(path, wheel, torch_home, tmp_path):
    nb = run_alone(path, tmp_path / "alone", _kernel_env(wheel, torch_home))
    check_quiet(nb, path.stem)
    check_widgets(nb, path.stem)
