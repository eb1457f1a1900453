"""What a study found: the trials table, the Pareto front and its hypervolume (pandas).

* :func:`trials_frame`: one row per trial, parameters flattened, every objective and cost, state,
  epochs run, pruned-at epoch, duration, and whether the trial is on the front.
* :func:`front_frame`: the Pareto front (:func:`nas.pareto.front_trials`: the COMPLETE, feasible,
  non-dominated trials). Pruned trials keep their partial values in the table but are never on
  the front: their accuracy is that of an unfinished training run.
* :func:`hypervolume_history`: the front's hypervolume after each finished trial, against trials
  and against the compute spent (training epochs, wall-clock seconds).

The reference point is stated with every number (:class:`Reference`): by default the accuracy
of the worst complete baseline (of the worst complete trial in a study without baselines), so the
hypervolume counts only what beats a hand-made architecture and rises as the front improves, and
1.1 times the largest cost any trial of the study measured. The normalised hypervolume divides by
the box between the reference and the ideal point (accuracy 1, cost 0).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from . import trial_schema as schema
from .config import COSTS
from .confirm import confirm_frame, find_confirm_study, unfinished, verdict, write_table
from .pareto import TIE_STANDARD_ERRORS, front_trials, hypervolume, is_candidate, tied_with_front
from .rungs import pruning_diagnosis

#: Objectives bounded by [0, 1]: their worst and ideal values are known without looking at data.
BOUNDED_METRICS = {"val_acc": (0.0, 1.0)}
#: Default reference for a cost: this factor times the largest value any trial measured.
COST_MARGIN = 1.1
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def objective_names(study: optuna.Study) -> list[str]:
    names = study.metric_names
    if names is None:
        names = [f"value{i}" for i in range(len(study.directions))]
    return list(names)


def objective_directions(study: optuna.Study) -> list[str]:
    return [d.name.lower() for d in study.directions]


@dataclass(frozen=True)
class Reference:
    """The reference (worst) and ideal point a hypervolume is measured between, per objective."""

    names: tuple[str, ...]
    directions: tuple[str, ...]
    worst: tuple[float, ...]
    ideal: tuple[float, ...]
    #: Where each worst value comes from (e.g. "the worst complete baseline, se"); "" unstated.
    basis: tuple[str, ...] = ()

    def box_volume(self) -> float:
        return math.prod(abs(w - i) for w, i in zip(self.worst, self.ideal, strict=True))

    def describe(self) -> str:
        basis = self.basis or ("",) * len(self.names)
        return ", ".join(
            f"{n}={w:.6g}" + (f" ({b})" if b else "")
            for n, w, b in zip(self.names, self.worst, basis, strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "directions": list(self.directions),
            "worst": list(self.worst),
            "ideal": list(self.ideal),
            "basis": list(self.basis),
        }


def reference_point(
    study: optuna.Study,
    overrides: Mapping[str, float] | None = None,
    trials: Sequence[FrozenTrial] | None = None,
) -> Reference:
    """The study's default :class:`Reference`, with any objective's worst value overridden.

    Metrics in :data:`BOUNDED_METRICS` (accuracy, maximised) use the accuracy of the worst
    complete baseline, or of the worst complete trial where no baseline completed (the bound
    where nothing did), and ideal the upper bound: a reference at accuracy 0 would let the
    accuracy axis swamp every improvement the search makes. Other maximised objectives use the
    smallest value observed and ideal the largest; minimised costs use ``COST_MARGIN`` times the
    largest value any finished trial (complete or pruned) measured, with ideal 0.
    """
    names, directions = objective_names(study), objective_directions(study)
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(names)
    if unknown:
        raise ValueError(
            f"reference names unknown objectives {sorted(unknown)}; the study's objectives are "
            f"{names}"
        )
    trials = trials if trials is not None else study.get_trials(deepcopy=False, states=FINISHED)
    observed = np.array([t.values for t in trials if t.values is not None], dtype=float)
    observed = observed.reshape(-1, len(names))
    worst, ideal, basis = [], [], []
    for k, (name, direction) in enumerate(zip(names, directions, strict=True)):
        column = observed[:, k][np.isfinite(observed[:, k])]
        if name in BOUNDED_METRICS and direction == "maximize":
            low, i = BOUNDED_METRICS[name]
            w, why = _accuracy_reference(trials, k, low)
        elif name in BOUNDED_METRICS:
            (i, w), why = BOUNDED_METRICS[name], "the bound"
        elif direction == "maximize":
            w = float(column.min()) if len(column) else 0.0
            i = float(column.max()) if len(column) else 1.0
            why = "the smallest observed"
        else:
            w = COST_MARGIN * float(column.max()) if len(column) else 1.0
            i = 0.0
            why = f"{COST_MARGIN:g} x the largest measured"
        if name in overrides:
            w, why = float(overrides[name]), "set"
        worst.append(float(w))
        ideal.append(float(i))
        basis.append(why)
    return Reference(tuple(names), tuple(directions), tuple(worst), tuple(ideal), tuple(basis))


def _accuracy_reference(trials: Sequence[FrozenTrial], k: int, bound: float) -> tuple[float, str]:
    """The worst accuracy (objective ``k``) of the complete baselines, else of the complete
    trials, else ``bound``; with where it comes from."""
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.values is not None and math.isfinite(t.values[k])
    ]
    baselines = [t for t in complete if schema.BASELINE.has(t)]
    if baselines:
        worst = min(baselines, key=lambda t: (t.values[k], t.number))
        return worst.values[k], f"the worst complete baseline, {schema.BASELINE.get(worst)}"
    if complete:
        return min(t.values[k] for t in complete), "the worst complete trial"
    return bound, "the bound: no complete trial yet"


# -- tables ---------------------------------------------------------------------------------------


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, summary, objectives, every cost (``cost_<name>``),
    epochs run, pruned-at epoch, duration, worker, notes, ``on_front``, then the sampled
    parameters flattened as ``param_<name>``."""
    names = objective_names(study)
    front = {t.number for t in front_trials(study)}
    tied = {t.number for t in tied_with_front(study)}
    rows = [
        _row(t, names, t.number in front, t.number in tied)
        for t in study.get_trials(deepcopy=False)
    ]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=_fixed_columns(names))
    fixed = _fixed_columns(names)
    costs = sorted(c for c in frame.columns if c.startswith("cost_"))
    params = sorted(c for c in frame.columns if c.startswith("param_"))
    return frame[fixed + costs + params]


def _fixed_columns(names: list[str]) -> list[str]:
    return [
        "trial",
        "state",
        "summary",
        "baseline",
        *names,
        "val_acc_se",
        "on_front",
        "tied_with_front",
        "epochs",
        "pruned_at_epoch",
        "duration_s",
        "worker",
        "note",
    ]


def front_frame(study: optuna.Study) -> pd.DataFrame:
    """The Pareto front as a table (the columns of :func:`trials_frame` that matter for a
    choice), best first in the first objective."""
    names = objective_names(study)
    trials = front_trials(study)
    frame = pd.DataFrame([_row(t, names, True, False) for t in trials])
    columns = ["trial", "summary", *names, "val_acc_se"]
    if frame.empty:
        return pd.DataFrame(columns=[*columns, "epochs", "baseline"])
    costs = sorted(c for c in frame.columns if c.startswith("cost_") and c[5:] not in names)
    frame = frame[[*columns, *costs, "epochs", "baseline"]]
    ascending = objective_directions(study)[0] != "maximize"
    return frame.sort_values([names[0], "trial"], ascending=[ascending, True]).reset_index(
        drop=True
    )


def _row(t: FrozenTrial, names: list[str], on_front: bool, tied: bool) -> dict[str, Any]:
    values = t.values if t.values is not None else [math.nan] * len(names)
    note = schema.FAIL_REASON.get(t, "")
    if t.state == TrialState.PRUNED:
        note = f"pruned after {schema.epochs_run(t)} epochs"
    elif schema.DUPLICATE_OF.has(t):
        note = f"duplicate of trial {schema.DUPLICATE_OF.get(t)}"
    if schema.RETRY_OF.has(t):
        note = f"{note}; retry of trial {schema.RETRY_OF.get(t)}".lstrip("; ")
    row: dict[str, Any] = {
        "trial": t.number,
        "state": t.state.name,
        "summary": schema.SUMMARY.get(t, ""),
        "baseline": schema.BASELINE.get(t, ""),
        **dict(zip(names, values, strict=True)),
        "val_acc_se": schema.VAL_ACC_SE.get(t, math.nan),
        "on_front": on_front,
        "tied_with_front": tied,
        "epochs": schema.epochs_run(t),
        "pruned_at_epoch": schema.PRUNED_AT_EPOCH.get(t) if t.state == TrialState.PRUNED else None,
        "duration_s": t.duration.total_seconds() if t.duration is not None else math.nan,
        "worker": schema.WORKER.get(t, ""),
        "note": note,
    }
    cost = schema.cost(t)
    for key in COSTS:
        if cost.get(key) is not None:
            row[f"cost_{key}"] = cost[key]
    for key, value in t.params.items():
        row[f"param_{key}"] = value
    return row


# -- baselines and noise --------------------------------------------------------------------------


def _measured(t: FrozenTrial) -> dict[str, Any]:
    return {
        "trial": t.number,
        "summary": schema.SUMMARY.get(t, ""),
        "val_acc": float(t.values[0]),
        "val_acc_se": schema.VAL_ACC_SE.get(t),
    }


def _gain(best: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``best`` minus ``other`` with the standard error of the difference (binomial, one run
    each) and whether it exceeds :data:`TIE_STANDARD_ERRORS` of them."""
    gain = best["val_acc"] - other["val_acc"]
    if best["val_acc_se"] is None or other["val_acc_se"] is None:
        return {"gain": gain, "se": None, "exceeds_noise": None}
    se = math.hypot(best["val_acc_se"], other["val_acc_se"])
    return {"gain": gain, "se": se, "exceeds_noise": bool(gain > TIE_STANDARD_ERRORS * se)}


def baseline_gains(study: optuna.Study) -> dict[str, Any] | None:
    """The most accurate front member against the baseline ``none`` and against the best
    baseline (``baseline`` trials that completed), each gain with its standard error; None
    when the study has no baseline or no front, does not maximise accuracy first, or is a
    confirm study."""
    front = front_trials(study)
    maximizes = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    if not front or not maximizes or schema.confirm_plan(study) is not None:
        return None  # a confirm study's repeats are judged by nas.confirm.confirm_frame
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if schema.BASELINE.has(t)
    ]
    if not done:
        return None
    best = _measured(max(front, key=lambda t: (t.values[0], -t.number)))
    top_trial = max(done, key=lambda t: (t.values[0], -t.number))
    top = _measured(top_trial)
    facts: dict[str, Any] = {
        "best_front": best,
        "best_baseline": {**top, "name": schema.BASELINE.get(top_trial)},
        "vs_best_baseline": _gain(best, top),
        "tie_standard_errors": TIE_STANDARD_ERRORS,
    }
    none = next((t for t in done if schema.BASELINE.get(t) == "none"), None)
    if none is not None:
        facts["none"] = _measured(none)
        facts["vs_none"] = _gain(best, facts["none"])
    return facts


def gain_line(study: optuna.Study) -> str | None:
    """One line for the end of a search: does the best front accuracy beat ``none`` by more
    than its noise? (One run each: ``nas confirm`` repeats them with fresh seeds.)"""
    facts = baseline_gains(study)
    if facts is None or "vs_none" not in facts:
        return None
    gain, none = facts["vs_none"], facts["none"]
    text = (
        f"best front accuracy {facts['best_front']['val_acc']:.4f} (trial "
        f"{facts['best_front']['trial']}) vs baseline none {none['val_acc']:.4f}: "
        f"{100 * gain['gain']:+.2f} points"
    )
    if gain["se"] is None:
        return f"{text} (no standard error recorded)"
    verdict = "exceeds" if gain["exceeds_noise"] else "does not exceed"
    return (
        f"{text}, {verdict} its noise ({TIE_STANDARD_ERRORS:g} s.e. = "
        f"{100 * TIE_STANDARD_ERRORS * gain['se']:.2f} points, one run each; `nas confirm` "
        "repeats them with fresh seeds)"
    )


# -- history --------------------------------------------------------------------------------------


def hypervolume_history(study: optuna.Study, reference: Reference | None = None) -> pd.DataFrame:
    """The front's hypervolume after each finished trial, in order of completion.

    Columns: ``trial``, ``finished`` (trials finished so far), ``epochs_spent`` (training epochs
    of every finished or failed trial so far: pruning saves exactly these), ``elapsed_s`` (wall
    clock since the first trial started), ``hypervolume``, ``hypervolume_norm``.
    """
    reference = reference or reference_point(study)
    directions = list(reference.directions)
    ended = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.datetime_complete is not None
    ]
    ended.sort(key=lambda t: (t.datetime_complete, t.number))
    if not ended:
        return pd.DataFrame(
            columns=[
                "trial",
                "finished",
                "epochs_spent",
                "elapsed_s",
                "hypervolume",
                "hypervolume_norm",
            ]
        )
    start = min(t.datetime_start for t in ended if t.datetime_start is not None)
    box = reference.box_volume() or 1.0
    rows, front_points, spent, finished = [], [], 0, 0
    for t in ended:
        spent += schema.epochs_spent(t)
        if t.state in FINISHED:
            finished += 1
        if is_candidate(t):
            front_points.append(t.values)
        hv = hypervolume(front_points, reference.worst, directions) if front_points else 0.0
        rows.append(
            {
                "trial": t.number,
                "finished": finished,
                "epochs_spent": spent,
                "elapsed_s": (t.datetime_complete - start).total_seconds(),
                "hypervolume": hv,
                "hypervolume_norm": hv / box,
            }
        )
    return pd.DataFrame(rows)


# -- the report on disk ---------------------------------------------------------------------------


def write_report(
    study: optuna.Study, out_dir: str | Path, overrides: Mapping[str, float] | None = None
) -> dict[str, Path]:
    """Write ``trials.csv``, ``front.csv``, ``hypervolume.csv`` and ``summary.json`` (counts,
    reference point, final hypervolume, the gains over the baselines, the trials tied with the
    front) to ``out_dir``, and ``confirm.csv`` where the study has a confirm study (``nas
    confirm``) whose planned runs are all complete; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reference = reference_point(study, overrides)
    history = hypervolume_history(study, reference)
    trials = trials_frame(study)
    paths = {
        "trials": out / "trials.csv",
        "front": out / "front.csv",
        "hypervolume": out / "hypervolume.csv",
        "summary": out / "summary.json",
    }
    trials.to_csv(paths["trials"], index=False)
    front_frame(study).to_csv(paths["front"], index=False)
    history.to_csv(paths["hypervolume"], index=False)
    confirm = find_confirm_study(study)
    facts = summary(study, reference, history)
    if confirm is not None:
        frame = confirm_frame(confirm, study)
        left = len(unfinished(confirm))
        facts["confirm"] = {
            "study": confirm.study_name,
            "verdict": verdict(frame),
            "unfinished_runs": left,
        }
        if not left:  # a partial table never replaces a complete one
            paths["confirm"] = write_table(frame, out / "confirm.csv")
    paths["summary"].write_text(json.dumps(facts, indent=2) + "\n")
    return paths


def summary(
    study: optuna.Study, reference: Reference, history: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Counts, epochs spent, the reference point and the final hypervolume, JSON-ready."""
    history = hypervolume_history(study, reference) if history is None else history
    states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)]).value_counts()
    last = history.iloc[-1] if len(history) else None
    return {
        "study": study.study_name,
        "objectives": dict(zip(reference.names, reference.directions, strict=True)),
        "trials": {k: int(v) for k, v in states.items()},
        "front_size": len(front_trials(study)),
        "epochs_spent": int(last["epochs_spent"]) if last is not None else 0,
        "reference": reference.to_dict(),
        "hypervolume": float(last["hypervolume"]) if last is not None else 0.0,
        "hypervolume_norm": float(last["hypervolume_norm"]) if last is not None else 0.0,
        "baselines": baseline_gains(study),
        "tied_with_front": [t.number for t in tied_with_front(study)],
        "pruning": pruning_diagnosis(study),
    }
