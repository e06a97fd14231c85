"""Borrow a model's layers for a moment, always give them back.

    with hooks.capture(model, ["conv1", "relu4"], gradients=True) as rec:
        model(x)[0, target].backward()
    rec.activations["relu4"], rec.gradients["relu4"]

    acts = hooks.activations(model, x, ["relu2"])      # no_grad, stops after the last layer asked for

Every hook is removed in ``finally``, so an exception inside the ``with`` block leaves
the model exactly as it was. Gradients are caught with ``tensor.register_hook`` on the
layer's output inside a forward hook (module backward hooks have known pitfalls).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn


def layer_names(model: nn.Module) -> list[str]:
    """Every addressable layer name of ``model`` (as in ``model.named_modules()``, root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name``; an unknown name is an error that lists the valid ones."""
    __tracebackhide__ = True
    modules = dict(model.named_modules())
    if not isinstance(name, str) or not name or name not in modules:
        hint = "" if isinstance(name, str) else f" (layers are named by strings, not {type(name).__name__})"
        raise ValueError(f"{type(model).__name__} has no layer {name!r}{hint}. Valid layer names: "
                         f"{', '.join(layer_names(model))}")
    return modules[name]


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The name and module of the first ``nn.Conv2d`` in ``model`` (its first-layer filters)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no Conv2d layer")


def count(model: nn.Module) -> int:
    """How many hooks of any kind are registered on ``model``'s modules (0 when all are returned)."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, k, {})) for m in model.modules() for k in kinds)


class Recording:
    """What a ``capture`` saw: ``activations[name]`` and ``gradients[name]`` (tensors)."""

    def __init__(self):
        self.activations: dict[str, torch.Tensor] = {}
        self.gradients: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.activations.items()}
        return f"Recording(activations={shapes}, gradients={list(self.gradients)})"


def layer_list(layers) -> list[str]:
    """One layer name or several, as a list; anything else (an int, None) is kept for ``get_layer``
    to refuse with the list of valid names."""
    return [layers] if isinstance(layers, str) or not isinstance(layers, Iterable) else list(layers)


@contextmanager
def capture(model: nn.Module, layers: str | Iterable[str], gradients: bool = False,
            detach: bool = True) -> Iterator[Recording]:
    """Record the outputs (and with ``gradients=True`` the output gradients) of named layers.

    ``detach=False`` keeps the recorded activations in the autograd graph, so that an
    objective can be built from them (gradient ascent on the input).
    """
    names = list(dict.fromkeys(layer_list(layers)))          # a name given twice is recorded once
    modules = [get_layer(model, n) for n in names]        # validate every name before hooking any
    rec = Recording()
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            rec.activations[name] = output.detach() if detach else output
            if gradients and output.requires_grad:
                def save_grad(grad):
                    rec.gradients[name] = grad.detach()
                output.register_hook(save_grad)
        return hook

    try:
        for name, module in zip(names, modules):
            handles.append(module.register_forward_hook(make_hook(name)))
        yield rec
    finally:
        for h in handles:
            h.remove()


class _Stop(Exception):
    pass


def run(model: nn.Module, x: torch.Tensor, layers: str | Iterable[str], stop: bool = True,
        detach: bool = True) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """One forward pass, in eval mode (the model's modes are restored after), recording the named
    layers' outputs: (activations, model output).

    With ``stop`` the pass ends as soon as every named layer has run (the output is then None),
    so nothing after the deepest layer asked for is computed. ``detach=False`` keeps the
    activations in the autograd graph (for objectives built from them). ``x`` is moved to the
    model's device first, so a CPU input works with a model on a GPU."""
    names = list(dict.fromkeys(layer_list(layers)))          # a name given twice is recorded once
    modules = [get_layer(model, n) for n in names]
    param = next(model.parameters(), None)
    x = x if param is None else x.to(param.device)
    out: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            out[name] = output.detach() if detach else output
            if stop and len(out) == len(names):
                raise _Stop
        return hook

    result = None
    with preserved(model):
        model.eval()                                        # batch norm statistics stay as they are
        try:
            for name, module in zip(names, modules):
                handles.append(module.register_forward_hook(make_hook(name)))
            result = model(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
    return {n: out[n] for n in names}, result


@torch.no_grad()
def activations(model: nn.Module, x: torch.Tensor, layers: str | Iterable[str]) -> dict[str, torch.Tensor]:
    """Outputs of the named layers for input ``x``; the forward pass stops once all are seen."""
    return run(model, x, layers)[0]


@contextmanager
def preserved(model: nn.Module, borrow: bool = False) -> Iterator[nn.Module]:
    """Restore every module's train/eval mode and every parameter's ``requires_grad`` on exit.
    With ``borrow``, also put the model in eval mode, stop every parameter asking for a gradient and
    every ``inplace`` module (``nn.ReLU(inplace=True)``, dropout) working in place meanwhile (the same
    values, but a tensor a hook has seen stays as it was); those flags are restored too."""
    modules = list(model.modules())                  # one walk: attributions run this around every call
    modes = [m.training for m in modules]
    params = list(dict.fromkeys(p for m in modules for p in m._parameters.values() if p is not None))
    flags = [p.requires_grad for p in params]
    inplace = [m for m in modules if getattr(m, "inplace", None) is True] if borrow else []
    try:
        if borrow:
            if any(modes):
                model.eval()
            for p, flag in zip(params, flags):
                if flag:
                    p.requires_grad_(False)
            for m in inplace:
                m.inplace = False
        yield model
    finally:
        # only what changed: setting a module attribute costs microseconds, on models of hundreds of modules
        for m in inplace:
            m.inplace = True
        for m, training in zip(modules, modes):
            if m.training != training:
                m.training = training
        for p, flag in zip(params, flags):
            if p.requires_grad != flag:
                p.requires_grad_(flag)
