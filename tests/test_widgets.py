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
