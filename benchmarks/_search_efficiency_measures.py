"""What ``benchmarks/search_efficiency.py`` compares and measures: the strategies and targets,
the common reference point, each run's hypervolume history, front and epochs, the ratios to
NSGA-II without pruning and the tests over seeds against random search (the definitions are in
that script's docstring).
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import TrialState

from benchmarks._harness import compare_over_seeds
from nas.config import asha_rungs
from nas.pareto import front_trials, hypervolume
from nas.report import Reference, hypervolume_history
from nas.stats import binomial_se
from search_spaces.build import build_model
from search_spaces.cost import count_flops
from search_spaces.space import SearchSpace
from search_spaces.spec import ArchSpec, BlockChoice

# --- strategies and targets --------------------------------------------------------------------

#: What a pruned strategy must save of NSGA-II's epochs, and keep of its HV (issue targets).
TARGET_SAVED = 0.40
TARGET_HV = 0.95
#: The strategy every ratio refers to: NSGA-II without pruning.
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


def moasha_rungs(args: argparse.Namespace) -> list[int]:
    """Epochs after which the engine's MO-ASHA decides, for these settings (none: it has no
    rung, which ``parse_args`` refuses only where MO-ASHA is among the strategies)."""
    return asha_rungs(args.min_epochs, args.reduction_factor, args.epochs)


# --- the common reference point ----------------------------------------------------------------

DIRECTIONS = ("maximize", "minimize")
#: Reference margin beyond the most expensive architecture, as a share of the FLOPs range.
RANGE_MARGIN = 0.1
#: The conventional alternative: this factor times the largest FLOPs (reported alongside).
COST_FACTOR = 1.1


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
