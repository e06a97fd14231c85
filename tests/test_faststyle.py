import pytest
import torch
import torch.nn.functional as F

from lecturekit import faststyle, hooks, images, style

# the shipped (bilinear) network measures 0.006-0.020; trained with nearest upsampling 0.061-0.080; a photo 0.007
GRID_LIMIT = 0.04


def _randomize_norms(net, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in net.norms():
            norm.gamma.copy_(1 + 0.5 * torch.randn(norm.gamma.shape, generator=gen))
            norm.beta.copy_(0.5 * torch.randn(norm.beta.shape, generator=gen))
        net.out.weight.normal_(0, 0.05, generator=gen)


@pytest.fixture
def cin():
    torch.manual_seed(0)
    net = faststyle.TransformNet(n_styles=3, width=4, blocks=1).eval()
    _randomize_norms(net)
    return net


def test_output_keeps_the_size_and_range():
    net = faststyle.TransformNet(1, width=4, blocks=1)
    x = torch.rand(2, 3, 24, 36)
    y = net(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 3, 30, 30))


def test_instance_norm_matches_torch_and_hand_formula():
    norm = faststyle.ConditionalInstanceNorm(2, n_styles=2)
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([[2.0, 3.0], [0.5, 1.0]]))
        norm.beta.copy_(torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
    x = torch.randn(1, 2, 5, 5)
    z = (x - x.mean((2, 3), keepdim=True)) / (x.var((2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
    out = norm(x, torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(out, z * torch.tensor([2.0, 3.0])[:, None, None] + torch.tensor([1.0, -1.0])[:, None, None])
    ref = torch.nn.InstanceNorm2d(2, affine=True)
    with torch.no_grad():
        ref.weight.copy_(norm.gamma[1])
        ref.bias.copy_(norm.beta[1])
    torch.testing.assert_close(norm(x, torch.tensor([[0.0, 1.0]])), ref(x))


def test_one_hot_style_equals_the_single_style_network(cin):
    x = torch.rand(2, 3, 16, 16)
    for s in range(3):
        single = cin.single(s)
        assert single.n_styles == 1
        torch.testing.assert_close(cin(x, style=s), single(x), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(cin(x, style=0), cin(x, style=1))


def test_blend_weights_interpolate_the_normalisation_parameters(cin):
    w = [0.2, 0.5, 0.3]
    for norm in cin.norms():
        gamma, beta = norm.params(torch.tensor([w]))
        torch.testing.assert_close(gamma[0], sum(wi * norm.gamma[i] for i, wi in enumerate(w)))
        torch.testing.assert_close(beta[0], sum(wi * norm.beta[i] for i, wi in enumerate(w)))
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(cin(x, style=w), cin.single(w)(x), atol=1e-6, rtol=1e-5)
    # endpoints of a blend slider are the pure styles
    torch.testing.assert_close(cin(x, style=[0.0, 1.0, 0.0]), cin(x, style=1))


def test_style_argument_errors(cin):
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="knows 3 styles"):
        cin(x)
    with pytest.raises(ValueError, match="style index 3 out of range 0..2"):
        cin(x, style=3)
    with pytest.raises(ValueError, match="2 style weights for a network of 3 styles"):
        cin(x, style=[0.5, 0.5])


def test_training_lowers_the_loss_and_leaves_the_feature_net_as_it_was(tmp_path):
    feats = style.feature_net("random-multiscale", last="relu7")
    styles = [images.load(name, size=48) for name in ("flower", "coffee")]
    with torch.random.fork_rng():
        torch.manual_seed(0)                                         # the network's initialisation
        net = faststyle.TransformNet(2, width=8, blocks=1)
    photos = next(faststyle.photo_batches(32, 4, seed=1))                   # a fixed batch to measure on
    targets = [style.style_targets(feats, [img]) for img in styles]

    def loss(s):
        with torch.no_grad():
            return sum(faststyle.loss_terms(feats, net(photos, style=s), photos, targets[s], 1.0, 10.0, 1e-3).values())
    before = [loss(s) for s in range(2)]
    history = faststyle.train(net, feats, styles, steps=60, size=32, batch=4, progress=False)
    assert len(history) == 60 and [h["index"] for h in history[:4]] == [0, 1, 0, 1]
    for s in range(2):
        assert loss(s) < before[s] / 2                               # at least halved in 30 steps each
    assert hooks.count(feats.model) == 0 and not any(p.requires_grad for p in feats.model.parameters())
    assert not net.training
    with pytest.raises(ValueError, match="2 style\\(s\\) but 1 style image"):
        faststyle.train(net, feats, styles[:1], steps=1)
    path = faststyle.save(net, tmp_path / "n.pt", {"styles": ["a", "b"]})
    again, meta = faststyle.load(path)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(again(x, style=1), net(x, style=1))
    assert meta == {"styles": ["a", "b"]}
    with pytest.raises(FileNotFoundError, match="no fast-style weights at"):
        faststyle.load(tmp_path / "missing.pt")


def test_an_interrupted_training_leaves_both_networks_as_they_were(monkeypatch):
    feats = style.feature_net("random-multiscale", last="relu3")
    net = faststyle.TransformNet(1, width=4, blocks=1)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(faststyle, "loss_terms", broken)
    with pytest.raises(KeyboardInterrupt):
        faststyle.train(net, feats, [images.load("flower", size=40)], steps=3, size=16, batch=1, progress=False)
    assert not net.training and hooks.count(feats.model) == 0
    assert not feats.model.training and not any(p.requires_grad for p in feats.model.parameters())


def test_a_batch_of_different_styles_normalises_each_image_with_its_own_parameters(cin):
    norm = cin.norms()[0]
    x = torch.randn(2, norm.gamma.shape[1], 6, 6)
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    out = norm(x, weights)
    for i in range(2):                               # the same as each image alone, by the hand formula
        gamma, beta = norm.params(weights[i:i + 1])
        z = F.instance_norm(x[i:i + 1])
        torch.testing.assert_close(out[i:i + 1], z * gamma[:, :, None, None] + beta[:, :, None, None])


def test_training_leaves_the_global_rng_alone_and_repeats_with_the_same_seed():
    feats = style.feature_net("random-multiscale", last="relu3")
    start = faststyle.TransformNet(1, width=4, blocks=1).state_dict()
    nets = [faststyle.TransformNet(1, width=4, blocks=1) for _ in range(2)]
    state = torch.random.get_rng_state()
    for net in nets:
        net.load_state_dict(start)
        faststyle.train(net, feats, [images.load("flower", size=40)], steps=2, size=16, batch=1, seed=5, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b)


def test_grid_artefact_sees_nearest_upsampling_and_not_a_photo():
    photo = images.load("astronaut", size=96)
    blocky = F.interpolate(F.avg_pool2d(photo, 2), scale_factor=2, mode="nearest")
    assert faststyle.grid_artefact(photo, photo).item() < 0.02
    assert faststyle.grid_artefact(blocky, photo).item() > 0.5
    both = faststyle.grid_artefact(torch.cat([photo, blocky]), torch.cat([photo, photo]))
    assert both.shape == (2,) and both[0] < 0.02 < 0.5 < both[1]
    with pytest.raises(ValueError, match="same shape"):
        faststyle.grid_artefact(photo, photo[..., :8])


def test_the_shipped_network_leaves_no_upsampling_grid():
    net, meta = faststyle.load()
    assert net.upsample == meta["upsample"] == "bilinear"
    photo = images.load("astronaut", size=96)
    with torch.no_grad():
        grid = [faststyle.grid_artefact(net(photo, style=s), photo).item() for s in range(net.n_styles)]
    assert max(grid) < GRID_LIMIT, grid


def test_the_shipped_network_learned_the_paintings_on_vgg19():
    from lecturekit import train_faststyle
    net, meta = faststyle.load()
    assert meta["styles"] == train_faststyle.STYLES == ["starry_night", "the_scream"] and net.n_styles == 2
    assert "original VGG-19" in meta["features"] and meta["pooling"] == "avg"
    for name in meta["styles"]:                       # each at least halves over training
        assert meta["loss_last10"][name] < meta["loss_first10"][name] / 2, meta
    photo = images.load("astronaut", size=64)
    with torch.no_grad():
        a, b = net(photo, style=0), net(photo, style=1)
    assert (a - b).abs().mean() > 0.05                 # two styles, not one network twice


def test_the_upsampling_is_saved_and_older_files_load_as_nearest(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    for mode in faststyle.TransformNet.UPSAMPLING:
        net = faststyle.TransformNet(2, width=4, blocks=1, upsample=mode).eval()
        _randomize_norms(net)
        again, _ = faststyle.load(faststyle.save(net, tmp_path / f"{mode}.pt"))
        assert again.upsample == mode == net.single(1).upsample
        torch.testing.assert_close(again(x, style=1), net(x, style=1))
    ckpt = torch.load(tmp_path / "nearest.pt", weights_only=True)
    del ckpt["upsample"]                                        # as saved before the choice existed
    torch.save(ckpt, tmp_path / "old.pt")
    old, _ = faststyle.load(tmp_path / "old.pt")
    torch.testing.assert_close(old(x, style=1), net(x, style=1))
    bilinear = faststyle.TransformNet(2, width=4, blocks=1).eval()
    bilinear.load_state_dict(net.state_dict())
    assert not torch.allclose(bilinear(x, style=1), net(x, style=1))  # the choice changes the function
    with pytest.raises(ValueError, match="upsample must be one of"):
        faststyle.TransformNet(upsample="transposed")
