"""The losses that are minimised: Gram matrix (readable and fast, equal), feature match, style loss,
total variation; and ``ascent.ascend`` minimising a Loss."""
import pytest
import torch
from torch import nn

from lecturekit import ascent, hooks, losses


def test_gram_of_one_image_and_of_a_batch_match_the_batched_product():
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(3, 5, 4, 6, generator=gen, dtype=torch.float64)
    ref = torch.einsum("nchw,ndhw->ncd", f, f) / 24
    for gram in (losses.gram, losses.gram_fast):
        torch.testing.assert_close(gram(f), ref)
        torch.testing.assert_close(gram(f[1:2]), ref[1:2])             # the 2-D product for one image
        x = f[:1].clone().requires_grad_(True)
        gram(x).pow(2).sum().backward()                                 # d/dF sum(G^2) = 4 G F / (HW)
        torch.testing.assert_close(x.grad[0].reshape(5, 24), 4 * ref[0] @ f[0].reshape(5, 24) / 24)


def test_the_fast_gram_backward_is_autograds_rule_in_one_product():
    """gram_fast's own backward ((dG + dG^T) F) against autograd's on the readable gram, first and second order."""
    gen = torch.Generator().manual_seed(1)
    for shape in [(1, 4, 3, 5), (3, 4, 3, 5)]:
        f = torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(losses.gram_fast, (f,))
        assert torch.autograd.gradgradcheck(losses.gram_fast, (f,))
        w = torch.randn(shape[0], 4, 4, generator=gen, dtype=torch.float64)   # a non-symmetric dG
        (losses.gram_fast(f) * w).sum().backward()
        ref = f.detach().clone().requires_grad_(True)
        (losses.gram(ref) * w).sum().backward()
        torch.testing.assert_close(f.grad, ref.grad)


def test_feature_match_is_the_relative_squared_distance():
    gen = torch.Generator().manual_seed(2)
    act, target = torch.randn(2, 1, 3, 4, 4, generator=gen, dtype=torch.float64)
    loss = losses.feature_match("l", target)
    expected = (act - target).pow(2).sum() / target.pow(2).sum()
    torch.testing.assert_close(loss({"l": act}), expected[None])
    torch.testing.assert_close(loss({"l": act.repeat(2, 1, 1, 1)}), expected.repeat(2))
    assert loss({"l": target}).item() == 0 and loss({"l": torch.zeros_like(target)}).item() == pytest.approx(1)
    with pytest.raises(ValueError, match=r"does not match l's features \(1, 5, 4, 4\)"):
        loss({"l": torch.zeros(1, 5, 4, 4, dtype=torch.float64)})


def test_gram_match_and_sums_of_losses():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 1, 4, 5, 5, generator=gen, dtype=torch.float64)
    ga, gb = losses.gram(a), losses.gram(b)
    acts = {"x": a, "y": b}
    one = losses.gram_match("x", gb)
    torch.testing.assert_close(one(acts), ((ga - gb).pow(2).sum() / gb.pow(2).sum())[None])
    total = sum(w * losses.gram_match(n, g) for w, n, g in ((2.0, "x", gb), (3.0, "y", ga)))
    torch.testing.assert_close(total(acts), 2 * one(acts) + 3 * losses.gram_match("y", ga)(acts))
    assert total.layers == ("x", "y") and isinstance(total, losses.Loss)


def test_total_variation_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])
    # down: (1-0)^2, (3-1)^2 -> mean 2.5; across: (1-0)^2, (3-1)^2 -> mean 2.5
    assert losses.total_variation(img).item() == pytest.approx(5.0)
    assert ascent.tv(0.5)(img, None).item() == pytest.approx(2.5)


def test_ascend_minimises_a_loss_and_keeps_its_value_in_the_history():
    gen = torch.Generator().manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).double()
    target_img = torch.rand(1, 3, 8, 8, generator=gen, dtype=torch.float64)
    target = hooks.activations(model, target_img, "1")["1"]
    loss = losses.feature_match("1", target)
    r = ascent.ascend(model, loss, ascent.Pixels.grey(1, 3, 8, 8, dtype=torch.float64), steps=60, lr=0.05,
                      progress=False)
    start = loss(hooks.activations(model, torch.full((1, 3, 8, 8), 0.5, dtype=torch.float64), "1")).item()
    assert r.history[0] == pytest.approx(start) and r.history[-1] < r.history[0] / 10
    assert hooks.count(model) == 0
