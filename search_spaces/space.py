"""Search spaces over attention placement, and ``suggest_arch`` to sample one with any Optuna trial.

A :class:`SearchSpace` says which blocks may go where: the block types (``none`` included), the
reduction ratios and ECA kernel sizes to try, the granularity of the choice (one block for the
whole network, one per stage, or one per residual block), which stages may receive attention, and
the positions inside a block. :func:`suggest_arch` turns a trial into an :class:`ArchSpec`.

Parameter names are stable so that TPE (``multivariate=True``) and NSGA-II can model them. With
``scope`` = ``all`` (global), ``stage2`` (per stage) or ``stage2.1`` (per block):

- ``{scope}.block``        categorical over ``blocks``;
- ``{scope}.position``     categorical over ``positions`` (only when a block is chosen and more
  than one position is allowed);
- ``{scope}.reduction``    categorical over ``reductions`` (only for blocks with a reduction);
- ``{scope}.kernel_size``  categorical over ``eca_kernels`` (only for ``eca``);
- ``{scope}.{block}.{param}`` for parameters listed in ``block_params``.

Conditional parameters are suggested only where they apply, with the same choices wherever they
appear, which is what Optuna's samplers need to model them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import optuna

import attn_blocks

from .backbones import backbone_sites, validate_backbone_args
from .spec import POSITIONS, ArchSpec, BlockChoice

GRANULARITIES = ("global", "per_stage", "per_block")
#: Parameters whose choices come from the space itself rather than from ``block_params``.
_SHARED_PARAMS = {"reduction": "reductions", "kernel_size": "eca_kernels"}


@dataclass(frozen=True)
class SearchSpace:
    """Which attention blocks may be placed where. Validated on construction."""

    backbone: str = "resnet20"
    backbone_args: Mapping[str, Any] = field(default_factory=dict)
    blocks: Sequence[str] = ("none", "se", "eca", "cbam", "simam")
    reductions: Sequence[int] = (4, 8, 16)
    eca_kernels: Sequence[int | str] = (3, 5, "adaptive")
    granularity: str = "per_stage"
    #: Stages (numbered from 1) that may receive attention; ``None`` = all from ``from_stage`` on.
    stages: Sequence[int] | None = None
    from_stage: int = 1
    positions: Sequence[str] = ("standard",)
    #: Extra searched parameters, e.g. ``{"encoding": {"codewords": [8, 16, 32]}}``.
    block_params: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("blocks", "reductions", "eca_kernels", "positions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.stages is not None:
            object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "backbone_args", dict(self.backbone_args))
        object.__setattr__(
            self,
            "block_params",
            {b: {p: tuple(v) for p, v in ps.items()} for b, ps in self.block_params.items()},
        )
        self._validate()

    def _validate(self) -> None:
        validate_backbone_args(self.backbone, dict(self.backbone_args))
        known = attn_blocks.available()
        if not self.blocks:
            raise ValueError("space.blocks is empty; list at least one block, e.g. ['none', 'se']")
        bad = [b for b in self.blocks if b not in known]
        if bad:
            raise ValueError(f"space.blocks has unknown block(s) {bad}; available: {known}")
        if len(set(self.blocks)) != len(self.blocks):
            raise ValueError(f"space.blocks lists a block twice: {list(self.blocks)}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"space.granularity={self.granularity!r} is invalid; use one of {GRANULARITIES}"
            )
        bad = [p for p in self.positions if p not in POSITIONS]
        if not self.positions or bad:
            raise ValueError(
                f"space.positions={list(self.positions)} is invalid; use a non-empty subset of "
                f"{list(POSITIONS)}"
            )
        sites = backbone_sites(self.backbone, **dict(self.backbone_args))
        taken = sorted({p for site in sites for p in site.positions}, key=POSITIONS.index)
        refused = [p for p in self.positions if any(p not in site.positions for site in sites)]
        if refused:
            raise ValueError(
                f"space.positions {refused} are not taken by every insertion site of "
                f"{self.backbone} (its sites take {taken}); set space.positions to some of those"
            )
        if self._uses_param("reduction"):
            self._check_values("reductions", "reduction", self.reductions)
        if "eca" in self.blocks:
            self._check_values("eca_kernels", "kernel_size", self.eca_kernels, block="eca")
        n_stages = len(self.stage_numbers_all())
        if isinstance(self.from_stage, bool) or not isinstance(self.from_stage, int):
            raise ValueError(f"space.from_stage must be an int, got {self.from_stage!r}")
        if not 1 <= self.from_stage <= n_stages:
            raise ValueError(
                f"space.from_stage={self.from_stage} is out of range; {self.backbone} has "
                f"stages 1..{n_stages}"
            )
        if self.stages is not None:
            if self.from_stage != 1:
                raise ValueError("give either space.stages or space.from_stage, not both")
            bad = [s for s in self.stages if s not in self.stage_numbers_all()]
            if not self.stages or bad:
                raise ValueError(
                    f"space.stages={list(self.stages)} is invalid; {self.backbone} has stages "
                    f"{self.stage_numbers_all()} (with insertion sites)"
                )
        for block, params in self.block_params.items():
            if block not in self.blocks:
                raise ValueError(
                    f"space.block_params names {block!r}, which is not in space.blocks"
                )
            for param, values in params.items():
                if param in _SHARED_PARAMS:
                    raise ValueError(
                        f"space.block_params.{block}.{param}: set it through "
                        f"space.{_SHARED_PARAMS[param]} instead"
                    )
                self._check_values(f"block_params.{block}.{param}", param, values, block=block)

    def _uses_param(self, param: str) -> bool:
        return any(param in attn_blocks.info(b).param_names for b in self.blocks)

    def _check_values(
        self, field_name: str, param: str, values: Sequence[Any], block: str | None = None
    ) -> None:
        if not values:
            raise ValueError(f"space.{field_name} is empty; list at least one value")
        if len(set(values)) != len(values):
            raise ValueError(f"space.{field_name} lists a value twice: {list(values)}")
        users = (
            [block]
            if block
            else [b for b in self.blocks if param in attn_blocks.info(b).param_names]
        )
        for b in users:
            spec = attn_blocks.info(b).param(param)
            for v in values:
                reason = spec.check(v)
                if reason is not None:
                    raise ValueError(
                        f"space.{field_name}: value {v!r} is invalid for block {b!r} ({reason}); "
                        f"allowed: {spec.allowed}"
                    )

    # -- structure ----------------------------------------------------------------------------

    def stage_numbers_all(self) -> list[int]:
        """Stages of the backbone that have insertion sites."""
        return sorted({s.stage for s in backbone_sites(self.backbone, **self.backbone_args)})

    def searched_stages(self) -> list[int]:
        if self.stages is not None:
            return sorted(self.stages)
        return [s for s in self.stage_numbers_all() if s >= self.from_stage]

    def scopes(self) -> dict[str, list[str]]:
        """Each independently chosen scope and the sites it covers."""
        sites = backbone_sites(self.backbone, **self.backbone_args)
        searched = set(self.searched_stages())
        eligible = [s for s in sites if s.stage in searched]
        if self.granularity == "global":
            return {"all": [s.name for s in eligible]}
        if self.granularity == "per_stage":
            scopes: dict[str, list[str]] = {}
            for s in eligible:
                scopes.setdefault(f"stage{s.stage}", []).append(s.name)
            return scopes
        return {s.name: [s.name] for s in eligible}

    def param_choices(self, block: str) -> dict[str, tuple[Any, ...]]:
        """The searched parameters of ``block`` and their choices (unsearched ones use defaults)."""
        names = attn_blocks.info(block).param_names
        choices: dict[str, tuple[Any, ...]] = {}
        if "reduction" in names:
            choices["reduction"] = tuple(self.reductions)
        if block == "eca":
            choices["kernel_size"] = tuple(self.eca_kernels)
        for param, values in self.block_params.get(block, {}).items():
            choices[param] = tuple(values)
        return choices

    def choices(self) -> list[BlockChoice]:
        """Every choice one scope can take: ``none`` and each block with each combination of its
        searched parameters at each position, in a fixed order (a supernet's candidates)."""
        out: list[BlockChoice] = []
        for block in self.blocks:
            if block == "none":
                out.append(BlockChoice())
                continue
            grid = self.param_choices(block)
            for values in itertools.product(*grid.values()):
                params = dict(zip(grid, values, strict=True))
                out.extend(BlockChoice(block, params, position) for position in self.positions)
        return out

    def size(self) -> int:
        """Number of distinct architectures in the space."""
        return len(self.choices()) ** len(self.scopes())

    # -- (de)serialisation ----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Build from a plain dict, e.g. a study TOML's ``[space]`` table."""
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"space has unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (
                list(v)
                if isinstance(v := getattr(self, f.name), tuple)
                else {b: {p: list(x) for p, x in ps.items()} for b, ps in v.items()}
                if f.name == "block_params"
                else dict(v)
                if isinstance(v, Mapping)
                else v
            )
            for f in fields(self)
        }


def suggest_arch(
    trial: optuna.trial.BaseTrial,
    space: SearchSpace,
    *,
    in_channels: int = 3,
    num_classes: int = 10,
) -> ArchSpec:
    """Sample an architecture from ``space`` with ``trial`` (any Optuna trial, FixedTrial too)."""
    sites: dict[str, BlockChoice] = {}
    for scope, scope_sites in space.scopes().items():
        choice = _suggest_choice(trial, space, scope)
        for site in scope_sites:
            sites[site] = choice
    for site in backbone_sites(space.backbone, **space.backbone_args):
        sites.setdefault(site.name, BlockChoice())
    return ArchSpec(
        backbone=space.backbone,
        backbone_args=dict(space.backbone_args),
        in_channels=in_channels,
        num_classes=num_classes,
        sites=sites,
    )


def _suggest_choice(trial: optuna.trial.BaseTrial, space: SearchSpace, scope: str) -> BlockChoice:
    block = trial.suggest_categorical(f"{scope}.block", list(space.blocks))
    if block == "none":
        return BlockChoice()
    params: dict[str, Any] = {}
    for param, values in space.param_choices(block).items():
        name = f"{scope}.{param}" if param in _SHARED_PARAMS else f"{scope}.{block}.{param}"
        params[param] = trial.suggest_categorical(name, list(values))
    position = (
        trial.suggest_categorical(f"{scope}.position", list(space.positions))
        if len(space.positions) > 1
        else space.positions[0]
    )
    return BlockChoice(block=block, params=params, position=position)


def spec_to_params(spec: ArchSpec, space: SearchSpace) -> dict[str, Any]:
    """The trial parameters under which ``suggest_arch`` reproduces ``spec`` in ``space``.

    Useful to enqueue a known architecture (``study.enqueue_trial``) or to replay it with
    ``optuna.trial.FixedTrial``. Raises ``ValueError`` when the spec is not in the space.
    """
    params: dict[str, Any] = {}
    for scope, scope_sites in space.scopes().items():
        choice = spec.choice(scope_sites[0])
        if any(spec.choice(s) != choice for s in scope_sites):
            raise ValueError(
                f"spec is not in the space: sites {scope_sites} of scope {scope!r} differ, but "
                f"granularity {space.granularity!r} gives them one choice"
            )
        params.update(scope_params(space, scope, choice))
    return params


def scope_params(space: SearchSpace, scope: str, choice: BlockChoice) -> dict[str, Any]:
    """The trial parameters of one scope under which ``suggest_arch`` picks ``choice``."""
    params: dict[str, Any] = {f"{scope}.block": choice.block}
    if choice.is_none:
        return params
    for param in space.param_choices(choice.block):
        name = f"{scope}.{param}" if param in _SHARED_PARAMS else f"{scope}.{choice.block}.{param}"
        params[name] = choice.params[param]
    if len(space.positions) > 1:
        params[f"{scope}.position"] = choice.position
    return params


def architecture_params(space: SearchSpace) -> list[dict[str, Any]]:
    """The trial parameters of every architecture of ``space``, in a fixed order (the first
    scope varies slowest, each over :meth:`SearchSpace.choices`); ``space.size()`` of them."""
    scopes = list(space.scopes())
    out = []
    for combo in itertools.product(space.choices(), repeat=len(scopes)):
        params: dict[str, Any] = {}
        for scope, choice in zip(scopes, combo, strict=True):
            params.update(scope_params(space, scope, choice))
        out.append(params)
    return out


def baseline_choice(space: SearchSpace, block: str) -> BlockChoice:
    """``block`` as a hand-made reference would place it: each searched parameter at the block's
    default where the space offers it (else the space's first choice), at the ``standard``
    position where the space allows it (else its first position)."""
    if block not in space.blocks:
        raise ValueError(f"block {block!r} is not in the space's blocks {list(space.blocks)}")
    if block == "none":
        return BlockChoice()
    defaults = attn_blocks.info(block).defaults
    params = {
        param: defaults[param] if defaults.get(param) in values else values[0]
        for param, values in space.param_choices(block).items()
    }
    position = "standard" if "standard" in space.positions else space.positions[0]
    return BlockChoice(block=block, params=params, position=position)


def everywhere_params(space: SearchSpace, choice: BlockChoice) -> dict[str, Any]:
    """The trial parameters that place ``choice`` at every scope of ``space`` (for
    ``study.enqueue_trial``)."""
    params: dict[str, Any] = {}
    for scope in space.scopes():
        params.update(scope_params(space, scope, choice))
    return params


def baselines(
    space: SearchSpace, blocks: Sequence[str] | None = None, limit: int | None = None
) -> dict[str, dict[str, Any]]:
    """Hand-made references of the space, by name: ``none`` (where the space has it) and each of
    ``blocks`` (default: every block of the space) placed everywhere by :func:`baseline_choice`,
    at most ``limit`` of them, ``none`` first. Values are trial parameters."""
    chosen = list(space.blocks if blocks is None else blocks)
    names = (["none"] if "none" in space.blocks else []) + [b for b in chosen if b != "none"]
    names = names[:limit] if limit is not None else names
    return {name: everywhere_params(space, baseline_choice(space, name)) for name in names}
