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
               "occlusion": {"patch": 7, "stride": 7}}.get(name, {})
    maps = A.METHODS[name](model, x, labels[:3], **options)
    assert maps.shape == (3, 28, 28) and torch.isfinite(maps).all()
    # one image at a time gives the same maps (no cross-talk in the batch)
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
    m = A.guided_backprop(teaching.model, x, 5, layer="relu3")
    assert m.shape == (2, 28, 28)
    # a unit of relu1 (5x5 receptive field) only sees pixels within 2 of its position
    act = hooks.activations(teaching.model, x[:1], "relu1")["relu1"][0, 5]
    r, c = divmod(int(act.argmax()), 28)
    g = A.saliency(teaching.model, x[:1], 5, layer="relu1", position=(r, c))[0]
    rows, cols = torch.nonzero(g).unbind(1)
    assert len(rows) and rows.min() >= r - 2 and rows.max() <= r + 2 and cols.min() >= c - 2 and cols.max() <= c + 2
    with pytest.raises(ValueError, match="outside the 28x28 map"):
        A.saliency(teaching.model, x, 5, layer="relu1", position=(40, 0))
    with pytest.raises(ValueError, match=r"channel of relu4 \[200, 200\] out of range: valid channels are 0..127"):
        A.saliency(teaching.model, x, 200, layer="relu4")
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
