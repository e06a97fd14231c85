import pytest

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
