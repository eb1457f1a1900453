"""Repeats and a confirmed front: ``nas confirm STUDY --top K --seeds S``.

One training run of a small network is one draw from a noisy process: on small budgets the
seed-to-seed spread of an accuracy is as large as the effects of the attention placement a search
looks for. A confirm study retrains the K most accurate architectures of a study's Pareto front
(filled from the next non-dominated fronts where the first holds fewer) and its baselines
(``none`` and the blocks placed everywhere) with S fresh seeds each: full epochs, no pruning, the
same data splits. It is an Optuna study of its own, ``<study>-confirm`` in the same storage,
whose trials are queued up front (``replicate`` r, ``source_trial`` n), so it resumes after a
kill and takes more workers (``nas worker --study <study>-confirm``) like any study. Repeat r
trains every architecture with the r-th seed (model weights, batch order and augmentation), so
the seeds are the blocks of a paired design.

:func:`confirm_frame` turns the repeats into verdicts (:func:`nas.stats.many_to_one`): by
default one residual variance pooled over every run of the architecture x seed table, the gains
over ``none`` tested by Dunnett's many-to-one procedure with simultaneous intervals; per-row
intervals and Holm-adjusted paired t-tests where the rows' variances are clearly unequal or
``--comparison holm`` asks. Accuracy intervals stay in [0, 1] (logit scale). The **confirmed
front** holds the architectures no other dominates on mean validation accuracy and the study's
costs, each marked by whether its gain over ``none`` is significant (adjusted p < 0.05 and a
positive mean difference). With ``--seeds auto --max-seeds M`` (:func:`run_confirm`) the study
looks at planned seed counts (3, 6, ... M) and adds seeds only to the architectures still
undecided against ``none``; each look tests at 0.05 / looks (a Bonferroni split over the
planned looks), so the family-wise error over every look stays at most 0.05.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from search_spaces.space import baselines, suggest_arch

from . import trial_schema as schema
from .config import StudyConfig
from .pareto import front_trials, is_candidate, non_dominated_sort
from .stats import (
    ManyToOne,
    RankCorrelation,
    bonferroni_design,
    detectable_effect,
    dunnett_design,
    many_to_one,
    mean_intervals,
    rank_correlation,
    seeds_for_power,
)
from .storage import machine_lock, redact
from .study import (
    config_changes,
    open_study_storage,
    planned_runs_config,
    stored_as_this_release,
)

#: Appended to a study's name to name its confirm study (in the same storage).
CONFIRM_SUFFIX = "-confirm"
#: Significance level of the gain over ``none`` (after Holm's adjustment).
ALPHA = 0.05
#: Confidence of every interval a confirm study reports (for ``--seeds auto``, the gains'
#: intervals take 1 - ALPHA / looks).
CONFIDENCE = 0.95
#: How the gains over ``none`` are tested: Dunnett's many-to-one test on the pooled model
#: (default), or Holm-adjusted paired t-tests per architecture.
COMPARISONS = ("dunnett", "holm")
#: Bartlett's p-value below which the architectures' residual variances count as clearly
#: unequal: no common variance is pooled then.
UNEQUAL_VARIANCES = 0.01
#: The power the seed figures aim at.
POWER = 0.8
#: Seeds of the first look of ``--seeds auto``.
AUTO_FIRST = 3


def confirm_study_name(study_name: str) -> str:
    return f"{study_name}{CONFIRM_SUFFIX}"


def confirm_seeds(study_seed: int, seeds: int) -> list[int]:
    """``seeds`` seeds for the repeats, drawn from ``(study_seed, repeat)`` by NumPy's
    SeedSequence: far from the search's own seeds (``study.seed``, ``study.seed + n``)."""
    return [
        int(np.random.SeedSequence((study_seed, 0xC0FF1, r)).generate_state(1)[0] >> 1)
        for r in range(seeds)
    ]


@dataclass(frozen=True)
class Planned:
    """One architecture a confirm study repeats: where it comes from and its trial parameters."""

    key: str  #: ``baseline none``, ``trial 12``: names it in tables and in the stored plan
    params: dict[str, Any]
    source_trial: int | None
    baseline: str | None


def plan_architectures(study: optuna.Study, cfg: StudyConfig, top: int) -> list[Planned]:
    """The baselines (those the study ran; ``none`` always where the space has it), then the
    ``top`` most accurate architectures of the front, each once; where the first front holds
    fewer, the next non-dominated fronts fill them, front by front (:func:`ranked_trials`)."""
    planned: dict[str, Planned] = {}  # by digest
    ran = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if schema.BASELINE.has(t) and schema.DIGEST.has(t)
    ]
    for t in ran:
        name = schema.BASELINE.get(t)
        planned.setdefault(
            schema.DIGEST.get(t), Planned(f"baseline {name}", dict(t.params), t.number, name)
        )
    if "none" in cfg.space.blocks and not any(p.baseline == "none" for p in planned.values()):
        params = baselines(cfg.space, blocks=[], limit=1)["none"]
        planned[_digest(cfg, params, study)] = Planned("baseline none", params, None, "none")
    chosen: set[str] = set()
    for t in ranked_trials(study):
        if len(chosen) == top:
            break
        digest = schema.DIGEST.get(t, f"trial-{t.number}")
        chosen.add(digest)
        if digest not in planned:  # a chosen architecture that is a baseline is repeated once
            planned[digest] = Planned(f"trial {t.number}", dict(t.params), t.number, None)
    return sorted(planned.values(), key=lambda p: (p.baseline is None, p.baseline != "none"))


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's COMPLETE feasible trials (no duplicates) ordered by non-dominated front
    (the first front first), then by accuracy (higher first), then by number."""
    candidates = [t for t in study.get_trials(deepcopy=False) if is_candidate(t)]
    if not candidates:
        return []
    fronts = non_dominated_sort([t.values for t in candidates], study.directions)
    return [
        t
        for front in fronts
        for t in sorted((candidates[i] for i in front), key=lambda t: (-t.values[0], t.number))
    ]


def _digest(cfg: StudyConfig, params: dict[str, Any], study: optuna.Study) -> str:
    """The digest of the architecture these parameters give, with the study's input channels
    and classes (read from one of its trials)."""
    arch = next(schema.ARCH.get(t) for t in front_trials(study))
    spec = suggest_arch(
        optuna.trial.FixedTrial(params),
        cfg.space,
        in_channels=arch["in_channels"],
        num_classes=arch["num_classes"],
    )
    return spec.digest()


def confirm_config(cfg: StudyConfig, url: str, runs: int, name: str) -> StudyConfig:
    """The searched study's config as its confirm study runs it: every setting of data,
    training and objectives the same; one trial per planned run, no pruning, no baselines of its
    own, the repeat's seed for each trial, and the searched study's storage and artifact store.
    Every run trains stand-alone, also when the search estimated them on a supernet."""
    study = dataclasses.replace(
        cfg.study,
        name=name,
        storage=url,
        artifacts=cfg.study.artifacts_url(),
        n_trials=runs,
        sampler="random",
    )
    return planned_runs_config(cfg, study)


def searched_config(study: optuna.Study, given: StudyConfig | None, url: str) -> StudyConfig:
    """The config the study was searched with; a ``given`` one (a TOML file) must match it."""
    stored = schema.stored_config(study)
    if stored is None:
        raise ValueError(
            f"study {study.study_name!r} was not created by `nas search` (no stored config); "
            "`nas confirm` repeats the trials of a nas search study"
        )
    if schema.confirm_plan(study) is not None:
        raise ValueError(
            f"study {study.study_name!r} is itself a confirm study; confirm the study it "
            f"repeats ({schema.confirm_plan(study)['of']!r})"
        )
    if given is not None:
        changed = config_changes(given, stored, study.study_name)
        if changed:
            raise ValueError(
                f"study {study.study_name!r} in {redact(url)} was searched with a different "
                f"config (changed: {', '.join(changed)}); confirm it with the config it was "
                "searched with, or by its name"
            )
    return StudyConfig.from_dict(stored_as_this_release(stored))


def looks_schedule(first: int, most: int) -> list[int]:
    """The seeds per architecture at each look of ``--seeds auto``: ``first``, then doubling,
    capped at ``most`` (3, 6, 10 for ``--seeds 3 --max-seeds 10``); one look for fixed seeds."""
    looks = [first]
    while looks[-1] < most:
        looks.append(min(most, 2 * looks[-1]))
    return looks


def _check_counts(top: Any, seeds: Any, max_seeds: Any, comparison: str | None) -> None:
    """Refuse a bad ``--top``, ``--seeds``, ``--max-seeds`` or ``--comparison``, naming the fix."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"--top must be an int >= 1 (front architectures to repeat), got {top!r}")
    if seeds == "auto" and max_seeds is None:
        raise ValueError(
            "--seeds auto needs a budget: add --max-seeds N (the most seeds any architecture "
            "gets, e.g. --max-seeds 10)"
        )
    if seeds != "auto" and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2):
        raise ValueError(
            f"--seeds must be an int >= 2 or auto, got {seeds!r}: an interval needs at least two "
            "seeds (one seed has no spread to estimate); use --seeds 3 or more"
        )
    if max_seeds is not None:
        if isinstance(max_seeds, bool) or not isinstance(max_seeds, int) or max_seeds < 2:
            raise ValueError(f"--max-seeds must be an int >= 2, got {max_seeds!r}")
        if seeds != "auto" and max_seeds < seeds:
            raise ValueError(
                f"--max-seeds {max_seeds} is below --seeds {seeds}: give --max-seeds >= {seeds} "
                "(the budget per architecture), or leave --max-seeds out for a fixed design"
            )
    if comparison is not None and comparison not in COMPARISONS:
        raise ValueError(
            f"--comparison must be one of {', '.join(COMPARISONS)}, got {comparison!r}"
        )


def prepare_confirm(
    study: optuna.Study,
    url: str,
    *,
    top: int,
    seeds: int | str,
    max_seeds: int | None = None,
    comparison: str | None = None,
    given: StudyConfig | None = None,
    name: str | None = None,
) -> tuple[optuna.Study, StudyConfig]:
    """Create (or resume) the confirm study of ``study`` with its runs queued; returns it and
    its config. ``seeds`` is the seeds per architecture, or the first look of a sequential
    design up to ``max_seeds`` (``"auto"``: 3, or those of the confirmation that exists); the
    runs of later looks are queued by :func:`run_confirm`. Every check runs before anything is
    written: a bad option, a study with no complete trial, a changed config, or a confirm study
    planned with other settings (or extended while its runs are unfinished) is a ValueError
    naming the fix, and the storage is left as it was."""
    _check_counts(top, seeds, max_seeds, comparison)
    cfg = searched_config(study, given, url)
    if not front_trials(study):
        raise ValueError(
            f"study {study.study_name!r} has no complete (feasible) trial to confirm; run the "
            "search further (nas search) first"
        )
    name = name or confirm_study_name(study.study_name)
    planned = plan_architectures(study, cfg, top)
    storage = open_study_storage(confirm_config(cfg, url, 1, name), url)
    with machine_lock(url, name):
        try:
            confirm = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            confirm = None
        stored = schema.confirm_plan(confirm) if confirm is not None else None
        plan = _plan(study, cfg, planned, top, (seeds, max_seeds, comparison), stored)
        if confirm is not None:
            _check_resumable(confirm, plan)
        else:
            confirm = optuna.create_study(
                study_name=name, storage=storage, directions=cfg.objectives.directions
            )
            confirm.set_metric_names(cfg.objectives.names)
        if schema.confirm_plan(confirm) != plan:
            confirm.set_user_attr(schema.CONFIRM, plan)
        _enqueue_runs(confirm, planned, plan["looks"][0])
        confirm_cfg = confirm_config(cfg, url, len(_scheduled(confirm)), name)
        confirm.set_user_attr(schema.STUDY_CONFIG, confirm_cfg.to_dict())
    return confirm, confirm_cfg


def _plan(
    study: optuna.Study,
    cfg: StudyConfig,
    planned: list[Planned],
    top: int,
    options: tuple[int | str, int | None, str | None],
    stored: dict[str, Any] | None,
) -> dict[str, Any]:
    """The plan a confirm study stores (``confirm``): what it repeats, the seeds of every
    planned repeat, its looks and its comparison. ``--seeds auto`` starts on the looks of the
    ``stored`` plan where one exists, else on 3 seeds (fewer where the budget is smaller)."""
    seeds, max_seeds, comparison = options
    if seeds == "auto":
        first = _looks(stored)[0] if stored else min(AUTO_FIRST, max_seeds)
    else:
        first = seeds
    looks = looks_schedule(first, max(first, max_seeds or first))
    return {
        "of": study.study_name,
        "top": top,
        "seeds": confirm_seeds(cfg.study.seed, looks[-1]),
        "architectures": [p.key for p in planned],
        "looks": looks,
        "comparison": comparison or (stored or {}).get("comparison", COMPARISONS[0]),
    }


def _looks(plan: dict[str, Any]) -> list[int]:
    """A plan's looks: the seeds per architecture at each; one look (all seeds) where a plan
    predates ``--seeds auto``."""
    return [int(n) for n in plan.get("looks", [len(plan["seeds"])])]


def _seeds_option(plan: dict[str, Any]) -> str:
    """The ``--seeds`` (and ``--max-seeds``) options a plan was made with."""
    looks = _looks(plan)
    extra = f" --max-seeds {looks[-1]}" if len(looks) > 1 else ""
    return f"--top {plan['top']} --seeds {looks[0]}{extra}"


def _check_resumable(confirm: optuna.Study, plan: dict[str, Any]) -> None:
    """A confirm study resumes with the settings it was planned with; one with fixed seeds whose
    runs have all finished may be extended to a sequential design (``--max-seeds``)."""
    stored = schema.confirm_plan(confirm)
    if stored is None:
        raise ValueError(
            f"study {confirm.study_name!r} exists and is not a confirm study; give the "
            "confirmation another name (--name)"
        )
    old, new = _looks(stored), _looks(plan)
    extends = len(old) == 1 and len(new) > 1 and new[0] == old[0] and stored["top"] == plan["top"]
    if (stored["top"], old) != (plan["top"], new) and not extends:
        raise ValueError(
            f"{confirm.study_name!r} was started with {_seeds_option(stored)}; resume it with "
            "those (its finished runs are kept), or start another confirmation with --name"
        )
    if stored["architectures"] != plan["architectures"]:
        raise ValueError(
            f"the front of {stored['of']!r} changed since {confirm.study_name!r} was planned "
            f"(then: {stored['architectures']}, now: {plan['architectures']}); confirm the new "
            "front under another name (--name), or report the confirmation that exists"
        )
    unfinished = [t for t in confirm.get_trials(deepcopy=False) if not t.state.is_finished()]
    if extends and unfinished:
        raise ValueError(
            f"{confirm.study_name!r} has {len(unfinished)} unfinished runs: finish it first "
            f"(nas confirm ... {_seeds_option(stored)} resumes it), then add --max-seeds "
            f"{new[-1]} to extend it"
        )
    if len(new) > 1 and stored.get("comparison", COMPARISONS[0]) != plan["comparison"]:
        raise ValueError(
            f"{confirm.study_name!r} decides its rounds with --comparison "
            f"{stored.get('comparison', COMPARISONS[0])}; resume it with that, or start another "
            "confirmation with --name"
        )


def _enqueue_runs(confirm: optuna.Study, planned: list[Planned], seeds: int) -> None:
    """Queue every (repeat, architecture) run of the first ``seeds`` repeats the study has no
    trial for yet, repeat by repeat (so that a study stopped early holds complete pairs)."""
    _enqueue(confirm, [(r, p) for r in range(seeds) for p in planned])


def _enqueue(confirm: optuna.Study, runs: list[tuple[int, Planned]]) -> None:
    """Queue the (repeat, architecture) runs the study has no trial for yet."""
    present = set(_scheduled(confirm))
    for replicate, p in runs:
        if (replicate, p.key) in present:
            continue
        attrs: dict[str, Any] = {
            schema.REPLICATE.key: replicate,
            schema.SOURCE_TRIAL.key: p.source_trial,
        }
        if p.baseline is not None:
            attrs[schema.BASELINE.key] = p.baseline
        confirm.enqueue_trial(p.params, user_attrs=attrs)


def _scheduled(confirm: optuna.Study) -> dict[tuple[int, str], list[TrialState]]:
    """Every (repeat, key) the study has a trial for, with the states of its trials."""
    scheduled: dict[tuple[int, str], list[TrialState]] = {}
    for t in confirm.get_trials(deepcopy=False):
        if schema.REPLICATE.has(t):
            scheduled.setdefault((int(schema.REPLICATE.get(t)), _key_of(t)), []).append(t.state)
    return scheduled


def _key_of(trial: FrozenTrial) -> str:
    """The :attr:`Planned.key` of a confirm trial."""
    if schema.BASELINE.has(trial):
        return f"baseline {schema.BASELINE.get(trial)}"
    return f"trial {schema.SOURCE_TRIAL.get(trial)}"


def find_confirm_study(study: optuna.Study) -> optuna.Study | None:
    """The newest confirm study of ``study`` in its storage, or None."""
    storage = study._storage
    mine = [
        s
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if (s.user_attrs.get(schema.CONFIRM) or {}).get("of") == study.study_name
    ]
    if not mine:
        return None
    newest = max(mine, key=lambda s: s._study_id)
    return optuna.load_study(study_name=newest.study_name, storage=storage)


# -- verdicts ------------------------------------------------------------------------------------


def _runs(confirm: optuna.Study) -> dict[str, dict[int, FrozenTrial]]:
    """The COMPLETE runs of a confirm study: ``{key: {repeat: trial}}``, in plan order."""
    plan = schema.confirm_plan(confirm) or {}
    runs: dict[str, dict[int, FrozenTrial]] = {key: {} for key in plan.get("architectures", [])}
    for t in confirm.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if schema.REPLICATE.has(t):
            runs.setdefault(_key_of(t), {})[int(schema.REPLICATE.get(t))] = t
    return runs


@dataclass(frozen=True)
class Verdicts:
    """The comparisons of a confirm study with ``none`` (rows of ``values``, ``none`` first).

    ``now`` compares on every complete run; for the verdicts, each look of the plan whose runs
    have all finished (``reached`` of ``looks``) is compared at ``alpha`` = ALPHA / looks (a
    Bonferroni split over the planned looks keeps the family-wise error across them at most
    ALPHA). An architecture is decided at the first look where its adjusted p is below
    ``alpha`` (``decided``: its seeds then; ``sign``: of its gain then); ``p_adjusted`` is
    min(1, looks x its smallest adjusted p), below ALPHA exactly where it was decided. Before
    any look is reached ``now`` stands in for it."""

    keys: list[str]
    values: np.ndarray
    looks: list[int]
    reached: int
    comparison: str
    alpha: float
    now: ManyToOne
    p_adjusted: dict[str, float]
    decided: dict[str, int]
    sign: dict[str, float]


def _table(runs: dict[str, dict[int, FrozenTrial]], keys: list[str], metric: str) -> np.ndarray:
    """``keys`` x repeats of validation (``val_acc``) or test accuracy; NaN where no complete
    run (or no test accuracy) exists."""
    width = 1 + max((r for key in keys for r in runs.get(key, {})), default=0)
    table = np.full((len(keys), width), math.nan)
    for i, key in enumerate(keys):
        for r, t in runs.get(key, {}).items():
            if metric == "val_acc":
                table[i, r] = t.values[0]
            elif schema.TEST_ACC.has(t):
                table[i, r] = schema.TEST_ACC.get(t)
    return table


def verdicts(confirm: optuna.Study, comparison: str | None = None) -> Verdicts | None:
    """The :class:`Verdicts` of a confirm study (``comparison``: ``dunnett`` or ``holm``,
    default the plan's); None where it has no run of ``none``."""
    plan = schema.confirm_plan(confirm) or {}
    runs = _runs(confirm)
    if not runs.get("baseline none"):
        return None
    keys = ["baseline none", *(k for k in runs if k != "baseline none")]
    values = _table(runs, keys, "val_acc")
    looks = _looks(plan) if plan.get("seeds") else [values.shape[1]]
    comparison = comparison or plan.get("comparison", COMPARISONS[0])
    alpha = ALPHA / len(looks)
    finished = {
        run: all(s.is_finished() for s in states) for run, states in _scheduled(confirm).items()
    }
    decided: dict[str, int] = {}
    sign: dict[str, float] = {}
    best: dict[str, float] = {}
    reached = 0
    for start, seeds in zip([0, *looks], looks, strict=False):
        waiting = [k for k in keys if k == "baseline none" or k not in decided]
        if not all(finished.get((r, k), False) for r in range(start, seeds) for k in waiting):
            break
        reached += 1
        _record(
            many_to_one(values[:, :seeds], comparison, alpha, UNEQUAL_VARIANCES),
            keys,
            seeds,
            alpha,
            decided,
            sign,
            best,
        )
    now = many_to_one(values, comparison, alpha, UNEQUAL_VARIANCES)
    if not reached:
        _record(now, keys, values.shape[1], alpha, decided, sign, best)
    p_adjusted = {k: min(1.0, len(looks) * p) for k, p in best.items()}
    return Verdicts(keys, values, looks, reached, comparison, alpha, now, p_adjusted, decided, sign)


def _record(
    result: ManyToOne,
    keys: list[str],
    seeds: int,
    alpha: float,
    decided: dict[str, int],
    sign: dict[str, float],
    best: dict[str, float],
) -> None:
    """Fold one look's comparisons into the verdicts so far."""
    for j, i in enumerate(result.rows):
        key, p = keys[i], float(result.p_adjusted[j])
        best[key] = min(best.get(key, 1.0), p)
        if key not in decided and p < alpha:
            decided[key], sign[key] = seeds, float(np.sign(result.gain[j]))


def next_round(confirm: optuna.Study) -> tuple[list[tuple[int, str]], str]:
    """The (repeat, key) runs the next look of a sequential design still needs queued, and
    why there are none: every verdict is decided, the budget (the last look) is spent, or runs
    already queued have not finished (another worker holds them)."""
    v = verdicts(confirm)
    if v is None:
        return [], "no run of none to compare with"
    sequential = len(v.looks) > 1
    undecided = [k for k in v.keys[1:] if k not in v.decided]
    if v.reached == len(v.looks):
        return [], f"the budget of {v.looks[-1]} seeds is spent" if sequential else ""
    if v.reached and not undecided:
        return [], f"every verdict against none is decided at {v.looks[v.reached - 1]} seeds"
    start = v.looks[v.reached - 1] if v.reached else 0
    seeds = v.looks[v.reached]
    scheduled = _scheduled(confirm)
    waiting = ["baseline none", *undecided] if v.reached else v.keys
    runs = [(r, k) for r in range(start, seeds) for k in waiting]
    missing = [run for run in runs if run not in scheduled]
    if missing:
        return missing, ""
    return [], (
        f"runs of the look at {seeds} seeds are unfinished (held by another worker?); run the "
        "same command again when they are done"
    )


def run_confirm(
    confirm: optuna.Study,
    cfg: StudyConfig,
    url: str,
    run: Callable[[StudyConfig], optuna.Study],
) -> tuple[optuna.Study, str]:
    """Run the confirm study's queued runs (``run(cfg)``, e.g. :func:`nas.worker.run_search`),
    then, look by look, queue the next look's runs for ``none`` and the architectures still
    undecided (:func:`next_round`) and run those, until every verdict is decided or the budget
    is spent. Resumable: the looks reached are read back from the stored runs, and a run that
    has a trial is never queued again. Returns the study and why it stopped."""
    while True:
        confirm = run(cfg)
        missing, why = next_round(confirm)
        if not missing:
            return confirm, why
        planned = _planned_from_runs(confirm)
        with machine_lock(url, confirm.study_name):
            _enqueue(confirm, [(r, planned[key]) for r, key in missing])
            study = dataclasses.replace(cfg.study, n_trials=len(_scheduled(confirm)))
            cfg = dataclasses.replace(cfg, study=study)
            confirm.set_user_attr(schema.STUDY_CONFIG, cfg.to_dict())


def _planned_from_runs(confirm: optuna.Study) -> dict[str, Planned]:
    """Each architecture of a confirm study as its runs were queued (their fixed parameters)."""
    planned: dict[str, Planned] = {}
    for t in confirm.get_trials(deepcopy=False):
        if schema.REPLICATE.has(t) and _key_of(t) not in planned:
            params = dict(t.params or t.system_attrs.get("fixed_params", {}))
            baseline = schema.BASELINE.get(t) if schema.BASELINE.has(t) else None
            source = schema.SOURCE_TRIAL.get(t)
            planned[_key_of(t)] = Planned(_key_of(t), params, source, baseline)
    return planned


def confirm_frame(
    confirm: optuna.Study, searched: optuna.Study | None = None, comparison: str | None = None
) -> pd.DataFrame:
    """One row per planned architecture with its repeats' statistics (module docstring).

    Columns: ``architecture``, ``summary``, ``seeds`` (complete repeats), ``val_acc_mean`` /
    ``_low`` / ``_high`` / ``_sd``, ``test_acc_mean`` / ``_low`` / ``_high`` (95% intervals in
    [0, 1]: logit scale; pooled over the architectures under the pooled model), the study's cost
    objectives, ``search_val_acc`` (the search trial's value, where ``searched`` is given) and
    ``search_estimate`` (``supernet`` where that value is a supernet's estimate, else ``single
    run``), ``gain_vs_none`` / ``_low`` / ``_high`` (validation accuracy, paired by repeat;
    the interval at ``gain_confidence``, simultaneous under Dunnett), ``p_value``
    (unadjusted), ``p_adjusted`` (Dunnett or Holm, over the looks of ``--seeds auto``),
    ``p_holm`` (Holm-adjusted per-row paired t-tests, whatever the model), ``significant`` (a
    gain: adjusted p < 0.05 and positive), ``vs_none`` (``better``, ``worse`` or ``tie``: within
    the noise), ``decided_at`` (seeds at the look that decided it), ``model`` (``pooled`` or
    ``per-row``), ``comparison`` (``dunnett`` or ``holm``), ``model_note`` (why per-row where
    pooling was asked), ``variance_p`` (Bartlett), ``residual_sd`` / ``residual_df`` (the pooled
    seed noise of one run), ``detectable_gain`` (the smallest gain over ``none`` detected with
    80% power at these seeds), ``seeds_needed`` (seeds per architecture that would detect the
    observed gain with 80% power), ``on_confirmed_front``."""
    runs = _runs(confirm)
    costs = list(confirm.metric_names or [])[1:]
    frame = pd.DataFrame([_row(key, by_repeat, costs, searched) for key, by_repeat in runs.items()])
    if frame.empty:
        return frame
    state = verdicts(confirm, comparison)
    keys = list(frame["architecture"])
    pooled = state is not None and state.now.model == "pooled"
    if pooled:  # the rows in the order of the verdicts' table, none first
        keys = state.keys
    for metric in ("val_acc", "test_acc"):
        low, high = mean_intervals(_table(runs, keys, metric), pooled, CONFIDENCE)
        by_key = dict(zip(keys, zip(low, high, strict=True), strict=True))
        frame[f"{metric}_low"] = [by_key[k][0] for k in frame["architecture"]]
        frame[f"{metric}_high"] = [by_key[k][1] for k in frame["architecture"]]
    _add_gains(frame, state)
    frame["on_confirmed_front"] = _confirmed_front(frame, costs, confirm.directions)
    return frame


GAIN_COLUMNS = {
    "gain_vs_none": math.nan,
    "gain_vs_none_low": math.nan,
    "gain_vs_none_high": math.nan,
    "gain_confidence": math.nan,
    "p_value": math.nan,
    "p_adjusted": math.nan,
    "p_holm": math.nan,
    "significant": False,
    "vs_none": "",
    "decided_at": math.nan,
    "model": "",
    "comparison": "",
    "model_note": "",
    "variance_p": math.nan,
    "residual_sd": math.nan,
    "residual_df": math.nan,
    "detectable_gain": math.nan,
    "seeds_needed": math.nan,
}


def _add_gains(frame: pd.DataFrame, state: Verdicts | None) -> None:
    """The comparisons with ``none`` and the seed figures, as columns of ``frame``."""
    for column, empty in GAIN_COLUMNS.items():
        frame[column] = empty
    if state is None:
        return
    now = state.now
    holm = many_to_one(state.values, "holm", ALPHA)
    p_holm = {state.keys[i]: p for i, p in zip(holm.rows, holm.p_adjusted, strict=True)}
    design = (dunnett_design if now.model == "pooled" else bonferroni_design)(
        max(1, len(now.rows)), state.alpha
    )
    index = {key: i for i, key in enumerate(frame["architecture"])}
    frame["model"], frame["comparison"], frame["model_note"] = now.model, now.method, now.note
    frame["variance_p"], frame["residual_sd"] = now.variance_p, now.residual_sd
    frame["residual_df"], frame["gain_confidence"] = now.residual_df, now.confidence
    for j, row in enumerate(now.rows):
        key = state.keys[row]
        i = index[key]
        gain, sd, n = float(now.gain[j]), float(now.sd_diff[j]), int(now.n[j])
        decided = key in state.decided
        frame.loc[i, ["gain_vs_none", "gain_vs_none_low", "gain_vs_none_high"]] = (
            gain,
            float(now.low[j]),
            float(now.high[j]),
        )
        frame.loc[i, ["p_value", "p_adjusted", "p_holm"]] = (
            float(now.p_value[j]),
            state.p_adjusted.get(key, math.nan),
            p_holm.get(key, math.nan),
        )
        sign = state.sign.get(key, 0.0)
        frame.loc[i, "significant"] = bool(decided and sign > 0)
        frame.loc[i, "vs_none"] = ("better" if sign > 0 else "worse") if decided else "tie"
        frame.loc[i, "decided_at"] = state.decided.get(key, math.nan)
        if sd > 0:
            frame.loc[i, "detectable_gain"] = detectable_effect(sd, n, *design(n), POWER)
            needed = seeds_for_power(gain, sd, design, POWER)
            frame.loc[i, "seeds_needed"] = math.nan if needed is None else needed


def _row(
    key: str,
    by_repeat: dict[int, FrozenTrial],
    costs: list[str],
    searched: optuna.Study | None,
) -> dict[str, Any]:
    trials = list(by_repeat.values())
    row: dict[str, Any] = {
        "architecture": key,
        "summary": schema.SUMMARY.get(trials[0], "") if trials else "",
        "seeds": len(trials),
    }
    for metric, values in (
        ("val_acc", [t.values[0] for t in trials]),
        ("test_acc", [schema.TEST_ACC.get(t) for t in trials if schema.TEST_ACC.has(t)]),
    ):
        row[f"{metric}_mean"] = float(np.mean(values)) if values else math.nan
        row[f"{metric}_low"] = row[f"{metric}_high"] = math.nan  # confirm_frame fills them
        if metric == "val_acc":
            row["val_acc_sd"] = float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan
    for k, name in enumerate(costs, start=1):
        row[name] = trials[0].values[k] if trials else math.nan
    source = schema.SOURCE_TRIAL.get(trials[0]) if trials else None
    origin = searched.trials[source] if searched is not None and source is not None else None
    row["search_val_acc"] = origin.values[0] if origin is not None and origin.values else math.nan
    row["search_estimate"] = (
        "supernet" if origin is not None and schema.by_supernet(origin) else "single run"
    )
    return row


def _confirmed_front(frame: pd.DataFrame, costs: list[str], directions) -> list[bool]:
    """Rows no other row dominates on (mean validation accuracy, costs); rows with fewer than
    two repeats are never on it."""
    eligible = [i for i in range(len(frame)) if frame.loc[i, "seeds"] >= 2]
    on_front = [False] * len(frame)
    if not eligible:
        return on_front
    points = frame.loc[eligible, ["val_acc_mean", *costs]].to_numpy(dtype=float)
    for j in non_dominated_sort(points, directions)[0]:
        on_front[eligible[j]] = True
    return on_front


def supernet_agreement(frame: pd.DataFrame) -> RankCorrelation | None:
    """Rank correlation between the supernet's estimates and the stand-alone mean validation
    accuracy of the confirmed architectures (bootstrap intervals); None where the search was not
    a supernet's or fewer than 3 architectures (or no order) can be compared."""
    if frame.empty or "search_estimate" not in frame:
        return None
    rows = frame[(frame["search_estimate"] == "supernet") & frame["search_val_acc"].notna()]
    rows = rows[rows["val_acc_mean"].notna()]
    try:
        return rank_correlation(rows["search_val_acc"], rows["val_acc_mean"])
    except ValueError:  # fewer than 3 pairs, or one side constant
        return None


def agreement_line(frame: pd.DataFrame) -> str:
    """How far the supernet's ranking agrees with the stand-alone one (empty for multi-trial
    searches)."""
    if (
        frame.empty
        or "search_estimate" not in frame
        or not (frame["search_estimate"] == "supernet").any()
    ):
        return ""
    corr = supernet_agreement(frame)
    if corr is None:
        return (
            "supernet vs stand-alone ranking: too few confirmed architectures with distinct "
            "accuracies to rank (at least 3)"
        )
    return (
        f"supernet vs stand-alone ranking over {corr.n} architectures: Kendall tau "
        f"{corr.kendall_tau:+.2f} (95% CI {corr.tau_low:+.2f} to {corr.tau_high:+.2f}), "
        f"Spearman rho {corr.spearman_rho:+.2f} "
        f"(95% CI {corr.rho_low:+.2f} to {corr.rho_high:+.2f})"
    )


def verdict(frame: pd.DataFrame) -> str:
    """One line: is the best confirmed gain over ``none`` larger than its noise? (Then, for a
    supernet search, how well its estimates ranked the architectures.)"""
    line = _gain_verdict(frame)
    agreement = agreement_line(frame)
    return f"{line}; {agreement}" if agreement else line


def _gain_verdict(frame: pd.DataFrame) -> str:
    if frame.empty or "baseline none" not in set(frame["architecture"]):
        return "no verdict: the confirmation has no repeats of 'none' to compare with"
    others = frame[(frame["architecture"] != "baseline none") & frame["gain_vs_none"].notna()]
    if others.empty:
        return "no verdict yet: fewer than two complete repeats per architecture"
    best = others.loc[others["gain_vs_none"].idxmax()]
    seeds = int(best["seeds"])
    method = "Dunnett" if best.get("comparison", "holm") == "dunnett" else "Holm"
    confidence = best.get("gain_confidence", CONFIDENCE)
    p = best.get("p_adjusted", best["p_holm"])
    gain = (
        f"{100 * best['gain_vs_none']:+.2f} points ({100 * confidence:.3g}% CI "
        f"{100 * best['gain_vs_none_low']:+.2f} to {100 * best['gain_vs_none_high']:+.2f}, "
        f"{seeds} seeds, {method} p = {p:.3g})"
    )
    if best["significant"]:
        return f"best gain over none: {best['architecture']}, {gain}: larger than its noise"
    return (
        f"best gain over none: {best['architecture']}, {gain}: within its noise, no architecture "
        "is confirmed better than none at this budget"
    )


def model_line(frame: pd.DataFrame, looks: list[int] | None = None) -> str:
    """Which model gave the intervals and tests, and what it assumes."""
    if frame.empty or "model" not in frame or not frame["model"].iloc[0]:
        return ""
    row = frame.iloc[0]
    sequential = ""
    if looks and len(looks) > 1:
        sequential = (
            f"; sequential: looks at {', '.join(map(str, looks))} seeds, each at alpha "
            f"{ALPHA:g}/{len(looks)} (Bonferroni over the planned looks), p adjusted over them"
        )
    if row["model"] == "pooled":
        return (
            f"model: architecture + seed (two-way ANOVA, seeds as blocks), one residual sd of "
            f"{100 * row['residual_sd']:.2f} points pooled over every run (df "
            f"{int(row['residual_df'])}); gains vs none by Dunnett's many-to-one test with "
            f"simultaneous intervals; means' intervals from the pooled spread over seeds "
            f"(Satterthwaite df), on the logit scale. Assumes a seed shifts every architecture "
            f"alike, one residual variance (Bartlett p = {row['variance_p']:.2g}) and normal "
            f"errors{sequential}"
        )
    why = row["model_note"] or "--comparison holm"
    return (
        f"model: per-architecture intervals (Student-t over its own seeds, logit scale) and "
        f"Holm-adjusted paired t-tests against none ({why}){sequential}"
    )


def power_line(frame: pd.DataFrame) -> str:
    """The smallest gain over ``none`` these seeds detect, and the seeds the best observed gain
    would need (80% power, at the level the study tests at)."""
    rows = frame[frame["detectable_gain"].notna()] if "detectable_gain" in frame else frame[:0]
    if rows.empty:
        return ""
    alpha = 1.0 - float(rows["gain_confidence"].iloc[0])  # ALPHA / looks
    method = "Dunnett" if rows["comparison"].iloc[0] == "dunnett" else "Bonferroni-Holm"
    smallest = rows["detectable_gain"]
    seeds = int(rows["seeds"].max())
    detect = (
        f"{100 * smallest.min():.2f} points"
        if smallest.max() - smallest.min() < 5e-5
        else f"{100 * smallest.min():.2f} to {100 * smallest.max():.2f} points"
    )
    head = f"power ({100 * POWER:.0f}%, {method} at alpha {alpha:.3g}): with {seeds} seeds"
    if smallest.min() >= 1.0:
        line = f"{head} no gain over none (they are at most 100 points) would be detected"
    else:
        line = f"{head} a gain over none of {detect} or more would be detected"
    best = rows.loc[rows["gain_vs_none"].idxmax()]
    if best["gain_vs_none"] <= 0:
        return f"{line}; no architecture gained over none"
    needed = best["seeds_needed"]
    count = "more than 100000 seeds" if pd.isna(needed) else f"{int(needed)} seeds"
    return (
        f"{line}; the best observed gain, {100 * best['gain_vs_none']:+.2f} points "
        f"({best['architecture']}), would need {count} per architecture (an observed best gain "
        "overstates the true one)"
    )


def median_repeat(confirm: optuna.Study, key: str) -> FrozenTrial:
    """The repeat of an architecture whose validation accuracy is the (lower) median: the
    weights ``nas export`` takes for it, neither its luckiest nor its unluckiest run."""
    trials = sorted(_runs(confirm)[key].values(), key=lambda t: (t.values[0], t.number))
    return trials[(len(trials) - 1) // 2]
