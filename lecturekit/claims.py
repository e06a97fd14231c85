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
