"""nas.pareto against independent definitions, and one front for the whole engine."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nas import export
from nas import trial_schema as schema
from nas.checkpoints import checkpoint_location, delete_dominated_checkpoints
from nas.dashboard import front_2d, front_table_html
from nas.pareto import (
    as_direction,
    crowding_distance,
    hypervolume,
    is_feasible,
    non_dominated_sort,
)
from nas.report import front_frame, hypervolume_history, reference_point, trials_frame

DIRECTIONS = ["maximize", "minimize"]

# -- non-dominated sort and crowding ------------------------------------------------------------


def _dominates(a: np.ndarray, b: np.ndarray, signs: np.ndarray) -> bool:
    a, b = a * signs, b * signs  # all minimised
    return bool(np.all(a <= b) and np.any(a < b))


@pytest.mark.parametrize("seed", range(5))
def test_non_dominated_sort_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 5, size=(30, 3)).astype(float)  # small grid: ties and duplicates
    directions = ["maximize", "minimize", "minimize"]
    signs = np.array([-1.0, 1.0, 1.0])
    # O(n^2) definition: the rank is the length of the longest chain of dominators.
    rank = {}
    for i in sorted(range(len(points)), key=lambda i: tuple(points[i] * signs)):
        dominators = [j for j in range(len(points)) if _dominates(points[j], points[i], signs)]
        rank[i] = 1 + max((rank[j] for j in dominators), default=-1)
    expected = [sorted(i for i in rank if rank[i] == r) for r in range(max(rank.values()) + 1)]
    assert non_dominated_sort(points, directions) == expected


def test_non_dominated_sort_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        non_dominated_sort(np.zeros((3, 2)), ["maximize"])
    with pytest.raises(
        ValueError, match=r"^points contain NaN; drop or replace those rows before ranking\.$"
    ):
        non_dominated_sort([[0.0, math.nan]], DIRECTIONS)
    with pytest.raises(
        ValueError, match=r"^directions must be 'maximize' or 'minimize', got 'up'\.$"
    ):
        non_dominated_sort([[0.0, 1.0]], ["maximize", "up"])
    with pytest.raises(ValueError, match=r"^direction must be 'maximize' or 'minimize', got 1\.$"):
        as_direction(1)


@pytest.mark.parametrize("seed", range(5))
def test_crowding_distance_matches_definition(seed: int) -> None:
    points = np.random.default_rng(seed).normal(size=(12, 3))  # continuous: no ties
    expected = np.zeros(len(points))
    for i, m in itertools.product(range(len(points)), range(points.shape[1])):
        column = points[:, m]
        above, below = column[column > column[i]], column[column < column[i]]
        if len(above) == 0 or len(below) == 0:
            expected[i] = np.inf
        elif np.isfinite(expected[i]):
            expected[i] += (above.min() - below.max()) / (column.max() - column.min())
    np.testing.assert_allclose(crowding_distance(points), expected)


def test_crowding_distance_small_fronts_and_flat_objective() -> None:
    assert np.isinf(crowding_distance([[1.0, 2.0], [3.0, 4.0]])).all()
    distance = crowding_distance([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0]])  # second column flat
    assert np.isinf(distance[[0, 2]]).all() and distance[1] == pytest.approx(1.0)


def test_crowding_distance_of_objectives_spanning_less_than_one() -> None:
    """Accuracies span less than 1 and still count: by hand, the middle point adds
    (0.9 - 0.5) / 0.4 for accuracy and (4 - 1) / 3 for FLOPs."""
    distance = crowding_distance([[0.9, 1.0], [0.8, 2.0], [0.5, 4.0]])
    assert np.isinf(distance[[0, 2]]).all() and distance[1] == pytest.approx(2.0)


@pytest.mark.parametrize("seed", range(3))
def test_crowding_distance_breaks_ties_by_row_order(seed: int) -> None:
    """With tied values the sort is stable: of equal values the earlier row comes first, so the
    distances are those of Python's (stable) sort on a front of 40 rows on a small grid (numpy's
    default sort orders ties differently from 17 rows on)."""
    points = np.random.default_rng(seed).integers(0, 4, size=(40, 2)).astype(float)
    expected = np.zeros(len(points))
    for column in points.T:
        order = sorted(range(len(points)), key=lambda i: column[i])
        span = column[order[-1]] - column[order[0]]
        expected[order[0]] = expected[order[-1]] = np.inf
        for before, here, after in zip(order[:-2], order[1:-1], order[2:], strict=True):
            expected[here] += (column[after] - column[before]) / span
    np.testing.assert_array_equal(crowding_distance(points), expected)


def test_crowding_distance_rejects_points_that_are_not_a_table() -> None:
    with pytest.raises(ValueError, match=r"points must be a 2-D array \(n, m\), got shape \(3,\)"):
        crowding_distance([1.0, 2.0, 3.0])


def test_a_trial_exactly_at_its_cap_is_feasible() -> None:
    """Optuna's rule: feasible when every constraint value (cost - cap) is <= 0, so a trial at
    its cap is feasible; above it, it is not."""

    def trial(**constraints: float) -> optuna.trial.FrozenTrial:
        frozen = optuna.trial.create_trial(values=[0.5])
        for name, value in constraints.items():
            frozen.set_constraint(name, value)
        return frozen

    assert is_feasible(trial()) and is_feasible(trial(params=0.0, flops=-1.0))
    assert not is_feasible(trial(params=1e-9, flops=-1.0))


# -- hypervolume ----------------------------------------------------------------------------------


def _inclusion_exclusion(loss: np.ndarray, ref: np.ndarray) -> float:
    """The union of the boxes [p, ref] of minimisation points, as the alternating sum of the
    volumes of their intersections over every subset (float64)."""
    total = 0.0
    for size in range(1, len(loss) + 1):
        for subset in itertools.combinations(loss, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * float(np.prod(np.clip(ref - corner, 0, None)))
    return total


def _cell_count(loss: np.ndarray, ref: np.ndarray) -> float:
    """The same union measured on the grid of the points' coordinates: every cell between
    consecutive coordinates is inside iff some point is <= its lower corner in every axis."""
    axes = [np.unique(np.append(loss[:, k][loss[:, k] < ref[k]], ref[k])) for k in range(len(ref))]
    lows = np.stack(np.meshgrid(*(a[:-1] for a in axes), indexing="ij"), axis=-1)
    widths = np.meshgrid(*(np.diff(a) for a in axes), indexing="ij")
    inside = (loss[:, None] <= lows.reshape(-1, len(ref))[None]).all(axis=2).any(axis=0)
    return float((np.prod(widths, axis=0).ravel() * inside).sum())


def test_hypervolume_of_hand_made_points() -> None:
    # Maximise accuracy, minimise cost; reference (0, 10). Boxes: 0.5x6, 0.8x3 overlap 0.5x3.
    points = [(0.5, 4.0), (0.8, 7.0), (0.4, 9.0)]  # the last is dominated by the first
    assert hypervolume(points, (0.0, 10.0), DIRECTIONS) == pytest.approx(
        0.5 * 6 + 0.8 * 3 - 0.5 * 3
    )
    assert hypervolume([], (0.0, 10.0), DIRECTIONS) == 0.0
    assert hypervolume([(3.0,)], (5.0,), ["minimize"]) == 2.0


def test_points_not_strictly_better_than_the_reference_add_nothing() -> None:
    ref = (0.0, 10.0)
    assert hypervolume([(0.9, 10.0)], ref, DIRECTIONS) == 0.0  # equal in one objective
    assert hypervolume([(0.0, 1.0)], ref, DIRECTIONS) == 0.0
    assert hypervolume([(0.9, 11.0)], ref, DIRECTIONS) == 0.0  # worse in one objective
    assert hypervolume([(-0.1, 1.0)], ref, DIRECTIONS) == 0.0
    assert hypervolume([(math.nan, 1.0), (math.inf, 1.0)], ref, DIRECTIONS) == 0.0
    box = hypervolume([(0.5, 5.0)], ref, DIRECTIONS)
    extra = [(0.5, 5.0), (0.9, 12.0), (1.0, 10.0), (math.nan, 0.0)]
    assert box == 2.5 and hypervolume(extra, ref, DIRECTIONS) == box


def test_hypervolume_rejects_a_reference_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="one per objective"):
        hypervolume([(1.0, 2.0)], (0.0,), DIRECTIONS)


@pytest.mark.parametrize("dims", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_matches_inclusion_exclusion(dims: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    loss = rng.uniform(0, 1, size=(8, dims))
    loss[3] = loss[2]  # duplicates count once
    loss[5, 0] = loss[4, 0]  # a tie in one objective
    loss[7] = 1.5  # beyond the reference: adds nothing
    ref = np.full(dims, 1.2)
    expected = _inclusion_exclusion(loss[:7], ref)
    assert hypervolume(loss, ref, ["minimize"] * dims) == pytest.approx(expected, rel=1e-12)
    # The same set with the first objective maximised (negated) has the same volume.
    signs = np.array([-1.0] + [1.0] * (dims - 1))
    got = hypervolume(loss * signs, ref * signs, ["maximize"] + ["minimize"] * (dims - 1))
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n_points", "dims"), [(25, 2), (14, 3)])
@pytest.mark.parametrize("seed", range(3))
def test_hypervolume_matches_cell_counting(n_points: int, dims: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    loss = rng.integers(0, 6, size=(n_points, dims)) / 5  # a coarse grid: many ties
    ref = np.full(dims, 1.0)  # on the grid: points at 1.0 in some objective add nothing
    expected = _cell_count(loss, ref)
    assert expected > 0
    assert hypervolume(loss, ref, ["minimize"] * dims) == pytest.approx(expected, rel=1e-12)


# -- one front for the engine --------------------------------------------------------------------

NAMES = ("val_acc", "flops", "params")


def _add(study: optuna.Study, state: TrialState, values=None, **kwargs) -> int:
    study.add_trial(
        create_trial(
            state=state,
            values=values,
            params={"x": 0},
            distributions={"x": CategoricalDistribution([0])},
            **kwargs,
        )
    )
    return study.trials[-1].number


def _mixed_study(n_objectives: int, seed: int, folder: Path) -> optuna.Study:
    """Random COMPLETE trials on a coarse grid (ties, identical values), a third of them with
    a constraint (some violated), a violating and a pruned trial that would dominate all, a
    failed trial, and a duplicate sharing its original's checkpoint. Every COMPLETE trial has a
    checkpoint file in ``folder``."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(directions=["maximize"] + ["minimize"] * (n_objectives - 1))
    study.set_metric_names(list(NAMES[:n_objectives]))
    best = [1.0] + [0.0] * (n_objectives - 1)

    for number in range(18):
        path = folder / f"trial_{number}.pt"
        path.touch()
        kind = rng.integers(3)
        _add(
            study,
            TrialState.COMPLETE,
            [rng.integers(0, 4) / 4, *rng.integers(1, 5, size=n_objectives - 1)],
            user_attrs={schema.CHECKPOINT.key: schema.checkpoint_value(path)},
            constraints=None if kind == 0 else {"flops_cap": 1.0 if kind == 1 else -1.0},
        )
    original = _add(
        study,
        TrialState.COMPLETE,
        [0.9] + [3.0] * (n_objectives - 1),
        user_attrs={schema.CHECKPOINT.key: schema.checkpoint_value(folder / "original.pt")},
    )
    (folder / "original.pt").touch()
    _add(
        study,
        TrialState.COMPLETE,
        [0.9] + [3.0] * (n_objectives - 1),
        user_attrs={
            schema.CHECKPOINT.key: schema.checkpoint_value(folder / "original.pt"),
            schema.DUPLICATE_OF.key: original,
        },
    )
    (folder / "infeasible.pt").touch()
    _add(
        study,
        TrialState.COMPLETE,
        best,
        user_attrs={schema.CHECKPOINT.key: schema.checkpoint_value(folder / "infeasible.pt")},
        constraints={"flops_cap": 0.5},
    )
    _add(study, TrialState.PRUNED, best, user_attrs={schema.PRUNED_AT_EPOCH.key: 0})
    _add(study, TrialState.FAIL, user_attrs={schema.FAIL_REASON.key: "NonFiniteLossError"})
    return study


def _table_trials(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<tr><td data-value="(\d+)">', html)}


@pytest.mark.parametrize("n_objectives", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_report_dashboard_export_checkpoints_and_optuna_agree_on_the_front(
    n_objectives: int, seed: int, tmp_path: Path
) -> None:
    study = _mixed_study(n_objectives, seed, tmp_path)
    # Optuna's front, each architecture once: duplicates reuse their original's values.
    duplicates = {t.number for t in study.best_trials if schema.DUPLICATE_OF.has(t)}
    optunas = {t.number for t in study.best_trials} - duplicates
    assert optunas and len(study.trials) - len(optunas) >= 10

    frame = trials_frame(study)
    assert set(front_frame(study)["trial"]) == optunas
    assert set(frame.loc[frame["on_front"], "trial"]) == optunas
    assert _table_trials(front_table_html(study)) == optunas
    if n_objectives == 2:  # the dashboard's accuracy-cost line is the front itself
        assert set(front_2d(study, frame, "val_acc", "flops", "maximize")["trial"]) == optunas
    assert {t.number for t in export.trials._choose(study, None, pareto=True)} == optunas

    delete_dominated_checkpoints(study)
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    kept = {t.number for t in completed if checkpoint_location(t)[1].exists()}
    assert kept - duplicates == optunas  # a duplicate on Optuna's front shares its original's file

    reference = reference_point(study)
    final = hypervolume_history(study, reference)["hypervolume"].iloc[-1]
    points = [study.trials[n].values for n in optunas]
    expected = hypervolume(points, reference.worst, reference.directions)
    assert expected > 0 and final == pytest.approx(expected, rel=1e-12)
