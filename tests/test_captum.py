"""Every gradient method against captum, the reference library, on torchvision architectures as
they come (in-place ReLUs, no lecturekit preparation), with random weights drawn here."""
import pytest
import torch
import torchvision
from torch import nn

from lecturekit import attribution
from lecturekit import hooks

captum = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")   # captum's notes on hooks and requires_grad

LAYERS = {"squeezenet1_1": "features.12", "resnet18": "layer4"}


def random_model(name):
    """A torchvision classifier with He-normal weights from a fixed seed (global RNG left as it was)."""
    model = getattr(torchvision.models, name)(num_classes=10)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.normal_(m.bias, 0, 0.1)
    return model.eval()


@pytest.fixture(scope="module", params=list(LAYERS))
def case(request):
    model = random_model(request.param)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = model(x).argmax(1)                 # a class with a positive score (squeezenet ends in a ReLU)
    return request.param, model, x, target


def state(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [p.requires_grad for p in model.parameters()],
            [m.training for m in model.modules()], [m.inplace for m in model.modules() if hasattr(m, "inplace")],
            [p.grad for p in model.parameters()], hooks.count(model))


def same_state(a, b):
    return (all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:4] == b[1:4]
            and all(g is None for g in b[4]) and a[5] == b[5] == 0)


def agree(ours, theirs):
    """Equal up to float32 rounding, relative to the map's scale; the maps are not all zero."""
    scale = theirs.abs().max()
    assert scale > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5 * float(scale))


def test_inplace_relus_are_there(case):
    _, model, _, _ = case
    assert any(getattr(m, "inplace", False) for m in model.modules())


def test_gradient_methods_agree_with_captum(case):
    name, model, x, t = case
    before = state(model)
    agree(attribution.saliency(model, x, t, reduce=None).abs(), captum.Saliency(model).attribute(x, target=t))
    agree(attribution.gradient_x_input(model, x, t, reduce=None), captum.InputXGradient(model).attribute(x, target=t))
    agree(attribution.guided_backprop(model, x, t, reduce=None), captum.GuidedBackprop(model).attribute(x, target=t))
    ours = attribution.deconvnet(model, x, t, reduce=None)
    agree(ours, captum.Deconvolution(model).attribute(x, target=t))
    assert not torch.allclose(ours, attribution.guided_backprop(model, x, t, reduce=None))   # the two rules differ
    assert same_state(before, state(model))


@pytest.mark.parametrize("rule, method", [("middle", "riemann_middle"), ("gausslegendre", "gausslegendre")])
def test_integrated_gradients_agree_with_captum(case, rule, method):
    """One image, all path points in one batch, as captum runs them: the same float32 rounding
    (random weights put ReLUs near their kink, where a batch-size-dependent rounding can flip them)."""
    _, model, x, t = case
    before = state(model)
    ours = attribution.integrated_gradients(model, x[:1], t[:1], steps=5, rule=rule, batch_size=5, reduce=None)
    agree(ours, captum.IntegratedGradients(model).attribute(x[:1], target=t[:1], n_steps=5, method=method))
    assert same_state(before, state(model))


def test_smoothgrad_agrees_with_captum_on_the_same_noise(case):
    """captum draws its noise from the global stream; seeded like our generator, the draws are the same."""
    _, model, x, t = case
    x, t = x[:1], t[:1]
    sigma = 0.2 * float(x.max() - x.min())                   # our noise is a fraction of the image's range
    ours = attribution.smoothgrad(model, x, t, samples=4, batch_size=2, noise=0.2, reduce=None,
                        generator=torch.Generator().manual_seed(3))
    with torch.random.fork_rng():
        torch.manual_seed(3)
        theirs = captum.NoiseTunnel(captum.Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=4, nt_samples_batch_size=2, stdevs=sigma, target=int(t), abs=False)
    agree(ours, theirs)
    assert not torch.allclose(ours, attribution.saliency(model, x, t, reduce=None), rtol=0.1)


def test_grad_cam_agrees_with_captum(case):
    name, model, x, t = case
    before = state(model)
    layer = LAYERS[name]
    ours = attribution.grad_cam(model, x, t, layer=layer)
    gc = captum.LayerGradCam(model, hooks.get_layer(model, layer)).attribute(x, target=t, relu_attributions=True)
    agree(ours, captum.LayerAttribution.interpolate(gc, x.shape[2:], "bilinear")[:, 0])
    agree(attribution.grad_cam(model, x, t, layer=layer, upsample=False), gc[:, 0])
    assert same_state(before, state(model))


@pytest.mark.parametrize("name", ["alexnet", "squeezenet1_1"])
def test_deeplift_agrees_with_captum(name, monkeypatch):
    """DeepLIFT's Rescale rule against captum's ``DeepLift``, with a random baseline. Max pooling passes
    back its gradient in both: the default of DeepLIFT's own implementation, and what captum computes
    where a ReLU feeds the pooling (every pool of AlexNet, SqueezeNet's first). After SqueezeNet's
    concatenations captum's own max-pooling rule would apply instead; its shares of overlapping
    windows overwrite each other, so its map stops adding up to the score difference: it is taken out."""
    from captum.attr._core import deep_lift
    model = random_model(name)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 64, 64, generator=gen)
    base = 0.3 * torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        t = model(x).argmax(1)
    before = state(model)
    ours = attribution.deeplift(model, x, t, baseline=base, reduce=None)
    assert same_state(before, state(model))
    if name == "alexnet":                       # every max pooling follows a ReLU: captum as it comes agrees
        agree(ours, captum.DeepLift(model).attribute(x, target=t, baselines=base))
    monkeypatch.delitem(deep_lift.SUPPORTED_NON_LINEAR, nn.MaxPool2d)
    agree(ours, captum.DeepLift(model).attribute(x, target=t, baselines=base))
    gradient = attribution.saliency(model, x, t, reduce=None)                 # signed, unreduced
    assert not torch.allclose(ours, (x - base) * gradient, rtol=0.1)        # the rule is not the gradient


def test_deeplift_agrees_with_captum_on_the_offline_imagenet_model(monkeypatch):
    """EfficientNet-Lite0 (ReLU6, no max pooling): captum's table of activations lacks ReLU6, so it is
    added with captum's own Rescale rule; the map adds up to the score difference."""
    from captum.attr._core import deep_lift

    from lecturekit import images, zoo
    bundle = zoo.load("efficientnet_lite0", device="cpu")
    x = bundle.preprocess(torch.cat([images.load("chelsea", size=160), images.load("coffee", size=160)]))
    base = torch.zeros_like(x)
    with torch.no_grad():
        t = bundle.model(x).argmax(1)
        delta = bundle.model(x)[range(2), t] - bundle.model(base)[range(2), t]
    ours = attribution.deeplift(bundle.model, x, t, reduce=None)
    torch.testing.assert_close(ours.sum((1, 2, 3)), delta, rtol=1e-3, atol=1e-3)
    monkeypatch.setitem(deep_lift.SUPPORTED_NON_LINEAR, nn.ReLU6, deep_lift.nonlinear)
    agree(ours, captum.DeepLift(bundle.model).attribute(x, target=t, baselines=base))
