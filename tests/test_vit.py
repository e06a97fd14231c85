import pytest
import torch
from torchvision.models import VisionTransformer

from lecturekit import hooks, vit


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return vit.TinyViT(size=8, patch=4, dim=8, depth=2, heads=2, mlp=16, num_classes=3)


def test_attention_maps_are_the_softmax_of_scaled_dot_products(tiny):
    x = torch.randn(2, 1, 8, 8)
    tiny.train()
    maps = vit.attention_maps(tiny, x)
    assert list(maps) == tiny.attention_layers and tiny.training and hooks.count(tiny) == 0
    a0 = maps["blocks.0.attn.probs"]
    assert a0.shape == (2, 2, 5, 5)
    torch.testing.assert_close(a0.sum(-1), torch.ones(2, 2, 5))
    # by hand for block 0: tokens -> LayerNorm -> q, k -> softmax(q k^T / sqrt(d_head))
    tokens = tiny.embed(x).flatten(2).transpose(1, 2)
    tokens = torch.cat([tiny.cls.expand(2, -1, -1), tokens], 1) + tiny.pos
    h = tiny.blocks[0].norm1(tokens)
    q, k, _ = tiny.blocks[0].attn.qkv(h).chunk(3, dim=-1)
    q, k = q.view(2, 5, 2, 4).transpose(1, 2), k.view(2, 5, 2, 4).transpose(1, 2)
    torch.testing.assert_close(a0, (q @ k.transpose(-1, -2) / 2.0).softmax(-1))


def test_rollout_by_hand():
    a1 = torch.softmax(torch.randn(1, 2, 3, 3), -1)
    a2 = torch.softmax(torch.randn(1, 2, 3, 3), -1)

    def step(a):
        a = a.mean(1) + torch.eye(3)
        return a / a.sum(-1, keepdim=True)
    torch.testing.assert_close(vit.rollout([a1, a2]), step(a2) @ step(a1))
    torch.testing.assert_close(vit.rollout([a1], residual=False), a1.mean(1))
    eye = torch.eye(3).expand(1, 2, 3, 3)
    torch.testing.assert_close(vit.rollout([eye, eye, eye]), torch.eye(3)[None])
    torch.testing.assert_close(vit.rollout([a1, a2]).sum(-1), torch.ones(1, 3))   # still a flow: rows sum to 1
    with pytest.raises(ValueError, match="at least one layer"):
        vit.rollout([])


def test_cls_map_and_upsample():
    attn = torch.zeros(1, 5, 5)
    attn[0, 0, 1:] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    grid = vit.cls_map(attn, grid=2)
    torch.testing.assert_close(grid, torch.tensor([[[0.1, 0.2], [0.3, 0.4]]]))
    assert vit.upsample(grid, 8)[0, 7, 7] == 0.4 and vit.upsample(grid, 8)[0, 0, 3] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="4 patch tokens do not make a 3x3 grid"):
        vit.cls_map(attn, grid=3)


def test_torchvision_vit_weights_are_recorded_and_the_model_restored():
    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16,
                              num_classes=3)
    x = torch.randn(1, 3, 32, 32)
    before = model(x)
    maps = vit.attention_maps(model, x)
    assert list(maps) == ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1"]
    assert maps["encoder.layers.encoder_layer_0"].shape == (1, 2, 5, 5)
    layer = model.encoder.layers.encoder_layer_0
    h = layer.ln_1(model.encoder.pos_embedding + torch.cat(
        [model.class_token, model.conv_proj(x).flatten(2).transpose(1, 2)], 1))
    _, expected = layer.self_attention(h, h, h, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(maps["encoder.layers.encoder_layer_0"], expected)
    assert "forward" not in vars(layer.self_attention)           # the wrapper is gone
    torch.testing.assert_close(model(x), before)


def test_attention_maps_restore_the_model_when_the_forward_pass_fails():
    model = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16)
    with pytest.raises(AssertionError):
        vit.attention_maps(model, torch.randn(1, 3, 48, 48))     # torchvision refuses the wrong size
    assert "forward" not in vars(model.encoder.layers.encoder_layer_0.self_attention)
    with pytest.raises(TypeError, match="works with lecturekit.vit.TinyViT"):
        vit.attention_maps(torch.nn.Linear(2, 2), torch.randn(1, 2))
    with pytest.raises(ValueError, match="TinyViT takes 8x8 images"):
        vit.TinyViT(size=8, patch=4, dim=8, depth=1, heads=2)(torch.randn(1, 1, 28, 28))


def test_shipped_vit_loads_and_is_accurate_on_the_sample():
    from lecturekit import teaching
    model, meta = vit.load_tiny()
    assert meta["test_accuracy"] >= 0.88 and meta["train_seconds"] <= 15 * 60
    imgs, labels = teaching.load_sample()
    with torch.no_grad():
        acc = (model(teaching.preprocess(imgs)).argmax(1) == labels).float().mean().item()
    assert acc >= 0.85


def test_load_offline_is_the_tiny_vit_and_names_are_checked(capsys):
    bundle = vit.load()
    assert bundle.name == "vit_tiny" and "download vit_b_16" in capsys.readouterr().out
    assert bundle.stages == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"] and vit.grid_size(bundle.model) == 7
    assert not any(p.requires_grad for p in bundle.model.parameters())
    with pytest.raises(ValueError, match="name must be 'auto', 'vit_b_16' or 'tiny'"):
        vit.load("deit")
