"""Backbones: registry, argument validation, sites against the built models, CIFAR ResNet facts."""

import pytest
import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual

from search_spaces.backbones import (
    CifarBasicBlock,
    CifarResNet,
    ShortcutA,
    available_backbones,
    backbone_sites,
    build_backbone,
    stage_names,
    validate_backbone_args,
)
from search_spaces.insertion import supported_positions
from search_spaces.spec import POSITIONS

#: The cheapest configuration of every backbone.
SMALL_ARGS = {
    "cifar_resnet": {"depth": 8, "width": 4},
    "resnet8": {"width": 4},
    "resnet20": {"width": 4},
    "resnet56": {"width": 4},
    "resnet18": {"small_input": True},
    "resnet34": {"small_input": True},
    "resnet50": {"small_input": True},
    "mobilenet_v2": {"width_mult": 0.25},
}


def _param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _cifar_resnet_params(depth: int, width: int, in_channels: int, classes: int) -> int:
    """Closed form: 3x3 convs without bias, BN (2 per channel), option-A shortcuts, a linear."""
    n = (depth - 2) // 6
    total = 9 * in_channels * width + 2 * width  # stem conv + BN
    c_in = width
    for stage in range(3):
        c = width * 2**stage
        for _ in range(n):
            total += 9 * c_in * c + 9 * c * c + 4 * c
            c_in = c
    return total + c_in * classes + classes


def test_registry_lists_the_backbones():
    assert set(SMALL_ARGS) == set(available_backbones())


@pytest.mark.parametrize("depth", [8, 20, 56])
def test_cifar_resnet_parameter_count_matches_closed_form(depth):
    model = build_backbone("cifar_resnet", in_channels=3, num_classes=10, depth=depth)
    assert _param_count(model) == _cifar_resnet_params(depth, 16, 3, 10)


def test_resnet20_has_the_published_size():
    # He et al. 2016, Table 6: ResNet-20 has 0.27M parameters.
    assert _param_count(build_backbone("resnet20")) == pytest.approx(0.27e6, rel=0.01)
    model = build_backbone("cifar_resnet", in_channels=1, num_classes=100, depth=14, width=8)
    assert _param_count(model) == _cifar_resnet_params(14, 8, 1, 100)


def test_cifar_resnet_shapes_and_option_a_shortcut():
    model = build_backbone("resnet8", in_channels=1, num_classes=7).eval()
    feats = {}
    for name in ("layer1", "layer2", "layer3"):
        getattr(model, name).register_forward_hook(lambda m, i, o, n=name: feats.__setitem__(n, o))
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert [feats[n].shape[1:] for n in ("layer1", "layer2", "layer3")] == [
        (16, 32, 32),
        (32, 16, 16),
        (64, 8, 8),
    ]
    assert isinstance(model.layer2[0].downsample, ShortcutA)
    assert model.layer1[0].downsample is None
    x = torch.randn(2, 16, 8, 8)
    out = ShortcutA(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_cifar_resnet_init():
    model = build_backbone("resnet20")
    conv = model.layer3[1].conv2  # 64 -> 64, 3x3: Kaiming fan-out std = sqrt(2 / (64 * 9))
    assert conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    assert all(torch.all(m.weight == 1) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    zero = build_backbone("resnet20", zero_init_residual=True).eval()
    blocks = [m for m in zero.modules() if isinstance(m, CifarBasicBlock)]
    assert len(blocks) == 9 and all(torch.all(b.bn2.weight == 0) for b in blocks)
    # Each residual branch starts at zero, so a block without projection is relu(x).
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(zero.layer1[1](x), torch.relu(x))


def test_cifar_depth_rule():
    with pytest.raises(ValueError, match=r"depth=21.*6n \+ 2"):
        validate_backbone_args("cifar_resnet", {"depth": 21})
    with pytest.raises(ValueError, match=r"depth=2\b"):
        build_backbone("cifar_resnet", depth=2)
    with pytest.raises(ValueError, match="depth"):
        build_backbone("cifar_resnet", depth=20.0)


def test_argument_validation():
    assert validate_backbone_args("cifar_resnet", {"depth": 14}) == {
        "depth": 14,
        "width": 16,
        "zero_init_residual": False,
    }
    assert validate_backbone_args("resnet20", {}) == {"width": 16, "zero_init_residual": False}
    with pytest.raises(ValueError, match=r"resnet20 fixes depth=20.*cifar_resnet"):
        validate_backbone_args("resnet20", {"depth": 32})
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg16'; available: .*resnet18"):
        backbone_sites("vgg16")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['width'\].*small_input"):
        build_backbone("resnet18", width=8)
    with pytest.raises(ValueError, match=r"width_mult=0.*finite number > 0"):
        backbone_sites("mobilenet_v2", width_mult=0)
    with pytest.raises(ValueError, match=r"small_input=1.*bool"):
        build_backbone("resnet18", small_input=1)
    with pytest.raises(ValueError, match="in_channels"):
        build_backbone("resnet8", in_channels=0)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("cifar_resnet", {"width": True}, "width=True is invalid (expected an int, got bool)"),
        ("resnet8", {"width": 0}, "width=0 is invalid (must be >= 1); allowed: an int >= 1"),
        ("resnet8", {"in_channels": 2.5}, "in_channels=2.5 is invalid (expected an int"),
        ("resnet8", {"num_classes": 0}, "num_classes=0 is invalid (must be >= 1)"),
        ("resnet18", {"zero_init_residual": "yes"}, "zero_init_residual='yes' is invalid"),
        ("mobilenet_v2", {"width_mult": float("nan")}, "width_mult=nan is invalid (must be a"),
    ],
)
def test_invalid_arguments_name_backbone_argument_and_allowed_values(name, args, message):
    with pytest.raises(ValueError, match="; allowed: ") as error:
        build_backbone(name, **args)
    assert str(error.value).startswith(f"backbone {name!r}: argument {message}")


def test_cifar_resnet_constructor_validates_like_the_registry():
    with pytest.raises(ValueError) as registry_error:
        build_backbone("cifar_resnet", depth=21)
    with pytest.raises(ValueError) as direct_error:
        CifarResNet(depth=21)
    prefix = "backbone 'cifar_resnet': "
    assert str(direct_error.value) == "CifarResNet: " + str(registry_error.value)[len(prefix) :]
    with pytest.raises(ValueError, match=r"^CifarResNet: argument num_classes=0 is invalid"):
        CifarResNet(num_classes=0)


@pytest.mark.parametrize("name", sorted(SMALL_ARGS))
def test_sites_are_the_residual_units_of_the_built_model(name):
    args = SMALL_ARGS[name]
    sites = backbone_sites(name, **args)
    model = build_backbone(name, in_channels=3, num_classes=10, **args)
    modules = dict(model.named_modules())
    for site in sites:
        assert site.name == f"stage{site.stage}.{site.index}"
        assert supported_positions(modules[site.path]) == POSITIONS, site
    residual_units = [
        path for path, m in modules.items() if path and supported_positions(m) == POSITIONS
    ]
    assert [s.path for s in sites] == residual_units
    assert stage_names(name, **args) == list(dict.fromkeys(f"stage{s.stage}" for s in sites))


@pytest.mark.parametrize(
    ("name", "args", "count", "stages"),
    [
        ("resnet8", {}, 3, ["stage1", "stage2", "stage3"]),
        ("resnet56", {}, 27, ["stage1", "stage2", "stage3"]),
        ("resnet18", {}, 8, ["stage1", "stage2", "stage3", "stage4"]),
        ("resnet34", {}, 16, ["stage1", "stage2", "stage3", "stage4"]),
        ("resnet50", {}, 16, ["stage1", "stage2", "stage3", "stage4"]),
        ("mobilenet_v2", {}, 10, ["stage2", "stage3", "stage4", "stage5", "stage6"]),
    ],
)
def test_site_counts(name, args, count, stages):
    assert len(backbone_sites(name, **args)) == count
    assert stage_names(name, **args) == stages


def test_mobilenet_v2_sites_follow_the_config_rows():
    sites = backbone_sites("mobilenet_v2")
    assert [(s.name, s.path) for s in sites[:3]] == [
        ("stage2.1", "features.3"),
        ("stage3.1", "features.5"),
        ("stage3.2", "features.6"),
    ]
    assert sites[-1].path == "features.16"
    # At a tiny width the rounding to 8 channels gives the stem and row 1 equal channels, so the
    # first block gains a residual connection; the sites must follow the built model.
    tiny = backbone_sites("mobilenet_v2", width_mult=0.1)
    model = build_backbone("mobilenet_v2", width_mult=0.1)
    residual = [
        f"features.{i}"
        for i, m in enumerate(model.features)
        if isinstance(m, InvertedResidual) and m.use_res_connect
    ]
    assert [s.path for s in tiny] == residual
    assert tiny[0].name == "stage1.0" and tiny[0].path == "features.1"


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_torchvision_stems(name):
    big = build_backbone(name, in_channels=1, num_classes=5).eval()
    small = build_backbone(name, in_channels=1, num_classes=5, small_input=True).eval()
    x = torch.randn(2, 1, 32, 32)
    assert big(x).shape == small(x).shape == (2, 5)
    stem = small.conv1 if name != "mobilenet_v2" else small.features[0][0]
    assert stem.in_channels == 1 and stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    if name != "mobilenet_v2":
        assert isinstance(small.maxpool, nn.Identity)
        assert big.conv1.kernel_size == (7, 7) and big.conv1.stride == (2, 2)
    features = small.layer4 if name != "mobilenet_v2" else small.features
    shapes = []
    features.register_forward_hook(lambda m, i, o: shapes.append(o.shape[-1]))
    small(x)
    assert shapes == [4 if name != "mobilenet_v2" else 2]  # output stride 8 / 16 on CIFAR
