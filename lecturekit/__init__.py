"""lecturekit: small, readable helpers for the "Visualizing and Understanding" notebooks.

    import lecturekit as lk
    bundle = lk.zoo.load()                       # the model in use (see lk.config)
    img = lk.images.load("chelsea", size=bundle.input_size)
    with lk.hooks.capture(bundle.model, "relu4") as rec: ...

Submodules are imported on first use (``lk.zoo`` imports ``lecturekit.zoo``), so that
``import lecturekit`` costs little more than importing torch.
"""
import importlib

from .config import pick, quick

__version__ = "0.1.0"
_SUBMODULES = ("ascent", "attribution", "checks", "claims", "config", "explorer", "faststyle", "features", "gallery", "hooks", "images",
               "losses", "paintings", "plotting", "receptive", "sanity", "style", "teaching", "texture", "vit", "weights",
               "widgets", "zoo")
__all__ = [*_SUBMODULES, "pick", "quick"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'lecturekit' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBMODULES})
