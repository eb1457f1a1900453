"""Tabular benchmarks: every architecture of a space x seeds, trained once, kept in one file.

A search strategy is judged by replaying it many times against ground truth (NAS-Bench-201:
every cell trained once, every strategy replayed hundreds of times on the table). A table is
built with the engine itself: ``nas table build CONFIG --seeds S`` creates a *table study*
whose trials are planned up front, one per (seed repeat r, architecture i) of
:func:`search_spaces.space.architecture_params` (user attrs ``replicate`` r and ``table_arch``
i), repeat by repeat. Like a confirm study it resumes after a kill and takes more workers
(``nas worker --study NAME``); each run trains its full epochs with the r-th planned seed
(weights, batch order, augmentation), stores its validation curve, test accuracy, costs and
seconds, and keeps no weights. ``nas table export`` writes the finished runs to one JSON file
(:data:`FORMAT`, version :data:`VERSION`; schema in :func:`export_table`), which
:func:`load_table` reads back as a :class:`Table`; :func:`rebuild_run` trains one (architecture,
seed) again through the same engine, to check that a stored curve is reproducible.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from search_spaces.space import SearchSpace, architecture_params

from . import trial_schema as schema
from .config import StudyConfig
from .storage import machine_lock, redact
from .study import (
    changed_fields,
    config_changes,
    load_or_create_study,
    open_study_storage,
    planned_runs_config,
    stored_as_this_release,
)

#: ``format`` of a table file.
FORMAT = "attention-nas/table"
#: ``version`` of the table files this release writes and reads.
VERSION = 1
#: Decimals kept of accuracies and losses (accuracies are k / n: exact for n <= 10**6).
DECIMALS = 6
#: Settings that say where the data lies on one machine, not what a run trains on.
MACHINE_SETTINGS = ("data.root", "data.cache_dir", "data.download", "data.num_workers")


def table_seeds(study_seed: int, seeds: int) -> list[int]:
    """``seeds`` seeds of a table's repeats, from ``(study_seed, repeat)`` by NumPy's
    SeedSequence (apart from the search's and the confirm studies' seeds)."""
    return [
        int(np.random.SeedSequence((study_seed, 0x7AB1E, r)).generate_state(1)[0] >> 1)
        for r in range(seeds)
    ]


def planned_indices(space: SearchSpace, sample: int | None, seed: int) -> list[int]:
    """Indices of the architectures a table trains: all, or ``sample`` of them drawn without
    replacement from ``seed`` (a pilot), in increasing order."""
    size = space.size()
    if sample is None or sample >= size:
        return list(range(size))
    rng = np.random.default_rng((seed, 0x5A391E))
    return sorted(int(i) for i in rng.choice(size, sample, replace=False))


def table_config(cfg: StudyConfig, runs: int) -> StudyConfig:
    """``cfg`` as a table study runs it: one trial per planned run (``planned_runs_config``)."""
    return planned_runs_config(cfg, dataclasses.replace(cfg.study, n_trials=runs, sampler="random"))


def prepare_table(
    cfg: StudyConfig, seeds: int, *, storage: str | None = None, sample: int | None = None
) -> tuple[optuna.Study, StudyConfig]:
    """Create (or resume) the table study of ``cfg`` with every run queued; returns it and the
    config it runs under. A bad ``seeds`` or ``sample``, or a study of that name planned with
    other settings, is a ValueError naming the fix, and nothing is written."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be an int >= 1 (repeats per architecture), got {seeds!r}")
    if sample is not None and (
        isinstance(sample, bool) or not isinstance(sample, int) or sample < 2
    ):
        raise ValueError(f"--sample must be an int >= 2 (architectures of a pilot), got {sample!r}")
    if cfg.training.validate == "last_epoch":
        raise ValueError(
            "training.validate = 'last_epoch': a table keeps every epoch's accuracy (pruners are "
            "replayed on its curves); use 'auto' or 'every_epoch'"
        )
    indices = planned_indices(cfg.space, sample, cfg.study.seed)
    plan = {
        "seeds": table_seeds(cfg.study.seed, seeds),
        "architectures": len(indices),
        "space_size": cfg.space.size(),
        "sample": sample if len(indices) < cfg.space.size() else None,
    }
    url = storage or cfg.study.storage_url()
    run_cfg = table_config(cfg, len(indices) * seeds)
    try:
        study = optuna.load_study(
            study_name=cfg.study.name, storage=open_study_storage(run_cfg, url)
        )
    except KeyError:
        study = None
    if study is not None:
        _check_resumable(study, plan, run_cfg, url)
    study = load_or_create_study(run_cfg, storage)
    with machine_lock(url, cfg.study.name):
        if schema.table_plan(study) is None:
            study.set_user_attr(schema.TABLE, plan)
        _enqueue_runs(study, cfg.space, indices, seeds)
    return study, run_cfg


def _check_resumable(study: optuna.Study, plan: dict[str, Any], cfg: StudyConfig, url: str) -> None:
    stored = schema.table_plan(study)
    if stored is None:
        raise ValueError(
            f"study {study.study_name!r} in {redact(url)} exists and is not a table study; give "
            "the table another study.name"
        )
    if (len(stored["seeds"]), stored.get("sample")) != (len(plan["seeds"]), plan["sample"]):
        raise ValueError(
            f"table study {study.study_name!r} was started with --seeds {len(stored['seeds'])}"
            + (f" --sample {stored['sample']}" if stored.get("sample") else "")
            + "; resume it with those (its finished runs are kept), or give another study.name"
        )
    changed = config_changes(cfg, schema.stored_config(study) or {}, study.study_name)
    if changed:
        raise ValueError(
            f"table study {study.study_name!r} was started with a different config (changed: "
            f"{', '.join(changed)}); restore the old values, or give another study.name"
        )


def _enqueue_runs(study: optuna.Study, space: SearchSpace, indices: list[int], seeds: int) -> None:
    """Queue every (repeat, architecture) run the study has no live trial for yet (a failed
    run whose re-queues are used up is queued again), repeat by repeat (so that a table stopped
    early holds whole seeds)."""
    present = {
        (schema.REPLICATE.get(t), schema.TABLE_ARCH.get(t))
        for t in study.get_trials(deepcopy=False)
        if schema.TABLE_ARCH.has(t) and t.state != TrialState.FAIL
    }
    params = architecture_params(space)
    for replicate in range(seeds):
        for index in indices:
            if (replicate, index) not in present:
                study.enqueue_trial(
                    params[index],
                    user_attrs={schema.REPLICATE.key: replicate, schema.TABLE_ARCH.key: index},
                )


# -- the file -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableRun:
    """One training run of one architecture with one seed."""

    replicate: int
    seed: int
    val_acc: tuple[float, ...]  #: validation accuracy after each epoch (the curve)
    val_loss: tuple[float, ...]
    test_acc: float
    train_seconds: float
    cpu_seconds: float
    threads: int | None = None  #: torch threads it trained with (None: not recorded)

    @property
    def final_val_acc(self) -> float:
        return self.val_acc[-1]


@dataclass(frozen=True)
class TableArch:
    """One architecture of a table: its trial parameters, costs and runs (by repeat)."""

    index: int
    digest: str
    summary: str
    params: dict[str, Any]
    cost: dict[str, float | None]
    runs: tuple[TableRun, ...]

    def mean_val_acc(self) -> float:
        """The architecture's true validation accuracy as far as the table knows: the mean of
        its runs' final values."""
        return float(np.mean([r.final_val_acc for r in self.runs]))

    def mean_test_acc(self) -> float:
        return float(np.mean([r.test_acc for r in self.runs]))


@dataclass(frozen=True)
class Table:
    """A loaded table file (:func:`load_table`)."""

    name: str
    config: StudyConfig
    seeds: tuple[int, ...]
    space_size: int
    in_channels: int
    num_classes: int
    val_size: int | None
    architectures: tuple[TableArch, ...]
    built: dict[str, Any]

    @property
    def space(self) -> SearchSpace:
        return self.config.space

    @property
    def epochs(self) -> int:
        return self.config.training.epochs

    @property
    def objectives(self) -> list[str]:
        return self.config.objectives.names

    @property
    def directions(self) -> list[str]:
        return self.config.objectives.directions

    @property
    def complete(self) -> bool:
        """Every architecture of the space with every seed."""
        return len(self.architectures) == self.space_size and all(
            len(a.runs) == len(self.seeds) for a in self.architectures
        )

    def by_digest(self) -> dict[str, TableArch]:
        return {a.digest: a for a in self.architectures}

    def lookup(self, digest: str, summary: str = "") -> TableArch:
        """The architecture with this digest; a ValueError naming it where the table lacks it."""
        found = self.by_digest().get(digest)
        if found is None:
            what = f"{summary} ({digest})" if summary else digest
            raise ValueError(
                f"architecture {what} is not in table {self.name!r} ({len(self.architectures)} "
                f"of the space's {self.space_size} architectures); build the rest with `nas "
                "table build`, or replay a space the table covers"
            )
        return found

    def objective_values(self, arch: TableArch, accuracy: float) -> list[float]:
        """The study's objective values of ``arch`` with ``accuracy`` as its first one."""
        return [float(accuracy)] + [float(arch.cost[name]) for name in self.objectives[1:]]

    def true_points(self) -> np.ndarray:
        """(mean validation accuracy, costs...) of every architecture, in table order."""
        return np.array(
            [self.objective_values(a, a.mean_val_acc()) for a in self.architectures], dtype=float
        )

    def check_matches(self, cfg: StudyConfig) -> None:
        """Refuse a study config whose runs the table does not hold: every setting that shapes a
        run (data, space, training, objectives) must be the table's; machine paths may differ."""
        changed = [
            f
            for f in changed_fields(self.config.to_dict(), cfg.to_dict())
            if f not in (*MACHINE_SETTINGS, "training.validate")  # the same weights either way
            and not f.startswith(("pruning.", "evaluation.", "search."))
        ]
        if changed:
            raise ValueError(
                f"table {self.name!r} was built with other settings (differ: {', '.join(changed)});"
                " replay it with the table's own config (Table.config), or build a table of yours"
            )


def _rounded(value: float) -> float:
    return round(float(value), DECIMALS)


def _run_of(trial: FrozenTrial, seeds: Sequence[int]) -> dict[str, Any]:
    history = schema.VAL_HISTORY.get(trial) or []
    replicate = int(schema.REPLICATE.get(trial))
    return {
        "replicate": replicate,
        "seed": int(seeds[replicate]),
        "val_acc": [_rounded(h["val_acc"]) for h in history],
        "val_loss": [_rounded(h["val_loss"]) for h in history],
        "test_acc": _rounded(schema.TEST_ACC.get(trial)),
        "train_seconds": round(float(schema.TRAIN_SECONDS.get(trial, math.nan)), 3),
        "cpu_seconds": round(float(schema.CPU_SECONDS.get(trial, math.nan)), 3),
        "threads": schema.TORCH_THREADS.get(trial),
    }


def table_data(study: optuna.Study) -> dict[str, Any]:
    """The finished runs of a table study as a table file's JSON data (:func:`export_table`)."""
    plan = schema.table_plan(study)
    stored = schema.stored_config(study)
    if plan is None or stored is None:
        raise ValueError(
            f"study {study.study_name!r} is not a table study (built by `nas table build`)"
        )
    seeds = plan["seeds"]
    by_index: dict[int, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    arch_dims: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not schema.TABLE_ARCH.has(t) or not schema.TEST_ACC.has(t):
            continue
        index = int(schema.TABLE_ARCH.get(t))
        entry = by_index.setdefault(
            index,
            {
                "index": index,
                "digest": schema.DIGEST.get(t),
                "summary": schema.SUMMARY.get(t),
                "params": dict(t.params),
                "cost": schema.cost(t),
                "runs": {},
            },
        )
        run = _run_of(t, seeds)
        entry["runs"].setdefault(run["replicate"], run)
        sizes.setdefault("val_size", schema.VAL_SIZE.get(t))
        arch = schema.ARCH.get(t) or {}
        arch_dims.setdefault("in_channels", arch.get("in_channels"))
        arch_dims.setdefault("num_classes", arch.get("num_classes"))
    architectures = []
    for index in sorted(by_index):
        entry = by_index[index]
        entry["runs"] = [entry["runs"][r] for r in sorted(entry["runs"])]
        architectures.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": study.study_name,
        "config": stored,
        "seeds": seeds,
        "space_size": plan["space_size"],
        "sample": plan.get("sample"),
        "in_channels": arch_dims.get("in_channels"),
        "num_classes": arch_dims.get("num_classes"),
        "val_size": sizes.get("val_size"),
        "built": {
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "runs": sum(len(a["runs"]) for a in architectures),
        },
        "architectures": architectures,
    }


def export_table(study: optuna.Study, path: str | Path) -> dict[str, Any]:
    """Write the study's finished runs as a table file (JSON, one architecture per line).

    Schema (version 1): ``format``, ``version``, ``name``; ``config``, the study config the runs
    trained under (``StudyConfig.to_dict()``); ``seeds``, the repeats' seeds; ``space_size``;
    ``sample`` (a pilot's architecture count, else null); ``in_channels``, ``num_classes``,
    ``val_size``; ``built`` (export time, torch and optuna versions, machine, runs); and
    ``architectures``, sorted by index, each ``{"index", "digest", "summary", "params" (trial
    parameters), "cost" (``nas.trial_schema`` costs), "runs": [{"replicate", "seed", "val_acc"
    (one per epoch), "val_loss", "test_acc", "train_seconds", "cpu_seconds", "threads" (torch
    threads, or null where not recorded)}]}``. Accuracies and
    losses are rounded to :data:`DECIMALS` decimals. The file is replaced atomically."""
    data = table_data(study)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {k: v for k, v in data.items() if k != "architectures"}
    lines = json.dumps(head, indent=1, sort_keys=True)[:-2]
    rows = ",\n".join(json.dumps(a, sort_keys=True) for a in data["architectures"])
    text = f'{lines},\n "architectures": [\n{rows}\n ]\n}}\n'
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    partial.replace(path)
    return data


def load_table(path: str | Path) -> Table:
    """Read a table file; a file of another format or version is refused with what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"table file {path} does not exist; export one with `nas table export`"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a table file (not JSON: {exc})") from None
    return table_from_data(data, str(path))


def table_from_data(data: dict[str, Any], where: str = "table") -> Table:
    """A :class:`Table` from a table file's JSON data (checked: format, version, fields)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{where} is not a table file (format is not {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ValueError(
            f"{where} is a version {data.get('version')!r} table; this release reads version "
            f"{VERSION}: export it again from its table study with this release (`nas table "
            "export`), or read it with the release that wrote it"
        )
    try:
        config = StudyConfig.from_dict(stored_as_this_release(data["config"]))
        archs = tuple(
            TableArch(
                index=int(a["index"]),
                digest=str(a["digest"]),
                summary=str(a["summary"]),
                params=dict(a["params"]),
                cost=dict(a["cost"]),
                runs=tuple(
                    TableRun(
                        replicate=int(r["replicate"]),
                        seed=int(r["seed"]),
                        val_acc=tuple(float(v) for v in r["val_acc"]),
                        val_loss=tuple(float(v) for v in r["val_loss"]),
                        test_acc=float(r["test_acc"]),
                        train_seconds=float(r["train_seconds"]),
                        cpu_seconds=float(r["cpu_seconds"]),
                        threads=r.get("threads"),
                    )
                    for r in a["runs"]
                ),
            )
            for a in data["architectures"]
        )
        return Table(
            name=str(data["name"]),
            config=config,
            seeds=tuple(int(s) for s in data["seeds"]),
            space_size=int(data["space_size"]),
            in_channels=int(data["in_channels"]),
            num_classes=int(data["num_classes"]),
            val_size=data.get("val_size"),
            architectures=archs,
            built=dict(data.get("built") or {}),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{where} is not a valid version {VERSION} table (missing {exc})"
        ) from None


# -- what a table says -----------------------------------------------------------------------------


def table_noise(table: Table, workers: int = 1) -> dict[str, float]:
    """How far the table resolves its architectures: one run's seed-to-seed sd (pooled within
    architectures), the spread (sd) of the architectures' seed means, their ratio (the pilot's
    criterion: at least 2), and the seconds one run takes (median, and the projected build of
    the whole space with the table's seeds by ``workers`` processes like the ones that built
    it)."""
    multi = [a for a in table.architectures if len(a.runs) >= 2]
    within = [np.var([r.final_val_acc for r in a.runs], ddof=1) for a in multi]
    dof = [len(a.runs) - 1 for a in multi]
    run_sd = float(np.sqrt(np.average(within, weights=dof))) if multi else math.nan
    means = [a.mean_val_acc() for a in table.architectures if a.runs]
    spread = float(np.std(means, ddof=1)) if len(means) >= 2 else math.nan
    seconds = [r.train_seconds for a in table.architectures for r in a.runs]
    median_s = float(np.median(seconds)) if seconds else math.nan
    return {
        "architectures": len(table.architectures),
        "runs": len(seconds),
        "run_sd": run_sd,
        "spread_of_means": spread,
        "ratio": spread / run_sd if run_sd and run_sd > 0 else math.nan,
        "median_run_seconds": median_s,
        "projected_build_hours": median_s * table.space_size * len(table.seeds) / workers / 3600,
    }


# -- checking a stored run -------------------------------------------------------------------------


def rebuild_run(
    table: Table,
    index: int,
    replicate: int,
    *,
    data_root: str | None = None,
    workdir: str | Path | None = None,
    threads: int | None = None,
) -> TableRun:
    """Train architecture ``index`` with the table's seed ``replicate`` again through the engine
    (a one-run table study in ``workdir``, a temporary folder by default) and return the run;
    on the CPU it reproduces the stored one exactly, with the torch threads the stored run had
    (the order of float sums, and so the result, depends on them). ``data_root`` replaces the
    table's ``data.root`` (the path of the machine that built it); ``threads`` gives the torch
    threads where the table did not record them."""
    arch = next((a for a in table.architectures if a.index == index), None)
    if arch is None:
        raise ValueError(f"table {table.name!r} has no architecture with index {index}")
    if not 0 <= replicate < len(table.seeds):
        raise ValueError(
            f"table {table.name!r} has seeds 0..{len(table.seeds) - 1}, not replicate {replicate}"
        )
    with tempfile.TemporaryDirectory(prefix="nas-table-") as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        # The builder's cache folder is a path of its machine: this machine's default instead.
        data = dataclasses.replace(table.config.data, cache_dir=None)
        if data_root is not None:
            data = dataclasses.replace(data, root=Path(data_root))
        cfg = dataclasses.replace(
            table.config,
            data=data,
            study=dataclasses.replace(
                table.config.study,
                name=f"rebuild-{index}-{replicate}",
                runs_dir=str(folder),
                storage="",
                artifacts="",
                n_trials=1,
            ),
        )
        from .worker import run_worker  # the worker imports this module's neighbours

        study = load_or_create_study(cfg)
        study.set_user_attr(
            schema.TABLE,
            {"seeds": list(table.seeds), "architectures": 1, "space_size": table.space_size},
        )
        study.enqueue_trial(
            arch.params,
            user_attrs={schema.REPLICATE.key: replicate, schema.TABLE_ARCH.key: index},
        )
        stored = next((r for r in arch.runs if r.replicate == replicate), None)
        wanted = threads or (stored.threads if stored is not None else None)
        before = torch.get_num_threads()
        if wanted:
            torch.set_num_threads(wanted)  # float sums differ between thread counts
        try:
            run_worker(cfg, progress=False)
        finally:
            torch.set_num_threads(before)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            reasons = [schema.FAIL_REASON.get(t) for t in study.get_trials(deepcopy=False)]
            raise RuntimeError(f"the rebuilt run did not complete: {reasons}")
        rebuilt = _run_of(done[0], table.seeds)
    return TableRun(
        **{
            **rebuilt,
            "val_acc": tuple(rebuilt["val_acc"]),
            "val_loss": tuple(rebuilt["val_loss"]),
        }
    )
