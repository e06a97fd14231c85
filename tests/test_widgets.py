import ipywidgets as W
import matplotlib.pyplot as plt
import pytest

from lecturekit import widgets


def test_control_specs():
    assert isinstance(widgets.control((0, 9), "n"), W.IntSlider)
    s = widgets.control((0.0, 1.0, 0.1), "a")
    assert isinstance(s, W.FloatSlider) and s.step == 0.1
    assert isinstance(widgets.control(["a", "b"], "m"), W.Dropdown)
    assert isinstance(widgets.control(True, "b"), W.Checkbox)
    given = W.IntText()
    assert widgets.control(given, "x") is given
    with pytest.raises(ValueError, match="minimum 5 must be below"):
        widgets.control((5, 1), "n")
    with pytest.raises(ValueError, match="non-empty list"):
        widgets.control("abc", "n")


def _draw_calls():
    calls = []

    def draw(k, color):
        calls.append((k, color))
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.bar(range(k + 1), range(k + 1), color=color)
        ax.set_title(f"k={k}")
        return fig
    return draw, calls


def test_static_figure_first_then_redraw_on_change():
    draw, calls = _draw_calls()
    view = widgets.interactive(draw, k=(1, 5), color=["red", "blue"])
    assert calls == [(1, "red")] and view.png.startswith(b"\x89PNG")
    first = view.png
    view.controls["k"].value = 4                  # as a slider move in the browser would
    assert calls[-1] == (4, "red") and view.png != first
    view.set(k=2, color="blue")
    assert calls[-1] == (2, "blue") and len(calls) == 3      # set() redraws once
    assert plt.get_fignums() == []                # rendered figures are closed


def test_error_in_draw_is_reported_and_controls_survive():
    def draw(k):
        if k == 3:
            raise ValueError("no such channel")
        return plt.figure()
    view = widgets.interactive(draw, k=(0, 5))
    good = view.png
    view.set(k=3)
    assert "no such channel" in view.error and view.png == good
    view.set(k=1)
    assert view.error is None
    with pytest.raises(ValueError, match="no control named z"):
        view.set(z=1)
    with pytest.raises(ValueError, match=r"k=7 is outside its slider's range 0..5"):
        view.set(k=7)                             # never clamped to 5 without a word
    assert view.values["k"] == 1


def test_controls_open_at_the_defaults_draw_states():
    calls = []

    def draw(k, alpha=1.5, name="b", flag=False):
        calls.append((k, alpha, name, flag))
        return plt.figure()
    view = widgets.interactive(draw, k=(0, 9), alpha=(0.0, 5.0, 0.5), name=["a", "b", "c"], flag=True)
    assert calls == [(0, 1.5, "b", False)]
    assert view.values == {"k": 0, "alpha": 1.5, "name": "b", "flag": False}
    with pytest.raises(ValueError, match="the default 1.5 is outside 2.0..5.0"):
        widgets.interactive(draw, k=(0, 9), alpha=(2.0, 5.0))
    with pytest.raises(ValueError, match="the default 'b' is not one of"):
        widgets.interactive(draw, k=(0, 9), name=["x", "y"])
    view = widgets.interactive(draw, k=(0, 9), name=[("first", "a"), ("second", "b")])      # (label, value) pairs
    assert view.values["name"] == "b" and view.controls["name"].label == "second"


def test_float_readout_shows_every_step():
    assert widgets.control((0.0, 0.01, 0.001), "l2").readout_format == ".3f"
    assert widgets.control((0.0, 2.0, 0.25), "s").readout_format == ".2f"
    assert widgets.control((0.0, 1.0, 0.5), "a").readout_format == ".1f"
    slider = widgets.control((0.0, 0.01, 0.001), "l2")
    slider.value = 0.004
    assert format(slider.value, slider.readout_format) == "0.004"


def test_quick_moves_in_a_running_kernel_give_one_redraw_of_the_last_value():
    import asyncio
    draw, calls = _draw_calls()

    async def session():
        view = widgets.interactive(draw, k=(1, 5), color=["red", "blue"])
        for k in (2, 3, 4):                       # three key presses, faster than a redraw
            view.controls["k"].value = k
        assert calls == [(1, "red")]              # nothing drawn yet: the redraw is scheduled
        await asyncio.sleep(0.5)
        return view
    view = asyncio.run(session())
    assert calls == [(1, "red"), (4, "red")] and view.redraws == 2
    assert plt.get_fignums() == []


class _Kernel:
    """A real ipykernel with this checkout's lecturekit, driven as a front end drives it."""

    def __init__(self):
        import os
        from pathlib import Path

        from jupyter_client.manager import start_new_kernel
        root = str(Path(__file__).resolve().parents[1])
        self.km, self.kc = start_new_kernel(kernel_name="python3",
                                            env={**os.environ, "PYTHONPATH": root, "MPLBACKEND": "Agg"})
        self.displayed = []                       # the MIME types of each display_data, in order

    def run(self, code):
        kc = self.kc
        msg_id, out = kc.execute(code), []
        while True:
            m = kc.get_iopub_msg(timeout=60)
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "stream":
                out.append(m["content"]["text"])
            if m["msg_type"] == "display_data":
                self.displayed.append(m["content"]["data"])
            if m["msg_type"] == "error":
                raise AssertionError("\n".join(m["content"]["traceback"]))
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return "".join(out)

    def send(self, comm_id, data, buffers=()):
        """A comm message from the front end, binary buffers included."""
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kc.session.send(self.kc.shell_channel.socket, msg, buffers=list(buffers))

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def test_quick_moves_in_a_real_kernel_collapse_into_the_last_value():
    """The same through ipykernel: three comm updates, as a browser sends for three key presses,
    arrive while nothing is drawn; one redraw follows, of the final value."""
    import time
    kernel = _Kernel()
    run = kernel.run
    try:
        model_id = run("import time\nimport matplotlib.pyplot as plt\nfrom lecturekit import widgets\ndrawn = []\n"
                       "def draw(k=1):\n    drawn.append(k)\n    time.sleep(0.3)\n    return plt.figure()\n"
                       "view = widgets.interactive(draw, k=(0, 9))\nprint(view.controls['k'].model_id)").split()[-1]
        for value in (2, 3, 4):
            kernel.send(model_id, {"method": "update", "state": {"value": value}, "buffer_paths": []})
        time.sleep(2)
        assert run("print(drawn, view.values['k'], view.redraws)").split("]")[-1].split() == ["4", "2"]
        assert run("print(drawn)").strip() == "[1, 4]"
    finally:
        kernel.close()


def _png(width=40, height=30) -> bytes:
    import io

    import numpy as np
    from PIL import Image
    ramp = np.linspace(0, 255, width * height * 3).reshape(height, width, 3).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    return buf.getvalue()


def test_uploaded_files_reads_both_widget_versions_shapes():
    png = _png()
    v7 = {"a.png": {"metadata": {"name": "a.png", "type": "image/png", "size": len(png), "lastModified": 0},
                    "content": png},
          "b.txt": {"metadata": {"name": "b.txt", "type": "text/plain", "size": 2, "lastModified": 0},
                    "content": b"hi"}}
    v8 = ({"name": "a.png", "type": "image/png", "size": len(png), "content": memoryview(png)},
          {"name": "b.txt", "type": "text/plain", "size": 2, "content": memoryview(b"hi")})
    for value in (v7, v8):
        files = widgets.uploaded_files(value)
        assert files == [("a.png", png), ("b.txt", b"hi")] and all(type(c) is bytes for _, c in files)
    assert widgets.uploaded_files({}) == widgets.uploaded_files(()) == []
    with pytest.raises(TypeError, match="expected a FileUpload or its value.*not list"):
        widgets.uploaded_files([{"filename": "a.png"}])


def test_an_upload_as_the_browser_sends_it_reaches_uploaded_files():
    """A real FileUpload of the installed ipywidgets, given a file the way its JavaScript side sends one."""
    import frontend
    from lecturekit import images
    png = _png()
    up = W.FileUpload(accept="image/*", multiple=False)
    assert widgets.uploaded_files(up) == []
    frontend.upload(up, {"photo.png": png})
    assert widgets.uploaded_files(up) == [("photo.png", png)]
    assert tuple(images.load(widgets.uploaded_files(up)[0][1]).shape) == (1, 3, 30, 40)
    frontend.upload(up, {"second.png": png[:-1] + b"\0"})             # choosing again replaces the file
    assert [name for name, _ in widgets.uploaded_files(up)] == ["second.png"]


def test_upload_and_progress_bars_in_a_real_kernel():
    """In ipykernel: a file sent over the comm, with its bytes as a binary buffer, is read by
    uploaded_files; tqdm.auto (lecturekit's progress bars) draws a widget of the installed
    ipywidgets' protocol (controls 1.5.0 for ipywidgets 7, which Colab renders; 2.0.0 for 8)."""
    import frontend
    png = _png()
    kernel = _Kernel()
    try:
        model_id = kernel.run("import ipywidgets as W\nfrom lecturekit import widgets\n"
                              "up = W.FileUpload(accept='image/*')\ndisplay(up)\nprint(up.model_id)").split()[-1]
        data, buffers = frontend.upload_update({"mine.png": png})
        kernel.send(model_id, data, buffers)
        printed = kernel.run("import hashlib\nfiles = widgets.uploaded_files(up)\n"
                             "print([(n, len(c), hashlib.sha256(c).hexdigest()) for n, c in files])")
        import hashlib
        assert printed.strip() == str([("mine.png", len(png), hashlib.sha256(png).hexdigest())])
        bar = kernel.run("from tqdm.auto import tqdm\nfrom tqdm.notebook import tqdm_notebook\n"
                         "bar = tqdm(range(3), desc='features')\nfor _ in bar: pass\nbox = bar.container\n"
                         "print(isinstance(bar, tqdm_notebook), isinstance(box, W.HBox), "
                         "isinstance(box.children[1], W.FloatProgress), box.children[1].value, "
                         "box._model_module_version)")
        expected = {7: "1.5.0", 8: "2.0.0"}[frontend.MAJOR]
        assert bar.split() == ["True", "True", "True", "3.0", expected], bar
        views = [d["application/vnd.jupyter.widget-view+json"] for d in kernel.displayed
                 if "application/vnd.jupyter.widget-view+json" in d]
        assert len(views) == 2 and all(v["version_major"] == 2 for v in views), kernel.displayed
    finally:
        kernel.close()
