"""Paintings and photos out of Debian packages: built stand-in .debs and a fake apt-get, no network."""
import hashlib
import os
import tempfile

import pytest
from PIL import Image

from debs import DARKNET, OPENCV, FakeApt, stand_ins
from lecturekit import debian, gallery, images, paintings
from lecturekit.__main__ import main

REAL_CACHE = debian.cache_dir()       # read before the fixture below empties it: the real files, if there


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    """An empty lecturekit cache and temporary folder of our own."""
    monkeypatch.setenv("LECTUREKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(images, "_told_missing", False)


@pytest.fixture
def apt(tmp_path, monkeypatch):
    fake = FakeApt(tmp_path, monkeypatch)
    fake.content = stand_ins(monkeypatch, fake.debs)
    return fake


def _painting_files():
    return [p.debian for p in paintings.PAINTINGS.values() if p.debian is not None]


def test_extract_keeps_the_checked_files_and_not_the_deb(apt, tmp_path):
    wanted = [f for f in _painting_files() if f.package == "opencv-doc"]
    assert debian.extract("opencv-doc", wanted) == {}
    copy = paintings.PAINTINGS["starry_night"].debian
    assert copy.path == tmp_path / "cache" / "debian" / "opencv-doc" / "starry_night.jpg"
    assert copy.path.read_bytes() == apt.content["starry_night"] and copy.status() == "ok"
    assert apt.calls() == ["-qq download opencv-doc"]
    assert not list((tmp_path / "tmp").iterdir())                         # the .deb went with its folder
    assert not list((tmp_path / "cache").rglob("*.deb")) and not list((tmp_path / "cache").rglob("*.part"))
    assert debian.extract("opencv-doc", wanted) == {} and len(apt.calls()) == 1   # kept: not fetched again


def test_download_fetches_each_package_once_for_paintings_and_photos(apt, capsys):
    assert main(["download", "paintings", "photos"]) == 1             # The Great Wave and Composition VII: none
    out = capsys.readouterr()
    assert sorted(apt.calls()) == ["-qq download darknet", "-qq download opencv-doc"]
    assert "starry_night: " in out.out and "(Debian's opencv-doc)" in out.out and "(Debian's darknet)" in out.out
    assert "photos: 2 of 2 from Debian's packages" in out.out and "LECTUREKIT_OFFLINE forbids" in out.err
    assert main(["download", "photos"]) == 0 and len(apt.calls()) == 2     # everything was taken out the first time
    assert main(["info"]) == 0 and "sample photos: 14 at hand" in capsys.readouterr().out


def test_a_file_that_is_not_the_pinned_one_is_refused(apt, capsys, monkeypatch):
    stand_ins(monkeypatch, apt.debs.parent / "altered", altered={"starry_night"})   # pins of other bytes
    monkeypatch.setenv("FAKE_DEBS", str(apt.debs.parent / "altered"))
    problems = debian.extract("opencv-doc", _painting_files()[:1])
    assert list(problems.values())[0].startswith("opencv-doc_1.0_all.deb has a starry_night.jpg whose SHA-256 (")
    assert "is not the pinned one" in list(problems.values())[0]
    assert not paintings.PAINTINGS["starry_night"].debian.path.exists()


def test_a_damaged_copy_names_the_command_that_fetches_it_again(apt, capsys):
    assert main(["download", "photos", "paintings"]) == 1
    paintings.PAINTINGS["starry_night"].debian.path.write_bytes(b"garbage")
    images.samples(include_missing=True)["eagle"].debian.path.write_bytes(b"garbage")
    capsys.readouterr()
    img = paintings.load("starry_night", size=32)
    out = capsys.readouterr().out
    assert "bundled photo 'gravel'" in out and "damaged or altered" in out
    assert "fetch it again: python -m lecturekit download paintings" in out and img.shape == (1, 3, 32, 32)
    with pytest.raises(images.ImageError, match="eagle.*damaged or altered.*python -m lecturekit download photos"):
        images.load("eagle")
    assert "eagle" not in images.samples()
    calls = len(apt.calls())
    assert main(["download", "photos", "paintings"]) == 1 and len(apt.calls()) == calls + 2   # both taken out again
    assert images.load("eagle").shape[-2:] == (30, 40)


def test_no_apt_get_is_a_one_line_note(tmp_path, monkeypatch, capsys):
    stand_ins(monkeypatch, tmp_path)
    empty = tmp_path / "no_apt"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(debian, "APT_GET", "apt-get")
    assert main(["download", "photos"]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith("note: no paintings or photos from Debian's darknet, opencv-doc: no apt-get here")


def test_an_unreachable_mirror_is_a_one_line_note(apt, capsys):
    apt.mode("unreachable")
    assert main(["download", "photos"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "note: no paintings or photos from Debian's" in err
    assert "apt-get could not fetch darknet from the Debian mirror (E: Could not resolve 'deb.debian.org')" in err
    assert apt.calls() == ["-qq download darknet", "-qq update"]           # tried once, then no more


@pytest.mark.parametrize("root", [True, False])
def test_missing_package_lists_are_fetched_then_the_download_again(apt, monkeypatch, root):
    apt.mode("nolists")
    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    assert debian.extract("darknet", [f for f in _painting_files() if f.package == "darknet"]) == {}
    calls = apt.calls()
    assert [c.split()[-1] for c in calls] == ["darknet", "update", "darknet"]
    if root:                                    # the system's lists
        assert calls[1] == "-qq update"
    else:                                       # private lists in the temporary folder, no root needed
        assert "Dir::State::Lists=" in calls[1] and "Debug::NoLocking=1" in calls[1]
        assert calls[2] == calls[1].removesuffix("update") + "download darknet"


def test_the_download_is_time_boxed(apt, monkeypatch, capsys):
    monkeypatch.setattr(debian, "DOWNLOAD_TIMEOUT_S", 0.5)
    monkeypatch.setenv("FAKE_APT_SLEEP", "5")
    assert main(["download", "photos"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gave up after 0.5 s" in err


def test_an_installed_package_is_copied_without_apt(apt, tmp_path, monkeypatch):
    copy = paintings.PAINTINGS["the_scream"].debian
    root = tmp_path / "root"
    (root / copy.member).parent.mkdir(parents=True)
    (root / copy.member).write_bytes(apt.content["the_scream"])
    monkeypatch.setattr(debian, "INSTALLED_ROOT", root)
    assert debian.extract("darknet", [copy]) == {} and apt.calls() == []
    assert copy.path.read_bytes() == apt.content["the_scream"]


def test_load_says_which_copy_it_uses(apt, monkeypatch, capsys):
    paintings.load("the_scream")
    assert "bundled photo 'rocket' instead of The Scream" in capsys.readouterr().out
    assert main(["download", "paintings"]) == 1
    capsys.readouterr()
    img = paintings.load("the_scream")
    assert capsys.readouterr().out == ("Style image: The Scream, Edvard Munch, 1893 (public domain; the copy in "
                                       "Debian's darknet package), 40x30.\n")
    assert img.shape == (1, 3, 30, 40) and img[0, 0].mean() > 0.8                 # the stand-in's orange
    paintings.path("the_scream").parent.mkdir(parents=True, exist_ok=True)
    paintings.path("the_scream").write_bytes(apt.content["starry_night"])          # Wikimedia's, cached: first choice
    paintings.load("the_scream")
    assert "(public domain; Wikimedia Commons), 40x30" in capsys.readouterr().out


def test_examples_for_an_imagenet_model_use_the_photos_at_hand(apt, capsys):
    class Bundle:
        name, input_size = "squeezenet1_1", 32
    imgs, captions = gallery.examples(Bundle(), n=6)
    assert captions == ["chelsea", "coffee", "astronaut", "rocket", "china", "flower"]       # as before
    assert "Sample photos: 2 from Debian's packages are not at hand (squirrel, eagle)" in capsys.readouterr().out
    assert main(["download", "photos"]) == 0
    imgs, captions = gallery.examples(Bundle(), n=4)
    assert captions == ["chelsea", "eagle", "squirrel", "coffee"] and imgs.shape == (4, 3, 32, 32)
    assert gallery.examples(Bundle(), n=1, photos=["rocket"])[1] == ["rocket"]


# The real files, where `python -m lecturekit download photos` has taken them out on this machine.
REAL = {**{n: s.debian for n, s in images.samples(include_missing=True).items() if s.debian},
        **{n: p.debian for n, p in paintings.PAINTINGS.items() if p.debian}}
SIZES = {"starry_night": (752, 600), "the_scream": (352, 448), "squirrel": (535, 426), "baboon": (512, 512),
         "fruits": (512, 480), "orange": (512, 512), "butterfly": (493, 356), "pekinese": (512, 512),
         "dog": (768, 576), "eagle": (773, 512), "giraffe": (500, 500), "horses": (773, 512)}


@pytest.mark.parametrize("name", sorted(REAL))
def test_the_real_files_match_their_pins_and_sizes(name, monkeypatch):
    copy = REAL[name]
    where = REAL_CACHE / "debian" / copy.package / os.path.basename(copy.member)
    if not where.is_file():
        pytest.skip(f"{where} is not there (python -m lecturekit download photos on Debian or Ubuntu)")
    assert hashlib.sha256(where.read_bytes()).hexdigest() == copy.sha256
    with Image.open(where) as img:
        assert img.size == SIZES[name]
    monkeypatch.setenv("LECTUREKIT_CACHE", str(REAL_CACHE))
    loaded = paintings.load(name) if name in paintings.PAINTINGS else images.load(name)
    frame = 2 * paintings.PAINTINGS[name].debian_frame if name in paintings.PAINTINGS else 0
    assert loaded.shape == (1, 3, SIZES[name][1] - frame, SIZES[name][0] - frame)
    assert 0 <= loaded.min() and loaded.max() <= 1
    if name == "starry_night":                   # the black frame is cut off: no black edge is left
        assert min(loaded[..., :2, :].mean(), loaded[..., -2:, :].mean(), loaded[..., :2].mean(),
                   loaded[..., -2:].mean()) > 0.15


def test_every_debian_file_is_pinned_and_credited():
    assert len(REAL) == 12 and {c.package for c in REAL.values()} == {"opencv-doc", "darknet"}
    assert all(len(c.sha256) == 64 and c.member.startswith((OPENCV, DARKNET)) for c in REAL.values())
    for sample in images.samples(include_missing=True).values():
        assert sample.license and sample.package and sample.description
