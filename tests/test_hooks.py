import gc

import pytest
import torch
from torch import nn

from lecturekit import hooks


def test_layer_names_and_bad_name_lists_valid(tiny_cnn):
    assert hooks.layer_names(tiny_cnn) == [str(i) for i in range(7)]
    with pytest.raises(ValueError) as err:
        hooks.get_layer(tiny_cnn, "conv9")
    assert "'conv9'" in str(err.value) and "0, 1, 2, 3, 4, 5, 6" in str(err.value)


def test_capture_matches_manual_forward(tiny_cnn):
    x = torch.randn(2, 3, 8, 8)
    with hooks.capture(tiny_cnn, ["0", "3"]) as rec:
        tiny_cnn(x)
    conv = tiny_cnn[0]
    torch.testing.assert_close(rec.activations["0"], nn.functional.conv2d(x, conv.weight, conv.bias, padding=1))
    torch.testing.assert_close(rec.activations["3"], tiny_cnn[:4](x))
    assert hooks.count(tiny_cnn) == 0


def test_captured_gradients_equal_autograd(tiny_cnn):
    x = torch.randn(1, 3, 8, 8)
    with hooks.capture(tiny_cnn, "2", gradients=True) as rec:
        score = tiny_cnn(x)[0, 1]
        score.backward()
    act = tiny_cnn[:3](x).detach().requires_grad_(True)
    expected, = torch.autograd.grad(tiny_cnn[3:](act)[0, 1], act)
    torch.testing.assert_close(rec.gradients["2"], expected)


def test_hooks_removed_after_an_error(tiny_cnn):
    with pytest.raises(RuntimeError, match="boom"):
        with hooks.capture(tiny_cnn, ["0", "2", "4"], gradients=True):
            assert hooks.count(tiny_cnn) == 3
            raise RuntimeError("boom")
    assert hooks.count(tiny_cnn) == 0


def test_bad_name_hooks_nothing(tiny_cnn):
    with pytest.raises(ValueError):
        with hooks.capture(tiny_cnn, ["0", "nope"]):
            pass
    assert hooks.count(tiny_cnn) == 0


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) in (torch.Tensor, nn.Parameter))


def test_hundred_uses_leave_no_hooks_and_no_growth(tiny_cnn):
    x = torch.randn(1, 3, 8, 8, requires_grad=True)

    def use():
        with hooks.capture(tiny_cnn, ["0", "2"], gradients=True) as rec:
            tiny_cnn(x).sum().backward()
        return rec

    use()
    before = _live_tensors()
    for _ in range(100):
        use()
        hooks.activations(tiny_cnn, x, "3")
    assert hooks.count(tiny_cnn) == 0
    assert _live_tensors() <= before + 2


class Explodes(nn.Module):
    def forward(self, x):
        raise AssertionError("this layer must not run")


def test_activations_stop_after_last_layer():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), Explodes())
    x = torch.randn(1, 1, 5, 5)
    out = hooks.activations(model, x, ["1", "0"])
    assert list(out) == ["1", "0"] and out["1"].shape == (1, 2, 3, 3)
    assert (out["1"] >= 0).all() and hooks.count(model) == 0


def test_preserved_restores_modes_and_flags_on_error(tiny_cnn):
    tiny_cnn.eval()
    tiny_cnn[0].weight.requires_grad_(False)
    with pytest.raises(KeyError):
        with hooks.preserved(tiny_cnn):
            tiny_cnn.train()
            for p in tiny_cnn.parameters():
                p.requires_grad_(True)
            raise KeyError("x")
    assert not any(m.training for m in tiny_cnn.modules())
    assert tiny_cnn[0].weight.requires_grad is False and tiny_cnn[0].bias.requires_grad is True


def test_first_conv(tiny_cnn):
    name, conv = hooks.first_conv(nn.Sequential(nn.Identity(), tiny_cnn))
    assert name == "1.0" and conv is tiny_cnn[0]
    with pytest.raises(ValueError, match="no Conv2d"):
        hooks.first_conv(nn.Linear(2, 2))


def test_run_keeps_graph_or_output_on_request(tiny_cnn):
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    acts, out = hooks.run(tiny_cnn, x, "1", stop=False, detach=False)
    torch.testing.assert_close(out, tiny_cnn(x))
    acts["1"].sum().backward()
    assert x.grad is not None and hooks.count(tiny_cnn) == 0
    acts, out = hooks.run(tiny_cnn, x, "1")
    assert out is None and not acts["1"].requires_grad


def test_a_layer_named_twice_is_recorded_once_and_still_stops_early(tiny_cnn):
    seen = []
    handle = tiny_cnn[3].register_forward_hook(lambda m, i, o: seen.append("ran"))
    try:
        acts, out = hooks.run(tiny_cnn, torch.randn(1, 3, 8, 8), ["1", "1"])
    finally:
        handle.remove()
    assert list(acts) == ["1"] and out is None and seen == []       # stopped after layer 1
    with hooks.capture(tiny_cnn, ["1", "1"]) as rec:
        tiny_cnn(torch.randn(1, 3, 8, 8))
    assert list(rec.activations) == ["1"] and hooks.count(tiny_cnn) == 0
