"""Generate an input by gradient ascent: one loop for class and neuron visualization, fooling
images, DeepDream and feature inversion (and later texture and style).

The pieces are plain functions, kept apart as in lucid/lucent:

* **what to maximise**: an ``Objective`` (``class_score``, ``channel``, ``neuron``,
  ``layer_norm`` for DeepDream), added and scaled like numbers; or **what to minimise**: a
  ``losses.Loss`` (``losses.feature_match`` for inversion, the style losses);
* **how the image is parameterised**: ``Pixels`` (raw 0..1 pixels) or ``Fourier`` (a
  decorrelated colour, 1/f-scaled spectrum: Olah et al., "Feature Visualization", 2017);
* **robustness transforms** applied before each forward pass (``jitter``, ``random_scale``);
* **penalties** added to the loss (``l2``, ``tv``) and **post-step** operations on raw pixels
  (Yosinski et al. 2015: ``decay``, ``blur_every``, ``zero_small_values``,
  ``zero_small_contribution``, ``clamp``);
* **the loop**: ``ascend(...)``, with weights frozen, hooks removed and the model's modes and
  flags restored even on error; it stops the network after the last layer the objective needs.

    obj = ascent.class_score(3)
    result = ascent.ascend(model, obj, ascent.Pixels.zeros(1, 3, 64, 64), preprocess, steps=200,
                           penalties=[ascent.l2(1e-3)], post=[ascent.blur_every(4, 0.5), ascent.clamp()])
    result.image, result.history, result.snapshots
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checks, hooks, images, losses

# ---------------------------------------------------------------- objectives


class Objective:
    """A score to maximise, one value per image: ``fn(acts, logits) -> (N,)``.

    ``layers`` are the activations it reads (recorded by the loop); ``needs_logits`` says
    whether it reads the model's output (if not, the forward pass stops early)."""

    def __init__(self, fn: Callable, layers: Sequence[str] = (), needs_logits: bool = False, name: str = ""):
        self.fn, self.layers, self.needs_logits, self.name = fn, tuple(layers), needs_logits, name

    def __call__(self, acts: dict, logits: torch.Tensor | None) -> torch.Tensor:
        return self.fn(acts, logits)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda acts, logits: self(acts, logits) + other(acts, logits), tuple(dict.fromkeys(self.layers + other.layers)),
                         self.needs_logits or other.needs_logits, f"{self.name} + {other.name}")

    def __mul__(self, k: float) -> "Objective":
        weight = f"{k:.3g}" if isinstance(k, (int, float)) else str(k)
        return Objective(lambda acts, logits: k * self(acts, logits), self.layers, self.needs_logits, f"{weight} * {self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return -1 * self

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def class_score(c: int) -> Objective:
    """The unnormalised score (logit) of class ``c``."""
    c = checks.whole_number(c, "class")
    return Objective(lambda a, logits: logits[:, checks.index(c, logits.shape[1], "class")], needs_logits=True,
                     name=f"class {c}")


def channel(layer: str, c: int) -> Objective:
    """The mean activation of channel ``c`` of ``layer`` (over all positions)."""
    c = checks.whole_number(c, f"channel of {layer}")

    def fn(a, _):
        act = a[layer]
        return act[:, checks.index(c, act.shape[1], f"channel of {layer}")].flatten(1).mean(1)
    return Objective(fn, [layer], name=f"{layer}:{c}")


def neuron(layer: str, c: int, position: tuple[int, int] | None = None) -> Objective:
    """One unit: channel ``c`` of ``layer`` at ``position`` (row, col), by default the centre."""
    c = checks.whole_number(c, f"channel of {layer}")

    def fn(a, _):
        act = a[layer]
        ch = checks.index(c, act.shape[1], f"channel of {layer}")
        if act.dim() == 2:
            return act[:, ch]
        h, w = act.shape[2:]
        r, col = position if position is not None else ((h - 1) // 2, (w - 1) // 2)
        checks.index(r, h, f"row of {layer}")
        checks.index(col, w, f"column of {layer}")
        return act[:, ch, r, col]
    return Objective(fn, [layer], name=f"{layer}:{c}@{position or 'centre'}")


def layer_norm(layer: str) -> Objective:
    """DeepDream: the mean squared activation of ``layer``; its gradient is the activation itself."""
    return Objective(lambda a, _: a[layer].pow(2).flatten(1).mean(1), [layer], name=f"|{layer}|^2")


# ---------------------------------------------------------------- parameterisations


class Pixels:
    """The image itself (N, 3, H, W) in 0..1 is the parameter, on the image's device, in its
    dtype (at least float32: half-precision and integer images are optimised in float32).

    The start images ``zeros``, ``grey`` and ``noise`` are made on ``device`` in ``dtype``
    (default: the CPU and torch's default dtype); ``ascend`` moves what the model sees to the
    model's device and dtype."""

    def __init__(self, img: torch.Tensor):
        if isinstance(img, torch.Tensor) and img.dtype == torch.uint8:
            img = img.float() / 255                             # 0..255 pixels
        if not (isinstance(img, torch.Tensor) and img.dim() == 4 and img.is_floating_point()
                and torch.isfinite(img).all()):
            shape = f"{img.dtype} {tuple(img.shape)}" if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"Pixels needs a float image batch (N, C, H, W) with finite values (0..1), got {shape}")
        self.param = img.detach().to(torch.promote_types(img.dtype, torch.float32)).clone().requires_grad_(True)

    @classmethod
    def zeros(cls, *shape, device=None, dtype=None) -> "Pixels":
        return cls(torch.zeros(*shape, device=device, dtype=dtype))

    @classmethod
    def grey(cls, *shape, device=None, dtype=None) -> "Pixels":
        return cls(torch.full(shape, 0.5, device=device, dtype=dtype))

    @classmethod
    def noise(cls, *shape, std: float = 0.1, generator: torch.Generator | None = None, device=None,
              dtype=None) -> "Pixels":
        """Grey plus Gaussian noise of ``std``, drawn from ``generator`` (default: one seeded with 0)."""
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        # a torch.Generator draws on the CPU: draw there, then move
        noise = torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)
        return cls((0.5 + std * noise).clamp(0, 1))

    def parameters(self) -> list[torch.Tensor]:
        return [self.param]

    def image(self) -> torch.Tensor:
        return self.param


# Colour correlation of ImageNet pixels (square root of the covariance), as used by lucid; float64, and
# converted to each image's device and dtype where used.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64)
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


class Fourier:
    """An image prior (Olah et al. 2017): the parameters are a Fourier spectrum scaled by
    1/frequency (so low frequencies dominate), in decorrelated colour space, squashed into
    0..1 by a sigmoid. Gradient steps then change the image smoothly rather than pixel by pixel.
    The spectrum (and so the image) is on ``device`` in ``dtype`` (default: CPU, torch's default dtype),
    its random start drawn from ``generator`` (default: one seeded with 0)."""

    def __init__(self, n: int, h: int, w: int, sd: float = 0.01, decay: float = 1.0, decorrelate: bool = True,
                 generator: torch.Generator | None = None, device=None, dtype=None):
        fy = torch.fft.fftfreq(h, device=device, dtype=dtype)[:, None]
        fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, :]
        freq = (fx ** 2 + fy ** 2).sqrt()
        self.scale = 1.0 / freq.clamp_min(1.0 / max(h, w)) ** decay
        self.scale = self.scale * math.sqrt(h * w) / self.scale.mean() / 8
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        noise = torch.randn(n, 3, h, w // 2 + 1, 2, generator=generator).to(device=device, dtype=dtype)
        self.spectrum = (sd * noise).requires_grad_(True)
        self.size, self.decorrelate = (h, w), decorrelate

    def parameters(self) -> list[torch.Tensor]:
        return [self.spectrum]

    def image(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spec, s=self.size, norm="ortho")
        if self.decorrelate:
            img = torch.einsum("ij,njhw->nihw", _COLOR_SQRT.to(img), img)
        return torch.sigmoid(img)


# ---------------------------------------------------------------- robustness transforms


def jitter(pixels: int) -> Callable:
    """Shift the image by a random offset of up to ``pixels`` in each direction (wrapping round)."""
    pixels = checks.whole_number(pixels, "jitter pixels (the largest shift)")

    def transform(img, gen):
        dy, dx = torch.randint(-pixels, pixels + 1, (2,), generator=gen).tolist()
        return torch.roll(img, shifts=(dy, dx), dims=(2, 3))
    return transform


def random_scale(scales: Sequence[float] = (0.95, 1.0, 1.05)) -> Callable:
    """Resize by a randomly chosen factor (the model sees the pattern at several sizes)."""
    def transform(img, gen):
        s = scales[int(torch.randint(len(scales), (1,), generator=gen))]
        return img if s == 1 else F.interpolate(img, scale_factor=s, mode="bilinear", align_corners=False)
    return transform


# ---------------------------------------------------------------- penalties (added to the loss)


def l2(weight: float) -> Callable:
    """``weight`` x mean squared model input: the lambda ||I||^2 of Simonyan et al. (input is centred)."""
    return lambda img, x: weight * x.pow(2).flatten(1).mean(1)


def tv(weight: float) -> Callable:
    """``weight`` x total variation (mean squared difference of neighbouring pixels) of the 0..1 image."""
    return lambda img, x: weight * losses.total_variation(img)


# ---------------------------------------------------------------- post-step operations (raw pixels only)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflected borders."""
    if sigma <= 0:
        return img
    radius = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-torch.arange(-radius, radius + 1, dtype=img.dtype, device=img.device) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(img.shape[1], 1, 1, 1)
    out = F.conv2d(F.pad(img, (radius, radius, 0, 0), mode="reflect"), k, groups=img.shape[1])
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), k.transpose(2, 3), groups=img.shape[1])


def decay(rate: float) -> Callable:
    """Pull every pixel towards mid-grey by ``rate`` each step (L2 decay, Yosinski et al.)."""
    return lambda p, step: p.mul_(1 - rate).add_(0.5 * rate)


def blur_every(n: int, sigma: float) -> Callable:
    """A Gaussian blur of width ``sigma`` every ``n`` steps (removes high frequencies)."""
    n = checks.whole_number(n, "n (blur every n steps)", least=1)
    sigma = checks.finite_number(sigma, "sigma", least=0, meaning="the blur's width in pixels; 0 does not blur")

    def op(p, step):
        if step % n == 0:
            p.copy_(gaussian_blur(p, sigma))
    return op


def zero_small_values(percentile: float) -> Callable:
    """Set to grey the pixels whose distance from grey is below the ``percentile`` (0..100)."""
    def op(p, step):
        norm = (p - 0.5).abs().sum(1, keepdim=True)
        p.copy_(torch.where(norm < torch.quantile(norm.flatten(1), percentile / 100, dim=1).view(-1, 1, 1, 1), 0.5, p))
    return op


def zero_small_contribution(percentile: float) -> Callable:
    """Set to grey the pixels whose contribution |pixel x gradient| is below the ``percentile``."""
    def op(p, step):
        if p.grad is None:
            return
        contrib = ((p - 0.5) * p.grad).abs().sum(1, keepdim=True)
        cut = torch.quantile(contrib.flatten(1), percentile / 100, dim=1).view(-1, 1, 1, 1)
        p.copy_(torch.where(contrib < cut, 0.5, p))
    return op


def clamp() -> Callable:
    """Keep pixels in the valid range 0..1."""
    return lambda p, step: p.clamp_(0, 1)


# ---------------------------------------------------------------- the loop


@dataclass
class Result:
    image: torch.Tensor                          # (N, 3, H, W) in 0..1, detached
    history: list[float]                         # objective, or loss, (mean over images) before each step
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    steps: int = 0                               # steps taken (fewer than asked if ``until`` stopped it)
    seconds: list[float] = field(default_factory=list)   # time since the start at each history entry


def ascend(model: nn.Module, objective: Objective, param, preprocess: Callable | None = None, steps: int = 100,
           lr: float = 0.05, optimizer: str = "adam", transforms: Sequence[Callable] = (),
           penalties: Sequence[Callable] = (), post: Sequence[Callable] = (), normalize_grad: bool = False,
           snapshot_every: int = 0, until: Callable | None = None, seed: int = 0, progress: bool = True) -> Result:
    """Maximise ``objective`` over the image made by ``param``, with the weights frozen; given a
    ``losses.Loss`` instead, minimise it.

    Each step: image -> ``transforms`` -> ``preprocess`` -> model; loss = -objective (or the Loss) + penalties;
    one optimiser step (Adam or plain SGD; with ``"lbfgs"`` one L-BFGS run of at most ``steps``
    evaluations, each counted as a step; ``normalize_grad`` divides the
    gradient by its mean absolute value, as DeepDream does); then the ``post`` operations on raw
    pixels. ``until(logits)`` may stop early (e.g. once a fooling image is classified as the target).
    The random transforms draw from a ``torch.Generator`` seeded with ``seed``.
    """
    steps, lr, snapshot_every = _checked_args(model, objective, param, preprocess, steps, lr, optimizer, transforms,
                                              penalties, post, snapshot_every, until)
    step = _Step(model, objective, param, preprocess, transforms, penalties, normalize_grad, until,
                 torch.Generator().manual_seed(seed))
    log = _Log(snapshot_every)
    name = objective.name or optimizer
    bar = tqdm(total=steps, desc=name if len(name) <= 40 else name[:39] + "…", disable=not progress,
               delay=2)                                                                  # shown after 2 s
    with hooks.preserved(model, borrow=True), bar:
        if optimizer == "lbfgs":
            taken = _run_lbfgs(step, log, steps, lr, bar)
        else:
            taken = _run_first_order(step, log, steps, lr, optimizer, post, bar)
    image = param.image().detach().clone()
    if snapshot_every:
        log.snapshots.append((taken, image))
    return Result(image, log.history, log.snapshots, taken, log.seconds)


def _checked_args(model, objective, param, preprocess, steps, lr, optimizer, transforms, penalties, post,
                  snapshot_every, until) -> tuple[int, float, int]:
    """Every argument of ``ascend`` checked before any work: (steps, lr, snapshot_every) as numbers.
    (Class and channel indices are checked on the first forward pass, where the sizes are known.)"""
    checks.model(model)
    if optimizer not in ("adam", "sgd", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam', 'sgd' or 'lbfgs', not {optimizer!r}")
    steps = checks.whole_number(steps, "steps", 1)
    lr = checks.positive_number(lr, "lr")
    snapshot_every = checks.whole_number(snapshot_every, "snapshot_every (0 for none)")
    if not isinstance(objective, (Objective, losses.Loss)):
        raise ValueError(f"objective must be an Objective to maximise (ascent.class_score(3), ascent.channel('relu3', 5), "
                         f"...) or a losses.Loss to minimise, not {type(objective).__name__}")
    if not (callable(getattr(param, "parameters", None)) and callable(getattr(param, "image", None))):
        raise ValueError(f"param must be an image parameterisation (ascent.Pixels or ascent.Fourier), "
                         f"not {type(param).__name__}")
    if optimizer == "lbfgs" and (until is not None or post):
        raise ValueError("until= and post-step operations work with 'adam' and 'sgd' only: L-BFGS keeps a "
                         "model of the curvature that changing the pixels between steps would break")
    if post and not isinstance(param, Pixels):
        raise ValueError(f"post-step operations act on raw pixels; use Pixels, not {type(param).__name__}")
    for what, fns in (("transforms", transforms), ("penalties", penalties), ("post", post)):
        if not all(callable(f) for f in fns):
            raise ValueError(f"{what} must be a list of functions, got {fns!r}")
    for what, fn in (("preprocess", preprocess), ("until", until)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{what} must be a function or None, not {type(fn).__name__}")
    for name in objective.layers:
        hooks.get_layer(model, name)                       # bad names fail before any work
    return steps, lr, snapshot_every


class _Step:
    """One evaluation: image -> transforms -> preprocess -> model -> loss = -objective (or the Loss)
    + penalties, then the gradient (unless ``until`` says the goal is reached)."""

    def __init__(self, model, objective, param, preprocess, transforms, penalties, normalize_grad, until, gen):
        self.model, self.objective, self.param, self.preprocess = model, objective, param, preprocess
        self.transforms, self.penalties, self.normalize_grad, self.until = transforms, penalties, normalize_grad, until
        self.gen, self.params = gen, param.parameters()
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype

    def __call__(self) -> tuple[torch.Tensor, float, torch.Tensor, bool]:
        """(loss, objective or Loss averaged over the images, the image, whether ``until`` holds)."""
        for p in self.params:
            p.grad = None
        img = self.param.image()
        seen = img
        for t in self.transforms:
            seen = t(seen, self.gen)
        seen = seen.to(device=self.device, dtype=self.dtype)          # the model's device and dtype
        x = self.preprocess(seen) if self.preprocess else seen
        minimise = isinstance(self.objective, losses.Loss)
        needs_logits = self.until is not None or not minimise and self.objective.needs_logits
        acts, logits = hooks.run(self.model, x, list(self.objective.layers), stop=not needs_logits, detach=False)
        score = self.objective(acts, logits)
        loss = score.sum() if minimise else -score.sum()
        for pen in self.penalties:
            loss = loss + pen(img, x).sum()
        done = self.until is not None and bool(self.until(logits))
        del acts, logits                    # in the graph already: held here, they would outlive backward
        if not done:
            loss.backward()
            if self.normalize_grad:
                for p in self.params:
                    p.grad /= p.grad.abs().mean().clamp_min(1e-12)
        return loss, score.mean().item(), img.detach(), done


class _Log:
    """History, times and snapshots of a run."""

    def __init__(self, snapshot_every: int):
        self.every, self.start = snapshot_every, time.perf_counter()
        self.history, self.seconds, self.snapshots = [], [], []

    def add(self, step: int, score: float, img: torch.Tensor) -> None:
        self.history.append(score)
        self.seconds.append(time.perf_counter() - self.start)
        if self.every and step % self.every == 0:
            self.snapshots.append((step, img.clone()))


def _run_first_order(step: _Step, log: _Log, steps: int, lr: float, optimizer: str, post, bar) -> int:
    """Adam or SGD: ``steps`` updates, each followed by the post-step operations; returns the steps taken."""
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(step.params, lr=lr)
    for i in range(steps):
        _, score, img, done = step()
        log.add(i, score, img)
        if done:
            return i
        opt.step()
        with torch.no_grad():
            for op in post:
                op(step.param.param, i)
        bar.update()
    return steps


def _run_lbfgs(step: _Step, log: _Log, steps: int, lr: float, bar) -> int:
    """One L-BFGS run with a line search and no early stop: at most ``steps`` evaluations, each
    logged as a step; returns how many there were."""
    opt = torch.optim.LBFGS(step.params, lr=lr, max_iter=steps, max_eval=steps, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)

    last = [p.detach().clone() for p in step.params]

    def closure():
        if len(log.history) >= steps:   # torch checks max_eval only after a whole line search
            raise _Spent
        for keep, p in zip(last, step.params):
            keep.copy_(p.detach())
        loss, score, img, _ = step()
        log.add(len(log.history), score, img)
        bar.update()
        return loss
    try:
        opt.step(closure)
    except _Spent:                      # back to the last point evaluated (the line search moved on)
        with torch.no_grad():
            for keep, p in zip(last, step.params):
                p.copy_(keep)
    return len(log.history)


class _Spent(Exception):
    """The L-BFGS run has used its evaluations."""


# ---------------------------------------------------------------- ready-made uses


def fgsm(model: nn.Module, img: torch.Tensor, labels: torch.Tensor, eps: float,
         preprocess: Callable | None = None) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size ``eps`` (in 0..1 pixel
    units) up the sign of the loss gradient, clipped to 0..1."""
    model = checks.model(model)
    img = images.checked(img, "image to perturb")
    if not (isinstance(eps, numbers.Real) and 0 <= eps < math.inf):
        raise ValueError(f"eps must be a finite number >= 0 (a step in 0..1 pixel units), not {eps!r}")
    labels = checks.targets(labels, img.shape[0], net=model)
    with hooks.preserved(model):
        model.eval()
        img = img.detach().clone().requires_grad_(True)
        x = preprocess(img) if preprocess else img
        logits = model(x)
        labels = checks.targets(labels, img.shape[0], logits.shape[1], model)     # the class range
        loss = F.cross_entropy(logits, labels.to(x.device))
        grad, = torch.autograd.grad(loss, img)
    return (img + eps * grad.sign()).clamp(0, 1).detach()


def deepdream(model: nn.Module, img: torch.Tensor, layer: str, preprocess: Callable | None = None,
              octaves: int = 3, octave_scale: float = 1.4, steps: int = 10, lr: float = 0.01,
              jitter_px: int = 8, progress: bool = True) -> torch.Tensor:
    """DeepDream (Mordvintsev et al. 2015): maximise the L2 norm of ``layer`` with L1-normalised
    gradient steps, jitter and clipping, from the smallest octave up; details found at one scale
    are carried to the next."""
    model = checks.model(model)
    img = images.checked(img, "DeepDream start image")
    hooks.get_layer(model, layer)
    octaves = checks.whole_number(octaves, "octaves (image scales)", 1)
    if not (isinstance(octave_scale, numbers.Real) and 1 <= octave_scale < math.inf):
        raise ValueError(f"octave_scale must be a finite number >= 1 (the size ratio between octaves), "
                         f"not {octave_scale!r}")
    checks.whole_number(steps, "steps", 1)
    jitter_px = checks.whole_number(jitter_px, "jitter_px")
    h, w = img.shape[-2:]
    sizes = [(max(8, round(h / octave_scale ** k)), max(8, round(w / octave_scale ** k)))
             for k in range(octaves - 1, -1, -1)]
    base = [F.interpolate(img, size=s, mode="bilinear", align_corners=False, antialias=True) for s in sizes]
    detail = torch.zeros_like(base[0])
    for octave, (size, start) in enumerate(zip(sizes, base)):
        detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
        param = Pixels((start + detail).clamp(0, 1))
        result = ascend(model, layer_norm(layer), param, preprocess, steps=steps, lr=lr, optimizer="sgd",
                        transforms=[jitter(jitter_px)], normalize_grad=True, post=[clamp()],
                        seed=octave, progress=progress)
        detail = result.image - start
    return (base[-1] + detail).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB between two 0..1 images."""
    mse = (a.detach() - b.detach()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)
