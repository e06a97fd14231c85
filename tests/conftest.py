import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lecturekit import debian, zoo  # noqa: E402
from standins import write_standins  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Every test runs offline, on the CPU, with an empty torch cache and full mode."""
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "1")
    monkeypatch.setenv("LECTUREKIT_STANDINS", "1")           # the stand-in files below load (with a warning)
    monkeypatch.setenv("LECTUREKIT_DEVICE", "cpu")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("LECTUREKIT_CACHE", str(tmp_path / "lecturekit_cache"))   # no Debian copies of paintings/photos
    monkeypatch.setattr(debian, "APT_GET", str(tmp_path / "no-apt-get"))          # and no real apt-get (tests/debs.py fakes one)
    monkeypatch.delenv("LECTUREKIT_QUICK", raising=False)
    monkeypatch.delenv("LECTUREKIT_MODEL", raising=False)
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def standin_home(tmp_path_factory):
    """A torch cache holding random-valued stand-ins for SqueezeNet and AlexNet."""
    home = tmp_path_factory.mktemp("standin_home")
    write_standins(home, ("squeezenet1_1", "alexnet"))
    return home


@pytest.fixture
def teaching():
    return zoo.load("teaching")


@pytest.fixture
def tiny_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 2, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2, 3))
