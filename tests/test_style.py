import pytest
import torch

from lecturekit import ascent, hooks, style as S
from lecturekit.texture import efros_leung


def test_gram_symmetric_psd_and_explicit_sum():
    f = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    g = S.gram(f)
    assert g.shape == (2, 4, 4)
    torch.testing.assert_close(g, g.transpose(1, 2))
    assert (torch.linalg.eigvalsh(g) > -1e-5).all()
    explicit = torch.zeros(4, 4)
    for i in range(4):
        for j in range(4):
            explicit[i, j] = sum(f[0, i, y, x] * f[0, j, y, x] for y in range(3) for x in range(5)) / 15
    torch.testing.assert_close(g[0], explicit)
    # divided by H W: tiling the map leaves it unchanged
    torch.testing.assert_close(S.gram(f.repeat(1, 1, 2, 2)), g)


@pytest.fixture(scope="module")
def net():
    return S.feature_net("vgg16-random", last="relu3_1")


def test_feature_net_names_and_truncation(net):
    assert list(dict(net.model.named_children()))[-1] == "relu3_1" and not net.pretrained
    assert not any(p.requires_grad for p in net.model.parameters())
    with pytest.raises(ValueError, match="unknown VGG-16 layer 'relu9_9'"):
        S.feature_net("vgg16-random", last="relu9_9")
    with pytest.raises(ValueError, match="source must be"):
        S.feature_net("alexnet")


def test_style_loss_zero_for_identical_images(net):
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    obj = S.style_objective(net, img, ["relu1_1", "relu2_1"])
    acts, _ = ascent.forward(net.model, net.preprocess(img), list(obj.layers), False)
    assert obj(acts, None).abs().item() < 1e-10
    other = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    acts, _ = ascent.forward(net.model, net.preprocess(other), list(obj.layers), False)
    assert obj(acts, None).item() < -1e-4


def test_mix_interpolates_gram_targets(net):
    a, b = torch.rand(2, 1, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    ta, tb = S.style_targets(net, [a], ["relu1_1"]), S.style_targets(net, [b], ["relu1_1"])
    mixed = S.style_targets(net, [a, b], ["relu1_1"], mix=[3, 1])
    torch.testing.assert_close(mixed["relu1_1"], 0.75 * ta["relu1_1"] + 0.25 * tb["relu1_1"])
    with pytest.raises(ValueError, match="2 style images but 1 mix weights"):
        S.style_targets(net, [a, b], ["relu1_1"], mix=[1])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_texture_loss_falls_by_a_factor(net, optimizer):
    exemplar = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 0.5
    r = S.synthesize(net, exemplar, 32, steps=20, layers=["relu1_1", "relu2_1"], optimizer=optimizer,
                     progress=False)
    assert -r.history[-1] < -r.history[0] / 5 and hooks.count(net.model) == 0


def test_transfer_with_zero_style_weight_is_feature_inversion(net):
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    r = S.transfer(net, content, content, steps=3, style_weight=0.0, tv_weight=0, content_layer="relu2_1",
                   layers=["relu1_1"], progress=False)
    assert r.history[0] == pytest.approx(0.0, abs=1e-8)        # starting at the content: nothing to fix
    with pytest.raises(ValueError, match="init must be"):
        S.transfer(net, content, content, steps=1, init="grey", layers=["relu1_1"])


def test_efros_leung_reproduces_a_period():
    stripes = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]).repeat(8)[None, None, :].expand(3, 20, -1).clone()
    out = efros_leung(stripes, (12, 20), window=5, eps=0.0, progress=False)
    assert out.shape == (3, 12, 20)
    torch.testing.assert_close(out[..., 5:], out[..., :-5])          # period 5, as in the exemplar
    assert set(out.unique().tolist()) <= set(stripes.unique().tolist())


def test_efros_leung_bad_input():
    with pytest.raises(ValueError, match="odd"):
        efros_leung(torch.rand(1, 20, 20), (5, 5), window=4)
    with pytest.raises(ValueError, match="larger than the window"):
        efros_leung(torch.rand(1, 8, 8), (5, 5), window=7)


def test_lbfgs_refuses_until(net):
    with pytest.raises(ValueError, match="until="):
        ascent.ascend(net.model, ascent.channel("relu1_1", 0), ascent.Pixels.grey(1, 3, 8, 8), steps=1,
                      optimizer="lbfgs", until=lambda logits: True)


def test_lbfgs_counts_evaluations_and_refuses_post(net):
    r = ascent.ascend(net.model, ascent.channel("relu1_1", 3), ascent.Pixels.grey(1, 3, 16, 16), net.preprocess,
                      steps=7, optimizer="lbfgs", lr=1.0, snapshot_every=3, progress=False)
    assert r.steps == len(r.history) <= 7 and [s for s, _ in r.snapshots][:1] == [0]
    with pytest.raises(ValueError, match="post-step operations"):
        ascent.ascend(net.model, ascent.channel("relu1_1", 0), ascent.Pixels.grey(1, 3, 8, 8), steps=1,
                      optimizer="lbfgs", post=[ascent.clamp()])
