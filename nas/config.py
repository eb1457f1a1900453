"""Study configuration: one TOML file describes a whole search.

Sections: ``[study]`` (name, storage, sampler, seed, budget), ``[data]``, ``[backbone]``,
``[space]``, ``[training]``, ``[pruning]``, ``[objectives]``. Every section is validated on load
and every error names the field (``data.batch_size``) and the fix; unknown keys are errors too, so
a typo never silently falls back to a default.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from search_spaces.space import SearchSpace

from .data import DataConfig
from .pruning import asha_rungs
from .training import TrainingConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SAMPLERS = ("nsga2", "tpe", "gp", "random")
PRUNERS = ("pareto", "moasha", "median", "percentile", "asha", "none")
#: Cost names an objective may minimise (keys of ``search_spaces.cost.ModelCost.to_dict``).
COSTS = ("flops", "params", "latency_ms_b1", "latency_ms_bN", "activation_bytes")
METRICS = ("val_acc",)


class ConfigError(ValueError):
    """A study configuration is invalid; the message names the field and the fix."""


@dataclass(frozen=True)
class StudySection:
    name: str = "attention-nas"
    #: Optuna storage URL; empty = a journal file under ``runs_dir/<name>/`` (safe for several
    #: local processes).
    storage: str = ""
    runs_dir: str = "studies/runs"
    sampler: str = "nsga2"
    seed: int = 0
    n_trials: int = 20
    #: Seconds after which no new trial starts (0 = no limit).
    timeout_s: float = 0.0
    #: NSGA-II population size / TPE and GP start-up trials.
    population_size: int = 8
    #: Database storages: a running trial records a heartbeat this often; a trial silent for
    #: ``grace_period_s`` is failed by the next worker and re-queued up to ``max_retry`` times.
    #: (Local journal files check the worker's pid instead.)
    heartbeat_interval_s: int = 30
    grace_period_s: int = 120
    max_retry: int = 1

    def __post_init__(self) -> None:
        _require(
            bool(self.name) and "/" not in self.name, "study.name", "a non-empty name without '/'"
        )
        _require(self.sampler in SAMPLERS, "study.sampler", f"one of {SAMPLERS}")
        _require(_is_int(self.seed), "study.seed", "an int")
        _require(_is_int(self.n_trials) and self.n_trials >= 1, "study.n_trials", "an int >= 1")
        _require(
            isinstance(self.timeout_s, (int, float)) and self.timeout_s >= 0,
            "study.timeout_s",
            "a number of seconds >= 0 (0 = no limit)",
        )
        _require(
            _is_int(self.heartbeat_interval_s) and self.heartbeat_interval_s >= 1,
            "study.heartbeat_interval_s",
            "an int >= 1 (seconds)",
        )
        _require(
            _is_int(self.grace_period_s) and self.grace_period_s > self.heartbeat_interval_s,
            "study.grace_period_s",
            "an int of seconds greater than study.heartbeat_interval_s",
        )
        _require(_is_int(self.max_retry) and self.max_retry >= 0, "study.max_retry", "an int >= 0")
        _require(
            _is_int(self.population_size) and self.population_size >= 2,
            "study.population_size",
            "an int >= 2",
        )

    def storage_url(self) -> str:
        return self.storage or str(Path(self.runs_dir) / self.name / "journal.log")


@dataclass(frozen=True)
class PruningSection:
    """Early stopping. ``pareto`` and ``moasha`` work for any number of objectives; ``median``,
    ``percentile`` and ``asha`` are Optuna's own pruners (single-objective studies only)."""

    pruner: str = "pareto"
    percentile: float = 50.0
    n_startup_trials: int = 4
    n_warmup_epochs: int = 1
    min_epochs: int = 1
    reduction_factor: int = 3

    def __post_init__(self) -> None:
        _require(self.pruner in PRUNERS, "pruning.pruner", f"one of {PRUNERS}")
        _require(0 < self.percentile < 100, "pruning.percentile", "a number in (0, 100)")
        for name in ("n_startup_trials", "n_warmup_epochs"):
            _require(
                _is_int(getattr(self, name)) and getattr(self, name) >= 0,
                f"pruning.{name}",
                "an int >= 0",
            )
        _require(
            _is_int(self.min_epochs) and self.min_epochs >= 1, "pruning.min_epochs", "an int >= 1"
        )
        _require(
            _is_int(self.reduction_factor) and self.reduction_factor >= 2,
            "pruning.reduction_factor",
            "an int >= 2",
        )


@dataclass(frozen=True)
class ObjectivesSection:
    """``maximize`` a validation metric and ``minimize`` zero or more costs.

    ``constraints`` caps costs (``{params = 1e6}``): with no cost to minimise this is a
    single-objective study with constraints (Optuna's ``constraints_func``).
    """

    maximize: str = "val_acc"
    minimize: tuple[str, ...] = ("flops",)
    constraints: Mapping[str, float] = field(default_factory=dict)
    #: Input batch size used for ``latency_ms_bN``.
    latency_batch: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "minimize", tuple(self.minimize))
        object.__setattr__(self, "constraints", dict(self.constraints))
        _require(self.maximize in METRICS, "objectives.maximize", f"one of {METRICS}")
        for cost in self.minimize:
            _require(
                cost in COSTS, "objectives.minimize", f"a list of costs from {COSTS}, got {cost!r}"
            )
        _require(
            len(set(self.minimize)) == len(self.minimize),
            "objectives.minimize",
            "costs listed once",
        )
        for cost, cap in self.constraints.items():
            _require(cost in COSTS, "objectives.constraints", f"keys from {COSTS}, got {cost!r}")
            _require(
                isinstance(cap, (int, float)) and cap > 0,
                f"objectives.constraints.{cost}",
                "a number > 0",
            )
        _require(
            _is_int(self.latency_batch) and self.latency_batch >= 1,
            "objectives.latency_batch",
            "an int >= 1",
        )

    @property
    def names(self) -> list[str]:
        """Metric names of the study's objectives, in order."""
        return [self.maximize, *self.minimize]

    @property
    def directions(self) -> list[str]:
        return ["maximize"] + ["minimize"] * len(self.minimize)

    @property
    def needs_latency(self) -> bool:
        used = set(self.minimize) | set(self.constraints)
        return bool(used & {"latency_ms_b1", "latency_ms_bN"})


@dataclass(frozen=True)
class StudyConfig:
    study: StudySection
    data: DataConfig
    space: SearchSpace
    training: TrainingConfig
    pruning: PruningSection
    objectives: ObjectivesSection

    def __post_init__(self) -> None:
        multi = len(self.objectives.names) > 1
        if multi and self.pruning.pruner in ("median", "percentile", "asha"):
            raise ConfigError(
                f"pruning.pruner={self.pruning.pruner!r} is one of Optuna's single-objective "
                f"pruners, but the study has {len(self.objectives.names)} objectives; use "
                "'pareto' or 'moasha' (or drop objectives.minimize)"
            )
        p = self.pruning
        if p.pruner == "moasha" and not asha_rungs(
            p.min_epochs, p.reduction_factor, self.training.epochs
        ):
            raise ConfigError(
                f"pruning.min_epochs x pruning.reduction_factor ({p.min_epochs} x "
                f"{p.reduction_factor}) must be <= training.epochs ({self.training.epochs}): a "
                "trial promoted from the first rung needs reduction_factor times its epochs; "
                "lower pruning.min_epochs or pruning.reduction_factor, or raise training.epochs"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyConfig:
        known = {"study", "data", "backbone", "space", "training", "pruning", "objectives"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown section(s) {unknown}; sections are {sorted(known)}")
        space = dict(data.get("space", {}))
        backbone = dict(data.get("backbone", {}))
        _check_keys(backbone, {"name", "args"}, "backbone")
        for key, target in (("name", "backbone"), ("args", "backbone_args")):
            if key in backbone:
                if target in space:
                    raise ConfigError(f"set backbone.{key} or space.{target}, not both")
                space[target] = backbone[key]
        return cls(
            study=_section(StudySection, data, "study"),
            data=_section(DataConfig, data, "data"),
            space=_section(SearchSpace, {"space": space}, "space"),
            training=_section(TrainingConfig, data, "training"),
            pruning=_section(PruningSection, data, "pruning"),
            objectives=_section(ObjectivesSection, data, "objectives"),
        )

    @classmethod
    def load(cls, path: str | Path) -> StudyConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"study config {path} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (stored with the study so any worker can rebuild the config)."""
        data = {
            "study": asdict(self.study),
            "data": asdict(self.data),
            "space": self.space.to_dict(),
            "training": asdict(self.training),
            "pruning": asdict(self.pruning),
            "objectives": {
                "maximize": self.objectives.maximize,
                "minimize": list(self.objectives.minimize),
                "constraints": dict(self.objectives.constraints),
                "latency_batch": self.objectives.latency_batch,
            },
        }
        # Paths become strings and tuples lists, exactly as they come back from the storage.
        return json.loads(json.dumps(data, default=str))


def _section(cls: type, data: Mapping[str, Any], name: str) -> Any:
    raw = data.get(name, {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    allowed = {f.name for f in fields(cls) if f.init}
    _check_keys(raw, allowed, name)
    try:
        return cls(**raw)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if not message.startswith(f"{name}.") and f"{name}." not in message:
            message = f"{name}: {message}"
        raise ConfigError(message) from None


def _check_keys(raw: Mapping[str, Any], allowed: set[str], name: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[f'{name}.{k}' for k in unknown]}; allowed: {sorted(allowed)}"
        )


def _require(ok: bool, field_name: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{field_name} must be {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
