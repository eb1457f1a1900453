"""Study configuration: one TOML file describes a whole search.

Sections: ``[study]`` (name, storage, sampler, seed, budget), ``[data]``, ``[backbone]``,
``[space]``, ``[training]``, ``[pruning]``, ``[objectives]``, ``[evaluation]`` (seeding and
baselines), ``[search]`` (multi-trial or a weight-sharing supernet), ``[tracking]`` (experiment
trackers). Each section is a pydantic dataclass (types, bounds, unknown keys, cross-field checks);
:class:`SearchSpace` checks the meaning of ``[space]``. Every error is one line naming the field
(``data.batch_size``, or ``DataConfig.batch_size`` when a class is built directly) and the values
it allows, so a typo never silently falls back to a default. :func:`json_schema` describes the
TOML file for editors.

Only pydantic and the search space are imported here (no Lightning): loading a config stays light.

Modules: :mod:`.sections` (one dataclass per section), :mod:`.training` (``[training]``),
:mod:`.tracking` (``[tracking]``),
:mod:`.study` (the whole file: loading, storing, schema), :mod:`._validation` (what turns
pydantic's errors into those one-line messages).
"""

from ._validation import ConfigError
from .rung_epochs import asha_rungs, first_rung_candidates
from .sections import (
    AUGMENTATIONS,
    COSTS,
    DATASETS,
    EVALUATION_BEFORE_0_2,
    LOADERS,
    METRICS,
    PATH_SAMPLINGS,
    PRUNERS,
    SAMPLERS,
    SEEDINGS,
    STRATEGIES,
    BackboneSection,
    DataConfig,
    EvaluationSection,
    ObjectivesSection,
    PruningSection,
    SearchSection,
    SpaceSection,
    StudySection,
    default_cache_dir,
)
from .study import StudyConfig, json_schema, supernet_epochs
from .tracking import TRACKERS, WANDB_MODES, TrackingSection
from .training import OPTIMIZERS, PRECISIONS, SCHEDULES, TrainingConfig

__all__ = [
    "AUGMENTATIONS",
    "COSTS",
    "DATASETS",
    "EVALUATION_BEFORE_0_2",
    "LOADERS",
    "METRICS",
    "OPTIMIZERS",
    "PATH_SAMPLINGS",
    "PRECISIONS",
    "PRUNERS",
    "SAMPLERS",
    "SCHEDULES",
    "SEEDINGS",
    "STRATEGIES",
    "TRACKERS",
    "WANDB_MODES",
    "BackboneSection",
    "ConfigError",
    "DataConfig",
    "EvaluationSection",
    "ObjectivesSection",
    "PruningSection",
    "SearchSection",
    "SpaceSection",
    "StudyConfig",
    "StudySection",
    "TrackingSection",
    "TrainingConfig",
    "asha_rungs",
    "default_cache_dir",
    "first_rung_candidates",
    "json_schema",
    "supernet_epochs",
]
