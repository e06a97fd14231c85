"""The autograder's own answers: what the hidden tests compare the students' functions with.

This file goes into the Gradescope autograder only (otter's ``autograder_files``), never to the
students. It is plain PyTorch and uses no lecturekit technique, so the grade does not depend on
the lecturekit a student has installed; tests/test_assignments.py checks that these agree with
lecturekit's own implementations.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


def _targets(target, n: int, device) -> torch.Tensor:
    return torch.as_tensor(target, device=device).reshape(-1).expand(n)


def _scores(model, x, target):
    logits = model(x)
    return logits[torch.arange(x.shape[0], device=x.device), _targets(target, x.shape[0], x.device)]


def input_gradient(model, x, target):
    """d score_target / d x, (N, C, H, W)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        grad, = torch.autograd.grad(_scores(model, x, target).sum(), x)
    return grad


def saliency(model, x, target):
    return input_gradient(model, x, target).abs().amax(1)


# ---------------------------------------------------------------- attribution


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inp):
        ctx.save_for_backward(inp)
        return inp.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        inp, = ctx.saved_tensors
        return torch.where((inp > 0) & (grad > 0), grad, torch.zeros_like(grad))


@contextlib.contextmanager
def relu_rule(model, rule):
    handles = [m.register_forward_hook(lambda mod, inp, out: rule.apply(inp[0]))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def guided_backprop(model, x, target):
    with relu_rule(model, GuidedReLU):
        return input_gradient(model, x, target).abs().amax(1)


def _module(model, name):
    return dict(model.named_modules())[name]


def grad_cam(model, x, target, layer):
    saved = {}
    handle = _module(model, layer).register_forward_hook(lambda m, i, out: saved.update(a=out))
    try:
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            scores = _scores(model, x, target)
            acts = saved["a"]
            grad, = torch.autograd.grad(scores.sum(), acts)
    finally:
        handle.remove()
    alpha = grad.mean((2, 3), keepdim=True)
    maps = F.relu((alpha * acts).sum(1, keepdim=True)).detach()
    return F.interpolate(maps, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]


def occlusion_places(size: int, patch: int, stride: int, flush: bool = True) -> list[int]:
    p = list(range(0, size - patch + 1, stride))
    return p + [size - patch] if flush and p[-1] != size - patch else p


@torch.no_grad()
def occlusion(model, x, target, patch=8, stride=4, flush=True, mean=True, probs=True):
    """Mean target probability over the placements covering each pixel; ``flush``, ``mean`` and
    ``probs`` off give the likely mistakes (no last placement, a sum, logits)."""
    n, _, h, w = x.shape
    t = _targets(target, n, x.device)
    total = torch.zeros(n, h, w, dtype=x.dtype, device=x.device)
    count = torch.zeros(h, w, dtype=x.dtype, device=x.device)
    for r in occlusion_places(h, patch, stride, flush):
        for s in occlusion_places(w, patch, stride, flush):
            covered = x.clone()
            covered[:, :, r:r + patch, s:s + patch] = 0
            out = model(covered)
            out = out.softmax(1) if probs else out
            total[:, r:r + patch, s:s + patch] += out[torch.arange(n), t][:, None, None]
            count[r:r + patch, s:s + patch] += 1
    return total / count.clamp_min(1) if mean else total


def ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 of a 1-D tensor, ties sharing their mean rank."""
    sorted_v, order = v.sort()
    _, group, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(v.dtype)
    out = torch.empty_like(v)
    out[order] = (ends - (counts.to(v.dtype) + 1) / 2)[group]
    return out


def rank_correlation(a, b, absolute=True) -> float:
    a, b = (a.abs(), b.abs()) if absolute else (a, b)
    values = []
    for u, v in zip(a.detach().flatten(1).double(), b.detach().flatten(1).double()):
        ru, rv = ranks(u), ranks(v)
        ru, rv = ru - ru.mean(), rv - rv.mean()
        values.append(float((ru * rv).sum() / (ru.norm() * rv.norm())))
    return sum(values) / len(values)


def randomization_curve(model, x, target, method, generator_seed=0):
    from lecturekit import sanity            # the randomized copies are given to the students too
    original = method(model, x, target)
    return [rank_correlation(original, method(sanity.randomized(
        model, k, generator=torch.Generator().manual_seed(generator_seed)), x, target))
        for k in range(len(sanity.weight_layers(model)) + 1)]


# ---------------------------------------------------------------- class visualization


def l2_penalty(x, weight):
    return weight * x.pow(2).flatten(1).mean(1)


def tv_penalty(img, weight, power=2, mean=True):
    """``power`` 1 and ``mean`` off give the likely mistakes (L1 differences, sums)."""
    dh = (img[..., 1:, :] - img[..., :-1, :]).abs().pow(power).flatten(1)
    dw = (img[..., :, 1:] - img[..., :, :-1]).abs().pow(power).flatten(1)
    return weight * ((dh.mean(1) + dw.mean(1)) if mean else (dh.sum(1) + dw.sum(1)))


def class_objective(model, img, target, preprocess, l2_weight, tv_weight):
    x = preprocess(img)
    return model(x)[:, target] - l2_penalty(x, l2_weight) - tv_penalty(img, tv_weight)


# ---------------------------------------------------------------- style


def features(net, img, layers):
    """{layer: activation of net.model} for a 0..1 image, in the graph."""
    acts, handles = {}, []
    modules = dict(net.model.named_modules())
    for name in layers:
        handles.append(modules[name].register_forward_hook(lambda m, i, out, name=name: acts.update({name: out})))
    try:
        net.model(net.preprocess(img))
    finally:
        for h in handles:
            h.remove()
    return acts


def content_loss(f, target):
    return (f - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1)


def gram(f):
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def style_targets(net, style_img, layers=None):
    layers = list(layers or net.style_layers)
    with torch.no_grad():
        return {k: gram(v) for k, v in features(net, style_img, layers).items()}


def style_loss(feats, target_grams, layers, mean=True):
    total = 0
    for layer in layers:
        g, t = gram(feats[layer]), target_grams[layer]
        total = total + (g - t).pow(2).flatten(1).sum(1) / t.pow(2).flatten(1).sum(1)
    return total / len(layers) if mean else total


def tv_loss(img):
    return tv_penalty(img, 1.0)


def transfer_loss(net, img, content_target, grams, content_weight, style_weight, tv_weight):
    """The total loss style transfer minimises, per image (N,)."""
    feats = features(net, img, [net.content_layer, *net.style_layers])
    return (content_weight * content_loss(feats[net.content_layer], content_target)
            + style_weight * style_loss(feats, grams, net.style_layers) + tv_weight * tv_loss(img))


def fast_style_loss(net, out, photos, grams, content_weight, style_weight, tv_weight, batch_mean=True):
    """The loss of one fast-style training step: each term averaged over the batch (summed when
    ``batch_mean`` is off, the likely mistake)."""
    with torch.no_grad():
        content_target = features(net, photos, [net.content_layer])[net.content_layer]
    feats = features(net, out, [net.content_layer, *net.style_layers])
    reduce = torch.mean if batch_mean else torch.sum
    return (content_weight * reduce(content_loss(feats[net.content_layer], content_target))
            + style_weight * reduce(style_loss(feats, grams, net.style_layers)) + tv_weight * reduce(tv_loss(out)))
