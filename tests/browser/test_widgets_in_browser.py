"""The widgets in a real browser: JupyterLab on a loopback port with a token, headless Chromium
driven by Playwright, "Run All Cells", then a slider moved with the keyboard; the figure above
it must change. Runs on copies of the notebooks (the originals are never touched), quick mode,
offline. ``bash tasks.sh test`` installs Debian's chromium where it can; elsewhere these tests
skip and say why.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_first_layer_filters.ipynb", "02_intermediate_layers.ipynb", "05_occlusion.ipynb"]
CHROMIUM = os.environ.get("LECTUREKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium; or set LECTUREKIT_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("JupyterLab is not installed in this environment")
    work = tmp_path_factory.mktemp("lab")
    root = work / "notebooks"
    root.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, root / name)
    # render every cell (no virtual scrolling), so the whole notebook is in the page
    settings = work / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "LECTUREKIT_QUICK": "1", "LECTUREKIT_OFFLINE": "1", "LECTUREKIT_DEVICE": "cpu",
           "TORCH_HOME": str(work / "torch_home"), "JUPYTER_RUNTIME_DIR": str(work / "runtime")}
    env.pop("MPLBACKEND", None)                       # the kernel must use the inline backend
    cmd = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={work / 'settings'}", f"--LabApp.workspaces_dir={work / 'workspaces'}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(work / "lab.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(work / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        yield base, token, work
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _run_all(page, timeout_s: float = 600):
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    deadline = time.time() + timeout_s
    time.sleep(2)
    prompts: list[str] = []
    while time.time() < deadline:
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        if prompts and all(p.strip() not in ("[ ]:", "[*]:", "") for p in prompts):
            return prompts
        time.sleep(1)
    raise AssertionError(f"the notebook did not finish in {timeout_s:.0f} s; prompts: {prompts}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_then_a_slider_changes_the_figure(lab, browser, name):
    base, token, work = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # a workspace of its own, reset: only this notebook is open in the page
        page.goto(f"{base}/lab/workspaces/{Path(name).stem}/tree/{name}?token={token}&reset")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        time.sleep(3)                                    # let the kernel start
        _run_all(page)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
        assert errors.count() == 0, errors.first.inner_text()[:2000]
        slider = page.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle").first
        slider.wait_for(timeout=60_000)
        cell = page.locator(".jp-CodeCell", has=page.locator(".noUi-handle")).first
        figure = cell.locator(".jp-OutputArea-output img").first
        figure.scroll_into_view_if_needed()
        before_src, before_png = figure.get_attribute("src"), figure.screenshot()
        slider.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        deadline = time.time() + 120
        while time.time() < deadline and figure.get_attribute("src") == before_src:
            time.sleep(0.5)
        time.sleep(0.5)
        after_png = figure.screenshot()
        assert figure.get_attribute("src") != before_src, "moving the slider did not redraw the figure"
        assert after_png != before_png, "the figure's pixels did not change"
        page.screenshot(path=str(work / f"{Path(name).stem}.png"))
    finally:
        page.close()


def _settled(figure, timeout_s: float = 120) -> str:
    """The figure's image once it has not changed for 3 s."""
    last, stable_since, deadline = figure.get_attribute("src"), time.time(), time.time() + timeout_s
    while time.time() - stable_since < 3 and time.time() < deadline:
        time.sleep(0.5)
        now = figure.get_attribute("src")
        if now != last:
            last, stable_since = now, time.time()
    return last


def test_three_quick_moves_end_on_a_figure_of_the_last_value(lab, browser):
    """Three key presses faster than a redraw: the figure shown at the end is the one drawn for the
    slider's final value (queued moves collapse; no stale redraw lands last). The figure of the
    final value is fetched again by a slow move away and back: the drawing is deterministic."""
    base, token, work = lab
    name = "01_first_layer_filters.ipynb"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base}/lab/workspaces/quick-moves/tree/{name}?token={token}&reset")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        time.sleep(3)
        _run_all(page)
        slider = page.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle").first
        slider.wait_for(timeout=60_000)
        cell = page.locator(".jp-CodeCell", has=page.locator(".noUi-handle")).first
        figure = cell.locator(".jp-OutputArea-output img").first
        readout = cell.locator(".widget-readout").first
        figure.scroll_into_view_if_needed()
        start = int(readout.inner_text())
        opening = figure.get_attribute("src")
        slider.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        assert int(readout.inner_text()) == start + 3
        quick = _settled(figure)
        assert quick != opening, "the figure did not change after three moves"
        page.keyboard.press("ArrowRight")                     # one step away, slowly, and back
        away = _settled(figure)
        assert away != quick, "the figure did not change after one more move"
        page.keyboard.press("ArrowLeft")
        assert int(readout.inner_text()) == start + 3
        again = _settled(figure)
        assert again == quick, "after three quick moves the page showed another figure than the final value's"
    finally:
        page.close()
