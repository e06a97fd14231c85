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


def test_images_keep_their_colours_and_range_maps_follow_the_convention():
    gray = torch.full((1, 1, 6, 6), 0.5)
    gray[..., 0, 0] = 0.52                                   # nearly flat: must stay nearly flat
    heat = torch.rand(6, 6)
    fig = plotting.image_grid([gray, torch.rand(1, 3, 6, 6), heat, heat - 0.5], cmap="hot")
    ims = [a.get_images()[0] for a in fig.axes[:4]]
    assert ims[0].get_cmap().name == plotting.IMAGE_CMAP and ims[0].get_clim() == (0.0, 1.0)  # not stretched, not "hot"
    assert ims[1].get_array().shape == (6, 6, 3)
    assert ims[2].get_cmap().name == "hot"                                                     # maps take the override
    fig = plotting.image_grid([heat, heat - 0.5])
    mag, sig = [a.get_images()[0] for a in fig.axes[:2]]
    assert mag.get_cmap().name == plotting.MAGNITUDE_CMAP and mag.get_clim()[0] == 0
    assert sig.get_cmap().name == plotting.SIGNED_CMAP and sig.get_clim()[0] == -sig.get_clim()[1]


def test_magnitude_clips_at_the_percentile_and_signed_centres_on_the_reference():
    a = torch.zeros(10, 10)
    a.view(-1)[:99] = torch.linspace(0, 1, 99)
    a.view(-1)[99] = 100.0                                   # one extreme pixel
    p = plotting.magnitude(a)
    assert p.vmin == 0 and p.vmax == pytest.approx(np.percentile(a.numpy(), 99)) and p.vmax < 2
    assert plotting.magnitude(a, vmax=2.0).vmax == 2.0
    s = plotting.signed(torch.tensor([[0.80, 0.90], [0.91, 0.70]]), center=0.9)
    assert (s.vmin, s.vmax) == pytest.approx((0.7, 1.1))     # white at 0.9, the largest change saturates
    s = plotting.signed(torch.tensor([[0.89, 0.90]]), center=0.9, span=0.2)
    assert (s.vmin, s.vmax) == pytest.approx((0.7, 1.1))     # a stated span: a 1% drop stays pale
    with pytest.raises(ValueError, match="NaN"):
        plotting.magnitude(torch.tensor([[float("nan"), 1.0]]))


def test_overlay_draws_the_map_over_its_image():
    img = torch.rand(1, 1, 16, 16)
    fig = plotting.image_grid([plotting.overlay(img, torch.rand(4, 4))], ["CAM"])
    under, over = fig.axes[0].get_images()
    assert under.get_cmap().name == plotting.IMAGE_CMAP and over.get_alpha() == plotting.OVERLAY_ALPHA
    assert over.get_array().shape == (16, 16)


def test_heatmap_centres_on_a_stated_reference():
    img = torch.rand(1, 1, 8, 8)
    heat = torch.full((8, 8), 0.9)
    heat[2:4, 2:4] = 0.8
    fig = plotting.heatmap(img, heat, center=0.9, vmax=0.5, label="P")
    im = fig.axes[1].get_images()[0]
    assert im.get_cmap().name == plotting.SIGNED_CMAP and im.get_clim() == pytest.approx((0.4, 1.4))
    bounded = plotting.heatmap(img, heat, center=0.9, vmax=0.5, label="P", bounds=(0.0, 1.0))
    bar = bounded.axes[-1]                                  # the colorbar stops at P = 1, the colours do not move
    assert bounded.axes[1].get_images()[0].get_clim() == pytest.approx((0.4, 1.4))
    assert bar.get_ylim() == pytest.approx((0.4, 1.0)) and max(bar.get_yticks()[(bar.get_yticks() <= 1.0)]) <= 1.0


def test_titles_fit_their_panels_and_audit_finds_what_is_wrong():
    long = "a title much too long to fit above a small panel, in any sensible font size"
    fig = plotting.image_grid([torch.rand(1, 1, 8, 8)] * 3, [long, "b", "c"], size=1.2, suptitle=long * 2)
    assert plotting.audit(fig) == []
    text, size = plotting.title_size(long, 1.2)
    assert size == plotting.TITLE_MIN and "\n" in text
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(3, 1))
    axes[0].imshow(np.full((4, 4), np.nan))
    axes[1].imshow(np.ones((4, 4)))
    axes[2].imshow(np.random.rand(4, 4))
    axes[2].set_title(long, fontsize=12)
    problems = plotting.audit(fig)
    assert len(problems) == 3 and "NaN" in problems[0] and "flat panel" in problems[1] and "wider" in problems[2]
    plt.close("all")


def test_install_audit_reports_every_rendered_figure(tmp_path, monkeypatch):
    import io
    import json

    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase
    monkeypatch.setattr(FigureCanvasBase, "print_figure", FigureCanvasBase.print_figure)   # undone after the test
    report = tmp_path / "audit.jsonl"
    plotting.install_audit(report)
    plotting.install_audit(report)                                   # twice: still one line per figure
    for panel in (np.random.rand(4, 4), np.zeros((4, 4))):
        fig, ax = plt.subplots()
        ax.imshow(panel)
        ax.set_title("t")
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [line["title"] for line in lines] == ["t", "t"]
    assert lines[0]["problems"] == [] and "flat panel" in lines[1]["problems"][0]
