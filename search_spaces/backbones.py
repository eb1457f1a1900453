"""Backbones with named insertion sites.

Every backbone exposes its sites (``stage<i>.<j>``: stage ``i`` from 1, block ``j`` from 0
within the stage) without being built, so search spaces can enumerate them cheaply, and builds a
plain model (no attention) that :func:`search_spaces.insertion.insert_attention` patches.

* ``cifar_resnet`` (He et al. 2016, Sec. 4.2): 3x3 stem, three stages of ``(depth - 2) / 6``
  basic blocks at ``width``, ``2 width`` and ``4 width`` channels, option-A (parameter-free)
  shortcuts; aliases ``resnet8``, ``resnet20``, ``resnet56`` fix the depth.
* ``resnet18``, ``resnet34``, ``resnet50``: torchvision's models with random weights;
  ``small_input`` swaps the 7x7/2 stem and max-pool for a 3x3/1 stem, as is usual on CIFAR.
* ``mobilenet_v2``: torchvision's model. SENet's integrations are defined for residual units,
  so the sites are the inverted-residual blocks with a residual connection (stride 1 and equal
  in/out channels); stage ``i`` is the ``i``-th bottleneck row of the paper's Table 2 and ``j``
  the block's index in that row, so at ``width_mult=1`` the sites lie in stages 2-6 and none
  ends in ``.0``. ``small_input`` gives the stem stride 1 (output stride 16).
* ``timm:<model>``: any timm model, ``timm.create_model(model, num_classes=..., in_chans=...)``
  (timm is optional: ``pip install attention-nas[timm]``; it is imported on first use). timm's
  ResNet family (``timm.models.resnet``: resnet18/26/50, resnet50d, resnext50_32x4d,
  seresnext26d_32x4d, ecaresnet50d, ...) has a site at every residual block, stage ``i`` being
  ``layer<i>``, with all four positions. Any other model has one ``pre``/``post`` site per stage,
  ``stage<i>.0``: the modules timm's ``feature_info`` lists, less its stem (the root, modules
  named ``*stem*``, single conv / norm / activation layers). Sites are read from a copy of the
  model built on the meta device, once per model.

Every backbone builds with random weights or pretrained ones (:func:`build_backbone`'s
``pretrained``): ``True`` for the published weights of the torchvision and timm models (the CIFAR
ResNets have none), or the path of a weights file (see
:func:`search_spaces.pretrained.load_backbone_state`).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models._utils import _make_divisible

from attn_blocks.params import (
    ParamSpec,
    bool_param,
    check_int,
    float_param,
    int_param,
    validate_params,
)

from .insertion import WRAPPER_POSITIONS, ResNetUnit
from .pretrained import Pretrained, load_backbone_state, read_state_dict
from .spec import POSITIONS

#: Backbone names ``timm:<model>`` build timm's ``<model>``.
TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class Site:
    """One insertion site: ``name`` ``stage<i>.<j>`` and the ``path`` of its module in the model.

    ``positions`` are those the module takes: all four on a residual unit, ``pre`` and ``post``
    on any other module (a timm stage).
    """

    name: str
    stage: int
    index: int
    path: str
    positions: tuple[str, ...] = POSITIONS


# --- the CIFAR ResNet -------------------------------------------------------------------------


class ShortcutA(nn.Module):
    """He et al. 2016's option A: subsample by ``stride`` and zero-pad the new channels.

    Parameter-free, so ResNet-20 keeps its 0.27M parameters; the padding is split evenly
    between the front and the back of the channel axis.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                "ShortcutA cannot reduce channels; out_channels must be >= in_channels"
            )
        self.stride = stride
        self.pad_front = (out_channels - in_channels) // 2
        self.pad_back = out_channels - in_channels - self.pad_front

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, [0, 0, 0, 0, self.pad_front, self.pad_back])


class CifarBasicBlock(ResNetUnit):
    """Two 3x3 conv-BN layers and an identity / option-A shortcut, with an attention slot.

    The block natively carries ``attn`` and ``position`` (see
    :class:`~search_spaces.insertion.ResNetUnit`); without attention it is the plain
    basic block of He et al. 2016.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = ShortcutA(in_channels, out_channels, stride)

    def _residual_branch(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs (He et al. 2016, Sec. 4.2): depth ``6n + 2``.

    Module names follow torchvision (``conv1``, ``bn1``, ``layer1``..``layer3``, ``fc``).
    Convolutions get Kaiming-normal init (fan-out, as torchvision and fb.resnet.torch do). With
    ``zero_init_residual`` the last BN of each residual branch starts at zero (Goyal et al.
    2017), so each block starts as ``relu(shortcut(x))`` -- and attention at the ``standard``
    position then sees an all-zero input at initialisation.
    """

    def __init__(
        self,
        depth: int = 20,
        width: int = 16,
        in_channels: int = 3,
        num_classes: int = 10,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        validate_params(
            "CifarResNet",
            (*_CIFAR_ARGS, *_MODEL_ARGS),
            {
                "depth": depth,
                "width": width,
                "zero_init_residual": zero_init_residual,
                "in_channels": in_channels,
                "num_classes": num_classes,
            },
            kind="argument",
        )
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        channels = width
        for stage in range(3):
            out_channels = width * 2**stage
            blocks = []
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(CifarBasicBlock(channels, out_channels, stride))
                channels = out_channels
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, CifarBasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def _check_cifar_depth(depth: Any) -> str | None:
    reason = check_int(depth)
    if reason is None and (depth < 8 or (depth - 2) % 6):
        reason = "a CIFAR ResNet has depth 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...)"
    return reason


# --- torchvision models -----------------------------------------------------------------------

_TV_RESNET_LAYERS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}

#: MobileNetV2's bottleneck rows (Sandler et al. 2018, Table 2): expansion t, channels c,
#: repeats n, first stride s -- the same rows torchvision builds.
_MBV2_ROWS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_MBV2_STEM_CHANNELS = 32


def _kaiming_conv(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _build_tv_resnet(name: str, in_channels: int, num_classes: int, args: dict) -> nn.Module:
    model = getattr(torchvision.models, name)(
        weights=None, num_classes=num_classes, zero_init_residual=args["zero_init_residual"]
    )
    if args["small_input"]:
        model.conv1 = _kaiming_conv(in_channels, model.conv1.out_channels, 3, 1)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = _kaiming_conv(in_channels, model.conv1.out_channels, 7, 2)
    return model


def _tv_resnet_sites(name: str, args: dict) -> list[Site]:
    return [
        Site(f"stage{stage}.{index}", stage, index, f"layer{stage}.{index}")
        for stage, count in enumerate(_TV_RESNET_LAYERS[name], start=1)
        for index in range(count)
    ]


def _build_mobilenet_v2(in_channels: int, num_classes: int, args: dict) -> nn.Module:
    model = torchvision.models.mobilenet_v2(
        weights=None, num_classes=num_classes, width_mult=args["width_mult"]
    )
    stem = model.features[0][0]
    if args["small_input"] or in_channels != 3:
        stride = 1 if args["small_input"] else 2
        model.features[0][0] = _kaiming_conv(in_channels, stem.out_channels, 3, stride)
    return model


def _mobilenet_v2_sites(args: dict) -> list[Site]:
    """The residual inverted-residual blocks, computed as torchvision builds them."""
    width_mult = args["width_mult"]
    channels = _make_divisible(_MBV2_STEM_CHANNELS * width_mult, 8)
    feature = 1  # features.0 is the stem
    sites = []
    for stage, (_, c, n, s) in enumerate(_MBV2_ROWS, start=1):
        out_channels = _make_divisible(c * width_mult, 8)
        for index in range(n):
            if (s if index == 0 else 1) == 1 and channels == out_channels:
                sites.append(Site(f"stage{stage}.{index}", stage, index, f"features.{feature}"))
            channels = out_channels
            feature += 1
    return sites


def _cifar_sites(args: dict) -> list[Site]:
    per_stage = (args["depth"] - 2) // 6
    return [
        Site(f"stage{stage}.{index}", stage, index, f"layer{stage}.{index}")
        for stage in (1, 2, 3)
        for index in range(per_stage)
    ]


def _build_cifar(in_channels: int, num_classes: int, args: dict) -> nn.Module:
    return CifarResNet(
        depth=args["depth"],
        width=args["width"],
        in_channels=in_channels,
        num_classes=num_classes,
        zero_init_residual=args["zero_init_residual"],
    )


def _torchvision_published(
    name: str, build: Callable[[int, int, dict], nn.Module], head: tuple[str, ...]
) -> Callable[[int, int, dict], nn.Module]:
    """Build ``name``, then load torchvision's ``DEFAULT`` weights (downloaded or cached)."""

    def published(in_channels: int, num_classes: int, args: dict) -> nn.Module:
        model = build(in_channels, num_classes, args)
        weights = torchvision.models.get_model_weights(name).DEFAULT
        load_backbone_state(
            model,
            weights.get_state_dict(progress=True, check_hash=True),
            source=f"torchvision's {weights!r} weights",
            backbone=name,
            head=head,
        )
        return model

    return published


# --- timm models ------------------------------------------------------------------------------


def _import_timm() -> ModuleType:
    try:
        import timm
    except ImportError:
        raise ImportError(
            f"backbones {TIMM_PREFIX}<model> need timm; install it with "
            "pip install attention-nas[timm]"
        ) from None
    return timm


def _check_rate(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {type(value).__name__}"
    return None if 0 <= value < 1 else "must lie in [0, 1)"


_TIMM_ARGS = (
    ParamSpec(
        "drop_rate", 0.0, "a number in [0, 1)", _check_rate, doc="dropout before the classifier"
    ),
    ParamSpec(
        "drop_path_rate",
        0.0,
        "a number in [0, 1)",
        _check_rate,
        doc="stochastic depth rate of the last block",
    ),
)
#: timm ResNets only; ``zero_init_residual`` is timm's ``zero_init_last``, on by default in timm.
_TIMM_RESNET_ARGS = (
    bool_param(
        "zero_init_residual", True, "start the last BN of each residual branch at zero (timm)"
    ),
)
_TIMM_SMALL_INPUT = bool_param(
    "small_input", False, "stride-1 stem without max-pool (same weights), for 32x32 inputs"
)
#: Modules timm's ``feature_info`` lists for its stem rather than a stage.
_STEM_LAYERS = (nn.Conv2d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def _timm_resnet_sites(model: nn.Module) -> list[Site] | None:
    """A site per residual block of a timm ResNet made of timm's own blocks, else ``None``."""
    from timm.models import resnet

    if type(model) is not resnet.ResNet:
        return None
    stages = [name for name, _ in model.named_children() if re.fullmatch(r"layer\d+", name)]
    sites = [
        Site(f"stage{stage}.{index}", stage, index, f"{name}.{index}")
        for stage, name in enumerate(stages, start=1)
        for index in range(len(model.get_submodule(name)))
    ]
    blocks = (resnet.BasicBlock, resnet.Bottleneck)
    if any(type(model.get_submodule(site.path)) not in blocks for site in sites):
        return None
    return sites


def _timm_stage_sites(model: nn.Module, name: str) -> list[Site]:
    """A ``pre``/``post`` site per stage: ``feature_info``'s modules less the stem."""
    modules = dict(model.named_modules())
    paths = [info["module"] for info in getattr(model, "feature_info", [])]
    stages = [
        path
        for path in paths
        if path in modules
        and path
        and "stem" not in path
        and not isinstance(modules[path], _STEM_LAYERS)
        and next(modules[path].children(), None) is not None
    ]
    if not stages:
        raise ValueError(
            f"backbone {name!r}: the timm model lists no stages in its feature_info, so it has "
            "no insertion sites; put attention into timm.create_model(...) with insert_attention"
        )
    return [
        Site(f"stage{stage}.0", stage, 0, path, WRAPPER_POSITIONS)
        for stage, path in enumerate(stages, start=1)
    ]


def _timm_stem_conv(model: nn.Module) -> nn.Conv2d:
    """The first conv of a timm ResNet: ``conv1``, or the first of a deep stem's three."""
    return model.conv1 if isinstance(model.conv1, nn.Conv2d) else model.conv1[0]


def _has_small_input_stem(model: nn.Module) -> bool:
    """A timm ResNet stem that starts with a stride-2 conv and ends in a max-pool."""
    stride = tuple(_timm_stem_conv(model).stride)
    return isinstance(model.maxpool, nn.MaxPool2d) and stride == (2, 2)


def _build_timm(
    model_name: str, in_channels: int, num_classes: int, args: dict, pretrained: bool = False
) -> nn.Module:
    timm = _import_timm()
    kwargs = {k: args[k] for k in ("drop_rate", "drop_path_rate") if args[k]}
    if "zero_init_residual" in args:
        kwargs["zero_init_last"] = args["zero_init_residual"]
    try:
        model = timm.create_model(
            model_name,
            pretrained=pretrained,
            num_classes=num_classes,
            in_chans=in_channels,
            **kwargs,
        )
    except TypeError as err:
        if not kwargs:
            raise
        raise ValueError(
            f"backbone {TIMM_PREFIX + model_name!r}: timm could not build the model with "
            f"{kwargs} ({err}); leave out the arguments it does not take"
        ) from None
    if args.get("small_input"):
        _timm_stem_conv(model).stride = (1, 1)
        model.maxpool = nn.Identity()
    return model


@functools.cache
def _timm_backbone(model_name: str) -> _Backbone:
    """The backbone ``timm:<model_name>``, described from a copy built on the meta device."""
    timm = _import_timm()
    name = TIMM_PREFIX + model_name
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=5)
        raise ValueError(
            f"unknown timm model {model_name!r} (backbone {name!r}); close names: {close}; "
            "list the models with timm.list_models('resnet*')"
        )
    # The meta device allocates nothing; fork_rng leaves the caller's generator as it was.
    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        skeleton = timm.create_model(model_name)
    sites = _timm_resnet_sites(skeleton)
    args = _TIMM_ARGS
    if sites is None:
        sites = _timm_stage_sites(skeleton, name)
    else:
        args = (*args, *_TIMM_RESNET_ARGS)
        if _has_small_input_stem(skeleton):
            args = (*args, _TIMM_SMALL_INPUT)
    classifier = (getattr(skeleton, "pretrained_cfg", None) or {}).get("classifier") or ()
    return _Backbone(
        name,
        args,
        lambda _: list(sites),
        functools.partial(_build_timm, model_name),
        head=(classifier,) if isinstance(classifier, str) else tuple(classifier),
        published=functools.partial(_build_timm, model_name, pretrained=True),
    )


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Backbone:
    name: str
    args: tuple[ParamSpec, ...]
    sites: Callable[[dict], list[Site]]
    build: Callable[[int, int, dict], nn.Module]
    #: arguments an alias pins (``resnet20`` is ``cifar_resnet`` with ``depth=20``)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: module paths of the classifier, skipped when a weights file's head differs
    head: tuple[str, ...] = ("fc",)
    #: builds the model with its published weights; ``None`` where there are none
    published: Callable[[int, int, dict], nn.Module] | None = None
    #: the family whose measured speed settings it shares (:func:`backbone_family`; default: name)
    family: str = ""


_ZERO_INIT = bool_param(
    "zero_init_residual", False, "start the last BN of each residual branch at zero"
)
_SMALL_INPUT = bool_param("small_input", False, "3x3/1 stem without max-pool, for 32x32 inputs")
_CIFAR_ARGS = (
    ParamSpec(
        "depth",
        20,
        "an int 6n + 2 with n >= 1 (8, 14, 20, ...)",
        _check_cifar_depth,
        doc="number of weighted layers",
    ),
    int_param("width", 16, "channels of stage 1", allowed="an int >= 1 (channels of stage 1)"),
    _ZERO_INIT,
)
#: The arguments every backbone's model takes besides its own; both required.
_MODEL_ARGS = (
    int_param("in_channels", None, "input channels"),
    int_param("num_classes", None, "classifier outputs"),
)


def _cifar_backbone(name: str, **fixed: Any) -> _Backbone:
    return _Backbone(name, _CIFAR_ARGS, _cifar_sites, _build_cifar, fixed, family="cifar_resnet")


def _tv_resnet_backbone(name: str) -> _Backbone:
    def build(in_channels: int, num_classes: int, args: dict) -> nn.Module:
        return _build_tv_resnet(name, in_channels, num_classes, args)

    return _Backbone(
        name,
        (_SMALL_INPUT, _ZERO_INIT),
        functools.partial(_tv_resnet_sites, name),
        build,
        published=_torchvision_published(name, build, ("fc",)),
        family="torchvision_resnet",
    )


_BACKBONES: dict[str, _Backbone] = {
    "cifar_resnet": _cifar_backbone("cifar_resnet"),
    **{f"resnet{depth}": _cifar_backbone(f"resnet{depth}", depth=depth) for depth in (8, 20, 56)},
    **{name: _tv_resnet_backbone(name) for name in _TV_RESNET_LAYERS},
    "mobilenet_v2": _Backbone(
        "mobilenet_v2",
        (
            float_param("width_mult", 1.0, "channel multiplier of every layer"),
            _SMALL_INPUT,
        ),
        _mobilenet_v2_sites,
        _build_mobilenet_v2,
        head=("classifier.1",),
        published=_torchvision_published("mobilenet_v2", _build_mobilenet_v2, ("classifier.1",)),
    ),
}


def available_backbones() -> list[str]:
    """Names of the registered backbones."""
    return sorted(_BACKBONES)


def backbone_family(name: str) -> str:
    """``name``'s family (``cifar_resnet`` for ``resnet20``, ``torchvision_resnet``, ``timm``...),
    whose measured training settings it shares (``nas.training.CPU_CHANNELS_LAST_FAMILIES``)."""
    if isinstance(name, str) and name.startswith(TIMM_PREFIX):
        return "timm"
    backbone = _get(name)
    return backbone.family or backbone.name


def _get(name: str) -> _Backbone:
    if isinstance(name, str) and name.startswith(TIMM_PREFIX):
        _import_timm()  # the error names the extra to install, even for a name seen before
        return _timm_backbone(name[len(TIMM_PREFIX) :])
    try:
        return _BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; available: {', '.join(available_backbones())}, "
            f"or {TIMM_PREFIX}<model> for a timm model"
        ) from None


def validate_backbone_args(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``args`` with the defaults filled in, or raise ``ValueError``.

    An alias does not take the arguments it pins (``resnet20`` takes no ``depth``).
    """
    backbone = _get(name)
    pinned = [k for k in args if k in backbone.fixed]
    if pinned:
        raise ValueError(
            f"backbone {name!r} does not take {pinned} ({name} fixes "
            f"{', '.join(f'{k}={backbone.fixed[k]}' for k in pinned)}; use cifar_resnet to "
            "choose it)"
        )
    specs = [a for a in backbone.args if a.name not in backbone.fixed]
    return validate_params(f"backbone {name!r}", specs, args, kind="argument")


def _resolved_args(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    return {**validate_backbone_args(name, args), **_get(name).fixed}


def backbone_sites(name: str, **args: Any) -> list[Site]:
    """The insertion sites of backbone ``name`` in network order, without building it."""
    return _get(name).sites(_resolved_args(name, args))


def stage_names(name: str, **args: Any) -> list[str]:
    """The stages that hold at least one site, in order (``["stage1", "stage2", ...]``)."""
    return list(dict.fromkeys(f"stage{site.stage}" for site in backbone_sites(name, **args)))


def build_backbone(
    name: str,
    in_channels: int = 3,
    num_classes: int = 10,
    *,
    pretrained: Pretrained = False,
    **args: Any,
) -> nn.Module:
    """Backbone ``name`` without attention, with random or ``pretrained`` weights.

    ``pretrained=True`` loads the published weights (timm's ``pretrained=True``, torchvision's
    ``DEFAULT`` weights; downloaded, or read from the local cache); a path loads that weights
    file (a state dict of the same backbone). The classifier head may differ from the weights'
    (another ``num_classes``): it is then skipped and keeps its random initialisation.
    """
    backbone = _get(name)
    validate_params(
        f"backbone {name!r}",
        _MODEL_ARGS,
        {"in_channels": in_channels, "num_classes": num_classes},
        kind="argument",
    )
    resolved = _resolved_args(name, args)
    if pretrained is False:
        return backbone.build(in_channels, num_classes, resolved)
    if pretrained is True:
        if backbone.published is None:
            raise ValueError(
                f"backbone {name!r} has no published weights (only the torchvision and timm "
                "backbones have them); use pretrained=False, or the path of a file saved with "
                f"torch.save(build_backbone({name!r}, ...).state_dict(), path)"
            )
        return backbone.published(in_channels, num_classes, resolved)
    if not isinstance(pretrained, (str, os.PathLike)):
        raise ValueError(
            f"pretrained must be True, False or the path of a weights file, got {pretrained!r}"
        )
    model = backbone.build(in_channels, num_classes, resolved)
    load_backbone_state(
        model,
        read_state_dict(pretrained),
        source=f"weights file {os.fspath(pretrained)!r}",
        backbone=name,
        head=backbone.head,
    )
    return model
