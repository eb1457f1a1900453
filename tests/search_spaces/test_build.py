"""build_model: every backbone x position x block builds and trains a step; determinism; errors."""

import pytest
import torch
from torch import nn

import attn_blocks
from search_spaces.backbones import backbone_sites, build_backbone
from search_spaces.build import build_model
from search_spaces.spec import POSITIONS, ArchSpec, BlockChoice

ATTENTIVE = [b for b in attn_blocks.available() if b != "none"]

#: The smallest configuration of each distinct backbone implementation, and an input size.
SMALL = {
    "resnet8": ({"width": 4}, 16),
    "resnet18": ({"small_input": True}, 16),
    "resnet34": ({"small_input": True}, 8),
    "resnet50": ({"small_input": True}, 8),
    "mobilenet_v2": ({"width_mult": 0.25}, 32),
}


def _spec(backbone: str, args: dict, block: str, position: str, params=None) -> ArchSpec:
    sites = backbone_sites(backbone, **args)
    choice = BlockChoice(block, params or {}, position)
    return ArchSpec(backbone, args, sites={s.name: choice for s in sites})


def _train_step(model: nn.Module, size: int) -> None:
    model.train()
    x = torch.randn(2, model.arch_spec.in_channels, size, size)
    out = model(x)
    assert out.shape == (2, model.arch_spec.num_classes)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    attention = [p for n, p in model.named_parameters() if ".attn." in n]
    assert all(p.grad is not None for p in attention)
    model.eval()
    assert torch.isfinite(model(x)).all()


def _attended(model: nn.Module) -> int:
    return sum(not isinstance(m.attn, nn.Identity) for m in model.modules() if hasattr(m, "attn"))


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("backbone", sorted(SMALL))
def test_backbone_x_position(backbone, position):
    args, size = SMALL[backbone]
    block = "se" if position in ("standard", "post") else "eca"
    model = build_model(_spec(backbone, args, block, position), seed=0)
    assert _attended(model) == len(backbone_sites(backbone, **args))
    _train_step(model, size)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("block", ATTENTIVE)
def test_every_block_on_resnet8(block, position):
    model = build_model(_spec("resnet8", {"width": 4}, block, position), seed=0)
    assert _attended(model) == 3
    _train_step(model, 16)


def test_no_sites_is_the_plain_backbone():
    spec = ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=3)
    model = build_model(spec, seed=1)
    plain = build_backbone("resnet8", 1, 3, width=4)
    assert _attended(model) == 0
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert model.arch_spec is spec
    _train_step(model, 16)


def test_partial_spec_leaves_other_sites_empty():
    spec = ArchSpec("resnet8", sites={"stage2.0": BlockChoice("se", {}, "post")})
    model = build_model(spec, seed=0)
    assert [n for n, m in model.named_modules() if _attended(m) and n.count(".") == 1] == [
        "layer2.0"
    ]


def test_same_seed_same_weights_and_caller_rng_untouched():
    spec = _spec("resnet8", {"width": 4}, "se", "standard")
    state = torch.get_rng_state()
    first = build_model(spec, seed=3).state_dict()
    second = build_model(spec, seed=3).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = build_model(spec, seed=4).state_dict()
    assert not torch.equal(first["layer1.0.conv1.weight"], other["layer1.0.conv1.weight"])
    assert any(not torch.equal(first[k], other[k]) for k in first if ".attn." in k)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_built_models_script():
    spec = _spec("resnet8", {"width": 4}, "se", "identity")
    model = build_model(spec, seed=0).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(scripted(x), model(x))


def test_unknown_sites_raise_listing_the_valid_ones():
    spec = ArchSpec("resnet8", sites={"stage4.0": BlockChoice("se"), "stage1.0": BlockChoice("se")})
    with pytest.raises(ValueError, match=r"\['stage4.0'\].*'resnet8'.*\['stage1.0', 'stage2.0'"):
        build_model(spec)
    mbv2 = ArchSpec("mobilenet_v2", sites={"stage1.0": BlockChoice("se")})
    with pytest.raises(ValueError, match=r"\['stage1.0'\].*\['stage2.1', 'stage3.1'"):
        build_model(mbv2)


def test_bad_backbone_and_seed_raise():
    with pytest.raises(ValueError, match="unknown backbone 'resnet99'"):
        build_model(ArchSpec("resnet99"))
    with pytest.raises(ValueError, match=r"depth=10 is invalid"):
        build_model(ArchSpec("cifar_resnet", {"depth": 10}))
    with pytest.raises(ValueError, match="seed must be an int"):
        build_model(ArchSpec("resnet8"), seed=1.5)


@pytest.mark.slow
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("block", ATTENTIVE)
@pytest.mark.parametrize("backbone", sorted(set(SMALL) - {"resnet8"}))
def test_every_backbone_x_position_x_block(backbone, block, position):
    """The full cross product (resnet8 is covered by the fast test above)."""
    args, size = SMALL[backbone]
    model = build_model(_spec(backbone, args, block, position), seed=0)
    assert _attended(model) == len(backbone_sites(backbone, **args))
    _train_step(model, size)
