import copy

import pytest
import torch
from torch import nn

from lecturekit import attribution as A
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
    sal = A.saliency(model, x, [1, 4])
    w = model[1].weight.detach().view(6, 3, 4, 5).abs().amax(1)
    torch.testing.assert_close(sal, torch.stack([w[1], w[4]]))


def test_occlusion_heat_only_in_the_looked_at_quadrant():
    model = quadrant_model()
    x = torch.randn(1, 3, 16, 16)
    base = model(x).softmax(1)[0, 1]
    occ = A.occlusion(model, x, 1, patch=4, stride=4)
    assert occ.shape == (1, 16, 16)
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[:12, :12] = False                  # windows there can reach the quadrant through the 3x3 conv
    torch.testing.assert_close(occ[0][outside], base.expand(int(outside.sum())))
    assert (occ[0, :8, :8] - base).abs().max() > 1e-4


def test_grad_cam_heat_only_in_the_looked_at_quadrant():
    model = quadrant_model()
    maps = A.grad_cam(model, torch.randn(3, 3, 16, 16), [0, 1, 1], layer="2")
    assert maps.shape == (3, 16, 16) and (maps >= 0).all()
    assert maps[:, 8:, :].abs().max() == 0 and maps[:, :, 8:].abs().max() == 0


def test_guided_backprop_and_deconvnet_rules_by_hand():
    w = torch.tensor([[1.0, -2.0, 3.0, -4.0]])
    model = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(4, 1, bias=False))
    model[2].weight.data[:] = w
    x = torch.tensor([2.0, 1.0, -1.0, -3.0]).view(1, 1, 1, 4)
    gb = A.guided_backprop(model, x, 0, reduce=None).flatten()
    dc = A.deconvnet(model, x, 0, reduce=None).flatten()
    plain = A.saliency(model, x, 0, reduce=None).flatten()
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
        with A.relu_rule(tiny_cnn, A._GuidedReLU):
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
    for rule, expected in ((A._GuidedReLU, grad.clamp(min=0) * (inp > 0)), (A._DeconvReLU, grad.clamp(min=0))):
        out = rule.apply(inp)
        g, = torch.autograd.grad(out, inp, grad)
        assert out.dtype == torch.float64 and torch.equal(out, inp.clamp(min=0)) and torch.equal(g, expected)
    mine = other.forward
    with pytest.raises(RuntimeError, match="inside"):
        with A.relu_rule(model, A._GuidedReLU):
            assert relu.forward == A._GuidedReLU.apply == other.forward
            raise RuntimeError("inside")
    assert "forward" not in relu.__dict__ and other.forward is mine and relu.inplace
    with pytest.raises(ValueError, match="has no nn.ReLU, nn.ReLU6"):
        with A.relu_rule(nn.Sequential(nn.Linear(2, 2)), A._GuidedReLU):
            pass


def test_cam_equals_grad_cam_up_to_scale_on_gap_linear(teaching):
    from lecturekit import teaching as T
    imgs, labels = T.load_sample()
    x = teaching.preprocess(imgs[:6])
    c = A.cam(teaching.model, x, labels[:6], upsample=False)
    g = A.grad_cam(teaching.model, x, labels[:6], layer="relu4", upsample=False)
    h, w = c.shape[1:]
    torch.testing.assert_close(g, c.clamp(min=0) / (h * w), atol=1e-6, rtol=1e-4)
    assert A.cam(teaching.model, x, 3).shape == (6, 28, 28)


@pytest.mark.parametrize("name", list(A.METHODS))
def test_shapes_batches_and_model_restored(name, teaching):
    from lecturekit import teaching as T
    imgs, labels = T.load_sample()
    model = teaching.model
    x = teaching.preprocess(imgs[:3])
    x_before = x.clone()
    before = snapshot(model)
    out_before = model(x)
    options = {"grad_cam": {"layer": "relu3"}, "guided_grad_cam": {"layer": "relu3"},
               "occlusion": {"patch": 7, "stride": 7}, "smoothgrad": {"samples": 4},
               "integrated_gradients": {"steps": 8}}.get(name, {})
    maps = A.METHODS[name](model, x, labels[:3], **options)
    assert maps.shape == (3, 28, 28) and torch.isfinite(maps).all()
    # one image at a time gives the same maps (no cross-talk in the batch); smoothgrad's noise is
    # drawn image after image, so the second image alone is the second call on one generator
    if name == "smoothgrad":
        gen = torch.Generator().manual_seed(0)
        options = dict(options, generator=gen)
        A.smoothgrad(model, x[:1], int(labels[0]), **options)
    one = A.METHODS[name](model, x[1:2], int(labels[1]), **options)
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
        A.guided_backprop(model, x, 42)
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        A.grad_cam(model, x, 1, layer="conv9")
    assert_unchanged(model, before, x)
    model.eval()
    model.conv1.weight.requires_grad_(False)


def test_neuron_targets_and_bad_inputs(teaching):
    x = teaching.preprocess(torch.rand(2, 1, 28, 28))
    m = A.guided_backprop(teaching.model, x, 5, neuron="relu3")
    assert m.shape == (2, 28, 28)
    # a unit of relu1 (5x5 receptive field) only sees pixels within 2 of its position
    act = hooks.activations(teaching.model, x[:1], "relu1")["relu1"][0, 5]
    r, c = divmod(int(act.argmax()), 28)
    g = A.saliency(teaching.model, x[:1], 5, neuron="relu1", position=(r, c))[0]
    rows, cols = torch.nonzero(g).unbind(1)
    assert len(rows) and rows.min() >= r - 2 and rows.max() <= r + 2 and cols.min() >= c - 2 and cols.max() <= c + 2
    with pytest.raises(ValueError, match="outside the 28x28 map"):
        A.saliency(teaching.model, x, 5, neuron="relu1", position=(40, 0))
    with pytest.raises(ValueError, match=r"channel of relu4 \[200, 200\] out of range: valid channels are 0..127"):
        A.saliency(teaching.model, x, 200, neuron="relu4")
    with pytest.raises(ValueError, match="one per image"):
        A.saliency(teaching.model, x, [1, 2, 3])
    assert A.saliency(teaching.model, x[0], 1).shape == (1, 28, 28)      # one (C, H, W) image is a batch of one
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        A.saliency(teaching.model, x[0, 0], 1)
    with pytest.raises(ValueError, match="patch must be in"):
        A.occlusion(teaching.model, x, 1, patch=40)
    with pytest.raises(ValueError, match="reduce must be"):
        A.saliency(teaching.model, x, 1, reduce="mean")


def test_cam_needs_gap_linear():
    from torchvision.models import get_model
    with pytest.raises(ValueError, match="CAM needs global average pooling.*grad_cam"):
        A.cam(get_model("squeezenet1_1").eval(), torch.zeros(1, 3, 64, 64), 1)
    feed, fc = A.gap_linear(get_model("resnet18"))
    assert feed == "layer4" and fc.out_features == 1000


def test_occlusion_gives_the_memory_layout_back(tiny_cnn):
    x = torch.randn(1, 3, 8, 8)
    a = A.occlusion(tiny_cnn, x, 1, patch=2, stride=2)
    assert all(p.is_contiguous() for p in tiny_cnn.parameters())
    b = A.occlusion(tiny_cnn, x, 1, patch=2, stride=2, batch_size=3)
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
         "guided_backprop": {}, "cam": {}, "grad_cam": {"layer": "2"}, "guided_grad_cam": {"layer": "2"}}


@pytest.mark.parametrize("name", list(A.METHODS))
def test_any_model_comes_back_exactly_as_it_was(name):
    assert set(CALLS) == set(A.METHODS)
    model = inplace_model()
    before = full_state(model)
    x = torch.randn(2, 3, 8, 8)
    A.METHODS[name](model, x, [1, 2], **CALLS[name])
    assert_same_state(model, before)
    with pytest.raises(ValueError, match="out of range"):
        A.METHODS[name](model, x, 9, **CALLS[name])
    assert_same_state(model, before)


def test_inplace_relus_give_the_same_maps_as_out_of_place_ones():
    model = inplace_model().eval()
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x = torch.randn(2, 3, 8, 8)
    for name in ("deconvnet", "guided_backprop", "grad_cam", "guided_grad_cam"):
        torch.testing.assert_close(A.METHODS[name](model, x, 1, **CALLS[name]),
                                   A.METHODS[name](plain, x, 1, **CALLS[name]))
    # the deconvnet rule by hand: a ReLU passes back the positive part of its gradient, nothing else
    w = plain[7].weight[1]                                           # fc row of class 1 (6,)
    with torch.enable_grad():
        xx = x.clone().requires_grad_(True)
        a1 = plain[0](xx).clamp(min=0)
        a2 = plain[3](plain[2](a1))
        pooled_grad = (w / 64).clamp(min=0)[None, :, None, None].expand_as(a2)   # through GAP, then the ReLU rule
        g_a1, = torch.autograd.grad(a2, a1, pooled_grad)
        g_x, = torch.autograd.grad(plain[0](xx), xx, g_a1.clamp(min=0))
    torch.testing.assert_close(A.deconvnet(model, x, 1, reduce=None), g_x)


def test_grad_cam_needs_no_input_gradient():
    """The backward pass starts at the map layer: the conv before it is never differentiated."""
    model = inplace_model().eval()                  # its weights ask for gradients
    called = []
    h = model[0].register_forward_hook(lambda m, i, o: called.append(o.requires_grad))
    try:
        A.grad_cam(model, torch.randn(1, 3, 8, 8), 1, layer="2")
        A.saliency(model, torch.randn(1, 3, 8, 8), 1)
    finally:
        h.remove()
    assert called == [False, True]


# ---------------------------------------------------------------- the new methods by hand and by property

def test_gradient_x_input_of_a_linear_model_is_each_pixel_share_of_the_score():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4, bias=False))
    x = torch.randn(2, 2, 3, 3)
    heat = A.gradient_x_input(model, x, [0, 3])
    w = model[1].weight.detach().view(4, 2, 3, 3)
    torch.testing.assert_close(heat, (x * w[[0, 3]]).sum(1))
    torch.testing.assert_close(heat.sum((1, 2)), model(x)[[0, 1], [0, 3]])


@pytest.mark.parametrize("rule", A.RULES)
def test_integrated_gradients_completeness(teaching, rule):
    """Summed over pixels, the map is score(x) - score(baseline), up to the quadrature error."""
    from lecturekit import teaching as T
    x = teaching.preprocess(T.load_sample()[0][:2])
    base = torch.full_like(x, teaching.blank)
    heat = A.integrated_gradients(teaching.model, x, [1, 7], baseline=base, steps=64, rule=rule)
    with torch.no_grad():
        gap = teaching.model(x)[:, [1, 7]].diagonal() - teaching.model(base)[:, [1, 7]].diagonal()
    tol = 0.02 if rule == "gausslegendre" or rule == "middle" else 0.15
    torch.testing.assert_close(heat.sum((1, 2)), gap, rtol=tol, atol=tol * float(gap.abs().max()))
    coarse = A.integrated_gradients(teaching.model, x, [1, 7], baseline=teaching.blank, steps=64, rule=rule,
                                    batch_size=5)
    torch.testing.assert_close(coarse, heat)                      # batching and a number baseline change nothing


def test_integrated_gradients_of_a_quadratic_by_hand():
    """score = sum(x^2): the gradient 2 a x is linear on the path, so the midpoint rule is exact and
    the attribution is x^2 for every pixel."""
    class Square(nn.Module):
        def forward(self, x):
            return (x ** 2).flatten(1).sum(1, keepdim=True)
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    heat = A.integrated_gradients(Square(), x, 0, steps=3, reduce=None)
    torch.testing.assert_close(heat, x ** 2)
    left = A.integrated_gradients(Square(), x, 0, steps=4, rule="left", reduce=None)
    torch.testing.assert_close(left, 2 * x ** 2 * (0 + 1 + 2 + 3) / 16)    # 2 x^2 * sum(k/4) / 4


def test_smoothgrad_with_no_noise_is_the_gradient_and_noise_follows_the_generator(teaching):
    x = teaching.preprocess(torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(A.smoothgrad(teaching.model, x, 3, noise=0.0, samples=2),
                               A.saliency(teaching.model, x, 3))
    a = A.smoothgrad(teaching.model, x, 3, samples=6, batch_size=4, generator=torch.Generator().manual_seed(1))
    b = A.smoothgrad(teaching.model, x, 3, samples=6, batch_size=6, generator=torch.Generator().manual_seed(1))
    c = A.smoothgrad(teaching.model, x, 3, samples=6, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(A.smoothgrad(teaching.model, x, 3, samples=6),
                               A.smoothgrad(teaching.model, x, 3, samples=6))     # default: a fresh generator
    state = torch.random.get_rng_state()
    A.smoothgrad(teaching.model, x, 3, samples=2)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_smoothgrad_noise_scale_matches_the_image_range():
    """On a model whose gradient is x itself (score = sum(x^2) / 2), SmoothGrad's mean gradient is
    x + mean noise, and the spread of single-sample maps is the noise std: noise * (max - min)."""
    class HalfSquare(nn.Module):
        def forward(self, x):
            return (x ** 2).flatten(1).sum(1, keepdim=True) / 2
    x = torch.linspace(-1, 3, 64 * 64, dtype=torch.float64).view(1, 1, 64, 64)   # range 4
    one = A.smoothgrad(HalfSquare(), x, 0, samples=1, noise=0.1, reduce=None)
    assert float((one - x).std()) == pytest.approx(0.4, rel=0.03)
    many = A.smoothgrad(HalfSquare(), x, 0, samples=100, noise=0.1, reduce=None)
    assert float((many - x).std()) == pytest.approx(0.04, rel=0.05)


# ---------------------------------------------------------------- one call shape

def test_keywords_mean_one_thing_and_wrong_ones_say_which_is_meant(teaching):
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match=r"saliency has no layer=; to explain a unit of an intermediate layer give "
                                         r"neuron=.*Valid layer names: conv1, bn1"):
        A.saliency(teaching.model, x, 1, layer="relu3")
    with pytest.raises(ValueError, match="cam explains a class score and has no neuron="):
        A.cam(teaching.model, x, 1, neuron="relu3")
    with pytest.raises(ValueError, match=r"grad_cam takes \(model, x, target\) and its options by keyword "
                                         r"\(layer=, neuron="):
        A.grad_cam(teaching.model, x, 1, "relu3")
    with pytest.raises(ValueError, match="smoothgrad has no option steps=. Its options: samples, noise"):
        A.smoothgrad(teaching.model, x, 1, steps=3)
    with pytest.raises(ValueError, match="position= is a place in the map of neuron="):
        A.saliency(teaching.model, x, 1, position=(1, 1))
    with pytest.raises(ValueError, match="neuron relu2 comes before it"):
        A.grad_cam(teaching.model, x, 1, layer="relu4", neuron="relu2")
    with pytest.raises(ValueError, match="rule must be one of 'left', 'right', 'middle', 'gausslegendre'"):
        A.integrated_gradients(teaching.model, x, 1, rule="simpson")
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        A.smoothgrad(teaching.model, x, 1, noise=-1)
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        A.smoothgrad(teaching.model, x, 1, generator=0)
    with pytest.raises(ValueError, match=r"baseline of shape \(2, 2\) does not broadcast"):
        A.integrated_gradients(teaching.model, x, 1, baseline=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="samples must be a whole number >= 1, not 0"):
        A.smoothgrad(teaching.model, x, 1, samples=0)


def test_every_gradient_method_explains_a_neuron_the_same_way(teaching):
    """neuron= and position= mean the same in every method: a relu1 unit sees only its 5x5 window."""
    x = teaching.preprocess(torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    for name in ("saliency", "gradient_x_input", "smoothgrad", "integrated_gradients", "deconvnet",
                 "guided_backprop"):
        heat = A.METHODS[name](teaching.model, x, 5, neuron="relu1", position=(10, 12), reduce="sum_abs")[0]
        outside = torch.ones(28, 28, dtype=torch.bool)
        outside[8:13, 10:15] = False
        assert heat[outside].abs().max() == 0 and heat[~outside].abs().max() > 0, name
    # Grad-CAM of a neuron, maps at the layer below: the same as at the neuron's layer by hand
    g = A.grad_cam(teaching.model, x, 3, layer="relu3", neuron="relu4", upsample=False)
    with hooks.capture(teaching.model, ["relu3", "relu4"], detach=False) as rec, torch.enable_grad():
        xx = x.clone().requires_grad_(True)
        teaching.model(xx)
        a3 = rec.activations["relu3"]
        grad, = torch.autograd.grad(rec.activations["relu4"][0, 3].max(), a3)
    torch.testing.assert_close(g, torch.relu((grad.mean((2, 3), keepdim=True) * a3).sum(1)))
