import copy
import socket

import pytest
import torch
from torch import nn

from lecturekit import __main__ as cli
from lecturekit import ascent, features, hooks, teaching, weights, zoo
from lecturekit import attribution
from standins import write_standins


def _no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the network was touched")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_teaching_bundle_is_ready_and_accurate(teaching):
    model = teaching.model
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(not getattr(m, "inplace", False) for m in model.modules())
    assert teaching.classes == teaching_classes() and teaching.input_size == 28
    images, labels = teaching_sample()
    with torch.no_grad():
        acc = (model(teaching.preprocess(images)).argmax(1) == labels).float().mean().item()
    assert acc >= 0.88, acc                      # the full test set scores >= 91%
    assert teaching.info["test_accuracy"] >= 0.91
    assert "Fashion-MNIST" in teaching.description and hooks.count(model) == 0


def teaching_classes():
    return list(teaching.CLASSES)


def teaching_sample():
    return teaching.load_sample()


def test_predict_returns_sorted_probabilities(teaching):
    images, labels = teaching_sample()
    top = teaching.predict(images[:1], k=3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    assert top[0][0] == teaching.classes[labels[0]]


def test_unknown_name_lists_valid():
    with pytest.raises(ValueError) as err:
        zoo.load("resnet1000")
    assert "resnet1000" in str(err.value) and "squeezenet1_1" in str(err.value) and "teaching" in str(err.value)


def test_offline_missing_weights_is_a_clear_message(monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(zoo.WeightsUnavailable) as err:
        zoo.load("alexnet")
    msg = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in msg and "233 MB" in msg and "python -m lecturekit download alexnet" in msg
    assert str(weights.checkpoint_dir()) in msg


def test_unreachable_server_is_quick_clear_message(monkeypatch):
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    def unreachable(*a, **k):
        raise OSError("Name or service not known")
    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(zoo.WeightsUnavailable, match="cannot be reached"):
        weights.download("resnet18")


def test_auto_offline_is_efficientnet_lite0_without_the_network(monkeypatch, capsys):
    _no_network(monkeypatch)
    bundle = zoo.load("auto")
    assert bundle.name == "efficientnet_lite0" and bundle.verified and capsys.readouterr().out == ""


def test_standin_weights_load_offline(monkeypatch, standin_home):
    _no_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)
    monkeypatch.setattr(torch, "load", spy)
    bundle = zoo.load("squeezenet1_1")
    assert bundle.name == "squeezenet1_1" and seen["weights_only"] is True
    assert len(bundle.classes) == 1000 and bundle.classes[281] == "tabby" and bundle.input_size == 224
    assert bundle.info["checksum_ok"] is False and "stand-in" in bundle.description
    assert not any(p.requires_grad for p in bundle.model.parameters()) and not bundle.model.training
    assert all(not getattr(m, "inplace", False) for m in bundle.model.modules())
    x = bundle.preprocess(torch.rand(1, 3, 224, 224))
    assert bundle.model(x).shape == (1, 1000)
    img = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(bundle.deprocess(bundle.preprocess(img)), img)
    assert zoo.available("alexnet") and not zoo.available("vgg16")


def test_damaged_or_wrong_file_is_a_clear_message(monkeypatch, tmp_path):
    _no_network(monkeypatch)
    path = weights.weights_path("squeezenet1_1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(zoo.WeightsUnavailable, match="(?s)damaged.*Delete it"):
        zoo.load("squeezenet1_1")
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(zoo.WeightsUnavailable, match="does not hold squeezenet1_1"):
        zoo.load("squeezenet1_1")


class NotWeights:
    pass


def test_pickled_objects_are_refused(monkeypatch):
    path = weights.weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save({"obj": NotWeights()}, path)
    with pytest.raises(zoo.WeightsUnavailable, match="damaged"):
        zoo.load("resnet18")


def test_download_path_online(monkeypatch):
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    monkeypatch.setattr(weights, "reachable", lambda url, timeout=3.0: True)
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix, progress))
        torch.manual_seed(0)
        from torchvision.models import get_model
        torch.save(get_model("squeezenet1_1").state_dict(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    bundle = zoo.load("squeezenet1_1")
    assert calls == [("https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth", "b8a52dc0", True)]
    assert bundle.weights_file == weights.weights_path("squeezenet1_1") and weights.is_cached("squeezenet1_1")
    zoo.load("squeezenet1_1")
    assert len(calls) == 1                        # cached now: no second download


def test_cli_download_and_info(monkeypatch, capsys, standin_home):
    _no_network(monkeypatch)
    assert cli.main(["download", "nonsense"]) == 2
    assert "Valid: efficientnet_lite0, squeezenet1_1" in capsys.readouterr().err
    assert cli.main(["download", "vgg16"]) == 1
    assert "python -m lecturekit download vgg16" in capsys.readouterr().err
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    assert cli.main(["download", "alexnet"]) == 0
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "alexnet" in out and "cached" in out and "vgg16" in out and "missing" in out


def test_checksum_ok_compares_the_published_prefix(monkeypatch, tmp_path):
    import hashlib
    data = b"weights" * 1000
    prefix = hashlib.sha256(data).hexdigest()[:8]
    good, bad = tmp_path / f"net-{prefix}.pth", tmp_path / "net-00000000.pth"
    good.write_bytes(data)
    bad.write_bytes(data)
    monkeypatch.setattr(weights, "weights_path", lambda name: good)
    assert weights.checksum_ok("x") is True
    monkeypatch.setattr(weights, "weights_path", lambda name: bad)
    assert weights.checksum_ok("x") is False


def test_reachable_probes_a_local_server_and_never_offline(monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/w.pth"
    try:
        assert weights.reachable(url) is False            # offline mode: not even tried
        monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
        assert weights.reachable(url, timeout=2) is True
    finally:
        server.close()
    assert weights.reachable(url, timeout=2) is False


def test_blank_is_black_for_teaching(teaching):
    assert teaching.blank == pytest.approx(float(teaching.preprocess(torch.zeros(1, 1, 1, 1))))
    assert float(teaching.deprocess(torch.full((1, 1, 1, 1), teaching.blank))[0, 0]) == pytest.approx(0.0, abs=1e-6)


def test_obtainable_offline_only_when_cached(monkeypatch, standin_home):
    _no_network(monkeypatch)
    assert not weights.obtainable("alexnet")
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    assert weights.obtainable("alexnet") and not weights.obtainable("vgg16")


def test_imagenet_weights_load_exactly_without_a_random_init(standin_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    bundle = zoo.load("squeezenet1_1")
    state = torch.load(weights.weights_path("squeezenet1_1"), weights_only=True)
    loaded = bundle.model.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert not any(t.is_meta for t in [*bundle.model.parameters(), *bundle.model.buffers()])


def test_preprocess_moves_images_to_the_model_device_and_dtype(teaching):
    img = torch.rand(2, 3, 28, 28)
    teaching.model.double()
    x = teaching.preprocess(img)
    assert x.dtype == torch.float64 and x.device == teaching.device
    torch.testing.assert_close(x, zoo.teaching.preprocess(img.double()))
    assert teaching.predict(img[:1], k=1)[0][0] in teaching.classes


# ---------------------------------------------------------------- any torchvision model


def test_any_torchvision_name_loads_with_its_weights_classes_size_and_normalisation(monkeypatch, tmp_path):
    from torchvision.models import get_model_weights
    _no_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    name = "mobilenet_v3_small"
    assert name not in zoo.NAMES and zoo.known(name) and not zoo.available(name)
    write_standins(tmp_path, (name,))
    assert zoo.available(name) and weights.weights_path(name).name == "mobilenet_v3_small-047dcff4.pth"
    bundle = zoo.load(name)
    published = get_model_weights(name).DEFAULT
    prep = published.transforms()
    assert bundle.classes == published.meta["categories"] and bundle.input_size == prep.crop_size[0] == 224
    assert bundle.info["resize_size"] == 256 and bundle.info["checksum_ok"] is False
    img = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    mean, std = torch.tensor(prep.mean).view(1, 3, 1, 1), torch.tensor(prep.std).view(1, 3, 1, 1)
    torch.testing.assert_close(bundle.normalise(img), (img - mean.double()) / std.double())
    assert not bundle.model.training and not any(p.requires_grad for p in bundle.model.parameters())
    assert all(not getattr(m, "inplace", False) for m in bundle.model.modules())
    assert bundle.model(bundle.preprocess(torch.rand(1, 3, 224, 224))).shape == (1, 1000)
    assert bundle.stages == ["features.0", "features.1", "features.3", "features.8", "features"]
    assert bundle.feature_layer == "classifier.1" and bundle.blank == 0.0 and not bundle.verified


def test_input_size_and_normalisation_come_from_the_weights(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from torchvision.transforms._presets import ImageClassification
    _no_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    write_standins(tmp_path, ("mobilenet_v3_small",))
    real = weights.published

    def other_preset(name):
        w = real(name)
        prep = ImageClassification(crop_size=160, resize_size=176, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        return SimpleNamespace(url=w.url, meta=w.meta, transforms=lambda: prep)
    monkeypatch.setattr(weights, "published", other_preset)
    bundle = zoo.load("mobilenet_v3_small")
    assert bundle.input_size == 160 and bundle.info["resize_size"] == 176
    torch.testing.assert_close(bundle.normalise(torch.full((1, 3, 2, 2), 0.75)), torch.ones(1, 3, 2, 2))
    torch.testing.assert_close(bundle.deprocess(torch.ones(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 0.75))


def test_uncached_torchvision_model_offline_is_a_clear_message(monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(zoo.WeightsUnavailable) as err:
        zoo.load("efficientnet_b0")
    msg = str(err.value)
    assert weights.weights_path("efficientnet_b0").name in msg and "20 MB" in msg
    assert "python -m lecturekit download efficientnet_b0" in msg and "zoo.load('teaching')" in msg


@pytest.mark.parametrize("name, closest", [("resnet1000", "resnet101"), ("mobilenet_v3", "mobilenet_v3_small"),
                                           ("Teaching", "teaching")])
def test_wrong_names_list_the_closest_and_the_valid_ones(name, closest):
    with pytest.raises(ValueError) as err:
        zoo.load(name)
    msg = str(err.value)
    assert f"Unknown model {name!r}" in msg and closest in msg.split("Valid names")[0]
    assert "Valid names: auto, teaching, efficientnet_lite0, squeezenet1_1" in msg and "list_models" in msg
    with pytest.raises(ValueError, match="not a torchvision ImageNet model.*Closest: resnet101"):
        weights.weights_path("resnet1000")


def test_layout_finds_the_hand_chosen_layers(teaching):
    from torchvision.models import get_model
    x = torch.zeros(1, 3, 224, 224)
    resnet = zoo.prepare(get_model("resnet18", weights=None))
    assert zoo.layout(resnet, x) == (zoo.STAGES["resnet18"], "avgpool", 1000)
    for name in ("alexnet", "squeezenet1_1"):
        stages, feature, _ = zoo.layout(zoo.prepare(get_model(name, weights=None)), x)
        assert feature == zoo.FEATURE_LAYER[name] and stages[:2] == zoo.STAGES[name][:2]
    stages, feature, n = zoo.layout(teaching.model, teaching.preprocess(torch.zeros(1, 3, 28, 28)))
    assert feature == "gap" and n == 10 and set(stages) <= set(zoo.STAGES["teaching"]) and len(stages) == 3


def test_layout_reads_channels_last_maps_as_swin_gives_them():
    from torchvision.models import get_model
    swin = zoo.prepare(get_model("swin_t", weights=None))
    stages, feature, n = zoo.layout(swin, torch.zeros(1, 3, 224, 224))
    # (N, H, W, C) stages at 56, 28, 14 px, then the 7 px map, last as the (N, C, H, W) that pooling reads
    assert stages == ["features.1", "features.3", "features.5", "permute"] and n == 1000, stages
    assert zoo._map_size(torch.zeros(1, 56, 56, 96), torch.zeros(1, 3, 224, 224)) == (56, 56)
    assert zoo._map_size(torch.zeros(1, 96, 56, 56), torch.zeros(1, 3, 224, 224)) == (56, 56)
    assert zoo._map_size(torch.zeros(1, 28, 37, 64), torch.zeros(1, 3, 224, 300)) == (28, 37)
    assert zoo._map_size(torch.zeros(1, 64, 28, 37), torch.zeros(1, 3, 224, 300)) == (28, 37)
    assert zoo._map_size(torch.zeros(1, 512, 1, 1), torch.zeros(1, 3, 224, 224)) is None
    assert zoo._map_size(torch.zeros(1, 197, 768), torch.zeros(1, 3, 224, 224)) is None


# ---------------------------------------------------------------- your own model


class MyNet(nn.Module):
    """A user's CNN: in-place ReLUs, batch norm, in training mode, one parameter left trainable."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.relu1, self.pool = nn.ReLU(inplace=True), nn.MaxPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(8, 4))

    def forward(self, x):
        return self.head(self.relu2(self.conv2(self.pool(self.relu1(self.bn(self.conv1(x)))))))


def _snapshot(module):
    return ({k: v.clone() for k, v in module.state_dict().items()}, [m.training for m in module.modules()],
            [p.requires_grad for p in module.parameters()], [getattr(m, "inplace", None) for m in module.modules()],
            hooks.count(module))


def _same(a, b):
    assert a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert a[1:] == b[1:]


@pytest.fixture
def mine():
    torch.manual_seed(0)
    net = MyNet()
    net.bn.running_mean.uniform_(-0.2, 0.2)
    net.conv1.requires_grad_(False)
    return net


def test_wrap_makes_a_bundle_and_leaves_the_module_alone(mine):
    before = _snapshot(mine)
    names = ["shirt", "boot", "bag", "coat"]
    bundle = zoo.wrap(mine, classes=names, input_size=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.25), name="mynet")
    _same(_snapshot(mine), before)
    assert bundle.model is not mine and bundle.classes == names and bundle.input_size == 16
    assert not bundle.model.training and not any(p.requires_grad for p in bundle.model.parameters())
    assert all(not getattr(m, "inplace", False) for m in bundle.model.modules())
    assert bundle.stages == ["relu1", "relu2"] and bundle.feature_layer == "head.0" and bundle.blank == 0.0
    assert "mynet" in repr(bundle) and "MyNet" in bundle.description and not bundle.verified
    img = torch.rand(2, 3, 16, 16)
    x = bundle.preprocess(img)
    torch.testing.assert_close(x, (img - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
                               / torch.tensor([0.2, 0.2, 0.25]).view(1, 3, 1, 1))
    reference = copy.deepcopy(mine).eval()
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x), reference(x))
    top = bundle.predict(img[:1], k=4)
    assert sorted(n for n, _ in top) == sorted(names) and sum(p for _, p in top) == pytest.approx(1)


def test_every_technique_works_on_a_wrapped_module(mine):
    before = _snapshot(mine)
    bundle = zoo.wrap(mine, classes=["a", "b", "c", "d"], input_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    model = bundle.model
    img = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    x = bundle.preprocess(img)
    # saliency against autograd by hand, a class name as the target
    xg = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(model(xg)[:, 2].sum(), xg)
    torch.testing.assert_close(attribution.saliency(model, x, "c"), grad.abs().amax(1))
    # Grad-CAM against its formula, at the layer's resolution
    with hooks.capture(model, "relu2", gradients=True) as rec:
        model(x.clone().requires_grad_(True))[:, 1].sum().backward()
    act, g = rec.activations["relu2"], rec.gradients["relu2"]
    by_hand = torch.relu((g.mean((2, 3), keepdim=True) * act).sum(1))
    torch.testing.assert_close(attribution.grad_cam(model, x, 1, layer="relu2", upsample=False), by_hand)
    # hooks and features: the stages' activations and the module's own logits
    acts, logits = hooks.run(model, x, bundle.stages, stop=False)
    assert [a.shape[-1] for a in acts.values()] == [16, 8]
    torch.testing.assert_close(logits, copy.deepcopy(mine).eval()(x))
    feats = features.extract(model, img, bundle.feature_layer, bundle.preprocess, progress=False)
    assert feats[bundle.feature_layer].shape == (2, 8, 1, 1)
    # class visualization by gradient ascent: the class score rises
    r = ascent.ascend(model, ascent.class_score(3), ascent.Pixels.grey(1, 3, 16, 16), bundle.preprocess, steps=30,
                      lr=0.05, penalties=[ascent.l2(1e-3)], post=[ascent.clamp()], progress=False)
    assert r.history[-1] > r.history[0] + 0.1 and 0 <= r.image.min() and r.image.max() <= 1
    assert hooks.count(model) == 0
    _same(_snapshot(mine), before)


def test_wrap_without_normalisation_or_names(mine):
    bundle = zoo.wrap(mine, input_size=12)
    img = torch.rand(1, 3, 12, 12)
    torch.testing.assert_close(bundle.preprocess(img), img)
    assert bundle.classes == ["class 0", "class 1", "class 2", "class 3"] and bundle.blank == 0.5
    gray = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    assert zoo.wrap(gray, input_size=8).info["channels"] == 1
    pre, de = zoo.normalizer((0.5,) * 3, (0.5,) * 3)
    assert zoo.wrap(mine, input_size=12, preprocess=pre, deprocess=de).blank == pytest.approx(0.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(module="net"), "wrap needs an nn.Module with parameters, not str"),
    (dict(input_size=0), "input_size must be a whole number of pixels >= 1"),
    (dict(mean=(0.5,) * 3), "mean and std come together"),
    (dict(mean=(0.5,) * 3, std=(0.2, 0.0, 0.2)), "std > 0"),
    (dict(preprocess=lambda img: img), "preprocess and deprocess come as a pair"),
    (dict(classes=["a", "b"]), "2 class names for a model with 4 outputs"),
    (dict(classes="abcd"), "classes must be a list of class names"),
    (dict(name="teaching"), "name must be a non-empty string other than"),
    (dict(stages=["relu1", "conv9"]), "no layer 'conv9'.*Valid layer names"),
    (dict(mean=(0.5,), std=(0.5,)), r"MyNet fails on a \(1, 1, 16, 16\) 0..1 image"),
])
def test_wrap_bad_arguments_are_clear(mine, kwargs, message):
    before = _snapshot(mine)
    args = {"module": mine, "input_size": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        zoo.wrap(args.pop("module"), **args)
    _same(_snapshot(mine), before)


def test_wrap_refuses_what_is_not_a_classifier():
    with pytest.raises(ValueError, match=r"not a classifier this can read.*\(N, classes\)"):
        zoo.wrap(nn.Sequential(nn.Conv2d(3, 2, 3)), input_size=8)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(ValueError, match=r"Sequential fails on a \(1, 3, 12, 12\) 0..1 image.*input_size"):
        zoo.wrap(flat, input_size=12)


def test_cli_takes_any_torchvision_name(monkeypatch, capsys):
    _no_network(monkeypatch)
    assert cli.main(["download", "mobilenet_v3_small"]) == 1
    assert "python -m lecturekit download mobilenet_v3_small" in capsys.readouterr().err
    assert cli.main(["download", "mobilenet_v9"]) == 2
    assert "any torchvision classification model" in capsys.readouterr().err
    monkeypatch.setenv("LECTUREKIT_MODEL", "mobilenet_v3_small")
    assert cli.main(["info"]) == 0
