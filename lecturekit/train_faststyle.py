"""Train the shipped fast-style network: one network, two paintings (conditional instance norm).

    python -m lecturekit download paintings photos       # once: the paintings and photos it trains on
    python -m lecturekit.train_faststyle                 # about 10 minutes on 2 idle CPU cores
    python -m lecturekit.train_faststyle --steps 30 --out /tmp/try

The styles are The Starry Night and The Scream (Debian's copies offline, pinned by SHA-256, or
Wikimedia's); the features the original VGG-19 with average pooling, as Gatys et al. used it for
synthesis (``style.feature_net("vgg19", pooling="avg")``; with max pooling the network learned to
draw The Starry Night on the 2-px grid its upsampling leaves); the training images random crops
and flips of the bundled and Debian photos; the initial weights and crops seeded by ``--seed``.
Writes ``faststyle_cin.pt`` (state dict + metadata, loaded with ``weights_only=True``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from . import config, faststyle, gallery, images, paintings, style

STYLES = ["starry_night", "the_scream"]          # names in lk.paintings.PAINTINGS
WEIGHTS_FILE = faststyle.WEIGHTS_FILE
STYLE_SIZE = 256
STYLE_WEIGHT = 5.0
POOLING = "avg"             # VGG-19 with max pooling rewarded a 2-px grid in The Starry Night's outputs
TV_WEIGHT = 1e-3


def style_images(size: int = STYLE_SIZE) -> list:
    """The paintings themselves, never a stand-in: training on a fallback photo would ship the wrong styles."""
    imgs = []
    for name in STYLES:
        try:
            where = paintings.fetch(name)
        except paintings.PaintingUnavailable as err:
            raise SystemExit(f"cannot train on {paintings.PAINTINGS[name].title}: {err}. "
                             "Run `python -m lecturekit download paintings` first.") from None
        print("style:", paintings.describe(name, where))
        imgs.append(paintings.load(name, size=size, verbose=False))
    return imgs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lecturekit.train_faststyle")
    parser.add_argument("--steps", type=int, default=1000, help="training steps, one style each in turn")
    parser.add_argument("--size", type=int, default=96, help="training crop size in pixels")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pooling", default=POOLING, choices=["avg", "max"], help="VGG-19's pooling for the losses")
    parser.add_argument("--style-weight", type=float, default=STYLE_WEIGHT, help="weight of the style loss")
    parser.add_argument("--tv-weight", type=float, default=TV_WEIGHT, help="weight of the total-variation loss")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the training crops")
    parser.add_argument("--out", type=Path, default=config.DATA_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    features = style.feature_net("vgg19", pooling=args.pooling)
    style_imgs = style_images()
    photos = images.available(gallery.PHOTOS + gallery.DEBIAN_PHOTOS)
    with torch.random.fork_rng():                        # the same initial weights on every run
        torch.manual_seed(args.seed)
        net = faststyle.TransformNet(n_styles=len(STYLES))
    start = time.time()
    history = faststyle.train(net, features, style_imgs, steps=args.steps, size=args.size, batch=args.batch,
                              style_weight=args.style_weight, tv_weight=args.tv_weight, photos=photos, seed=args.seed)
    seconds = time.time() - start
    first = {s: [h["total"] for h in history if h["index"] == s][:10] for s in range(len(STYLES))}
    last = {s: [h["total"] for h in history if h["index"] == s][-10:] for s in range(len(STYLES))}
    meta = {"styles": STYLES, "features": features.description, "upsample": net.upsample, "steps": args.steps,
            "size": args.size, "batch": args.batch, "style_weight": args.style_weight, "pooling": args.pooling,
            "tv_weight": args.tv_weight, "seed": args.seed, "style_size": STYLE_SIZE, "train_photos": photos,
            "seconds": round(seconds),
            "loss_first10": {STYLES[s]: sum(v) / len(v) for s, v in first.items()},
            "loss_last10": {STYLES[s]: sum(v) / len(v) for s, v in last.items()}}
    path = faststyle.save(net, args.out / WEIGHTS_FILE, meta)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB) in {seconds:.0f} s; mean loss of the first / last ten "
          "steps per style: " + ", ".join(f"{STYLES[s]} {meta['loss_first10'][STYLES[s]]:.2f} / "
                                          f"{meta['loss_last10'][STYLES[s]]:.2f}" for s in first))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
