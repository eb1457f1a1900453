"""A whole study config: the TOML file as one pydantic model, loading and storing it, and its JSON
schema."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    ConfigDict,
    InstanceOf,
    StrictBool,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

from search_spaces.space import SearchSpace

from ._validation import _CONFIG, ConfigError, _build, _field, _message, _one_line_errors
from .rung_epochs import asha_rungs, first_rung_candidates
from .sections import (
    BackboneSection,
    DataConfig,
    EvaluationSection,
    ObjectivesSection,
    PruningSection,
    SearchSection,
    SpaceSection,
    StudySection,
)
from .tracking import TrackingSection
from .training import TrainingConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True, config=ConfigDict(extra="forbid", title="attention-nas study config"))
class _StudyFile:
    """A study config as written in TOML: one table per section (``[training]`` with at least
    ``epochs``; every other setting has a default)."""

    KEY_NOUN: ClassVar[str] = "section"

    study: StudySection = _field(allowed="a table", default_factory=StudySection)
    data: DataConfig = _field(allowed="a table", default_factory=DataConfig)
    backbone: BackboneSection = _field(allowed="a table", default_factory=BackboneSection)
    space: SpaceSection = _field(allowed="a table", default_factory=SpaceSection)
    training: TrainingConfig = _field(allowed="a table with at least epochs")
    pruning: PruningSection = _field(allowed="a table", default_factory=PruningSection)
    objectives: ObjectivesSection = _field(allowed="a table", default_factory=ObjectivesSection)
    evaluation: EvaluationSection = _field(allowed="a table", default_factory=EvaluationSection)
    search: SearchSection = _field(allowed="a table", default_factory=SearchSection)
    tracking: TrackingSection = _field(allowed="a table", default_factory=TrackingSection)

    def search_space(self) -> SearchSpace:
        """``[space]`` with ``backbone.name/args`` as ``space.backbone/backbone_args``."""
        values = {f.name: getattr(self.space, f.name) for f in fields(self.space)}
        paths = {"backbone": "space.backbone", "backbone_args": "space.backbone_args"}
        for key, target in (("name", "backbone"), ("args", "backbone_args")):
            given = getattr(self.backbone, key)
            if given is not None:
                if values[target] is not None:
                    raise ConfigError(f"set backbone.{key} or space.{target}, not both")
                values[target] = given
                paths[target] = f"backbone.{key}"
        try:
            return SearchSpace(**{k: v for k, v in values.items() if v is not None})
        except (ValueError, TypeError, ImportError) as exc:
            message = str(exc)
            # Backbone errors come from the backbone registry, which knows no config paths.
            if message.startswith(("unknown backbone", "unknown timm model", "timm")):
                message = f"{paths['backbone']}: {message}"
            elif message.startswith("backbone "):
                message = f"{paths['backbone_args']}: {message}"
            raise ConfigError(message) from None


_FILE = TypeAdapter(_StudyFile)


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class StudyConfig:
    """A whole study, its sections validated; ``space`` joins ``[backbone]`` and ``[space]``."""

    study: StudySection = _field(allowed="a StudySection")
    data: DataConfig = _field(allowed="a DataConfig")
    space: InstanceOf[SearchSpace] = _field(allowed="a SearchSpace")
    training: TrainingConfig = _field(allowed="a TrainingConfig")
    pruning: PruningSection = _field(allowed="a PruningSection")
    objectives: ObjectivesSection = _field(allowed="an ObjectivesSection")
    evaluation: EvaluationSection = _field(
        allowed="an EvaluationSection", default_factory=EvaluationSection
    )
    search: SearchSection = _field(allowed="a SearchSection", default_factory=SearchSection)
    tracking: TrackingSection = _field(allowed="a TrackingSection", default_factory=TrackingSection)
    #: ``backbone.pretrained``: how the backbone's weights start (not part of the architecture).
    pretrained: StrictBool | StrictStr = _field(False, allowed="true, false or a weights file")

    @model_validator(mode="after")
    def _sections_agree(self) -> StudyConfig:
        n_objectives = len(self.objectives.names)
        if n_objectives > 1 and self.pruning.pruner in ("median", "percentile", "asha"):
            raise ValueError(
                f"pruning.pruner={self.pruning.pruner!r} is one of Optuna's single-objective "
                f"pruners, but the study has {n_objectives} objectives; use 'pareto' or 'moasha' "
                "(or drop objectives.minimize)"
            )
        if self.search.strategy == "supernet" and set(self.space.blocks) <= {"none"}:
            raise ValueError(
                "search.strategy='supernet' needs at least one attention block in space.blocks "
                "(a supernet of 'none' alone has nothing to share); add blocks, or use "
                "strategy 'multi_trial'"
            )
        if self.training.validate == "last_epoch" and self.pruning.pruner != "none":
            raise ValueError(
                f"training.validate = 'last_epoch' leaves pruning.pruner = "
                f"{self.pruning.pruner!r} no accuracy to read before the last epoch; use 'auto' "
                "or 'every_epoch', or pruning.pruner = 'none'"
            )
        chosen = self.evaluation.baseline_blocks
        outside = [b for b in chosen or () if b not in self.space.blocks]
        if outside:
            raise ValueError(
                f"evaluation.baseline_blocks {outside} are not in space.blocks "
                f"{list(self.space.blocks)}; list blocks of the space, or omit it for all of them"
            )
        p = self.pruning
        if p.min_epochs == "auto":
            if p.pruner in ("pareto", "median", "percentile"):
                raise ValueError(
                    f'pruning.min_epochs = "auto" moves the first rung of moasha, noise and asha; '
                    f"pruner {p.pruner!r} starts after pruning.n_warmup_epochs: set that, or "
                    "choose one of those pruners"
                )
            if not first_rung_candidates(p.pruner, p.reduction_factor, self.training.epochs):
                raise ValueError(
                    f'pruning.min_epochs = "auto" finds no epoch for a first rung in '
                    f"training.epochs = {self.training.epochs} (with reduction_factor "
                    f"{p.reduction_factor}); raise training.epochs or lower reduction_factor"
                )
        elif p.pruner in ("moasha", "noise") and not asha_rungs(
            p.min_epochs, p.reduction_factor, self.training.epochs
        ):
            raise ValueError(
                f"pruning.min_epochs x pruning.reduction_factor ({p.min_epochs} x "
                f"{p.reduction_factor}) must be <= training.epochs ({self.training.epochs}): a "
                "trial promoted from the first rung needs reduction_factor times its epochs; "
                "lower pruning.min_epochs or pruning.reduction_factor, or raise training.epochs"
            )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyConfig:
        """From TOML tables or a stored :meth:`to_dict`; errors name ``section.field``."""
        try:
            file = _FILE.validate_python(data)
        except ValidationError as exc:
            raise ConfigError(_message(exc, _StudyFile, "")) from None
        sections = {
            "study": file.study,
            "data": file.data,
            "space": file.search_space(),
            "training": file.training,
            "pruning": file.pruning,
            "objectives": file.objectives,
            "evaluation": file.evaluation,
            "search": file.search,
            "tracking": file.tracking,
            "pretrained": file.backbone.pretrained,
        }
        return _build(cls, sections, "")

    @classmethod
    def load(cls, path: str | Path) -> StudyConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"study config {path} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"{path} is not a text file (not UTF-8); a study config is TOML text, e.g. "
                "studies/quickstart.toml"
            ) from None
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
            "backbone": {"pretrained": self.pretrained},
            "evaluation": asdict(self.evaluation),
            "search": asdict(self.search),
            "tracking": asdict(self.tracking),
        }
        # Paths become strings and tuples lists, exactly as they come back from the storage.
        return json.loads(json.dumps(data, default=str))


def supernet_epochs(cfg: StudyConfig) -> int:
    """Epochs the supernet of ``cfg`` trains: ``search.supernet_epochs``, else
    ``training.epochs``."""
    return cfg.search.supernet_epochs or cfg.training.epochs


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a study TOML file, for editors (``nas schema``)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_FILE.json_schema()}
