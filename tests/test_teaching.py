import gzip

import numpy as np
import torch

from lecturekit import teaching
from lecturekit.train_teaching import augment, balanced_sample


def test_architecture_shapes_and_names():
    model = teaching.TeachingNet()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model(torch.zeros(1, 1, 40, 36)).shape == (1, 10)       # global pooling: any size
    assert model.conv1.weight.shape == (32, 1, 5, 5)
    assert isinstance(model.gap, torch.nn.AdaptiveAvgPool2d) and model.fc.in_features == 128


def test_preprocess_is_luminance_then_normalise():
    img = torch.zeros(1, 3, 2, 2)
    img[0, 0] = 1.0                                     # pure red
    x = teaching.preprocess(img)
    torch.testing.assert_close(x, torch.full((1, 1, 2, 2), (0.299 - teaching.MEAN) / teaching.STD))
    gray = torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(teaching.deprocess(teaching.preprocess(gray))[:, :1], gray)


def test_idx_reader_on_a_constructed_file(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in data.shape)
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(header + data.tobytes())
    assert np.array_equal(teaching._read_idx(tmp_path / "x.gz"), data)


def test_shipped_sample_is_balanced():
    images, labels = teaching.load_sample()
    assert images.shape == (500, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert torch.bincount(labels, minlength=10).tolist() == [50] * 10


def test_augment_shifts_and_flips_exactly():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = augment(x, torch.Generator().manual_seed(0), shift=1)
    assert out.shape == x.shape
    seen = set()
    for o in out[:, 0]:
        found = False
        for flip in (False, True):
            src = x[0, 0].flip(1) if flip else x[0, 0]
            padded = torch.nn.functional.pad(src, (1, 1, 1, 1))
            for dy in range(3):
                for dx in range(3):
                    if torch.equal(padded[dy:dy + 4, dx:dx + 4], o):
                        found = True
                        seen.add((flip, dy, dx))
        assert found
    assert len(seen) > 8                                 # many different shifts and both flips occur


def test_balanced_sample_takes_each_class_equally():
    labels = torch.arange(10).repeat(30)
    idx = balanced_sample(labels, 5, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[idx]).tolist() == [5] * 10 and len(set(idx.tolist())) == 50


def test_accuracy_of_a_constant_model():
    from lecturekit.train_teaching import accuracy

    class Always3(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((x.shape[0],), 3), 10).float()
    labels = torch.tensor([3, 3, 1, 0, 3, 9, 3, 3])
    assert accuracy(Always3(), torch.zeros(8, 28, 28, dtype=torch.uint8), labels, batch=3) == 5 / 8


def test_missing_dataset_offline_is_a_clear_message(monkeypatch, tmp_path):
    import pytest
    monkeypatch.setattr(teaching, "DEBIAN_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        teaching.load_fashion_mnist("test")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        teaching.load_fashion_mnist("validation")


def test_debian_files_when_installed():
    import pytest
    if not (teaching.DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    images, labels = teaching.load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [1000] * 10


def test_shared_training_loop_learns_the_sample():
    import torch
    from lecturekit import config, teaching
    from lecturekit.train_teaching import accuracy, fit
    from lecturekit.vit import TinyViT
    imgs, labels = teaching.load_sample()
    raw = (imgs[:, 0] * 255).round().to(torch.uint8)
    torch.manual_seed(0)
    model = TinyViT(dim=32, depth=1, heads=2, mlp=64)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0)
    before = accuracy(model, raw, labels)
    seconds = fit(model, opt, sched, (raw, labels, raw, labels), epochs=15, batch=50, gen=config.seed(0),
                  label_smoothing=0.1, clip=1.0)
    assert seconds > 0 and accuracy(model, raw, labels) > max(0.5, before + 0.3)
