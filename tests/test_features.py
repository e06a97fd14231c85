import pytest
import torch

from lecturekit import features, gallery, hooks, plotting


def test_extract_batches_equal_one_pass(tiny_cnn):
    imgs = torch.rand(10, 3, 8, 8)
    out = features.extract(tiny_cnn, imgs, ["1", "4"], batch_size=3, reduce=features.global_average)
    with torch.no_grad():
        full = tiny_cnn[:2](imgs)
    torch.testing.assert_close(out["1"], full.mean((2, 3)))
    assert out["4"].shape == (10, 2) and hooks.count(tiny_cnn) == 0
    with pytest.raises(ValueError, match="no layer 'x'"):
        features.extract(tiny_cnn, imgs, "x")


def test_spatial_max_positions():
    act = torch.zeros(1, 2, 3, 4)
    act[0, 0, 2, 1] = 5
    act[0, 1, 0, 3] = 7
    v, r, c = features.spatial_max(act)
    assert v.tolist() == [[5, 7]] and r.tolist() == [[2, 0]] and c.tolist() == [[1, 3]]
    with pytest.raises(ValueError, match="spatial_max"):
        features.spatial_max(torch.zeros(2, 3))


def test_layer_cache_runs_once_per_layer(tiny_cnn):
    cache = features.LayerCache(tiny_cnn, torch.rand(5, 3, 8, 8), reduce=features.global_average)
    cache.prefetch(["1", "3"])
    a = cache("1")
    assert cache("1") is a and cache.runs == 1
    cache("4")
    assert cache.runs == 2


def test_nearest_on_a_constructed_gallery():
    gallery_ = torch.tensor([[0.0, 0], [1, 0], [5, 5], [0, 2], [10, 0]])
    assert features.nearest(torch.tensor([0.9, 0.1]), gallery_, k=3).tolist() == [1, 0, 3]
    assert features.nearest(gallery_[1], gallery_, k=2, exclude=1).tolist() == [0, 3]
    # cosine: direction only
    assert features.nearest(torch.tensor([3.0, 0]), gallery_[1:], k=2, metric="cosine").tolist() == [0, 3]
    with pytest.raises(ValueError, match="k must be between"):
        features.nearest(gallery_[0], gallery_, k=6)
    with pytest.raises(ValueError, match="metric"):
        features.nearest(gallery_[0], gallery_, metric="manhattan")


def test_knn_accuracy_known_answers():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(20, 3, generator=gen) * 0.1
    b = torch.randn(20, 3, generator=gen) * 0.1 + 5
    feats, labels = torch.cat([a, b]), torch.tensor([0] * 20 + [1] * 20)
    assert features.knn_accuracy(feats, labels, k=5) == 1.0
    swapped = labels.clone()
    swapped[0] = 1                                   # one mislabelled point is outvoted by its neighbours
    assert features.knn_accuracy(feats, swapped, k=5) == pytest.approx(39 / 40)
    # k=2 with a 1-1 tie: the nearer neighbour decides
    line = torch.tensor([[0.0], [1.0], [3.0]])
    assert features.knn_accuracy(line, torch.tensor([0, 0, 1]), k=2) == pytest.approx(2 / 3)


def test_photo_gallery_offline():
    imgs, labels, names = gallery.photo_crops(size=32, per_photo=3, photos=["chelsea", "coffee"])
    assert imgs.shape == (6, 3, 32, 32) and labels.tolist() == [0, 0, 0, 1, 1, 1] and names == ["chelsea", "coffee"]
    again, _, _ = gallery.photo_crops(size=32, per_photo=3, photos=["chelsea", "coffee"])
    assert torch.equal(imgs, again)                  # seeded


def test_gallery_falls_back_offline(capsys):
    imgs, labels, names = gallery.load(size=16, per_photo=1, online_n=100)
    assert len(imgs) == len(gallery.PHOTOS) and "offline gallery" in capsys.readouterr().out


def test_cifar_gallery_online_path(monkeypatch, tmp_path):
    import numpy as np
    import torchvision.datasets

    class FakeCIFAR:
        def __init__(self, root, train, download):
            assert download and not train
            self.data = np.random.default_rng(0).integers(0, 255, (50, 32, 32, 3), dtype=np.uint8)
            self.targets = list(range(10)) * 5
            self.classes = [f"c{i}" for i in range(10)]
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR)
    imgs, labels, names = gallery.cifar10(n=20, size=48, root=tmp_path)
    assert imgs.shape == (20, 3, 48, 48) and 0 <= imgs.min() and imgs.max() <= 1 and len(names) == 10


def test_normalize_channels_keras_recipe():
    act = torch.stack([torch.tensor([[0.0, 2.0], [0.0, 2.0]]), torch.full((2, 2), 3.0)])
    out = plotting.normalize_channels(act)
    # channel 0: mean 1, std 1.1547 -> 0.5 -+ 0.25/1.1547
    torch.testing.assert_close(out[0, 0], torch.tensor([0.5 - 0.25 / 1.1547, 0.5 + 0.25 / 1.1547]), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], torch.full((2, 2), 0.5))            # a constant channel is mid-grey


def test_activation_grid_and_scatters():
    fig = plotting.activation_grid(torch.rand(1, 10, 5, 5), ncols=4)
    assert sum(bool(a.get_images()) for a in fig.axes) == 10
    fig = plotting.activation_grid(torch.rand(10, 5, 5), channels=[3, 1])
    assert [a.get_title() for a in fig.axes if a.get_images()] == ["3", "1"]
    with pytest.raises(ValueError, match="C, H, W"):
        plotting.activation_grid(torch.rand(5, 5))
    fig = plotting.scatter_by_class(torch.rand(6, 2), [0, 1, 2, 0, 1, 2], ["a", "b", "c"], title="t")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b", "c"]
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fig = plotting.thumbnail_scatter(corners, torch.rand(4, 1, 8, 8), labels=[0, 1, 0, 1], title="x")
    assert len(fig.axes[0].artists) == 4 and fig.axes[0].get_title() == "x (4 of 4 shown as images)"
    crowded = torch.cat([corners, corners + 0.001])         # each a hair from one already drawn
    fig = plotting.thumbnail_scatter(crowded, torch.rand(8, 1, 8, 8), labels=[0, 1, 0, 1] * 2, title="x")
    assert len(fig.axes[0].artists) == 4 and len(fig.axes[0].collections[0].get_offsets()) == 8   # every point a dot
    with pytest.raises(ValueError, match="3 points but 4 images"):
        plotting.thumbnail_scatter(torch.rand(3, 2), torch.rand(4, 1, 8, 8))


def test_bundle_stages_and_feature_layer(teaching):
    assert teaching.stages == ["relu1", "relu2", "relu3", "relu4"] and teaching.feature_layer == "gap"
    for layer in teaching.stages + [teaching.feature_layer]:
        hooks.get_layer(teaching.model, layer)


def test_gallery_for_model(teaching):
    imgs, labels, names = gallery.for_model(teaching, n=30)
    assert imgs.shape == (30, 1, 28, 28) and names[0] == "T-shirt/top" and labels[:10].tolist() == list(range(10))


def test_examples_for_model(teaching):
    imgs, captions = gallery.examples(teaching, n=3)
    assert imgs.shape == (3, 1, 28, 28) and captions[1].startswith("Trouser")
    with pytest.raises(ValueError, match="at most 6"):
        class Fake:
            name, input_size = "squeezenet1_1", 32
        gallery.examples(Fake(), n=9)
