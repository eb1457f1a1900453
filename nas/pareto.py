"""Pareto dominance, the one definition used by the report, dashboard, export, checkpoints and
pruners.

* :func:`non_dominated_sort` and :func:`crowding_distance`: NSGA-II's ranking (Deb et al., "A
  fast and elitist multiobjective genetic algorithm: NSGA-II", IEEE TEC 2002).
* :func:`is_feasible` and :func:`is_candidate`: whether a trial satisfies its constraints
  (``FrozenTrial.constraints``, all <= 0, Optuna's rule) and may be on the front at all.
* :func:`front_trials`: the study's front, the COMPLETE, feasible, non-dominated trials; for a
  single-objective study the trial(s) with the best value. It is ``study.best_trials``.
* :func:`hypervolume`: the volume dominated by a set of points and bounded by a reference point
  (Zitzler & Thiele 1998), computed exactly by Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume  # Optuna-internal, see hypervolume()
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from . import trial_schema as schema

Direction = str | StudyDirection


def as_direction(value: Direction, field: str = "direction") -> StudyDirection:
    """``value`` as a StudyDirection; ``"maximize"`` and ``"minimize"`` are accepted."""
    if isinstance(value, StudyDirection):
        return value
    if value in ("maximize", "minimize"):
        return StudyDirection.MAXIMIZE if value == "maximize" else StudyDirection.MINIMIZE
    raise ValueError(f"{field} must be 'maximize' or 'minimize', got {value!r}.")


def _signs(directions: Sequence[Direction]) -> np.ndarray:
    """-1 for maximised objectives, +1 for minimised: ``points * signs`` is minimised."""
    return np.array(
        [
            -1.0 if as_direction(d, "directions") == StudyDirection.MAXIMIZE else 1.0
            for d in directions
        ]
    )


def _as_loss(
    points: np.ndarray | Sequence[Sequence[float]], directions: Sequence[Direction]
) -> np.ndarray:
    """Points as an (n, m) float array in which every column is minimised; NaN is refused."""
    array = np.asarray(points, dtype=float)
    if array.ndim != 2 or array.shape[1] != len(directions):
        raise ValueError(
            f"points must have shape (n, {len(directions)}) to match directions, got {array.shape}."
        )
    if np.isnan(array).any():
        raise ValueError("points contain NaN; drop or replace those rows before ranking.")
    return array * _signs(directions)


def non_dominated_sort(
    points: np.ndarray | Sequence[Sequence[float]], directions: Sequence[Direction]
) -> list[list[int]]:
    """Pareto fronts of ``points`` (rows), best front first, each a sorted list of row indices.

    Point ``a`` dominates ``b`` when it is no worse in every objective and strictly better in
    one; front 0 holds the non-dominated points, front k those dominated only by fronts < k.
    Identical points share a front. O(n^2 m) memory and time with numpy.
    """
    loss = _as_loss(points, directions)
    no_worse = (loss[:, None, :] <= loss[None, :, :]).all(axis=2)
    better = (loss[:, None, :] < loss[None, :, :]).any(axis=2)
    dominates = no_worse & better  # dominates[i, j]: i dominates j
    remaining = np.ones(len(loss), dtype=bool)
    fronts = []
    while remaining.any():
        front = remaining & ~(dominates & remaining[:, None]).any(axis=0)
        fronts.append(np.flatnonzero(front).tolist())
        remaining &= ~front
    return fronts


def crowding_distance(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """NSGA-II crowding distance of each point (row) within one front.

    For every objective the points are sorted; the two extremes get ``inf`` and every other
    point adds the gap between its two neighbours divided by the objective's range (an objective
    with zero range adds nothing). Larger means lonelier, i.e. preferred when thinning a front.
    Direction does not matter: the distance is symmetric.
    """
    array = np.asarray(points, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, m), got shape {array.shape}.")
    distance = np.zeros(len(array))
    if len(array) <= 2:
        distance[:] = np.inf
        return distance
    for column in array.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


def is_feasible(trial: FrozenTrial) -> bool:
    """True unless a constraint recorded on the trial is violated (a value > 0, or NaN)."""
    return all(value <= 0 for value in trial.constraints.values())


def is_candidate(trial: FrozenTrial) -> bool:
    """Whether a trial may be on the front: COMPLETE (final values), feasible, and not a
    duplicate (a ``duplicate_of`` trial reused the outcome of a COMPLETE trial with the same
    architecture, which stands for both). A PRUNED trial's values are those of an unfinished
    training run and never count."""
    return (
        trial.state == TrialState.COMPLETE
        and is_feasible(trial)
        and not schema.DUPLICATE_OF.has(trial)
    )


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The COMPLETE, feasible trials that no other such trial dominates, in trial order, each
    architecture once.

    Trials with identical values are all on it; with one objective it holds every trial tied at
    the best value. The same trials as ``study.best_trials`` less the duplicates.
    """
    candidates = [t for t in study.get_trials(deepcopy=False) if is_candidate(t)]
    if not candidates:
        return []
    first = non_dominated_sort([t.values for t in candidates], study.directions)[0]
    return [candidates[i] for i in first]


def hypervolume(
    points: np.ndarray | Sequence[Sequence[float]],
    reference: Sequence[float],
    directions: Sequence[Direction],
) -> float:
    """Volume of objective space dominated by ``points`` and bounded by ``reference``.

    ``directions`` holds ``"maximize"`` or ``"minimize"`` per objective. Points that are not
    finite or not strictly better than the reference in every objective add nothing.
    """
    signs = _signs(directions)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != signs.shape:
        raise ValueError(f"reference has {ref.size} values; give one per objective ({len(signs)})")
    ref_loss = ref * signs
    loss = np.asarray(points, dtype=float).reshape(-1, len(signs)) * signs
    loss = loss[np.isfinite(loss).all(axis=1) & (loss < ref_loss).all(axis=1)]
    if len(loss) == 0:
        return 0.0
    # optuna._hypervolume is Optuna's internal module (exact: 2-D sweep, 3-D grid, WFG above),
    # as of Optuna 5.0; it is what optuna.visualization and the samplers compute with.
    return float(compute_hypervolume(loss, ref_loss))


#: Standard errors of the difference within which a trial counts as tied with the front.
TIE_STANDARD_ERRORS = 2.0


def tied_with_front(study: optuna.Study) -> list[FrozenTrial]:
    """Candidates off the front that are statistically tied with it: for some front member of
    no greater cost in every cost objective, the trial's accuracy (the first objective, to be
    maximised) is lower by at most :data:`TIE_STANDARD_ERRORS` standard errors of the difference
    (``sqrt(se_trial**2 + se_member**2)``, binomial ``val_acc_se`` of each). Trials without a
    recorded standard error are left out; so is every study whose first objective is not
    maximised."""
    if not study.directions or study.directions[0] != StudyDirection.MAXIMIZE:
        return []
    front = front_trials(study)
    on_front = {t.number for t in front}
    tied = []
    for t in study.get_trials(deepcopy=False):
        if t.number in on_front or not is_candidate(t) or not schema.VAL_ACC_SE.has(t):
            continue
        for f in front:
            if not schema.VAL_ACC_SE.has(f):
                continue
            cheaper = all(fc <= tc for fc, tc in zip(f.values[1:], t.values[1:], strict=True))
            se = math.hypot(schema.VAL_ACC_SE.get(t), schema.VAL_ACC_SE.get(f))
            if cheaper and f.values[0] - t.values[0] <= TIE_STANDARD_ERRORS * se:
                tied.append(t)
                break
    return tied
