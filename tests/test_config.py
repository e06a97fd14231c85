import numpy as np
import pytest
import torch

from lecturekit import config


def test_pick_follows_quick_mode(monkeypatch):
    assert config.pick(200, 10) == 200 and not config.quick()
    monkeypatch.setenv("LECTUREKIT_QUICK", "1")
    assert config.pick(200, 10) == 10 and config.quick()
    monkeypatch.setenv("LECTUREKIT_QUICK", "0")
    assert config.pick(200, 10) == 200


def test_offline_and_model_name(monkeypatch):
    assert config.offline()                       # set by the test fixture
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "")
    assert not config.offline()
    assert config.model_name() == "auto"
    monkeypatch.setenv("LECTUREKIT_MODEL", "alexnet")
    assert config.model_name() == "alexnet"


def test_device_forced_and_bad(monkeypatch):
    assert config.device() == torch.device("cpu")
    monkeypatch.setenv("LECTUREKIT_DEVICE", "toaster")
    with pytest.raises(ValueError, match="toaster.*cpu, cuda or mps"):
        config.device()


def test_seed_repeats():
    config.seed(3)
    a = (torch.rand(3), np.random.rand(2))
    gen = config.seed(3)
    b = (torch.rand(3), np.random.rand(2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert torch.equal(torch.rand(2, generator=gen), torch.rand(2, generator=torch.Generator().manual_seed(3)))


def test_summary_names_mode_and_model(monkeypatch):
    monkeypatch.setenv("LECTUREKIT_QUICK", "1")
    s = config.summary()
    assert "quick" in s and "offline" in s and "auto" in s and "cpu" in s


def test_data_file_names_the_fix_for_each_source(monkeypatch, tmp_path):
    from lecturekit import config
    assert config.data_file("teaching_fmnist.pt").is_file()
    assert config.DATA_SOURCE == "the repository checkout"           # the tests run from a checkout
    with pytest.raises(FileNotFoundError, match=r"nothing.pt is missing .*git checkout -- data/"):
        config.data_file("nothing.pt")
    monkeypatch.setenv("LECTUREKIT_DATA", str(tmp_path))
    monkeypatch.setattr(config, "DATA_DIR", config._find_data()[0])
    monkeypatch.setattr(config, "DATA_SOURCE", config._find_data()[1])
    with pytest.raises(FileNotFoundError, match=r"teaching_fmnist.pt is missing from .*LECTUREKIT_DATA"):
        config.data_file("teaching_fmnist.pt")
    monkeypatch.setattr(config, "DATA_SOURCE", "the installed package")
    with pytest.raises(FileNotFoundError, match=r"reinstall lecturekit: pip install --force-reinstall"):
        config.data_file("teaching_fmnist.pt")


def test_import_is_lazy():
    import subprocess
    import sys
    code = ("import sys, lecturekit as lk; heavy = ['lecturekit.zoo', 'torchvision', 'matplotlib.pyplot', 'scipy', "
            "'sklearn', 'skimage', 'ipywidgets']; print([m for m in heavy if m in sys.modules]); "
            "lk.zoo; print('lecturekit.zoo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"
