import http.server
import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from lecturekit import images, paintings
from lecturekit.__main__ import main


@pytest.fixture(autouse=True)
def _no_debian_copies(monkeypatch, tmp_path):
    """An empty lecturekit cache: no copies taken out of Debian's packages (tests/test_debian.py has those)."""
    monkeypatch.setenv("LECTUREKIT_CACHE", str(tmp_path / "lecturekit_cache"))


def _jpeg(color=(200, 30, 40), size=(80, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def server(monkeypatch):
    """A local HTTP server standing in for Wikimedia: /good.jpg is a JPEG, /junk.jpg is not an image,
    anything else is 404. Every painting's URL points at it; offline mode is off."""
    routes = {"/good.jpg": _jpeg(), "/junk.jpg": b"<html>not an image</html>"}
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append((self.path, self.headers.get("User-Agent")))
            body = routes.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr(paintings, "URL", base + "/{file}")
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    yield routes, hits, httpd
    httpd.shutdown()
    httpd.server_close()


def _point(monkeypatch, name, file):
    monkeypatch.setitem(paintings.PAINTINGS, name, paintings.Painting("T", "A", file, "coffee"))


def test_fetch_downloads_once_into_the_cache_then_works_without_the_server(server, monkeypatch):
    routes, hits, httpd = server
    _point(monkeypatch, "starry_night", "good.jpg")
    path = paintings.fetch("starry_night")
    assert path == paintings.path("starry_night") and path.read_bytes() == routes["/good.jpg"]
    assert hits[0][1].startswith("lecturekit")                    # Wikimedia asks for a user agent
    httpd.shutdown()
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "1")
    img = paintings.load("starry_night", size=48)                 # from the cache, no network
    assert img.shape == (1, 3, 48, 48) and img[0, 0].mean() > 0.6 and img[0, 2].mean() < 0.3
    assert len(hits) == 1


@pytest.mark.parametrize("file, reason", [("missing.jpg", "404"), ("junk.jpg", "readable image")])
def test_failed_fetch_falls_back_to_a_bundled_photo_and_keeps_nothing(server, monkeypatch, capsys, file, reason):
    _point(monkeypatch, "great_wave", file)
    with pytest.raises(paintings.PaintingUnavailable, match=reason):
        paintings.fetch("great_wave")
    img = paintings.load("great_wave", size=64)
    assert "bundled photo 'coffee'" in capsys.readouterr().out
    torch.testing.assert_close(img, images.load("coffee", size=64))
    assert not paintings.path("great_wave").exists() and not list(paintings.cache_dir().glob("*.part"))


def test_offline_falls_back_without_touching_the_network(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used offline")
    monkeypatch.setattr(paintings.urllib.request, "urlopen", refuse)
    img = paintings.load("starry_night", size=32, fallback="flower")
    out = capsys.readouterr().out
    assert "LECTUREKIT_OFFLINE" in out and img.shape == (1, 3, 32, 32)
    assert "comes from Debian's opencv-doc package and is not at" in out and "python -m lecturekit download paintings" in out
    with pytest.raises(ValueError, match="unknown painting 'mona_lisa'. Valid: starry_night"):
        paintings.load("mona_lisa")


def test_unreachable_server_is_reported(monkeypatch):
    monkeypatch.setenv("LECTUREKIT_OFFLINE", "0")
    monkeypatch.setattr(paintings.weights, "reachable", lambda url, timeout=3.0: False)
    with pytest.raises(paintings.PaintingUnavailable, match="cannot be reached"):
        paintings.fetch("the_scream")


def test_command_line_download_paintings(server, monkeypatch, capsys):
    for name in paintings.PAINTINGS:
        _point(monkeypatch, name, "good.jpg")
    assert main(["download", "paintings"]) == 0
    assert all(paintings.path(n).is_file() for n in paintings.PAINTINGS)
    assert main(["info"]) == 0 and "cached" in capsys.readouterr().out
    assert np.isfinite(images.to_numpy(paintings.load("the_scream"))).all()
