"""A weight-sharing supernet: every candidate of a space at every insertion site, one active.

One-shot NAS in the manner of SPOS (Guo et al., "Single Path One-Shot Neural Architecture Search
with Uniform Sampling", ECCV 2020): the backbone carries, at each searched site, one block per
choice the space allows (:meth:`SearchSpace.choices`: each block with each combination of its
searched parameters at each position); candidates never share weights with each other. Training
activates one path per step (:class:`PathSampler`, uniform or FairNAS-style "fair" sampling,
Chu et al., ICCV 2021); the search then activates a sub-network (:func:`activate`), re-estimates
its BatchNorm statistics (:func:`recalibrate_bn`) and evaluates it with the inherited weights.

The activated sub-network computes exactly what ``build_model(spec)`` computes with the same
weights: :func:`subnet_state_dict` gives those weights under the stand-alone model's keys. Built
with a seed, a supernet starts as ``build_model(spec, seed)`` starts for every ``spec`` of the
space (the backbone is drawn first, each candidate from its site's stream).

For a user's own model, :func:`insert_candidates` takes the same selectors as
:func:`~search_spaces.insertion.insert_attention`: a ``{module_path: [BlockChoice, ...]}`` mapping
or :class:`~search_spaces.insertion.InsertionRule` s, where several rules may select one module
(each adds a candidate there).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import attn_blocks

from .backbones import backbone_sites, build_backbone
from .insertion import (
    AttentiveResidual,
    InsertionRule,
    PrePostAttention,
    _dry_run,
    _parse_choice,
    _patch,
    choices_at_paths,
    cpu_rng_seeded,
    named_targets,
    refuse_nested,
    rule_matches,
    site_seed,
    supported_positions,
)
from .pretrained import Pretrained, identity_init
from .space import SearchSpace
from .spec import NO_ATTENTION, POSITIONS, ArchSpec, BlockChoice

SAMPLINGS = ("uniform", "fair")
#: Bytes of one float32 value: what parameters, gradients and optimiser states are kept in.
_FLOAT_BYTES = 4


def choice_key(choice: BlockChoice) -> str:
    """A hashable, stable key of a choice (its JSON form)."""
    return json.dumps(choice.to_dict(), sort_keys=True)


class MixedAttention(nn.Module):
    """The candidate blocks of one insertion site; only the active one runs.

    ``choices[i]`` is built as ``candidates[str(i)]``; with no active candidate (``none``) the
    input passes unchanged, so the site computes the plain backbone's unit. The position of the
    active candidate is set on the host unit by :func:`activate`.
    """

    def __init__(self, choices: Sequence[BlockChoice], modules: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(choices) != len(modules):
            raise ValueError("MixedAttention needs one module per choice")
        self.choices = list(choices)
        self.candidates = nn.ModuleDict({str(i): m for i, m in enumerate(modules)})
        self._index = {choice_key(c): i for i, c in enumerate(self.choices)}
        self.active: int | None = None

    def index(self, choice: BlockChoice) -> int | None:
        """Which candidate ``choice`` is (None for ``none`` or a choice not held here)."""
        return None if choice.is_none else self._index.get(choice_key(choice))

    def activate(self, choice: BlockChoice) -> None:
        if choice.is_none:
            self.active = None
            return
        index = self.index(choice)
        if index is None:
            offered = ", ".join(c.label() for c in self.choices)
            raise ValueError(f"{choice.label()} is not a candidate here; candidates: {offered}")
        self.active = index

    def forward(self, x: Tensor) -> Tensor:
        if self.active is None:
            return x
        return self.candidates[str(self.active)](x)

    def extra_repr(self) -> str:
        active = "none" if self.active is None else self.choices[self.active].label()
        return f"{len(self.choices)} candidates, active={active}"


# -- size, before anything is allocated --------------------------------------------------------


@dataclass(frozen=True)
class SupernetSize:
    """What a supernet holds: candidate blocks, parameters and buffers (backbone included), and
    ``training_bytes``, float32 weights, buffers and ``optimizer_states`` states per parameter
    plus the gradients of the largest path (activations not included: only one path runs)."""

    sites: int
    candidates: int
    parameters: int
    buffers: int
    training_bytes: int

    @property
    def training_mb(self) -> float:
        return self.training_bytes / 2**20

    def describe(self) -> str:
        return (
            f"{self.candidates:,} candidate blocks at {self.sites} sites, "
            f"{self.parameters:,} parameters, about {self.training_mb:,.0f} MB to train"
        )


@functools.lru_cache(maxsize=4096)
def _block_numel(block: str, params_json: str, channels: int) -> tuple[int, int]:
    """(parameters, buffer elements) of one block, built on the meta device (no memory), or on
    the CPU where a block's constructor needs real tensors."""
    params = json.loads(params_json)
    try:
        with torch.device("meta"):
            module = attn_blocks.create(block, channels, **params)
    except (RuntimeError, NotImplementedError):
        module = attn_blocks.create(block, channels, **params)
    return (
        sum(p.numel() for p in module.parameters()),
        sum(b.numel() for b in module.buffers()),
    )


def _numel(module: nn.Module) -> tuple[int, int]:
    return sum(p.numel() for p in module.parameters()), sum(b.numel() for b in module.buffers())


def _size(
    backbone: nn.Module,
    candidates: Mapping[str, Sequence[BlockChoice]],
    channels: Mapping[str, tuple[int, int]],
    optimizer_states: int,
) -> SupernetSize:
    """The size of ``backbone`` with ``candidates`` at its paths (``channels``: (input, output)
    channels of each path's module)."""
    params, buffers = _numel(backbone)
    largest_path = params
    count = 0
    for path, choices in candidates.items():
        largest_here = 0
        for choice in choices:
            width = channels[path][0] if choice.position == "pre" else channels[path][1]
            p, b = _block_numel(choice.block, json.dumps(dict(choice.params)), width)
            params, buffers, count = params + p, buffers + b, count + 1
            largest_here = max(largest_here, p)
        largest_path += largest_here
    floats = params * (1 + optimizer_states) + buffers + largest_path
    return SupernetSize(len(candidates), count, params, buffers, floats * _FLOAT_BYTES)


def _check_fits(size: SupernetSize, max_bytes: int | None, what: str) -> None:
    if max_bytes is not None and size.training_bytes > max_bytes:
        raise MemoryError(
            f"the supernet of {what} would not fit: {size.describe()}, over the limit of "
            f"{max_bytes / 2**20:,.0f} MB. Narrow the space (fewer blocks, reductions, kernel "
            "sizes or positions, or fewer stages), or raise the limit (search.max_supernet_mb)"
        )


# -- construction ------------------------------------------------------------------------------


Candidates = Mapping[str, Sequence[BlockChoice | Mapping[str, Any]]] | Sequence[InsertionRule]


def _resolve(model: nn.Module, candidates: Candidates) -> dict[str, list[BlockChoice]]:
    """Module path -> its attended candidates (``none`` dropped, duplicates once, in order)."""
    modules = named_targets(model)
    if isinstance(candidates, Mapping):
        resolved = choices_at_paths(
            candidates, modules, lambda choices: [_parse_choice(c) for c in choices]
        )
    else:
        resolved = {}
        for rule, matched in rule_matches(list(candidates), modules, "insert_candidates"):
            for name in matched:
                resolved.setdefault(name, []).append(rule.choice())
    out: dict[str, list[BlockChoice]] = {}
    for path, choices in resolved.items():
        unique = {choice_key(c): c for c in choices if not c.is_none}
        if unique:
            out[path] = list(unique.values())
    refuse_nested(out)
    return out


def insert_candidates(
    model: nn.Module,
    candidates: Candidates,
    example_input: Tensor | None = None,
    *,
    seed: int | None = None,
    max_bytes: int | None = None,
    optimizer_states: int = 1,
) -> nn.Module:
    """Turn ``model`` into a supernet in place: a :class:`MixedAttention` with every candidate at
    each selected module, none active. Returns the model.

    Positions are checked as in ``insert_attention`` (``standard`` and ``identity`` only on
    residual units). Before any candidate is allocated the supernet's size is estimated (blocks
    built on the meta device) and a ``MemoryError`` with the estimate is raised when its training
    would take more than ``max_bytes``. With ``seed``, every candidate at a module draws from that
    module's stream (``insertion.site_seed``), so each starts as ``insert_attention`` with the same
    seed would start it.
    """
    targets = _resolve(model, candidates)
    if not targets:
        raise ValueError("no module got a candidate block (only 'none' was given)")
    for path, choices in targets.items():
        module = model.get_submodule(path)
        if isinstance(module, AttentiveResidual) and module.has_attention():
            raise ValueError(f"module {path!r} already carries attention ({module.attn})")
        positions = supported_positions(module)
        refused = sorted({c.position for c in choices} - set(positions))
        if refused:
            raise ValueError(
                f"module {path!r} ({type(module).__name__}) supports positions "
                f"{list(positions)}, not {refused}; only residual units take 'standard' and "
                "'identity'"
            )
    shapes = _dry_run(model, list(targets), example_input)
    channels = {}
    for path, (in_shape, out_shape) in shapes.items():
        if in_shape is None or out_shape is None or len(in_shape) != 4 or len(out_shape) != 4:
            raise ValueError(
                f"module {path!r}: attention needs 4-D (B, C, H, W) tensors in and out, the dry "
                f"run saw {in_shape} -> {out_shape}"
            )
        channels[path] = (in_shape[1], out_shape[1])
    _check_fits(_size(model, targets, channels, optimizer_states), max_bytes, "this model")
    reference = next(model.parameters(), None)
    for path, choices in targets.items():
        module = model.get_submodule(path)
        blocks = []
        for choice in choices:
            width = channels[path][0] if choice.position == "pre" else channels[path][1]
            with cpu_rng_seeded(None if seed is None else site_seed(seed, path)):
                block = attn_blocks.create(choice.block, width, **choice.params)
            if reference is not None:
                block = block.to(device=reference.device, dtype=reference.dtype)
            blocks.append(block)
        mixed = MixedAttention(choices, blocks)
        mixed.train(module.training)
        residual = supported_positions(module) == POSITIONS
        _patch(model, path, module, mixed, "standard" if residual else "post")
    return model


def supernet_size(
    space: SearchSpace, in_channels: int = 3, num_classes: int = 10, optimizer_states: int = 1
) -> SupernetSize:
    """The size of ``space``'s supernet, estimated without allocating it (backbone and blocks on
    the meta device)."""
    sites = backbone_sites(space.backbone, **space.backbone_args)
    targets = _space_targets(space, sites)
    with torch.device("meta"):
        backbone = build_backbone(space.backbone, in_channels, num_classes, **space.backbone_args)
        shapes = _dry_run(backbone, list(targets), None)  # its first conv's channels
    channels = {p: (s[0][1], s[1][1]) for p, s in shapes.items()}
    return _size(backbone, targets, channels, optimizer_states)


def _space_targets(space: SearchSpace, sites: Sequence[Any]) -> dict[str, list[BlockChoice]]:
    searched = {name for names in space.scopes().values() for name in names}
    attended = [c for c in space.choices() if not c.is_none]
    return {site.path: attended for site in sites if site.name in searched and attended}


def build_supernet(
    space: SearchSpace,
    in_channels: int = 3,
    num_classes: int = 10,
    *,
    seed: int | None = None,
    pretrained: Pretrained = False,
    max_bytes: int | None = None,
    optimizer_states: int = 1,
) -> nn.Module:
    """The supernet of ``space``: its backbone with every candidate of the space at each searched
    site, ``none`` active everywhere.

    Refused with a ``MemoryError`` naming its estimated size when training it would take more than
    ``max_bytes`` (estimated first, on the meta device). With ``seed`` it starts, for any
    ``spec`` of the space, exactly as ``build_model(spec, seed)`` does. ``pretrained`` loads the
    backbone's weights and starts every candidate as the identity where its family allows it.
    The model carries ``supernet_space`` and ``supernet_sites`` (site name -> module path).
    """
    if not any(not c.is_none for c in space.choices()):
        raise ValueError("the space has only 'none'; a supernet needs at least one attention block")
    _check_fits(
        supernet_size(space, in_channels, num_classes, optimizer_states),
        max_bytes,
        f"space {space.backbone} x {list(space.blocks)}",
    )
    sites = backbone_sites(space.backbone, **space.backbone_args)
    with cpu_rng_seeded(seed):
        model = build_backbone(
            space.backbone, in_channels, num_classes, pretrained=pretrained, **space.backbone_args
        )
        insert_candidates(model, _space_targets(space, sites), seed=seed)
    if pretrained is not False:
        for mixed in _mixed_sites(model).values():
            for block in mixed[1].candidates.values():
                identity_init(block)
    model.supernet_space = space
    model.supernet_sites = {site.name: site.path for site in sites}
    return model


# -- activation and the stand-alone weights ----------------------------------------------------


def _mixed_sites(model: nn.Module) -> dict[str, tuple[nn.Module, MixedAttention]]:
    """Host path -> (host unit, its MixedAttention)."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, MixedAttention):
            host_path = name.rpartition(".")[0]
            out[host_path] = (model.get_submodule(host_path) if host_path else model, module)
    if not out:
        raise ValueError(
            "the model is not a supernet (no MixedAttention); build it with "
            "build_supernet or insert_candidates"
        )
    return out


def candidate_paths(model: nn.Module) -> list[str]:
    """The module path of every candidate block of the supernet ``model``, site by site."""
    return [
        f"{name}.candidates.{key}" if name else f"candidates.{key}"
        for name, module in model.named_modules()
        if isinstance(module, MixedAttention)
        for key in module.candidates
    ]


def _path_choices(model: nn.Module, arch: ArchSpec | Mapping[str, BlockChoice]) -> dict:
    """Module path -> choice, from an ArchSpec (through the supernet's sites) or a mapping."""
    if not isinstance(arch, ArchSpec):
        return {
            p: c if isinstance(c, BlockChoice) else BlockChoice.from_dict(c)
            for p, c in arch.items()
        }
    space: SearchSpace | None = getattr(model, "supernet_space", None)
    sites: dict[str, str] | None = getattr(model, "supernet_sites", None)
    if space is None or sites is None:
        raise ValueError(
            "this supernet was not built by build_supernet, so it has no site names; activate "
            "it with a {module_path: BlockChoice} mapping"
        )
    if (arch.backbone, dict(arch.backbone_args)) != (space.backbone, dict(space.backbone_args)):
        raise ValueError(
            f"the spec is a {arch.backbone} {dict(arch.backbone_args)}, the supernet a "
            f"{space.backbone} {dict(space.backbone_args)}"
        )
    unknown = sorted(set(arch.sites) - set(sites))
    if unknown:
        raise ValueError(f"spec has site(s) {unknown} that the supernet does not have")
    return {sites[name]: choice for name, choice in arch.sites.items()}


def _site_label(model: nn.Module, path: str) -> str:
    names = {p: n for n, p in getattr(model, "supernet_sites", {}).items()}
    return f"site {names[path]!r} ({path})" if path in names else f"module {path!r}"


def activate(model: nn.Module, arch: ArchSpec | Mapping[str, BlockChoice]) -> nn.Module:
    """Make ``arch`` the supernet's active path: at each site its choice's candidate runs at its
    position; sites ``arch`` leaves out run ``none``. Returns the model."""
    wanted = _path_choices(model, arch)
    hosts = _mixed_sites(model)
    stray = sorted(p for p, c in wanted.items() if not c.is_none and p not in hosts)
    if stray:
        raise ValueError(f"site(s) {stray} carry attention but have no candidates in the supernet")
    for path, (host, mixed) in hosts.items():
        choice = wanted.get(path, NO_ATTENTION)
        try:
            mixed.activate(choice)
        except ValueError as exc:
            raise ValueError(f"{_site_label(model, path)}: {exc}") from None
        if not choice.is_none:
            host.position = choice.position
    return model


def subnet_state_dict(model: nn.Module, arch: ArchSpec | Mapping[str, BlockChoice]) -> dict:
    """The supernet's weights for ``arch`` under the keys of the stand-alone model
    (``build_model(spec).load_state_dict(subnet_state_dict(supernet, spec))`` loads strictly):
    each site's chosen candidate as its ``attn``, the others left out. Does not change the
    active path."""
    wanted = _path_choices(model, arch)
    hosts = _mixed_sites(model)
    renames: list[tuple[str, str | None]] = []  # (supernet prefix, stand-alone prefix or None)
    for path, (host, mixed) in hosts.items():
        choice = wanted.get(path, NO_ATTENTION)
        keep = mixed.index(choice)
        if not choice.is_none and keep is None:
            raise ValueError(f"{_site_label(model, path)}: {choice.label()} is not a candidate")
        for i in range(len(mixed.choices)):
            renames.append((f"{path}.attn.candidates.{i}.", f"{path}.attn." if i == keep else None))
        if isinstance(host, PrePostAttention) and choice.is_none:
            renames.append((f"{path}.module.", f"{path}."))  # unwrapped when it has no attention
    state = {}
    for key, value in model.state_dict().items():
        for prefix, target in renames:
            if key.startswith(prefix):
                if target is not None:
                    state[target + key[len(prefix) :]] = value
                break
        else:
            state[key] = value
    return state


# -- path sampling -----------------------------------------------------------------------------


class PathSampler:
    """The path a supernet trains at each step, a pure function of ``(seed, step)``.

    ``uniform`` (SPOS): every scope of the space draws one of its choices uniformly, which is a
    uniform draw over the space's architectures. ``fair`` (FairNAS's strict fairness): each scope
    walks through a fresh random permutation of its choices every ``len(choices)`` steps, so every
    candidate of a site is trained equally often. Stateless, so a resumed training replays the
    same paths.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        sampling: str = "uniform",
        in_channels: int = 3,
        num_classes: int = 10,
    ) -> None:
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling {sampling!r} is unknown; use one of {list(SAMPLINGS)}")
        self.space = space
        self.seed = seed
        self.sampling = sampling
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.choices = space.choices()
        self.scopes = space.scopes()
        self._all_sites = [s.name for s in backbone_sites(space.backbone, **space.backbone_args)]

    def indices(self, step: int) -> list[int]:
        """The index into ``choices`` of each scope at ``step``."""
        m = len(self.choices)
        if self.sampling == "uniform":
            rng = np.random.default_rng((self.seed, step))
            return [int(i) for i in rng.integers(m, size=len(self.scopes))]
        cycle, offset = divmod(step, m)
        return [
            int(np.random.default_rng((self.seed, k, cycle)).permutation(m)[offset])
            for k in range(len(self.scopes))
        ]

    def __call__(self, step: int) -> ArchSpec:
        sites = dict.fromkeys(self._all_sites, NO_ATTENTION)
        for index, names in zip(self.indices(step), self.scopes.values(), strict=True):
            for name in names:
                sites[name] = self.choices[index]
        return ArchSpec(
            backbone=self.space.backbone,
            backbone_args=dict(self.space.backbone_args),
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            sites=sites,
        )


# -- BatchNorm recalibration -------------------------------------------------------------------


def recalibrate_bn(
    model: nn.Module,
    batches: Iterable[Tensor | Sequence[Tensor]],
    *,
    device: torch.device | str | None = None,
) -> int:
    """Re-estimate every BatchNorm's running statistics for the model's active path from
    ``batches`` (images, or (images, labels) pairs): statistics reset, then the cumulative mean
    over the batches (``momentum=None``), in training mode without gradients. The shared
    statistics of a supernet belong to no single path; SPOS recomputes them per sub-network.
    Momenta and training flags are restored. Returns the number of images seen."""
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    momenta = [m.momentum for m in norms]
    flags = [(m, m.training) for m in model.modules()]
    seen = 0
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        model.train()
        with torch.no_grad():
            for batch in batches:
                images = batch if isinstance(batch, Tensor) else batch[0]
                if device is not None:
                    images = images.to(device, non_blocking=True)
                model(images)
                seen += len(images)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        for module, training in flags:
            module.training = training
    if seen == 0 and norms:
        raise ValueError("recalibrate_bn got no batches; pass at least one batch of images")
    return seen


__all__ = [
    "SAMPLINGS",
    "MixedAttention",
    "PathSampler",
    "SupernetSize",
    "activate",
    "build_supernet",
    "candidate_paths",
    "choice_key",
    "insert_candidates",
    "recalibrate_bn",
    "subnet_state_dict",
    "supernet_size",
]
