import pytest
import torch
from torch import nn

from lecturekit import sanity


def test_weight_layers_top_down(teaching):
    assert sanity.weight_layers(teaching.model) == ["fc", "conv4", "conv3", "conv2", "conv1"]


def test_randomized_cascade(teaching):
    model = teaching.model
    x = torch.randn(2, 1, 28, 28)
    same = sanity.randomized(model, 0)
    torch.testing.assert_close(same(x), model(x))
    top = sanity.randomized(model, 1)
    assert not torch.equal(top.fc.weight, model.fc.weight) and torch.equal(top.conv4.weight, model.conv4.weight)
    all_ = sanity.randomized(model, 5)
    assert not torch.equal(all_.conv1.weight, model.conv1.weight)
    assert not any(p.requires_grad for p in all_.parameters()) and not all_.training
    with pytest.raises(ValueError, match="upto must be in 0..5"):
        sanity.randomized(model, 6)


def test_randomized_draws_from_its_generator_only(teaching):
    model = teaching.model
    state = torch.random.get_rng_state()
    a = sanity.randomized(model, 2, generator=torch.Generator().manual_seed(1))
    b = sanity.randomized(model, 2, generator=torch.Generator().manual_seed(1))
    c = sanity.randomized(model, 2, generator=torch.Generator().manual_seed(2))
    default = sanity.randomized(model, 2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.conv4.weight, b.conv4.weight) and not torch.equal(a.conv4.weight, c.conv4.weight)
    assert torch.equal(default.fc.bias, sanity.randomized(model, 2).fc.bias)
    # PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 128 * 3 * 3 for conv4
    bound = 1 / (128 * 9) ** 0.5
    w = a.conv4.weight
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound and abs(float(w.mean())) < 0.05 * bound
    with pytest.raises(ValueError, match="generator must be a torch.Generator or None, not int"):
        sanity.randomized(model, 1, generator=0)


def test_rank_correlation_known_values():
    a = torch.arange(16.0).view(1, 4, 4)
    assert sanity.rank_correlation(a, a * 3 + 1) == pytest.approx(1.0)
    assert sanity.rank_correlation(a, -a, absolute=False) == pytest.approx(-1.0)
    assert sanity.rank_correlation(a, torch.ones(1, 4, 4)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        sanity.rank_correlation(a, a[:, :2])


def linear_two_class(w):
    model = nn.Sequential(nn.Flatten(), nn.Linear(w.numel(), 2, bias=False))
    model[1].weight.data = torch.stack([w.flatten(), torch.zeros(w.numel())])
    return model.eval()


def test_deletion_and_insertion_by_hand():
    w = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]])            # (1, 2, 2)
    x = torch.ones(1, 1, 2, 2)
    model = linear_two_class(w)
    fr, p = sanity.deletion_curve(model, x, 0, w, steps=4)
    assert fr.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    # logits [remaining weight sum, 0] -> p = sigmoid(sum)
    expected = torch.sigmoid(torch.tensor([10.0, 6.0, 3.0, 1.0, 0.0]))
    torch.testing.assert_close(p[0], expected)
    fr, q = sanity.deletion_curve(model, x, 0, w, steps=4, mode="insertion")
    torch.testing.assert_close(q[0], torch.sigmoid(torch.tensor([0.0, 4.0, 7.0, 9.0, 10.0])))
    assert sanity.auc(fr, torch.ones(1, 5)).item() == pytest.approx(1.0)
    assert sanity.auc(fr, p).item() < sanity.auc(fr, q).item()
    with pytest.raises(ValueError, match="mode"):
        sanity.deletion_curve(model, x, 0, w, mode="erase")
    with pytest.raises(ValueError, match="heat must be"):
        sanity.deletion_curve(model, x, 0, w[0])


def test_rank_correlation_matches_scipy_with_ties():
    scipy_stats = pytest.importorskip("scipy.stats")
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 6, 6), generator=gen).float()       # many ties
    b = a + torch.randint(0, 3, (3, 6, 6), generator=gen).float()
    expected = sum(scipy_stats.spearmanr(x.flatten(), y.flatten()).statistic for x, y in zip(a, b)) / 3
    assert sanity.rank_correlation(a, b, absolute=False) == pytest.approx(expected, abs=1e-12)
    v = torch.tensor([3.0, 1.0, 3.0, 2.0, 3.0])
    torch.testing.assert_close(sanity.ranks(v), torch.tensor(scipy_stats.rankdata(v.numpy()) - 1, dtype=v.dtype))
