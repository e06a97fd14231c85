"""Train the shipped fast-style network: one network, three styles (conditional instance norm).

    python -m lecturekit.train_faststyle                 # about 10 minutes on 2 CPU cores
    python -m lecturekit.train_faststyle --steps 30 --out /tmp/try

The styles are the bundled photos that stand in for the paintings offline (so the result is
reproducible anywhere), the features the offline multi-scale random network, the training
images random crops and flips of the other bundled photos, the initial weights and crops
seeded by ``--seed``. Writes ``faststyle_cin.pt`` (state dict + metadata, loaded with
``weights_only=True``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from . import config, faststyle, gallery, images, paintings, style

STYLES = [paintings.PAINTINGS[name].fallback for name in ("starry_night", "great_wave", "composition_vii")]
WEIGHTS_FILE = faststyle.WEIGHTS_FILE
STYLE_SIZE = 160
TV_WEIGHT = 1e-3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lecturekit.train_faststyle")
    parser.add_argument("--steps", type=int, default=900, help="training steps, one style each in turn")
    parser.add_argument("--size", type=int, default=96, help="training crop size in pixels")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tv-weight", type=float, default=TV_WEIGHT, help="weight of the total-variation loss")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the training crops")
    parser.add_argument("--out", type=Path, default=config.DATA_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    features = style.feature_net("random-multiscale")
    style_imgs = [images.load(name, size=STYLE_SIZE) for name in STYLES]
    photos = [p for p in gallery.PHOTOS if p not in STYLES]
    with torch.random.fork_rng():                        # the same initial weights on every run
        torch.manual_seed(args.seed)
        net = faststyle.TransformNet(n_styles=len(STYLES))
    start = time.time()
    history = faststyle.train(net, features, style_imgs, steps=args.steps, size=args.size, batch=args.batch,
                              tv_weight=args.tv_weight, photos=photos, seed=args.seed)
    seconds = time.time() - start
    first = {s: [h["total"] for h in history if h["index"] == s][:10] for s in range(len(STYLES))}
    last = {s: [h["total"] for h in history if h["index"] == s][-10:] for s in range(len(STYLES))}
    meta = {"styles": STYLES, "features": features.description, "upsample": net.upsample, "steps": args.steps,
            "size": args.size, "batch": args.batch, "tv_weight": args.tv_weight, "seed": args.seed,
            "train_photos": photos, "seconds": round(seconds),
            "loss_first10": {STYLES[s]: sum(v) / len(v) for s, v in first.items()},
            "loss_last10": {STYLES[s]: sum(v) / len(v) for s, v in last.items()}}
    path = faststyle.save(net, args.out / WEIGHTS_FILE, meta)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB) in {seconds:.0f} s; mean loss of the first / last ten "
          "steps per style: " + ", ".join(f"{STYLES[s]} {meta['loss_first10'][STYLES[s]]:.2f} / "
                                          f"{meta['loss_last10'][STYLES[s]]:.2f}" for s in first))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
