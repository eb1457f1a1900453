"""Tables of a study's trials and of its Pareto front (pandas)."""

from __future__ import annotations

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState


def objective_names(study: optuna.Study) -> list[str]:
    names = study.metric_names
    if names is None:
        names = [f"value{i}" for i in range(len(study.directions))]
    return list(names)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, summary, objective values, epochs run, reason."""
    names = objective_names(study)
    rows = [_row(t, names) for t in study.get_trials(deepcopy=False)]
    return pd.DataFrame(rows, columns=_columns(names))


def _columns(names: list[str]) -> list[str]:
    return ["trial", "state", "summary", *names, "epochs", "note"]


def front_frame(study: optuna.Study) -> pd.DataFrame:
    """The Pareto front of COMPLETE trials (Optuna's ``best_trials``), best accuracy first."""
    names = objective_names(study)
    trials = study.best_trials if len(study.directions) > 1 else _single_best(study)
    frame = pd.DataFrame([_row(t, names) for t in trials], columns=_columns(names))
    frame = frame.drop(columns=["state", "note"])
    if len(frame):
        frame = frame.sort_values(names[0], ascending=study.directions[0].name != "MAXIMIZE")
    return frame.reset_index(drop=True)


def _single_best(study: optuna.Study) -> list[FrozenTrial]:
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [study.best_trial] if completed else []


def _row(t: FrozenTrial, names: list[str]) -> dict:
    values = t.values or [None] * len(names)
    note = t.user_attrs.get("fail_reason", "")
    if t.state == TrialState.PRUNED:
        note = f"pruned after {t.user_attrs.get('epochs_run', len(t.intermediate_values))} epochs"
    elif "duplicate_of" in t.user_attrs:
        note = f"duplicate of trial {t.user_attrs['duplicate_of']}"
    return {
        "trial": t.number,
        "state": t.state.name,
        "summary": t.user_attrs.get("summary", ""),
        **dict(zip(names, values, strict=True)),
        "epochs": t.user_attrs.get("epochs_run", len(t.intermediate_values)),
        "note": note,
    }
