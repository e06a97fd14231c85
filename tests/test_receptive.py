import pytest
import torch
from torch import nn
from torchvision.models import get_model

from lecturekit import features, hooks, receptive


def test_alexnet_by_hand():
    rfs = receptive.receptive_fields(get_model("alexnet"))
    # conv1: 11x11 stride 4 padding 2 -> first centre at 5 - 2 = 3
    assert (rfs["features.0"].size, rfs["features.0"].stride, rfs["features.0"].offset) == (11, 4, 3)
    # pool 3/2: 11 + 2*4 = 19; conv2 5: 19 + 4*8 = 51; pool: 67; conv3..5 (3x3): 99, 131, 163; pool5: 195
    expected = {"features.2": (19, 8), "features.3": (51, 8), "features.5": (67, 16), "features.6": (99, 16),
                "features.8": (131, 16), "features.10": (163, 16), "features.12": (195, 32)}
    assert {k: (rfs[k].size, rfs[k].stride) for k in expected} == expected
    assert rfs["classifier.6"].is_global and str(rfs["classifier.6"]) == "whole image"


def test_stack_of_3x3_convs_and_pooling():
    convs = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(5)])
    assert [receptive.receptive_fields(convs)[str(i)].size for i in range(5)] == [3, 5, 7, 9, 11]
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, dilation=2))
    rfs = receptive.receptive_fields(net)
    assert [(rfs[k].size, rfs[k].stride) for k in "0123"] == [(3, 1), (4, 2), (8, 2), (16, 2)]
    assert rfs["1"].offset == 1.5 and rfs["2"].offset == 3.5      # no padding: fields start at pixel 0


@pytest.mark.parametrize("name,layer,size", [("vgg16", "features.29", 196), ("resnet18", "layer4", 435),
                                             ("squeezenet1_1", "features.12", 207)])
def test_known_values_and_gradient_support(name, layer, size):
    model = get_model(name).eval()
    rf = receptive.receptive_field(model, layer)
    assert rf.size == size
    n = 480
    with torch.no_grad():
        h, w = hooks.activations(model, torch.zeros(1, 3, n, n), layer)[layer].shape[2:]
    assert receptive.gradient_box(receptive.linearized(model), layer, n) == rf.box((h - 1) // 2, (w - 1) // 2, n, n)
    assert hooks.count(model) == 0


def test_teaching_model_matches_gradient_support(teaching):
    model = teaching.model
    for layer in teaching.stages:
        rf = receptive.receptive_field(model, layer)
        with torch.no_grad():
            h = hooks.activations(model, torch.zeros(1, 1, 64, 64), layer)[layer].shape[2]
        assert receptive.gradient_box(receptive.linearized(model), layer, 64, 1) == rf.box((h - 1) // 2, (h - 1) // 2, 64, 64)
    assert [receptive.receptive_field(model, s).size for s in teaching.stages] == [5, 10, 20, 28]
    assert not any(p.requires_grad for p in model.parameters())       # linearized() copies


def test_unknown_layer_type_and_bad_name():
    with pytest.raises(ValueError, match="Upsample, which has no rule"):
        receptive.receptive_fields(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2)))
    with pytest.raises(ValueError, match="Valid layer names: 0"):
        receptive.receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3)), "conv9")


def test_crop_pads_outside_the_image():
    img = torch.arange(36.0).view(1, 1, 6, 6)
    rf = receptive.RF(3, 2, 0.0)
    torch.testing.assert_close(receptive.crop(img, rf, 1, 1), img[0, :, 1:4, 1:4])
    corner = receptive.crop(img, rf, 0, 0, fill=-1)
    assert corner[0, 0].tolist() == [-1, -1, -1] and corner[0, 1:, 1:].tolist() == [[0, 1], [6, 7]]
    assert rf.box(0, 0, 6, 6) == (0, 0, 2, 2)


def test_top_patches_on_a_constructed_model():
    # one 3x3 "plus" detector; the plus is drawn with different contrast in each image
    det = nn.Conv2d(1, 1, 3, bias=False)
    plus = torch.tensor([[0.0, 1, 0], [1, 1, 1], [0, 1, 0]])
    det.weight.data[:] = plus
    images = torch.zeros(4, 1, 12, 12)
    where = [(2, 3), (7, 7), (4, 9), (9, 2)]
    for i, ((r, c), contrast) in enumerate(zip(where, [0.2, 1.0, 0.6, 0.4])):
        images[i, 0, r - 1:r + 2, c - 1:c + 2] = plus * contrast
    model = nn.Sequential(det)
    cache = features.LayerCache(model, images, reduce=features.spatial_max)
    p = receptive.max_patches(cache, model, "0", channel=0, k=3)
    assert p.index.tolist() == [1, 2, 3]
    torch.testing.assert_close(p.value, torch.tensor([5.0, 3.0, 2.0]))
    # a valid 3x3 conv: output (r-1, c-1) is centred on pixel (r, c)
    assert (p.row.tolist(), p.col.tolist()) == ([6, 3, 8], [6, 8, 1])
    torch.testing.assert_close(p.patches[0, 0], plus)
    assert cache.runs == 1
    receptive.max_patches(cache, model, "0", channel=0, k=2)
    assert cache.runs == 1                                        # second look: from the cache
    with pytest.raises(ValueError, match="channel must be in 0..0"):
        receptive.max_patches(cache, model, "0", channel=3)
    with pytest.raises(ValueError, match="k must be between 1 and the number of images"):
        receptive.max_patches(cache, model, "0", channel=0, k=5)


def test_the_original_vgg19_with_its_input_module():
    from lecturekit import style
    net = style.original_vgg19(last="relu3_1")
    rfs = receptive.receptive_fields(net)
    assert rfs["preprocess"].size == 1 and rfs["relu1_1"].size == 3 and rfs["pool1"].size == 6
    assert rfs["relu3_1"].size == receptive.receptive_fields(net[1:])["relu3_1"].size == 24
