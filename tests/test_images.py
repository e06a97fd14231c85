
import numpy as np
import pytest
import torch
from PIL import Image

from lecturekit import images


@pytest.fixture(autouse=True)
def _no_debian_photos(monkeypatch, tmp_path):
    """An empty lecturekit cache: no photos taken out of Debian's packages (tests/test_debian.py has those)."""
    monkeypatch.setenv("LECTUREKIT_CACHE", str(tmp_path / "lecturekit_cache"))
    monkeypatch.setattr(images, "_told_missing", False)


BUNDLED = [name for name, s in images.samples(include_missing=True).items() if s.debian is None]


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_sample_loads_as_rgb_0_1(name):
    img = images.load(name)
    assert img.dtype == torch.float32 and img.shape[:2] == (1, 3) and min(img.shape[2:]) >= 200
    assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.01
    assert images.samples()[name].license


def test_debian_photos_are_listed_with_their_source_and_said_missing_once(capsys):
    every = images.samples(include_missing=True)
    debian = {n: s for n, s in every.items() if s.debian is not None}
    assert len(debian) >= 10 and list(every)[:len(BUNDLED)] == BUNDLED
    assert {s.package for s in debian.values()} == {"Debian opencv-doc", "Debian darknet"}
    assert all(s.license and s.debian.path.parent.name == s.debian.package for s in debian.values())
    assert every["eagle"].imagenet == "bald eagle" and every["chelsea"].imagenet == "tabby cat"
    assert capsys.readouterr().out == ""
    assert list(images.samples()) == BUNDLED and images.available(["eagle", "coffee"]) == ["coffee"]
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "are not at hand (squirrel," in out
    assert "python -m lecturekit download photos" in out
    with pytest.raises(FileNotFoundError, match=r"'eagle' comes from Debian's darknet package and is not at .*eagle"
                                                r".jpg \(on Debian or Ubuntu: python -m lecturekit download photos\)"):
        images.load("eagle")


def test_load_with_size_is_square():
    img = images.load("chelsea", size=224)        # 300x451 -> 224x337 -> 224x224
    assert img.shape == (1, 3, 224, 224)


def test_grayscale_png_gives_three_equal_channels(tmp_path):
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(arr, "L").save(tmp_path / "g.png")
    img = images.load(tmp_path / "g.png")
    assert torch.equal(img[0, 0], img[0, 1]) and torch.equal(img[0, 1], img[0, 2])
    assert img[0, 0, 0, 1].item() == pytest.approx(1 / 255) and img[0, 0, 15, 15].item() == 1.0


def test_rgba_is_composited_over_white(tmp_path):
    arr = np.zeros((2, 2, 4), dtype=np.uint8)
    arr[0, 0] = (255, 0, 0, 255)      # opaque red stays red
    arr[0, 1] = (255, 0, 0, 0)        # transparent becomes white
    arr[1, 0] = (0, 0, 0, 128)        # half-transparent black becomes mid grey
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    img = images.load(str(tmp_path / "a.png"))[0]
    assert img[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert img[:, 0, 1].tolist() == [1.0, 1.0, 1.0]
    assert img[:, 1, 0].tolist() == pytest.approx([1 - 128 / 255] * 3)


def test_palette_image_matches_its_rgb(tmp_path):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8))
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    expected = torch.from_numpy(np.array(pal.convert("RGB"))).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(images.load(tmp_path / "p.png")[0], expected)


def test_16_bit_png_keeps_its_range(tmp_path):
    arr = np.array([[0, 32768], [65535, 1000]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    img = images.load(tmp_path / "d.png")[0, 0]
    torch.testing.assert_close(img, torch.tensor(arr / 65535, dtype=torch.float32))


def test_bytes_and_arrays():
    img = images.load("coffee")
    png = (images.to_numpy(img) * 255).round().astype(np.uint8)
    import io
    buf = io.BytesIO()
    Image.fromarray(png).save(buf, format="PNG")
    torch.testing.assert_close(images.load(buf.getvalue()), img, atol=1 / 255, rtol=0)
    torch.testing.assert_close(images.load(png), img, atol=1 / 255, rtol=0)


def test_missing_path_names_path_and_samples(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        images.load(tmp_path / "nope.jpg")
    assert "nope.jpg" in str(err.value) and "chelsea" in str(err.value)


def test_not_an_image(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    with pytest.raises(images.ImageError, match="not an image file"):
        images.load(tmp_path / "notes.txt")
    with pytest.raises(images.ImageError, match="folder"):
        images.load(tmp_path)


def test_corrupt_image(tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(images.ImageError, match="damaged or truncated"):
        images.load(tmp_path / "cut.jpg")


def test_huge_image_refused_before_decoding(tmp_path):
    Image.new("1", (12000, 10000)).save(tmp_path / "huge.png")
    with pytest.raises(images.ImageError, match="12000x10000.*limit"):
        images.load(tmp_path / "huge.png")


def test_large_image_scaled_down_with_warning(tmp_path):
    Image.new("RGB", (3000, 200), (10, 20, 30)).save(tmp_path / "wide.png")
    with pytest.warns(UserWarning, match="scaled down"):
        img = images.load(tmp_path / "wide.png")
    assert max(img.shape[2:]) <= images.MAX_SIDE


def test_float_array_out_of_range():
    with pytest.raises(images.ImageError, match="0..1"):
        images.from_array(np.full((4, 4), 2.0))
    with pytest.raises(TypeError, match="sample name"):
        images.load(42)


def test_resize_and_crop_known_sizes():
    img = torch.rand(1, 3, 100, 50)
    assert images.resize(img, 25).shape == (1, 3, 50, 25)
    assert images.resize(img, (10, 20)).shape == (1, 3, 10, 20)
    crop = images.center_crop(img, 50)
    assert torch.equal(crop, img[..., 25:75, :])
    with pytest.raises(ValueError, match="larger than the image"):
        images.center_crop(img, 60)
    with pytest.raises(ValueError, match="positive"):
        images.resize(img, 0)
    const = torch.full((1, 3, 40, 40), 0.25)
    torch.testing.assert_close(images.resize(const, 13), torch.full((1, 3, 13, 13), 0.25))
