"""Search efficiency: hypervolume against epochs and wall clock for five strategies, with and
without pruning, on one fixed small problem.

Problem (fixed): the JPEG copy of CIFAR-10 (``cifar10-jpeg.tar.gz`` in ``$ATTN_NAS_DATA`` or
``../shared/data``, read with ``DataConfig(name="imagefolder")``), cut to ``--per-class`` training
and ``--val-per-class`` validation images per class (the split is drawn from ``split_seed=0`` and
never moves), a CIFAR ResNet-8 of width 16, ``--epochs`` epochs per trial (SGD, lr 0.1, cosine,
flip+crop), and the per-stage space :data:`SPACE` (blocks none/se/eca/gct/cbam/coord/simam,
reductions 4/8, ECA kernel 3, standard position: 10 choices per stage, 1,000 architectures).
Objectives: maximise ``val_acc``, minimise ``flops`` (deterministic, unlike latency).

Strategies (:data:`STRATEGIES`), each run for the same ``--trials`` trials per seed (pruned trials
count as trials; failed ones would not), sequentially in this one process with torch threads =
cores, seeds interleaved (seed 0: all strategies, then seed 1, ...). ``study.seed`` is the seed:
it seeds the sampler, every trial's training (``seed + trial number``) and the batch order.

1. ``random``: random search, no pruning;
2. ``nsga2``: NSGA-II, no pruning -- the baseline every ratio below refers to (same seed);
3. ``nsga2-pareto``: NSGA-II with the Pareto-aware percentile pruner (``pruner = "pareto"``);
4. ``nsga2-moasha``: NSGA-II with MO-ASHA (``pruner = "moasha"``);
5. ``tpe-pareto``: multi-objective TPE (``sampler = "tpe"``) with the ``pareto`` pruner.

Measures, per run (strategy x seed) and averaged over seeds:

* hypervolume (HV) of the front of COMPLETE trials (``nas.pareto.front_trials``; pruned trials'
  partial accuracies never count) after each finished trial, against the training epochs spent
  and against wall clock (``nas.report.hypervolume_history``: ``elapsed_s`` runs from the start
  of the first trial to the end of each trial, read from the trials' datetimes);
* one common reference point for every run, computed from the space, not from any run:
  ``val_acc`` worst 0 / ideal 1; ``flops`` worst ``F_max + 0.1 (F_max - F_min)`` and ideal
  ``F_min``, where ``F_min`` and ``F_max`` are the FLOPs of the cheapest and of the most expensive
  architecture of the space. They are exact: FLOPs add up over stages (each stage's block sees
  only its own stage's shapes), so :func:`flops_bounds` measures every choice at every stage
  alone, builds the per-stage argmin / argmax architectures and counts them directly (and
  records that the sum matches). The HV is normalised by the box between the reference and the
  ideal point. A margin relative to the range is used rather than ``1.1 x F_max`` because the
  blocks add at most ~2% FLOPs to the backbone: with ``1.1 x F_max`` about 5/6 of the flops
  axis lies beyond every architecture and the HV is mostly the best accuracy. The HV ratio under
  ``(0, 1.1 x F_max)`` is reported as well (``HV kept, 1.1 max ref``);
* epochs spent (``nas.trial_schema.epochs_spent``: a duplicate architecture that reuses a completed
  trial's result costs 0) and **epochs saved** ``= 1 - sum_seeds(epochs of the run) /
  sum_seeds(epochs of nsga2)``; **HV kept** ``= HV of the run / HV of nsga2`` after the same
  number of trials (both ran ``--trials``), per seed, then averaged over seeds; **HV kept at
  equal epochs**: the run's final HV over nsga2's HV when nsga2 had spent no more epochs than
  the run did in total;
* **front recovered**: with ``B`` the final front of nsga2 (same seed) and ``P`` the run's final
  front, both as distinct (val_acc, flops) points of COMPLETE trials (a duplicate trial repeats
  its original's point and is counted once), the share of points ``b`` of ``B``
  for which some ``p`` of ``P`` is no worse in every objective (``p.val_acc >= b.val_acc`` and
  ``p.flops <= b.flops``; equal points count): ``|{b in B : exists p in P, p weakly dominates
  b}| / |B|``. Training is seeded by trial number, so one architecture trained at two trial
  numbers reaches slightly different accuracies: a recovered point is one matched or beaten in
  value, not necessarily the same architecture;
* wall seconds and CPU seconds (``time.process_time`` of this process) per run, the 1-minute
  load average around each run (other processes on the machine slow wall clock, not epochs),
  the NSGA-II generation each run reached (Optuna's NSGA-II only closes a generation once it has
  ``population_size`` COMPLETE trials, so pruned trials keep it in the random first generation);
* **compared with random search (test over seeds)**: every other strategy's final HV minus random
  search's, paired by seed (each seed runs every strategy on the same split and batch order):
  mean, 95% Student-t interval and two-sided paired t-test (``nas.stats.paired_comparison``),
  p-values Holm-adjusted over the strategies compared (``nas.stats.holm_adjust``); a strategy
  differs from random where the adjusted p < 0.05, and one seed allows no test. The same test
  for HV kept against NSGA-II's 100%. Where no strategy differs from random search the verdict
  says the benchmark cannot tell the strategies apart at this size. ``--render`` computes both
  from the per-run data of any saved JSON, old ones included;
* the validation split's measurement noise: the binomial standard error ``sqrt(p (1 - p) / n)``
  (``nas.stats.binomial_se``) at the runs' mean final best val_acc on the ``n`` val images, and
  what it is on the HV scale (times the most accurate point's share of the FLOPs axis).

Targets (issue): a pruned strategy saves >= 40% of the training epochs and keeps >= 95% of the
unpruned HV at equal trial count. The pruners run with the engine's defaults unless flags say
otherwise: ``pareto`` percentile 50, n_startup_trials 4, n_warmup_epochs 1 (epochs are 0-based:
the first check is after the 2nd epoch), and the engine's fixed interval 1 / n_min_peers 3;
``moasha`` min_epochs 1, reduction_factor 3, max_epochs = the trial's epochs (ASHA's rungs: for
5 epochs one rung, after the first epoch).

Threads: ``--threads`` defaults to the number of cores. On a machine shared with other jobs use
``--threads 1``: with two torch threads on two cores that other processes also use, each step
waits for the slower thread, and a 5-epoch trial that takes ~5 s alone took 18-30 s under a load
of ~3 (8 s with one thread) in our measurements.

Commands (results go to ``benchmarks/results/search_efficiency.md``, ``.json`` and
``search_efficiency_hv_{epochs,wallclock,trials}.html`` beside it unless ``--out`` says otherwise;
``--out -`` prints only):

    # full variant (default): 5,000 train / 2,000 val images, 3 seeds x 24 trials x 5 strategies,
    # about 3.5 hours on 2 idle CPU cores (estimate, not run: ~8 s per epoch incl. validation
    # measured with 2 threads, ~1,500 epochs in all)
    .venv/bin/python benchmarks/search_efficiency.py
    # reduced variant: 800 / 400 images, 2 seeds x 12 trials; 12-13 minutes with --threads 1 on
    # 2 shared cores (benchmarks/results/search_efficiency.md)
    .venv/bin/python benchmarks/search_efficiency.py --quick --threads 1
    # the intermediate variant of benchmarks/results/search_efficiency_large.md (~43 minutes)
    .venv/bin/python benchmarks/search_efficiency.py --seeds 0 1 2 --trials 16 \\
        --per-class 150 --val-per-class 75 --population 6 --threads 1 \\
        --out benchmarks/results/search_efficiency_large.md
    # rewrite the tables and figures from a results JSON, training nothing (the JSON itself
    # is left as it is; one is written only with an --out other than the .md beside it)
    .venv/bin/python benchmarks/search_efficiency.py \\
        --render benchmarks/results/search_efficiency.json
    # smoke run on scikit-learn's bundled digits (no CIFAR needed), seconds
    .venv/bin/python benchmarks/search_efficiency.py --data digits --trials 4 --epochs 2 \\
        --reduction-factor 2 --seeds 0 --per-class 10 --val-per-class 5 --width 4 --out -
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

# Run as a script (``python benchmarks/search_efficiency.py``) from a checkout that is not
# pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from benchmarks._harness import (
    ALPHA,
    CONFIDENCE,
    RESULTS,
    Session,
    add_output_arguments,
    apply_preset,
    cifar10_data,
    command_line,
    compare_over_seeds,
    comparison_cells,
    describe,
    fmt,
    load_average,
    machine_line,
    markdown_table,
    results_head,
    results_record,
    undefined_t_note,
    utc_now,
    write_json,
    write_markdown,
)
from nas.config import StudyConfig, asha_rungs
from nas.data import build_datamodule
from nas.pareto import front_trials, hypervolume
from nas.report import Reference, hypervolume_history
from nas.stats import binomial_se
from nas.study import quiet_third_party_output
from nas.worker import run_search
from search_spaces.build import build_model
from search_spaces.cost import count_flops
from search_spaces.space import SearchSpace
from search_spaces.spec import ArchSpec, BlockChoice

DEFAULT_OUT = RESULTS / "search_efficiency.md"
TITLE = "Search efficiency: hypervolume per epoch and per second, with and without pruning"

#: The fixed per-stage space: 10 choices per stage, 1,000 architectures on a 3-stage ResNet-8.
SPACE: dict[str, Any] = {
    "blocks": ["none", "se", "eca", "gct", "cbam", "coord", "simam"],
    "reductions": [4, 8],
    "eca_kernels": [3],
    "granularity": "per_stage",
    "positions": ["standard"],
}
TRAINING: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "label_smoothing": 0.0,
}
OBJECTIVES = {"maximize": "val_acc", "minimize": ["flops"]}
DIRECTIONS = ("maximize", "minimize")
#: Reference margin beyond the most expensive architecture, as a share of the FLOPs range.
RANGE_MARGIN = 0.1
#: The conventional alternative: this factor times the largest FLOPs (reported alongside).
COST_FACTOR = 1.1
TARGET_SAVED = 0.40
TARGET_HV = 0.95
BASELINE = "nsga2"
#: The strategy every other one must beat for the benchmark to measure anything.
CONTROL = "random"


class Strategy(NamedTuple):
    key: str
    sampler: str
    pruner: str
    label: str


STRATEGIES = {
    s.key: s
    for s in (
        Strategy("random", "random", "none", "random search, no pruning"),
        Strategy("nsga2", "nsga2", "none", "NSGA-II, no pruning"),
        Strategy("nsga2-pareto", "nsga2", "pareto", "NSGA-II + Pareto pruner"),
        Strategy("nsga2-moasha", "nsga2", "moasha", "NSGA-II + MO-ASHA"),
        Strategy("tpe-pareto", "tpe", "pareto", "MO-TPE + Pareto pruner"),
    )
}

#: ``--quick`` and full defaults for the options left unset on the command line.
PRESETS = {
    "full": {"seeds": [0, 1, 2], "trials": 24, "per_class": 500, "val_per_class": 200,
             "population": 8},
    "quick": {"seeds": [0, 1], "trials": 12, "per_class": 80, "val_per_class": 40,
              "population": 4},
}  # fmt: skip


# --- configuration -----------------------------------------------------------------------------


def data_section(args: argparse.Namespace) -> dict[str, Any]:
    if args.data == "digits":
        section = {"name": "digits", "batch_size": 64, "augment": "flip_crop"}
    else:
        section = cifar10_data()
    section.update(per_class=args.per_class, val_per_class=args.val_per_class)
    if getattr(args, "val_fraction", None) is not None:  # absent from older results' args
        section["val_fraction"] = args.val_fraction
    return section


def study_config(
    args: argparse.Namespace, strategy: Strategy, seed: int, runs_dir: str
) -> StudyConfig:
    return StudyConfig.from_dict(
        {
            "study": {
                "name": f"{strategy.key}-seed{seed}",
                "runs_dir": runs_dir,
                "sampler": strategy.sampler,
                "seed": seed,
                "n_trials": args.trials,
                "population_size": args.population,
            },
            "data": data_section(args),
            "backbone": {"name": args.backbone, "args": {"width": args.width}},
            "space": SPACE,
            "training": {**TRAINING, "epochs": args.epochs},
            "pruning": {
                "pruner": strategy.pruner,
                "percentile": args.percentile,
                "n_startup_trials": args.n_startup_trials,
                "n_warmup_epochs": args.n_warmup_epochs,
                "min_epochs": args.min_epochs,
                "reduction_factor": args.reduction_factor,
            },
            "objectives": OBJECTIVES,
            # Samplers compared on sampled trials only, seeded per trial as the committed runs
            # were (the engine's defaults would queue the same 7 baselines into every run).
            "evaluation": {"seeding": "per_trial", "baselines": False},
        }
    )


# --- the common reference point ----------------------------------------------------------------


def scope_choices(space: SearchSpace) -> list[BlockChoice]:
    """Every choice one scope of ``space`` can take (``none`` included)."""
    choices = [BlockChoice()]
    for block in space.blocks:
        if block == "none":
            continue
        params = space.param_choices(block)
        for combo in itertools.product(*params.values()):
            for position in space.positions:
                choices.append(BlockChoice(block, dict(zip(params, combo, strict=True)), position))
    return choices


def flops_bounds(
    space: SearchSpace, input_shape: Sequence[int], num_classes: int
) -> dict[str, Any]:
    """FLOPs of the cheapest and the most expensive architecture of ``space``.

    Measures the backbone alone and every choice at every scope alone; FLOPs add up over scopes
    (a block only sees its own sites' shapes), so the per-scope argmin / argmax choices make the
    cheapest / most expensive architecture. Both are built and counted directly; ``additive``
    records whether those counts equal the backbone plus the per-scope increments.
    """
    in_channels = int(input_shape[0])
    scopes = space.scopes()

    def flops(choice_of: dict[str, BlockChoice]) -> int:
        sites = {
            site: choice_of.get(scope, BlockChoice())
            for scope, scope_sites in scopes.items()
            for site in scope_sites
        }
        spec = ArchSpec(
            backbone=space.backbone,
            backbone_args=dict(space.backbone_args),
            in_channels=in_channels,
            num_classes=num_classes,
            sites=sites,
        )
        return count_flops(build_model(spec, seed=0), (1, *input_shape))

    base = flops({})
    choices = scope_choices(space)
    added = {scope: [flops({scope: c}) - base for c in choices] for scope in scopes}
    cheapest = {s: choices[int(np.argmin(v))] for s, v in added.items()}
    dearest = {s: choices[int(np.argmax(v))] for s, v in added.items()}
    f_min, f_max = flops(cheapest), flops(dearest)
    additive = f_min == base + sum(min(v) for v in added.values()) and f_max == base + sum(
        max(v) for v in added.values()
    )
    return {
        "backbone": base,
        "min": f_min,
        "max": f_max,
        "additive": bool(additive),
        "cheapest": {s: c.label() for s, c in cheapest.items()},
        "dearest": {s: c.label() for s, c in dearest.items()},
        "architectures": space.size(),
    }


def common_reference(bounds: dict[str, Any]) -> Reference:
    span = bounds["max"] - bounds["min"]
    worst = bounds["max"] + RANGE_MARGIN * span if span > 0 else COST_FACTOR * bounds["max"]
    return Reference(
        names=("val_acc", "flops"),
        directions=DIRECTIONS,
        worst=(0.0, float(worst)),
        ideal=(1.0, float(bounds["min"])),
    )


def alternative_reference(bounds: dict[str, Any]) -> Reference:
    return Reference(
        names=("val_acc", "flops"),
        directions=DIRECTIONS,
        worst=(0.0, COST_FACTOR * float(bounds["max"])),
        ideal=(1.0, 0.0),
    )


# --- measures ----------------------------------------------------------------------------------


def distinct(points: Sequence[Sequence[float]]) -> list[list[float]]:
    """The distinct points, in first-seen order (duplicate trials repeat their original's)."""
    return [list(p) for p in dict.fromkeys(tuple(float(v) for v in p) for p in points)]


def front_recovered(
    reference_front: Sequence[Sequence[float]],
    front: Sequence[Sequence[float]],
    directions: Sequence[str] = DIRECTIONS,
) -> float:
    """Share of ``reference_front``'s distinct points weakly dominated by (or equal to) a point
    of ``front``: no worse in every objective. NaN when ``reference_front`` is empty."""
    reference_front = distinct(reference_front)
    if len(reference_front) == 0:
        return math.nan
    if len(front) == 0:
        return 0.0
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    ref = np.asarray(reference_front, dtype=float) * signs
    pts = np.asarray(front, dtype=float) * signs
    covered = (pts[None, :, :] <= ref[:, None, :]).all(axis=2).any(axis=1)
    return float(covered.mean())


def value_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """The step function through (xs, ys) at ``x``: the last y whose x is <= ``x`` (0 before)."""
    value = 0.0
    for xi, yi in zip(xs, ys, strict=True):
        if xi <= x:
            value = yi
        else:
            break
    return value


def measure_run(
    study: optuna.Study, reference: Reference, alternative: Reference
) -> dict[str, Any]:
    history = hypervolume_history(study, reference)
    trials = study.get_trials(deepcopy=False)
    front = distinct([t.values for t in front_trials(study)])
    generation_key = "NSGAIISampler:generation"
    generations = [
        t.system_attrs[generation_key] for t in trials if generation_key in t.system_attrs
    ]
    pruned_at = [
        int(t.user_attrs.get("epochs_run", 0)) for t in trials if t.state == TrialState.PRUNED
    ]
    return {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "duplicates": sum("duplicate_of" in t.user_attrs for t in trials),
        "pruned_epochs_run": pruned_at,
        "max_generation": max(generations) if generations else None,
        "epochs_spent": int(history["epochs_spent"].iloc[-1]) if len(history) else 0,
        "trial_wall_s": float(history["elapsed_s"].iloc[-1]) if len(history) else 0.0,
        "hv": float(history["hypervolume_norm"].iloc[-1]) if len(history) else 0.0,
        "hv_alt": hypervolume(front, alternative.worst, DIRECTIONS) / alternative.box_volume()
        if front
        else 0.0,
        "front": front,
        "history": {
            "trial": history["trial"].astype(int).tolist(),
            "finished": history["finished"].astype(int).tolist(),
            "epochs_spent": history["epochs_spent"].astype(int).tolist(),
            "elapsed_s": history["elapsed_s"].astype(float).round(3).tolist(),
            "hv": history["hypervolume_norm"].astype(float).tolist(),
        },
    }


def add_comparisons(runs: list[dict[str, Any]]) -> None:
    """Ratios of every run to the nsga2 run of the same seed, in place."""
    base = {r["seed"]: r for r in runs if r["strategy"] == BASELINE}
    for r in runs:
        b = base[r["seed"]]
        r["hv_kept"] = r["hv"] / b["hv"] if b["hv"] > 0 else math.nan
        r["hv_alt_kept"] = r["hv_alt"] / b["hv_alt"] if b["hv_alt"] > 0 else math.nan
        base_hv_then = value_at(b["history"]["epochs_spent"], b["history"]["hv"], r["epochs_spent"])
        r["hv_kept_equal_epochs"] = r["hv"] / base_hv_then if base_hv_then > 0 else math.nan
        r["epochs_saved"] = (
            1 - r["epochs_spent"] / b["epochs_spent"] if b["epochs_spent"] else math.nan
        )
        r["front_recovered"] = front_recovered(b["front"], r["front"])


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _std(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0


def summarise(runs: list[dict[str, Any]], strategies: Sequence[str]) -> list[dict[str, Any]]:
    base_epochs = sum(r["epochs_spent"] for r in runs if r["strategy"] == BASELINE)
    rows = []
    for key in strategies:
        mine = [r for r in runs if r["strategy"] == key]
        epochs = sum(r["epochs_spent"] for r in mine)
        pruned = STRATEGIES[key].pruner != "none"
        saved = 1 - epochs / base_epochs if base_epochs else math.nan
        hv_kept = _mean([r["hv_kept"] for r in mine])
        rows.append(
            {
                "strategy": key,
                "label": STRATEGIES[key].label,
                "seeds": len(mine),
                "complete": _mean([r["complete"] for r in mine]),
                "pruned": _mean([r["pruned"] for r in mine]),
                "duplicates": _mean([r["duplicates"] for r in mine]),
                "epochs": _mean([r["epochs_spent"] for r in mine]),
                "epochs_saved": saved,
                "hv": _mean([r["hv"] for r in mine]),
                "hv_sd": _std([r["hv"] for r in mine]),
                "hv_kept": hv_kept,
                "hv_kept_min": min((r["hv_kept"] for r in mine), default=math.nan),
                "hv_alt_kept": _mean([r["hv_alt_kept"] for r in mine]),
                "hv_kept_equal_epochs": _mean([r["hv_kept_equal_epochs"] for r in mine]),
                "front_recovered": _mean([r["front_recovered"] for r in mine]),
                "wall_s": _mean([r["wall_s"] for r in mine]),
                "cpu_s": _mean([r["cpu_s"] for r in mine]),
                "saved_met": (saved >= TARGET_SAVED) if pruned else None,
                "hv_met": (hv_kept >= TARGET_HV) if pruned else None,
            }
        )
    tests = seed_tests(runs, strategies)
    for row in rows:
        row.update(tests[row["strategy"]])
    return rows


# --- tests over seeds --------------------------------------------------------------------------


def paired_by_seed(
    runs: list[dict[str, Any]], key: str, against: str, measure: str = "hv"
) -> tuple[list[float], list[float]]:
    """``measure`` of strategy ``key`` and of strategy ``against``, paired by seed (the seeds
    both ran with a finite value, ascending): each seed runs every strategy on the same split and
    batch order."""
    mine = {r["seed"]: r[measure] for r in runs if r["strategy"] == key}
    theirs = {r["seed"]: r[measure] for r in runs if r["strategy"] == against}
    seeds = sorted(
        s
        for s in mine
        if s in theirs and all(v is not None and math.isfinite(v) for v in (mine[s], theirs[s]))
    )
    return [float(mine[s]) for s in seeds], [float(theirs[s]) for s in seeds]


def seed_tests(runs: list[dict[str, Any]], strategies: Sequence[str]) -> dict[str, dict]:
    """Per strategy: ``vs_random``, its final HV minus random search's, paired by seed, tested
    with Holm over the strategies compared (None for random itself, or where random did not
    run); ``hv_kept_test``, its per-seed HV kept (ratio to NSGA-II) minus 1, tested the same way
    over the strategies other than NSGA-II (None for NSGA-II)."""
    others = [k for k in strategies if k != CONTROL]
    vs_random = (
        compare_over_seeds({k: paired_by_seed(runs, k, CONTROL) for k in others})
        if CONTROL in strategies
        else {}
    )
    kept_pairs = {}
    for key in strategies:
        if key != BASELINE:
            kept = [r["hv_kept"] for r in runs if r["strategy"] == key]
            kept = [float(v) for v in kept if v is not None and math.isfinite(v)]
            kept_pairs[key] = (kept, [1.0] * len(kept))
    kept_tests = compare_over_seeds(kept_pairs)
    return {
        key: {"vs_random": vs_random.get(key), "hv_kept_test": kept_tests.get(key)}
        for key in strategies
    }


def val_noise(problem: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Measurement noise of the validation split: the binomial standard error of an accuracy at
    the runs' mean final best val_acc, on the val split's images, and what one SE on the most
    accurate front point does to the normalised HV (SE x that point's share of the FLOPs axis of
    the reference box). None without a val split size or a front."""
    n = int(problem.get("split_sizes", {}).get("val") or 0)
    bests = [max(r["front"], key=lambda p: (p[0], -p[1])) for r in runs if r["front"]]
    if n < 1 or not bests:
        return None
    accuracy = float(np.mean([b[0] for b in bests]))
    se = binomial_se(accuracy, n)
    worst, ideal = problem["reference"]["worst"][1], problem["reference"]["ideal"][1]
    width = float(np.mean([(worst - b[1]) / (worst - ideal) for b in bests]))
    hv = _mean([r["hv"] for r in runs])
    return {
        "val_images": n,
        "mean_best_val_acc": accuracy,
        "binomial_se": se,
        "flops_width": width,
        "hv_se": se * width,
        "mean_hv": hv,
    }


# --- figures -----------------------------------------------------------------------------------

COLOURS = {
    "random": "#7f7f7f",
    "nsga2": "#1f77b4",
    "nsga2-pareto": "#d62728",
    "nsga2-moasha": "#2ca02c",
    "tpe-pareto": "#9467bd",
}
#: The figures beside the report, by x axis: the runs' history column, the axis title and the
#: figure's title.
FIGURES = {
    "epochs": (
        "epochs_spent",
        "training epochs spent",
        "Hypervolume against training epochs spent",
    ),
    "wallclock": (
        "elapsed_s",
        "wall clock since the first trial started (s)",
        "Hypervolume against wall clock",
    ),
    "trials": (
        "finished",
        "trials finished (complete + pruned)",
        "Hypervolume against trials finished",
    ),
}


def mean_curve(curves: list[tuple[list[float], list[float]]]) -> tuple[list[float], list[float]]:
    """Mean of step curves on the union of their x values, up to where the shortest one ends."""
    end = min(xs[-1] for xs, _ in curves)
    grid = sorted({x for xs, _ in curves for x in xs if x <= end})
    return grid, [float(np.mean([value_at(xs, ys, x) for xs, ys in curves])) for x in grid]


def figure(runs: list[dict[str, Any]], strategies: Sequence[str], axis: str) -> Any:
    """HV against ``axis`` (a key of :data:`FIGURES`): a thin step line per run, a thick one for
    each strategy's mean over seeds."""
    import plotly.graph_objects as go

    column, x_title, title = FIGURES[axis]
    fig = go.Figure()

    def steps(key: str, xs: list[float], ys: list[float], width: int, **style: Any) -> None:
        line = {"shape": "hv", "width": width, "color": COLOURS.get(key)}
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=line, legendgroup=key, **style))

    for key in strategies:
        curves = []
        for r in (r for r in runs if r["strategy"] == key):
            xs, ys = [0.0, *r["history"][column]], [0.0, *r["history"]["hv"]]
            curves.append((xs, ys))
            name = f"{key} seed {r['seed']}"
            hover = f"{name}<br>%{{x}}: HV %{{y:.4f}}<extra></extra>"
            steps(key, xs, ys, 1, opacity=0.35, name=name, showlegend=False, hovertemplate=hover)
        if curves:
            label = f"{STRATEGIES[key].label} (mean of {len(curves)} seeds)"
            steps(key, *mean_curve(curves), 3, name=label)
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title="normalised hypervolume (common reference)",
        template="plotly_white",
        legend={"yanchor": "bottom", "y": 0.02, "xanchor": "right", "x": 0.98},
    )
    return fig


# --- report ------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return fmt(value, ".1%")


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("**yes**" if flag else "**no**")


def tables(summary: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[str]:
    header = ["strategy", "complete / pruned / dup. (per seed)", "epochs (per seed)"]
    header += ["epochs saved", "HV (mean ± sd)", "HV kept", "HV kept, min seed"]
    header += ["HV kept, 1.1 max ref", "HV kept at equal epochs", "front recovered", "wall s"]
    header += ["CPU s", "saved >= 40%", "HV >= 95%"]
    rows = [
        [
            s["label"],
            f"{s['complete']:.1f} / {s['pruned']:.1f} / {s['duplicates']:.1f}",
            f"{s['epochs']:.1f}",
            _pct(s["epochs_saved"]),
            f"{s['hv']:.4f} ± {s['hv_sd']:.4f}",
            *map(_pct, (s["hv_kept"], s["hv_kept_min"], s["hv_alt_kept"])),
            *map(_pct, (s["hv_kept_equal_epochs"], s["front_recovered"])),
            f"{s['wall_s']:.0f}",
            f"{s['cpu_s']:.0f}",
            _yes(s["saved_met"]),
            _yes(s["hv_met"]),
        ]
        for s in summary
    ]
    per_run_header = ["strategy", "seed", "complete", "pruned (epochs run)", "dup."]
    per_run_header += ["NSGA-II gen.", "epochs", "HV", "HV kept", "front recovered"]
    per_run_header += ["front size", "wall s", "CPU s", "load before / after"]
    per_run = [
        [
            r["strategy"],
            r["seed"],
            r["complete"],
            f"{r['pruned']} ({','.join(str(e) for e in sorted(r['pruned_epochs_run'])) or '-'})",
            r["duplicates"],
            "-" if r["max_generation"] is None else r["max_generation"],
            r["epochs_spent"],
            f"{r['hv']:.4f}",
            _pct(r["hv_kept"]),
            _pct(r["front_recovered"]),
            len(distinct(r["front"])),
            f"{r['wall_s']:.0f}",
            f"{r['cpu_s']:.0f}",
            f"{r['load_before']} / {r['load_after']}",
        ]
        for r in runs
    ]
    return [
        *markdown_table(header, "llrrlrrrrrrrll", rows),
        "",
        "Per run:",
        "",
        *markdown_table(per_run_header, "lrrlrrrrrrrrrl", per_run),
        *comparison_tables(summary),
    ]


def _test_header(measure: str, against: str) -> list[str]:
    """The header of a table of tests over seeds: ``measure`` of each strategy against
    ``against``."""
    return [
        "strategy",
        "seeds",
        f"{measure} (mean)",
        "95% t interval",
        "t",
        "p",
        "p_adj (Holm)",
        f"differs from {against} (p_adj < {ALPHA:g})",
    ]


def comparison_tables(summary: list[dict[str, Any]]) -> list[str]:
    """The tests over seeds: every strategy against random search (final HV, paired by seed),
    and every strategy's HV kept against NSGA-II's 100%."""
    lines = ["", "### Compared with random search (test over seeds)", ""]
    against = [s for s in summary if s.get("vs_random")]
    if not any(s["strategy"] == CONTROL for s in summary):
        lines.append(
            "Random search was not among the strategies of this run (`--strategies`): no "
            "comparison with it, so this run cannot say whether any strategy beats random search."
        )
    elif against:
        family = max((s["vs_random"]["family"] or 0) for s in against)
        lines += [
            "Final HV of the strategy minus final HV of random search, paired by seed (each seed "
            "runs every strategy on the same split and batch order): mean over seeds with its "
            f"{CONFIDENCE:.0%} Student-t interval, two-sided paired t-test, p-value "
            f"Holm-adjusted over the {family or len(against)} comparisons with random search "
            f"(p_adj). A strategy differs from random where p_adj < {ALPHA:g}.",
            "",
            *markdown_table(
                _test_header("HV - random", "random"),
                "lrrlrrrl",
                ([s["label"], *comparison_cells(s["vs_random"])] for s in against),
            ),
            *undefined_t_note(s["vs_random"] for s in against),
        ]
    kept = [s for s in summary if s.get("hv_kept_test")]
    if kept:
        family = max((s["hv_kept_test"]["family"] or 0) for s in kept)
        lines += [
            "",
            "HV kept against NSGA-II without pruning (same test): per-seed HV kept (final HV / "
            "NSGA-II's on the same seed), mean with its 95% Student-t interval, two-sided t-test "
            f"of HV kept = 100%, p-value Holm-adjusted over the {family or len(kept)} strategies "
            "other than NSGA-II.",
            "",
            *markdown_table(
                _test_header("HV kept", "NSGA-II"),
                "lrrlrrrl",
                (
                    [s["label"], *comparison_cells(s["hv_kept_test"], shift=1.0, spec=".1%")]
                    for s in kept
                ),
            ),
            *undefined_t_note(s["hv_kept_test"] for s in kept),
        ]
    return lines


def moasha_rungs(args: argparse.Namespace) -> list[int]:
    """Epochs after which the engine's MO-ASHA decides, for these settings (none: it has no
    rung, which ``parse_args`` refuses only where MO-ASHA is among the strategies)."""
    return asha_rungs(args.min_epochs, args.reduction_factor, args.epochs)


def verdict(
    summary: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    args: argparse.Namespace,
    noise: dict[str, Any] | None = None,
) -> str:
    parts = []
    for s in summary:
        if s["saved_met"] is None:
            continue
        status = "meets both targets" if s["saved_met"] and s["hv_met"] else "misses"
        missed = []
        if not s["saved_met"]:
            missed.append(
                f"epochs saved {_pct(s['epochs_saved'])} < 40% (short by "
                f"{(TARGET_SAVED - s['epochs_saved']) * 100:.1f} points)"
            )
        if not s["hv_met"]:
            missed.append(
                f"HV kept {_pct(s['hv_kept'])} < 95% (short by "
                f"{(TARGET_HV - s['hv_kept']) * 100:.1f} points)"
            )
        detail = f" ({'; '.join(missed)})" if missed else ""
        parts.append(
            f"* {s['label']}: saves {_pct(s['epochs_saved'])} of the epochs and keeps "
            f"{_pct(s['hv_kept'])} of the HV (worst seed {_pct(s['hv_kept_min'])}): "
            f"{status}{detail}."
        )
    settings = (
        f"Pruner settings: pareto percentile {args.percentile:g}, n_startup_trials "
        f"{args.n_startup_trials}, n_warmup_epochs {args.n_warmup_epochs} (engine-fixed "
        f"interval 1, n_min_peers 3); moasha min_epochs {args.min_epochs}, reduction_factor "
        f"{args.reduction_factor}, max_epochs {args.epochs} (rungs after {moasha_rungs(args)} "
        "epochs)."
    )
    prunable = max(0, args.trials - args.n_startup_trials)
    first_check = args.n_warmup_epochs + 1
    bound = prunable * max(0, args.epochs - first_check) / (args.trials * args.epochs)
    facts = [
        f"* Ceiling of the pareto pruner's saving with these settings: the first "
        f"{args.n_startup_trials} complete trials are never pruned and a pruned trial has run "
        f"at least {first_check} epochs, so at most {prunable} of {args.trials} trials save at "
        f"most {max(0, args.epochs - first_check)} of {args.epochs} epochs each: <= {bound:.0%} "
        "of the nominal trials x epochs."
    ]
    generations = {
        key: [r["max_generation"] for r in runs if r["strategy"] == key]
        for key in dict.fromkeys(r["strategy"] for r in runs)
        if STRATEGIES[key].sampler == "nsga2"
    }
    if generations:
        shown = "; ".join(f"{k} {v}" for k, v in generations.items())
        facts.append(
            f"* Last NSGA-II generation reached, per seed: {shown}. Optuna closes a generation "
            f"only once it holds population_size ({args.population}) COMPLETE trials, so a run "
            "that prunes most trials keeps sampling its random first generation."
        )
    last = sum(e >= args.epochs for r in runs for e in r["pruned_epochs_run"])
    facts.append(
        f"* Trials pruned after their final epoch (no epochs saved, finished result dropped): "
        f"{last}."
    )
    spread = [
        f"{s['label']} {s['hv_sd'] / s['hv']:.1%}"
        for s in summary
        if s["hv"] > 0 and s["seeds"] > 1
    ]
    if spread:
        facts.append(f"* Seed-to-seed spread of the final HV (sd / mean): {', '.join(spread)}.")
    control = control_verdict(summary, args, noise)
    return "\n".join([*parts, *(["", control] if control else []), "", settings, "", *facts])


def control_verdict(
    summary: list[dict[str, Any]], args: argparse.Namespace, noise: dict[str, Any] | None
) -> str:
    """What the tests against random search allow one to say (empty without random search)."""
    tested = [s for s in summary if s.get("vs_random")]
    if not tested:
        return ""
    raise_what = (
        "raise the validation split (`--val-per-class`, now "
        f"{args.val_per_class}: the split's standard error falls as 1/sqrt(images)), the epochs "
        f"per trial (`--epochs`, now {args.epochs}) and the seeds (`--seeds`, now "
        f"{len(args.seeds)}: the interval narrows with more seeds and a smaller t quantile)"
    )
    if all(s["vs_random"]["n"] < 2 for s in tested):
        return (
            "* Compared with random search: one seed, so no test over seeds is possible and "
            "the differences from random search are single observations, not evidence. To tell "
            f"the strategies apart, {raise_what}."
        )
    differs = [s for s in tested if s["vs_random"]["differs"]]
    if not differs:
        smallest = min(s["vs_random"]["p_adj"] for s in tested if s["vs_random"]["n"] >= 2)
        largest = max(abs(s["vs_random"]["mean"]) for s in tested)
        seeds = max(s["vs_random"]["n"] for s in tested)
        scale = (
            f", against one validation-split standard error of {noise['binomial_se']:.4f} in "
            f"val_acc (about {noise['hv_se']:.4f} of HV)"
            if noise
            else ""
        )
        return (
            "* **No strategy differs from random search**: the paired t-test over "
            f"{seeds} seeds gives Holm-adjusted p >= {ALPHA:g} for every one of the "
            f"{len(tested)} strategies (smallest p_adj {smallest:.3f}); the mean HV differences "
            f"from random search are at most {largest:.4f}{scale}. At this size the benchmark "
            "cannot tell the strategies apart: the HV kept and front recovered figures above "
            "do not rank them, and the HV target is met or missed within that noise. To measure "
            f"the strategies, {raise_what}."
        )
    shown = "; ".join(
        f"{s['label']} (HV {s['vs_random']['mean']:+.4f}, p_adj {s['vs_random']['p_adj']:.3f})"
        for s in differs
    )
    same = [s["label"] for s in tested if s not in differs]
    rest = f" No difference shown for: {', '.join(same)}." if same else ""
    return f"* Differs from random search (Holm-adjusted p < {ALPHA:g}): {shown}.{rest}"


def write_results(
    out: Path,
    command: str,
    info: dict[str, Any],
    args: argparse.Namespace,
    problem: dict[str, Any],
    summary: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    total_s: float,
    date: str | None = None,
    note: str = "",
    with_json: bool = True,
) -> list[Path]:
    """The report ``out`` (Markdown), its figures beside it and, ``with_json``, the results
    JSON; returns the paths written."""
    date = date or utc_now()
    figures = {axis: out.with_name(f"{out.stem}_hv_{axis}.html") for axis in FIGURES}
    ref = problem["reference"]
    bounds = problem["flops_bounds"]
    variant = "reduced (`--quick`)" if args.quick else "as given by the command"
    facts = [
        f"Command: `{command}`",
        f"Variant: {variant}; total run time {total_s / 60:.1f} min",
        f"Date: {date}",
        *([note] if note else []),
        machine_line(info, gpu=True),
        "Load average (1 min) before / after each run is in the per-run table: a load above the "
        "torch threads means other processes shared the CPU, which slows wall clock (not "
        "epochs, and CPU seconds less).",
    ]
    lines = [
        *results_head(TITLE, facts),
        "The full variant (`.venv/bin/python benchmarks/search_efficiency.py`: 5,000 / 2,000 "
        "images, 3 seeds x 24 trials) needs about 3.5 hours on 2 idle CPU cores (an estimate "
        "from ~8 s per epoch measured there with 2 threads; not run here).",
        "",
        "## Problem",
        "",
        f"* data: {problem['data']}; split sizes {problem['split_sizes']}",
        f"* model: {args.backbone} width {args.width}, {args.epochs} epochs per trial "
        f"(SGD lr 0.1, momentum 0.9, wd 5e-4, cosine, flip+crop)",
        f"* space: per-stage, blocks {SPACE['blocks']}, reductions {SPACE['reductions']}, ECA "
        f"kernel {SPACE['eca_kernels']}, positions {SPACE['positions']}: "
        f"{bounds['architectures']} architectures",
        f"* {args.trials} trials per run, seeds {args.seeds}, NSGA-II population / TPE start-up "
        f"{args.population}",
        f"* objectives: maximise val_acc, minimise FLOPs. FLOPs of the space: backbone "
        f"{bounds['backbone']:,}, cheapest {bounds['min']:,}, most expensive {bounds['max']:,} "
        f"({bounds['dearest']}; per-stage sums match the direct counts: {bounds['additive']})",
        f"* common reference point (all runs): val_acc {ref['worst'][0]}, FLOPs "
        f"{ref['worst'][1]:,.0f} (= max + {RANGE_MARGIN:g} x (max - min)); ideal val_acc 1, "
        f"FLOPs {ref['ideal'][1]:,.0f}; HV normalised by that box. Alternative reference "
        f"(column 'HV kept, 1.1 max ref'): (0, "
        f"{problem['alternative_reference']['worst'][1]:,.0f})",
        *noise_lines(problem.get("val_noise")),
        "",
        "Definitions (details in the module docstring): *epochs saved* = 1 - (epochs of the "
        "strategy summed over seeds) / (epochs of NSGA-II without pruning summed over seeds); "
        "*HV kept* = final HV / final HV of NSGA-II without pruning on the same seed, after the "
        "same number of trials, mean over seeds; *HV kept at equal epochs* = final HV / HV that "
        "unpruned NSGA-II had reached with no more epochs spent; *front recovered* = share of "
        "the unpruned NSGA-II final front's points that some point of the strategy's final front "
        "weakly dominates or equals (same seed), mean over seeds.",
        "",
        "## Results",
        "",
        *tables(summary, runs),
        "",
        "## Targets (pruning saves >= 40% of epochs, keeps >= 95% of the unpruned HV)",
        "",
        verdict(summary, runs, args, problem.get("val_noise")),
        "",
        "Figures (one thin line per seed, thick line = mean over seeds up to where the shortest "
        "run ends): " + ", ".join(f"[HV vs {axis}]({path.name})" for axis, path in figures.items()),
    ]
    write_markdown(out, lines)
    strategies = list(dict.fromkeys(r["strategy"] for r in runs))
    for axis, path in figures.items():
        figure(runs, strategies, axis).write_html(path, include_plotlyjs="cdn")
    if not with_json:
        return [out, *figures.values()]
    json_path = out.with_suffix(".json")
    args_shown = {k: v for k, v in vars(args).items() if k not in ("out", "render")}
    raw = {"total_s": total_s, "args": args_shown, "problem": problem}
    write_json(
        json_path, results_record(command, date, info, {**raw, "summary": summary, "runs": runs})
    )
    return [out, json_path, *figures.values()]


def noise_lines(noise: dict[str, Any] | None) -> list[str]:
    """The Problem section's bullet on the validation split's measurement noise."""
    if not noise:
        return []
    se, hv_se = noise["binomial_se"], noise["hv_se"]
    width = f"SE x that point's {noise['flops_width']:.2f} share of the FLOPs axis"
    share = (
        f" ({hv_se / noise['mean_hv']:.1%} of the mean final HV; {width})"
        if noise["mean_hv"]
        else f" ({width})"
    )
    return [
        f"* measurement noise of the validation split: binomial standard error sqrt(p (1 - p) / n) "
        f"= {se:.4f} at p = {noise['mean_best_val_acc']:.4f} (the runs' mean final best val_acc) "
        f"and n = {noise['val_images']} val images; it counts the split's sampling only, not "
        f"training-seed noise. On the HV scale one such error on a run's most accurate point is "
        f"about {hv_se:.4f}{share}, so HV differences below that are within the noise of a "
        "single evaluation.",
    ]


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced (< 15 min) variant")
    parser.add_argument("--data", choices=["cifar10", "digits"], default="cifar10")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--trials", type=int, help="trials per run (every strategy, every seed)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--per-class", type=int, help="training images per class")
    parser.add_argument("--val-per-class", type=int, help="validation images per class")
    parser.add_argument(
        "--val-fraction",
        type=float,
        help="share of the non-test images held out for validation (default: DataConfig's 0.1)",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: cores)"
    )
    parser.add_argument("--backbone", default="resnet8")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--population", type=int, help="NSGA-II population / TPE start-up")
    parser.add_argument(
        "--strategies", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES)
    )
    parser.add_argument("--percentile", type=float, default=50.0)
    parser.add_argument("--n-startup-trials", type=int, default=4)
    parser.add_argument("--n-warmup-epochs", type=int, default=1)
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--reduction-factor", type=int, default=3)
    add_output_arguments(parser, DEFAULT_OUT, "json, html", render="the tables and figures")
    args = parser.parse_args(argv)
    apply_preset(args, PRESETS["quick" if args.quick else "full"])
    if BASELINE not in args.strategies:
        parser.error(f"--strategies must include {BASELINE!r}: every ratio refers to it")
    args.strategies = [k for k in STRATEGIES if k in args.strategies]
    moasha = any(STRATEGIES[k].pruner == "moasha" for k in args.strategies)
    if moasha and args.render is None and not moasha_rungs(args):
        parser.error(
            f"--min-epochs x --reduction-factor ({args.min_epochs} x {args.reduction_factor}) "
            f"must be <= --epochs ({args.epochs}) for MO-ASHA to have a rung; lower them or "
            "leave nsga2-moasha out of --strategies"
        )
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every strategy for every seed; print the table; write the results unless ``--out -``.
    Returns the per-strategy summary rows."""
    args = parse_args(argv)
    command = command_line(__file__, argv)
    if args.render:
        return render(args, command)
    args.out = args.out or str(DEFAULT_OUT)
    quiet_third_party_output()
    torch.set_num_threads(args.threads)
    session = Session()

    # The problem: data loaded once here (decoding the JPEGs on a first run), space bounds.
    probe = study_config(args, STRATEGIES[BASELINE], args.seeds[0], tempfile.gettempdir())
    dm = build_datamodule(probe.data)
    dm.prepare_data()
    dm.setup("fit")
    bounds = flops_bounds(probe.space, tuple(dm.input_shape), dm.num_classes)
    reference, alternative = common_reference(bounds), alternative_reference(bounds)
    problem = {
        "data": (
            f"{args.data} ({probe.data.name}), {args.per_class} train / {args.val_per_class} "
            "val images per class, split_seed 0"
        ),
        "split_sizes": dm.split_sizes,
        "input_shape": list(dm.input_shape),
        "flops_bounds": bounds,
        "reference": reference.to_dict(),
        "alternative_reference": alternative.to_dict(),
        "space": SPACE,
        "training": {**TRAINING, "epochs": args.epochs},
    }
    del dm

    runs = []
    for seed in args.seeds:
        for key in args.strategies:
            strategy = STRATEGIES[key]
            with tempfile.TemporaryDirectory() as runs_dir:
                cfg = study_config(args, strategy, seed, runs_dir)
                load_before, cpu0, t0 = load_average(), time.process_time(), time.perf_counter()
                study = run_search(cfg, progress=False)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                run = {"strategy": key, "seed": seed, "wall_s": wall, "cpu_s": cpu}
                run.update(load_before=load_before, load_after=load_average())
                run.update(measure_run(study, reference, alternative))
            runs.append(run)
            session.log(
                f"seed {seed} {key:13s} HV {run['hv']:.4f}  epochs {run['epochs_spent']:4d}  "
                f"complete {run['complete']:2d}  pruned {run['pruned']:2d}  wall {wall:6.1f} s"
            )
    add_comparisons(runs)
    summary = summarise(runs, args.strategies)
    problem["val_noise"] = val_noise(problem, runs)
    total = session.seconds()

    print(
        f"# search efficiency, {args.data}, {args.trials} trials x {args.epochs} epochs, seeds "
        f"{args.seeds}, total {total / 60:.1f} min; command: {command}"
    )
    print_report(summary, runs, args, problem["val_noise"])
    if args.out != "-":
        paths = write_results(
            Path(args.out), command, describe(), args, problem, summary, runs, total
        )
        print("wrote " + ", ".join(str(p) for p in paths))
    return summary


def print_report(
    summary: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    args: argparse.Namespace,
    noise: dict[str, Any] | None,
) -> None:
    """The tables and the verdict, on stdout."""
    print("\n".join(tables(summary, runs)))
    print()
    print(verdict(summary, runs, args, noise))


def render(args: argparse.Namespace, command: str) -> list[dict[str, Any]]:
    """Recompute the comparisons, tables and figures from a results .json (no training)."""
    source = Path(args.render)
    raw = json.loads(source.read_text())
    saved = argparse.Namespace(**{"render": None, **raw["args"]})
    runs = raw["runs"]
    for run in runs:
        run["front"] = distinct(run["front"])
    add_comparisons(runs)
    summary = summarise(runs, saved.strategies)
    problem = {**raw["problem"], "val_noise": val_noise(raw["problem"], runs)}
    print_report(summary, runs, saved, problem["val_noise"])
    out = args.out or str(source.with_suffix(".md"))
    if out != "-":
        note = f"Tables and figures rendered again from the JSON on {utc_now()}: `{command}`"
        # The raw data is never overwritten: a JSON is written only beside another .md.
        in_place = Path(out).with_suffix(".json").resolve() == source.resolve()
        paths = write_results(
            Path(out),
            raw["command"],
            raw["machine"],
            saved,
            problem,
            summary,
            runs,
            raw["total_s"],
            date=raw["date"],
            note=note,
            with_json=not in_place,
        )
        print("wrote " + ", ".join(str(p) for p in paths))
    return summary


if __name__ == "__main__":
    main()
