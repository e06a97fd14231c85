"""The explorer as a page: ``python -m lecturekit explore`` (Voila on a loopback port with a token),
headless Chromium driven by Playwright. The panels draw; a PNG uploaded through the page's file
input (RGBA, 300x200) is taken and redraws them; a panel switched on draws; another class and
another layer redraw what depends on them; a text file named .png is refused with a message in the
status line and the page goes on working. Nothing shows a traceback or a panel's error, and the
page asks nothing of any host but the server (the explorer works offline). Quick mode, offline.
``bash tasks.sh test`` installs Debian's chromium where it can; elsewhere this test skips and
says why.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LECTUREKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    """The address (with its token) of ``python -m lecturekit explore --no-browser``, once it answers."""
    if CHROMIUM is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium; or set LECTUREKIT_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    if importlib.util.find_spec("voila") is None:
        pytest.skip('Voila is not installed in this environment (pip install "voila>=0.5", or the lab extra)')
    work = tmp_path_factory.mktemp("explorer")
    port = _free_port()
    env = {**os.environ, "LECTUREKIT_QUICK": "1", "LECTUREKIT_OFFLINE": "1", "LECTUREKIT_DEVICE": "cpu",
           "TORCH_HOME": str(work / "torch_home")}
    env.pop("MPLBACKEND", None)                       # the kernel as a user's: its inline backend
    out, err = work / "stdout.txt", work / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        server = subprocess.Popen([sys.executable, "-m", "lecturekit", "explore", "--no-browser", "--port", str(port)],
                                  cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    try:
        url, deadline = None, time.time() + 120
        while time.time() < deadline:
            if server.poll() is not None:
                pytest.fail(f"the explorer exited ({server.returncode}): {err.read_text()[-2000:]}")
            found = re.search(rf"http://127\.0\.0\.1:{port}/\?token=[0-9a-f]{{32}}", out.read_text())
            if found and url is None:
                url = found.group(0)
            if url is not None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/voila/static/", timeout=2)
                    break
                except urllib.error.HTTPError:        # a 404 is an answer (asking for the page would start a kernel)
                    break
                except OSError:
                    pass
            time.sleep(0.5)
        else:
            pytest.fail(f"the explorer did not answer within 120 s (address printed: {url}): "
                        f"{out.read_text()[-1000:]} {err.read_text()[-2000:]}")
        yield url, work
    finally:
        server.send_signal(signal.SIGTERM)            # as Ctrl-C: Voila stops its kernel, the temporary folder goes
        try:
            code = server.wait(40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            code = None
    assert code == 0, f"the explorer did not stop cleanly ({code}): {err.read_text()[-2000:]}"
    assert "stopped" in err.read_text()


# The state of a panel, found by its bold title (the toggle buttons carry the same words, but in a
# <button>): whether it is displayed, its image (src; loaded: the browser decoded a picture) and the
# note under it, with the "save PNG" link to the figure's PNG (an error replaces the note).
PANEL_JS = """label => {
    const title = [...document.querySelectorAll('.widget-html b')]
        .find(b => b.textContent.trim() === label && b.closest('.widget-hbox'));
    if (!title) return null;
    const box = title.closest('.widget-hbox').parentElement;
    const img = box.querySelector(':scope > .widget-image');
    const note = box.querySelector(':scope > .widget-html');
    const link = note && note.querySelector('a[download]');
    return {shown: box.offsetParent !== null, src: img ? img.src : '',
            loaded: !!img && img.complete && img.naturalWidth > 0,
            note: note ? note.innerText : '', png: link ? link.href : ''};
}"""


def _panel(page, label: str) -> dict | None:
    """None while the page has no such panel (the widgets are not drawn yet)."""
    state = page.evaluate(PANEL_JS, label)
    if state is not None and state["png"]:
        state["png"] = hashlib.sha256(state["png"].encode()).hexdigest()
    return state


def _drawn(state: dict | None) -> bool:
    return (state is not None and state["shown"] and state["loaded"]
            and re.match(r"(data|blob):", state["src"]) is not None and "save PNG" in state["note"])


def _wait_drawn(page, labels, before: dict | None = None, timeout_s: float = 120) -> dict:
    """The panels' states once each shows a figure (and, for those in ``before``, another figure than
    the one it showed then: a new image element source and another PNG)."""
    before, deadline = before or {}, time.time() + timeout_s
    while True:
        states = {label: _panel(page, label) for label in labels}
        waiting = [label for label, s in states.items()
                   if not _drawn(s) or (label in before and (s["src"] == before[label]["src"]
                                                              or s["png"] == before[label]["png"]))]
        _no_traceback(page)
        if not waiting:
            return states
        if time.time() > deadline:
            raise AssertionError(f"within {timeout_s:.0f} s, no (new) figure in {', '.join(waiting)}: "
                                 f"{ {k: states[k] and {**states[k], 'src': states[k]['src'][:40]} for k in waiting} }; "
                                 f"status: {_status(page)!r}")
        time.sleep(0.5)


def _no_traceback(page) -> None:
    text = page.evaluate("() => document.body.innerText")
    assert "Traceback" not in text, text[text.find("Traceback"):][:2000]
    assert "<lecturekit.explorer.Explorer" not in text, "the page shows the app's repr under it"
    errors = page.locator("[data-mime-type='application/vnd.jupyter.error'], "
                          "[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0, errors.first.inner_text()[:2000]


def _status(page) -> str:
    """The status line: the first text of the page's outermost widget box."""
    return page.evaluate("""() => {
        const html = document.querySelector('.widget-vbox > .widget-html');
        return html ? html.innerText : '';
    }""")


def _wait_status(page, pattern: str, timeout_s: float = 60) -> str:
    deadline = time.time() + timeout_s
    while not re.search(pattern, status := _status(page)):
        if time.time() > deadline:
            raise AssertionError(f"the status line did not say /{pattern}/ within {timeout_s:.0f} s: {status!r}")
        time.sleep(0.3)
    return status


def _upload(page, name: str, data: bytes) -> None:
    """Send a file through the upload button. ipywidgets 8's FileUpload keeps its <input type=file>
    out of the document (a click on the button clicks it), so the file goes to the file chooser that
    click opens."""
    with page.expect_file_chooser(timeout=30_000) as chooser:
        page.locator(".widget-upload").click()
    chooser.value.set_files(files=[{"name": name, "mimeType": "image/png", "buffer": data}])


def _photo_png() -> bytes:
    """A 300x200 RGBA PNG (the explorer drops the alpha and squares it): a red disc, a half-transparent
    yellow bar, on blue."""
    from PIL import Image, ImageDraw
    img = Image.new("RGBA", (300, 200), (40, 70, 160, 255))
    draw = ImageDraw.Draw(img)
    draw.ellipse((90, 40, 210, 160), fill=(220, 30, 30, 255))
    draw.rectangle((0, 150, 300, 180), fill=(250, 220, 0, 128))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_the_explorer_page(explorer, browser, tmp_path):
    url, work = explorer
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    elsewhere: list[str] = []
    page.on("request", lambda r: None if re.match(r"(http://127\.0\.0\.1[:/]|data:|blob:)", r.url)
            else elsewhere.append(r.url))
    timings, start = {}, time.time()
    try:
        page.goto(url, timeout=120_000)
        shown = ["Saliency", "Integrated gradients", "Grad-CAM", "Activations"]      # the default panels
        first = _wait_drawn(page, shown, timeout_s=180)
        timings["first draw"] = time.time() - start

        t = time.time()                                   # an upload through the page's file input
        _upload(page, "red disc.png", _photo_png())
        _wait_status(page, r"'red disc\.png' taken: 300x200 px")
        uploaded = _wait_drawn(page, shown, before=first)
        timings["upload"] = time.time() - t

        t = time.time()                                   # a panel switched on
        assert not _panel(page, "Guided backprop")["shown"]
        page.locator("button.widget-toggle-button", has_text=re.compile(r"^\s*Guided backprop\s*$")).click()
        shown.append("Guided backprop")
        uploaded.update(_wait_drawn(page, ["Guided backprop"]))
        timings["panel on"] = time.time() - t

        t = time.time()                                   # another class: the class's panels change
        radios = page.locator(".widget-radio-box input[type=radio]")
        assert radios.count() >= 2, "fewer than two classes in the top 5"
        radios.nth(1).check()
        by_class = ["Saliency", "Integrated gradients", "Grad-CAM", "Guided backprop"]
        other_class = _wait_drawn(page, by_class, before={k: uploaded[k] for k in by_class})
        other_class["Activations"] = _panel(page, "Activations")
        assert other_class["Activations"]["png"] == uploaded["Activations"]["png"], \
            "the activations changed with the class, which they do not depend on"
        timings["class"] = time.time() - t

        t = time.time()                                   # another layer, with the keyboard: Grad-CAM changes
        slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=re.compile(r"^layer$")))
        readout = slider.locator(".widget-readout")
        layer = readout.inner_text()
        slider.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowLeft")                  # the last stage is the default: one to the left
        deadline = time.time() + 30
        while readout.inner_text() == layer and time.time() < deadline:
            time.sleep(0.2)
        assert readout.inner_text() != layer, "the layer slider did not move"
        by_layer = ["Grad-CAM", "Activations"]
        other_layer = _wait_drawn(page, by_layer, before={k: other_class[k] for k in by_layer})
        timings["layer"] = time.time() - t

        t = time.time()                                   # not an image: refused, said in the status line
        _upload(page, "notes.png", b"lecture notes, not a picture\n")
        status = _wait_status(page, r"'notes\.png' was not taken")
        assert "Upload a JPEG, PNG or WebP image" in status, status
        time.sleep(1)
        after = {label: _panel(page, label) for label in shown}
        for label, state in after.items():
            assert _drawn(state), f"{label} lost its figure after the refused upload: {state['note']!r}"
        assert after["Grad-CAM"]["png"] == other_layer["Grad-CAM"]["png"], "a refused upload changed the figures"
        # the page still works: one more panel switched on draws
        page.locator("button.widget-toggle-button", has_text=re.compile(r"^\s*Gradient x input\s*$")).click()
        _wait_drawn(page, ["Gradient x input"])
        timings["refused upload"] = time.time() - t

        _no_traceback(page)
        for label in [*shown, "Gradient x input"]:
            note = _panel(page, label)["note"]
            assert "Error" not in note and "save PNG" in note, f"{label} shows an error: {note!r}"
        assert not elsewhere, f"the page asked hosts other than the server: {elsewhere}"
    finally:
        page.set_viewport_size({"width": 1400, "height": 3200})   # Voila's page scrolls inside: show it all
        time.sleep(1)
        page.screenshot(path=str(tmp_path / "explorer.png"))          # the page at the end, for a failed run
        page.close()
        print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
