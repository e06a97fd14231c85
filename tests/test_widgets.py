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


def test_quick_moves_in_a_real_kernel_collapse_into_the_last_value():
    """The same through ipykernel: three comm updates, as a browser sends for three key presses,
    arrive while nothing is drawn; one redraw follows, of the final value."""
    import os
    import time
    from pathlib import Path

    from jupyter_client.manager import start_new_kernel
    root = str(Path(__file__).resolve().parents[1])
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ, "PYTHONPATH": root, "MPLBACKEND": "Agg"})

    def run(code):
        msg_id, out = kc.execute(code), []
        while True:
            m = kc.get_iopub_msg(timeout=60)
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "stream":
                out.append(m["content"]["text"])
            if m["msg_type"] == "error":
                raise AssertionError("\n".join(m["content"]["traceback"]))
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return "".join(out)
    try:
        model_id = run("import time\nimport matplotlib.pyplot as plt\nfrom lecturekit import widgets\ndrawn = []\n"
                       "def draw(k=1):\n    drawn.append(k)\n    time.sleep(0.3)\n    return plt.figure()\n"
                       "view = widgets.interactive(draw, k=(0, 9))\nprint(view.controls['k'].model_id)").split()[-1]
        for value in (2, 3, 4):
            kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": model_id, "data": {
                "method": "update", "state": {"value": value}, "buffer_paths": []}}))
        time.sleep(2)
        assert run("print(drawn, view.values['k'], view.redraws)").split("]")[-1].split() == ["4", "2"]
        assert run("print(drawn)").strip() == "[1, 4]"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
