import copy

import pytest
import torch
from torch import nn

import lecturekit as lk
from lecturekit import attribution
from lecturekit import hooks


class Quadrant(nn.Module):
    """Zero every activation outside the top-left quadrant."""
    def forward(self, a):
        mask = torch.zeros_like(a)
        mask[..., : a.shape[2] // 2, : a.shape[3] // 2] = 1
        return a * mask


def quadrant_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), Quadrant(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2)).eval()


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [p.requires_grad for p in model.parameters()],
            [m.training for m in model.modules()])


def assert_unchanged(model, before, x):
    state, flags, modes = snapshot(model)
    assert all(torch.equal(state[k], before[0][k]) for k in state)
    assert flags == before[1] and modes == before[2] and hooks.count(model) == 0


def test_linear_model_saliency_is_abs_weight_max_over_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 5, 6))
    x = torch.randn(2, 3, 4, 5)
    sal = attribution.saliency(model, x, [1, 4])
    w = model[1].weight.detach().view(6, 3, 4, 5).abs().amax(1)
    torch.testing.assert_close(sal, torch.stack([w[1], w[4]]))


def test_occlusion_heat_only_in_the_looked_at_quadrant():
    model = quadrant_model()
    x = torch.randn(1, 3, 16, 16)
    base = model(x).softmax(1)[0, 1]
    occ = attribution.occlusion(model, x, 1, patch=4, stride=4)
    assert occ.shape == (1, 16, 16)
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[:12, :12] = False                  # windows there can reach the quadrant through the 3x3 conv
    torch.testing.assert_close(occ[0][outside], base.expand(int(outside.sum())))
    assert (occ[0, :8, :8] - base).abs().max() > 1e-4


def test_grad_cam_heat_only_in_the_looked_at_quadrant():
    model = quadrant_model()
    maps = attribution.grad_cam(model, torch.randn(3, 3, 16, 16), [0, 1, 1], layer="2")
    assert maps.shape == (3, 16, 16) and (maps >= 0).all()
    assert maps[:, 8:, :].abs().max() == 0 and maps[:, :, 8:].abs().max() == 0


def test_guided_backprop_and_deconvnet_rules_by_hand():
    w = torch.tensor([[1.0, -2.0, 3.0, -4.0]])
    model = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(4, 1, bias=False))
    model[2].weight.data[:] = w
    x = torch.tensor([2.0, 1.0, -1.0, -3.0]).view(1, 1, 1, 4)
    gb = attribution.guided_backprop(model, x, 0, reduce=None).flatten()
    dc = attribution.deconvnet(model, x, 0, reduce=None).flatten()
    plain = attribution.saliency(model, x, 0, reduce=None).flatten()
    # guided: zero where the forward input was negative OR the gradient was negative
    assert gb.tolist() == [1.0, 0.0, 0.0, 0.0]
    # deconvnet: the positive part of the gradient, whatever the input
    assert dc.tolist() == [1.0, 0.0, 3.0, 0.0]
    # plain gradient: the ReLU's input mask only
    assert plain.tolist() == [1.0, -2.0, 0.0, 0.0]


def test_guided_backprop_zero_where_relu_input_negative_on_a_cnn(tiny_cnn):
    x = torch.randn(1, 3, 8, 8)
    x[0, :, :4] = -5.0                      # first ReLU sees only its conv output; check at that layer instead
    with hooks.capture(tiny_cnn, "0") as rec:
        tiny_cnn(x)
    neg = rec.activations["0"][0] <= 0      # (4, 8, 8): where the first ReLU's input was not positive
    grads = {}

    def grab(module, inp, out):
        out.register_hook(lambda g: grads.setdefault("conv_out", g))
    h = tiny_cnn[0].register_forward_hook(grab)
    try:
        with attribution.relu_rule(tiny_cnn, attribution._GuidedReLU):
            xx = x.clone().requires_grad_(True)
            tiny_cnn(xx)[0, 1].backward()
    finally:
        h.remove()
    assert (grads["conv_out"][0][neg] == 0).all() and (grads["conv_out"] >= 0).all()
    assert hooks.count(tiny_cnn) == 0


def test_relu_rule_is_the_guided_formula_and_leaves_every_relu_as_it_was():
    relu, other = nn.ReLU(inplace=True), nn.ReLU()
    other.forward = lambda t: t.clamp(min=0)                     # a forward someone set on the instance
    model = nn.Sequential(nn.Linear(5, 5), relu, nn.Linear(5, 5), other)
    inp = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(4, 5, dtype=torch.float64)
    for rule, expected in ((attribution._GuidedReLU, grad.clamp(min=0) * (inp > 0)), (attribution._DeconvReLU, grad.clamp(min=0))):
        out = rule.apply(inp)
        g, = torch.autograd.grad(out, inp, grad)
        assert out.dtype == torch.float64 and torch.equal(out, inp.clamp(min=0)) and torch.equal(g, expected)
    mine = other.forward
    with pytest.raises(RuntimeError, match="inside"):
        with attribution.relu_rule(model, attribution._GuidedReLU):
            assert relu.forward == attribution._GuidedReLUFast.apply == other.forward    # plain ReLUs: the fast path
            raise RuntimeError("inside")
    assert "forward" not in relu.__dict__ and other.forward is mine and relu.inplace
    with pytest.raises(ValueError, match="has no nn.ReLU, nn.ReLU6"):
        with attribution.relu_rule(nn.Sequential(nn.Linear(2, 2)), attribution._GuidedReLU):
            pass


def test_cam_equals_grad_cam_up_to_scale_on_gap_linear(teaching):
    imgs, labels = lk.teaching.load_sample()
    x = teaching.preprocess(imgs[:6])
    c = attribution.cam(teaching.model, x, labels[:6], upsample=False)
    g = attribution.grad_cam(teaching.model, x, labels[:6], layer="relu4", upsample=False)
    h, w = c.shape[1:]
    torch.testing.assert_close(g, c.clamp(min=0) / (h * w), atol=1e-6, rtol=1e-4)
    assert attribution.cam(teaching.model, x, 3).shape == (6, 28, 28)


@pytest.mark.parametrize("name", list(attribution.METHODS))
def test_shapes_batches_and_model_restored(name, teaching):
    imgs, labels = lk.teaching.load_sample()
    model = teaching.model
    x = teaching.preprocess(imgs[:3])
    x_before = x.clone()
    before = snapshot(model)
    out_before = model(x)
    options = {"grad_cam": {"layer": "relu3"}, "guided_grad_cam": {"layer": "relu3"},
               "occlusion": {"patch": 7, "stride": 7}, "smoothgrad": {"samples": 4},
               "integrated_gradients": {"steps": 8}}.get(name, {})
    maps = attribution.METHODS[name](model, x, labels[:3], **options)
    assert maps.shape == (3, 28, 28) and torch.isfinite(maps).all()
    # one image at a time gives the same maps (no cross-talk in the batch); smoothgrad's noise is
    # drawn image after image, so the second image alone is the second call on one generator
    if name == "smoothgrad":
        gen = torch.Generator().manual_seed(0)
        options = dict(options, generator=gen)
        attribution.smoothgrad(model, x[:1], int(labels[0]), **options)
    one = attribution.METHODS[name](model, x[1:2], int(labels[1]), **options)
    torch.testing.assert_close(one[0], maps[1], atol=1e-5, rtol=1e-4)
    assert torch.equal(x, x_before)
    assert_unchanged(model, before, x)
    torch.testing.assert_close(model(x), out_before)


def test_restored_even_when_a_method_raises(teaching):
    model = teaching.model
    model.train()
    model.conv1.weight.requires_grad_(True)
    before = snapshot(model)
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match=r"classes 0..9"):
        attribution.guided_backprop(model, x, 42)
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        attribution.grad_cam(model, x, 1, layer="conv9")
    assert_unchanged(model, before, x)
    model.eval()
    model.conv1.weight.requires_grad_(False)


def test_neuron_targets_and_bad_inputs(teaching):
    x = teaching.preprocess(torch.rand(2, 1, 28, 28))
    m = attribution.guided_backprop(teaching.model, x, 5, neuron="relu3")
    assert m.shape == (2, 28, 28)
    # a unit of relu1 (5x5 receptive field) only sees pixels within 2 of its position
    act = hooks.activations(teaching.model, x[:1], "relu1")["relu1"][0, 5]
    r, c = divmod(int(act.argmax()), 28)
    g = attribution.saliency(teaching.model, x[:1], 5, neuron="relu1", position=(r, c))[0]
    rows, cols = torch.nonzero(g).unbind(1)
    assert len(rows) and rows.min() >= r - 2 and rows.max() <= r + 2 and cols.min() >= c - 2 and cols.max() <= c + 2
    with pytest.raises(ValueError, match="outside the 28x28 map"):
        attribution.saliency(teaching.model, x, 5, neuron="relu1", position=(40, 0))
    with pytest.raises(ValueError, match=r"channel of relu4 \[200, 200\] out of range: valid channels are 0..127"):
        attribution.saliency(teaching.model, x, 200, neuron="relu4")
    with pytest.raises(ValueError, match="one per image"):
        attribution.saliency(teaching.model, x, [1, 2, 3])
    assert attribution.saliency(teaching.model, x[0], 1).shape == (1, 28, 28)      # one (C, H, W) image is a batch of one
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        attribution.saliency(teaching.model, x[0, 0], 1)
    with pytest.raises(ValueError, match="patch must be in"):
        attribution.occlusion(teaching.model, x, 1, patch=40)
    with pytest.raises(ValueError, match="reduce must be"):
        attribution.saliency(teaching.model, x, 1, reduce="mean")


def test_cam_needs_gap_linear():
    from torchvision.models import get_model
    with pytest.raises(ValueError, match="CAM needs global average pooling.*grad_cam"):
        attribution.cam(get_model("squeezenet1_1").eval(), torch.zeros(1, 3, 64, 64), 1)
    feed, fc = attribution.gap_linear(get_model("resnet18"))
    assert feed == "layer4" and fc.out_features == 1000


def test_occlusion_gives_the_memory_layout_back(tiny_cnn):
    x = torch.randn(1, 3, 8, 8)
    a = attribution.occlusion(tiny_cnn, x, 1, patch=2, stride=2)
    assert all(p.is_contiguous() for p in tiny_cnn.parameters())
    b = attribution.occlusion(tiny_cnn, x, 1, patch=2, stride=2, batch_size=3)
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- any model, returned as it was

def inplace_model():
    """A classifier as users pass it: in-place ReLUs, trainable weights, train mode, a hook of its own."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(6, 6, 3, padding=1),
                          nn.BatchNorm2d(6), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(6, 4))
    model[3].running_var.fill_(2.0)
    model.train()
    model[0].register_forward_hook(lambda m, i, o: None)
    return model


def full_state(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [p.requires_grad for p in model.parameters()],
            [m.training for m in model.modules()], [getattr(m, "inplace", None) for m in model.modules()],
            hooks.count(model), [p.grad for p in model.parameters()])


def assert_same_state(model, before):
    after = full_state(model)
    assert all(torch.equal(after[0][k], v) for k, v in before[0].items())
    assert after[1:5] == before[1:5] and all(g is None for g in after[5])


CALLS = {"occlusion": {"patch": 4, "stride": 4}, "saliency": {}, "gradient_x_input": {},
         "smoothgrad": {"samples": 3}, "integrated_gradients": {"steps": 4}, "deconvnet": {},
         "guided_backprop": {}, "deeplift": {}, "cam": {}, "grad_cam": {"layer": "2"},
         "guided_grad_cam": {"layer": "2"}}


@pytest.mark.parametrize("name", list(attribution.METHODS))
def test_any_model_comes_back_exactly_as_it_was(name):
    assert set(CALLS) == set(attribution.METHODS)
    model = inplace_model()
    before = full_state(model)
    x = torch.randn(2, 3, 8, 8)
    attribution.METHODS[name](model, x, [1, 2], **CALLS[name])
    assert_same_state(model, before)
    with pytest.raises(ValueError, match="out of range"):
        attribution.METHODS[name](model, x, 9, **CALLS[name])
    assert_same_state(model, before)


def test_inplace_relus_give_the_same_maps_as_out_of_place_ones():
    model = inplace_model().eval()
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x = torch.randn(2, 3, 8, 8)
    for name in ("deconvnet", "guided_backprop", "grad_cam", "guided_grad_cam"):
        torch.testing.assert_close(attribution.METHODS[name](model, x, 1, **CALLS[name]),
                                   attribution.METHODS[name](plain, x, 1, **CALLS[name]))
    # the deconvnet rule by hand: a ReLU passes back the positive part of its gradient, nothing else
    w = plain[7].weight[1]                                           # fc row of class 1 (6,)
    with torch.enable_grad():
        xx = x.clone().requires_grad_(True)
        a1 = plain[0](xx).clamp(min=0)
        a2 = plain[3](plain[2](a1))
        pooled_grad = (w / 64).clamp(min=0)[None, :, None, None].expand_as(a2)   # through GAP, then the ReLU rule
        g_a1, = torch.autograd.grad(a2, a1, pooled_grad)
        g_x, = torch.autograd.grad(plain[0](xx), xx, g_a1.clamp(min=0))
    torch.testing.assert_close(attribution.deconvnet(model, x, 1, reduce=None), g_x)


def test_grad_cam_needs_no_input_gradient():
    """The backward pass starts at the map layer: the conv before it is never differentiated."""
    model = inplace_model().eval()                  # its weights ask for gradients
    called = []
    h = model[0].register_forward_hook(lambda m, i, o: called.append(o.requires_grad))
    try:
        attribution.grad_cam(model, torch.randn(1, 3, 8, 8), 1, layer="2")
        attribution.saliency(model, torch.randn(1, 3, 8, 8), 1)
    finally:
        h.remove()
    assert called == [False, True]


# ---------------------------------------------------------------- the new methods by hand and by property

def test_gradient_x_input_of_a_linear_model_is_each_pixel_share_of_the_score():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4, bias=False))
    x = torch.randn(2, 2, 3, 3)
    heat = attribution.gradient_x_input(model, x, [0, 3])
    w = model[1].weight.detach().view(4, 2, 3, 3)
    torch.testing.assert_close(heat, (x * w[[0, 3]]).sum(1))
    torch.testing.assert_close(heat.sum((1, 2)), model(x)[[0, 1], [0, 3]])


@pytest.mark.parametrize("rule", attribution.RULES)
def test_integrated_gradients_completeness(teaching, rule):
    """Summed over pixels, the map is score(x) - score(baseline), up to the quadrature error."""
    x = teaching.preprocess(lk.teaching.load_sample()[0][:2])
    base = torch.full_like(x, teaching.blank)
    heat = attribution.integrated_gradients(teaching.model, x, [1, 7], baseline=base, steps=64, rule=rule)
    with torch.no_grad():
        gap = teaching.model(x)[:, [1, 7]].diagonal() - teaching.model(base)[:, [1, 7]].diagonal()
    tol = 0.02 if rule == "gausslegendre" or rule == "middle" else 0.15
    torch.testing.assert_close(heat.sum((1, 2)), gap, rtol=tol, atol=tol * float(gap.abs().max()))
    coarse = attribution.integrated_gradients(teaching.model, x, [1, 7], baseline=teaching.blank, steps=64, rule=rule,
                                    batch_size=5)
    torch.testing.assert_close(coarse, heat)                      # batching and a number baseline change nothing


def test_integrated_gradients_of_a_quadratic_by_hand():
    """score = sum(x^2): the gradient 2 a x is linear on the path, so the midpoint rule is exact and
    the attribution is x^2 for every pixel."""
    class Square(nn.Module):
        def forward(self, x):
            return (x ** 2).flatten(1).sum(1, keepdim=True)
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    heat = attribution.integrated_gradients(Square(), x, 0, steps=3, reduce=None)
    torch.testing.assert_close(heat, x ** 2)
    left = attribution.integrated_gradients(Square(), x, 0, steps=4, rule="left", reduce=None)
    torch.testing.assert_close(left, 2 * x ** 2 * (0 + 1 + 2 + 3) / 16)    # 2 x^2 * sum(k/4) / 4


def test_smoothgrad_with_no_noise_is_the_gradient_and_noise_follows_the_generator(teaching):
    x = teaching.preprocess(torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(attribution.smoothgrad(teaching.model, x, 3, noise=0.0, samples=2),
                               attribution.saliency(teaching.model, x, 3))
    a = attribution.smoothgrad(teaching.model, x, 3, samples=6, batch_size=4, generator=torch.Generator().manual_seed(1))
    b = attribution.smoothgrad(teaching.model, x, 3, samples=6, batch_size=6, generator=torch.Generator().manual_seed(1))
    c = attribution.smoothgrad(teaching.model, x, 3, samples=6, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(attribution.smoothgrad(teaching.model, x, 3, samples=6),
                               attribution.smoothgrad(teaching.model, x, 3, samples=6))     # default: a fresh generator
    state = torch.random.get_rng_state()
    attribution.smoothgrad(teaching.model, x, 3, samples=2)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_smoothgrad_noise_scale_matches_the_image_range():
    """On a model whose gradient is x itself (score = sum(x^2) / 2), SmoothGrad's mean gradient is
    x + mean noise, and the spread of single-sample maps is the noise std: noise * (max - min)."""
    class HalfSquare(nn.Module):
        def forward(self, x):
            return (x ** 2).flatten(1).sum(1, keepdim=True) / 2
    x = torch.linspace(-1, 3, 64 * 64, dtype=torch.float64).view(1, 1, 64, 64)   # range 4
    one = attribution.smoothgrad(HalfSquare(), x, 0, samples=1, noise=0.1, reduce=None)
    assert float((one - x).std()) == pytest.approx(0.4, rel=0.03)
    many = attribution.smoothgrad(HalfSquare(), x, 0, samples=100, noise=0.1, reduce=None)
    assert float((many - x).std()) == pytest.approx(0.04, rel=0.05)


# ---------------------------------------------------------------- one call shape

def test_keywords_mean_one_thing_and_wrong_ones_say_which_is_meant(teaching):
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match=r"saliency has no layer=; to explain a unit of an intermediate layer give "
                                         r"neuron=.*Valid layer names: conv1, bn1"):
        attribution.saliency(teaching.model, x, 1, layer="relu3")
    with pytest.raises(ValueError, match="cam explains a class score and has no neuron="):
        attribution.cam(teaching.model, x, 1, neuron="relu3")
    with pytest.raises(ValueError, match=r"grad_cam takes \(model, x, target\) and its options by keyword "
                                         r"\(layer=, neuron="):
        attribution.grad_cam(teaching.model, x, 1, "relu3")
    with pytest.raises(ValueError, match="smoothgrad has no option steps=. Its options: samples, noise"):
        attribution.smoothgrad(teaching.model, x, 1, steps=3)
    with pytest.raises(ValueError, match="position= is a place in the map of neuron="):
        attribution.saliency(teaching.model, x, 1, position=(1, 1))
    with pytest.raises(ValueError, match="neuron relu2 comes before it"):
        attribution.grad_cam(teaching.model, x, 1, layer="relu4", neuron="relu2")
    with pytest.raises(ValueError, match="rule must be one of 'left', 'right', 'middle', 'gausslegendre'"):
        attribution.integrated_gradients(teaching.model, x, 1, rule="simpson")
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        attribution.smoothgrad(teaching.model, x, 1, noise=-1)
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        attribution.smoothgrad(teaching.model, x, 1, generator=0)
    with pytest.raises(ValueError, match=r"baseline of shape \(2, 2\) does not broadcast"):
        attribution.integrated_gradients(teaching.model, x, 1, baseline=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="samples must be a whole number >= 1, not 0"):
        attribution.smoothgrad(teaching.model, x, 1, samples=0)


def test_every_gradient_method_explains_a_neuron_the_same_way(teaching):
    """neuron= and position= mean the same in every method: a relu1 unit sees only its 5x5 window."""
    x = teaching.preprocess(torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    for name in ("saliency", "gradient_x_input", "smoothgrad", "integrated_gradients", "deconvnet",
                 "guided_backprop", "deeplift"):
        heat = attribution.METHODS[name](teaching.model, x, 5, neuron="relu1", position=(10, 12), reduce="sum_abs")[0]
        outside = torch.ones(28, 28, dtype=torch.bool)
        outside[8:13, 10:15] = False
        assert heat[outside].abs().max() == 0 and heat[~outside].abs().max() > 0, name
    # Grad-CAM of a neuron, maps at the layer below: the same as at the neuron's layer by hand
    g = attribution.grad_cam(teaching.model, x, 3, layer="relu3", neuron="relu4", upsample=False)
    with hooks.capture(teaching.model, ["relu3", "relu4"], detach=False) as rec, torch.enable_grad():
        xx = x.clone().requires_grad_(True)
        teaching.model(xx)
        a3 = rec.activations["relu3"]
        grad, = torch.autograd.grad(rec.activations["relu4"][0, 3].max(), a3)
    torch.testing.assert_close(g, torch.relu((grad.mean((2, 3), keepdim=True) * a3).sum(1)))


def test_the_fast_guided_relu_is_the_readable_rule():
    """The guided rule's speed path for plain ReLUs (one backward kernel) gives the readable rule's gradient."""
    inp = torch.randn(4, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    inp[0, 0, 0, :2] = 0.0                                        # the kink itself: no gradient either way
    grad = torch.randn(4, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    results = []
    for rule in (attribution._GuidedReLU, attribution._GuidedReLUFast):
        x = inp.clone().requires_grad_(True)
        out = rule.apply(x)
        results.append((out, *torch.autograd.grad(out, x, grad)))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert torch.equal(results[0][1], grad.clamp(min=0) * (inp > 0))


def _deeplift_net():
    """Convolutions, ReLU, ReLU6, an ELU, average pooling and a linear layer, in float64: a network on
    which DeepLIFT's map adds up to the score difference exactly."""
    torch.manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.AvgPool2d(2),
                            nn.Conv2d(8, 8, 3), nn.ReLU6(), nn.Conv2d(8, 6, 1), nn.ELU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten(), nn.Linear(6, 5))
    return net.double().eval()


def test_deeplift_sums_to_the_score_difference():
    net = _deeplift_net()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 3, 12, 12, generator=gen, dtype=torch.float64)
    base = 0.3 * torch.randn(3, 3, 12, 12, generator=gen, dtype=torch.float64)
    target = [1, 4, 0]
    heat = attribution.deeplift(net, x, target, baseline=base)
    with torch.no_grad():
        delta = net(x)[range(3), target] - net(base)[range(3), target]
    torch.testing.assert_close(heat.sum((1, 2)), delta, rtol=1e-10, atol=1e-12)
    # a unit of an inner layer: its activation at the place it fires most on the input, minus at the baseline
    heat = attribution.deeplift(net, x, 2, baseline=base, neuron="4")
    with torch.no_grad():
        a, a0 = hooks.activations(net, x, "4")["4"][:, 2].flatten(1), hooks.activations(net, base, "4")["4"][:, 2].flatten(1)
        where = a.argmax(1, keepdim=True)
        delta = (a.gather(1, where) - a0.gather(1, where))[:, 0]
    torch.testing.assert_close(heat.sum((1, 2)), delta, rtol=1e-10, atol=1e-12)


def test_deeplift_is_gradient_times_input_without_nonlinearities():
    """Every multiplier of a linear network is its gradient: (x - x') * grad, and with x' = 0 gradient x input."""
    lin = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 3)).double()
    gen = torch.Generator().manual_seed(4)
    x, base = torch.randn(2, 2, 3, 8, 8, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(attribution.deeplift(lin, x, 1), attribution.gradient_x_input(lin, x, 1),
                               rtol=1e-10, atol=1e-12)
    grad = attribution.gradient_x_input(lin, torch.ones_like(x), 1, reduce=None)      # the (constant) gradient
    torch.testing.assert_close(attribution.deeplift(lin, x, 1, baseline=base), ((x - base) * grad).sum(1),
                               rtol=1e-10, atol=1e-12)


def test_the_rescale_rule_by_hand():
    """One ReLU: the multiplier is (relu(a) - relu(a')) / (a - a'), and relu's derivative where a = a'."""
    a = torch.tensor([-2.0, -1.0, 0.5, 3.0, 1.0], dtype=torch.float64)
    a0 = torch.tensor([1.0, -3.0, -0.5, 1.0, 1.0], dtype=torch.float64)
    both = torch.cat([a, a0]).requires_grad_(True)
    out = attribution._Rescale.apply(both, torch.relu)
    grad, = torch.autograd.grad(out, both, torch.ones_like(out))
    expected = torch.tensor([1 / 3, 0.0, 0.5, 1.0, 1.0], dtype=torch.float64)   # (0-1)/(-3), 0/2, 0.5/1, 2/2, a = a'
    torch.testing.assert_close(grad[:5], expected)
    torch.testing.assert_close(grad[5:], expected)
