"""timm backbones ("timm:<model>"): sites, the residual adapters, arguments, errors, costs."""

import sys

import optuna
import pytest
import torch
from torch import nn

import attn_blocks
from search_spaces.backbones import (
    backbone_sites,
    build_backbone,
    stage_names,
    validate_backbone_args,
)
from search_spaces.build import build_model
from search_spaces.cost import count_flops, count_params, model_cost, uncounted_ops
from search_spaces.insertion import (
    WRAPPER_POSITIONS,
    AttentiveTimmBasicBlock,
    AttentiveTimmBottleneck,
    supported_positions,
)
from search_spaces.space import SearchSpace, suggest_arch
from search_spaces.spec import POSITIONS, ArchSpec, BlockChoice

timm = pytest.importorskip("timm")
resnet = timm.models.resnet


def _spec(backbone: str, choices, **kwargs) -> ArchSpec:
    """``choices`` (one BlockChoice or a list cycled over the sites) at every site."""
    sites = backbone_sites(backbone, **kwargs.get("backbone_args", {}))
    choices = choices if isinstance(choices, list) else [choices]
    return ArchSpec(
        backbone,
        sites={s.name: choices[i % len(choices)] for i, s in enumerate(sites)},
        **kwargs,
    )


def _train_step(model: nn.Module, size: int = 16) -> None:
    model.train()
    out = model(torch.randn(2, model.arch_spec.in_channels, size, size))
    assert out.shape == (2, model.arch_spec.num_classes) and torch.isfinite(out).all()
    out.sum().backward()
    attention = [p for n, p in model.named_parameters() if ".attn." in n]
    assert attention and all(p.grad is not None for p in attention)


@pytest.mark.parametrize(
    ("model", "layers"),
    [
        ("resnet18", (2, 2, 2, 2)),
        ("resnet26", (2, 2, 2, 2)),
        ("resnet50d", (3, 4, 6, 3)),
        ("resnext50_32x4d", (3, 4, 6, 3)),
        ("seresnext26d_32x4d", (2, 2, 2, 2)),
    ],
)
def test_resnet_family_sites_are_the_residual_blocks(model, layers):
    name = f"timm:{model}"
    sites = backbone_sites(name)
    assert [(s.name, s.path) for s in sites] == [
        (f"stage{i}.{j}", f"layer{i}.{j}")
        for i, count in enumerate(layers, start=1)
        for j in range(count)
    ]
    assert all(s.positions == POSITIONS for s in sites)
    built = build_backbone(name)
    units = [p for p, m in built.named_modules() if p and supported_positions(m) == POSITIONS]
    assert units == [s.path for s in sites]
    assert stage_names(name) == ["stage1", "stage2", "stage3", "stage4"]


@pytest.mark.parametrize(
    ("model", "adapter"),
    [("resnet18", AttentiveTimmBasicBlock), ("seresnext26d_32x4d", AttentiveTimmBottleneck)],
)
def test_adapter_without_attention_is_the_timm_block(model, adapter):
    # drop_path is random: equal seeds must give equal outputs, in train mode too.
    plain = timm.create_model(model, drop_path_rate=0.2, zero_init_last=False)
    for block in (plain.layer2[0], plain.layer2[1]):  # with and without downsample
        wrapped = adapter(block)
        assert wrapped.state_dict().keys() == block.state_dict().keys()
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        for training in (True, False):
            block.train(training)
            wrapped.train(training)
            torch.manual_seed(1)
            expected = block(x.clone())
            torch.manual_seed(1)
            assert torch.equal(wrapped(x.clone()), expected)


@pytest.mark.parametrize("model", ["resnet18", "resnet26"])
def test_standard_is_where_timm_puts_its_attn_layer(model):
    # Stochastic depth too: timm drops the attended branch, so must we.
    args = {"zero_init_residual": False, "drop_path_rate": 0.2}
    se = BlockChoice("se", {"reduction": 4}, "standard")
    ours = build_model(_spec(f"timm:{model}", se, backbone_args=args), seed=0)
    layer = attn_blocks.timm_attn_layer("se", reduction=4)
    theirs = timm.create_model(
        model,
        num_classes=10,
        zero_init_last=False,
        drop_path_rate=0.2,
        block_args={"attn_layer": layer},
    )
    theirs.load_state_dict({k.replace(".attn.", ".se."): v for k, v in ours.state_dict().items()})
    x = torch.randn(2, 3, 32, 32)
    for training in (False, True):
        torch.manual_seed(1)
        expected = theirs.train(training)(x)
        torch.manual_seed(1)
        torch.testing.assert_close(ours.train(training)(x), expected)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("model", ["resnet18", "resnet26"])
def test_every_position_trains(model, position):
    block = "se" if position in ("standard", "post") else "eca"
    built = build_model(_spec(f"timm:{model}", BlockChoice(block, {}, position)), seed=0)
    assert sum(isinstance(m, attn_blocks.info(block).cls) for m in built.modules()) == 8
    _train_step(built)


def test_a_timm_se_slot_stays_and_keys_are_kept():
    name = "timm:seresnext26d_32x4d"
    plain = build_backbone(name)
    built = build_model(_spec(name, BlockChoice("eca", {}, "standard")), seed=0)
    assert isinstance(built.layer1[0].se, timm.layers.SEModule)
    assert isinstance(built.layer1[0].attn, attn_blocks.info("eca").cls)
    keys = set(built.state_dict())
    assert set(plain.state_dict()) == {k for k in keys if ".attn." not in k}


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_timm_models_with_attention_script():
    built = build_model(_spec("timm:resnet18", [BlockChoice("se", {}, p) for p in POSITIONS]))
    built.eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(torch.jit.script(built)(x), built(x))


@pytest.mark.parametrize(
    ("model", "paths"),
    [
        ("convnext_atto", ["stages.0", "stages.1", "stages.2", "stages.3"]),
        ("efficientnet_b0", ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"]),
        ("regnetx_002", ["s1", "s2", "s3", "s4"]),
        ("skresnet18", ["layer1", "layer2", "layer3", "layer4"]),  # not timm's own blocks
    ],
)
def test_other_timm_models_get_pre_post_sites_at_their_stages(model, paths):
    name = f"timm:{model}"
    sites = backbone_sites(name)
    assert [(s.name, s.path, s.positions) for s in sites] == [
        (f"stage{i}.0", path, WRAPPER_POSITIONS) for i, path in enumerate(paths, start=1)
    ]
    built = build_model(
        _spec(name, [BlockChoice("eca", {}, "pre"), BlockChoice("gct", {}, "post")])
    )
    _train_step(built, size=32)
    with pytest.raises(
        ValueError, match=rf"site 'stage1.0' of backbone '{name}' takes positions \['pre', 'post'\]"
    ):
        build_model(_spec(name, BlockChoice("se", {}, "standard")))


def test_in_channels_num_classes_and_arguments_reach_timm():
    built = build_model(_spec("timm:resnet18", BlockChoice("se"), in_channels=1, num_classes=7))
    assert built.conv1.in_channels == 1 and built.fc.out_features == 7
    _train_step(built)
    assert validate_backbone_args("timm:resnet18", {}) == {
        "drop_rate": 0.0,
        "drop_path_rate": 0.0,
        "zero_init_residual": True,
        "small_input": False,
    }
    assert all(torch.all(b.bn2.weight == 0) for b in build_backbone("timm:resnet18").layer1)
    kept = build_backbone("timm:resnet18", zero_init_residual=False, drop_path_rate=0.1)
    assert all(torch.all(b.bn2.weight == 1) for b in kept.layer1)
    assert kept.layer4[1].drop_path is not None and kept.layer1[0].drop_path is None
    assert build_backbone("timm:convnext_atto", drop_rate=0.3).drop_rate == 0.3


@pytest.mark.parametrize(("model", "stem"), [("resnet18", "conv1"), ("resnet50d", "conv1.0")])
def test_small_input_keeps_the_stem_weights_and_gives_output_stride_8(model, stem):
    small = build_backbone(f"timm:{model}", small_input=True).eval()
    assert small.get_submodule(stem).stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    plain = build_backbone(f"timm:{model}")
    assert {k: v.shape for k, v in small.state_dict().items()} == {
        k: v.shape for k, v in plain.state_dict().items()
    }
    shapes = []
    small.layer4.register_forward_hook(lambda m, i, o: shapes.append(o.shape[-1]))
    small(torch.randn(1, 3, 32, 32))
    assert shapes == [4]


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("timm:resnet18", {"small_input": 1}, "argument small_input=1 is invalid (expected a bool"),
        ("timm:resnet18", {"drop_path_rate": 1.0}, "drop_path_rate=1.0 is invalid (must lie in"),
        ("timm:resnet18", {"width": 8}, "unknown argument(s) ['width']; it takes ['drop_rate'"),
        ("timm:convnext_atto", {"small_input": True}, "unknown argument(s) ['small_input']"),
    ],
)
def test_invalid_arguments_name_the_backbone_and_the_argument(name, args, message):
    with pytest.raises(ValueError) as error:
        validate_backbone_args(name, args)
    assert str(error.value).startswith(f"backbone {name!r}")
    assert message in str(error.value)


def test_unknown_timm_model_is_named_with_a_hint():
    with pytest.raises(ValueError) as error:
        backbone_sites("timm:resnet19")
    text = str(error.value)
    assert "unknown timm model 'resnet19' (backbone 'timm:resnet19')" in text
    assert "'resnet18'" in text and "timm.list_models('resnet*')" in text
    with pytest.raises(ValueError, match=r"or timm:<model> for a timm model"):
        backbone_sites("resnet19")


def test_without_timm_the_error_names_the_extra(monkeypatch):
    backbone_sites("timm:resnet18")  # cached: the error must come anyway
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"pip install attention-nas\[timm\]"):
        backbone_sites("timm:resnet18")
    with pytest.raises(ImportError, match=r"pip install attention-nas\[timm\]"):
        build_model(ArchSpec("timm:convnext_atto"))


def test_reading_sites_leaves_the_rng_alone():
    state = torch.get_rng_state()
    assert len(backbone_sites("timm:resnet10t")) == 4
    assert torch.equal(torch.get_rng_state(), state)


def test_cost_model_counts_the_inserted_blocks():
    shape = (3, 64, 64)
    plain = build_backbone("timm:resnet18").eval()
    spec = _spec(
        "timm:resnet18", [BlockChoice("eca", {}, "standard"), BlockChoice("gc", {}, "post")]
    )
    built = build_model(spec, seed=0).eval()
    attention = sum(p.numel() for n, p in built.named_parameters() if ".attn." in n)
    cost = model_cost(built, shape, batch_size=2)
    assert cost.params == count_params(plain) + attention
    assert cost.flops > count_flops(plain, (1, *shape))
    assert cost.activation_bytes > 0
    assert uncounted_ops(built, (1, *shape)) == []


def test_search_space_over_a_timm_backbone():
    space = SearchSpace("timm:resnet18", blocks=["none", "eca"], eca_kernels=[3])
    assert list(space.scopes()) == ["stage1", "stage2", "stage3", "stage4"]
    params = {f"stage{i}.block": "eca" if i > 2 else "none" for i in range(1, 5)}
    spec = suggest_arch(
        optuna.trial.FixedTrial({**params, "stage3.kernel_size": 3, "stage4.kernel_size": 3}), space
    )
    built = build_model(spec, seed=0)
    assert sum(isinstance(m, attn_blocks.info("eca").cls) for m in built.modules()) == 4
