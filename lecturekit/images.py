"""Photos in, tensors out: every image is a float tensor (1, 3, H, W) in 0..1.

    img = images.load("chelsea", size=224)      # a bundled sample, shorter side 224, centre crop
    img = images.load("my_photo.jpg")           # any file Pillow reads
    images.samples()                            # the bundled photos with source and licence

Grayscale, RGBA (composited over white), palette, CMYK and 16-bit files are converted
correctly; EXIF rotation is applied.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 100_000_000     # refuse larger files before decoding them (about 1.2 GB as floats)
MAX_SIDE = 2048              # larger photos are scaled down on load, with a warning


class ImageError(ValueError):
    """A file that is not a readable image, or an image of an unusable size."""


@dataclass(frozen=True)
class Sample:
    name: str
    package: str          # the package whose wheel ships the file
    description: str
    license: str


_SAMPLES = {
    "chelsea": ("scikit-image", "Chelsea the cat", "CC0, photographer Stefan van der Walt"),
    "coffee": ("scikit-image", "a cup of coffee", "CC0, photographer Rachel Michetti"),
    "astronaut": ("scikit-image", "astronaut Eileen Collins", "public domain (NASA)"),
    "rocket": ("scikit-image", "a Falcon 9 rocket on the launch pad", "public domain (SpaceX)"),
    "camera": ("scikit-image", "a person with a camera (grayscale)", "CC0, photographer Lav Varshney"),
    "coins": ("scikit-image", "Greek coins (grayscale)", "no known copyright restrictions (Brooklyn Museum)"),
    "hubble_deep_field": ("scikit-image", "the Hubble deep field", "public domain (NASA)"),
    "brick": ("scikit-image", "brick wall texture (grayscale)", "CC0 (CC0Textures)"),
    "grass": ("scikit-image", "grass texture (grayscale)", "CC0 (linolafett, DeviantArt)"),
    "gravel": ("scikit-image", "gravel texture (grayscale)", "CC0 (CC0Textures)"),
    "china": ("scikit-learn", "a temple in China", "CC BY 2.0, danielbuechele (Flickr)"),
    "flower": ("scikit-learn", "a flower", "CC BY 2.0, vultilion (Flickr)"),
}


def samples() -> dict[str, Sample]:
    """The bundled photos, by name, with the package that ships them and their licence."""
    return {name: Sample(name, pkg, desc, lic) for name, (pkg, desc, lic) in _SAMPLES.items()}


def _sample_array(name: str) -> np.ndarray:
    if _SAMPLES[name][0] == "scikit-image":
        import skimage.data
        return getattr(skimage.data, name)()
    from sklearn.datasets import load_sample_image
    return load_sample_image(f"{name}.jpg")


def from_array(arr: np.ndarray) -> torch.Tensor:
    """HxW, HxWx1, HxWx3 or HxWx4 array (uint8, uint16, bool, float 0..1, or other integers >= 0,
    divided by 255, 65535 or their maximum, the first that covers it) -> (1, 3, H, W)."""
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535
    elif np.issubdtype(arr.dtype, np.integer):          # int16/32/64 holding 8- or 16-bit pixels
        lo, top = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0:
            raise ImageError(f"integer pixels must be >= 0 (0..255 or 0..65535); this {arr.dtype} array spans "
                             f"{lo}..{top}. Scale it to floats in 0..1 first")
        arr = arr.astype(np.float32) / (255 if top <= 255 else 65535 if top <= 65535 else top)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if arr.size and not np.isfinite(arr).all():
            raise ImageError("the image array holds NaN or infinite values; pixels must be numbers in 0..1")
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ImageError(f"a float image must hold values in 0..1; this one spans "
                             f"{arr.min():.3g}..{arr.max():.3g}")
    else:
        raise ImageError(f"unsupported pixel type {arr.dtype}; use uint8, uint16, bool or float")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"an image array must be HxW or HxWxC with C in 1..4, not shape {arr.shape}")
    if arr.shape[2] in (2, 4):                       # gray+alpha or RGB+alpha: composite over white
        alpha = arr[:, :, -1:]
        arr = arr[:, :, :-1] * alpha + (1 - alpha)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].clamp(0, 1)


def _pil_to_array(pil: Image.Image) -> np.ndarray:
    pil = ImageOps.exif_transpose(pil)
    if pil.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.array(pil).astype(np.uint16)
    if pil.mode in ("I", "F"):
        arr = np.array(pil)
        if pil.mode == "F":                          # floats: scale into 0..1 by the data's own range
            lo, hi = float(arr.min()), float(arr.max())
            return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return arr
    if pil.mode in ("1", "L", "RGB"):
        return np.array(pil)
    if pil.mode in ("LA", "La"):
        return np.array(pil.convert("LA"))
    return np.array(pil.convert("RGBA"))             # P, PA, RGBA, CMYK, YCbCr, ... -> RGBA


def _open(data, label: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own limit is checked below
            pil = Image.open(data)
        with pil:
            w, h = pil.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{label} is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels); the limit is "
                                 f"{MAX_PIXELS / 1e6:.0f} megapixels. Scale it down first.")
            if max(w, h) > MAX_SIDE:
                warnings.warn(f"{label} is {w}x{h}; scaled down to at most {MAX_SIDE} pixels a side", stacklevel=3)
                pil.draft(pil.mode, (MAX_SIDE, MAX_SIDE))
                pil = pil.copy() if pil.mode not in ("P", "1") else pil.convert("RGBA")
                pil.thumbnail((MAX_SIDE, MAX_SIDE))
            pil.load()
            return _pil_to_array(pil)
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image file that Pillow can read "
                         "(use PNG, JPEG, GIF, BMP, TIFF or WebP)") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"{label} is too large to open safely: {err}") from None
    except (OSError, SyntaxError) as err:
        raise ImageError(f"{label} is damaged or truncated and cannot be decoded ({err})") from None


def load(source, size: int | None = None) -> torch.Tensor:
    """An image as a float tensor (1, 3, H, W) in 0..1.

    ``source``: a bundled sample name (see ``samples()``), a file path, raw file bytes
    (for example from an upload widget), a PIL image or a NumPy array.
    ``size``: if given, scale the shorter side to ``size`` and centre-crop to a square.
    """
    if size is not None and not (isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1):
        raise ValueError(f"size must be a whole number of pixels >= 1 (or None to keep the size), not {size!r}")
    if isinstance(source, (bytes, bytearray)):
        img = from_array(_open(io.BytesIO(source), "the uploaded data"))
    elif isinstance(source, Image.Image):
        img = from_array(_pil_to_array(source))
    elif isinstance(source, np.ndarray):
        img = from_array(source)
    elif isinstance(source, (str, Path)):
        if isinstance(source, str) and source in _SAMPLES:
            img = from_array(_sample_array(source))
        else:
            path = Path(source).expanduser()
            if not path.exists():
                raise FileNotFoundError(
                    f"No image at '{path}': the file does not exist. Give the path of an image file, "
                    f"or one of the bundled samples: {', '.join(_SAMPLES)}")
            if path.is_dir():
                raise ImageError(f"'{path}' is a folder, not an image file")
            img = from_array(_open(path, f"'{path}'"))
    else:
        raise TypeError(f"load() takes a sample name, a path, bytes, a PIL image or an array, "
                        f"not {type(source).__name__}")
    return square(img, int(size)) if size is not None else img


def _check(img: torch.Tensor) -> None:
    if not (isinstance(img, torch.Tensor) and img.dim() == 4):
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"expected an image tensor of shape (N, C, H, W), got {shape}")


def checked(img, what: str = "image") -> torch.Tensor:
    """``img`` as a float image batch (N, C, H, W) in 0..1: a single (C, H, W) image gets a batch
    dimension and uint8 pixels (0..255) are divided by 255. Anything else that is not a float
    tensor in 0..1 with finite values is an error saying what is allowed."""
    __tracebackhide__ = True
    if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4) or img.numel() == 0:
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"the {what} must be an image tensor (N, C, H, W) or (C, H, W) in 0..1 "
                         f"(images.load makes one from a file or sample name), got {shape}")
    img = img[None] if img.dim() == 3 else img
    if img.dtype == torch.uint8:
        return img.float() / 255
    if not img.is_floating_point():
        raise ValueError(f"the {what} is a {str(img.dtype).replace('torch.', '')} tensor; use floats in 0..1 "
                         "(or uint8 0..255)")
    if not torch.isfinite(img).all():
        raise ValueError(f"the {what} holds NaN or infinite values")
    lo, hi = img.min().item(), img.max().item()
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"the {what} spans {lo:.3g}..{hi:.3g}; an image holds values in 0..1 (a model input "
                         "made by preprocess is not an image: use deprocess, or pass 0..1 pixels)")
    return img


def resize(img: torch.Tensor, size) -> torch.Tensor:
    """Scale with antialiasing: ``size`` an int sets the shorter side, an (H, W) pair the exact size."""
    _check(img)
    h, w = img.shape[-2:]
    if isinstance(size, int):
        if size < 1:
            raise ValueError(f"size must be a positive number of pixels, not {size}")
        scale = size / min(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if tuple(size) == (h, w):
        return img
    return F.interpolate(img, size=tuple(size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` square."""
    _check(img)
    h, w = img.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"crop of {size} pixels is larger than the image ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return img[..., top:top + size, left:left + size]


def square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Shorter side to ``size``, then the central square: the usual classifier input."""
    return center_crop(resize(img, size), size)


def to_numpy(img: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor -> HxWx3 float array for matplotlib."""
    img = img.detach().float().cpu()
    if img.dim() == 4:
        img = img[0]
    return img.permute(1, 2, 0).clamp(0, 1).numpy()
