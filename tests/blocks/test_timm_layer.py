"""timm_attn_layer: every registered block as timm's attn_layer, built and run inside timm."""

import pickle

import pytest
import torch

import attn_blocks
from attn_blocks import timm_attn_layer

timm = pytest.importorskip("timm")


@pytest.mark.parametrize("name", attn_blocks.available())
def test_every_block_runs_as_the_attn_layer_of_a_timm_resnet18(name):
    layer = timm_attn_layer(name)
    model = timm.create_model("resnet18", num_classes=5, block_args={"attn_layer": layer})
    blocks = [m.se for m in model.modules() if isinstance(m, timm.models.resnet.BasicBlock)]
    assert len(blocks) == 8
    assert all(type(b) is attn_blocks.info(name).cls for b in blocks)
    for block, channels in zip(blocks, [64, 64, 128, 128, 256, 256, 512, 512], strict=True):
        expected = attn_blocks.create(name, channels).state_dict()
        assert {k: v.shape for k, v in block.state_dict().items()} == {
            k: v.shape for k, v in expected.items()
        }
    x = torch.randn(2, 3, 32, 32)  # batch 2: some blocks need it in train mode
    out = model.train()(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for b in blocks for p in b.parameters())
    assert torch.isfinite(model.eval()(x)).all()


def test_params_reach_the_block_and_bottlenecks_take_it_too():
    layer = timm_attn_layer("eca", kernel_size=3)
    model = timm.create_model("resnet50", num_classes=3, block_args={"attn_layer": layer})
    assert {m.se.kernel_size for m in model.modules() if hasattr(m, "se")} == {3}
    assert model.layer4[2].se.channels == 2048
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_timm_create_attn_accepts_it_with_device_and_dtype():
    block = timm.layers.create_attn(timm_attn_layer("se", reduction=4), 32, dtype=torch.float64)
    assert isinstance(block, attn_blocks.info("se").cls)
    assert block.hidden_channels == 8
    assert {p.dtype for p in block.parameters()} == {torch.float64}
    on_meta = timm.layers.create_attn(timm_attn_layer("gc"), 16, device="meta")
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}


def test_params_are_validated_when_the_layer_is_made():
    with pytest.raises(ValueError) as direct:
        attn_blocks.create("se", 8, reduction=0)
    with pytest.raises(ValueError) as layer:
        timm_attn_layer("se", reduction=0)
    assert str(layer.value) == str(direct.value)
    with pytest.raises(ValueError, match="unknown attention block 'nope'; available: "):
        timm_attn_layer("nope")
    with pytest.raises(ValueError, match=r"block 'eca' got unknown parameter\(s\) \['r'\]"):
        timm_attn_layer("eca", r=4)


def test_kwargs_timm_passes_that_the_block_does_not_take_are_named():
    with pytest.raises(ValueError, match=r"timm passed \['rd_ratio'\].*\['reduction'\]"):
        timm_attn_layer("se")(64, rd_ratio=0.25)


def test_repr_and_pickle():
    layer = timm_attn_layer("cbam", reduction=8)
    assert repr(layer) == "timm_attn_layer('cbam', reduction=8, spatial_kernel=7)"
    assert pickle.loads(pickle.dumps(layer)) == layer
