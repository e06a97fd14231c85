"""Image galleries for the ImageNet models: built offline from the bundled photos, larger online.

    imgs, labels, names = gallery.photo_crops(size=224, per_photo=8)   # offline, labels = source photo
    imgs, labels, names = gallery.cifar10(n=1000, size=224)            # online (torchvision download)
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import checks, config, images, weights

#: Bundled colour photos used for galleries (the grayscale textures are left out).
PHOTOS = ["chelsea", "coffee", "astronaut", "rocket", "china", "flower", "hubble_deep_field"]
#: Debian's photos, added to the offline gallery where they are at hand (python -m lecturekit download photos).
DEBIAN_PHOTOS = ["squirrel", "baboon", "fruits", "orange", "butterfly", "pekinese", "dog", "eagle", "giraffe", "horses"]


def random_crops(img: torch.Tensor, n: int, size: int, gen: torch.Generator,
                 scale: tuple[float, float] = (0.35, 1.0)) -> torch.Tensor:
    """``n`` random square crops of ``img`` (1, 3, H, W) covering ``scale`` of its shorter side,
    each resized to ``size`` and flipped left-right with probability 1/2: (n, 3, size, size)."""
    h, w = img.shape[-2:]
    out = []
    for _ in range(n):
        s = int(min(h, w) * (scale[0] + (scale[1] - scale[0]) * torch.rand(1, generator=gen).item()))
        top = int(torch.randint(0, h - s + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - s + 1, (1,), generator=gen))
        crop = images.resize(img[..., top:top + s, left:left + s], (size, size))
        if torch.rand(1, generator=gen).item() < 0.5:
            crop = crop.flip(-1)
        out.append(crop[0])
    return torch.stack(out)


def photo_crops(size: int = 224, per_photo: int = 8, seed: int = 0, photos=None):
    """Offline gallery: random crops and flips of the bundled photos, and of Debian's where they are at
    hand (default), or of ``photos``.
    Returns (images (N, 3, size, size), labels (N,) = index of the source photo, photo names)."""
    if not (checks.whole(size) and size >= 1 and checks.whole(per_photo) and per_photo >= 1):
        raise ValueError(f"size and per_photo must be whole numbers >= 1, not {size!r} and {per_photo!r}")
    photos = images.available(PHOTOS + DEBIAN_PHOTOS) if photos is None else list(photos)
    gen = torch.Generator().manual_seed(seed)
    crops = [random_crops(images.load(name), int(per_photo), int(size), gen) for name in photos]
    labels = torch.arange(len(photos)).repeat_interleave(per_photo)
    return torch.cat(crops), labels, list(photos)


def cifar10(n: int = 1000, size: int = 224, root: Path | None = None, seed: int = 0):
    """Online gallery: ``n`` CIFAR-10 test images (downloaded once by torchvision, 170 MB),
    upsampled to ``size``. Raises ``RuntimeError`` with the reason when it cannot be had, also
    when the server sends nothing for ``LECTUREKIT_NET_TIMEOUT`` seconds (default 10)."""
    if not (checks.whole(n) and n >= 1 and checks.whole(size) and size >= 1):
        raise ValueError(f"n and size must be whole numbers >= 1, not {n!r} and {size!r}")
    if config.offline():
        raise RuntimeError("the CIFAR-10 gallery needs the network and LECTUREKIT_OFFLINE is set")
    from torchvision.datasets import CIFAR10

    root = Path(root or Path(torch.hub.get_dir()).parent / "datasets")
    try:
        with weights.network_timeout():                 # torchvision opens its URLs without a timeout
            ds = CIFAR10(str(root), train=False, download=True)
    except Exception as err:    # network errors come in many types; the message is what matters
        if isinstance(err, TimeoutError) or "timed out" in str(err):
            err = f"no answer for {config.net_timeout():g} s (LECTUREKIT_NET_TIMEOUT)"
        raise RuntimeError(f"CIFAR-10 could not be downloaded into {root}: {err}") from None
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds.data), generator=gen)[:n]
    data = torch.from_numpy(ds.data[idx.numpy()]).permute(0, 3, 1, 2).float() / 255
    labels = torch.tensor(ds.targets)[idx]
    return images.resize(data, (size, size)), labels, list(ds.classes)


def load(size: int = 224, per_photo: int = 8, online_n: int = 0):
    """The larger online gallery when ``online_n`` > 0 and it can be had, else the offline one
    (saying why on screen)."""
    if online_n > 0:
        try:
            return cifar10(online_n, size)
        except RuntimeError as err:
            print(f"Using the offline gallery of bundled photos: {err}")
    return photo_crops(size, per_photo)


def for_model(bundle, n: int | None = None, per_photo: int = 8, online_n: int = 0):
    """The data set a notebook shows with ``bundle``: the shipped Fashion-MNIST sample for the
    teaching model (first ``n`` images), a photo gallery at the model's input size otherwise.
    Returns (images (N, C, S, S) in 0..1, labels (N,), label names)."""
    if bundle.name == "teaching":
        from . import teaching
        imgs, labels = teaching.load_sample()
        n = len(imgs) if n is None else n
        return imgs[:n], labels[:n], list(teaching.CLASSES)
    return load(bundle.input_size, per_photo, online_n)


#: Example photos for an ImageNet model, in order of preference (the first seven each show one ImageNet
#: class plainly). Debian's are used where they are at hand; without them, the bundled six as before.
EXAMPLES = ("chelsea", "eagle", "squirrel", "orange", "pekinese", "baboon", "coffee", "astronaut", "rocket", "china",
            "flower")


def examples(bundle, n: int = 4, photos=None):
    """A few images to explain, at the model's input size: test images of different classes for
    the teaching model, sample photos for an ImageNet model (``photos``, default the ones of
    ``EXAMPLES`` at hand). Returns (images (n, C, S, S), captions)."""
    if bundle.name == "teaching":
        from . import teaching
        imgs, labels = teaching.load_sample()          # interleaved: one image of each class in turn
        return imgs[:n], [f"{teaching.CLASSES[int(c)]} (test image {i})" for i, c in enumerate(labels[:n])]
    photos = images.available(EXAMPLES) if photos is None else list(photos)
    if n > len(photos):
        raise ValueError(f"at most {len(photos)} example photos, not {n}")
    return torch.cat([images.load(p, size=bundle.input_size) for p in photos[:n]]), list(photos[:n])
