"""A confirm study's runs as stored: each (repeat, architecture) with its trials, the repeats
that failed queued again, those that gave up, and the budget of the runs still to train.

Each ``nas confirm`` (and each of its rounds) queues again every planned run that has no
COMPLETE trial and none waiting or running (:func:`requeue_failed`): a repeat interrupted twice,
killed with its worker or failed on a full disk since freed trains again. It is queued once,
never as two waiting copies, and at most :data:`MAX_ATTEMPTS` times: a run whose trials failed
that often has given up (:func:`gave_up`) and the confirmation cannot complete.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import trial_schema as schema
from ..study import enqueue_retry

#: Failed trials a confirm run (one architecture, one repeat) may have; then it gives up.
MAX_ATTEMPTS = 5
#: Characters of a failure reason quoted in the one-line message of a run that gave up.
QUOTED_REASON = 120


def _key_of(trial: FrozenTrial) -> str:
    """The :attr:`.planning.Planned.key` of a confirm trial."""
    if schema.BASELINE.has(trial):
        return f"baseline {schema.BASELINE.get(trial)}"
    return f"trial {schema.SOURCE_TRIAL.get(trial)}"


def _trials_by_run(confirm: optuna.Study) -> dict[tuple[int, str], list[FrozenTrial]]:
    """Every (repeat, key) the study has a trial for, with its trials (oldest first)."""
    runs: dict[tuple[int, str], list[FrozenTrial]] = {}
    for t in confirm.get_trials(deepcopy=False):
        if schema.REPLICATE.has(t):
            runs.setdefault((int(schema.REPLICATE.get(t)), _key_of(t)), []).append(t)
    return runs


def _scheduled(confirm: optuna.Study) -> dict[tuple[int, str], list[TrialState]]:
    """Every (repeat, key) the study has a trial for, with the states of its trials."""
    return {run: [t.state for t in trials] for run, trials in _trials_by_run(confirm).items()}


@dataclass(frozen=True)
class GaveUp:
    """A run whose trials all failed :data:`MAX_ATTEMPTS` times, and the last one's reason."""

    replicate: int
    key: str
    attempts: int
    reason: str

    def describe(self) -> str:
        reason = self.reason.strip().split("\n")[0] or "no reason recorded"
        if len(reason) > QUOTED_REASON:
            reason = reason[: QUOTED_REASON - 3] + "..."
        return f"{self.key} repeat {self.replicate} ({self.attempts} failed, the last: {reason})"


def _all_failed(trials: list[FrozenTrial]) -> bool:
    """Whether none of a run's trials completed, waits or runs."""
    return all(t.state == TrialState.FAIL for t in trials)


def requeue_failed(confirm: optuna.Study) -> int:
    """Queue each run whose trials all failed once more, while it has fewer than
    :data:`MAX_ATTEMPTS`; returns how many were queued. Call it under the study's machine lock
    (``nas.storage.machine_lock``), so that local processes do not queue a run twice."""
    queued = 0
    for trials in _trials_by_run(confirm).values():
        if _all_failed(trials) and len(trials) < MAX_ATTEMPTS:
            queued += enqueue_retry(confirm, trials[-1], len(trials))
    return queued


def gave_up(confirm: optuna.Study) -> list[GaveUp]:
    """The runs whose trials all failed, :data:`MAX_ATTEMPTS` times or more."""
    return [
        GaveUp(r, key, len(trials), str(schema.FAIL_REASON.get(trials[-1], "")))
        for (r, key), trials in _trials_by_run(confirm).items()
        if _all_failed(trials) and len(trials) >= MAX_ATTEMPTS
    ]


def gave_up_message(name: str, runs: list[GaveUp]) -> str:
    """One line: which runs of the confirm study ``name`` gave up, why, and what to do."""
    return (
        f"{len(runs)} run(s) of {name!r} gave up after {MAX_ATTEMPTS} failed trials: "
        f"{'; '.join(run.describe() for run in runs)}; the confirmation cannot complete: fix "
        "the cause, then confirm again under another name (--name NEW; the trials stored here "
        "are kept)"
    )


def unfinished(confirm: optuna.Study) -> list[tuple[int, str]]:
    """The scheduled (repeat, key) runs with no COMPLETE trial yet."""
    return [
        run
        for run, trials in _trials_by_run(confirm).items()
        if not any(t.state == TrialState.COMPLETE for t in trials)
    ]


def budget(confirm: optuna.Study) -> int:
    """``study.n_trials`` of a confirm study: its finished trials and one per unfinished run."""
    finished = confirm.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return len(finished) + len(unfinished(confirm))
