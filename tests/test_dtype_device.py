"""Every technique follows the dtype and device of its inputs (or its model).

The CPU stand-in for "the GPU on Colab": a model and input in float64 must give float64 results
on the input's device; a constant made on the CPU in float32 and mixed in would either fail or
silently downcast. Where it is cheap, the float64 results are also compared with float32 ones
(a silent downcast to float32 somewhere in between would still give float64 outputs).
"""
import copy
import dataclasses

import pytest
import torch

from lecturekit import ascent, attribution, faststyle, features, hooks, receptive, sanity, style
from lecturekit import losses, teaching, texture, vit, zoo

F64 = torch.float64
CPU = torch.device("cpu")


def check(*results, dtype=F64, device=CPU):
    """Every tensor in ``results`` (nested in tuples, lists and dicts) has ``dtype`` (None: any) and ``device``."""
    for r in results:
        if isinstance(r, dict):
            check(*r.values(), dtype=dtype, device=device)
        elif isinstance(r, (tuple, list)):
            check(*r, dtype=dtype, device=device)
        else:
            assert isinstance(r, torch.Tensor), type(r)
            assert r.dtype == (dtype or r.dtype) and r.device == device, f"{tuple(r.shape)}: {r.dtype} on {r.device}"


def close(a64, a32, atol=1e-5, rtol=1e-4):
    torch.testing.assert_close(a64, a32.double(), atol=atol, rtol=rtol)


@pytest.fixture
def cnn(tiny_cnn):
    """(float32 model, float64 copy): conv 3->4, ReLU, conv 4->2, ReLU, GAP, flatten, linear 2->3."""
    return tiny_cnn.eval(), copy.deepcopy(tiny_cnn).double().eval()


@pytest.fixture
def x32():
    return torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- attribution and sanity checks

ATTRIBUTION_ARGS = {"occlusion": {"patch": 4, "stride": 2}, "grad_cam": {"layer": "3"},
                    "guided_grad_cam": {"layer": "3"}}


@pytest.mark.parametrize("name", sorted(attribution.METHODS))
def test_attribution_maps(cnn, x32, name):
    m32, m64 = cnn
    method = attribution.METHODS[name]
    kwargs = ATTRIBUTION_ARGS.get(name, {})
    heat = method(m64, x32.double(), [0, 2], **kwargs)
    check(heat)
    assert heat.shape == (2, 12, 12)
    close(heat, method(m32, x32, [0, 2], **kwargs))


def test_layer_saliency_and_unreduced_gradients(cnn, x32):
    m32, m64 = cnn
    check(attribution.saliency(m64, x32.double(), 1, neuron="2", position=(3, 3)),
          attribution.guided_backprop(m64, x32.double(), 0, reduce=None), attribution.grad_cam(m64, x32.double(), 0, layer="3", upsample=False),
          attribution.cam(m64, x32.double(), 0, upsample=False))


def test_sanity_randomisation_and_rank_correlation(cnn, x32):
    _, m64 = cnn
    x = x32.double()
    rand = sanity.randomized(m64, 2)
    assert all(p.dtype == F64 for p in rand.parameters())
    a, b = attribution.saliency(m64, x, 0), attribution.saliency(rand, x, 0)
    check(a, b)
    assert -1 <= sanity.rank_correlation(a, b) <= 1


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_deletion_and_insertion_curves(cnn, x32, mode):
    m32, m64 = cnn
    heat = attribution.saliency(m32, x32, [0, 2])
    fractions, probs = sanity.deletion_curve(m64, x32.double(), [0, 2], heat.double(), steps=6, mode=mode)
    check(fractions, probs, sanity.auc(fractions, probs))
    f32, p32 = sanity.deletion_curve(m32, x32, [0, 2], heat, steps=6, mode=mode)
    check(f32, p32, dtype=torch.float32)
    close(fractions, f32)
    close(probs, p32)


# ---------------------------------------------------------------- gradient ascent


def _start(kind, dtype):
    gen = torch.Generator().manual_seed(1)
    if kind == "fourier":
        return ascent.Fourier(1, 12, 12, generator=gen, dtype=dtype)
    return ascent.Pixels.noise(1, 3, 12, 12, generator=gen, dtype=dtype)


@pytest.mark.parametrize("kind", ["pixels", "fourier"])
def test_ascent_loop_with_transforms_and_penalties(cnn, kind):
    m32, m64 = cnn
    transforms = [ascent.jitter(1), ascent.random_scale((0.9, 1.0, 1.1))]
    penalties = [ascent.l2(1e-3), ascent.tv(1e-2)]
    post = [ascent.decay(0.01), ascent.blur_every(2, 0.5), ascent.clamp()] if kind == "pixels" else []
    results = {}
    for dtype, model in ((torch.float32, m32), (F64, m64)):
        param = _start(kind, dtype)
        check(param.image(), dtype=dtype)
        results[dtype] = ascent.ascend(model, ascent.class_score(1) + ascent.channel("2", 0), param, steps=4,
                                       transforms=transforms, penalties=penalties, post=post, snapshot_every=2,
                                       progress=False)
    r = results[F64]
    check(r.image, [img for _, img in r.snapshots])
    close(r.image, results[torch.float32].image)
    assert r.history == pytest.approx(results[torch.float32].history, rel=1e-4, abs=1e-5)


def test_threshold_post_steps_and_lbfgs_keep_float64(cnn):
    _, m64 = cnn
    post = [ascent.zero_small_values(20), ascent.zero_small_contribution(20), ascent.clamp()]
    r = ascent.ascend(m64, ascent.neuron("2", 1), ascent.Pixels.grey(1, 3, 12, 12, dtype=F64), steps=3, post=post,
                      optimizer="sgd", normalize_grad=True, progress=False)
    check(r.image)
    r = ascent.ascend(m64, ascent.layer_norm("3"), ascent.Pixels.zeros(1, 3, 12, 12, dtype=F64), steps=4,
                      optimizer="lbfgs", progress=False)
    check(r.image)


def test_start_images_take_device_and_dtype():
    gen = torch.Generator().manual_seed(0)
    for param in (ascent.Pixels.zeros(1, 3, 4, 4, device="cpu", dtype=F64), ascent.Pixels.grey(1, 3, 4, 4, dtype=F64),
                  ascent.Pixels.noise(1, 3, 4, 4, generator=gen, dtype=F64),
                  ascent.Pixels(torch.rand(1, 3, 4, 4).double()),
                  ascent.Fourier(1, 6, 5, decorrelate=True, dtype=F64)):
        check(param.image(), param.parameters())
    check(ascent.Pixels.zeros(1, 3, 4, 4).image(), dtype=torch.float32)
    check(ascent.Pixels(torch.zeros(1, 3, 4, 4, dtype=torch.uint8)).image(), dtype=torch.float32)
    # the same draw from the CPU generator, whatever the dtype
    a = ascent.Pixels.noise(1, 3, 4, 4, generator=torch.Generator().manual_seed(3)).image()
    b = ascent.Pixels.noise(1, 3, 4, 4, generator=torch.Generator().manual_seed(3), dtype=F64).image()
    close(b, a)


def test_fgsm(cnn, x32):
    _, m64 = cnn
    img = x32.sigmoid().double()
    adv = ascent.fgsm(m64, img, torch.tensor([0, 1]), eps=0.03)
    check(adv)
    assert (adv - img).abs().max() <= 0.03 + 1e-12


def test_deepdream(cnn, x32):
    _, m64 = cnn
    out = ascent.deepdream(m64, x32[:1].sigmoid().double(), "1", octaves=2, steps=2, jitter_px=1, progress=False)
    check(out)
    assert out.shape == (1, 3, 12, 12)


def test_feature_inversion(cnn, x32):
    m32, m64 = cnn
    images = {}
    for dtype, model in ((torch.float32, m32), (F64, m64)):
        x = x32[:1].sigmoid().to(dtype)
        target = hooks.run(model, x, ["3"], detach=False)[0]["3"].detach()
        param = ascent.Pixels.noise(1, 3, 12, 12, generator=torch.Generator().manual_seed(2), dtype=dtype)
        images[dtype] = ascent.ascend(model, losses.feature_match("3", target), param, steps=4, progress=False).image
    check(images[F64])
    close(images[F64], images[torch.float32])


# ---------------------------------------------------------------- style and texture


@pytest.fixture(scope="module")
def style_nets():
    """The offline feature network (random filters of sizes 1, 3, 5), in float32 and float64."""
    net = style.feature_net("random-multiscale", last="relu5")
    return net, dataclasses.replace(net, model=copy.deepcopy(net.model).double())


def _style_images():
    gen = torch.Generator().manual_seed(5)
    return torch.rand(1, 3, 32, 32, generator=gen), torch.rand(1, 3, 32, 32, generator=gen)


def test_gram_matrix_and_style_loss(style_nets):
    net32, net64 = style_nets
    style_img, content = _style_images()
    feats = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    check(style.gram(feats.double()))
    close(style.gram(feats.double()), style.gram(feats))
    targets = style.style_targets(net64, [style_img.double()])
    check(targets)
    close(targets["relu3"], style.style_targets(net32, [style_img])["relu3"])
    check(style.style_targets(net64, style_img))                      # float32 images meet a float64 net
    check(style.check_style_image(style_img.double()))
    values = {}
    for net, dtype in ((net32, torch.float32), (net64, F64)):
        obj = style.style_loss(net, style_img.to(dtype), content_img=content.to(dtype))
        acts, _ = hooks.run(net.model, net.preprocess(content.to(dtype)), list(obj.layers), detach=False)
        values[dtype] = obj(acts, None)
    check(values[F64])
    close(values[F64], values[torch.float32])


@pytest.mark.parametrize("init", ["content", "noise"])
def test_transfer(style_nets, init):
    net32, net64 = style_nets
    style_img, content = _style_images()
    results = {dtype: style.transfer(net, content.to(dtype), style_img.to(dtype), steps=3, optimizer="adam",
                                     init=init, progress=False)
               for net, dtype in ((net32, torch.float32), (net64, F64))}
    check(results[F64].image)
    close(results[F64].image, results[torch.float32].image)


def test_synthesize(style_nets):
    net32, net64 = style_nets
    style_img, _ = _style_images()
    r64 = style.synthesize(net64, style_img.double(), 32, steps=3, optimizer="adam", progress=False)
    r32 = style.synthesize(net32, style_img, 32, steps=3, optimizer="adam", progress=False)
    check(r64.image)
    close(r64.image, r32.image)
    # an explicit dtype wins over the network's
    check(style.synthesize(net32, style_img, 32, steps=1, optimizer="adam", dtype=F64, progress=False).image)


def test_fast_style_losses(style_nets):
    _, net64 = style_nets
    style_img, content = _style_images()
    targets = style.style_targets(net64, [style_img.double()])
    out = torch.rand(1, 3, 32, 32, dtype=F64, requires_grad=True)
    terms = faststyle.loss_terms(net64, out, content.double(), targets, 1.0, 10.0, 1e-3)
    check(terms)


@pytest.mark.parametrize("style_arg", [1, [0.3, 0.7], "single"])
def test_fast_style_network(style_arg):
    torch.manual_seed(0)
    net32 = faststyle.TransformNet(n_styles=2, width=4, blocks=1).eval()
    with torch.no_grad():
        for norm in net32.norms():
            norm.gamma.add_(torch.randn(norm.gamma.shape))
    net64 = copy.deepcopy(net32).double()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    if style_arg == "single":
        one = net64.single([0.3, 0.7])
        assert all(p.dtype == F64 for p in one.parameters())
        y64, y32 = one(x.double()), net32.single([0.3, 0.7])(x)
    else:
        y64, y32 = net64(x.double(), style=style_arg), net32(x, style=style_arg)
    check(y64, net64.style_weights(style_arg if style_arg != "single" else 0, 2))
    close(y64, y32)


def test_efros_leung_follows_the_exemplar():
    exemplar = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0))
    out64 = texture.efros_leung(exemplar.double(), (6, 6), window=5, progress=False)
    out32 = texture.efros_leung(exemplar, (6, 6), window=5, progress=False)
    check(out64)
    check(out32, dtype=torch.float32)
    close(out64, out32, atol=0, rtol=0)          # the same pixels copied from the exemplar


# ---------------------------------------------------------------- features, receptive fields, ViT, teaching


def test_features_extract_and_knn(cnn):
    m32, m64 = cnn
    imgs = torch.rand(12, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(12) % 3
    f64 = features.extract(m64, imgs, ["1", "3"], reduce=features.global_average, batch_size=5, progress=False)
    f32 = features.extract(m32, imgs, ["1", "3"], reduce=features.global_average, batch_size=5, progress=False)
    check(f64)                                               # the CPU, as documented, in the model's dtype
    close(f64["3"], f32["3"])
    check(features.extract(m64, imgs.double(), "1", reduce=features.spatial_max, progress=False)["1"][0])
    assert features.knn_accuracy(f64["1"], labels, k=3) == features.knn_accuracy(f32["1"], labels, k=3)
    assert features.knn_accuracy(f64["1"], labels, k=3, metric="cosine") == \
        features.knn_accuracy(f32["1"], labels, k=3, metric="cosine")
    near64, near32 = features.nearest(f64["1"][0], f64["1"], k=4), features.nearest(f32["1"][0], f32["1"], k=4)
    assert near64.tolist() == near32.tolist()


def test_receptive_field_gradient_check(cnn):
    m32, m64 = cnn
    grad = receptive.unit_gradient(m64, "2", 12)
    check(grad)
    close(grad, receptive.unit_gradient(m32, "2", 12))
    linear = receptive.linearized(m64)
    assert all(p.dtype == F64 for p in linear.parameters())
    rf = receptive.receptive_field(m64, "2")
    assert receptive.gradient_box(linear, "2", 12) == receptive.gradient_box(receptive.linearized(m32), "2", 12) == rf.box(5, 5, 12, 12)
    half = receptive.linearized(copy.deepcopy(m32).to(torch.bfloat16))
    assert all(p.dtype == torch.float32 for p in half.parameters())


def test_vit_attention_maps_and_rollout():
    m32, _ = vit.load_tiny()
    m64 = copy.deepcopy(m32).double()
    imgs, _ = teaching.load_sample()
    x = teaching.preprocess(imgs[:2])
    maps64, maps32 = vit.attention_maps(m64, x.double()), vit.attention_maps(m32, x)
    check(maps64)
    close(maps64[m64.attention_layers[-1]], maps32[m32.attention_layers[-1]])
    heat64 = vit.rollout(maps64)
    check(heat64, vit.rollout(maps64, residual=False), vit.cls_map(heat64, m64.grid),
          vit.upsample(vit.cls_map(heat64, m64.grid), 28))
    close(heat64, vit.rollout(maps32))
    # half-precision maps stay half precision (the identity used to promote them to float32)
    check(vit.rollout([m.half() for m in maps32.values()]), dtype=torch.float16)


def test_teaching_preprocess_and_normalizer():
    img = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    for x in (img.double(), img[:, :1].double()):
        check(teaching.preprocess(x), teaching.deprocess(teaching.preprocess(x)))
        close(teaching.preprocess(x), teaching.preprocess(x.float()))
    pre, de = zoo.normalizer()
    x = img.double()
    check(pre(x), de(pre(x)))
    mean = torch.tensor(zoo.IMAGENET_MEAN, dtype=F64).view(1, 3, 1, 1)
    std = torch.tensor(zoo.IMAGENET_STD, dtype=F64).view(1, 3, 1, 1)
    torch.testing.assert_close(pre(x), (x - mean) / std, atol=0, rtol=0)      # exact float64 constants
    check(pre(img), dtype=torch.float32)


# ---------------------------------------------------------------- a second device without a GPU

# The meta device holds tensors without data: a tensor made on the CPU and mixed in raises "Tensor on
# device meta is not on the expected device cpu", as a CUDA input would. Only functions that never read
# values (no .item(), no data-dependent shapes) can run there. Functions that refuse NaN or infinite
# input before any work read their input, so they (attribution, deletion curves, FGSM, start images,
# receptive fields), the ascent loop, k-NN accuracy and Efros-Leung are checked in float64 above only.
META = torch.device("meta")

META_CASES = {
    "features.nearest": lambda m, x: features.nearest(x[0].flatten(), x.flatten(1), k=1),
    "style.gram": lambda m, x: style.gram(x),
    "vit.rollout": lambda m, x: vit.rollout([x[:, :, :5, :5].softmax(-1)]),
    "faststyle.TransformNet": lambda m, x: [faststyle.TransformNet(2, 4, 1).to(META)(x, style=[0.5, 0.5]),
                                            faststyle.TransformNet(2, 4, 1).to(META)(x, style=1),
                                            faststyle.TransformNet(2, 4, 1).to(META).single([0.5, 0.5]).out.weight],
}


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_results_stay_on_the_input_device(tiny_cnn, case):
    model = tiny_cnn.eval().to(META)
    x = torch.randn(2, 3, 12, 12, device=META)
    check(META_CASES[case](model, x), dtype=None, device=META)


def test_cpu_inputs_go_to_the_model_device(tiny_cnn):
    # a notebook's own input, made on the CPU, meets a model on another device (a GPU on Colab)
    model = tiny_cnn.eval().to(META)
    x = torch.randn(1, 3, 12, 12)
    check(hooks.activations(model, x, ["0", "2"]), hooks.run(model, x, "2", stop=False),
          hooks.run(model, x, ["2"], stop=False, detach=False), receptive.unit_gradient(model, "2", 12, x=x),
          dtype=None, device=META)
