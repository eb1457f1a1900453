"""The sections of a study file, one pydantic dataclass each: ``[study]``, ``[data]``,
``[training]``, ``[pruning]``, ``[objectives]``, ``[evaluation]``, ``[search]``, ``[backbone]``,
``[space]``, with their allowed values, bounds and cross-field checks."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    Field,
    Strict,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from search_spaces.ort_latency import INSTALL_LINE, missing_requirements
from search_spaces.space import GRANULARITIES, SearchSpace
from search_spaces.spec import POSITIONS

from ._validation import (
    _CONFIG,
    _distinct,
    _field,
    _Int,
    _invalid,
    _Number,
    _one_line_errors,
    _one_of,
    _PositiveNumber,
)

_Sampler = Literal["nsga2", "tpe", "gp", "random", "additive"]
_Pruner = Literal["pareto", "moasha", "noise", "median", "percentile", "asha", "none"]
#: Cost names an objective may minimise (keys of ``search_spaces.cost.ModelCost.to_dict``).
_Cost = Literal[
    "flops",
    "params",
    "latency_ms_b1",
    "latency_ms_bN",
    "activation_bytes",
    "ort_latency_ms_b1",
    "ort_latency_ms_bN",
]
_Metric = Literal["val_acc"]
_Dataset = Literal["digits", "cifar10", "cifar100", "mnist", "fashionmnist", "svhn", "imagefolder"]
_Augmentation = Literal["none", "flip_crop"]
_Loader = Literal["auto", "memory", "stream"]
_Seeding = Literal["common", "per_trial"]
_Strategy = Literal["multi_trial", "supernet"]
_PathSampling = Literal["uniform", "fair"]
_FirstRung = Annotated[int, Strict(), Field(ge=1)] | Literal["auto"]

SAMPLERS: tuple[str, ...] = get_args(_Sampler)
PRUNERS: tuple[str, ...] = get_args(_Pruner)
COSTS: tuple[str, ...] = get_args(_Cost)
METRICS: tuple[str, ...] = get_args(_Metric)
DATASETS: tuple[str, ...] = get_args(_Dataset)
AUGMENTATIONS: tuple[str, ...] = get_args(_Augmentation)
LOADERS: tuple[str, ...] = get_args(_Loader)
SEEDINGS: tuple[str, ...] = get_args(_Seeding)
STRATEGIES: tuple[str, ...] = get_args(_Strategy)
PATH_SAMPLINGS: tuple[str, ...] = get_args(_PathSampling)


def default_cache_dir() -> Path:
    """``~/.cache/attention-nas``: extracted archives, decoded tensors, torchvision downloads."""
    return Path.home() / ".cache" / "attention-nas"


# -- validation machinery ----------------------------------------------------------------------


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class StudySection:
    """``[study]``: name, storage, sampler and budget of the search."""

    name: StrictStr = _field(
        "attention-nas",
        allowed="a folder name: 1-100 characters, no '/', '\\\\' or NUL, not '.' or '..'",
        doc="Study name (also its folder under runs_dir).",
        pattern=r"^[^/\\\x00]{1,100}$",
    )
    storage: StrictStr = _field(
        "",
        allowed="an Optuna storage URL, or '' for a journal file",
        doc="Optuna storage URL; empty = a journal file under runs_dir/<name>/ (safe for several "
        "local processes).",
    )
    runs_dir: StrictStr = _field(
        "studies/runs", allowed="a folder path", doc="Folder of journals, checkpoints and reports."
    )
    sampler: _Sampler = _field(
        "additive",
        allowed=_one_of(SAMPLERS),
        doc="Sampler (default additive: on the CIFAR-10 table it beat random search, NSGA-II and "
        "TPE at 10-100 trials, benchmarks/results/strategies_cifar10.md).",
    )
    seed: _Int = _field(
        0,
        allowed=f"an int in [0, {2**32 - 1}]",
        doc="Seeds the sampler (seed + worker) and the trials' training (evaluation.seeding).",
        ge=0,
        le=2**32 - 1,
    )
    n_trials: _Int = _field(20, allowed="an int >= 1", doc="Trials to finish.", ge=1)
    timeout_s: _Number = _field(
        0.0,
        allowed="a number of seconds >= 0 (0 = no limit)",
        doc="Seconds after which no new trial starts (0 = no limit).",
        ge=0,
    )
    population_size: _Int = _field(
        8,
        allowed="an int >= 2",
        doc="NSGA-II population size / TPE and GP start-up trials.",
        ge=2,
    )
    heartbeat_interval_s: _Int = _field(
        30,
        allowed="an int >= 1 (seconds)",
        doc="Database storages: a running trial records a heartbeat this often.",
        ge=1,
    )
    grace_period_s: _Int = _field(
        120,
        allowed="an int of seconds greater than heartbeat_interval_s",
        doc="Database storages: a trial silent this long is failed by the next worker and "
        "re-queued (local journal files check the worker's pid instead).",
        ge=2,
    )
    max_retry: _Int = _field(
        1,
        allowed="an int >= 0",
        doc="Times a trial failed for a missing heartbeat is re-queued.",
        ge=0,
    )

    artifacts: StrictStr = _field(
        "",
        allowed="a folder path or an s3://bucket/prefix URL, or '' for runs_dir/<name>/artifacts",
        doc="Artifact store of the trials' weights (optuna.artifacts): a folder every worker "
        "reaches, or s3://bucket/prefix.",
    )
    artifacts_endpoint: StrictStr = _field(
        "",
        allowed="an http(s) URL, or '' for AWS (or the AWS_ENDPOINT_URL variable)",
        doc="S3-compatible endpoint of an s3:// artifact store (MinIO, Ceph).",
    )
    max_store_failures: _Int = _field(
        2,
        allowed="an int >= 1",
        doc="Trials in a row that trained but could not store their weights (a broken artifact "
        "store) before a worker stops instead of training more; they are queued again.",
        ge=1,
    )
    db_retry_s: _Number = _field(
        60.0,
        allowed="a number of seconds >= 0 (0 = stop at the first refused call)",
        doc="Database storages: how long a worker tries a call again while the database cannot "
        "be reached (a restart, a network blip) before it stops with one line.",
        ge=0,
    )

    @model_validator(mode="after")
    def _name_is_a_folder(self) -> StudySection:
        if self.name in (".", ".."):
            raise _invalid(
                "name",
                f"must be a folder name, not {self.name!r} (the study's files would land outside "
                "runs_dir); choose e.g. 'my-study'",
            )
        return self

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> StudySection:
        if self.grace_period_s <= self.heartbeat_interval_s:
            raise _invalid(
                "grace_period_s",
                f"must be an int of seconds greater than heartbeat_interval_s "
                f"({self.heartbeat_interval_s}), got {self.grace_period_s!r}",
            )
        return self

    def storage_url(self) -> str:
        return self.storage or str(Path(self.runs_dir) / self.name / "journal.log")

    def artifacts_url(self) -> str:
        """Where trial weights are stored: ``artifacts``, else a folder beside the journal."""
        return self.artifacts or str(Path(self.runs_dir) / self.name / "artifacts")


@_one_line_errors
@dataclass(config=_CONFIG)
class DataConfig:
    """What to load and how to split, augment and batch it (validated on construction).

    ``root`` is the download/cache folder for torchvision datasets (default
    ``<cache_dir>/torchvision``) and, for ``imagefolder``, either a folder with ``train/`` (and
    optionally ``test/``) in ImageFolder layout (at least two classes; symlinks followed only out of
    the folder, see ``nas.data.folders``) or a ``.tar.gz`` archive of that layout, extracted
    once to ``<cache_dir>/<archive stem>-<sha256[:12]>``. ``per_class`` and ``val_per_class`` keep
    at most that many images of each class (a deterministic subset drawn from ``split_seed``);
    ``test_per_class`` cuts the test split the same way, from a fixed seed.
    ``augment="flip_crop"`` is the dataset's standard policy (see ``nas.data.augment_policy``).
    """

    name: _Dataset = _field("digits", allowed=_one_of(DATASETS), doc="Dataset.")
    root: Path | None = _field(
        None,
        allowed="a path (a folder or .tar.gz archive for imagefolder)",
        doc="Download folder of torchvision datasets; the image folder or archive of imagefolder.",
    )
    download: StrictBool = _field(
        False, allowed="true or false", doc="Download torchvision datasets that are missing."
    )
    val_fraction: _Number = _field(
        0.1,
        allowed="a number strictly between 0 and 1",
        doc="Stratified share of the training pool held out for validation.",
        gt=0,
        lt=1,
    )
    split_seed: _Int = _field(0, allowed="an int >= 0", doc="Seed of the val split.", ge=0)
    per_class: Annotated[_Int, Field(ge=1)] | None = _field(
        None, allowed="an int >= 1 or absent", doc="Training images kept per class."
    )
    val_per_class: Annotated[_Int, Field(ge=1)] | None = _field(
        None, allowed="an int >= 1 or absent", doc="Validation images kept per class."
    )
    test_per_class: Annotated[_Int, Field(ge=1)] | None = _field(
        None,
        allowed="an int >= 1 or absent",
        doc="Test images kept per class (a fixed subset, independent of split_seed).",
    )
    batch_size: _Int = _field(128, allowed="an int >= 1", doc="Training batch size.", ge=1)
    eval_batch_size: Annotated[_Int, Field(ge=1)] | None = _field(
        None,
        allowed="an int >= 1 or absent",
        doc="Evaluation batch size (default: 4 x batch_size).",
    )
    augment: _Augmentation = _field(
        "none", allowed=_one_of(AUGMENTATIONS), doc="Training augmentation."
    )
    image_size: (
        Annotated[_Int, Field(ge=1)]
        | tuple[Annotated[_Int, Field(ge=1)], Annotated[_Int, Field(ge=1)]]
        | None
    ) = _field(
        None,
        allowed="an int or [height, width] of ints >= 1 (imagefolder only)",
        doc="imagefolder: resize every image to this size.",
    )
    normalize: StrictBool = _field(
        True, allowed="true or false", doc="Normalise with the dataset's channel statistics."
    )
    cache_dir: Path | None = _field(
        None,
        allowed="a path",
        doc="Extracted archives, decoded tensors and downloads (default ~/.cache/attention-nas).",
        validate_default=True,
    )
    loader: _Loader = _field(
        "auto",
        allowed=_one_of(LOADERS),
        doc="memory: decode once into tensors; stream: decode from disk in DataLoader workers "
        "(image folders too large for memory); auto: memory where it fits.",
    )
    num_workers: _Int = _field(
        2, allowed="an int >= 0", doc="Decoding worker processes of the stream loader.", ge=0
    )

    @field_validator("root")
    @classmethod
    def _expand_root(cls, root: Path | None) -> Path | None:
        return None if root is None else root.expanduser()

    @field_validator("cache_dir")
    @classmethod
    def _expand_cache_dir(cls, cache_dir: Path | None) -> Path:
        return default_cache_dir() if cache_dir is None else cache_dir.expanduser()

    @field_validator("image_size")
    @classmethod
    def _square(cls, size: int | tuple[int, int] | None) -> tuple[int, int] | None:
        return (size, size) if isinstance(size, int) else size

    @model_validator(mode="after")
    def _imagefolder_settings(self) -> DataConfig:
        if self.name == "imagefolder" and self.root is None:
            raise _invalid(
                "root",
                "is required for name='imagefolder': pass a folder with train/ (and test/) "
                "subfolders or a .tar.gz archive of that layout",
            )
        if self.image_size is not None and self.name != "imagefolder":
            raise _invalid(
                "image_size",
                f"only applies to name='imagefolder' (got name={self.name!r}); leave it unset",
            )
        return self


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class PruningSection:
    """Early stopping. ``pareto``, ``moasha`` and ``noise`` (ASHA's rungs, stopping only beyond
    the measurement's noise at rungs that rank, ``nas.noise_pruner``) work for any number of
    objectives; ``median``,
    ``percentile`` and ``asha`` are Optuna's own pruners (single-objective studies only)."""

    pruner: _Pruner = _field(
        "none",
        allowed=_one_of(PRUNERS),
        doc="Pruner (default none: on the digits table no pruner kept random search's front "
        "at 48 trials, benchmarks/results/strategies_digits_quickstart.md).",
    )
    percentile: _Number = _field(
        50.0, allowed="a number in (0, 100)", doc="percentile pruner: the cut.", gt=0, lt=100
    )
    n_startup_trials: _Int = _field(
        4, allowed="an int >= 0", doc="Trials finished before any is pruned.", ge=0
    )
    n_warmup_epochs: _Int = _field(
        1, allowed="an int >= 0", doc="Epochs of a trial before it can be pruned.", ge=0
    )
    min_epochs: _FirstRung = _field(
        1,
        allowed='an int >= 1, or "auto"',
        doc="moasha, noise: epochs of the first rung; asha: Optuna's min_resource (0-based "
        'steps), so its first rung decides after min_epochs + 1 epochs. "auto": no pruning '
        "until the study's completed trials show an epoch that ranks them better than chance, "
        "then the first rung there (nas.rungs.AutoRungPruner).",
    )
    reduction_factor: _Int = _field(
        3, allowed="an int >= 2", doc="asha, moasha, noise: factor between rungs.", ge=2
    )
    auto_min_rho: _Number = _field(
        0.5,
        allowed="a number in [0, 1)",
        doc='min_epochs = "auto": the lower end of the Spearman interval an epoch must reach to '
        "hold the first rung (0: better than chance; 0.5 kept the front on both tables, "
        "benchmarks/results/pruning_*.md).",
        ge=0,
        lt=1,
    )


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class ObjectivesSection:
    """``maximize`` a validation metric and ``minimize`` zero or more costs.

    ``constraints`` caps costs (``{params = 1e6}``): with no cost to minimise this is a
    single-objective study with constraints (Optuna's ``constraints_func``). ``latency_ms_*``
    time PyTorch eager, ``ort_latency_ms_*`` ONNX Runtime on the CPU (one thread,
    ``search_spaces.ort_latency``; needs the ``export`` extra, checked here).
    """

    maximize: _Metric = _field("val_acc", allowed=_one_of(METRICS), doc="Metric to maximise.")
    minimize: Annotated[tuple[_Cost, ...], AfterValidator(_distinct)] = _field(
        ("flops",),
        allowed=f"a list of distinct costs from {list(COSTS)}",
        doc="Costs to minimise, in objective order.",
    )
    constraints: dict[
        Annotated[_Cost, Field(json_schema_extra={"allowed": f"costs from {list(COSTS)}"})],
        Annotated[_PositiveNumber, Field(json_schema_extra={"allowed": "a number > 0"})],
    ] = _field(
        allowed=f"a table of caps on costs from {list(COSTS)}, e.g. {{params = 1e6}}",
        doc="Caps on costs; a trial above one is infeasible.",
        default_factory=dict,
    )
    latency_batch: _Int = _field(
        32,
        allowed="an int >= 1",
        doc="Input batch size of latency_ms_bN and ort_latency_ms_bN.",
        ge=1,
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

    @property
    def needs_ort_latency(self) -> bool:
        """Whether a minimised or capped cost is ONNX Runtime latency."""
        used = set(self.minimize) | set(self.constraints)
        return bool(used & {"ort_latency_ms_b1", "ort_latency_ms_bN"})

    @model_validator(mode="after")
    def _ort_installed(self) -> ObjectivesSection:
        """ONNX Runtime latency needs onnx and onnxruntime: refuse it now, not in a trial."""
        missing = missing_requirements()
        for name, used in (("minimize", self.minimize), ("constraints", self.constraints)):
            ort = sorted(c for c in used if c.startswith("ort_latency"))
            if ort and missing:
                raise _invalid(
                    name,
                    f"asks for {', '.join(ort)}, ONNX Runtime latency, which needs "
                    f"{' and '.join(missing)} (not installed); install them: {INSTALL_LINE}",
                )
        return self


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class EvaluationSection:
    """``[evaluation]``: how trials are seeded and which hand-made references a study runs.

    ``seeding = "common"`` (common random numbers): every trial starts from the same backbone
    weights and sees the same batches and augmentation draws (seed ``study.seed``; each attention
    block draws its weights from a stream of its own site), so two architectures differ by their
    architecture, not by their luck. ``"per_trial"``: trial ``n`` is seeded ``study.seed + n``
    (the data order stays ``study.seed``), as before this section existed.

    ``baselines``: the first trials of a new study are ``none`` and each block of the space placed
    at every searched site with its default parameters (``baseline_blocks``, default every block
    of the space; at most ``max_baselines`` of them, ``none`` first).
    """

    seeding: _Seeding = _field(
        "common", allowed=_one_of(SEEDINGS), doc="common random numbers, or a seed per trial."
    )
    baselines: StrictBool = _field(
        True, allowed="true or false", doc="Enqueue hand-made baselines as the first trials."
    )
    baseline_blocks: tuple[StrictStr, ...] | None = _field(
        None,
        allowed="a list of blocks of space.blocks, or omitted for all of them",
        doc="Blocks placed everywhere as baselines (none is always one).",
    )
    max_baselines: _Int = _field(
        8, allowed="an int >= 1", doc="Most baselines enqueued (none included).", ge=1
    )


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class SearchSection:
    """``[search]``: how candidates are evaluated.

    ``strategy = "multi_trial"`` trains every trial's architecture from scratch (pruned by
    ``[pruning]``). ``"supernet"`` trains one weight-sharing supernet of the whole space first
    (``supernet_epochs`` epochs of ``[training]``, one path per step drawn by ``sampling``), then
    evaluates each trial's architecture with the inherited weights after re-estimating its
    BatchNorm statistics on ``calibration_batches`` training batches (``[pruning]`` is unused).
    """

    strategy: _Strategy = _field(
        "multi_trial",
        allowed=_one_of(STRATEGIES),
        doc="Train every candidate (multi_trial) or share one supernet's weights (supernet).",
    )
    supernet_epochs: _Int | None = _field(
        None,
        allowed="an int >= 1, or omitted for training.epochs",
        doc="Epochs of supernet training (default training.epochs: on the CIFAR-10 table 4x as "
        "many ranked no better, 8x worse; benchmarks/results/supernet_cifar10.md).",
        ge=1,
    )
    sampling: _PathSampling = _field(
        "uniform",
        allowed=_one_of(PATH_SAMPLINGS),
        doc="Path per step: uniform over the space (SPOS), or fair (each candidate equally often).",
    )
    calibration_batches: _Int = _field(
        8,
        allowed="an int >= 1",
        doc="Training batches that re-estimate a sub-network's BatchNorm statistics.",
        ge=1,
    )
    max_supernet_mb: _Int = _field(
        0,
        allowed="an int >= 0 (0 = half the memory of the device)",
        doc="Largest supernet to train (weights, optimiser state, gradients), in MB.",
        ge=0,
    )


#: ``[evaluation]`` of a study stored before the section existed: how its trials were run.
EVALUATION_BEFORE_0_2 = {"seeding": "per_trial", "baselines": False}


_SPACE_DEFAULTS = {
    f.name: f.default if f.default is not MISSING else f.default_factory()
    for f in fields(SearchSpace)
}


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class BackboneSection:
    """``[backbone]``: the network attention is inserted into (``space.backbone`` and
    ``space.backbone_args`` for short)."""

    name: StrictStr | None = _field(
        None,
        allowed="a backbone name",
        doc=f"Backbone (default {_SPACE_DEFAULTS['backbone']!r}).",
    )
    args: dict[StrictStr, Any] | None = _field(
        None, allowed="a table of backbone arguments", doc="Backbone arguments, e.g. {width = 16}."
    )
    pretrained: StrictBool | StrictStr = _field(
        False,
        allowed="true, false, or the path of a weights file",
        doc="Start from pretrained weights: true for the backbone's published ones (timm / "
        "torchvision, downloaded or cached), or a local state-dict file.",
    )


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class SpaceSection:
    """``[space]``: which attention blocks may go where. Types here; :class:`SearchSpace` checks
    the meaning (known blocks, stages the backbone has, values each block accepts)."""

    backbone: StrictStr | None = _field(
        None, allowed="a backbone name", doc="Same as backbone.name (set one of them)."
    )
    backbone_args: dict[StrictStr, Any] | None = _field(
        None, allowed="a table of backbone arguments", doc="Same as backbone.args."
    )
    blocks: tuple[StrictStr, ...] = _field(
        _SPACE_DEFAULTS["blocks"],
        allowed="a list of block names (`nas blocks` lists them)",
        doc="Block types to choose from ('none' = no attention).",
    )
    reductions: tuple[_Int, ...] = _field(
        _SPACE_DEFAULTS["reductions"],
        allowed="a list of ints",
        doc="Reduction ratios to try (blocks with a reduction).",
    )
    eca_kernels: tuple[_Int | StrictStr, ...] = _field(
        _SPACE_DEFAULTS["eca_kernels"],
        allowed="a list of ECA kernel sizes (ints) or 'adaptive'",
        doc="ECA kernel sizes to try.",
    )
    granularity: Literal[GRANULARITIES] = _field(  # type: ignore[valid-type]
        _SPACE_DEFAULTS["granularity"],
        allowed=_one_of(GRANULARITIES),
        doc="One choice for the network, per stage or per residual block.",
    )
    stages: tuple[_Int, ...] | None = _field(
        _SPACE_DEFAULTS["stages"],
        allowed="a list of stage numbers or absent",
        doc="Stages (from 1) that may receive attention; absent = all from from_stage on.",
    )
    from_stage: _Int = _field(
        _SPACE_DEFAULTS["from_stage"],
        allowed="an int (a stage number from 1)",
        doc="First stage that may receive attention.",
    )
    positions: tuple[Literal[POSITIONS], ...] = _field(  # type: ignore[valid-type]
        _SPACE_DEFAULTS["positions"],
        allowed=f"a list of positions from {list(POSITIONS)}",
        doc="Positions of a block inside a residual block.",
    )
    block_params: dict[
        StrictStr,
        dict[
            StrictStr,
            Annotated[
                tuple[Any, ...], Field(json_schema_extra={"allowed": "a list of values to try"})
            ],
        ],
    ] = _field(
        allowed="a table of block -> {parameter = [values]}",
        doc="Extra searched block parameters, e.g. {encoding = {codewords = [8, 16, 32]}}.",
        default_factory=dict,
    )
