import math

import pytest
import torch
from torch import nn

import lecturekit as lk
from lecturekit import ascent
from lecturekit import hooks, losses


def flags(model):
    return [p.requires_grad for p in model.parameters()], [m.training for m in model.modules()]


def test_class_score_rises_tenfold_and_model_restored(teaching):
    model = teaching.model
    model.fc.weight.requires_grad_(True)                   # a user's own flag must survive
    before = flags(model)
    r = ascent.ascend(model, ascent.class_score(3), ascent.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=100,
                 lr=0.05, penalties=[ascent.l2(1e-3)], progress=False)
    assert r.history[-1] >= 10 * abs(r.history[0]) and r.steps == 100
    assert flags(model) == before and hooks.count(model) == 0 and model.fc.weight.grad is None
    model.fc.weight.requires_grad_(False)


def test_bad_indices_and_layers_are_clear_and_restore(teaching):
    model = teaching.model
    model.train()
    before = flags(model)
    with pytest.raises(ValueError, match="class 12 is out of range: valid values are 0..9"):
        ascent.ascend(model, ascent.class_score(12), ascent.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=3)
    with pytest.raises(ValueError, match="channel of relu2 200 is out of range: valid values are 0..63"):
        ascent.ascend(model, ascent.channel("relu2", 200), ascent.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=3)
    with pytest.raises(ValueError, match="row of relu3 9 is out of range"):
        ascent.ascend(model, ascent.neuron("relu3", 1, (9, 0)), ascent.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=3)
    with pytest.raises(ValueError, match="no layer 'conv7'.*Valid layer names"):
        ascent.ascend(model, ascent.channel("conv7", 0), ascent.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=3)
    assert flags(model) == before and hooks.count(model) == 0
    model.eval()


class Explodes(nn.Module):
    def forward(self, x):
        raise AssertionError("the network should have stopped before this layer")


def test_forward_stops_after_the_last_needed_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Explodes())
    r = ascent.ascend(model, ascent.channel("0", 2), ascent.Pixels.noise(1, 3, 8, 8), steps=5, progress=False)
    assert r.history[-1] > r.history[0] and hooks.count(model) == 0


def test_objective_arithmetic():
    acts = {"a": torch.arange(8.0).view(1, 2, 2, 2)}
    logits = torch.tensor([[1.0, 5.0]])
    obj = ascent.class_score(1) + 2 * ascent.channel("a", 1) - ascent.neuron("a", 0, (1, 1))
    assert obj(acts, logits).item() == pytest.approx(5 + 2 * 5.5 - 3)
    assert obj.layers == ("a",) and obj.needs_logits
    assert ascent.layer_norm("a")(acts, None).item() == pytest.approx(sum(i * i for i in range(8)) / 8)


def test_fooling_succeeds_on_a_fixed_sample_with_a_small_change(teaching):
    imgs, labels = lk.teaching.load_sample()
    imgs = imgs[:10].expand(-1, 3, -1, -1)
    for i in range(10):
        target = (int(labels[i]) + 1) % 10
        r = ascent.ascend(teaching.model, ascent.class_score(target), ascent.Pixels(imgs[i:i + 1]), teaching.preprocess,
                     steps=100, lr=0.005, post=[ascent.clamp()], until=lambda lg, t=target: lg.argmax(1).item() == t,
                     progress=False)
        assert teaching.model(teaching.preprocess(r.image)).argmax(1).item() == target and r.steps < 100
        assert (r.image - imgs[i:i + 1]).abs().max() < 0.2


def test_fgsm_accuracy_falls_with_epsilon(teaching):
    imgs, labels = lk.teaching.load_sample()
    accs = []
    for eps in (0.0, 0.02, 0.05, 0.1):
        adv = ascent.fgsm(teaching.model, imgs, labels, eps, teaching.preprocess)
        assert (adv - imgs).abs().max() <= eps + 1e-6 and 0 <= adv.min() and adv.max() <= 1
        accs.append((teaching.model(teaching.preprocess(adv)).argmax(1) == labels).float().mean().item())
    assert accs[0] > 0.9 and all(a > b for a, b in zip(accs, accs[1:])) and accs[-1] < 0.2


def test_inversion_from_conv1_is_nearly_exact(teaching):
    imgs, _ = lk.teaching.load_sample()
    target = imgs[:1].expand(-1, 3, -1, -1)
    feats = hooks.activations(teaching.model, teaching.preprocess(target), "conv1")["conv1"]
    r = ascent.ascend(teaching.model, losses.feature_match("conv1", feats),
                 ascent.Pixels.noise(1, 3, 28, 28, generator=torch.Generator().manual_seed(0)), teaching.preprocess,
                 steps=300, lr=0.05, penalties=[ascent.tv(1e-3)], post=[ascent.clamp()], progress=False)
    seen = teaching.deprocess(teaching.preprocess(r.image))          # the luminance the model sees
    assert ascent.psnr(seen, teaching.deprocess(teaching.preprocess(target))) >= 30


def test_fourier_parameterisation():
    torch.manual_seed(0)
    p = ascent.Fourier(2, 16, 20, generator=torch.Generator().manual_seed(0))
    img = p.image()
    assert img.shape == (2, 3, 16, 20) and 0 < img.min() and img.max() < 1
    img.sum().backward()
    assert p.spectrum.grad is not None and p.spectrum.grad.abs().sum() > 0
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    r = ascent.ascend(model, ascent.channel("0", 0), ascent.Fourier(1, 16, 16), steps=30, lr=0.05, progress=False)
    assert r.history[-1] > r.history[0]
    with pytest.raises(ValueError, match="post-step operations act on raw pixels"):
        ascent.ascend(model, ascent.channel("1", 0), ascent.Fourier(1, 16, 16), steps=2, post=[ascent.clamp()], progress=False)


def test_post_step_operations_by_hand():
    const = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(ascent.gaussian_blur(const, 1.0), const)
    delta = torch.zeros(1, 1, 15, 15)
    delta[0, 0, 7, 7] = 1
    blurred = ascent.gaussian_blur(delta, 1.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5) and blurred[0, 0, 7, 7] < 0.2
    p = torch.full((1, 3, 2, 2), 0.9)
    ascent.decay(0.1)(p, 0)
    torch.testing.assert_close(p, torch.full((1, 3, 2, 2), 0.86))
    p = torch.tensor([0.5, 0.55, 0.9, 0.1]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    ascent.zero_small_values(50)(p, 0)
    assert p[0, 0].flatten().tolist() == pytest.approx([0.5, 0.5, 0.9, 0.1])
    p = torch.tensor([0.9, 0.9, 0.1, 0.1]).view(1, 1, 2, 2).clone()
    p.grad = torch.tensor([1.0, 0.01, 1.0, 0.01]).view(1, 1, 2, 2)
    ascent.zero_small_contribution(50)(p, 0)
    assert p.flatten().tolist() == pytest.approx([0.9, 0.5, 0.1, 0.5])
    p = torch.tensor([-0.5, 1.5]).view(1, 1, 1, 2)
    ascent.clamp()(p, 0)
    assert p.flatten().tolist() == [0.0, 1.0]


def test_transforms_and_snapshots():
    gen = torch.Generator().manual_seed(0)
    img = torch.arange(16.0).view(1, 1, 4, 4)
    shifted = ascent.jitter(1)(img, gen)
    assert sorted(shifted.flatten().tolist()) == sorted(img.flatten().tolist())
    assert ascent.random_scale((2.0,))(img, gen).shape == (1, 1, 8, 8)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    r = ascent.ascend(model, ascent.channel("0", 1), ascent.Pixels.grey(1, 3, 12, 12), steps=10, snapshot_every=4,
                 transforms=[ascent.jitter(2)], progress=False)
    assert [s for s, _ in r.snapshots] == [0, 4, 8, 10] and len(r.history) == 10


def test_psnr_known_values():
    a = torch.zeros(1, 3, 4, 4)
    assert ascent.psnr(a, a) == math.inf
    assert ascent.psnr(a, a + 0.1) == pytest.approx(20.0)


def test_deepdream_raises_the_layer_norm(teaching):
    img = teaching.deprocess(teaching.preprocess(lk.teaching.load_sample()[0][:1]))
    layer = "relu3"
    before = hooks.activations(teaching.model, teaching.preprocess(img), layer)[layer].pow(2).mean()
    dream = ascent.deepdream(teaching.model, img, layer, teaching.preprocess, octaves=2, steps=10, lr=0.02,
                        jitter_px=2, progress=False)
    after = hooks.activations(teaching.model, teaching.preprocess(dream), layer)[layer].pow(2).mean()
    assert dream.shape == img.shape and 0 <= dream.min() and dream.max() <= 1 and after > 1.5 * before


class Counts(nn.Module):
    """A tiny classifier that counts its forward passes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()
        self.fc = nn.Linear(4, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(optimizer="rmsprop"), "optimizer must be 'adam', 'sgd' or 'lbfgs'"),
    (dict(steps=0), "steps must be a whole number >= 1"),
    (dict(lr=-1.0), "lr must be a finite number > 0"),
    (dict(snapshot_every=1.5), "snapshot_every"),
    (dict(objective=3), "objective must be an Objective"),
    (dict(param=torch.zeros(1, 3, 8, 8)), "param must be an image parameterisation"),
    (dict(param=ascent.Fourier(1, 8, 8), post=[ascent.clamp()]), "post-step operations act on raw pixels; use Pixels, not Fourier"),
    (dict(optimizer="lbfgs", post=[ascent.clamp()]), "L-BFGS"),
    (dict(transforms=[None]), "transforms must be a list of functions"),
    (dict(penalties=[0.1]), "penalties must be a list of functions"),
    (dict(preprocess="imagenet"), "preprocess must be a function or None"),
    (dict(objective=ascent.channel("conv7", 0)), "no layer 'conv7'"),
])
def test_every_argument_is_checked_before_the_first_forward(kwargs, message):
    model = Counts()
    args = {"objective": ascent.class_score(1), "param": ascent.Pixels.grey(1, 3, 8, 8), "steps": 3, "progress": False,
            **kwargs}
    with pytest.raises(ValueError, match=message):
        ascent.ascend(model, args.pop("objective"), args.pop("param"), **args)
    assert model.calls == 0 and hooks.count(model) == 0


def test_one_adam_step_is_the_textbook_update_and_the_global_rng_is_untouched():
    model = Counts()
    start = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    state = torch.get_rng_state()
    r = ascent.ascend(model, ascent.class_score(2), ascent.Pixels(start), lambda img: 2 * img - 1, steps=4, lr=0.01,
                 transforms=[ascent.jitter(1), ascent.random_scale((0.9, 1.0))], penalties=[ascent.l2(0.1)], post=[ascent.clamp()],
                 snapshot_every=2, seed=3, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    ascent.Pixels.noise(1, 3, 4, 4)
    ascent.Fourier(1, 4, 4)
    assert torch.equal(torch.get_rng_state(), state)
    # the same loop by hand: the transforms draw from a generator seeded with ``seed``
    gen = torch.Generator().manual_seed(3)
    img = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([img], lr=0.01)
    history = []
    for step in range(4):
        seen = ascent.random_scale((0.9, 1.0))(ascent.jitter(1)(img, gen), gen)
        x = 2 * seen - 1
        score = model(x)[:, 2]
        loss = -score.sum() + (0.1 * x.pow(2).flatten(1).mean(1)).sum()
        history.append(score.mean().item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            img.clamp_(0, 1)
    torch.testing.assert_close(r.image, img.detach())
    assert r.history == pytest.approx(history) and r.steps == 4 and len(r.seconds) == 4
    assert [s for s, _ in r.snapshots] == [0, 2, 4]
    torch.testing.assert_close(r.snapshots[0][1], start)


def test_lbfgs_counts_every_evaluation_as_a_step():
    model = Counts()
    r = ascent.ascend(model, ascent.class_score(0), ascent.Pixels.grey(1, 3, 8, 8), steps=6, lr=0.5, optimizer="lbfgs",
                 penalties=[ascent.l2(1.0)], snapshot_every=2, progress=False)
    assert r.steps == len(r.history) == len(r.seconds) == model.calls <= 6
    assert max(r.history) > r.history[0]
    assert [s for s, _ in r.snapshots] == [*range(0, r.steps, 2), r.steps]
