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

from lecturekit import __main__ as cli
from lecturekit import ascent, attribution as A, faststyle, features, gallery, hooks, images, receptive
from lecturekit import sanity, style, zoo


@pytest.fixture
def x(teaching):
    torch.manual_seed(0)
    return teaching.preprocess(torch.rand(2, 1, 28, 28))


GRADIENT_METHODS = [A.saliency, A.guided_backprop, A.deconvnet]


def _all_methods(model, x, target):
    """Every attribution method with ``target`` (layers chosen for the teaching model)."""
    return {"saliency": lambda: A.saliency(model, x, target),
            "guided_backprop": lambda: A.guided_backprop(model, x, target),
            "deconvnet": lambda: A.deconvnet(model, x, target),
            "grad_cam": lambda: A.grad_cam(model, x, target, layer="relu3"),
            "guided_grad_cam": lambda: A.guided_grad_cam(model, x, target, layer="relu3"),
            "cam": lambda: A.cam(model, x, target),
            "occlusion": lambda: A.occlusion(model, x, target, patch=7, stride=7),
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
        A.saliency(tiny_cnn, x, "cat")
    tiny_cnn.classes = ["cat", "dog", "bird"]          # a model that carries them
    torch.testing.assert_close(A.saliency(tiny_cnn, x, "dog"), A.saliency(tiny_cnn, x, 1))


def test_channel_targets_are_whole_numbers(teaching, x):
    with pytest.raises(ValueError, match="channel of relu3 must be an integer channel index, not 'Trouser'"):
        A.saliency(teaching.model, x, "Trouser", neuron="relu3")
    with pytest.raises(ValueError, match="channel of relu3 must be an integer index .* not a float 2.5"):
        A.guided_backprop(teaching.model, x, 2.5, neuron="relu3")
    assert A.saliency(teaching.model, x, np.int64(2), neuron="relu3").shape == (2, 28, 28)


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
        A.saliency(teaching.model, torch.rand(1, 3, 28, 28), 1)
    # the teaching bundle's preprocess converts an RGB image, as the message says
    assert A.saliency(teaching.model, teaching.preprocess(torch.rand(1, 3, 28, 28)), 1).shape == (1, 28, 28)
    from torchvision.models import get_model
    rgb = zoo.prepare(get_model("squeezenet1_1", weights=None))
    with pytest.raises(ValueError, match=r"x has 1 channels but SqueezeNet takes 3 \(RGB\).*"
                                         r"a grayscale image for an RGB model: img.expand\(-1, 3, -1, -1\)"):
        A.grad_cam(rgb, torch.rand(1, 1, 64, 64), 1, layer="features.12")
    with pytest.raises(ValueError, match=r"the \(preprocessed\) images has 3 channels but TeachingNet takes 1"):
        features.extract(teaching.model, torch.rand(4, 3, 28, 28), "relu2", progress=False)


def test_layers_are_named_by_strings(teaching, x):
    msg = r"TeachingNet has no layer 3 \(layers are named by strings, not int\). Valid layer names: conv1, bn1"
    for call in (lambda: A.grad_cam(teaching.model, x, 1, layer=3),
                 lambda: A.saliency(teaching.model, x, 1, neuron=3),
                 lambda: A.cam(teaching.model, x, 1, layer=3),
                 lambda: hooks.activations(teaching.model, x, 3),
                 lambda: hooks.capture(teaching.model, 3).__enter__(),
                 lambda: features.extract(teaching.model, torch.rand(2, 1, 28, 28), 3, progress=False),
                 lambda: receptive.gradient_box(teaching.model, 3, 28, 1),
                 lambda: ascent.deepdream(teaching.model, torch.rand(1, 1, 28, 28), 3, teaching.preprocess)):
        with pytest.raises(ValueError, match=msg):
            call()
    with pytest.raises(ValueError, match=r"has no layer None \(layers are named by strings, not NoneType\)"):
        A.grad_cam(teaching.model, x, 1, layer=None)
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
        A.occlusion(teaching.model, x, 1, **kwargs)
    assert message in str(err.value)


def test_occlusion_takes_numpy_integers(teaching, x):
    torch.testing.assert_close(A.occlusion(teaching.model, x, 1, patch=np.int64(7), stride=np.int32(7),
                                           batch_size=np.int64(3), fill=np.float32(0.5)),
                               A.occlusion(teaching.model, x, 1, patch=7, stride=7, batch_size=3, fill=0.5))


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
    path = zoo.weights_path("squeezenet1_1")
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
    "saliency": lambda m, x: A.saliency(m, x, 1),
    "grad_cam": lambda m, x: A.grad_cam(m, x, 1, layer="relu2"),
    "cam": lambda m, x: A.cam(m, x, 1),
    "occlusion": lambda m, x: A.occlusion(m, x, 1, patch=4, stride=4),
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
