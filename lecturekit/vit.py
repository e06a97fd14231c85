"""Vision transformers: a small one trained here on Fashion-MNIST, attention maps and rollout.

    model, meta = vit.load_tiny()                          # offline: data/vit_fmnist.pt
    attn = vit.attention_maps(model, x)                    # {layer: (N, heads, T, T)}
    heat = vit.rollout(list(attn.values()))                # (N, T, T) attention flow
    grid = vit.cls_map(heat, grid=model.grid)              # (N, g, g): what the class token reads

``attention_maps`` works for ``TinyViT`` and for torchvision's ``VisionTransformer`` (ImageNet
``vit_b_16``): for the latter each block's attention is asked for its weights while the maps
are recorded, and put back as it was afterwards, even when the forward pass raises.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, config, hooks, weights

WEIGHTS_FILE = "vit_fmnist.pt"


class Attention(nn.Module):
    """Multi-head self-attention; the softmax output passes through ``self.probs`` (an identity)
    so a forward hook can record the (N, heads, T, T) attention weights."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.probs = nn.Identity()

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = self.probs((q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(-1))
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patches of ``patch`` x ``patch`` pixels -> linear embedding + learned positions, a class
    token, ``depth`` pre-norm transformer blocks, a linear head on the class token."""

    def __init__(self, size: int = 28, patch: int = 4, channels: int = 1, dim: int = 64, depth: int = 4,
                 heads: int = 4, mlp: int = 128, num_classes: int = 10):
        super().__init__()
        if size % patch:
            raise ValueError(f"image size {size} is not a multiple of the patch size {patch}")
        self.size, self.patch, self.grid = size, patch, size // patch
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, self.grid ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"TinyViT takes {self.size}x{self.size} images, got {tuple(x.shape[-2:])}")
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1) + self.pos
        return self.head(self.norm(self.blocks(tokens))[:, 0])

    @property
    def attention_layers(self) -> list[str]:
        return [f"blocks.{i}.attn.probs" for i in range(len(self.blocks))]


def load_tiny() -> tuple[TinyViT, dict]:
    """The small ViT trained by ``python -m lecturekit.train_vit`` (weights in ``data/``), built on the
    meta device and given the loaded tensors: no random initialisation, the global random stream untouched."""
    ckpt = torch.load(config.data_file(WEIGHTS_FILE), map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = TinyViT(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"], assign=True)
    return model.eval(), ckpt["meta"]


@contextmanager
def _torchvision_weights(model):
    """Make torchvision encoder blocks record their attention weights (per head) while inside."""
    blocks = [m for m in model.modules() if type(m).__name__ == "EncoderBlock"]
    originals = [b.self_attention.forward for b in blocks]
    maps: list[torch.Tensor] = []

    def wrap(original):
        def forward(query, key, value, **kwargs):
            kwargs.update(need_weights=True, average_attn_weights=False)
            out, weights = original(query, key, value, **kwargs)
            maps.append(weights)
            return out, weights
        return forward
    try:
        for block, original in zip(blocks, originals):
            block.self_attention.forward = wrap(original)
        yield maps
    finally:
        for block in blocks:
            del block.self_attention.forward          # back to the class's own method


@torch.no_grad()
def attention_maps(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer's attention weights for input ``x``: {layer name: (N, heads, T, T)}, rows
    summing to 1 (token 0 is the class token). Model mode and hooks are left as they were."""
    with hooks.preserved(model):
        model.eval()
        if isinstance(model, TinyViT):
            acts, _ = hooks.run(model, x, model.attention_layers, stop=False)
            return acts
        if type(model).__name__ == "VisionTransformer":
            with _torchvision_weights(model) as maps:
                model(x)
            return {f"encoder.layers.encoder_layer_{i}": m for i, m in enumerate(maps)}
    raise TypeError(f"attention_maps works with lecturekit.vit.TinyViT and torchvision's VisionTransformer, "
                    f"not {type(model).__name__}")


def rollout(maps, residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): average the heads, add the identity for the
    residual connection and renormalise rows, multiply through the layers. (N, T, T); row 0
    says how much each input token flows into the class token at the output."""
    maps = list(maps.values()) if isinstance(maps, dict) else list(maps)
    if not maps:
        raise ValueError("rollout needs the attention maps of at least one layer")
    result = None
    for attn in maps:
        a = attn.mean(1)
        if residual:
            a = a + torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
            a = a / a.sum(-1, keepdim=True)
        result = a if result is None else a @ result
    return result


def cls_map(attn: torch.Tensor, grid: int, head: int | None = None) -> torch.Tensor:
    """The class token's row over the patches as a (N, grid, grid) map. ``attn``: (N, T, T)
    (rollout) or (N, heads, T, T) (one layer; ``head`` picks one, else their mean)."""
    if not isinstance(attn, torch.Tensor) or attn.dim() not in (3, 4):
        shape = tuple(attn.shape) if isinstance(attn, torch.Tensor) else type(attn).__name__
        raise ValueError(f"attn must be a rollout (N, T, T) or one layer's maps (N, heads, T, T), got {shape}")
    if head is not None:
        if attn.dim() != 4:
            raise ValueError("head= picks a head of one layer's maps (N, heads, T, T); a rollout (N, T, T) has "
                             "the heads averaged already: leave head out")
        head = checks.index(head, attn.shape[1], f"head (the layer has {attn.shape[1]} heads)")
    if attn.dim() == 4:
        attn = attn.mean(1) if head is None else attn[:, head]
    row = attn[:, 0, 1:]
    if row.shape[-1] != grid * grid:
        raise ValueError(f"{row.shape[-1]} patch tokens do not make a {grid}x{grid} grid")
    return row.reshape(-1, grid, grid)


def upsample(grid_map: torch.Tensor, size: int) -> torch.Tensor:
    """(N, g, g) -> (N, size, size), nearest (each patch a block) for overlays on the image."""
    return F.interpolate(grid_map[:, None], size=(size, size), mode="nearest")[:, 0]


def load(name: str = "auto"):
    """The transformer notebook 17 uses, as a ``zoo.Bundle``: ImageNet ViT-B/16 (``"vit_b_16"``;
    ``"auto"`` takes it when its weights are cached or downloadable) or the small ViT trained
    here on Fashion-MNIST (``"tiny"``, always available), saying which on screen."""
    from . import zoo
    if name not in ("auto", "vit_b_16", "tiny"):
        raise ValueError(f"name must be 'auto', 'vit_b_16' or 'tiny', not {name!r}")
    if name == "vit_b_16":
        return zoo.load("vit_b_16")
    if name == "auto":
        return weights.or_else(lambda: zoo.load("vit_b_16"), "the small ViT trained on Fashion-MNIST", _tiny,
                                imagenet="vit_b_16")
    return _tiny()


def _tiny():
    """The small ViT trained here on Fashion-MNIST, as a ``zoo.Bundle``."""
    from . import teaching, zoo
    model, meta = load_tiny()
    return zoo.Bundle("vit_tiny", zoo.prepare(model).to(config.device()), list(teaching.CLASSES),
                      teaching.preprocess, teaching.deprocess, teaching.INPUT_SIZE,
                      f"small ViT trained on Fashion-MNIST by this project ({model.grid}x{model.grid} patches of "
                      f"{model.patch} px, test accuracy {meta['test_accuracy']:.1%})",
                      config.DATA_DIR / WEIGHTS_FILE, meta)


def grid_size(model: nn.Module) -> int:
    """Patches per side: TinyViT's ``grid`` or torchvision's image_size // patch_size."""
    if isinstance(model, TinyViT):
        return model.grid
    return model.image_size // model.patch_size
