import numpy as np
import pytest
import torch

from lecturekit import plotting


def test_image_grid_titles_and_layout():
    imgs = [torch.rand(1, 3, 8, 8), torch.rand(3, 8, 8), torch.rand(8, 8), np.random.rand(8, 8, 3)]
    fig = plotting.image_grid(imgs, titles=list("abcd"), ncols=3, suptitle="four")
    axes = fig.axes
    assert len(axes) == 6 and [a.get_title() for a in axes[:4]] == list("abcd")
    assert fig._suptitle.get_text() == "four"
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        plotting.image_grid(imgs[:2], titles=["x"])


def test_normalize_tiles_each_filter_to_0_1():
    w = torch.tensor([[[[-2.0, 0.0], [2.0, 1.0]]], [[[5.0, 5.0], [6.0, 7.0]]]])
    t = plotting.normalize_tiles(w)
    torch.testing.assert_close(t[0, 0], torch.tensor([[0.0, 0.5], [1.0, 0.75]]))
    torch.testing.assert_close(t[1, 0], torch.tensor([[0.0, 0.0], [0.5, 1.0]]))


def test_filter_tiles_rgb_gray_and_deep():
    fig = plotting.filter_tiles(torch.randn(10, 3, 5, 5), ncols=5)
    assert len(fig.axes) == 10 and fig.axes[0].get_images()[0].get_array().shape == (5, 5, 3)
    fig = plotting.filter_tiles(torch.randn(4, 1, 3, 3))
    assert fig.axes[0].get_images()[0].get_array().shape == (3, 3)
    with pytest.raises(ValueError, match="16 input channels; pass channel=0..15"):
        plotting.filter_tiles(torch.randn(4, 16, 3, 3))
    with pytest.raises(ValueError, match="channel must be in 0..15"):
        plotting.filter_tiles(torch.randn(4, 16, 3, 3), channel=16)
    fig = plotting.filter_tiles(torch.randn(4, 16, 3, 3), channel=2)
    assert "input channel 2" in fig._suptitle.get_text()


def test_heatmap_has_colorbar_and_resizes():
    img = torch.rand(1, 3, 32, 48)
    heat = torch.zeros(4, 6)
    heat[0, 0] = 1
    fig = plotting.heatmap(img, heat, title="t", label="saliency")
    titles = [a.get_title() for a in fig.axes]
    assert titles[:3] == ["image", "saliency", "overlay"] and len(fig.axes) == 4    # + colorbar
    shown = fig.axes[1].get_images()[0].get_array()
    assert shown.shape == (32, 48) and shown[0, 0] > shown[-1, -1]


def test_signed_image_maps_zero_to_grey():
    g = torch.tensor([[[-2.0, 0.0], [1.0, 2.0]]])
    torch.testing.assert_close(plotting.signed_image(g), torch.tensor([[[0.0, 0.5], [0.75, 1.0]]]))
