"""Bad input never passes silently: what students naturally pass is accepted where it is
unambiguous (a class name, a NumPy integer, one (C, H, W) image, uint8 pixels where 0..1 images
are expected), everything else is refused before any work with an error that says what was
wrong and what is allowed. Nothing about a user's model changes, whatever its mode.

Stalled networks are tested in test_network.py."""
import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import lecturekit as lk
from lecturekit import __main__ as cli
from lecturekit import ascent, attribution, checks, faststyle, features, gallery, hooks, images, receptive
from lecturekit import sanity, style, texture, vit, weights, zoo


@pytest.fixture
def x(teaching):
    torch.manual_seed(0)
    return teaching.preprocess(torch.rand(2, 1, 28, 28))


GRADIENT_METHODS = [attribution.saliency, attribution.guided_backprop, attribution.deconvnet]


def _all_methods(model, x, target):
    """Every attribution method with ``target`` (layers chosen for the teaching model)."""
    return {"saliency": lambda: attribution.saliency(model, x, target),
            "guided_backprop": lambda: attribution.guided_backprop(model, x, target),
            "deconvnet": lambda: attribution.deconvnet(model, x, target),
            "grad_cam": lambda: attribution.grad_cam(model, x, target, layer="relu3"),
            "guided_grad_cam": lambda: attribution.guided_grad_cam(model, x, target, layer="relu3"),
            "cam": lambda: attribution.cam(model, x, target),
            "occlusion": lambda: attribution.occlusion(model, x, target, patch=7, stride=7),
            "deletion_curve": lambda: sanity.deletion_curve(model, x, target, torch.rand(len(x), 28, 28), steps=2)}


# ---------------------------------------------------------------- targets


@pytest.mark.parametrize("method", list(_all_methods(None, None, None)))
@pytest.mark.parametrize("target, message", [
    (3.7, "target must be an integer index (or one per image), not a float 3.7: a class or channel is a whole number"),
    (3.0, "not a float 3.0"),
    (torch.tensor([1.5, 2.0]), "not a float [1.5, 2.0]"),
    (True, "not a bool True"),
    (None, "target is None; give the class index to explain"),
    ("trousers", "unknown class name 'trousers'. Valid: T-shirt/top, Trouser, Pullover"),
    ([1, 2, 3], "target must be one index or one per image (2), got 3"),
    (10, "target [10, 10] out of range: the model has classes 0..9"),
    (-1, "out of range: the model has classes 0..9"),
    ({"a": 1}, "target must be an integer index or a list of them"),
])
def test_bad_targets_are_refused_by_every_method(teaching, x, method, target, message):
    with pytest.raises(ValueError) as err:
        _all_methods(teaching.model, x, target)[method]()
    assert message in str(err.value)


@pytest.mark.parametrize("method", list(_all_methods(None, None, None)))
def test_class_names_and_numpy_integers_are_targets(teaching, x, method):
    by_index = _all_methods(teaching.model, x, 1)[method]()
    by_name = _all_methods(teaching.model, x, "Trouser")[method]()
    by_numpy = _all_methods(teaching.model, x, np.int64(1))[method]()
    by_list = _all_methods(teaching.model, x, ["Trouser", np.int32(1)])[method]()
    for other in (by_name, by_numpy, by_list):
        if method == "deletion_curve":          # random heat: compare the fractions only
            torch.testing.assert_close(other[0], by_index[0])
        else:
            torch.testing.assert_close(other, by_index)


def test_a_class_name_needs_a_model_that_knows_its_classes(tiny_cnn):
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"target 'cat' is a name, but this model does not carry its class names; "
                                         r"give the class index, e.g. bundle.classes.index\('name'\)"):
        attribution.saliency(tiny_cnn, x, "cat")
    tiny_cnn.classes = ["cat", "dog", "bird"]          # a model that carries them
    torch.testing.assert_close(attribution.saliency(tiny_cnn, x, "dog"), attribution.saliency(tiny_cnn, x, 1))


def test_channel_targets_are_whole_numbers(teaching, x):
    with pytest.raises(ValueError, match="channel of relu3 must be an integer channel index, not 'Trouser'"):
        attribution.saliency(teaching.model, x, "Trouser", neuron="relu3")
    with pytest.raises(ValueError, match="channel of relu3 must be an integer index .* not a float 2.5"):
        attribution.guided_backprop(teaching.model, x, 2.5, neuron="relu3")
    assert attribution.saliency(teaching.model, x, np.int64(2), neuron="relu3").shape == (2, 28, 28)


# ---------------------------------------------------------------- model inputs


@pytest.mark.parametrize("method", list(_all_methods(None, None, None)))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_inputs_are_refused(teaching, x, method, value):
    x = x.clone()
    x[0, 0, 3, 3] = value
    with pytest.raises(ValueError, match="x holds NaN or infinite values; every result computed from it would be NaN"):
        _all_methods(teaching.model, x, 1)[method]()


@pytest.mark.parametrize("method", list(_all_methods(None, None, None)))
def test_uint8_and_wrong_shapes_are_refused(teaching, x, method):
    with pytest.raises(ValueError, match=r"x is a uint8 tensor; a model input is a float tensor \(a 0..1 image passed "
                                         r"through the model's preprocess, e.g. bundle.preprocess\(img\)\)"):
        _all_methods(teaching.model, (x * 50).clamp(0, 255).to(torch.uint8), 1)[method]()
    with pytest.raises(ValueError, match=r"x must be a model input tensor of shape \(N, C, H, W\) or \(C, H, W\), "
                                         r"got \(28, 28\)"):
        _all_methods(teaching.model, x[0, 0], 1)[method]()
    with pytest.raises(ValueError, match=r"got ndarray"):
        _all_methods(teaching.model, x.numpy(), 1)[method]()


@pytest.mark.parametrize("method", [m for m in _all_methods(None, None, None) if m != "deletion_curve"])
def test_one_chw_image_is_a_batch_of_one(teaching, x, method):
    one = _all_methods(teaching.model, x[0], 1)[method]()
    torch.testing.assert_close(one, _all_methods(teaching.model, x[:1], 1)[method]())
    assert one.shape == (1, 28, 28)


def test_rgb_into_the_grayscale_model_and_the_reverse(teaching):
    with pytest.raises(ValueError, match=r"x has 3 channels but TeachingNet takes 1 \(grayscale\); preprocess the "
                                         r"image for this model \(bundle.preprocess converts RGB to grayscale"):
        attribution.saliency(teaching.model, torch.rand(1, 3, 28, 28), 1)
    # the teaching bundle's preprocess converts an RGB image, as the message says
    assert attribution.saliency(teaching.model, teaching.preprocess(torch.rand(1, 3, 28, 28)), 1).shape == (1, 28, 28)
    from torchvision.models import get_model
    rgb = zoo.prepare(get_model("squeezenet1_1", weights=None))
    with pytest.raises(ValueError, match=r"x has 1 channels but SqueezeNet takes 3 \(RGB\).*"
                                         r"a grayscale image for an RGB model: img.expand\(-1, 3, -1, -1\)"):
        attribution.grad_cam(rgb, torch.rand(1, 1, 64, 64), 1, layer="features.12")
    with pytest.raises(ValueError, match=r"the \(preprocessed\) images has 3 channels but TeachingNet takes 1"):
        features.extract(teaching.model, torch.rand(4, 3, 28, 28), "relu2", progress=False)


def test_layers_are_named_by_strings(teaching, x):
    msg = r"TeachingNet has no layer 3 \(layers are named by strings, not int\). Valid layer names: conv1, bn1"
    for call in (lambda: attribution.grad_cam(teaching.model, x, 1, layer=3),
                 lambda: attribution.saliency(teaching.model, x, 1, neuron=3),
                 lambda: attribution.cam(teaching.model, x, 1, layer=3),
                 lambda: hooks.activations(teaching.model, x, 3),
                 lambda: hooks.capture(teaching.model, 3).__enter__(),
                 lambda: features.extract(teaching.model, torch.rand(2, 1, 28, 28), 3, progress=False),
                 lambda: receptive.gradient_box(teaching.model, 3, 28, 1),
                 lambda: ascent.deepdream(teaching.model, torch.rand(1, 1, 28, 28), 3, teaching.preprocess)):
        with pytest.raises(ValueError, match=msg):
            call()
    with pytest.raises(ValueError, match=r"has no layer None \(layers are named by strings, not NoneType\)"):
        attribution.grad_cam(teaching.model, x, 1, layer=None)
    assert hooks.count(teaching.model) == 0


# ---------------------------------------------------------------- occlusion


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": -1}, "batch_size must be a whole number >= 1 (or None for the default), not -1"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1 (or None for the default), not 0"),
    ({"batch_size": 2.5}, "batch_size must be a whole number >= 1 (or None for the default), not 2.5"),
    ({"fill": float("nan")}, "fill must be a finite number (the model-input value of the patch), not nan"),
    ({"fill": float("inf")}, "fill must be a finite number (the model-input value of the patch), not inf"),
    ({"patch": 2.5}, "patch must be in 1..28 and stride >= 1, both whole numbers (got patch=2.5, stride=4)"),
    ({"patch": 0}, "patch must be in 1..28 and stride >= 1, both whole numbers (got patch=0, stride=4)"),
    ({"stride": -2}, "(got patch=8, stride=-2)"),
])
def test_occlusion_arguments(teaching, x, kwargs, message):
    with pytest.raises(ValueError) as err:
        attribution.occlusion(teaching.model, x, 1, **kwargs)
    assert message in str(err.value)


def test_occlusion_takes_numpy_integers(teaching, x):
    torch.testing.assert_close(attribution.occlusion(teaching.model, x, 1, patch=np.int64(7), stride=np.int32(7),
                                           batch_size=np.int64(3), fill=np.float32(0.5)),
                               attribution.occlusion(teaching.model, x, 1, patch=7, stride=7, batch_size=3, fill=0.5))


# ---------------------------------------------------------------- counts and sizes


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -5}, "steps must be a whole number >= 1, not -5"),
    ({"steps": 0}, "steps must be a whole number >= 1, not 0"),
    ({"steps": 2.5}, "steps must be a whole number >= 1, not 2.5"),
    ({"lr": float("nan")}, "lr must be a finite number > 0, not nan"),
    ({"lr": 0}, "lr must be a finite number > 0, not 0"),
    ({"snapshot_every": -1}, "snapshot_every (0 for none) must be a whole number >= 0, not -1"),
])
def test_ascend_counts(teaching, kwargs, message):
    with pytest.raises(ValueError) as err:
        ascent.ascend(teaching.model, ascent.class_score(1), ascent.Pixels.grey(1, 1, 28, 28), teaching.preprocess,
                      **kwargs)
    assert message in str(err.value)


def test_ascend_takes_numpy_steps(teaching):
    r = ascent.ascend(teaching.model, ascent.class_score(np.int64(1)), ascent.Pixels.grey(1, 1, 28, 28),
                      teaching.preprocess, steps=np.int64(2), progress=False)
    assert r.steps == 2 and len(r.history) == 2


@pytest.mark.parametrize("make, message", [
    (lambda: ascent.class_score(3.7), "class must be a whole number >= 0, not 3.7"),
    (lambda: ascent.class_score(-1), "class must be a whole number >= 0, not -1"),
    (lambda: ascent.channel("relu3", 2.0), "channel of relu3 must be a whole number >= 0, not 2.0"),
    (lambda: ascent.neuron("relu3", None), "channel of relu3 must be a whole number >= 0, not None"),
])
def test_objective_indices(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


@pytest.mark.parametrize("img, message", [
    (torch.full((1, 1, 8, 8), float("nan")), "Pixels needs a float image batch (N, C, H, W) with finite values (0..1)"),
    (torch.zeros(1, 8, 8), "got torch.float32 (1, 8, 8)"),
    (np.zeros((1, 1, 8, 8)), "got ndarray"),
])
def test_pixels_refuse_what_is_not_an_image_batch(img, message):
    with pytest.raises(ValueError) as err:
        ascent.Pixels(img)
    assert message in str(err.value)
    torch.testing.assert_close(ascent.Pixels(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)).param,
                               torch.ones(1, 1, 2, 2))


@pytest.mark.parametrize("kwargs, message", [
    ({"octaves": 0}, "octaves (image scales) must be a whole number >= 1, not 0"),
    ({"octaves": -2}, "octaves (image scales) must be a whole number >= 1, not -2"),
    ({"octave_scale": 0.5}, "octave_scale must be a finite number >= 1 (the size ratio between octaves), not 0.5"),
    ({"steps": 0}, "steps must be a whole number >= 1, not 0"),
    ({"jitter_px": -1}, "jitter_px must be a whole number >= 0, not -1"),
])
def test_deepdream_arguments(teaching, kwargs, message):
    with pytest.raises(ValueError) as err:
        ascent.deepdream(teaching.model, torch.rand(1, 1, 28, 28), "relu2", teaching.preprocess, **kwargs)
    assert message in str(err.value)


def test_deepdream_and_fgsm_images(teaching):
    with pytest.raises(ValueError, match=r"the DeepDream start image spans 255..255; an image holds values in 0..1 "
                                         r"\(a model input made by preprocess is not an image"):
        ascent.deepdream(teaching.model, torch.full((1, 1, 28, 28), 255.0), "relu2", teaching.preprocess)
    with pytest.raises(ValueError, match="the image to perturb holds NaN or infinite values"):
        ascent.fgsm(teaching.model, torch.full((1, 1, 28, 28), float("nan")), torch.tensor([1]), 0.1,
                    teaching.preprocess)
    with pytest.raises(ValueError, match=r"eps must be a finite number >= 0 \(a step in 0..1 pixel units\), not nan"):
        ascent.fgsm(teaching.model, torch.rand(1, 1, 28, 28), torch.tensor([1]), float("nan"), teaching.preprocess)
    img = torch.rand(2, 1, 28, 28)
    by_name = ascent.fgsm(teaching.model, img, "Bag", 0.1, teaching.preprocess)
    torch.testing.assert_close(by_name, ascent.fgsm(teaching.model, img, torch.tensor([8, 8]), 0.1, teaching.preprocess))
    u8 = (img * 255).round().to(torch.uint8)
    torch.testing.assert_close(ascent.fgsm(teaching.model, u8, 8, 0.1, teaching.preprocess),
                               ascent.fgsm(teaching.model, u8.float() / 255, 8, 0.1, teaching.preprocess))


def test_deletion_curve_arguments(teaching, x):
    heat = torch.rand(2, 28, 28)
    for steps in (-1, 0, 1.5):
        with pytest.raises(ValueError, match=f"steps must be a whole number >= 1 \\(points on the curve after the "
                                             f"start\\), not {steps}"):
            sanity.deletion_curve(teaching.model, x, 1, heat, steps=steps)
    with pytest.raises(ValueError, match="heat holds NaN or infinite values, which give no order to delete pixels in"):
        sanity.deletion_curve(teaching.model, x, 1, torch.full((2, 28, 28), float("nan")))
    with pytest.raises(ValueError, match="baseline must be a finite number"):
        sanity.deletion_curve(teaching.model, x, 1, heat, baseline=float("nan"))
    fr, probs = sanity.deletion_curve(teaching.model, x, np.int64(1), heat, steps=np.int64(2))
    assert fr.tolist() == [0, 0.5, 1] and probs.shape == (2, 3) and torch.isfinite(probs).all()


def test_features_counts(teaching):
    imgs = torch.rand(6, 1, 28, 28)
    for bs in (0, -1, 2.5, None):
        with pytest.raises(ValueError, match=f"batch_size must be a whole number >= 1, not {bs}"):
            features.extract(teaching.model, imgs, "relu2", teaching.preprocess, batch_size=bs, progress=False)
        with pytest.raises(ValueError, match=f"batch_size must be a whole number >= 1, not {bs}"):
            features.LayerCache(teaching.model, imgs, teaching.preprocess, batch_size=bs)
    with pytest.raises(ValueError, match=r"images must be a \(N, C, H, W\) tensor with N >= 1 \(one image: img\[None\]\), "
                                         r"got \(1, 28, 28\)"):
        features.extract(teaching.model, imgs[0], "relu2", teaching.preprocess)
    with pytest.raises(ValueError, match="the \\(preprocessed\\) images holds NaN or infinite values"):
        features.extract(teaching.model, torch.full((2, 1, 28, 28), float("nan")), "relu2", teaching.preprocess)
    # uint8 images are 0..255 pixels: the same features as the float image
    u8 = (imgs * 255).round().to(torch.uint8)
    got = features.extract(teaching.model, u8, "gap", teaching.preprocess, batch_size=np.int64(4), progress=False)
    torch.testing.assert_close(got["gap"], features.extract(teaching.model, u8.float() / 255, "gap",
                                                            teaching.preprocess, progress=False)["gap"])


def test_knn_and_nearest_counts():
    feats, labels = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 0])
    for k in (5, 6, 0, -1, 2.5):
        with pytest.raises(ValueError, match=f"k must be a whole number in 1..4 \\(neighbours other than the image "
                                             f"itself among 5\\), not {k}"):
            features.knn_accuracy(feats, labels, k=k)
    assert 0 <= features.knn_accuracy(feats, labels, k=np.int64(4)) <= 1
    with pytest.raises(ValueError, match=r"labels must be 5 class indices >= 0 \(one per feature row\), got "
                                         r"torch.float32 of shape \(5,\)"):
        features.knn_accuracy(feats, labels.float(), k=1)
    with pytest.raises(ValueError, match=r"labels must be 5 class indices >= 0.*shape \(4,\)"):
        features.knn_accuracy(feats, labels[:4], k=1)
    with pytest.raises(ValueError, match="feats hold NaN or infinite values"):
        features.knn_accuracy(torch.full((5, 3), float("nan")), labels, k=1)
    with pytest.raises(ValueError, match=r"k must be between 1 and the gallery size \(5\), not 2.5"):
        features.nearest(feats[0], feats, k=2.5)


def test_gradient_box_and_gallery_sizes(teaching):
    with pytest.raises(ValueError, match="input_size and in_channels must be whole numbers >= 1, not 0 and 1"):
        receptive.gradient_box(teaching.model, "relu2", 0, 1)
    with pytest.raises(ValueError, match=r"x has 3 channels but TeachingNet takes 1"):
        receptive.gradient_box(teaching.model, "relu2", 28, 3)
    assert receptive.gradient_box(teaching.model, "relu1", np.int64(28), 1) == (11, 11, 16, 16)
    with pytest.raises(ValueError, match="n and size must be whole numbers >= 1, not 0 and 32"):
        gallery.cifar10(0, 32)


# ---------------------------------------------------------------- images


def test_images_load_refuses_nan_and_scales_integers_by_their_range():
    arr = np.random.default_rng(0).integers(0, 256, (6, 5, 3))
    for dtype in (np.int16, np.int32, np.int64):
        torch.testing.assert_close(images.load(arr.astype(dtype)), images.load(arr.astype(np.uint8)))
    wide = np.array([[0, 1000], [65535, 300]], dtype=np.int32)
    torch.testing.assert_close(images.load(wide)[0, 0], torch.tensor(wide / 65535, dtype=torch.float32))
    bad = np.full((4, 4, 3), 0.5)
    bad[1, 1, 1] = np.nan
    with pytest.raises(images.ImageError, match="the image array holds NaN or infinite values; pixels must be "
                                                "numbers in 0..1"):
        images.load(bad)
    bad[1, 1, 1] = np.inf
    with pytest.raises(images.ImageError, match="NaN or infinite"):
        images.load(bad)
    with pytest.raises(images.ImageError, match=r"integer pixels must be >= 0 \(0..255 or 0..65535\); this int32 "
                                                r"array spans -3..200"):
        images.load(np.array([[-3, 200]], dtype=np.int32))
    for size in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=f"size must be a whole number of pixels >= 1 \\(or None to keep the "
                                             f"size\\), not {size}"):
            images.load("coffee", size=size)
    assert images.load("coffee", size=np.int64(16)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("img, message", [
    (torch.full((1, 3, 4, 4), 255.0), "the picture spans 255..255; an image holds values in 0..1"),
    (torch.full((1, 3, 4, 4), float("nan")), "the picture holds NaN or infinite values"),
    (torch.zeros(1, 3, 4, 4, dtype=torch.int64), "the picture is a int64 tensor; use floats in 0..1 (or uint8 0..255)"),
    (torch.zeros(4, 4), "the picture must be an image tensor (N, C, H, W) or (C, H, W) in 0..1"),
    ("coffee", "got str"),
])
def test_images_checked(img, message):
    with pytest.raises(ValueError) as err:
        images.checked(img, "picture")
    assert message in str(err.value)
    torch.testing.assert_close(images.checked(torch.full((3, 2, 2), 51, dtype=torch.uint8)),
                               torch.full((1, 3, 2, 2), 0.2))


# ---------------------------------------------------------------- style


@pytest.fixture
def small_net():
    return style.feature_net("random-multiscale", last="relu3")


def test_random_features_truncated_early_have_a_content_layer(small_net):
    assert small_net.content_layer == "relu3" and small_net.style_layers == ["relu1", "relu3"]
    assert style.feature_net("random-multiscale").content_layer == "relu5"


def test_style_transfer_takes_uint8_content_and_refuses_tiny_images(small_net):
    content = images.load("coffee", size=32)
    u8 = (content * 255).round().to(torch.uint8)
    styl = images.load("rocket", size=32)
    got = style.transfer(small_net, u8, styl, steps=2, optimizer="adam", progress=False)
    want = style.transfer(small_net, u8.float() / 255, styl, steps=2, optimizer="adam", progress=False)
    assert torch.isfinite(got.image).all()
    torch.testing.assert_close(got.image, want.image)
    with pytest.raises(ValueError, match="the content image is 16x16 px; its shorter side must be at least 32 px"):
        style.transfer(small_net, images.load("coffee", size=16), styl, steps=2, progress=False)
    with pytest.raises(ValueError, match="the style image is 8x8 px; its shorter side must be at least 32 px"):
        style.transfer(small_net, content, images.load("rocket", size=8), steps=2, progress=False)
    with pytest.raises(ValueError, match="the content image holds NaN or infinite values"):
        style.transfer(small_net, torch.full((1, 3, 32, 32), float("nan")), styl, steps=2, progress=False)
    with pytest.raises(ValueError, match="steps must be a whole number >= 1, not -5"):
        style.transfer(small_net, content, styl, steps=-5, progress=False)
    with pytest.raises(ValueError, match="size must be a whole number of pixels >= 32, not 8"):
        style.synthesize(small_net, styl, size=8, steps=2, progress=False)


def test_fast_style_index_as_numpy_integer():
    torch.manual_seed(0)
    net = faststyle.TransformNet(n_styles=3, width=4, blocks=1).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x, style=np.int64(2)), net(x, style=2))
        torch.testing.assert_close(net(x, style=np.array([0.0, 0.0, 1.0])), net(x, style=2))
    for bad in ("two", [0.5, float("nan"), 0.5], [[[1.0, 0.0, 0.0]]]):
        with pytest.raises(ValueError, match=r"style must be an index 0..2 or 3 finite blend weights \(one row per "
                                             r"image\), not"):
            net(x, style=bad)
    with pytest.raises(ValueError, match="style index 3 out of range 0..2"):
        net(x, style=np.int64(3))


# ---------------------------------------------------------------- weights and the command line


def test_zero_byte_weights_are_a_clear_message(monkeypatch):
    path = weights.weights_path("squeezenet1_1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    with pytest.raises(zoo.WeightsUnavailable, match=r"(?s)squeezenet1_1-b8a52dc0.pth is empty \(0 bytes\): an "
                                                     r"interrupted download or copy.*Delete it and fetch it again: "
                                                     r"python -m lecturekit download squeezenet1_1"):
        zoo.load("squeezenet1_1")
    assert zoo.load("auto").name == "efficientnet_lite0"          # the default needs no file in the cache


def test_checksum_mismatch_is_an_error_unless_standins_are_allowed(monkeypatch, standin_home):
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    monkeypatch.delenv("LECTUREKIT_STANDINS")
    with pytest.raises(zoo.WeightsUnavailable, match=r"(?s)alexnet-owt-7be5be79.pth does not match the published "
                       r"checksum of alexnet's weights .*Delete it and fetch it again: python -m lecturekit download "
                       r"alexnet\n.*LECTUREKIT_STANDINS=1"):
        zoo.load("alexnet")
    assert zoo.load("auto").name == "efficientnet_lite0"       # the default needs no file in the cache
    monkeypatch.setenv("LECTUREKIT_STANDINS", "1")
    with pytest.warns(UserWarning, match=r"alexnet-owt-7be5be79.pth does not match .*loaded because "
                                         r"LECTUREKIT_STANDINS=1"):
        bundle = zoo.load("alexnet")
    assert bundle.info["checksum_ok"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zoo.load("teaching")                             # the teaching model's file has no published checksum


@pytest.mark.parametrize("variable, value, message", [
    ("LECTUREKIT_MODEL", "bogus", "LECTUREKIT_MODEL='bogus' is not a model of the zoo. Valid: auto, teaching, "
                                  "efficientnet_lite0, squeezenet1_1"),
    ("LECTUREKIT_DEVICE", "gpu9", "LECTUREKIT_DEVICE='gpu9' is not a device; use cpu, cuda or mps"),
    ("LECTUREKIT_NET_TIMEOUT", "-3", "LECTUREKIT_NET_TIMEOUT='-3' is not a usable timeout"),
])
def test_info_exits_non_zero_on_bad_settings(monkeypatch, capsys, variable, value, message):
    monkeypatch.setenv(variable, value)
    assert cli.main(["info"]) == 2
    assert message in capsys.readouterr().err
    monkeypatch.delenv(variable)
    assert cli.main(["info"]) == 0


def test_model_names_are_checked(monkeypatch):
    for name in ("bogus", 3, ""):
        with pytest.raises(ValueError, match="Unknown model .* Valid names: auto, teaching, efficientnet_lite0, squeezenet1_1"):
            zoo.load(name)


# ---------------------------------------------------------------- nothing about the model changes


def _bn_model():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(3, 4, 3, padding=1))
    model.add_module("bn", nn.BatchNorm2d(4))
    model.add_module("relu", nn.ReLU())
    model.add_module("drop", nn.Dropout(0.5))
    model.add_module("conv2", nn.Conv2d(4, 4, 3, padding=1))
    model.add_module("relu2", nn.ReLU())
    model.add_module("gap", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc", nn.Linear(4, 3))
    model.train()                                        # a user's model, in the middle of training
    model.bn.running_mean.fill_(0.3)
    model.drop.eval()                                    # mixed modes must come back as they were
    return model


def _state(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()})


CALLS = {
    "features.extract": lambda m, x: features.extract(m, x, ["bn", "relu2"], progress=False),
    "LayerCache": lambda m, x: features.LayerCache(m, x, reduce=features.spatial_max)("relu2"),
    "hooks.activations": lambda m, x: hooks.activations(m, x, "bn"),
    "hooks.run": lambda m, x: hooks.run(m, x, "relu2", stop=False),
    "deletion_curve": lambda m, x: sanity.deletion_curve(m, x, 1, torch.rand(len(x), 8, 8), steps=2),
    "gradient_box": lambda m, x: receptive.gradient_box(m, "relu2", 8),
    "unit_gradient": lambda m, x: receptive.unit_gradient(m, "relu2", 8),
    "saliency": lambda m, x: attribution.saliency(m, x, 1),
    "grad_cam": lambda m, x: attribution.grad_cam(m, x, 1, layer="relu2"),
    "cam": lambda m, x: attribution.cam(m, x, 1),
    "occlusion": lambda m, x: attribution.occlusion(m, x, 1, patch=4, stride=4),
    "ascend": lambda m, x: ascent.ascend(m, ascent.class_score(1), ascent.Pixels(torch.rand(1, 3, 8, 8)), steps=2,
                                         progress=False),
    "fgsm": lambda m, x: ascent.fgsm(m, torch.rand(2, 3, 8, 8), 1, 0.1),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_model_in_train_mode_is_left_exactly_as_it_was(call):
    model = _bn_model()
    before = _state(model)
    tracked = int(model.bn.num_batches_tracked)
    CALLS[call](model, torch.randn(2, 3, 8, 8))
    after = _state(model)
    for k, v in before[0].items():
        torch.testing.assert_close(after[0][k], v, msg=f"{call} changed {k}")
    assert int(model.bn.num_batches_tracked) == tracked
    assert after[1] == before[1] and after[2] == before[2]
    assert all(p.grad is None for p in model.parameters()), f"{call} left .grad on parameters"
    assert hooks.count(model) == 0


def test_results_do_not_depend_on_the_mode_the_model_was_in():
    model = _bn_model()
    x = torch.randn(2, 3, 8, 8)
    in_train = features.extract(model, x, "fc", progress=False)["fc"]
    model.eval()
    torch.testing.assert_close(features.extract(model, x, "fc", progress=False)["fc"], in_train)
    evaluated = copy.deepcopy(model)
    model.train()
    assert receptive.gradient_box(model, "relu2", 8) == receptive.gradient_box(evaluated, "relu2", 8)


# ---------------------------------------------------------------- found beyond the first list


def test_randomization_and_rank_correlation_arguments(tiny_cnn):
    with pytest.raises(ValueError, match=r"upto must be in 0..3, a whole number \(the model has 3 conv/linear "
                                         r"layers\), not 1.5"):
        sanity.randomized(tiny_cnn, 1.5)
    assert sanity.randomized(tiny_cnn, np.int64(1)) is not tiny_cnn
    nan = torch.full((1, 4, 4), float("nan"))
    with pytest.raises(ValueError, match="the maps hold NaN or infinite values, which have no rank"):
        sanity.rank_correlation(nan, torch.rand(1, 4, 4))


def test_top_patches_and_photo_gallery_counts():
    maxima = (torch.rand(5, 2), torch.zeros(5, 2, dtype=torch.long), torch.zeros(5, 2, dtype=torch.long))
    imgs, rf = torch.rand(5, 3, 8, 8), receptive.RF(3, 1, 0.0)
    with pytest.raises(ValueError, match=r"channel must be in 0..1 for this layer \(2 channels\), not 0.5"):
        receptive.top_patches(maxima, imgs, rf, 0.5)
    with pytest.raises(ValueError, match=r"k must be between 1 and the number of images \(5\), not 2.5"):
        receptive.top_patches(maxima, imgs, rf, 1, k=2.5)
    assert receptive.top_patches(maxima, imgs, rf, np.int64(1), k=np.int64(2)).patches.shape == (2, 3, 3, 3)
    for per_photo in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"size and per_photo must be whole numbers >= 1, not 16 and {per_photo}"):
            gallery.photo_crops(16, per_photo)


# ---------------------------------------------------------------- what bad input still reached


def test_bundle_preprocess_takes_images_it_can_read_and_refuses_the_rest(teaching, standin_home, monkeypatch):
    from PIL import Image
    rgb = np.random.default_rng(0).integers(0, 256, (28, 28, 3)).astype(np.uint8)
    want = teaching.preprocess(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)
    torch.testing.assert_close(teaching.preprocess(rgb), want)                         # (H, W, 3) NumPy array
    torch.testing.assert_close(teaching.preprocess(Image.fromarray(rgb)), want)        # a PIL image
    assert teaching.image_channels == (1, 3)
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    squeeze = zoo.load("squeezenet1_1")
    assert squeeze.image_channels == (1, 3)                 # grey broadcasts over the three channels' statistics
    for img, message in [
        (torch.rand(1, 4, 32, 32), r"the image has 4 channels but squeezenet1_1 takes images with 1 \(grayscale\) "
                                   r"or 3 \(RGB\); drop the alpha channel: img\[:, :3\]"),
        (torch.rand(0, 3, 32, 32), r"the image is empty \(shape \(0, 3, 32, 32\)\)"),
        (torch.rand(32, 32), r"the image is 2-D \(32, 32\); an image is \(N, C, H, W\) or \(C, H, W\): a grayscale "
                             r"\(H, W\) picture is img\[None\]"),
        (torch.rand(1, 3, 32, 32) * 255, r"the image spans .*; an image holds values in 0..1"),
        (torch.full((1, 3, 32, 32), float("nan")), "the image holds NaN or infinite values"),
        ("coffee", "got str"),
    ]:
        with pytest.raises(ValueError, match=message):
            squeeze.preprocess(img)
        with pytest.raises(ValueError, match=message):
            squeeze.predict(img)
    # an image being optimised may leave 0..1 between clamps: its shape is checked, not its values
    img = (torch.rand(1, 3, 32, 32) * 3).requires_grad_(True)
    assert squeeze.preprocess(img).requires_grad
    with pytest.raises(ValueError, match="the image has 4 channels"):
        squeeze.preprocess(torch.rand(1, 4, 32, 32, requires_grad=True))


def test_bundle_predict_checks_its_image_and_k(teaching):
    img = torch.rand(1, 1, 28, 28)
    assert [c for c, _ in teaching.predict(img[0], k=np.int64(2))] == [c for c, _ in teaching.predict(img, k=2)]
    with pytest.raises(ValueError, match=r"predict takes one image, got a batch of 2; for a batch: "
                                         r"bundle.model\(bundle.preprocess\(imgs\)\).softmax\(1\)"):
        teaching.predict(torch.rand(2, 1, 28, 28))
    for k in (0, 2.5):
        with pytest.raises(ValueError, match=f"k \\(how many classes to list\\) must be a whole number >= 1, not {k}"):
            teaching.predict(img, k=k)
    with pytest.raises(ValueError, match=r"the image is 1x1 px, too small for TeachingNet: its inputs need at least "
                                         r"4x4 px"):
        teaching.predict(torch.rand(1, 1, 1, 1))


def test_bundle_normalise_is_the_loaders_function_and_positional_construction_holds(teaching):
    b = zoo.Bundle("teaching", teaching.model, teaching.classes, lk.teaching.preprocess, lk.teaching.deprocess, 28, "positional")
    assert b.normalise is lk.teaching.preprocess
    img = torch.rand(1, 3, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(b.preprocess(img), lk.teaching.preprocess(img.float()))       # the model's dtype
    half = zoo.Bundle("teaching", copy.deepcopy(teaching.model).half(), teaching.classes, lk.teaching.preprocess, lk.teaching.deprocess,
                      28, "half")
    x = half.preprocess(img)                        # a float image for a half-precision model: cast on the way
    assert x.dtype == torch.float16
    assert attribution.saliency(half.model.float(), x.float(), 1).shape == (1, 28, 28)


def test_a_bundle_given_for_its_model_is_named_by_every_entry_point(teaching):
    msg = "model must be the network itself: give bundle.model, not the Bundle"
    img = torch.rand(1, 1, 28, 28)
    layer = {"grad_cam": {"layer": "relu3"}, "guided_grad_cam": {"layer": "relu3"}}
    calls = {**{name: (lambda f=f, kw=layer.get(name, {}): f(teaching, teaching.preprocess(img), 1, **kw))
                for name, f in attribution.METHODS.items()},
             "deletion_curve": lambda: sanity.deletion_curve(teaching, img, 1, torch.rand(1, 28, 28)),
             "randomized": lambda: sanity.randomized(teaching, 1),
             "ascend": lambda: ascent.ascend(teaching, ascent.class_score(1), ascent.Pixels(img), steps=1,
                                             progress=False),
             "fgsm": lambda: ascent.fgsm(teaching, img, 1, 0.1),
             "deepdream": lambda: ascent.deepdream(teaching, img, "relu2", steps=1, progress=False),
             "extract": lambda: features.extract(teaching, img, "relu2", progress=False),
             "LayerCache": lambda: features.LayerCache(teaching, img),
             "receptive_field": lambda: receptive.receptive_field(teaching, "relu2"),
             "receptive_fields": lambda: receptive.receptive_fields(teaching),
             "gradient_box": lambda: receptive.gradient_box(teaching, "relu2", 28, 1),
             "linearized": lambda: receptive.linearized(teaching)}
    for name, call in calls.items():
        with pytest.raises(ValueError, match=msg):
            call()


def test_a_half_model_with_a_float_input_says_to_cast_it(teaching):
    half = copy.deepcopy(teaching.model).half()
    x = teaching.preprocess(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match=r"x is float32 but TeachingNet's weights are float16: cast it "
                                         r"\(x.to\(torch.float16\)\), or make it with bundle.preprocess\(img\)"):
        attribution.saliency(half, x, 1)
    with pytest.raises(ValueError, match="float32 but TeachingNet's weights are float16"):
        sanity.deletion_curve(half, x, 1, torch.rand(1, 28, 28))


def test_inputs_too_small_for_the_network_name_the_smallest_that_works(teaching):
    with pytest.raises(ValueError, match=r"x is 1x1 px, too small for TeachingNet: its inputs need at least 4x4 px"):
        attribution.saliency(teaching.model, torch.rand(1, 1, 1, 1), 1)
    with pytest.raises(ValueError, match=r"x is 3x28 px, too small for TeachingNet"):
        attribution.occlusion(teaching.model, torch.rand(1, 1, 3, 28), 1, patch=2)
    assert attribution.saliency(teaching.model, torch.rand(1, 1, 4, 4), 1).shape == (1, 4, 4)     # the smallest runs
    from torchvision.models import get_model
    squeeze = zoo.prepare(get_model("squeezenet1_1", weights=None))
    least = checks.smallest_side(squeeze, 3)
    assert least > 4
    squeeze(torch.zeros(1, 3, least, least))
    with pytest.raises(RuntimeError):
        squeeze(torch.zeros(1, 3, least - 1, least - 1))
    with pytest.raises(ValueError, match=f"x is 1x1 px, too small for SqueezeNet: its inputs need at least "
                                         f"{least}x{least} px"):
        attribution.grad_cam(squeeze, torch.rand(1, 3, 1, 1), 1, layer="features.12")
    tiny_vit = vit.load("tiny")
    with pytest.raises(ValueError, match=r"the image is 1x1 px; vit_tiny takes 28x28 images \(bundle.input_size\): "
                                         r"images.square\(img, 28\) makes one"):
        tiny_vit.predict(torch.rand(1, 1, 1, 1))


def test_devices_are_checked_before_loading(monkeypatch):
    with pytest.raises(ValueError, match=r"device 'banana' is not a device; use 'cpu', 'cuda' \(an NVIDIA GPU\) or "
                                         r"'mps' \(an Apple GPU\)"):
        zoo.load("teaching", device="banana")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = []
    monkeypatch.setattr(zoo, "_load_teaching", lambda: loaded.append(1))
    for dev in ("cuda", "cuda:1", torch.device("cuda", 0)):
        with pytest.raises(ValueError, match=r"device 'cuda(:\d)?': torch finds no CUDA GPU on this machine"):
            zoo.load("teaching", device=dev)
    assert loaded == []                                                     # refused before any loading
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"device 'cuda:1': this machine has 1 CUDA GPU\(s\), cuda:0..cuda:0"):
        checks.device("cuda:1")
    assert checks.device("cpu") == torch.device("cpu")


def test_ascent_pieces_are_checked_when_built(teaching):
    for make, message in [
        (lambda: ascent.jitter(-3), "jitter pixels (the largest shift) must be a whole number >= 0, not -3"),
        (lambda: ascent.jitter(1.5), "not 1.5"),
        (lambda: ascent.blur_every(0, 0.5), "n (blur every n steps) must be a whole number >= 1, not 0"),
        (lambda: ascent.blur_every(2, -1), "sigma must be a finite number >= 0 (the blur's width in pixels"),
        (lambda: ascent.blur_every(2, float("nan")), "sigma must be a finite number >= 0"),
    ]:
        with pytest.raises(ValueError) as err:
            make()
        assert message in str(err.value)
    assert callable(ascent.jitter(np.int64(0))) and callable(ascent.blur_every(np.int64(1), 0))
    with pytest.raises(ValueError, match=r"target \[12\] out of range: the model has classes 0..9"):
        ascent.fgsm(teaching.model, torch.rand(1, 1, 28, 28), 12, 0.1, teaching.preprocess)


def test_nearest_needs_features_of_one_width():
    gallery = torch.randn(10, 7)
    with pytest.raises(ValueError, match=r"the query has 5 features but the gallery rows have 7: compare features of "
                                         r"the same layer, reduced the same way"):
        features.nearest(torch.randn(5), gallery)
    with pytest.raises(ValueError, match=r"gallery must be a non-empty tensor, one feature row per image \(N, D\), "
                                         r"got \(7,\)"):
        features.nearest(torch.randn(7), gallery[0])
    assert features.nearest(torch.randn(7, 1, 1), gallery[:, :, None, None], k=2).shape == (2,)   # flattened maps


def test_efros_leung_size_and_window():
    exemplar = torch.rand(3, 16, 16)
    for size in ((0, 0), (4, -1), (2.5, 4), 8, (4, 4, 4)):
        with pytest.raises(ValueError, match=r"size must be \(height, width\) of the texture, two whole numbers of "
                                             r"pixels >= 1"):
            texture.efros_leung(exemplar, size, window=5, progress=False)
    with pytest.raises(ValueError, match="window must be an odd whole number >= 3, not 5.0"):
        texture.efros_leung(exemplar, (4, 4), window=5.0, progress=False)
    assert texture.efros_leung(exemplar, (np.int64(4), 5), window=5, progress=False).shape == (3, 4, 5)


def test_cls_map_head_is_in_range():
    attn = torch.rand(2, 4, 17, 17).softmax(-1)
    with pytest.raises(ValueError, match=r"head \(the layer has 4 heads\) 10 is out of range: valid values are 0..3"):
        vit.cls_map(attn, 4, head=10)
    with pytest.raises(ValueError, match=r"head= picks a head of one layer's maps \(N, heads, T, T\); a rollout"):
        vit.cls_map(attn[:, 0], 4, head=0)
    with pytest.raises(ValueError, match=r"attn must be a rollout \(N, T, T\) or one layer's maps"):
        vit.cls_map(attn[0, 0, 0], 4)
    torch.testing.assert_close(vit.cls_map(attn, 4, head=np.int64(3)), attn[:, 3, 0, 1:].reshape(2, 4, 4))


def test_faststyle_load_names_a_file_that_is_not_a_network(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a network")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    for path in (text, other):
        with pytest.raises(ValueError, match=f"'{path}' is not a fast-style network: load takes a file written by "
                                             r"faststyle.save \(a torch file holding state_dict, n_styles, width"):
            faststyle.load(path)
    net = faststyle.TransformNet(n_styles=2, width=4, blocks=1)
    again, meta = faststyle.load(faststyle.save(net, tmp_path / "net.pt", {"k": 1}))
    assert meta == {"k": 1} and again.n_styles == 2


def test_fast_style_blend_weights_are_not_negative():
    net = faststyle.TransformNet(n_styles=3, width=4, blocks=1).eval()
    x = torch.rand(1, 3, 8, 8)
    for bad in ([-1, 2, 0], [0.0, 0.0, 0.0], [[1.0, 0.0, 0.0], [0.5, -0.1, 0.6]]):
        with pytest.raises(ValueError, match=r"style blend weights must be >= 0 with a positive sum \(how much of each "
                                             r"style, one row per image, e.g. \[1.0, 0.0, 0.0\] for the first\)"):
            net(x.expand(len(bad) if isinstance(bad[0], list) else 1, -1, -1, -1), style=bad)
    with torch.no_grad():
        torch.testing.assert_close(net(x, style=[0.0, 1.0, 0.0]), net(x, style=1))


def test_gallery_out_under_a_file_is_a_clear_message(tmp_path, capsys):
    blocker = tmp_path / "some" / "file"
    blocker.parent.mkdir()
    blocker.write_text("a file")
    for out in (blocker / "below", blocker):
        assert cli.main(["gallery", "05_occlusion", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"the gallery goes in a folder, but '{blocker}' is a file: give an output folder (--out DIR" in err
        assert "Traceback" not in err


def test_occlusion_gives_the_model_back_exactly_with_size_one_weight_dimensions():
    torch.manual_seed(0)
    # conv 0 (4, 1, 3, 3) and conv 4 (1, 4, 1, 1) have size-1 dimensions: contiguous in both memory formats
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 3)).eval()
    x = torch.randn(2, 1, 12, 12)
    strides = {n: p.stride() for n, p in model.named_parameters()}
    storage = {n: p.data_ptr() for n, p in model.named_parameters()}
    before = model(x)
    fast = attribution.occlusion(model, x, 1, patch=3, stride=2)
    assert {n: p.stride() for n, p in model.named_parameters()} == strides
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == storage        # the very tensors
    assert torch.equal(model(x), before)                                   # exactly, not within a tolerance
    torch.testing.assert_close(attribution.occlusion(model, x, 1, patch=3, stride=2, fast=False), fast)
    with attribution.channels_last(model):
        assert model[2].weight.is_contiguous(memory_format=torch.channels_last)      # the fast path inside
        assert not model[2].weight.is_contiguous()
    assert {n: p.stride() for n, p in model.named_parameters()} == strides


def test_occlusion_announces_a_long_run(teaching, monkeypatch):
    x = teaching.preprocess(torch.rand(1, 1, 28, 28))
    monkeypatch.setattr(attribution, "MANY_PASSES", 100)
    with pytest.warns(UserWarning, match=r"occlusion: 169 forward passes \(1 image\(s\) of 28x28 px, 169 placements "
                                         r"of a 4 px patch every 2 px\); a larger stride or patch"):
        attribution.occlusion(teaching.model, x, 1, patch=4, stride=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attribution.occlusion(teaching.model, x, 1, patch=4, stride=4, progress=False)       # 49 passes: nothing said


@pytest.mark.parametrize("load", ["teaching", "vit_tiny", "random-multiscale"])
def test_loaders_leave_the_global_random_stream_alone(load):
    torch.manual_seed(3)
    state = torch.get_rng_state()
    made = {"teaching": lambda: zoo.load("teaching").model, "vit_tiny": lambda: vit.load("tiny").model,
            "random-multiscale": lambda: style.feature_net("random-multiscale").model}[load]()
    assert torch.equal(torch.get_rng_state(), state)
    assert not any(t.is_meta for t in [*made.parameters(), *made.buffers()])
    again = {"random-multiscale": lambda: style.feature_net("random-multiscale").model}.get(load)
    if again is not None:                                 # the filters come from their own seeded generator
        assert all(torch.equal(a, b) for a, b in zip(made.parameters(), again().parameters()))
