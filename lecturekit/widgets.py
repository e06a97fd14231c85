"""Sliders and dropdowns over a figure that work everywhere.

    def draw(layer, channel):
        ...
        return fig                       # a matplotlib Figure

    view = widgets.interactive(draw, layer=["conv1", "conv2"], channel=(0, 31))

The figure is first drawn once as an ordinary static image, so a headless run, nbval and
a GitHub preview all show it; in JupyterLab the controls then redraw that same output in
place. ``view.set(channel=3)`` drives it from code (and from tests).

Each control opens at the default that ``draw`` states for it (``channel=5`` above would open
channel 5), else at its minimum or first option. In a running kernel a slider move schedules the
redraw instead of drawing at once: moves that arrive while a figure is drawn replace each other,
and the redraw reads the controls' current values, so three quick moves give one redraw of the
last value (not three, the first of them stale).

``uploaded_files(upload)`` reads a ``FileUpload`` the same way under ipywidgets 7 (Colab's) and 8.
"""
from __future__ import annotations

import asyncio
import inspect
import io
from typing import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import Image, display


def _readout_format(step: float) -> str:
    """Enough decimals to tell neighbouring slider values apart (0.001 -> '.3f', 0.25 -> '.2f')."""
    decimals = 0
    while decimals < 8 and abs(round(step, decimals) - step) > 1e-9 * max(1.0, abs(step)):
        decimals += 1
    return f".{max(decimals, 1)}f"


def control(spec, name: str, default=None) -> W.ValueWidget:
    """A widget from a short spec: a widget is used as is; ``(lo, hi)`` or ``(lo, hi, step)`` gives a
    slider (int or float by the values), a list gives a dropdown, a bool a checkbox. The control
    opens at ``default`` when given (it must lie in the range or among the options)."""
    if isinstance(spec, W.ValueWidget):
        return spec
    style = {"description_width": "initial"}
    if isinstance(spec, bool):
        return W.Checkbox(value=spec if default is None else bool(default), description=name)
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(v, (int, float)) for v in spec):
        lo, hi = spec[:2]
        if lo >= hi:
            raise ValueError(f"slider {name!r}: the minimum {lo} must be below the maximum {hi}")
        if default is not None and not lo <= default <= hi:
            raise ValueError(f"slider {name!r}: the default {default} is outside {lo}..{hi}")
        value = lo if default is None else default
        if all(isinstance(v, int) for v in spec):
            return W.IntSlider(min=lo, max=hi, step=spec[2] if len(spec) == 3 else 1, value=int(value),
                               description=name, style=style, continuous_update=False)
        step = spec[2] if len(spec) == 3 else (hi - lo) / 100
        return W.FloatSlider(min=lo, max=hi, step=step, value=value, description=name, style=style,
                             continuous_update=False, readout_format=_readout_format(step))
    if isinstance(spec, (list, dict)) and len(spec):
        options = list(spec.values()) if isinstance(spec, dict) else \
            [o[1] if isinstance(o, tuple) and len(o) == 2 else o for o in spec]      # (label, value) pairs
        if default is not None and default not in options:
            raise ValueError(f"dropdown {name!r}: the default {default!r} is not one of {options}")
        if default is None:
            return W.Dropdown(options=spec, description=name, style=style)
        return W.Dropdown(options=spec, value=default, description=name, style=style)
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
        defaults = _defaults(draw)
        self.controls = {name: control(spec, name, defaults.get(name)) for name, spec in controls.items()}
        self.redraws = 0
        self.error: str | None = None
        self._pending = None                 # the scheduled redraw, if any
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
        """A control moved: redraw now, or, in a running event loop (a kernel), schedule one redraw
        that replaces any still waiting, so queued moves collapse into the last one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._redraw()
        if self._pending is not None:
            self._pending.cancel()
        self._pending = loop.call_later(0.2, self._scheduled)

    def _scheduled(self) -> None:
        self._pending = None
        self._redraw()

    def _redraw(self) -> None:
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
        for name, value in values.items():           # a slider would clamp it silently: say so instead
            widget = self.controls[name]
            if hasattr(widget, "min") and not widget.min <= value <= widget.max:
                raise ValueError(f"{name}={value!r} is outside its slider's range {widget.min}..{widget.max}")
        for widget in self.controls.values():
            widget.unobserve(self._on_change, names="value")
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            for widget in self.controls.values():
                widget.observe(self._on_change, names="value")
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._redraw()
        return self


def _defaults(draw: Callable) -> dict:
    """The keyword defaults ``draw`` states, e.g. {'channel': 5} for ``def draw(layer, channel=5)``."""
    try:
        params = inspect.signature(draw).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def interactive(draw: Callable, dpi: int = 100, **controls) -> Interactive:
    """Draw ``draw(**values)`` now as a static figure, then redraw it whenever a control moves."""
    return Interactive(draw, controls, dpi=dpi)


def uploaded_files(upload) -> list[tuple[str, bytes]]:
    """``(name, content)`` of each file in a ``FileUpload`` (or its ``value``), in upload order.

    ipywidgets 8 keeps a tuple of dicts with ``"name"`` and ``"content"`` (a memoryview); ipywidgets 7,
    which Colab renders, keeps ``{name: {"metadata": {...}, "content": bytes}}``. Empty before an upload.
    """
    value = upload.value if isinstance(upload, W.FileUpload) else upload
    if isinstance(value, dict):                                            # ipywidgets 7
        return [(name, bytes(entry["content"])) for name, entry in value.items()]
    if isinstance(value, (tuple, list)) and all(isinstance(e, dict) and {"name", "content"} <= set(e) for e in value):
        return [(entry["name"], bytes(entry["content"])) for entry in value]    # ipywidgets 8
    raise TypeError("uploaded_files: expected a FileUpload or its value (ipywidgets 7: {name: {'metadata', 'content'}}; "
                    f"ipywidgets 8: a tuple of dicts with 'name' and 'content'), not {type(value).__name__}: {value!r:.200}")
