import pytest
import torch

from lecturekit import claims, style, zoo


def test_verified_claims_are_asserts():
    assert claims.check(True, "holds") is True
    with pytest.raises(AssertionError, match="the loss halves"):
        claims.check(False, "the loss halves")


def test_unverified_claims_are_visible_and_never_stop(capsys):
    assert claims.check(True, "deeper layers bring the period back", verified=False) is True
    assert claims.check(0, "extremes match their own scale", verified=False, otherwise="with VGG-16 it should") is False
    out = capsys.readouterr().out.splitlines()
    assert out == ["check held: deeper layers bring the period back",
                   "check did NOT hold: extremes match their own scale. With stand-in or damaged weights that is "
                   "expected; with VGG-16 it should."]


def test_which_models_are_verified(teaching, standin_home, monkeypatch):
    assert teaching.verified and style.feature_net("random-multiscale").verified
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    assert not zoo.load("squeezenet1_1").verified


def test_close_takes_the_precision_of_the_device():
    a, b = torch.ones(3), torch.ones(3) + 1e-2
    with pytest.raises(AssertionError, match="not close"):
        claims.close(a, b, atol=1e-4, rtol=1e-4)                        # CPU (the tests' device): as given
    with pytest.raises(AssertionError, match="not close"):
        claims.close(a, b, atol=1e-4, rtol=1e-4, on=torch.nn.Linear(2, 2))
    claims.close(a, b, atol=1e-4, rtol=1e-4, on=torch.device("cuda"))     # TF32 on a GPU: at least 2e-2
    claims.close(a, b, atol=1e-4, rtol=1e-4, on="cuda")
    with pytest.raises(AssertionError, match="not close"):
        claims.close(a, a + 0.1, on="cuda")                             # a wrong formula still fails there
    with pytest.raises(AssertionError, match="not close"):
        claims.close(a.double(), b.double(), atol=1e-4, rtol=1e-4, on="cuda")   # no TF32 in float64
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        assert not claims.tf32("cuda") and not claims.tf32("cpu")
        with pytest.raises(AssertionError, match="not close"):
            claims.close(a, b, atol=1e-4, rtol=1e-4, on="cuda")
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_exact_turns_tf32_off_and_restores_the_settings_even_on_error():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark
    with pytest.raises(RuntimeError, match="inside"):
        with claims.exact():
            assert not claims.tf32("cuda") and cudnn.deterministic and not cudnn.benchmark
            with pytest.raises(AssertionError, match="not close"):      # strict again on a GPU
                claims.close(torch.ones(3), torch.ones(3) + 1e-2, atol=1e-4, rtol=1e-4, on="cuda")
            raise RuntimeError("inside")
    assert (cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark) == before
