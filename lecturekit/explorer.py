"""The explorer: your image, every method of the lecture, any layer, one page.

    app = lk.explorer.Explorer()         # the model of LECTUREKIT_MODEL (EfficientNet-Lite0 by default)
    app.show()                           # in a notebook; as a page: python -m lecturekit explore
    app.choose(panels=["saliency", "grad_cam"], layer="stage3", target="tabby cat")   # the same, from code
    app.wait()                           # until every panel shows the current choice
    app.png("grad_cam")                  # a panel's figure as PNG bytes (app.save("grad_cam", "cam.png"))

How it stays responsive. What the user picked is one ``Choice``. Each panel's figure depends on
some of its fields only (``PANELS[name].needs``: occlusion on the image, model and class, not on
the layer), so ``key(panel, choice)`` names the figure a panel should show: a change redraws the
panels whose key changed, and a figure computed before comes from the cache. Two threads ("lanes")
do the work, each with its own copy of the model: the quick lane the gradient methods and the
activations (well under a second each at 224 px on two cores), the slow lane SmoothGrad,
integrated gradients, occlusion, the unit visualisation and the sanity check, one after the other.
While a panel is computed, a forward pre-hook on the lane's model counts the passes (the progress
bar) and stops the work with ``Superseded`` as soon as the panel's key is no longer the wanted one
(a newer choice came). A finished figure is shown only if its key is still wanted: a stale result
never overwrites a newer one.
"""
from __future__ import annotations

import base64
import copy
import functools
import html
import math
import threading
import time
from dataclasses import dataclass, replace

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from torch import nn

from . import ascent, attribution, config, hooks, images, plotting, sanity, weights, widgets, zoo

__all__ = ["Explorer", "Choice", "PANELS", "key", "models", "app_notebook"]


@dataclass(frozen=True)
class PanelSpec:
    label: str
    lane: str                      # "quick" or "slow"
    needs: tuple[str, ...]         # the fields of Choice the figure depends on
    about: str                     # one line under the panel's name


_CLASS = ("model", "image", "target")
PANELS = {
    "saliency": PanelSpec("Saliency", "quick", _CLASS, "|d score / d x|, largest over colours (Simonyan 2014)"),
    "gradient_x_input": PanelSpec("Gradient x input", "quick", _CLASS, "x * d score / d x, summed over colours"),
    "smoothgrad": PanelSpec("SmoothGrad", "slow", _CLASS, "saliency averaged over noisy copies (Smilkov 2017)"),
    "integrated_gradients": PanelSpec("Integrated gradients", "slow", _CLASS,
                                      "(x - 0) * mean gradient on the path from 0 (Sundararajan 2017)"),
    "deconvnet": PanelSpec("Deconvnet", "quick", _CLASS, "ReLUs pass back positive gradients (Zeiler 2014)"),
    "guided_backprop": PanelSpec("Guided backprop", "quick", _CLASS,
                                 "... where their input was positive too (Springenberg 2015)"),
    "deeplift": PanelSpec("DeepLIFT", "quick", _CLASS, "Rescale rule from the zero baseline (Shrikumar 2017)"),
    "grad_cam": PanelSpec("Grad-CAM", "quick", (*_CLASS, "layer"), "ReLU(sum_k alpha_k A_k) at the layer (Selvaraju 2017)"),
    "guided_grad_cam": PanelSpec("Guided Grad-CAM", "quick", (*_CLASS, "layer"), "guided backprop x Grad-CAM"),
    "occlusion": PanelSpec("Occlusion", "slow", _CLASS, "probability with a grey square at each place (Zeiler 2014)"),
    "activations": PanelSpec("Activations", "quick", ("model", "image", "layer", "channel"),
                             "the layer's maps: the chosen channel, and the 16 most active"),
    "unit": PanelSpec("What the unit wants", "slow", ("model", "layer", "channel"),
                      "gradient ascent on the chosen channel's mean activation"),
    "sanity": PanelSpec("Sanity check", "slow", (*_CLASS, "layer", "randomise"),
                        "randomise the top k layers: which maps change? (Adebayo 2018)"),
}
DEFAULT_PANELS = ("saliency", "integrated_gradients", "grad_cam", "activations")
_DRAWING = threading.RLock()      # pyplot is not thread-safe: the lanes make and render one figure at a time


@dataclass(frozen=True)
class Choice:
    """What the user picked. ``target`` None: the image's top class; ``layer`` None: the model's last
    stage; ``channel`` None: the layer's most active channel on the image."""
    model: str
    image: str
    target: int | None = None
    layer: str | None = None
    channel: int | None = None
    randomise: int = 1
    panels: tuple[str, ...] = DEFAULT_PANELS


def key(panel: str, choice: Choice) -> tuple:
    """The name of the figure ``panel`` shows for ``choice``: the panel and the fields it depends on
    (``choice.target`` and ``choice.layer`` already resolved). Equal keys, equal figures."""
    return (panel, *(getattr(choice, f) for f in PANELS[panel].needs))


class Superseded(Exception):
    """A newer choice made this computation's figure unwanted."""


def models() -> list[str]:
    """The models the explorer offers now, without a download: EfficientNet-Lite0 (where its weights
    package is installed), the teaching model, and every torchvision model whose weights are cached."""
    names = [n for n in zoo.PACKAGED if zoo.available(n)] + ["teaching"]
    return names + [n for n in weights.torchvision_names() if n not in names and weights.is_cached(n)]


def app_notebook() -> dict:
    """A one-cell notebook that opens the explorer: what ``python -m lecturekit explore`` serves."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
                    "# The explorer\nYour image, every method of the lecture, any layer. Pick an image or upload "
                    "one, a class, the panels; a slow panel shows its progress and a newer choice interrupts it."),
                nbformat.v4.new_code_cell("import lecturekit as lk\n\napp = lk.explorer.Explorer()\napp.show();")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


# ---------------------------------------------------------------- the figures, one function per kind

def _sizes() -> dict:
    return {"samples": config.pick(16, 4), "steps": config.pick(16, 8), "ascent_steps": config.pick(48, 6),
            "ascent_size": config.pick(128, 64), "batch": 8}


def _heat_figure(app, panel, img, heat, title, **kw):
    with _DRAWING:
        return plotting.heatmap(img, heat.float().cpu(), title=title, label=PANELS[panel].label, size=2.2, **kw)


def _attribution_figure(app, panel, job):
    """A heat map of one attribution method, image and heat map side by side."""
    b, model, x, img, t, c = job.bundle, job.model, job.x, job.img, job.target, job.choice
    s = _sizes()
    kw = {}
    if panel in ("grad_cam", "guided_grad_cam"):
        kw["layer"] = c.layer
    elif panel == "smoothgrad":
        kw.update(samples=s["samples"], batch_size=s["batch"], generator=torch.Generator(x.device).manual_seed(0))
        job.total = math.ceil(s["samples"] / s["batch"])
    elif panel == "integrated_gradients":
        kw.update(steps=s["steps"], batch_size=s["batch"])
        job.total = math.ceil(s["steps"] / s["batch"])
    elif panel == "occlusion":
        size = x.shape[-1]
        patch = max(2, size // config.pick(8, 4))
        stride = max(1, patch * 3 // 4)
        places = len(range(0, size - patch + 1, stride)) + 1
        kw.update(patch=patch, stride=stride, fill=b.blank, batch_size=16, progress=False)
        job.total = 1 + math.ceil(places * places / 16)
    heat = attribution.METHODS[panel](model, x, t, **kw)[0]
    title = f"{PANELS[panel].label}: '{b.classes[t]}'" + (f" at {c.layer}" if "layer" in kw else "")
    if panel == "occlusion":
        with torch.no_grad():
            p0 = model(x).softmax(1)[0, t].item()
        return _heat_figure(app, panel, img, heat, f"{title} (unoccluded {p0:.0%})", center=p0, bounds=(0, 1))
    return _heat_figure(app, panel, img, heat, title)


def _activations_figure(app, panel, job):
    """The chosen channel of the layer beside the image (with its colorbar), and the 16 most active channels."""
    c, img = job.choice, job.img
    with torch.no_grad():
        act = hooks.activations(job.model, job.x, c.layer)[c.layer][0].float().cpu()     # (C, h, w)
    top = act.mean((1, 2)).argsort(descending=True)[:16].tolist()
    with _DRAWING:
        return _activations_plot(act, top, img, c)


def _activations_plot(act, top, img, c):
    fig = plt.figure(figsize=(9.6, 3.0), layout="constrained")
    left, middle, right = fig.subfigures(1, 3, width_ratios=[1, 1.2, 1.1])
    ax = left.add_subplot()
    plotting.photo(img).draw(ax)
    ax.set_title("image")
    ax.axis("off")
    ax = middle.add_subplot()
    im = _map_panel(act[c.channel]).draw(ax)
    ax.set_title(f"channel {c.channel}")
    ax.axis("off")
    middle.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="activation")
    shown = plotting.normalize_channels(act[top])
    for a, ch, tile in zip(right.subplots(4, 4).flat, top, shown):
        a.imshow(tile.numpy(), cmap=plotting.MAGNITUDE_CMAP, vmin=0, vmax=1)
        a.set_title(str(ch), fontsize=7, pad=1, color="red" if ch == c.channel else "black")
        a.set_xticks([])
        a.set_yticks([])
        for side in a.spines.values():
            side.set_visible(ch == c.channel)
            side.set_color("red")
            side.set_linewidth(2)
    right.suptitle("the 16 most active channels", fontsize=9)
    fig.suptitle(f"{c.layer}: {act.shape[0]} channels of {act.shape[1]}x{act.shape[2]}")
    return fig


def _map_panel(a: torch.Tensor) -> plotting.Panel:
    """An activation map in the plotting convention: diverging and white at 0 where it has negative
    values (a layer without a ReLU), else a magnitude from 0."""
    return plotting.signed(a) if a.min() < 0 else plotting.magnitude(a, percentile=100.0)


def _unit_figure(app, panel, job):
    """Gradient ascent on the channel's mean activation, the image parameterised by a decorrelated
    Fourier spectrum (Olah et al. 2017) with jitter and scaling, beside where the channel fires on
    the image."""
    c, s, b = job.choice, _sizes(), job.bundle
    size = s["ascent_size"] if b.input_size >= 64 else b.input_size
    job.total = s["ascent_steps"]
    param = ascent.Fourier(1, size, size, generator=torch.Generator().manual_seed(c.channel))
    r = ascent.ascend(job.model, ascent.channel(c.layer, c.channel), param, b.preprocess, steps=s["ascent_steps"],
                      lr=0.03, transforms=[ascent.jitter(max(1, size // 32)), ascent.random_scale()], progress=False)
    with torch.no_grad():
        act = hooks.activations(job.model, job.x, c.layer)[c.layer][0, c.channel].float().cpu()
    moved = abs(r.history[-1] - r.history[0]) > 1e-6
    with _DRAWING:
        return _unit_plot(r, act, moved, job.img, c)


def _unit_plot(r, act, moved, img, c):
    fig, axes = plt.subplots(1, 3, figsize=(7.8, 2.6))
    plotting.show(axes[0], r.image, f"what {c.layer}:{c.channel} wants" if moved
                  else "no gradient: try another channel")
    plotting.show(axes[1], img, "image")
    im = _map_panel(act).draw(axes[2])
    axes[2].set_title("where it fires", fontsize=9)
    axes[2].axis("off")
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04)
    fig.suptitle(f"channel {c.channel} of {c.layer}: {r.steps} ascent steps, mean activation "
                 f"{r.history[0]:.2f} -> {r.history[-1]:.2f}", fontsize=9)
    fig.tight_layout()
    return fig


SANITY_METHODS = ("saliency", "guided_backprop", "grad_cam", "deeplift")


def _sanity_figure(app, panel, job):
    """Each fast method's map on the model and on a copy with its top k layers randomised, with the
    rank correlation of the two: a map that hardly changes does not explain the model."""
    c, x, t = job.choice, job.x, job.target
    job.total = 2 * len(SANITY_METHODS)
    job.handle.remove()                      # a copy of the model must not copy the job's hook
    randomised = sanity.randomized(job.model, c.randomise, generator=torch.Generator().manual_seed(0))
    job.handle = job.model.register_forward_pre_hook(job.hook)
    randomised.register_forward_pre_hook(job.hook)
    maps = {}
    for name in SANITY_METHODS:
        kw = {"layer": c.layer} if name == "grad_cam" else {}
        maps[name] = [attribution.METHODS[name](m, x, t, **kw)[0].float().cpu() for m in (job.model, randomised)]
    with _DRAWING:
        return _sanity_plot(maps, job.img, job.bundle.classes[t], c)


def _sanity_plot(maps, img, name_of_class, c):
    fig, axes = plt.subplots(2, len(SANITY_METHODS) + 1, figsize=(10.5, 4.4))
    plotting.show(axes[0, 0], img, "image")
    axes[1, 0].axis("off")
    axes[1, 0].text(0, 0.5, f"top {c.randomise} layer(s)\nrandomised\n\nrho: rank\ncorrelation\nwith the original",
                    fontsize=9, va="center")
    for j, name in enumerate(SANITY_METHODS, start=1):
        rho = sanity.rank_correlation(*maps[name])
        for row, (m, what) in enumerate(zip(maps[name], ("trained", f"rho = {rho:.2f}"))):
            im = plotting.magnitude(m.abs()).draw(axes[row, j])
            axes[row, j].set_title(f"{PANELS[name].label}\n{what}", fontsize=8)
            axes[row, j].axis("off")
            fig.colorbar(im, ax=axes[row, j], fraction=0.046, pad=0.04)
    fig.suptitle(f"'{name_of_class}': trained (top) and with the top {c.randomise} layer(s) randomised "
                 "(bottom)", fontsize=10)
    fig.tight_layout()
    return fig


DRAW = {name: _attribution_figure for name in attribution.METHODS}
DRAW.update(activations=_activations_figure, unit=_unit_figure, sanity=_sanity_figure)


class _Job:
    """One panel being computed on a lane: what it needs, and the hook that counts passes and stops
    the work once ``wanted()`` is false."""

    def __init__(self, panel, figure_key, choice, bundle, model, x, img, target, wanted, progress):
        self.panel, self.key, self.choice, self.bundle, self.model = panel, figure_key, choice, bundle, model
        self.x, self.img, self.target, self.wanted, self.progress = x, img, target, wanted, progress
        self.passes, self.total, self._shown = 0, 0, 0.0
        self.handle = model.register_forward_pre_hook(self.hook)     # removed by the lane when the job ends

    def hook(self, module, inputs):
        if not self.wanted():
            raise Superseded(self.panel)
        self.passes += 1
        if self.total and time.monotonic() - self._shown > 0.2:
            self._shown = time.monotonic()
            self.progress(min(self.passes / self.total, 0.99))


# ---------------------------------------------------------------- the app

class Explorer:
    """The page: inputs on the left, the chosen panels on the right. See the module docstring.

    ``model``: a name from ``models()`` (default: ``LECTUREKIT_MODEL``, else EfficientNet-Lite0);
    ``image``: a sample photo's name; ``panels``: names from ``PANELS``."""

    def __init__(self, model: str | None = None, image: str | None = None, panels=DEFAULT_PANELS):
        offered = models()
        name = model or config.model_name()
        name = zoo.DEFAULT if name == "auto" else name
        if name not in offered:
            if model is not None:
                raise ValueError(f"the explorer offers the models {', '.join(offered)} (torchvision's once their "
                                 f"weights are cached: python -m lecturekit download NAME), not {model!r}")
            name = offered[0]
        self._check_panels(panels)
        self._cond = threading.Condition()
        self._images: dict[str, torch.Tensor] = {}            # name -> (1, 3, H, W) in 0..1, as loaded
        self._bundles: dict[str, zoo.Bundle] = {}
        self._layers: dict[str, dict[str, int]] = {}          # model -> {layer: channels}, shallow to deep
        self._copies: dict[tuple[str, str], nn.Module] = {}   # (lane, model) -> the lane's copy
        self._predictions: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self._top_channel: dict[tuple[str, str, str], int] = {}     # (model, image, layer) -> channel
        self._cache: dict[tuple, bytes] = {}
        self._shown: dict[str, tuple] = {}                    # panel -> the key of the figure it shows
        self._failed: dict[str, tuple[tuple, str]] = {}       # panel -> (key, message)
        self._loading_error: str | None = None
        self._pictured: tuple | None = None                   # (model, image) of the input picture shown
        self._local = threading.local()                       # .syncing: this thread sets the controls
        self._closed = False
        self.timings: list[tuple[str, float]] = []            # (panel, seconds to compute and draw)
        samples = list(images.samples())
        first = image or ("chelsea" if "chelsea" in samples else samples[0])
        if first not in samples:
            raise ValueError(f"image must be one of the sample photos ({', '.join(samples)}), not {image!r}")
        self._images[first] = images.load(first)
        self.choice = Choice(model=name, image=first, panels=tuple(panels))
        self._build_widgets(samples, offered)
        self._threads = [threading.Thread(target=self._lane, args=(lane,), daemon=True, name=f"explorer-{lane}")
                         for lane in ("quick", "slow")]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------ choosing

    @staticmethod
    def _check_panels(panels) -> None:
        unknown = [p for p in panels if p not in PANELS]
        if unknown or isinstance(panels, str):
            raise ValueError(f"unknown panel(s) {unknown or panels!r}; the panels are: {', '.join(PANELS)}")

    def choose(self, **changes) -> "Explorer":
        """Change the choice from code, as the controls do: ``model``, ``image`` (a sample's name or
        an uploaded file's), ``target`` (a class index or name; None for the top class), ``layer``,
        ``channel``, ``randomise``, ``panels``."""
        unknown = set(changes) - {"model", "image", "target", "layer", "channel", "randomise", "panels"}
        if unknown:
            raise ValueError(f"choose() takes model, image, target, layer, channel, randomise, panels; "
                             f"not {', '.join(sorted(unknown))}")
        if "panels" in changes:
            self._check_panels(changes["panels"])
        if "image" in changes and changes["image"] not in self._images:
            name = changes["image"]
            if name not in images.samples():
                raise ValueError(f"no image {name!r}: the sample photos are {', '.join(images.samples())}, "
                                 f"the uploaded ones {', '.join(n for n in self._images if n not in images.samples())}")
            self._images[name] = images.load(name)
        if "model" in changes and changes["model"] not in self.w["model"].options:
            raise ValueError(f"the explorer offers the models {', '.join(self.w['model'].options)}, "
                             f"not {changes['model']!r}")
        if "model" in changes and isinstance(changes.get("target"), str):
            self._update(model=changes.pop("model"))
        if isinstance(changes.get("target"), str):
            self.wait_for_model()
            classes = self._bundles[changes.get("model", self.choice.model)].classes
            if changes["target"] not in classes:
                like = [c for c in classes if changes["target"].lower() in c.lower()][:8]
                raise ValueError(f"no class {changes['target']!r}" + (f"; classes like it: {', '.join(like)}" if like else ""))
            changes["target"] = classes.index(changes["target"])
        self._update(**changes)
        return self

    def _update(self, **changes) -> None:
        """The one place the choice changes: a new model resets class, layer and channel; a new image the
        class; a new layer the channel (channel numbers mean nothing across layers)."""
        with self._cond:
            new = replace(self.choice, **changes)
            if new.model != self.choice.model:
                new = replace(new, target=changes.get("target"), layer=changes.get("layer"), channel=changes.get("channel"))
                self._loading_error = None           # another model: an earlier one's failure no longer stops waits
            if new.layer != self.choice.layer and "channel" not in changes:
                new = replace(new, channel=None)
            if new.image != self.choice.image and "target" not in changes:
                new = replace(new, target=None)
            if new.layer is not None and new.model in self._layers and new.layer not in self._layers[new.model]:
                raise ValueError(f"no layer {new.layer!r} in {new.model}; its layers: {', '.join(self._layers[new.model])}")
            self.choice = new
            self._cond.notify_all()
        self._sync_widgets()

    def resolved(self, choice: Choice | None = None) -> Choice | None:
        """``choice`` with the top class, the default layer and the most active channel filled in; None
        while the model or the image's predictions are not ready (the channel stays None until that
        channel is known)."""
        c = choice or self.choice
        preds = self._predictions.get((c.model, c.image))
        if c.model not in self._layers or preds is None:
            return None
        layers = self._layers[c.model]
        layer = c.layer if c.layer in layers else self._default_layer(c.model)
        channel = self._top_channel.get((c.model, c.image, layer)) if c.channel is None else min(c.channel, layers[layer] - 1)
        return replace(c, target=preds[0][0] if c.target is None else c.target, layer=layer, channel=channel)

    def _default_layer(self, model: str) -> str:
        stages = [s for s in self._bundles[model].stages if s in self._layers[model]]
        return stages[-1] if stages else list(self._layers[model])[-1]

    def wanted(self, panel: str) -> tuple | None:
        """The key of the figure ``panel`` should show now (None: hidden, or waiting for the model)."""
        c = self.resolved()
        if c is None or panel not in c.panels or (c.channel is None and "channel" in PANELS[panel].needs):
            return None
        return key(panel, c)

    def stale(self) -> list[str]:
        """The visible panels whose figure is not the wanted one yet."""
        return [p for p in self.choice.panels if self.wanted(p) is None
                or (self._shown.get(p) != self.wanted(p) and self._failed.get(p, (None,))[0] != self.wanted(p))]

    # ------------------------------------------------------------ inputs

    def upload(self, name: str, data: bytes) -> bool:
        """Add an uploaded file and show it. A file that is not an image is a message in the page
        (``self.message``), the choice unchanged; returns whether it was taken."""
        try:
            img = images.load(bytes(data))
        except (images.ImageError, ValueError, OSError) as err:
            self._say(f"'{html.escape(name)}' was not taken: {html.escape(str(err))}. Upload a JPEG, PNG or WebP "
                      "image.", error=True)
            return False
        label = f"upload: {name}"
        n = 2
        while label in self._images:                         # a second file of the same name
            label, n = f"upload: {name} ({n})", n + 1
        self._images[label] = img
        self._say(f"'{html.escape(name)}' taken: {img.shape[-1]}x{img.shape[-2]} px.")
        self._local.syncing = True
        try:
            self.w["image"].options = list(self._images)
        finally:
            self._local.syncing = False
        self._update(image=label)
        return True

    # ------------------------------------------------------------ waiting and results

    def wait_for_model(self, timeout: float = 600) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.choice.model in self._layers or self._loading_error, timeout):
                raise TimeoutError(f"the model {self.choice.model} did not load within {timeout:.0f} s")
        if self._loading_error:
            raise RuntimeError(self._loading_error)

    def wait(self, timeout: float = 600) -> "Explorer":
        """Block until every visible panel shows the current choice (or its error)."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self.stale() or self._loading_error, timeout):
                raise TimeoutError(f"panels {', '.join(self.stale())} not drawn within {timeout:.0f} s")
        if self._loading_error:
            raise RuntimeError(self._loading_error)
        return self

    @property
    def bundle(self) -> zoo.Bundle:
        """The model in use, with its classes and preprocessing (after it has loaded)."""
        self.wait_for_model()
        return self._bundles[self.choice.model]

    def top5(self) -> list[tuple[str, float]]:
        """The image's five most likely classes, (name, probability)."""
        self.wait_for_model()
        with self._cond:
            self._cond.wait_for(lambda: (self.choice.model, self.choice.image) in self._predictions, 600)
        return [(self.bundle.classes[i], p) for i, p in self._predictions[self.choice.model, self.choice.image]]

    def snapshot(self) -> None:
        """Show each visible panel's figure as a plain image, for pages without a kernel (a rendered
        notebook, GitHub's preview); nothing under Voila, where the panels themselves are the page."""
        import os
        from IPython.display import Image, display
        if os.environ.get("SERVER_SOFTWARE", "").startswith("voila"):
            return
        for panel in self.choice.panels:
            if panel in self._shown:
                display(Image(self.png(panel)))

    @property
    def errors(self) -> dict[str, str]:
        """The visible panels that could not be drawn for the current choice, with the reason."""
        return {p: msg for p, (k, msg) in self._failed.items() if k == self.wanted(p)}

    def png(self, panel: str) -> bytes:
        """The PNG a panel shows."""
        if panel not in self._shown:
            raise ValueError(f"panel {panel!r} shows no figure yet; shown: {', '.join(self._shown) or 'none'}")
        return self._cache[self._shown[panel]]

    def save(self, panel: str, path) -> None:
        with open(path, "wb") as f:
            f.write(self.png(panel))

    def close(self) -> None:
        """Stop the lanes (the page keeps its last figures)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ------------------------------------------------------------ the lanes

    def _lane(self, lane: str) -> None:
        while True:
            with self._cond:
                work = self._cond.wait_for(lambda: self._closed or self._next(lane))
                if self._closed:
                    return
            try:
                work()
            except Exception as err:        # never let a lane die: say it in the page
                self._say(f"{type(err).__name__}: {html.escape(str(err))}", error=True)
                time.sleep(0.5)

    def _next(self, lane: str):
        """The next piece of work for ``lane`` as a callable, or None (under the lock)."""
        c = self.choice
        if self._loading_error and self._loading_error.startswith(c.model + ":"):
            return None
        if c.model not in self._bundles:
            return (lambda: self._load(c.model)) if lane == "quick" else None
        if lane == "quick" and (c.model, c.image) not in self._predictions:
            return lambda: self._predict(c.model, c.image)
        r = self.resolved(c)
        if r is None:
            return None
        if r.channel is None and any("channel" in PANELS[p].needs for p in r.panels):
            return (lambda: self._find_top_channel(r)) if lane == "quick" else None
        for panel in r.panels:
            if r.channel is None and "channel" in PANELS[panel].needs:
                continue
            k = key(panel, r)
            if PANELS[panel].lane != lane or self._shown.get(panel) == k or self._failed.get(panel, (None,))[0] == k:
                continue
            return lambda p=panel, k=k, r=r: self._draw(lane, p, k, r)
        return None

    def _load(self, name: str) -> None:
        self._say(f"loading {name} ...")
        try:
            bundle = zoo.load(name)
            x = bundle.preprocess(torch.full((1, 3, bundle.input_size, bundle.input_size), 0.5))
            seen: list[tuple[str, torch.Tensor]] = []          # (name, output) of the top two levels, in order

            def record(module, inputs, output, name):
                if isinstance(output, torch.Tensor) and output.dim() == 4 and min(output.shape[2:]) > 1:
                    if seen and seen[-1][1] is output:            # a block's output is its stage's: keep the stage
                        seen.pop()
                    seen.append((name, output))
            handles = [m.register_forward_hook(functools.partial(record, name=n))
                       for n, m in bundle.model.named_modules() if n and n.count(".") <= 1]
            try:
                with torch.no_grad():
                    bundle.model(x)
            finally:
                for h in handles:
                    h.remove()
            layers = {n: o.shape[1] for n, o in seen}
        except Exception as err:
            with self._cond:
                self._loading_error = f"{name}: could not load ({err})"
                self._cond.notify_all()
            self._say(html.escape(self._loading_error), error=True)
            return
        with self._cond:
            self._bundles[name], self._layers[name] = bundle, layers
            self._cond.notify_all()
        self.w["about"].value = f"<small>{html.escape(bundle.description)}</small>"
        if self.message.startswith("loading"):
            self._say("")
        self._sync_widgets()

    def _model_copy(self, lane: str, name: str) -> nn.Module:
        if (lane, name) not in self._copies:
            model = self._bundles[name].model
            self._copies[lane, name] = model if lane == "quick" else copy.deepcopy(model)
        return self._copies[lane, name]

    def _input(self, c: Choice) -> tuple[torch.Tensor, torch.Tensor]:
        b = self._bundles[c.model]
        img = images.square(self._images[c.image], b.input_size)
        return img, b.preprocess(img)

    def _predict(self, model: str, image: str) -> None:
        b = self._bundles[model]
        img, x = self._input(replace(self.choice, model=model, image=image))
        with torch.no_grad():
            probs = self._model_copy("quick", model)(x).softmax(1)[0]
        top = probs.topk(min(5, len(b.classes)))
        with self._cond:
            self._predictions[model, image] = list(zip(top.indices.tolist(), top.values.tolist()))
            self._cond.notify_all()
        self._sync_widgets()

    def _find_top_channel(self, r: Choice) -> None:
        """The channel of ``r.layer`` with the largest mean activation on the image."""
        _, x = self._input(r)
        with torch.no_grad():
            act = hooks.activations(self._model_copy("quick", r.model), x, r.layer)[r.layer][0]
        with self._cond:
            self._top_channel[r.model, r.image, r.layer] = int(act.flatten(1).mean(1).argmax())
            self._cond.notify_all()
        self._sync_widgets()

    def _draw(self, lane: str, panel: str, figure_key: tuple, choice: Choice) -> None:
        box = self._boxes[panel]
        if figure_key in self._cache:
            return self._show(panel, figure_key)
        start = time.perf_counter()
        b = self._bundles[choice.model]
        model = self._model_copy(lane, choice.model)
        img, x = self._input(choice)
        slow = PANELS[panel].lane == "slow"

        def progress(fraction):
            box["progress"].value = fraction
        if slow:
            box["progress"].value = 0.0
            box["progress"].layout.visibility = "visible"
        job = _Job(panel, figure_key, choice, b, model, x, img, choice.target, lambda: self.wanted(panel) == figure_key,
                   progress)
        try:
            fig = DRAW[panel](self, panel, job)
            with _DRAWING:
                png = widgets.figure_png(fig, dpi=72)
        except Superseded:
            return
        except Exception as err:
            with self._cond:
                self._failed[panel] = (figure_key, f"{type(err).__name__}: {err}")
                self._cond.notify_all()
            if self.wanted(panel) == figure_key:
                box["figure"].value = b""
                box["note"].value = f"<span style='color:#b00'>{html.escape(self._failed[panel][1])}</span>"
            return
        finally:
            job.handle.remove()
            if slow:
                box["progress"].layout.visibility = "hidden"
        self.timings.append((panel, time.perf_counter() - start))
        with self._cond:
            self._cache[figure_key] = png
        self._show(panel, figure_key)

    def _show(self, panel: str, figure_key: tuple) -> None:
        """Put a computed figure in its panel, if it is still the wanted one."""
        with self._cond:
            if self.wanted(panel) != figure_key:
                return
            png = self._cache[figure_key]
            self._shown[panel] = figure_key
            self._cond.notify_all()
        box = self._boxes[panel]
        box["figure"].value = png
        name = "_".join(str(v) for v in figure_key if v is not None).replace(" ", "-").replace("/", "-")
        box["note"].value = (f"{html.escape(PANELS[panel].about)} &middot; <a download='{html.escape(name)}.png' "
                             f"href='data:image/png;base64,{base64.b64encode(png).decode()}'>save PNG</a>")

    # ------------------------------------------------------------ the widgets

    def _say(self, text: str, error: bool = False) -> None:
        self.message = text
        self.w["status"].value = f"<span style='color:{'#b00' if error else '#333'}'>{text}</span>"

    def _build_widgets(self, samples: list[str], offered: list[str]) -> None:
        wide = {"description_width": "initial"}
        w = self.w = {
            "status": W.HTML("starting ..."),
            "image": W.Dropdown(options=samples, value=self.choice.image, description="image", style=wide),
            "upload": W.FileUpload(accept="image/jpeg,image/png,image/webp,.jpg,.jpeg,.png,.webp", multiple=False,
                                   description="upload"),
            "model": W.Dropdown(options=offered, value=self.choice.model, description="model", style=wide),
            "about": W.HTML(layout=W.Layout(width="300px")),
            "picture": W.Image(format="png", layout=W.Layout(width="224px")),
            "top5": W.RadioButtons(options=[], description="", layout=W.Layout(width="300px")),
            "search": W.Combobox(placeholder="type part of a class name", ensure_option=True, description="class",
                                 style=wide),
            "layer": W.SelectionSlider(options=["-"], description="layer", continuous_update=False, style=wide,
                                       layout=W.Layout(width="420px")),
            "channel": W.IntSlider(min=0, max=1, description="channel", continuous_update=False, style=wide),
            "randomise": W.IntSlider(min=0, max=1, value=1, description="randomise top k", continuous_update=False,
                                     style=wide),
        }
        self.message = ""
        self.toggles = {p: W.ToggleButton(value=p in self.choice.panels, description=spec.label,
                                          tooltip=spec.about, layout=W.Layout(width="auto"))
                        for p, spec in PANELS.items()}
        self._boxes = {}
        for p in PANELS:
            box = {"title": W.HTML(f"<b>{PANELS[p].label}</b>"),
                   "progress": W.FloatProgress(min=0, max=1, value=0, layout=W.Layout(visibility="hidden", width="160px")),
                   "figure": W.Image(format="png", layout=W.Layout(max_width="100%")),
                   "note": W.HTML(html.escape(PANELS[p].about))}
            box["box"] = W.VBox([W.HBox([box["title"], box["progress"]]), box["figure"], box["note"]],
                                layout=W.Layout(display="" if p in self.choice.panels else "none",
                                                border="1px solid #ddd", padding="4px", margin="2px"))
            self._boxes[p] = box
        left = W.VBox([w["image"], w["upload"], w["model"], w["about"], w["picture"], W.HTML("<b>top 5</b>"), w["top5"], w["search"]],
                      layout=W.Layout(width="320px"))
        right = W.VBox([W.HBox(list(self.toggles.values()), layout=W.Layout(flex_flow="row wrap")),
                        W.HBox([w["layer"], w["channel"], w["randomise"]], layout=W.Layout(flex_flow="row wrap")),
                        W.GridBox([self._boxes[p]["box"] for p in PANELS],          # as many columns as fit
                                  layout=W.Layout(grid_template_columns="repeat(auto-fill, minmax(440px, 1fr))"))],
                       layout=W.Layout(flex="1"))
        self.ui = W.VBox([w["status"], W.HBox([left, right])])
        w["image"].observe(lambda ch: self._from_widget(image=ch["new"]), names="value")
        w["model"].observe(lambda ch: self._from_widget(model=ch["new"]), names="value")
        w["top5"].observe(lambda ch: ch["new"] is not None and self._from_widget(target=ch["new"]), names="value")
        w["search"].observe(self._on_search, names="value")
        w["layer"].observe(lambda ch: ch["new"] != "-" and self._from_widget(layer=ch["new"]), names="value")
        w["channel"].observe(lambda ch: self._from_widget(channel=ch["new"]), names="value")
        w["randomise"].observe(lambda ch: self._from_widget(randomise=ch["new"]), names="value")
        w["upload"].observe(self._on_upload, names="value")
        for p, t in self.toggles.items():
            t.observe(lambda ch, p=p: self._on_toggle(p, ch["new"]), names="value")
        self._sync_widgets()

    @property
    def _syncing(self) -> bool:
        return getattr(self._local, "syncing", False)

    def _from_widget(self, **change) -> None:
        if not self._syncing:
            self._update(**change)

    def _on_toggle(self, panel: str, on: bool) -> None:
        if self._syncing:
            return
        panels = [p for p in PANELS if (p == panel and on) or (p != panel and p in self.choice.panels)]
        self._update(panels=tuple(panels))

    def _on_search(self, change) -> None:
        if self._syncing or not change["new"] or self.choice.model not in self._bundles:
            return
        classes = self._bundles[self.choice.model].classes
        label = change["new"]
        index = int(label.rsplit("(", 1)[-1].rstrip(")")) if label.endswith(")") else classes.index(label)
        self._update(target=index)

    def _on_upload(self, change) -> None:
        files = widgets.uploaded_files(change["new"])
        if files:
            self.upload(*files[-1])

    def _sync_widgets(self) -> None:
        """The controls show the choice (without calling back)."""
        c, r, w = self.choice, self.resolved(), self.w
        self._local.syncing = True
        try:
            for p, t in self.toggles.items():
                t.value = p in c.panels
                self._boxes[p]["box"].layout.display = "" if p in c.panels else "none"
            if w["image"].value != c.image:
                w["image"].value = c.image
            if w["model"].value != c.model:
                w["model"].value = c.model
            if c.model in self._bundles:
                b = self._bundles[c.model]
                if self._pictured != (c.model, c.image):          # the input as the model sees it, once per image
                    self._pictured = (c.model, c.image)
                    with _DRAWING:
                        w["picture"].value = widgets.figure_png(self._picture(self._input(c)[0]), dpi=72)
                layers = list(self._layers[c.model])
                if list(w["layer"].options) != layers:
                    w["layer"].options = layers
                if r is not None:
                    w["layer"].value = r.layer
                    w["channel"].max = self._layers[c.model][r.layer] - 1
                    if r.channel is not None:
                        w["channel"].value = r.channel
                    w["randomise"].max = len(sanity.weight_layers(b.model))
                    w["randomise"].value = min(c.randomise, w["randomise"].max)
                    preds = self._predictions[c.model, c.image]
                    options = [(f"{b.classes[i]} {p:.0%}", i) for i, p in preds]
                    if r.target not in [i for i, _ in preds]:
                        options.append((f"{b.classes[r.target]} (chosen)", r.target))
                    if list(w["top5"].options) != options:
                        w["top5"].options = options
                    w["top5"].value = r.target
                    names = [f"{n} ({i})" for i, n in enumerate(b.classes)]
                    if len(w["search"].options) != len(names):
                        w["search"].options = names
        finally:
            self._local.syncing = False

    @staticmethod
    def _picture(img: torch.Tensor):
        fig, ax = plt.subplots(figsize=(3.1, 3.1))
        plotting.show(ax, img, f"the input, {img.shape[-1]} px")
        fig.tight_layout()
        return fig

    def show(self):
        """Display the page (in a notebook or in Voila)."""
        from IPython.display import display
        display(self.ui)
        return self

