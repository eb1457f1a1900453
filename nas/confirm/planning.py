"""What a confirm study repeats, with which seeds, and its plan: ``nas confirm STUDY --top K``.

A confirm study retrains the K most accurate architectures of a study's Pareto front (filled
from the next non-dominated fronts where the first holds fewer: :func:`ranked_trials`) and its
baselines (``none`` and the blocks placed everywhere) with S fresh seeds each: full epochs, no
pruning, the same data splits. It is an Optuna study of its own, ``<study>-confirm`` in the same
storage, whose trials are queued up front (``replicate`` r, ``source_trial`` n), so it resumes
after a kill and takes more workers (``nas worker --study <study>-confirm``) like any study.
Repeat r trains every architecture with the r-th seed (model weights, batch order and
augmentation), so the seeds are the blocks of a paired design.

:func:`prepare_confirm` checks the options and the study, stores the plan (the study attr
``confirm``: what it repeats, every planned seed, its looks and its comparison) and queues the
first look's runs; the constants of the design (significance level, confidence, power) live here
too, for :mod:`.rounds` and :mod:`.frame`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search_spaces.space import baselines, suggest_arch

from .. import trial_schema as schema
from ..config import StudyConfig
from ..pareto import front_trials, is_candidate, non_dominated_sort
from ..storage import machine_lock, redact
from ..study import (
    config_changes,
    open_study_storage,
    planned_runs_config,
    stored_as_this_release,
)
from ..tracking import check_trackers
from .runs import _scheduled, budget, gave_up, gave_up_message, requeue_failed

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
    runs of later looks are queued by :func:`.rounds.run_confirm`, and so is every run whose
    trials all failed, again (:func:`.runs.requeue_failed`). Every check runs before anything
    is written: a bad option, a study with no complete trial, a changed config, a tracker that
    cannot log (``nas.tracking.check_trackers``), a confirm study planned with other settings
    (or extended while its runs are unfinished), or one with a run that gave up
    (:func:`.runs.gave_up`) is a ValueError naming the fix, and the storage is left as it was."""
    _check_counts(top, seeds, max_seeds, comparison)
    cfg = searched_config(study, given, url)
    if not front_trials(study):
        raise ValueError(
            f"study {study.study_name!r} has no complete (feasible) trial to confirm; run the "
            "search further (nas search) first"
        )
    name = name or confirm_study_name(study.study_name)
    check_trackers(confirm_config(cfg, url, 1, name))
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
            if stuck := gave_up(confirm):
                raise ValueError(gave_up_message(name, stuck))
        else:
            confirm = optuna.create_study(
                study_name=name, storage=storage, directions=cfg.objectives.directions
            )
            confirm.set_metric_names(cfg.objectives.names)
        if schema.confirm_plan(confirm) != plan:
            confirm.set_user_attr(schema.CONFIRM, plan)
        _enqueue_runs(confirm, planned, plan["looks"][0])
        requeue_failed(confirm)
        confirm_cfg = confirm_config(cfg, url, budget(confirm), name)
        if schema.stored_config(confirm) != confirm_cfg.to_dict():
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
        first = plan_looks(stored)[0] if stored else min(AUTO_FIRST, max_seeds)
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


def plan_looks(plan: dict[str, Any]) -> list[int]:
    """A plan's looks: the seeds per architecture at each; one look (all seeds) where a plan
    predates ``--seeds auto``."""
    return [int(n) for n in plan.get("looks", [len(plan["seeds"])])]


def _seeds_option(plan: dict[str, Any]) -> str:
    """The ``--seeds`` (and ``--max-seeds``) options a plan was made with."""
    looks = plan_looks(plan)
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
    old, new = plan_looks(stored), plan_looks(plan)
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
