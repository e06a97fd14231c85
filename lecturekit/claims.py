"""A notebook's claims, checked where they can be.

    lk.claims.check(loss[-1] < loss[0] / 2, "the loss at least halves", verified=net.verified)

A claim verified on the model in use (the teaching models, the offline style features, and
anything that holds whatever the weights) is an assert: the notebook stops when it fails, and
the tests run every notebook. A claim about trained ImageNet weights cannot be verified by this
project's tests (they run offline, with stand-in weight files of random values), so there it is
a visible check: one line that says whether it held and what that means, and the notebook
goes on.
"""
from __future__ import annotations

from contextlib import contextmanager


def check(held, claim: str, verified: bool = True, otherwise: str = "") -> bool:
    """Assert ``claim`` when ``verified``; else print whether it held (and ``otherwise``: what a
    failure means) and return ``held``."""
    held = bool(held)
    if verified:
        if not held:
            raise AssertionError(claim)
        return True
    if held:
        print(f"check held: {claim}")
    else:
        print(f"check did NOT hold: {claim}. With stand-in or damaged weights that is expected"
              + (f"; {otherwise}" if otherwise else "") + ".")
    return held


def tf32(device) -> bool:
    """Does float32 work on ``device`` use TF32 (cuDNN's default for convolutions on Ampere and newer GPUs)?"""
    import torch
    return torch.device(device).type == "cuda" and bool(torch.backends.cudnn.allow_tf32
                                                        or torch.backends.cuda.matmul.allow_tf32)


def close(actual, expected, atol: float = 1e-5, rtol: float = 1.3e-6, on=None) -> None:
    """Assert that a result worked out by hand equals the helper's, at the precision of the device
    they ran on (``on``: a model, a tensor or a device; default: ``lk.config.device()``).

    On the CPU the tolerances are as given. A GPU that runs float32 convolutions in TF32 keeps
    10 bits of mantissa, so two orders of the same sums differ by about 1e-3 per layer and more
    over many steps: there the tolerances are at least 2e-2, still far below the size of a wrong
    formula's error."""
    import torch

    from . import config
    if on is None:
        device = config.device()
    elif isinstance(on, torch.nn.Module):
        device = next(iter(on.parameters()), torch.empty(0)).device
    elif isinstance(on, torch.Tensor):
        device = on.device
    else:
        device = torch.device(on)
    if tf32(device) and torch.float32 in (getattr(actual, "dtype", None), getattr(expected, "dtype", None)):
        atol, rtol = max(atol, 2e-2), max(rtol, 2e-2)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


@contextmanager
def exact():
    """For a by-hand check that repeats many steps on a GPU (Adam turns rounding noise in tiny
    gradients into whole steps): float32 in full precision (no TF32) and cuDNN's deterministic
    algorithms for the duration, the settings restored afterwards. Nothing changes on the CPU."""
    import torch
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark
    try:
        cudnn.allow_tf32 = matmul.allow_tf32 = False
        cudnn.deterministic, cudnn.benchmark = True, False
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved
