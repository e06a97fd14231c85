"""Non-parametric texture synthesis (Efros & Leung 1999), vectorised over the exemplar.

Grow the output pixel by pixel in scan-line order. For each new pixel, compare its already
known neighbourhood (a Gaussian-weighted window) with every window of the exemplar, and copy
the centre of one of the best matches (chosen at random among those within ``1 + eps`` of the
best). All exemplar windows are compared at once, so a small texture takes seconds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checks


def efros_leung(exemplar: torch.Tensor, size: tuple[int, int], window: int = 11, eps: float = 0.1,
                seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Synthesise a (C, h, w) texture from ``exemplar`` (C, H, W) or (1, C, H, W), values 0..1.
    The texture is on the exemplar's device, in its dtype (at least float32)."""
    if exemplar.dim() == 4:
        exemplar = exemplar[0]
    if exemplar.dim() != 3:
        raise ValueError(f"exemplar must be (C, H, W), got {tuple(exemplar.shape)}")
    if not (checks.whole(window) and window % 2 == 1 and window >= 3):
        raise ValueError(f"window must be an odd whole number >= 3, not {window!r}")
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(checks.whole(v) and v >= 1 for v in size)):
        raise ValueError(f"size must be (height, width) of the texture, two whole numbers of pixels >= 1, "
                         f"not {size!r}")
    c, hh, ww = exemplar.shape
    if min(hh, ww) < window + 2:
        raise ValueError(f"the exemplar ({hh}x{ww}) must be larger than the window ({window}) by at least 2 pixels")
    gen = torch.Generator().manual_seed(seed)
    half = window // 2
    device, dtype = exemplar.device, torch.promote_types(exemplar.dtype, torch.float32)
    patches = F.unfold(exemplar[None].to(dtype), window)[0].T.view(-1, c, window * window)  # (P, C, w*w)
    centres = patches[:, :, (window * window) // 2]                                          # (P, C)
    h, w = int(size[0]), int(size[1])
    out = torch.zeros(c, h + 2 * half, w + 2 * half, device=device, dtype=dtype)
    known = torch.zeros(h + 2 * half, w + 2 * half, dtype=torch.bool, device=device)
    # seed: a random 3x3 piece of the exemplar in the top-left corner
    r0 = int(torch.randint(0, hh - 3, (1,), generator=gen))
    c0 = int(torch.randint(0, ww - 3, (1,), generator=gen))
    out[:, half:half + 3, half:half + 3] = exemplar[:, r0:r0 + 3, c0:c0 + 3]
    known[half:half + 3, half:half + 3] = True
    g = torch.arange(window, device=device, dtype=dtype) - half
    gauss = torch.exp(-(g[:, None] ** 2 + g[None, :] ** 2) / (2 * (window / 6.4) ** 2)).flatten()
    todo = [(r, s) for r in range(h) for s in range(w) if not (r < 3 and s < 3)]     # all but the seed
    for r, s in tqdm(todo, desc="Efros-Leung", disable=not progress, leave=False):
        hood = out[:, r:r + window, s:s + window].reshape(c, -1)                 # (C, w*w)
        weight = gauss * known[r:r + window, s:s + window].flatten()
        weight = weight / weight.sum()
        ssd = ((patches - hood) ** 2 * weight).sum((1, 2))                        # (P,)
        best = ssd.min()
        candidates = torch.nonzero(ssd <= best * (1 + eps) + 1e-12).flatten()
        pick = candidates[torch.randint(len(candidates), (1,), generator=gen)]
        out[:, r + half, s + half] = centres[pick[0]]
        known[r + half, s + half] = True
    return out[:, half:half + h, half:half + w]
