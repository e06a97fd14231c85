"""Feature vectors and activations of many images, computed in batches and kept.

    feats = features.extract(model, images, ["relu4"], preprocess, reduce=features.global_average)
    cache = features.LayerCache(model, images, preprocess, reduce=features.spatial_max)
    values, rows, cols = cache("relu3")          # the network runs once per layer, then never again

Plus nearest neighbours and leave-one-out k-NN accuracy for comparing feature spaces.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checks, hooks


def global_average(act: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C) by averaging over space; (N, ...) -> (N, D) by flattening."""
    return act.mean((2, 3)) if act.dim() == 4 else act.flatten(1)


def spatial_max(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> where each channel fires most: (values, rows, cols), each (N, C)."""
    if act.dim() != 4:
        raise ValueError(f"spatial_max needs a (N, C, H, W) activation, got shape {tuple(act.shape)}")
    values, flat = act.flatten(2).max(2)
    return values, flat // act.shape[3], flat % act.shape[3]


def _cat(parts: list):
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(p) for p in zip(*parts))
    return torch.cat(parts)


@torch.no_grad()
def extract(model: torch.nn.Module, images: torch.Tensor, layers: str | Iterable[str],
            preprocess: Callable | None = None, reduce: Callable | None = None, batch_size: int = 64,
            progress: bool = True) -> dict:
    """Outputs of ``layers`` for every image (N, C, H, W in 0..1), in batches, on the model's device.

    ``reduce`` maps each batch's activation to what is kept (for example ``global_average``),
    so that a large data set never holds full feature maps. Images are given to the model in
    its own dtype; results are on the CPU, in the dtype the model computes in.
    """
    names = hooks.layer_list(layers)
    model = checks.model(model)
    for name in names:
        hooks.get_layer(model, name)                        # a bad name fails before any work
    _check_batch_size(batch_size)
    if not (isinstance(images, torch.Tensor) and images.dim() == 4 and len(images)):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor with N >= 1 (one image: img[None]), got {shape}")
    if images.dtype == torch.uint8:                         # 0..255 pixels: unambiguous
        images = images.float() / 255
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    out: dict[str, list] = {n: [] for n in names}
    starts = range(0, len(images), batch_size)
    for i in tqdm(starts, desc="features", disable=not progress, delay=2):
        x = checks.finite(images[i:i + batch_size].to(device=device, dtype=dtype), "the (preprocessed) images")
        x = checks.model_input(model, preprocess(x) if preprocess else x, "the (preprocessed) images")
        acts = hooks.activations(model, x, names)
        for n in names:
            kept = reduce(acts[n]) if reduce else acts[n]
            out[n].append(tuple(t.cpu() for t in kept) if isinstance(kept, tuple) else kept.cpu())
    return {n: _cat(parts) for n, parts in out.items()}


def _check_batch_size(batch_size) -> None:
    if not (checks.whole(batch_size) and batch_size >= 1):
        raise ValueError(f"batch_size must be a whole number >= 1, not {batch_size!r}")


class LayerCache:
    """Per-layer results for a fixed set of images, computed on first use and then kept.

    ``cache(layer)`` runs the network only the first time a layer is asked for; ``runs``
    counts the passes over the data, so a notebook can check that a slider move costs none.
    """

    def __init__(self, model, images: torch.Tensor, preprocess: Callable | None = None,
                 reduce: Callable | None = None, batch_size: int = 64):
        _check_batch_size(batch_size)
        model = checks.model(model)
        self.model, self.images, self.preprocess = model, images, preprocess
        self.reduce, self.batch_size = reduce, batch_size
        self.store: dict = {}
        self.runs = 0

    def prefetch(self, layers: Iterable[str]) -> None:
        """Compute every missing layer of ``layers`` in one pass over the images."""
        missing = [n for n in layers if n not in self.store]
        if missing:
            self.store.update(extract(self.model, self.images, missing, self.preprocess, self.reduce,
                                      self.batch_size))
            self.runs += 1

    def __call__(self, layer: str):
        self.prefetch([layer])
        return self.store[layer]


def _distances(query: torch.Tensor, gallery: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "euclidean":
        return torch.cdist(query, gallery)
    if metric == "cosine":
        return 1 - F.normalize(query, dim=1) @ F.normalize(gallery, dim=1).T
    raise ValueError(f"metric must be 'euclidean' or 'cosine', not {metric!r}")


def nearest(query: torch.Tensor, gallery: torch.Tensor, k: int = 5, metric: str = "euclidean",
            exclude: int | None = None) -> torch.Tensor:
    """Indices of the ``k`` gallery rows (N, D) closest to ``query`` (D,), closest first.

    ``exclude``: a gallery index to leave out (the query itself, when it is in the gallery).
    """
    checks.same_width(query, gallery)
    gallery = gallery.flatten(1).to(torch.promote_types(gallery.dtype, torch.float32))   # float64 stays
    query = query.flatten().to(device=gallery.device, dtype=gallery.dtype)[None]
    if not (checks.whole(k) and 1 <= k <= len(gallery) - (exclude is not None)):
        raise ValueError(f"k must be between 1 and the gallery size ({len(gallery)}), not {k}")
    d = _distances(query, gallery, metric)[0]
    if exclude is not None:
        d[exclude] = float("inf")
    return d.topk(k, largest=False).indices


def knn_accuracy(feats: torch.Tensor, labels: torch.Tensor, k: int = 5, metric: str = "euclidean") -> float:
    """Leave-one-out k-nearest-neighbour classification accuracy (majority vote, ties to the nearest)."""
    feats = feats.flatten(1).to(torch.promote_types(feats.dtype, torch.float32))       # float64 stays
    labels = torch.as_tensor(labels)
    n = len(feats)
    if labels.shape != (n,) or labels.is_floating_point() or labels.dtype == torch.bool or (labels < 0).any():
        raise ValueError(f"labels must be {n} class indices >= 0 (one per feature row), got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    if not (checks.whole(k) and 1 <= k <= n - 1):
        raise ValueError(f"k must be a whole number in 1..{n - 1} (neighbours other than the image itself "
                         f"among {n}), not {k!r}")
    if not torch.isfinite(feats).all():
        raise ValueError("feats hold NaN or infinite values; distances between them mean nothing")
    labels = labels.long().to(feats.device)
    d = _distances(feats, feats, metric)
    d.fill_diagonal_(float("inf"))
    idx = d.topk(k, largest=False).indices                   # (N, k), closest first
    votes = labels[idx]
    n_classes = int(labels.max()) + 1
    # count votes, breaking ties in favour of the nearer neighbours by a tiny rank bonus
    weight = 1 + torch.linspace(1e-3, 0, k, device=feats.device, dtype=feats.dtype).expand_as(votes)
    scores = torch.zeros(len(labels), n_classes, device=feats.device, dtype=feats.dtype).scatter_add_(1, votes, weight)
    return (scores.argmax(1) == labels).float().mean().item()
