"""What the assignments' tests use to grade a function and to say, in words, what is wrong with it.

This file travels with each assignment (next to the notebook, and in the autograder); the tests
import it. Three tools:

* ``write_yourself("saliency")``: while the block runs, the lecturekit functions that would answer
  the question fail with "write this yourself: the library's saliency is not allowed here". The
  function object itself is disabled, so an alias (``from lecturekit.attribution import saliency``)
  is caught too. ``LIBRARY_ANSWERS`` below is the one table of those functions.
* ``expect_close(got, want, "what")``: compares a result with the expected one and, when they
  differ, says how: the shape, the dtype, the sign, a constant factor (a normalisation), or which
  of the likely mistakes it matches (``near={"description": tensor}``), and what was expected.
* ``Spy`` and ``substitute``: record the calls a function makes to another of the notebook's
  functions (to check that the loop uses *your* objective), or swap one for another while a test
  runs (so that a mistake in one question does not cost points in the next).
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import types

import torch

#: For each graded function (by its name in the notebook): the lecturekit functions that would do
#: its work, as "module:attribute". They fail while the student's function is graded. When
#: lecturekit renames or moves one, change it here (tests/test_assignments.py checks that every
#: entry is found in the installed lecturekit).
_GRADIENT = ["lecturekit.attribution:saliency", "lecturekit.attribution:_input_gradient",
             "lecturekit.attribution:smoothgrad", "lecturekit.attribution:gradient_x_input"]
_GUIDED_RULE = ["lecturekit.attribution:_GuidedReLU.forward", "lecturekit.attribution:_GuidedReLU.backward",
                "lecturekit.attribution:_GuidedReLUFast.forward", "lecturekit.attribution:_GuidedReLUFast.backward"]
_RANKS = ["lecturekit.sanity:rank_correlation", "lecturekit.sanity:ranks"]
_GRAM = ["lecturekit.losses:gram", "lecturekit.losses:gram_fast", "lecturekit.losses:_GramProduct.forward",
         "lecturekit.losses:_GramProduct.backward"]
_TV = ["lecturekit.losses:total_variation", "lecturekit.ascent:tv"]
_CONTENT = ["lecturekit.losses:feature_match", "lecturekit.losses:relative_error"]
_STYLE_LOSSES = [*_GRAM, *_CONTENT, *_TV, "lecturekit.losses:gram_match", "lecturekit.style:style_loss",
                 "lecturekit.faststyle:loss_terms"]
LIBRARY_ANSWERS: dict[str, list[str]] = {
    # network_visualization
    "saliency": _GRADIENT,
    "make_fooling_image": ["lecturekit.ascent:ascend", "lecturekit.ascent:fgsm", "lecturekit.ascent:class_score"],
    "l2_penalty": ["lecturekit.ascent:l2"],
    "tv_penalty": _TV,
    "class_objective": ["lecturekit.ascent:class_score", "lecturekit.ascent:l2", *_TV],
    "visualize_class": ["lecturekit.ascent:ascend", "lecturekit.ascent:jitter", "lecturekit.ascent:class_score"],
    # attribution
    "GuidedReLU": _GUIDED_RULE,
    "guided_backprop": ["lecturekit.attribution:guided_backprop", *_GUIDED_RULE, *_GRADIENT],
    "grad_cam": ["lecturekit.attribution:grad_cam", "lecturekit.attribution:guided_grad_cam",
                 "lecturekit.attribution:cam"],
    "occlusion": ["lecturekit.attribution:occlusion"],
    "rank_correlation": _RANKS,
    "randomization_curve": _RANKS,
    # style
    "content_loss": [*_CONTENT, "lecturekit.faststyle:loss_terms"],
    "gram": _GRAM,
    "style_loss": _STYLE_LOSSES,
    "tv_loss": [*_TV, "lecturekit.faststyle:loss_terms"],
    "style_transfer": [*_STYLE_LOSSES, "lecturekit.style:transfer", "lecturekit.ascent:ascend"],
    "train_step": [*_STYLE_LOSSES, "lecturekit.faststyle:train"],
}


def library_function(name: str):
    """The function object behind "module:attr.attr" (decorators unwrapped), or None where the
    installed lecturekit has no such name."""
    module_name, _, path = name.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    obj = inspect.unwrap(obj)
    return obj if isinstance(obj, types.FunctionType) else None


def _failing_code(func: types.FunctionType, message: str) -> types.CodeType:
    """A code object that raises ``message``, with the same free variables as ``func`` (Python
    only lets a function's code be replaced by one with as many)."""
    free = func.__code__.co_freevars
    lines = ["def _outer():", *[f"    {v} = None" for v in free], "    def _fails(*args, **kwargs):"]
    if free:
        lines.append(f"        ({', '.join(free)},)")
    lines += [f"        raise NotImplementedError({message!r})", "    return _fails"]
    namespace: dict = {}
    exec("\n".join(lines), namespace)
    code = namespace["_outer"]().__code__
    if code.co_freevars != free:
        raise RuntimeError(f"cannot disable {func.__qualname__}: free variables {free} vs {code.co_freevars}")
    return code


@contextlib.contextmanager
def write_yourself(*graded: str):
    """While the block runs, the library functions that answer ``graded`` (names of the notebook's
    functions, keys of ``LIBRARY_ANSWERS``) fail with a message that says so."""
    unknown = [g for g in graded if g not in LIBRARY_ANSWERS]
    if unknown:
        raise ValueError(f"no entry for {unknown} in LIBRARY_ANSWERS; known: {', '.join(LIBRARY_ANSWERS)}")
    saved = {}
    try:
        for g in graded:
            for name in LIBRARY_ANSWERS[g]:
                func = library_function(name)
                if func is None or func in saved:
                    continue
                short = name.partition(":")[2].split(".")[0].lstrip("_")
                message = (f"write this yourself: the library's {short} is not allowed here "
                           f"({name.replace(':', '.')} was called while grading {g})")
                saved[func] = func.__code__
                func.__code__ = _failing_code(func, message)
        yield
    finally:
        for func, code in saved.items():
            func.__code__ = code


@contextlib.contextmanager
def substitute(namespace: dict, **replacements):
    """Bind names of ``namespace`` (the notebook's globals) to other objects for the block."""
    missing = [k for k in replacements if k not in namespace]
    if missing:
        raise AssertionError(f"the notebook defines no {', '.join(missing)}: keep the names the questions give")
    before = {k: namespace[k] for k in replacements}
    namespace.update(replacements)
    try:
        yield
    finally:
        namespace.update(before)


class Spy:
    """Calls ``fn``, recording each call's arguments (``calls``: a list of (args, kwargs)) and what
    it returned (``results``)."""

    def __init__(self, fn):
        self.fn, self.calls, self.results = fn, [], []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        result = self.fn(*args, **kwargs)
        self.results.append(result)
        return result

    def arg(self, i: int, name: str, call: int = 0):
        """Argument number ``i`` (or keyword ``name``) of call number ``call``."""
        args, kwargs = self.calls[call]
        return args[i] if i < len(args) else kwargs[name]


def _values(t: torch.Tensor) -> str:
    return str([round(v, 4) for v in t.detach().double().flatten().tolist()])


def _difference(got: torch.Tensor, want: torch.Tensor) -> str:
    """Both values when they are few, else where they differ most."""
    if want.numel() <= 6:
        return f"expected {_values(want)}, got {_values(got)}"
    diff = (got.double() - want.double()).abs()
    where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    return (f"largest difference {float(diff.max()):.4g} at index {where}: got {float(got[where]):.6g}, "
            f"expected {float(want[where]):.6g}")


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


def expect_close(got, want: torch.Tensor, what: str, *, near: dict | None = None, dtype: bool = True,
                 rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Raise an AssertionError that says how ``got`` differs from ``want`` (``what`` names the call).

    ``near`` maps a likely mistake, in words, to the result that mistake gives; a result that
    matches one is told which. Without a match the message names the constant factor between the
    two (a normalisation), a flipped sign, or the largest difference and where it is."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what} should return a torch.Tensor of shape {tuple(want.shape)}, "
                             f"got {type(got).__name__}")
    if got.shape != want.shape:
        raise AssertionError(f"{what} has shape {tuple(got.shape)}; expected {tuple(want.shape)}")
    if dtype and got.dtype != want.dtype:
        raise AssertionError(f"{what} is {got.dtype}; expected {want.dtype}: keep the dtype of the input "
                             "(do not convert to float32 or create tensors without dtype=)")
    got, want = got.detach().cpu(), want.detach().cpu()
    if not torch.isfinite(got).all():
        raise AssertionError(f"{what} holds NaN or infinite values; every value should be finite")
    if _close(got, want, rtol, atol):
        return
    for mistake, result in (near or {}).items():
        if isinstance(result, torch.Tensor) and _close(got, result.detach().cpu().to(got.dtype), rtol, atol):
            raise AssertionError(f"{what} is wrong: it gives what {mistake} gives ({_difference(got, want)})")
    if _close(got, -want, rtol, atol) and want.abs().max() > atol:
        raise AssertionError(f"{what} has the wrong sign: it is minus the expected value ({_difference(got, want)})")
    if _close(got.abs(), want.abs(), rtol, atol):
        raise AssertionError(f"{what} has the right magnitudes but some signs differ: is an absolute value missing, "
                             f"or one too many? ({_difference(got, want)})")
    scale = (got * want).sum() / (want * want).sum() if want.abs().max() > 0 else torch.tensor(0.0)
    if want.abs().max() > atol and abs(float(scale) - 1) > 1e-3 and _close(got, scale * want, 1e-4, atol):
        raise AssertionError(f"{what} is the expected value times {float(scale):.6g}: a constant factor "
                             f"(check the normalisation, what is averaged over, and the weight; {_difference(got, want)})")
    raise AssertionError(f"{what} differs from the expected value: {_difference(got, want)}")


def expect_number(got, want: float, what: str, *, tol: float = 1e-6, near: dict | None = None) -> None:
    """Like ``expect_close`` for one Python number."""
    if isinstance(got, torch.Tensor) or not isinstance(got, (int, float)):
        raise AssertionError(f"{what} should be a Python float (use .item() or float(...)), got {type(got).__name__}")
    if abs(got - want) <= tol * max(1.0, abs(want)):
        return
    for mistake, result in (near or {}).items():
        if abs(got - result) <= tol * max(1.0, abs(result)):
            raise AssertionError(f"{what} is wrong: it gives what {mistake} gives ({got:.6g}); expected {want:.6g}")
    raise AssertionError(f"{what} is {got:.6g}; expected {want:.6g}")
