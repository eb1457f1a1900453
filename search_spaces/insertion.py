"""Put attention blocks into an existing model: the plugin path for a user's own network.

:func:`insert_attention` selects modules by type and/or name (:class:`InsertionRule`) or by exact
path (a ``{module_path: BlockChoice}`` mapping, what :func:`search_spaces.build.build_model`
uses), infers the channel counts by a dry run, and patches the model in place.

Residual units of known types get SENet's four integrations (Hu et al. 2018, Fig. 5) through
adapters that keep the unit's submodule names, so ``layer1.0.conv1.weight`` is still
``layer1.0.conv1.weight`` and the new block lives under ``layer1.0.attn``:

* ``standard``: ``relu(attn(F(x)) + S(x))`` -- on the residual branch after its last BN;
* ``pre``: ``relu(F(attn(x)) + S(x))`` -- on the branch input, the shortcut sees the raw input;
* ``post``: ``attn(relu(F(x) + S(x)))`` -- after the add and its ReLU;
* ``identity``: ``relu(F(x) + attn(S(x)))`` -- on the shortcut, after its projection if any.

(MobileNetV2's inverted residual has no ReLU after the add, so there ``post`` is
``attn(F(x) + x)``.) timm's ResNet blocks (``timm.models.resnet.BasicBlock`` / ``Bottleneck``)
are residual units too: ``standard`` sits where timm puts its ``attn_layer`` (after the last BN,
after timm's own ``se`` slot where the model has one), before stochastic depth and the add. timm
is not imported here: its blocks are recognised once ``timm.models.resnet`` is loaded, which it
is whenever one exists. Any other module only offers ``pre`` (attention on its input) and ``post``
(on its output), through :class:`PrePostAttention`, whose ``module.`` prefix does change the
wrapped module's state_dict keys.

Every patched module stays scriptable with ``torch.jit.script`` and exportable to ONNX.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck

import attn_blocks

from .spec import POSITIONS, BlockChoice

#: Positions offered by a module that is not a known residual unit.
WRAPPER_POSITIONS = ("pre", "post")

#: Side of the default dry-run input (the batch is one zero image with the model's in-channels).
DRY_RUN_SIZE = 64


class AttentiveResidual(nn.Module):
    """A residual unit ``merge(F(x), S(x))`` carrying one attention block at a SENet position.

    Subclasses provide the residual branch ``F``, the shortcut ``S`` and the merge (add, then
    ReLU for ResNets). ``attn`` is ``nn.Identity`` until :meth:`set_attention` is called, so an
    unattended unit computes exactly the plain residual unit.
    """

    __constants__ = ("position",)

    def __init__(self) -> None:
        super().__init__()
        self.attn: nn.Module = nn.Identity()
        self.position = "standard"

    def set_attention(self, attn: nn.Module, position: str) -> None:
        if position not in POSITIONS:
            raise ValueError(f"position {position!r} is invalid; use one of {list(POSITIONS)}")
        self.attn = attn
        self.position = position

    def has_attention(self) -> bool:
        return not isinstance(self.attn, nn.Identity)

    def _take_over(self, block: nn.Module, names: Sequence[str]) -> None:
        """Adopt ``block``'s submodules and attributes under the same names, so the wrapped
        block's state_dict keys (and loaded weights) stay as they were."""
        for name in names:
            setattr(self, name, getattr(block, name))

    def _residual_branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define its residual branch")

    def _shortcut_branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define its shortcut")

    def _merge(self, branch: Tensor, shortcut: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define how branches merge")

    def forward(self, x: Tensor) -> Tensor:
        out = self._residual_branch(self.attn(x) if self.position == "pre" else x)
        if self.position == "standard":
            out = self.attn(out)
        shortcut = self._shortcut_branch(x)
        if self.position == "identity":
            shortcut = self.attn(shortcut)
        out = self._merge(out, shortcut)
        if self.position == "post":
            out = self.attn(out)
        return out

    def extra_repr(self) -> str:
        return f"position={self.position!r}" if self.has_attention() else ""


class ResNetUnit(AttentiveResidual):
    """A ResNet unit: shortcut = ``downsample(x)`` (or ``x``), merge = ``relu(F(x) + S(x))``.

    Subclasses set ``downsample`` (a module or ``None``) and ``relu`` and define the branch.
    """

    def _shortcut_branch(self, x: Tensor) -> Tensor:
        if self.downsample is not None:
            return self.downsample(x)
        return x

    def _merge(self, branch: Tensor, shortcut: Tensor) -> Tensor:
        return self.relu(branch + shortcut)


class AttentiveBasicBlock(ResNetUnit):
    """torchvision's ``BasicBlock`` with an attention slot; takes over the block's submodules."""

    def __init__(self, block: BasicBlock) -> None:
        super().__init__()
        self._take_over(block, ("conv1", "bn1", "relu", "conv2", "bn2", "downsample", "stride"))

    def _residual_branch(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class AttentiveBottleneck(ResNetUnit):
    """torchvision's ``Bottleneck`` with an attention slot; takes over the block's submodules."""

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        self._take_over(
            block, ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "relu", "downsample", "stride")
        )

    def _residual_branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class AttentiveInvertedResidual(AttentiveResidual):
    """torchvision's ``InvertedResidual`` (with its residual connection) plus an attention slot.

    MobileNetV2 (Sandler et al. 2018) adds the identity to a linear bottleneck and applies no
    activation after the add, so ``post`` attends ``F(x) + x`` directly.
    """

    def __init__(self, block: InvertedResidual) -> None:
        if not block.use_res_connect:
            raise ValueError("AttentiveInvertedResidual needs a block with use_res_connect=True")
        super().__init__()
        self.conv = block.conv
        self.stride = block.stride
        self.use_res_connect = True
        self.out_channels = block.out_channels

    def _residual_branch(self, x: Tensor) -> Tensor:
        return self.conv(x)

    def _shortcut_branch(self, x: Tensor) -> Tensor:
        return x

    def _merge(self, branch: Tensor, shortcut: Tensor) -> Tensor:
        return branch + shortcut


class AttentiveTimmBasicBlock(ResNetUnit):
    """timm's ``BasicBlock`` with an attention slot; takes over the block's submodules.

    The block's own ``se`` (timm's ``attn_layer``, ``None`` in a plain ResNet) stays on the
    branch; ``drop_path`` (stochastic depth) acts on the attended branch, as in timm.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        parts = "conv1 bn1 drop_block act1 aa conv2 bn2 se act2 downsample drop_path"
        self._take_over(block, [*parts.split(), "stride", "dilation"])

    def _residual_branch(self, x: Tensor) -> Tensor:
        x = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        x = self.bn2(self.conv2(x))
        if self.se is not None:
            x = self.se(x)
        return x

    def _merge(self, branch: Tensor, shortcut: Tensor) -> Tensor:
        if self.drop_path is not None:
            branch = self.drop_path(branch)
        return self.act2(branch + shortcut)


class AttentiveTimmBottleneck(ResNetUnit):
    """timm's ``Bottleneck`` with an attention slot; takes over the block's submodules.

    As :class:`AttentiveTimmBasicBlock`: timm's ``se`` stays after ``bn3``, ``drop_path`` acts
    on the attended branch.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        parts = "conv1 bn1 act1 conv2 bn2 drop_block act2 aa conv3 bn3 se act3 downsample drop_path"
        self._take_over(block, [*parts.split(), "stride", "dilation"])

    def _residual_branch(self, x: Tensor) -> Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(x)))))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        return x

    def _merge(self, branch: Tensor, shortcut: Tensor) -> Tensor:
        if self.drop_path is not None:
            branch = self.drop_path(branch)
        return self.act3(branch + shortcut)


class PrePostAttention(nn.Module):
    """Attention on the input (``pre``) or the output (``post``) of an arbitrary module."""

    __constants__ = ("position",)

    def __init__(self, module: nn.Module, attn: nn.Module, position: str) -> None:
        if position not in WRAPPER_POSITIONS:
            raise ValueError(
                f"position {position!r} is invalid for a wrapped module; "
                f"use one of {list(WRAPPER_POSITIONS)}"
            )
        super().__init__()
        self.module = module
        self.attn = attn
        self.position = position

    def forward(self, x: Tensor) -> Tensor:
        if self.position == "pre":
            return self.module(self.attn(x))
        return self.attn(self.module(x))

    def extra_repr(self) -> str:
        return f"position={self.position!r}"


_ADAPTERS: dict[type[nn.Module], type[AttentiveResidual]] = {
    BasicBlock: AttentiveBasicBlock,
    Bottleneck: AttentiveBottleneck,
    InvertedResidual: AttentiveInvertedResidual,
}


def _adapter(module: nn.Module) -> type[AttentiveResidual] | None:
    """The adapter of ``module``'s exact type: a subclass may change its forward."""
    adapter = _ADAPTERS.get(type(module))
    timm_resnet = sys.modules.get("timm.models.resnet")
    if adapter is None and timm_resnet is not None:
        timm_adapters = {
            timm_resnet.BasicBlock: AttentiveTimmBasicBlock,
            timm_resnet.Bottleneck: AttentiveTimmBottleneck,
        }
        adapter = timm_adapters.get(type(module))
    return adapter


def supported_positions(module: nn.Module) -> tuple[str, ...]:
    """The positions :func:`insert_attention` can place attention at on ``module``.

    Exact types only: a subclass of a known block may change its forward, so it is wrapped.
    """
    if isinstance(module, AttentiveResidual):
        return POSITIONS
    if type(module) is InvertedResidual:
        return POSITIONS if module.use_res_connect else WRAPPER_POSITIONS
    if _adapter(module) is not None:
        return POSITIONS
    return WRAPPER_POSITIONS


@dataclass(frozen=True)
class InsertionRule:
    """Put ``block`` (with ``params``) at ``position`` on every module the rule selects.

    A module is selected when it is an instance of one of ``types`` (if given), its full name
    (``model.named_modules()``) matches the regular expression ``names`` with ``re.fullmatch``
    (if given) and ``where(module)`` is true (if given), e.g.
    ``InsertionRule("se", types=(BasicBlock,))``,
    ``InsertionRule("eca", names=r"layer[34]\\.\\d+")``
    or, for MobileNetV2's residual blocks only,
    ``InsertionRule("se", types=(InvertedResidual,), where=lambda m: m.use_res_connect)``.
    At least one selector is required.
    """

    block: str
    params: Mapping[str, Any] = field(default_factory=dict)
    position: str = "standard"
    types: tuple[type[nn.Module], ...] = ()
    names: str | None = None
    where: Callable[[nn.Module], bool] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", tuple(self.types))
        if not self.types and self.names is None and self.where is None:
            raise ValueError(
                f"InsertionRule for {self.block!r} selects every module; give `types` (module "
                "classes), `names` (a regex over module names) and/or `where` (a predicate)"
            )
        for cls in self.types:
            if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                raise ValueError(f"InsertionRule.types must hold nn.Module classes, got {cls!r}")
        if self.names is not None:
            try:
                re.compile(self.names)
            except re.error as err:
                raise ValueError(
                    f"InsertionRule.names {self.names!r} is not a valid regular expression ({err})"
                ) from None
        self.choice()  # validates block, params and position

    def choice(self) -> BlockChoice:
        return BlockChoice(self.block, dict(self.params), self.position)

    def matches(self, name: str, module: nn.Module) -> bool:
        if self.types and not isinstance(module, self.types):
            return False
        if self.names is not None and re.fullmatch(self.names, name) is None:
            return False
        return self.where is None or bool(self.where(module))

    def describe(self) -> str:
        parts = []
        if self.types:
            parts.append("types=" + "/".join(t.__name__ for t in self.types))
        if self.names is not None:
            parts.append(f"names={self.names!r}")
        if self.where is not None:
            parts.append(f"where={getattr(self.where, '__name__', 'predicate')}")
        return f"InsertionRule({self.block!r}, {', '.join(parts)})"


Rules = InsertionRule | Sequence[InsertionRule] | Mapping[str, BlockChoice | Mapping[str, Any]]


def site_seed(seed: int, path: str) -> int:
    """The seed of the block at module ``path`` of a model built with ``seed`` (63 bits)."""
    entropy = (seed, zlib.crc32(path.encode()))
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)


@contextlib.contextmanager
def cpu_rng_seeded(seed: int | None) -> Iterator[None]:
    """Seed the CPU generator for the block, then give the caller back its RNG state (``None``:
    the global generator as it is)."""
    if seed is None:
        yield
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    # Models are built on the CPU, so only the CPU generator is seeded and restored; CUDA
    # generators are left alone (torch.manual_seed would reseed them too).
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def insert_attention(
    model: nn.Module, rules: Rules, example_input: Tensor | None = None, *, seed: int | None = None
) -> nn.Module:
    """Patch ``model`` in place with attention blocks and return it.

    ``rules`` is one :class:`InsertionRule`, a list of them, or a mapping from module path to
    :class:`~search_spaces.spec.BlockChoice` (or its dict form). Sites whose choice is ``none``
    are left untouched. Channel counts come from a dry run on ``example_input`` (default: one
    zero image of ``DRY_RUN_SIZE`` pixels with the in-channels of the first ``Conv2d``), in eval
    mode without gradients; the training flags are restored afterwards.

    With ``seed``, each block draws its weights from a CPU generator of its own, seeded from
    ``(seed, module path)`` (:func:`site_seed`; the caller's RNG state is left alone): a block
    starts the same at a site whatever the other sites carry, which is what comparisons of
    architectures under common random numbers need. Without it blocks draw from the global RNG.
    """
    targets = _select(model, rules)
    attended = {path: choice for path, choice in targets.items() if not choice.is_none}
    if not attended:
        return model
    for path, choice in attended.items():
        module = model.get_submodule(path)
        positions = supported_positions(module)
        if choice.position not in positions:
            raise ValueError(
                f"module {path!r} ({type(module).__name__}) supports positions {list(positions)}, "
                f"not {choice.position!r}; only residual units (torchvision BasicBlock, "
                "Bottleneck, InvertedResidual with a residual connection, timm's ResNet "
                "BasicBlock and Bottleneck, and this package's CIFAR blocks) take 'standard' and "
                "'identity'"
            )
        if isinstance(module, AttentiveResidual) and module.has_attention():
            raise ValueError(f"module {path!r} already carries attention ({module.attn})")
    shapes = _dry_run(model, list(attended), example_input)
    for path, choice in attended.items():
        module = model.get_submodule(path)
        in_shape, out_shape = shapes[path]
        shape = in_shape if choice.position == "pre" else out_shape
        side = "input" if choice.position == "pre" else "output"
        if shape is None or len(shape) != 4:
            raise ValueError(
                f"module {path!r} ({type(module).__name__}): attention at {choice.position!r} "
                f"needs a 4-D (B, C, H, W) tensor {side}, the dry run saw "
                f"{'a non-tensor' if shape is None else tuple(shape)}"
            )
        with cpu_rng_seeded(None if seed is None else site_seed(seed, path)):
            attn = attn_blocks.create(choice.block, shape[1], **choice.params)
        reference = next(module.parameters(), None)
        if reference is not None:
            attn = attn.to(device=reference.device, dtype=reference.dtype)
        attn.train(module.training)
        _patch(model, path, module, attn, choice.position)
    return model


def _patch(model: nn.Module, path: str, module: nn.Module, attn: nn.Module, position: str) -> None:
    if isinstance(module, AttentiveResidual):
        module.set_attention(attn, position)
        return
    adapter = _adapter(module)
    if adapter is not None and supported_positions(module) == POSITIONS:
        # Residual units keep SENet's meaning of pre/post (pre: the shortcut sees the raw x).
        replacement: nn.Module = adapter(module)
        replacement.set_attention(attn, position)
    else:
        replacement = PrePostAttention(module, attn, position)
    replacement.train(module.training)
    parent_path, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, name, replacement)


def named_targets(model: nn.Module) -> dict[str, nn.Module]:
    """The model's submodules by name, the root excepted (it cannot be replaced in place)."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    return modules


def choices_at_paths(
    mapping: Mapping[str, Any], modules: Mapping[str, nn.Module], parse: Callable[[Any], Any]
) -> dict[str, Any]:
    """``parse`` of each value of a ``{module_path: ...}`` mapping; an unknown path is refused
    with the names it resembles."""
    out = {}
    for path, value in mapping.items():
        if path not in modules:
            raise ValueError(
                f"model has no submodule {path!r}; close names: {_candidates(path, modules)}"
            )
        out[path] = parse(value)
    return out


def rule_matches(
    rules: Sequence[Any], modules: Mapping[str, nn.Module], caller: str
) -> list[tuple[InsertionRule, list[str]]]:
    """Each rule with the names of the modules it selects; anything but an ``InsertionRule``, or
    a rule that selects nothing, is refused (``caller`` names the function in the message)."""
    if not rules:
        raise ValueError(f"{caller} got no rules")
    out = []
    for rule in rules:
        if not isinstance(rule, InsertionRule):
            raise ValueError(
                f"{caller} takes InsertionRule(s) or a {{module_path: choice}} mapping, got "
                f"{type(rule).__name__}"
            )
        matched = [name for name, module in modules.items() if rule.matches(name, module)]
        if not matched:
            raise ValueError(
                f"{rule.describe()} matches no module; candidates: "
                f"{_candidates(rule.names or '', modules)}"
            )
        out.append((rule, matched))
    return out


def refuse_nested(paths: Iterable[str]) -> None:
    """Refuse a selection holding both a module and one of its submodules."""
    chosen = set(paths)
    for inner in sorted(chosen):
        parts = inner.split(".")
        for outer in (".".join(parts[:i]) for i in range(1, len(parts))):
            if outer in chosen:
                raise ValueError(
                    f"both {outer!r} and its submodule {inner!r} are selected; select one of them"
                )


def _parse_choice(value: BlockChoice | Mapping[str, Any]) -> BlockChoice:
    return value if isinstance(value, BlockChoice) else BlockChoice.from_dict(value)


def _select(model: nn.Module, rules: Rules) -> dict[str, BlockChoice]:
    """Module path -> choice, checking that every rule or path selects something, once."""
    modules = named_targets(model)
    if isinstance(rules, Mapping):
        selected = choices_at_paths(rules, modules, _parse_choice)
    else:
        rule_list = [rules] if isinstance(rules, InsertionRule) else list(rules)
        selected = {}
        owner: dict[str, InsertionRule] = {}
        for rule, matched in rule_matches(rule_list, modules, "insert_attention"):
            for name in matched:
                if name in owner:
                    raise ValueError(
                        f"module {name!r} is selected by both {owner[name].describe()} and "
                        f"{rule.describe()}; narrow one of them"
                    )
                owner[name] = rule
                selected[name] = rule.choice()
    refuse_nested(p for p, c in selected.items() if not c.is_none)
    return selected


def _candidates(pattern: str, modules: Mapping[str, nn.Module], count: int = 8) -> list[str]:
    """Module names that look like what the user meant: close to ``pattern``, else the units."""
    close = difflib.get_close_matches(pattern, list(modules), n=count, cutoff=0.5)
    if close:
        return close
    # Direct children of the top-level containers: "layer1.0", "features.3", ...
    units = [
        n for n, m in modules.items() if n.count(".") == 1 and next(m.children(), None) is not None
    ]
    return (units or list(modules))[:count]


def _dry_run(
    model: nn.Module, paths: list[str], example_input: Tensor | None
) -> dict[str, tuple[torch.Size | None, torch.Size | None]]:
    """Shapes of the first input and of the output of each module at ``paths``."""
    if example_input is None:
        example_input = _default_input(model)
    shapes: dict[str, tuple[torch.Size | None, torch.Size | None]] = {}

    def recorder(path: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if path not in shapes:
                first = inputs[0] if inputs else None
                shapes[path] = (
                    first.shape if isinstance(first, Tensor) else None,
                    output.shape if isinstance(output, Tensor) else None,
                )

        return hook

    handles = [model.get_submodule(p).register_forward_hook(recorder(p)) for p in paths]
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in flags:
            module.training = training
    missing = [p for p in paths if p not in shapes]
    if missing:
        raise ValueError(
            f"module(s) {missing} did not run during the dry run, so their channels are unknown; "
            "pass an example_input that reaches them"
        )
    return shapes


def _default_input(model: nn.Module) -> Tensor:
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is None:
        raise ValueError("model has no Conv2d to infer its input channels from; pass example_input")
    weight = first_conv.weight
    return torch.zeros(
        1,
        first_conv.in_channels,
        DRY_RUN_SIZE,
        DRY_RUN_SIZE,
        device=weight.device,
        dtype=weight.dtype,
    )
