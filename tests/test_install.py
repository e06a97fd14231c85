"""The ways in that are not a checkout: the wheel installed (not editable) into a fresh
environment and used from another folder, and a notebook opened alone in an empty folder
(what "Open in Colab" does), whose setup cell installs lecturekit where it is missing.

The fresh environment sees this environment's packages (torch, Jupyter, ...) through a .pth
line, but not its editable lecturekit; pip runs with --no-index, so nothing is downloaded and
an install that wanted to replace torch would fail.
"""
import json
import os
import shutil
import subprocess
import time
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, env=None, timeout=600):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """(python of a fresh venv without lecturekit, the built wheel, a clean environment for it)."""
    base = tmp_path_factory.mktemp("install")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", base / "dist",
          ROOT], cwd=base)
    wheel = next((base / "dist").glob("lecturekit-*.whl"))
    # pip and setuptools come from this environment too (torch needs setuptools >= 77)
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", base / "env"], cwd=base)
    python = base / "env" / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base).strip())
    (site / "outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LECTUREKIT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(LECTUREKIT_OFFLINE="1", LECTUREKIT_DEVICE="cpu", LECTUREKIT_QUICK="1", PIP_NO_INDEX="1",
               TORCH_HOME=str(base / "torch_home"), MPLBACKEND="Agg", LECTUREKIT_PIP=str(wheel),
               JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"))     # nbconvert's templates
    return python, wheel, env, base


def test_a_notebook_alone_installs_lecturekit_and_runs(fresh):
    python, wheel, env, base = fresh
    probe = "import importlib.util; print(importlib.util.find_spec('lecturekit'))"
    assert _run([python, "-c", probe], cwd=base, env=env).strip() == "None"
    alone = base / "alone"
    alone.mkdir()
    shutil.copy(ROOT / "notebooks" / "05_occlusion.ipynb", alone)
    run_nb = ("import nbformat, sys; from nbclient import NotebookClient; nb = nbformat.read(sys.argv[1], 4); "
              "NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': '.'}}).execute(); "
              "print('\\n'.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.outputs))")
    printed = _run([python, "-c", run_nb, "05_occlusion.ipynb"], cwd=alone, env=env)
    assert f"installing lecturekit from {wheel}" in printed and "model in use:" in printed
    assert sorted(p.name for p in alone.iterdir()) == ["05_occlusion.ipynb"]      # it needed nothing beside it
    where = _run([python, "-c", "import lecturekit, torch; print(lecturekit.__file__); print(torch.__file__)"],
                 cwd=base, env=env).split()
    assert where[0].startswith(str(base / "env")) and "site-packages" in where[0]          # the wheel, not the checkout
    assert where[1] == str(Path(sysconfig.get_paths()["purelib"]) / "torch" / "__init__.py")   # torch kept


def test_the_installed_wheel_works_from_any_folder(fresh):
    python, wheel, env, base = fresh
    _run([python, "-m", "pip", "install", "-q", wheel], cwd=base, env=env)          # no-op if the notebook did it
    elsewhere = base / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    script = """
import json, lecturekit as lk
from lecturekit import faststyle, vit
bundle = lk.zoo.load("teaching")
imgs, labels = lk.teaching.load_sample()
acc = (bundle.model(bundle.preprocess(imgs[:100])).argmax(1) == labels[:100]).float().mean().item()
tiny = vit.load("tiny")
cin, meta = faststyle.load()
auto = lk.zoo.load()                      # EfficientNet-Lite0, its weights from their own installed package
coffee = auto.predict(lk.images.load("coffee", size=224), k=1)[0][0]
app = lk.explorer.Explorer(image="coffee", panels=("saliency", "grad_cam")).wait()   # the explorer, offline
print(json.dumps({"explorer": [app.choice.model, app.top5()[0][0], sorted(app._shown), app.errors],"data": str(lk.config.DATA_DIR), "source": lk.config.DATA_SOURCE, "acc": acc,
                  "vit": tiny.name, "styles": cin.n_styles, "module": lk.__file__, "auto": auto.name,
                  "coffee": coffee}))
"""
    result = json.loads(_run([python, "-c", script], cwd=elsewhere, env=env).strip().splitlines()[-1])
    assert result["source"] == "the installed package" and result["data"].startswith(str(base / "env"))
    assert result["acc"] > 0.85 and result["vit"] == "vit_tiny" and result["styles"] == 2
    assert result["auto"] == "efficientnet_lite0" and result["coffee"] == "espresso"
    assert result["explorer"] == ["efficientnet_lite0", "espresso", ["grad_cam", "saliency"], {}]
    _explore_answers(python, elsewhere, env)
    info = _run([python, "-m", "lecturekit", "info"], cwd=elsewhere, env=env)
    assert "from the installed package" in info
    # the gallery, given a notebooks folder (the wheel carries no notebooks)
    folder = elsewhere / "nbs"
    folder.mkdir(exist_ok=True)
    shutil.copy(ROOT / "notebooks" / "00_tour.ipynb", folder)
    _run([python, "-m", "lecturekit", "gallery", "--quick", "--notebooks", folder, "--out", elsewhere / "g", "00_tour"],
         cwd=elsewhere, env=env)
    assert 'src="data:image/png;base64' in (elsewhere / "g" / "00_tour.html").read_text()
    # a missing shipped file names the real fix
    bad = subprocess.run([str(python), "-c", "import lecturekit as lk; lk.zoo.load('teaching')"], cwd=elsewhere,
                         env={**env, "LECTUREKIT_DATA": str(elsewhere)}, capture_output=True, text=True)
    assert bad.returncode != 0 and "teaching_fmnist.pt is missing" in bad.stderr and "LECTUREKIT_DATA" in bad.stderr


def _explore_answers(python, cwd, env):
    """``python -m lecturekit explore`` from the wheel: the address it prints serves the page; without
    the token, the login page instead."""
    import socket
    import urllib.error
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(python), "-m", "lecturekit", "explore", "--no-browser", "--port", str(port)], cwd=cwd,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = next(line.strip() for line in server.stdout if "token=" in line)
        assert url.startswith(f"http://127.0.0.1:{port}/?token=")
        for _ in range(240):
            try:
                page = urllib.request.urlopen(url, timeout=300).read().decode()
                break
            except urllib.error.URLError:
                time.sleep(0.5)
        assert "lk.explorer.Explorer()" in page or "The explorer" in page
        import http.client
        anonymous = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        anonymous.request("GET", "/?token=wrong")
        answer = anonymous.getresponse()
        assert answer.status == 302 and "/login" in answer.getheader("Location")     # no token, no page
        anonymous.close()
    finally:
        server.terminate()
        assert server.wait(60) == 0


def test_binder_installs_every_runtime_dependency():
    # postBuild installs lecturekit with --no-deps: binder/requirements.txt must name each dependency
    import re
    import tomllib
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in deps}
    listed = {re.split(r"[<>=\[ ;]", line.strip(), maxsplit=1)[0].lower()
              for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith(("#", "-"))}
    assert names <= listed, f"missing from binder/requirements.txt: {sorted(names - listed)}"
