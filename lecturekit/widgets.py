"""Sliders and dropdowns over a figure that work everywhere.

    def draw(layer, channel):
        ...
        return fig                       # a matplotlib Figure

    view = widgets.interactive(draw, layer=["conv1", "conv2"], channel=(0, 31))

The figure is first drawn once as an ordinary static image, so a headless run, nbval and
a GitHub preview all show it; in JupyterLab the controls then redraw that same output in
place. ``view.set(channel=3)`` drives it from code (and from tests).
"""
from __future__ import annotations

import io
from typing import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import Image, display


def control(spec, name: str) -> W.ValueWidget:
    """A widget from a short spec: a widget is used as is; ``(lo, hi)`` or ``(lo, hi, step)`` gives a
    slider (int or float by the values), a list gives a dropdown, a bool a checkbox."""
    if isinstance(spec, W.ValueWidget):
        return spec
    style = {"description_width": "initial"}
    if isinstance(spec, bool):
        return W.Checkbox(value=spec, description=name)
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(v, (int, float)) for v in spec):
        lo, hi = spec[:2]
        if lo >= hi:
            raise ValueError(f"slider {name!r}: the minimum {lo} must be below the maximum {hi}")
        if all(isinstance(v, int) for v in spec):
            return W.IntSlider(min=lo, max=hi, step=spec[2] if len(spec) == 3 else 1, value=lo,
                               description=name, style=style, continuous_update=False)
        step = spec[2] if len(spec) == 3 else (hi - lo) / 100
        return W.FloatSlider(min=lo, max=hi, step=step, value=lo, description=name, style=style,
                             continuous_update=False)
    if isinstance(spec, (list, dict)) and len(spec):
        return W.Dropdown(options=spec, description=name, style=style)
    raise ValueError(f"control {name!r}: use a widget, (min, max[, step]), a non-empty list of options "
                     f"or True/False, not {spec!r}")


def figure_png(fig, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes and close it (so it is not shown a second time)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})   # fast: widgets redraw often
    plt.close(fig)
    return buf.getvalue()


class Interactive:
    """A figure with controls; see the module docstring."""

    def __init__(self, draw: Callable, controls: dict, dpi: int = 100, show: bool = True):
        self.draw = draw
        self.dpi = dpi
        self.controls = {name: control(spec, name) for name, spec in controls.items()}
        self.redraws = 0
        self.error: str | None = None
        self.png = self._render()
        self._handle = display(Image(data=self.png), display_id=True) if show else None
        for widget in self.controls.values():
            widget.observe(self._on_change, names="value")
        self.box = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
        if show:
            display(self.box)

    @property
    def values(self) -> dict:
        return {name: w.value for name, w in self.controls.items()}

    def _render(self) -> bytes:
        fig = self.draw(**self.values)
        if fig is None:
            fig = plt.gcf()
        self.redraws += 1
        return figure_png(fig, self.dpi)

    def _on_change(self, change=None) -> None:
        try:
            self.png = self._render()
            self.error = None
        except Exception as err:          # show the problem in place of the figure; keep the controls
            plt.close("all")
            self.error = f"{type(err).__name__}: {err}"
            if self._handle is not None:
                self._handle.update(f"Could not draw with {self.values}: {self.error}")
            return
        if self._handle is not None:
            self._handle.update(Image(data=self.png))

    def set(self, **values) -> "Interactive":
        """Move controls from code; redraws once."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"no control named {', '.join(sorted(unknown))}; controls: {', '.join(self.controls)}")
        for widget in self.controls.values():
            widget.unobserve(self._on_change, names="value")
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            for widget in self.controls.values():
                widget.observe(self._on_change, names="value")
        self._on_change()
        return self


def interactive(draw: Callable, dpi: int = 100, **controls) -> Interactive:
    """Draw ``draw(**values)`` now as a static figure, then redraw it whenever a control moves."""
    return Interactive(draw, controls, dpi=dpi)
