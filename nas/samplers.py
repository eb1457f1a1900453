"""A sampler that knows what a placement space is: independent sites, shared blocks, known costs.

:class:`AdditiveThompsonSampler` models validation accuracy as additive over the space's scopes
(stages or blocks): ``acc = mu + sum over scopes of (family[block] + choice[block, params,
position] + local[scope, choice])``, a Bayesian linear model whose three levels share what one
placement teaches about another (SE at stage 2 says something about SE at stage 3, and about SE
with another reduction). The prior scales and the noise are chosen by maximising the marginal
likelihood on the trials so far (empirical Bayes). Each new trial is chosen by Thompson sampling
for several objectives: one draw of the accuracy of every candidate architecture from the
posterior, and the candidate not tried yet that adds most hypervolume to the drawn accuracies of
those tried, with its costs, which are known before training (``cost_fn``). Pruned trials count as
tried and do not enter the model (their partial accuracy is not a final one).

The candidates are every architecture of the space (:func:`search_spaces.space.
architecture_params`); spaces above ``max_candidates`` are sampled. The chosen architecture's
parameters are stored on the trial (system attr ``placement:proposal``) and handed out as the
trial suggests them, so any objective that calls ``suggest_arch`` works unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from search_spaces.build import build_model
from search_spaces.cost import model_cost
from search_spaces.ort_latency import ORT_LATENCY_COSTS
from search_spaces.space import (
    SearchSpace,
    architecture_params,
    everywhere_params,
    scope_params,
    suggest_arch,
)
from search_spaces.spec import BlockChoice

from .pareto import hypervolume, non_dominated_sort

PROPOSAL_KEY = "placement:proposal"
#: Prior sd of the (family, choice, local) levels relative to the accuracies' sd, searched by
#: marginal likelihood, and the noise sd searched likewise.
PRIOR_SCALES = (0.25, 0.5, 1.0, 2.0)
NOISE_SCALES = (0.1, 0.2, 0.4, 0.7, 1.0)
#: The local (scope-specific) level's prior sd relative to the shared levels'.
LOCAL_SHRINK = 0.5


def placement_features(space: SearchSpace, params_list: Sequence[dict[str, Any]]) -> np.ndarray:
    """Design matrix of the additive model: intercept, block-family counts, choice counts, and
    (scope, choice) indicators; ``none`` is the reference level (no columns)."""
    scopes = list(space.scopes())
    choices = [c for c in space.choices() if not c.is_none]
    families = sorted({c.block for c in choices})
    key = {str(c): i for i, c in enumerate(choices)}
    n_f, n_c = len(families), len(choices)
    width = 1 + n_f + n_c + len(scopes) * n_c
    rows = np.zeros((len(params_list), width))
    rows[:, 0] = 1.0
    for r, params in enumerate(params_list):
        spec = suggest_arch(optuna.trial.FixedTrial(params), space)
        for s, scope in enumerate(scopes):
            choice = spec.choice(space.scopes()[scope][0])
            if choice.is_none:
                continue
            c = key[str(choice)]
            rows[r, 1 + families.index(choice.block)] += 1
            rows[r, 1 + n_f + c] += 1
            rows[r, 1 + n_f + n_c + s * n_c + c] = 1
    return rows


def _prior_variances(space: SearchSpace, scale: float) -> np.ndarray:
    n_c = sum(not c.is_none for c in space.choices())
    n_f = len({c.block for c in space.choices() if not c.is_none})
    shared = np.full(n_f + n_c, scale**2)
    local = np.full(len(space.scopes()) * n_c, (LOCAL_SHRINK * scale) ** 2)
    return np.concatenate([[1e4], shared, local])  # a flat prior for the intercept


def posterior(
    x: np.ndarray, y: np.ndarray, prior_var: np.ndarray, noise_var: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian posterior (mean, covariance) of the weights, and the log marginal likelihood."""
    precision = x.T @ x / noise_var + np.diag(1.0 / prior_var)
    cov = np.linalg.inv(precision)
    cov = (cov + cov.T) / 2
    mean = cov @ x.T @ y / noise_var
    k = x @ np.diag(prior_var) @ x.T + noise_var * np.eye(len(y))
    sign, logdet = np.linalg.slogdet(k)
    log_ml = -0.5 * (y @ np.linalg.solve(k, y) + logdet + len(y) * math.log(2 * math.pi))
    return mean, cov, float(log_ml) if sign > 0 else -math.inf


class AdditiveCosts:
    """Costs of every architecture of a space from one model per (scope, choice): the model
    with no attention, and for each scope and choice the model with that choice at that scope
    alone; an architecture costs the first plus each of its choices' differences. Exact for
    ``params`` and ``flops`` (an attention block keeps its input's shape, so blocks add their
    costs independently); ``activation_bytes`` and latencies are additive approximations.
    1 + scopes x (choices - 1) models are measured, once, when first needed."""

    def __init__(
        self,
        space: SearchSpace,
        names: Sequence[str],
        input_shape: Sequence[int],
        *,
        num_classes: int,
        latency_batch: int = 32,
    ) -> None:
        self.space = space
        self.names = list(names)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.latency_batch = latency_batch
        self._deltas: dict[tuple[str, str], np.ndarray] | None = None
        self._base: np.ndarray | None = None

    def _measure(self, params: dict[str, Any]) -> np.ndarray:
        spec = suggest_arch(
            optuna.trial.FixedTrial(params),
            self.space,
            in_channels=self.input_shape[0],
            num_classes=self.num_classes,
        )
        latency = any(name.startswith("latency") for name in self.names)
        ort_latency = any(name in ORT_LATENCY_COSTS for name in self.names)
        cost = model_cost(
            build_model(spec),
            self.input_shape,
            latency=latency,
            ort_latency=ort_latency,
            batch_size=self.latency_batch,
        ).to_dict()
        return np.array([float(cost[name]) for name in self.names])

    def _fit(self) -> None:
        none = everywhere_params(self.space, BlockChoice())
        self._base = self._measure(none)
        self._deltas = {}
        for scope in self.space.scopes():
            for choice in self.space.choices():
                if not choice.is_none:
                    params = {**none, **scope_params(self.space, scope, choice)}
                    self._deltas[scope, str(choice)] = self._measure(params) - self._base

    def __call__(self, params: dict[str, Any]) -> list[float]:
        if self._deltas is None:
            self._fit()
        spec = suggest_arch(optuna.trial.FixedTrial(params), self.space)
        total = self._base.copy()
        for scope, sites in self.space.scopes().items():
            choice = spec.choice(sites[0])
            if not choice.is_none:
                total += self._deltas[scope, str(choice)]
        return total.tolist()


class AdditiveThompsonSampler(BaseSampler):
    """Thompson sampling over an additive model of a placement space (module docstring).

    Args:
        space: the search space the objective samples with ``suggest_arch``.
        cost_fn: the minimised objectives' values of an architecture, from its trial parameters
            (known before training: parameters, FLOPs, a latency table), e.g.
            :class:`AdditiveCosts`; ``None`` until set (the engine sets it once its data is
            loaded), and required before the first proposal.
        n_startup_trials: trials drawn at random before the model is used.
        max_candidates: at most this many candidates per trial (a random subset of larger
            spaces).
        seed: seed of the draws.
    """

    def __init__(
        self,
        space: SearchSpace,
        cost_fn: Callable[[dict[str, Any]], Sequence[float]] | None,
        *,
        n_startup_trials: int = 4,
        max_candidates: int = 5000,
        seed: int | None = None,
    ) -> None:
        self.space = space
        self.cost_fn = cost_fn
        self.n_startup_trials = n_startup_trials
        self.max_candidates = max_candidates
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)
        size = space.size()
        self._all = architecture_params(space) if size <= 50 * max_candidates else None
        self._features: dict[str, np.ndarray] = {}
        self._prior_var = {scale: _prior_variances(space, scale) for scale in PRIOR_SCALES}
        self._costs: dict[str, np.ndarray] = {}

    # -- Optuna's sampler interface ----------------------------------------------------------

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:  # an enqueued trial keeps its parameters
            return
        proposal = self._propose(study)
        if proposal is not None:
            study._storage.set_trial_system_attr(trial._trial_id, PROPOSAL_KEY, proposal)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        proposal = trial.system_attrs.get(PROPOSAL_KEY) or {}
        if param_name in proposal:
            return proposal[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._random.after_trial(study, trial, state, values)

    # -- the model ---------------------------------------------------------------------------

    @staticmethod
    def _key(params: dict[str, Any]) -> str:
        return repr(sorted(params.items()))

    def _featurise(self, params_list: list[dict[str, Any]]) -> np.ndarray:
        missing = [p for p in params_list if self._key(p) not in self._features]
        if missing:
            for p, row in zip(missing, placement_features(self.space, missing), strict=True):
                self._features[self._key(p)] = row
        return np.array([self._features[self._key(p)] for p in params_list])

    def _cost(self, params: dict[str, Any]) -> np.ndarray:
        if self.cost_fn is None:
            raise RuntimeError(
                "AdditiveThompsonSampler needs cost_fn (the costs of an architecture from its "
                "trial parameters), e.g. nas.samplers.AdditiveCosts(space, names, input_shape, "
                "num_classes=...)"
            )
        key = self._key(params)
        if key not in self._costs:
            self._costs[key] = np.asarray(self.cost_fn(params), dtype=float)
        return self._costs[key]

    def _candidates(self, tried: set[str]) -> list[dict[str, Any]]:
        if self._all is not None:
            pool = [p for p in self._all if self._key(p) not in tried]
            if len(pool) > self.max_candidates:
                picks = self._rng.choice(len(pool), self.max_candidates, replace=False)
                pool = [pool[i] for i in sorted(picks)]
            return pool
        study = optuna.create_study(sampler=RandomSampler(seed=int(self._rng.integers(2**31))))
        pool = []
        for _ in range(self.max_candidates):
            trial = study.ask()
            suggest_arch(trial, self.space)
            if self._key(trial.params) not in tried:
                pool.append(dict(trial.params))
        return pool

    def _propose(self, study: Study) -> dict[str, Any] | None:
        """The parameters of the next architecture, or None to sample at random."""
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
        if len(complete) < self.n_startup_trials:
            return None
        tried = {self._key(t.params) for t in trials if t.params}
        candidates = self._candidates(tried)
        if not candidates:
            return None
        sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        seen = [dict(t.params) for t in complete]
        y = sign * np.array([t.values[0] for t in complete])
        x = self._featurise(seen)
        centre, scale = y.mean(), y.std() or 1.0
        z = (y - centre) / scale
        fits = [
            posterior(x, z, self._prior_var[prior], noise**2)
            for prior, noise in itertools.product(PRIOR_SCALES, NOISE_SCALES)
        ]
        mean, cov, _ = max(fits, key=lambda fit: fit[2])
        weights = self._rng.multivariate_normal(mean, cov, method="cholesky")
        drawn_seen = centre + scale * (x @ weights)
        drawn = centre + scale * (self._featurise(candidates) @ weights)
        return candidates[self._best_addition(study, seen, drawn_seen, candidates, drawn)]

    def _best_addition(
        self,
        study: Study,
        seen: list[dict[str, Any]],
        drawn_seen: np.ndarray,
        candidates: list[dict[str, Any]],
        drawn: np.ndarray,
    ) -> int:
        """Index of the candidate whose drawn accuracy and known costs add most hypervolume to
        the drawn front of the trials so far (ties: the most accurate draw)."""
        directions = ["maximize"] + ["minimize"] * (len(study.directions) - 1)
        seen_points = np.column_stack([drawn_seen, [self._cost(p) for p in seen]])
        cand_points = np.column_stack([drawn, [self._cost(p) for p in candidates]])
        both = np.vstack([seen_points, cand_points])
        reference = np.array([both[:, 0].min() - 1e-9, *(1.01 * both[:, 1:].max(axis=0) + 1e-9)])
        front = seen_points[non_dominated_sort(seen_points, directions)[0]]
        if front.shape[1] == 2:
            gains = hypervolume_gains_2d(front, cand_points, reference)
        else:
            base = hypervolume(front, reference, directions)
            gains = np.array(
                [
                    hypervolume(np.vstack([front, point]), reference, directions) - base
                    for point in cand_points
                ]
            )
        if gains.max() <= 0:
            return int(np.argmax(drawn))
        return int(np.argmax(gains + 1e-12 * (drawn - drawn.min())))


def hypervolume_gains_2d(
    front: np.ndarray, points: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """Hypervolume each of ``points`` (accuracy maximised, cost minimised) adds to ``front``,
    all at once: the area the point dominates above the front's staircase."""
    order = np.argsort(front[:, 1])
    costs, accs = front[order, 1], np.maximum.accumulate(front[order, 0])
    left = np.concatenate([[-np.inf], costs])  # step j covers [left_j, right_j) at level_j
    right = np.concatenate([costs, [reference[1]]])
    level = np.maximum(np.concatenate([[reference[0]], accs]), reference[0])
    width = np.minimum(right, reference[1])[None, :] - np.maximum(left[None, :], points[:, 1:2])
    height = points[:, 0:1] - level[None, :]
    return (np.clip(width, 0, None) * np.clip(height, 0, None)).sum(axis=1)
