import math

import pytest
import torch
from torch import nn

from lecturekit import ascent as S
from lecturekit import hooks, teaching as T


def flags(model):
    return [p.requires_grad for p in model.parameters()], [m.training for m in model.modules()]


def test_class_score_rises_tenfold_and_model_restored(teaching):
    model = teaching.model
    model.fc.weight.requires_grad_(True)                   # a user's own flag must survive
    before = flags(model)
    r = S.ascend(model, S.class_score(3), S.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=100,
                 lr=0.05, penalties=[S.l2(1e-3)], progress=False)
    assert r.history[-1] >= 10 * abs(r.history[0]) and r.steps == 100
    assert flags(model) == before and hooks.count(model) == 0 and model.fc.weight.grad is None
    model.fc.weight.requires_grad_(False)


def test_bad_indices_and_layers_are_clear_and_restore(teaching):
    model = teaching.model
    model.train()
    before = flags(model)
    with pytest.raises(ValueError, match="class 12 is out of range: valid values are 0..9"):
        S.ascend(model, S.class_score(12), S.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=3)
    with pytest.raises(ValueError, match="channel of relu2 200 is out of range: valid values are 0..63"):
        S.ascend(model, S.channel("relu2", 200), S.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=3)
    with pytest.raises(ValueError, match="row of relu3 9 is out of range"):
        S.ascend(model, S.neuron("relu3", 1, (9, 0)), S.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=3)
    with pytest.raises(ValueError, match="no layer 'conv7'.*Valid layer names"):
        S.ascend(model, S.channel("conv7", 0), S.Pixels.zeros(1, 3, 28, 28), teaching.preprocess, steps=3)
    assert flags(model) == before and hooks.count(model) == 0
    model.eval()


class Explodes(nn.Module):
    def forward(self, x):
        raise AssertionError("the network should have stopped before this layer")


def test_forward_stops_after_the_last_needed_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Explodes())
    r = S.ascend(model, S.channel("0", 2), S.Pixels.noise(1, 3, 8, 8), steps=5, progress=False)
    assert r.history[-1] > r.history[0] and hooks.count(model) == 0


def test_objective_arithmetic():
    acts = {"a": torch.arange(8.0).view(1, 2, 2, 2)}
    logits = torch.tensor([[1.0, 5.0]])
    obj = S.class_score(1) + 2 * S.channel("a", 1) - S.neuron("a", 0, (1, 1))
    assert obj(acts, logits).item() == pytest.approx(5 + 2 * 5.5 - 3)
    assert obj.layers == ("a",) and obj.needs_logits
    target = torch.ones(1, 2, 2, 2)
    assert S.feature_match("a", target)({"a": target}, None).item() == 0
    assert S.layer_norm("a")(acts, None).item() == pytest.approx(sum(i * i for i in range(8)) / 8)


def test_fooling_succeeds_on_a_fixed_sample_with_a_small_change(teaching):
    imgs, labels = T.load_sample()
    imgs = imgs[:10].expand(-1, 3, -1, -1)
    for i in range(10):
        target = (int(labels[i]) + 1) % 10
        r = S.ascend(teaching.model, S.class_score(target), S.Pixels(imgs[i:i + 1]), teaching.preprocess,
                     steps=100, lr=0.005, post=[S.clamp()], until=lambda lg, t=target: lg.argmax(1).item() == t,
                     progress=False)
        assert teaching.model(teaching.preprocess(r.image)).argmax(1).item() == target and r.steps < 100
        assert (r.image - imgs[i:i + 1]).abs().max() < 0.2


def test_fgsm_accuracy_falls_with_epsilon(teaching):
    imgs, labels = T.load_sample()
    accs = []
    for eps in (0.0, 0.02, 0.05, 0.1):
        adv = S.fgsm(teaching.model, imgs, labels, eps, teaching.preprocess)
        assert (adv - imgs).abs().max() <= eps + 1e-6 and 0 <= adv.min() and adv.max() <= 1
        accs.append((teaching.model(teaching.preprocess(adv)).argmax(1) == labels).float().mean().item())
    assert accs[0] > 0.9 and all(a > b for a, b in zip(accs, accs[1:])) and accs[-1] < 0.2


def test_inversion_from_conv1_is_nearly_exact(teaching):
    imgs, _ = T.load_sample()
    target = imgs[:1].expand(-1, 3, -1, -1)
    feats = hooks.activations(teaching.model, teaching.preprocess(target), "conv1")["conv1"]
    r = S.ascend(teaching.model, S.feature_match("conv1", feats),
                 S.Pixels.noise(1, 3, 28, 28, generator=torch.Generator().manual_seed(0)), teaching.preprocess,
                 steps=300, lr=0.05, penalties=[S.tv(1e-3)], post=[S.clamp()], progress=False)
    seen = teaching.deprocess(teaching.preprocess(r.image))          # the luminance the model sees
    assert S.psnr(seen, teaching.deprocess(teaching.preprocess(target))) >= 30


def test_fourier_parameterisation():
    torch.manual_seed(0)
    p = S.Fourier(2, 16, 20, generator=torch.Generator().manual_seed(0))
    img = p.image()
    assert img.shape == (2, 3, 16, 20) and 0 < img.min() and img.max() < 1
    img.sum().backward()
    assert p.spectrum.grad is not None and p.spectrum.grad.abs().sum() > 0
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    r = S.ascend(model, S.channel("0", 0), S.Fourier(1, 16, 16), steps=30, lr=0.05, progress=False)
    assert r.history[-1] > r.history[0]
    with pytest.raises(ValueError, match="post-step operations act on raw pixels"):
        S.ascend(model, S.channel("1", 0), S.Fourier(1, 16, 16), steps=2, post=[S.clamp()], progress=False)


def test_post_step_operations_by_hand():
    const = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(S.gaussian_blur(const, 1.0), const)
    delta = torch.zeros(1, 1, 15, 15)
    delta[0, 0, 7, 7] = 1
    blurred = S.gaussian_blur(delta, 1.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5) and blurred[0, 0, 7, 7] < 0.2
    p = torch.full((1, 3, 2, 2), 0.9)
    S.decay(0.1)(p, 0)
    torch.testing.assert_close(p, torch.full((1, 3, 2, 2), 0.86))
    p = torch.tensor([0.5, 0.55, 0.9, 0.1]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    S.zero_small_values(50)(p, 0)
    assert p[0, 0].flatten().tolist() == pytest.approx([0.5, 0.5, 0.9, 0.1])
    p = torch.tensor([0.9, 0.9, 0.1, 0.1]).view(1, 1, 2, 2).clone()
    p.grad = torch.tensor([1.0, 0.01, 1.0, 0.01]).view(1, 1, 2, 2)
    S.zero_small_contribution(50)(p, 0)
    assert p.flatten().tolist() == pytest.approx([0.9, 0.5, 0.1, 0.5])
    p = torch.tensor([-0.5, 1.5]).view(1, 1, 1, 2)
    S.clamp()(p, 0)
    assert p.flatten().tolist() == [0.0, 1.0]


def test_transforms_and_snapshots():
    gen = torch.Generator().manual_seed(0)
    img = torch.arange(16.0).view(1, 1, 4, 4)
    shifted = S.jitter(1)(img, gen)
    assert sorted(shifted.flatten().tolist()) == sorted(img.flatten().tolist())
    assert S.random_scale((2.0,))(img, gen).shape == (1, 1, 8, 8)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    r = S.ascend(model, S.channel("0", 1), S.Pixels.grey(1, 3, 12, 12), steps=10, snapshot_every=4,
                 transforms=[S.jitter(2)], progress=False)
    assert [s for s, _ in r.snapshots] == [0, 4, 8, 10] and len(r.history) == 10


def test_psnr_known_values():
    a = torch.zeros(1, 3, 4, 4)
    assert S.psnr(a, a) == math.inf
    assert S.psnr(a, a + 0.1) == pytest.approx(20.0)


def test_deepdream_raises_the_layer_norm(teaching):
    img = teaching.deprocess(teaching.preprocess(T.load_sample()[0][:1]))
    layer = "relu3"
    before = hooks.activations(teaching.model, teaching.preprocess(img), layer)[layer].pow(2).mean()
    dream = S.deepdream(teaching.model, img, layer, teaching.preprocess, octaves=2, steps=10, lr=0.02,
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
    (dict(param=S.Fourier(1, 8, 8), post=[S.clamp()]), "post-step operations act on raw pixels; use Pixels, not Fourier"),
    (dict(optimizer="lbfgs", post=[S.clamp()]), "L-BFGS"),
    (dict(transforms=[None]), "transforms must be a list of functions"),
    (dict(penalties=[0.1]), "penalties must be a list of functions"),
    (dict(preprocess="imagenet"), "preprocess must be a function or None"),
    (dict(objective=S.channel("conv7", 0)), "no layer 'conv7'"),
])
def test_every_argument_is_checked_before_the_first_forward(kwargs, message):
    model = Counts()
    args = {"objective": S.class_score(1), "param": S.Pixels.grey(1, 3, 8, 8), "steps": 3, "progress": False,
            **kwargs}
    with pytest.raises(ValueError, match=message):
        S.ascend(model, args.pop("objective"), args.pop("param"), **args)
    assert model.calls == 0 and hooks.count(model) == 0


def test_one_adam_step_is_the_textbook_update_and_the_global_rng_is_untouched():
    model = Counts()
    start = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    state = torch.get_rng_state()
    r = S.ascend(model, S.class_score(2), S.Pixels(start), lambda img: 2 * img - 1, steps=4, lr=0.01,
                 transforms=[S.jitter(1), S.random_scale((0.9, 1.0))], penalties=[S.l2(0.1)], post=[S.clamp()],
                 snapshot_every=2, seed=3, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    S.Pixels.noise(1, 3, 4, 4)
    S.Fourier(1, 4, 4)
    assert torch.equal(torch.get_rng_state(), state)
    # the same loop by hand: the transforms draw from a generator seeded with ``seed``
    gen = torch.Generator().manual_seed(3)
    img = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([img], lr=0.01)
    history = []
    for step in range(4):
        seen = S.random_scale((0.9, 1.0))(S.jitter(1)(img, gen), gen)
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
    r = S.ascend(model, S.class_score(0), S.Pixels.grey(1, 3, 8, 8), steps=6, lr=0.5, optimizer="lbfgs",
                 penalties=[S.l2(1.0)], snapshot_every=2, progress=False)
    assert r.steps == len(r.history) == len(r.seconds) == model.calls <= 6
    assert max(r.history) > r.history[0]
    assert [s for s, _ in r.snapshots] == [*range(0, r.steps, 2), r.steps]
