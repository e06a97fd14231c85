import socket

import pytest
import torch

from lecturekit import __main__ as cli
from lecturekit import hooks, teaching, zoo


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
    assert str(zoo.checkpoint_dir()) in msg


def test_unreachable_server_is_quick_clear_message(monkeypatch):
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    def unreachable(*a, **k):
        raise OSError("Name or service not known")
    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(zoo.WeightsUnavailable, match="cannot be reached"):
        zoo.download("resnet18")


def test_auto_offline_falls_back_to_teaching(monkeypatch, capsys):
    _no_network(monkeypatch)
    bundle = zoo.load("auto")
    assert bundle.name == "teaching"
    out = capsys.readouterr().out
    assert "teaching model" in out and "python -m lecturekit download squeezenet1_1" in out


def test_standin_weights_load_offline(monkeypatch, standin_home):
    _no_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)
    monkeypatch.setattr(torch, "load", spy)
    bundle = zoo.load("auto")
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
    path = zoo.weights_path("squeezenet1_1")
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
    path = zoo.weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save({"obj": NotWeights()}, path)
    with pytest.raises(zoo.WeightsUnavailable, match="damaged"):
        zoo.load("resnet18")


def test_download_path_online(monkeypatch):
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    monkeypatch.setattr(zoo, "reachable", lambda url, timeout=3.0: True)
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix, progress))
        torch.manual_seed(0)
        from torchvision.models import get_model
        torch.save(get_model("squeezenet1_1").state_dict(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    bundle = zoo.load("squeezenet1_1")
    assert calls == [("https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth", "b8a52dc0", True)]
    assert bundle.weights_file == zoo.weights_path("squeezenet1_1") and zoo.is_cached("squeezenet1_1")
    zoo.load("squeezenet1_1")
    assert len(calls) == 1                        # cached now: no second download


def test_cli_download_and_info(monkeypatch, capsys, standin_home):
    _no_network(monkeypatch)
    assert cli.main(["download", "nonsense"]) == 2
    assert "Valid: squeezenet1_1" in capsys.readouterr().err
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
    monkeypatch.setattr(zoo, "weights_path", lambda name: good)
    assert zoo.checksum_ok("x") is True
    monkeypatch.setattr(zoo, "weights_path", lambda name: bad)
    assert zoo.checksum_ok("x") is False


def test_reachable_probes_a_local_server_and_never_offline(monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/w.pth"
    try:
        assert zoo.reachable(url) is False            # offline mode: not even tried
        monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
        assert zoo.reachable(url, timeout=2) is True
    finally:
        server.close()
    assert zoo.reachable(url, timeout=2) is False


def test_blank_is_black_for_teaching(teaching):
    assert teaching.blank == pytest.approx(float(teaching.preprocess(torch.zeros(1, 1, 1, 1))))
    assert float(teaching.deprocess(torch.full((1, 1, 1, 1), teaching.blank))[0, 0]) == pytest.approx(0.0, abs=1e-6)


def test_obtainable_offline_only_when_cached(monkeypatch, standin_home):
    _no_network(monkeypatch)
    assert not zoo.obtainable("alexnet")
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    assert zoo.obtainable("alexnet") and not zoo.obtainable("vgg16")


def test_imagenet_weights_load_exactly_without_a_random_init(standin_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    bundle = zoo.load("squeezenet1_1")
    state = torch.load(zoo.weights_path("squeezenet1_1"), weights_only=True)
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
