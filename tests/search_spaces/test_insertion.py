"""insert_attention: SENet's four integrations checked by dataflow, the plugin path, errors,
TorchScript and ONNX."""

import io
import warnings

import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet18
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

import attn_blocks
from search_spaces.backbones import backbone_sites, build_backbone
from search_spaces.insertion import (
    AttentiveBasicBlock,
    AttentiveInvertedResidual,
    InsertionRule,
    PrePostAttention,
    insert_attention,
)
from search_spaces.spec import POSITIONS, BlockChoice


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _projection(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(conv1x1(c_in, c_out, 2), nn.BatchNorm2d(c_out))


# Each unit: (model, unit path, first module of the residual branch, its last module (the last
# BN), the shortcut module or None for an identity shortcut, whether a ReLU follows the add).
def _cifar_unit():
    return build_backbone("resnet8", width=4), "layer2.0", "conv1", "bn2", "downsample", True


def _basic_unit():
    block = BasicBlock(8, 16, stride=2, downsample=_projection(8, 16))
    return (
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), block),
        "1",
        "conv1",
        "bn2",
        "downsample",
        True,
    )


def _bottleneck_unit():
    block = Bottleneck(8, 4, stride=2, downsample=_projection(8, 16))
    return (
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), block),
        "1",
        "conv1",
        "bn3",
        "downsample",
        True,
    )


def _inverted_residual_unit():
    block = InvertedResidual(8, 8, stride=1, expand_ratio=2)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), block), "1", "conv", "conv", None, False


UNITS = {
    "cifar": _cifar_unit,
    "basic": _basic_unit,
    "bottleneck": _bottleneck_unit,
    "inverted_residual": _inverted_residual_unit,
}


def _record(module: nn.Module, store: dict, key: str) -> None:
    def hook(m, inputs, output):
        store[key] = (inputs[0].detach().clone(), output.detach().clone())

    module.register_forward_hook(hook)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("unit", sorted(UNITS))
def test_senet_integrations_dataflow(unit, position):
    """Hu et al. 2018, Fig. 5, checked on the tensors that actually flow, not on names."""
    model, path, first, last, shortcut, relu_after_add = UNITS[unit]()
    insert_attention(model, {path: BlockChoice("se", {"reduction": 2}, position)})
    model.eval()
    block = model.get_submodule(path)
    seen: dict = {}
    _record(block, seen, "block")
    _record(block.attn, seen, "attn")
    _record(getattr(block, first), seen, "first")
    _record(getattr(block, last), seen, "last")
    if shortcut is not None:
        _record(getattr(block, shortcut), seen, "shortcut")
    model(torch.randn(2, 3, 16, 16))

    def act(t):
        return torch.relu(t) if relu_after_add else t

    block_in, block_out = seen["block"]
    attn_in, attn_out = seen["attn"]
    branch_in, branch_out = seen["first"][0], seen["last"][1]
    shortcut_in, shortcut_out = seen.get("shortcut", (block_in, block_in))
    assert torch.equal(shortcut_in, block_in)  # the shortcut always takes the raw input
    if position == "standard":
        torch.testing.assert_close(attn_in, branch_out)
        torch.testing.assert_close(block_out, act(attn_out + shortcut_out))
    elif position == "pre":
        torch.testing.assert_close(attn_in, block_in)
        torch.testing.assert_close(branch_in, attn_out)
        torch.testing.assert_close(block_out, act(branch_out + shortcut_out))
    elif position == "post":
        torch.testing.assert_close(attn_in, act(branch_out + shortcut_out))
        torch.testing.assert_close(block_out, attn_out)
    else:
        torch.testing.assert_close(attn_in, shortcut_out)
        torch.testing.assert_close(block_out, act(branch_out + attn_out))


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_adapter_without_attention_matches_the_original(unit):
    model, path, *_ = UNITS[unit]()
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    insert_attention(model, {path: BlockChoice("se", {}, "standard")})
    block = model.get_submodule(path)
    block.attn = nn.Identity()
    torch.testing.assert_close(model(x), expected)


def test_plugin_patches_every_basic_block_of_resnet18():
    model = resnet18(num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    model.layer1.eval()  # mixed flags must survive the dry run
    insert_attention(model, InsertionRule("se", types=(BasicBlock,)))
    patched = {n: m for n, m in model.named_modules() if isinstance(m, AttentiveBasicBlock)}
    assert list(patched) == [f"layer{i}.{j}" for i in (1, 2, 3, 4) for j in (0, 1)]
    channels = [64, 64, 128, 128, 256, 256, 512, 512]
    for (name, block), c in zip(patched.items(), channels, strict=True):
        assert _param_count(block.attn) == _param_count(attn_blocks.create("se", c)), name
        assert block.training == block.attn.training == (not name.startswith("layer1"))
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key  # names kept, BN statistics untouched
    assert all(".attn." in k for k in set(after) - set(before))
    assert model.training and not model.layer1.training
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_plugin_patches_the_residual_blocks_of_mobilenet_v2():
    model = mobilenet_v2(num_classes=10)
    rule = InsertionRule("se", types=(InvertedResidual,), where=lambda m: m.use_res_connect)
    insert_attention(model, rule)
    patched = {n: m for n, m in model.named_modules() if isinstance(m, AttentiveInvertedResidual)}
    assert list(patched) == [s.path for s in backbone_sites("mobilenet_v2")]
    assert len(patched) == 10
    for name, block in patched.items():
        expected = attn_blocks.create("se", block.out_channels)
        assert _param_count(block.attn) == _param_count(expected), name
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_standard_on_a_block_without_residual_raises():
    model = mobilenet_v2()
    with pytest.raises(ValueError, match=r"'features\.1' \(InvertedResidual\).*\['pre', 'post'\]"):
        insert_attention(model, InsertionRule("se", types=(InvertedResidual,)))


def test_name_rules_and_lists_of_rules():
    model = resnet18()
    rules = [
        InsertionRule("eca", names=r"layer[34]\.\d+"),
        InsertionRule("se", names=r"layer1\.0", position="identity"),
    ]
    insert_attention(model, rules)
    attended = sorted(n for n, m in model.named_modules() if isinstance(m, AttentiveBasicBlock))
    assert attended == ["layer1.0", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    assert model.layer1[0].position == "identity"
    assert type(model.layer3[0].attn) is attn_blocks.info("eca").cls


@pytest.mark.parametrize("position", ["pre", "post"])
def test_wrapper_for_other_modules(position):
    model = build_backbone("resnet18", small_input=True).eval()
    insert_attention(model, InsertionRule("se", names="layer1", position=position))
    wrapper = model.layer1
    assert isinstance(wrapper, PrePostAttention)
    seen: dict = {}
    _record(wrapper, seen, "wrapper")
    _record(wrapper.attn, seen, "attn")
    _record(wrapper.module, seen, "module")
    model(torch.randn(2, 3, 16, 16))
    if position == "pre":
        torch.testing.assert_close(seen["attn"][0], seen["wrapper"][0])
        torch.testing.assert_close(seen["module"][0], seen["attn"][1])
        torch.testing.assert_close(seen["wrapper"][1], seen["module"][1])
    else:
        torch.testing.assert_close(seen["attn"][0], seen["module"][1])
        torch.testing.assert_close(seen["wrapper"][1], seen["attn"][1])
    assert "layer1.module.0.conv1.weight" in model.state_dict()


def test_residual_positions_on_other_modules_raise():
    model = resnet18()
    with pytest.raises(ValueError, match=r"'layer1' \(Sequential\) supports .*\['pre', 'post'\]"):
        insert_attention(model, {"layer1": BlockChoice("se", {}, "identity")})


def test_selection_errors():
    model = resnet18()
    with pytest.raises(ValueError, match=r"matches no module; candidates: \[.*'layer"):
        insert_attention(model, InsertionRule("se", names=r"layer5\.\d+"))
    with pytest.raises(ValueError, match=r"types=Bottleneck.*matches no module"):
        insert_attention(model, InsertionRule("se", types=(Bottleneck,)))
    with pytest.raises(ValueError, match=r"no submodule 'layer9\.0'; close names: \['layer"):
        insert_attention(model, {"layer9.0": BlockChoice("se")})
    with pytest.raises(ValueError, match="selected by both"):
        insert_attention(
            model,
            [InsertionRule("se", types=(BasicBlock,)), InsertionRule("eca", names=r"layer1\.0")],
        )
    with pytest.raises(ValueError, match=r"'layer1' and its submodule 'layer1\.0'"):
        insert_attention(
            model, {"layer1": BlockChoice("se", {}, "post"), "layer1.0": BlockChoice("se")}
        )
    assert not any(isinstance(m, AttentiveBasicBlock) for m in model.modules())


def test_rule_validation():
    with pytest.raises(ValueError, match="selects every module"):
        InsertionRule("se")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        InsertionRule("se", names="layer[")
    with pytest.raises(ValueError, match=r"position 'middle'.*'standard'"):
        InsertionRule("se", names="layer1", position="middle")
    with pytest.raises(ValueError, match="unknown attention block 'nope'"):
        InsertionRule("nope", names="layer1")
    with pytest.raises(ValueError, match=r"nn\.Module classes"):
        InsertionRule("se", types=(int,))


def test_none_choices_and_double_insertion():
    model = build_backbone("resnet8")
    plain = _param_count(model)
    insert_attention(model, {"layer1.0": BlockChoice("none"), "layer2.0": {"block": "none"}})
    assert _param_count(model) == plain
    insert_attention(model, {"layer1.0": BlockChoice("se")})
    assert _param_count(model) > plain
    with pytest.raises(ValueError, match=r"'layer1\.0' already carries attention"):
        insert_attention(model, {"layer1.0": BlockChoice("eca")})


def test_dry_run_requirements():
    no_conv = nn.Sequential(nn.Identity(), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match=r"no Conv2d.*example_input"):
        insert_attention(no_conv, {"1": BlockChoice("se", {}, "post")})
    insert_attention(no_conv, {"1": BlockChoice("se", {}, "post")}, torch.zeros(1, 4, 5, 5))
    assert isinstance(no_conv[1], PrePostAttention)

    flat = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten())
    with pytest.raises(ValueError, match=r"'1' \(Flatten\).*4-D"):
        insert_attention(flat, {"1": BlockChoice("se", {}, "post")})

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Conv2d(3, 4, 1)
            self.spare = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match=r"\['spare'\] did not run"):
        insert_attention(Unused(), {"spare": BlockChoice("se", {}, "post")})


def test_attention_follows_the_model_dtype():
    model = build_backbone("resnet8", width=4).double()
    insert_attention(model, {"layer2.0": BlockChoice("se", {}, "pre")})
    assert all(p.dtype == torch.float64 for p in model.layer2[0].attn.parameters())
    assert model(torch.randn(2, 3, 16, 16, dtype=torch.float64)).dtype == torch.float64


def _script(model: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        return torch.jit.script(model)


def test_torchscript_resnet18():
    model = build_backbone("resnet18", small_input=True)
    mapping = {
        "conv1": BlockChoice("se", {}, "post"),
        "layer1.0": BlockChoice("se", {}, "standard"),
        "layer1.1": BlockChoice("se", {}, "pre"),
        "layer2.0": BlockChoice("se", {}, "post"),
        "layer3.0": BlockChoice("se", {}, "identity"),
        "layer4.1": BlockChoice("eca", {}, "standard"),
    }
    insert_attention(model, mapping).eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(_script(model)(x), model(x))


def test_torchscript_mobilenet_v2():
    model = build_backbone("mobilenet_v2", width_mult=0.25)
    sites = backbone_sites("mobilenet_v2", width_mult=0.25)
    mapping = {site.path: BlockChoice("se", {}, POSITIONS[i % 4]) for i, site in enumerate(sites)}
    mapping["features.2"] = BlockChoice("eca", {}, "pre")  # no residual: wrapped
    insert_attention(model, mapping).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(_script(model)(x), model(x))


def test_onnx_export_of_patched_cifar_resnet():
    onnxruntime = pytest.importorskip("onnxruntime")
    model = build_backbone("cifar_resnet", depth=14, width=4)
    mapping = {
        "layer1.0": BlockChoice("se", {"reduction": 2}, "standard"),
        "layer1.1": BlockChoice("se", {"reduction": 2}, "pre"),
        "layer2.0": BlockChoice("se", {"reduction": 2}, "identity"),
        "layer2.1": BlockChoice("eca", {}, "post"),
        "layer3.0": BlockChoice("eca", {}, "standard"),
    }
    insert_attention(model, mapping).eval()
    x = torch.randn(2, 3, 16, 16)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["x"])
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(onnx_out), model(x), atol=1e-5, rtol=1e-4)
