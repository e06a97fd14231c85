"""lecturekit side by side with the libraries and reference code it is compared with, in one run.

    pip install .[peers]                  # captum, grad-cam (pytorch-grad-cam), torch-lucent
    python benchmarks/peers.py            # about 10 minutes on 2 idle CPU cores
    python benchmarks/peers.py --quick    # small sizes, one round: a smoke test

Peers: captum (Saliency, GuidedBackprop, Deconvolution, IntegratedGradients, NoiseTunnel,
LayerGradCam, Occlusion), pytorch-grad-cam (GradCAM), lucent (render_vis with its defaults),
the PyTorch neural-style tutorial and pytorch/examples' fast-neural-style TransformerNet. The
last two are not packages: they are written out below from their published code, with the
same layers, sizes, losses and optimiser settings (``Tutorial*`` and ``TransformerNet``).

Models: SqueezeNet 1.1, ResNet-18 and VGG-16 (VGG-19 for the tutorial, as it uses) with random
weights: speed does not depend on the values. Every pair runs in interleaved rounds (lecturekit,
peer, lecturekit, peer, ... the order alternating by round, four rounds by default, so that each
goes first equally often); a timing is the mean of as many calls as last 0.25 s (``MIN_TIMING``),
so that calls of a few milliseconds are timed steadily; the table gives the median time of
each, the ratio of medians with the range of the per-round ratios, and the peak memory each
call added (resident set, its high-water mark reset before the call through /proc/self/clear_refs,
measured after the timings with large blocks mapped one by one so that freed memory is seen). A float32
matrix multiply measured at the start and end of the run gives the machine's practical rate;
for the optimisation loops the table gives lecturekit's achieved GFLOP/s as a fraction of it
(FLOPs counted by torch.utils.flop_counter).
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import importlib.util
import math
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("LECTUREKIT_DEVICE", "cpu")
os.environ.setdefault("LECTUREKIT_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision.models import get_model  # noqa: E402

import lecturekit as lk  # noqa: E402

PEERS = {"captum": "captum", "pytorch_grad_cam": "grad-cam", "lucent": "torch-lucent"}


def missing_peers() -> list[str]:
    return [pip for mod, pip in PEERS.items() if importlib.util.find_spec(mod) is None]


# ---------------------------------------------------------------- measuring

_libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_mb(fn) -> float:
    """Resident memory the call added at its peak, in MB (Linux; NaN elsewhere)."""
    if _libc is None or not os.path.exists("/proc/self/clear_refs"):
        fn()
        return float("nan")
    _libc.malloc_trim(0)                                   # give freed heap back, so the baseline is honest
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                       # reset the high-water mark to the current RSS
    fn()
    return (_status_kb("VmHWM") - base) / 1024


M_MMAP_THRESHOLD = -3                                      # glibc's mallopt parameter


def peak_mbs(fns) -> list[float]:
    """``peak_mb`` of each call, with every block of 64 kB or more in its own mapping while they run,
    so that freed memory leaves the resident set at once and is not reused unseen. (glibc's default
    keeps freed blocks for reuse; it is restored afterwards, so timings are not affected.)"""
    if _libc is None:
        return [peak_mb(fn) for fn in fns]
    _libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
    try:
        return [peak_mb(fn) for fn in fns]
    finally:
        _libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's largest dynamic threshold


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n ** 3 * repeat / seconds(lambda: [a @ b for _ in range(repeat)]) / 1e9


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


#: one timing lasts at least this long (a call of a few milliseconds is timed as the mean of many)
MIN_TIMING = 0.25


class Row:
    """One comparison: lecturekit's call and the peer's, doing the same work."""

    def __init__(self, group, label, peer, mine, theirs, count_flops=False):
        self.group, self.label, self.peer, self.mine, self.theirs = group, label, peer, mine, theirs
        self.count_flops = count_flops
        self.times = {"mine": [], "theirs": []}
        self.memory = {}
        self.gflop = None

    def warm(self):
        """First call of each, untimed; FLOPs counted; how many calls make one timing (``MIN_TIMING``)."""
        for side in ("mine", "theirs"):
            getattr(self, side)()
        once = min(seconds(getattr(self, side)) for side in ("mine", "theirs"))
        self.calls = max(1, math.ceil(MIN_TIMING / once))
        if self.count_flops:
            self.gflop = flops(self.mine) / 1e9

    def round(self, r):
        for side in (("mine", "theirs") if r % 2 == 0 else ("theirs", "mine")):
            fn = getattr(self, side)
            self.times[side].append(seconds(lambda: [fn() for _ in range(self.calls)]) / self.calls)

    def cells(self, rate):
        m, t = (statistics.median(self.times[s]) for s in ("mine", "theirs"))
        ratios = [a / b for a, b in zip(self.times["mine"], self.times["theirs"])]
        frac = f"{self.gflop / m / rate:.2f}" if self.gflop else ""
        return [self.label, self.peer, _ms(m), _ms(t), f"**{m / t:.2f}x**",
                f"{min(ratios):.2f}-{max(ratios):.2f}", f"{self.memory['mine']:.0f} / {self.memory['theirs']:.0f}",
                frac]


def _ms(s: float) -> str:
    return f"{1000 * s:.0f}" if s >= 0.1 else f"{1000 * s:.1f}"


def run_rows(rows, rounds):
    for row in rows:
        row.warm()
    for r in range(rounds):
        for row in rows:
            row.round(r)
    for row in rows:                                       # memory after the timings
        row.memory = dict(zip(("mine", "theirs"), peak_mbs([row.mine, row.theirs])))


def print_table(rows, rate):
    print("| measurement | peer | lecturekit ms | peer ms | ratio (median) | per-round range | "
          "peak MB (lk / peer) | lk fraction of matmul |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row.cells(rate)) + " |")


# ---------------------------------------------------------------- attribution rows


def models(names, size):
    gen = torch.Generator().manual_seed(0)
    layers = {"squeezenet1_1": "features.12", "resnet18": "layer4", "vgg16": "features.29"}
    out = {}
    for name in names:
        model = lk.zoo.prepare(get_model(name, weights=None))
        out[name] = (model, torch.randn(1, 3, size, size, generator=gen), layers[name])
    return out


def attribution_rows(names, size, steps, samples, patch):
    from captum.attr import (Deconvolution, DeepLift, GuidedBackprop, IntegratedGradients, LayerAttribution,
                             LayerGradCam, NoiseTunnel, Occlusion, Saliency)
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    rows, notes, target = [], [], 1
    has_ig, has_sg = hasattr(lk.attribution, "integrated_gradients"), hasattr(lk.attribution, "smoothgrad")
    if not has_ig:
        notes.append("integrated gradients: lecturekit.attribution.integrated_gradients is not in this "
                     "version; row skipped")
    if not has_sg:
        notes.append("SmoothGrad: lecturekit.attribution.smoothgrad is not in this version; row skipped")
    for name, (model, x, layer) in models(names, size).items():
        module = lk.hooks.get_layer(model, layer)
        sigma = 0.15 * float(x.max() - x.min())

        def gradcam_peer(model=model, x=x, module=module):
            # its graph needs something that requires grad: the input here (the weights are frozen)
            with GradCAM(model=model, target_layers=[module]) as cam:
                return cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(target)])

        def layergradcam_peer(model=model, x=x, module=module):
            attr = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True)
            return LayerAttribution.interpolate(attr, tuple(x.shape[2:]), "bilinear")

        g = f"{name} {size} px"
        rows += [Row(g, f"{name}: saliency", "captum Saliency",
                     lambda m=model, x=x: lk.attribution.saliency(m, x, target),
                     lambda m=model, x=x: Saliency(m).attribute(x, target=target)),
                 Row(g, f"{name}: guided backprop", "captum GuidedBackprop",
                     lambda m=model, x=x: lk.attribution.guided_backprop(m, x, target),
                     lambda m=model, x=x: GuidedBackprop(m).attribute(x, target=target)),
                 Row(g, f"{name}: deconvnet", "captum Deconvolution",
                     lambda m=model, x=x: lk.attribution.deconvnet(m, x, target),
                     lambda m=model, x=x: Deconvolution(m).attribute(x, target=target))]
        if has_ig:
            rows.append(Row(g, f"{name}: integrated gradients, {steps} steps", "captum IntegratedGradients",
                            lambda m=model, x=x: lk.attribution.integrated_gradients(m, x, target, steps=steps),
                            lambda m=model, x=x: IntegratedGradients(m).attribute(
                                x, torch.zeros_like(x), target=target, n_steps=steps)))
        if name != "resnet18":                      # captum refuses ResNet's reused ReLU modules
            rows.append(Row(g, f"{name}: DeepLIFT (Rescale), zero baseline", "captum DeepLift",
                            lambda m=model, x=x: lk.attribution.deeplift(m, x, target),
                            lambda m=model, x=x: DeepLift(m).attribute(x, torch.zeros_like(x), target=target)))
        if has_sg:
            rows.append(Row(g, f"{name}: SmoothGrad, {samples} samples", "captum NoiseTunnel(Saliency)",
                            lambda m=model, x=x: lk.attribution.smoothgrad(m, x, target, samples=samples, noise=0.15,
                                                                           generator=torch.Generator().manual_seed(0)),
                            lambda m=model, x=x, s=sigma: NoiseTunnel(Saliency(m)).attribute(
                                x, nt_type="smoothgrad", nt_samples=samples, stdevs=s, target=target)))

        def grad_cam(m=model, x=x, layer=layer):
            return lk.attribution.grad_cam(m, x, target, layer=layer)

        rows += [Row(g, f"{name}: Grad-CAM at {layer}", "pytorch-grad-cam GradCAM", grad_cam, gradcam_peer),
                 Row(g, f"{name}: Grad-CAM at {layer}", "captum LayerGradCam + interpolate", grad_cam,
                     layergradcam_peer)]
        windows = ((size - patch) // patch + 1) ** 2
        rows.append(Row(g, f"{name}: occlusion, {patch} px patch and stride ({windows} windows), batch 8",
                        "captum Occlusion",
                        lambda m=model, x=x: lk.attribution.occlusion(m, x, target, patch=patch, stride=patch,
                                                                      batch_size=8),
                        lambda m=model, x=x: Occlusion(m).attribute(
                            x, sliding_window_shapes=(3, patch, patch), strides=(3, patch, patch), baselines=0.0,
                            target=target, perturbations_per_eval=8)))
    return rows, notes


# ---------------------------------------------------------------- feature visualisation (lucent)


def ascent_rows(names, steps):
    from lucent.optvis import render

    preprocess, _ = lk.zoo.normalizer()
    scales = [1 + (i - 5) / 50.0 for i in range(11)]
    upsample = lambda img, gen: F.interpolate(img, size=224, mode="bilinear", align_corners=True)  # noqa: E731
    layers = {"squeezenet1_1": "features.7", "resnet18": "layer3", "vgg16": "features.22"}
    rows = []
    for name in names:
        model = lk.zoo.prepare(get_model(name, weights=None))
        layer = layers[name]
        objective = lk.ascent.channel(layer, 3)

        def mine(model=model, objective=objective):
            start = lk.ascent.Fourier(1, 128, 128, generator=torch.Generator().manual_seed(0))
            shake = [lk.ascent.jitter(8), lk.ascent.random_scale(scales), lk.ascent.jitter(4), upsample]
            lk.ascent.ascend(model, objective, start, preprocess, steps=steps, lr=0.05, transforms=shake,
                             progress=False)

        def theirs(model=model, layer=layer):
            # lucent leaves its hooks on the model it is given: a fresh copy each call keeps rounds equal
            copy_ = copy.deepcopy(model)
            render.render_vis(copy_, f"{layer.replace('.', '_')}:3", thresholds=(steps,), show_image=False,
                              progress=False)

        row = Row(f"{name} 128 px", f"{name}: channel {layer}:3, {steps} Adam steps, 128 px image at 224 px",
                  "lucent render_vis (defaults)", mine, theirs)
        row.count_flops = True
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the PyTorch neural-style tutorial
# (pytorch.org/tutorials/advanced/neural_style_tutorial.html): VGG-19 features, content loss at
# conv_4, style losses at conv_1 ... conv_5, Gram by torch.mm divided by a*b*c*d, style weight 1e6,
# loss modules inserted into an nn.Sequential that is cut after the last loss, L-BFGS with default
# settings (history 100, 20 evaluations per step, no line search), pixels clamped in the closure.

TUTORIAL_STYLE = ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"]
TUTORIAL_CONTENT = "conv_4"


def tutorial_gram(x):
    a, b, c, d = x.size()
    f = x.view(a * b, c * d)
    return torch.mm(f, f.t()).div(a * b * c * d)


class TutorialContentLoss(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target.detach()

    def forward(self, x):
        self.loss = F.mse_loss(x, self.target)
        return x


class TutorialStyleLoss(nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = tutorial_gram(target_feature).detach()

    def forward(self, x):
        self.loss = F.mse_loss(tutorial_gram(x), self.target)
        return x


class TutorialNormalization(nn.Module):
    def __init__(self):
        super().__init__()
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)

    def forward(self, img):
        return (img - self.mean) / self.std


def vgg19_features():
    cnn = get_model("vgg19", weights=None).features.eval().requires_grad_(False)
    return cnn


def tutorial_model(cnn, style_img, content_img):
    model = nn.Sequential(TutorialNormalization())
    content_losses, style_losses, i = [], [], 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name, layer = f"relu_{i}", nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        model.add_module(name, layer)
        if name == TUTORIAL_CONTENT:
            loss = TutorialContentLoss(model(content_img).detach())
            model.add_module(f"content_loss_{i}", loss)
            content_losses.append(loss)
        if name in TUTORIAL_STYLE:
            loss = TutorialStyleLoss(model(style_img).detach())
            model.add_module(f"style_loss_{i}", loss)
            style_losses.append(loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], (TutorialContentLoss, TutorialStyleLoss)):
            break
    return model[:i + 1], style_losses, content_losses


def tutorial_loss(model, style_losses, content_losses, img, style_weight=1e6, content_weight=1):
    model(img)
    return style_weight * sum(s.loss for s in style_losses) + content_weight * sum(c.loss for c in content_losses)


def tutorial_run(model, style_losses, content_losses, img, evaluations, history=None, start=None):
    """The tutorial's run_style_transfer loop, stopped after ``evaluations`` closure calls."""
    img = img.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([img], max_iter=min(20, evaluations))   # the tutorial's: default settings
    run = [0]
    while run[0] < evaluations:
        def closure():
            with torch.no_grad():
                img.clamp_(0, 1)
            optimizer.zero_grad()
            loss = tutorial_loss(model, style_losses, content_losses, img)
            loss.backward()
            run[0] += 1
            if history is not None:
                history.append((time.perf_counter() - start, loss.item()))
            return loss
        optimizer.step(closure)
    with torch.no_grad():
        img.clamp_(0, 1)
    return img


def lecturekit_on_tutorial(cnn):
    """The tutorial's network and layers as a lecturekit FeatureNet (same FLOPs)."""
    names, i, layers = [], 0, []
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            names.append(f"conv_{i}")
        elif isinstance(layer, nn.ReLU):
            names.append(f"relu_{i}")
            layer = nn.ReLU()
        else:
            names.append(f"pool_{i}")
        layers.append(layer)
        if names[-1] == TUTORIAL_STYLE[-1]:
            break
    from collections import OrderedDict
    model = lk.zoo.prepare(nn.Sequential(OrderedDict(zip(names, layers))))
    preprocess, _ = lk.zoo.normalizer()
    return lk.style.FeatureNet(model, preprocess, "the tutorial's VGG-19 layers", False,
                               style_layers=list(TUTORIAL_STYLE), content_layer=TUTORIAL_CONTENT,
                               depths=list(TUTORIAL_STYLE))


def style_rows(size, evaluations):
    content = lk.images.load("chelsea", size=size)
    style_img = lk.images.load("hubble_deep_field", size=size)
    cnn = vgg19_features()
    model, style_losses, content_losses = tutorial_model(cnn, style_img, content)
    net = lecturekit_on_tutorial(cnn)
    style_loss = lk.style.style_loss(net, style_img, content_img=content, style_weight=10.0)
    img = content.clone().requires_grad_(True)

    def mine_eval():                          # as ascent's loop does it
        acts, _ = lk.hooks.run(net.model, net.preprocess(img), style_loss.layers, detach=False)
        loss = style_loss(acts).sum()
        del acts                               # held through backward, they could not be freed as it goes
        loss.backward()
        img.grad = None

    def theirs_eval():
        tutorial_loss(model, style_losses, content_losses, img).backward()
        img.grad = None

    g = f"style {size} px"
    rows = [Row(g, f"Gatys loss evaluation (forward + backward), VGG-19 to conv_5, {size} px",
                "PyTorch neural-style tutorial", mine_eval, theirs_eval, count_flops=True),
            Row(g, f"Gatys run, {evaluations} L-BFGS evaluations, {size} px", "PyTorch neural-style tutorial",
                lambda: lk.style.transfer(net, content, style_img, steps=evaluations, tv_weight=0, progress=False),
                lambda: tutorial_run(*tutorial_model(cnn, style_img, content), content, evaluations))]
    return rows, (net, model, style_losses, content_losses, content, style_img)


def lbfgs_memory(setup, evaluations):
    """Peak MB of each optimiser's run (L-BFGS keeps ``history`` pairs of image-sized vectors)."""
    net, model, style_losses, content_losses, content, _ = setup

    def lecturekit_settings():
        img = content.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([img], lr=1.0, max_iter=evaluations, max_eval=evaluations, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)

        def closure():
            opt.zero_grad()
            loss = tutorial_loss(model, style_losses, content_losses, img)
            loss.backward()
            return loss
        opt.step(closure)
    mine, theirs = peak_mbs([lecturekit_settings,
                             lambda: tutorial_run(model, style_losses, content_losses, content, evaluations)])
    return {"lecturekit": mine, "tutorial": theirs}


def lbfgs_curves(setup, evaluations):
    """Loss against wall time for the tutorial's objective under two optimisers: lecturekit's L-BFGS
    settings (strong-Wolfe line search, history 20, no clamping until the end) and the tutorial's
    (no line search, history 100, clamping in the closure). Same objective, same start."""
    net, model, style_losses, content_losses, content, _ = setup
    curves = {}
    start = time.perf_counter()
    curves["tutorial"] = []
    result = tutorial_run(model, style_losses, content_losses, content, evaluations, curves["tutorial"], start)
    img = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([img], lr=1.0, max_iter=evaluations, max_eval=evaluations, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    curves["lecturekit"] = []
    start = time.perf_counter()

    def closure():
        opt.zero_grad()
        loss = tutorial_loss(model, style_losses, content_losses, img)
        loss.backward()
        curves["lecturekit"].append((time.perf_counter() - start, loss.item()))
        return loss
    opt.step(closure)
    final = {k: tutorial_loss(model, style_losses, content_losses,
                              (result if k == "tutorial" else img).detach().clamp(0, 1)).item() for k in curves}
    return curves, final


def best_by(curve, t):
    done = [loss for s, loss in curve if s <= t]
    return min(done) if done else float("nan")


# ---------------------------------------------------------------- pytorch/examples' fast-neural-style TransformerNet
# (github.com/pytorch/examples, fast_neural_style/neural_style/transformer_net.py): reflection-padded
# convolutions, affine instance norm, 5 residual blocks of 128 channels, nearest upsampling + conv.


class ExConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ExResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.in1 = ExConvLayer(channels, channels, 3, 1), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = ExConvLayer(channels, channels, 3, 1), nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.in2(self.conv2(self.relu(self.in1(self.conv1(x))))) + x


class ExUpsampleConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride, upsample=None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.in1 = ExConvLayer(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ExConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ExConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        self.res = nn.Sequential(*[ExResidualBlock(128) for _ in range(5)])
        self.deconv1, self.in4 = ExUpsampleConvLayer(128, 64, 3, 1, upsample=2), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = ExUpsampleConvLayer(64, 32, 3, 1, upsample=2), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ExConvLayer(32, 3, 9, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def faststyle_rows(sizes):
    gen = torch.Generator().manual_seed(0)
    theirs = TransformerNet().eval()
    same = lk.faststyle.TransformNet(1, width=32, blocks=5, upsample="nearest").eval()      # the examples' layers
    shipped, _ = lk.faststyle.load()
    rows = []
    for size in sizes:
        photo = torch.rand(1, 3, size, size, generator=gen)
        for label, net, style in (("TransformNet, the examples' size and upsampling (32 channels, 5 blocks, nearest)",
                                   same, None),
                                  ("shipped TransformNet (16 channels, 3 blocks, bilinear)", shipped, 0)):
            rows.append(Row(f"fast style {size} px", f"{label}, forward, {size} px",
                            "pytorch/examples TransformerNet",
                            torch.no_grad()(lambda net=net, photo=photo, style=style: net(photo, style=style)),
                            torch.no_grad()(lambda photo=photo: theirs(photo))))
    return rows


# ---------------------------------------------------------------- import


def import_times(rounds):
    code = ("import time, torch, torchvision\nstart = time.perf_counter()\nimport {}\n"
            "print(time.perf_counter() - start)")
    times = {"lecturekit": [], "captum.attr": []}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    for r in range(rounds):
        for mod in (("lecturekit", "captum.attr") if r % 2 == 0 else ("captum.attr", "lecturekit")):
            out = subprocess.run([sys.executable, "-c", code.format(mod)], capture_output=True, text=True, env=env,
                                 check=True)
            times[mod].append(float(out.stdout.split()[-1]))
    return times


# ---------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (a smoke test)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds, each pair in turn first (default 4; 1 with --quick)")
    parser.add_argument("--only", default="attribution,ascent,style,faststyle,lbfgs,import",
                        help="comma-separated groups to run (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    if args.threads:
        torch.set_num_threads(args.threads)
    absent = missing_peers()
    if absent:
        print(f"the peers are not installed ({', '.join(absent)}): pip install .[peers]")
        return 2
    rounds = args.rounds or (1 if args.quick else 4)
    quick = args.quick
    torch.manual_seed(0)                                   # the random weights of the models below
    names = ["squeezenet1_1"] if quick else ["squeezenet1_1", "resnet18", "vgg16"]
    rate_start = matmul_gflops()
    print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}; float32 matmul 2048x2048 at the start: "
          f"{rate_start:.1f} GFLOP/s\n")

    size, patch = (64, 32) if quick else (224, 56)
    groups = {"attribution": lambda: attribution_rows(names, size, steps=2 if quick else 8,
                                                      samples=2 if quick else 8, patch=patch),
              "ascent": lambda: (ascent_rows(names, steps=2 if quick else 10), []),
              "style": lambda: (style_rows(64 if quick else 512, 3 if quick else 5)[0], []),
              "faststyle": lambda: (faststyle_rows([64] if quick else [256, 512]), [])}
    for group, make in groups.items():
        if group in only:                                  # each table printed as soon as it is measured
            rows, notes = make()
            run_rows(rows, rounds)
            print_table(rows, rate_start)
            for note in notes:
                print(f"- {note}")
            print()
    print(f"float32 matmul 2048x2048 at the end of the tables: {matmul_gflops():.1f} GFLOP/s (the fractions use "
          f"the rate at the start)")
    if "lbfgs" in only:
        lbfgs_table(quick)
    if "import" in only and not quick:
        import_table(rounds + 2)
    return 0


def lbfgs_table(quick):
    curve_size, curve_evals = (64, 6) if quick else (256, 60)
    _, setup = style_rows(curve_size, 1)
    curves, final = lbfgs_curves(setup, curve_evals)
    memory = lbfgs_memory(setup, curve_evals)
    t_common = min(curves["tutorial"][-1][0], curves["lecturekit"][-1][0])
    print(f"\nL-BFGS on the tutorial's loss, {curve_size} px, {curve_evals} evaluations each (loss: lower is better)\n")
    print("| optimiser settings | seconds | evaluations | loss after "
          f"{t_common / 2:.1f} s | loss after {t_common:.1f} s | final loss (clamped to 0..1) | peak MB |")
    print("|---|---|---|---|---|---|---|")
    for key, label in (("lecturekit", "lecturekit: strong-Wolfe line search, history 20"),
                       ("tutorial", "tutorial: no line search, history 100, clamp in the closure")):
        c = curves[key]
        print(f"| {label} | {c[-1][0]:.1f} | {len(c)} | {best_by(c, t_common / 2):.4g} | {best_by(c, t_common):.4g} | "
              f"{final[key]:.4g} | {memory[key]:.0f} |")


def import_table(rounds):
    times = import_times(rounds)
    m, c = statistics.median(times["lecturekit"]), statistics.median(times["captum.attr"])
    ratios = [a / b for a, b in zip(times["lecturekit"], times["captum.attr"])]
    print(f"\n| import after torch and torchvision | lecturekit s | captum.attr s | ratio | range |\n"
          f"|---|---|---|---|---|\n| `import lecturekit` vs `import captum.attr` | {m:.3f} | {c:.3f} | "
          f"**{m / c:.2f}x** | {min(ratios):.2f}-{max(ratios):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
