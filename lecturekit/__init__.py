"""lecturekit: small, readable helpers for the "Visualizing and Understanding" notebooks.

    import lecturekit as lk
    bundle = lk.zoo.load()                       # the model in use (see lk.config)
    img = lk.images.load("chelsea", size=bundle.input_size)
    with lk.hooks.capture(bundle.model, "relu4") as rec: ...
"""
from . import (ascent, attribution, config, faststyle, features, gallery, hooks, images, paintings, plotting, receptive,
               sanity, style, teaching, texture, widgets, zoo)
from .config import pick, quick

__version__ = "0.1.0"
__all__ = ["ascent", "attribution", "config", "faststyle", "features", "gallery", "hooks", "images", "paintings", "plotting",
           "receptive", "sanity", "style", "teaching", "texture", "widgets", "zoo", "pick", "quick"]
