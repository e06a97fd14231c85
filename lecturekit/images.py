"""Photos in, tensors out: every image is a float tensor (1, 3, H, W) in 0..1.

    img = images.load("chelsea", size=224)      # a sample photo, shorter side 224, centre crop
    img = images.load("my_photo.jpg")           # any file Pillow reads
    images.samples()                            # the sample photos at hand, with source and licence

Sample photos come from two places: the wheels of scikit-image and scikit-learn (always there)
and Debian's ``opencv-doc`` and ``darknet`` packages (there once ``python -m lecturekit download
photos`` has taken them out, on Debian or Ubuntu; see ``lecturekit.debian``).

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

from . import checks, debian

MAX_PIXELS = 100_000_000     # refuse larger files before decoding them (about 1.2 GB as floats)
MAX_SIDE = 2048              # larger photos are scaled down on load, with a warning


class ImageError(ValueError):
    """A file that is not a readable image, or an image of an unusable size."""


@dataclass(frozen=True)
class Sample:
    name: str
    package: str          # the package that ships the file: a Python wheel, or "Debian opencv-doc"
    description: str
    license: str
    imagenet: str | None = None              # the ImageNet-1k class it plainly shows, if it shows one
    debian: debian.DebianFile | None = None  # None: inside a Python package, always at hand

    @property
    def available(self) -> bool:
        """Can ``load`` read it now (a Debian photo: taken out and intact)?"""
        return self.debian is None or self.debian.status() == "ok"


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
_IMAGENET = {"chelsea": "tabby cat", "coffee": "espresso"}

# Debian's photos. The licence is the one Debian's copyright file gives the package's files:
# neither upstream credits its sample photos one by one. SHA-256 of the files in opencv-doc
# 4.6.0+dfsg-12 and darknet 0.0.0+git20180914.61c9d02e-2+b4 (Debian 12).
_OPENCV = ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/",
           "Apache-2.0 AND BSD-3-Clause (OpenCV's sample data, per Debian's copyright file)")
_DARKNET = ("darknet", "usr/share/darknet/data/",
            "GPL-3.0+ or MIT or WTFPL (darknet's sample data, per Debian's copyright file)")
_DEBIAN = {   # name: (package, file, SHA-256, description, ImageNet-1k class or None, more on the licence)
    "squirrel": (_OPENCV, "squirrel_cls.jpg", "20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b",
                 "a red squirrel on a branch", "fox squirrel", ""),
    "baboon": (_OPENCV, "baboon.jpg", "1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f",
               "a mandrill's face (ImageNet-1k has no mandrill class)", "baboon",
               "; the USC-SIPI 'Mandrill' test image, whose original copyright is unclear"),
    "fruits": (_OPENCV, "fruits.jpg", "9c031d80a1c52da5eca790db896baffec6a7e52bf786cdb7bbfca5c7f880e6a1",
               "an orange, a lemon, limes and a kiwi, cut open", "orange", ""),
    "orange": (_OPENCV, "orange.jpg", "152c20d2f380ac985de25e474e1a5f06ed34b932191342099b8272a63a15a079",
               "an orange", "orange", ""),
    "butterfly": (_OPENCV, "butterfly.jpg", "34a99716b78ded10eae87b4880de739d3e68cc7dd1a96812bb28f469d5eeaea8",
                  "a lime butterfly on a leaf (a swallowtail: not an ImageNet-1k class)", None, ""),
    "pekinese": (_OPENCV, "chicky_512.png", "4d2cf040de084fd3f34d5e3f96f1251faaa4787c1ac3b548fec5809a0d01854e",
                 "a Pekinese dog's face", "Pekinese", ""),
    "dog": (_DARKNET, "dog.jpg", "5a9522051c3cec2bbd2f6323fccba32e8fbf3ddcc2b3e2fd46b04c720bc6f866",
            "a dog beside a bicycle, a car behind (two classes in one photo)", None, ""),
    "eagle": (_DARKNET, "eagle.jpg", "f95f57297fd51a6c5ddceb5ed6916fa759d1d65f402fee34c05b31a9608755c0",
              "a young bald eagle at the water", "bald eagle", ""),
    "giraffe": (_DARKNET, "giraffe.jpg", "00dc48a9b2af8a1fe4c4b79319726591f1033c7e1150f21e7577a79f3b6659f1",
                "a giraffe and a zebra (ImageNet-1k has the zebra, not the giraffe)", None, ""),
    "horses": (_DARKNET, "horses.jpg", "c8f0a677a1356569e2ce71d2fa88c1030c0ae57ecf5e14170e02d9a86a20dcb4",
               "horses in a field (ImageNet-1k has only 'sorrel')", None, ""),
}

REFETCH = "python -m lecturekit download photos"


def _registry() -> dict[str, Sample]:
    out = {name: Sample(name, pkg, desc, lic, _IMAGENET.get(name)) for name, (pkg, desc, lic) in _SAMPLES.items()}
    for name, ((package, folder, lic), file, digest, desc, cls, more) in _DEBIAN.items():
        out[name] = Sample(name, f"Debian {package}", desc, lic + more, cls,
                           debian.DebianFile(package, folder + file, digest))
    return out


_told_missing = False


def samples(include_missing: bool = False) -> dict[str, Sample]:
    """The sample photos by name, with the package that ships each one and its licence: the
    bundled ones, then Debian's that are at hand (all of them with ``include_missing``).
    The first time some are left out, says so in one line."""
    every = _registry()
    if include_missing:
        return every
    here = {name: s for name, s in every.items() if s.available}
    left_out = [name for name in every if name not in here]
    global _told_missing
    if left_out and not _told_missing:
        _told_missing = True
        print(f"Sample photos: {len(left_out)} from Debian's packages are not at hand ({', '.join(left_out)}); "
              f"on Debian or Ubuntu: {REFETCH}")
    return here


def available(names) -> list[str]:
    """``names`` without the sample photos that are not at hand (saying so once, see ``samples``)."""
    here = samples()
    return [n for n in names if n in here]


def _sample_array(name: str) -> np.ndarray:
    if name in _DEBIAN:
        try:
            path = _registry()[name].debian.checked(f"The sample photo '{name}'", REFETCH)
        except debian.Damaged as err:                   # a file that is there but wrong: a bad image
            raise ImageError(str(err)) from None
        return _open(path, f"'{path}'")
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

    ``source``: a sample photo's name (see ``samples()``), a file path, raw file bytes
    (for example from an upload widget), a PIL image or a NumPy array.
    ``size``: if given, scale the shorter side to ``size`` and centre-crop to a square.
    """
    if size is not None and not (checks.whole(size) and size >= 1):
        raise ValueError(f"size must be a whole number of pixels >= 1 (or None to keep the size), not {size!r}")
    if isinstance(source, (bytes, bytearray)):
        img = from_array(_open(io.BytesIO(source), "the uploaded data"))
    elif isinstance(source, Image.Image):
        img = from_array(_pil_to_array(source))
    elif isinstance(source, np.ndarray):
        img = from_array(source)
    elif isinstance(source, (str, Path)):
        if isinstance(source, str) and (source in _SAMPLES or source in _DEBIAN):
            img = from_array(_sample_array(source))
        else:
            path = Path(source).expanduser()
            if not path.exists():
                raise FileNotFoundError(
                    f"No image at '{path}': the file does not exist. Give the path of an image file, "
                    f"or one of the sample photos: {', '.join([*_SAMPLES, *_DEBIAN])}")
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
    if isinstance(img, torch.Tensor) and img.dim() in (3, 4) and img.numel() == 0:
        raise ValueError(f"the {what} is empty (shape {tuple(img.shape)}); give at least one image of at least "
                         "one pixel")
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
