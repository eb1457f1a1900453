"""Repeats and a confirmed front: ``nas confirm STUDY --top K --seeds S``.

One training run of a small network is one draw from a noisy process: on small budgets the
seed-to-seed spread of an accuracy is as large as the effects of the attention placement a search
looks for. A confirm study retrains the K most accurate architectures of a study's Pareto front
and its baselines (``none`` and the blocks placed everywhere) with S fresh seeds each: full
epochs, no pruning, the same data splits. It is an Optuna study of its own, ``<study>-confirm``
in the same storage, whose trials are queued up front (``replicate`` r, ``source_trial`` n), so
it resumes after a kill and takes more workers (``nas worker --study <study>-confirm``) like any
study. Repeat r trains every architecture with the r-th seed (model weights, batch order and
augmentation), so the architectures are compared paired by repeat.

:func:`confirm_frame` turns the repeats into verdicts, per architecture: mean and 95% Student-t
interval of validation and test accuracy over seeds, the paired difference to ``none`` (its
interval and a two-sided paired t-test p-value, Holm-adjusted over the architectures compared),
and the **confirmed front**: the architectures no other dominates on mean validation accuracy and
the study's costs, each marked by whether its gain over ``none`` is significant (adjusted
p < 0.05 and a positive mean difference).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from search_spaces.space import baselines, suggest_arch

from . import trial_schema as schema
from .config import StudyConfig
from .pareto import front_trials, non_dominated_sort
from .stats import RankCorrelation, holm_adjust, mean_interval, paired_comparison, rank_correlation
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
#: Confidence of every interval a confirm study reports.
CONFIDENCE = 0.95


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
    ``top`` most accurate members of the front, each architecture once."""
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
    front = sorted(front_trials(study), key=lambda t: (-t.values[0], t.number))
    for t in front[:top]:
        digest = schema.DIGEST.get(t, f"trial-{t.number}")
        if digest not in planned:  # a front member that is a baseline is repeated once
            planned[digest] = Planned(f"trial {t.number}", dict(t.params), t.number, None)
    return sorted(planned.values(), key=lambda p: (p.baseline is None, p.baseline != "none"))


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


def prepare_confirm(
    study: optuna.Study,
    url: str,
    *,
    top: int,
    seeds: int,
    given: StudyConfig | None = None,
    name: str | None = None,
) -> tuple[optuna.Study, StudyConfig]:
    """Create (or resume) the confirm study of ``study`` with its runs queued; returns it and
    its config. Every check runs before anything is written: a bad ``top`` or ``seeds``, a
    study with no complete trial, a changed config, or a confirm study planned with other
    settings is a ValueError naming the fix, and the storage is left as it was."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"--top must be an int >= 1 (front architectures to repeat), got {top!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ValueError(
            f"--seeds must be an int >= 2, got {seeds!r}: an interval needs at least two seeds "
            "(one seed has no spread to estimate); use --seeds 3 or more"
        )
    cfg = searched_config(study, given, url)
    if not front_trials(study):
        raise ValueError(
            f"study {study.study_name!r} has no complete (feasible) trial to confirm; run the "
            "search further (nas search) first"
        )
    planned = plan_architectures(study, cfg, top)
    plan = {
        "of": study.study_name,
        "top": top,
        "seeds": confirm_seeds(cfg.study.seed, seeds),
        "architectures": [p.key for p in planned],
    }
    name = name or confirm_study_name(study.study_name)
    confirm_cfg = confirm_config(cfg, url, len(planned) * seeds, name)
    storage = open_study_storage(confirm_cfg, url)
    with machine_lock(url, name):
        try:
            confirm = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            confirm = None
        if confirm is not None:
            _check_resumable(confirm, plan)
        else:
            confirm = optuna.create_study(
                study_name=name, storage=storage, directions=cfg.objectives.directions
            )
            confirm.set_metric_names(cfg.objectives.names)
            confirm.set_user_attr(schema.CONFIRM, plan)
        _enqueue_runs(confirm, planned, seeds)
        confirm.set_user_attr(schema.STUDY_CONFIG, confirm_cfg.to_dict())
    return confirm, confirm_cfg


def _check_resumable(confirm: optuna.Study, plan: dict[str, Any]) -> None:
    stored = schema.confirm_plan(confirm)
    if stored is None:
        raise ValueError(
            f"study {confirm.study_name!r} exists and is not a confirm study; give the "
            "confirmation another name (--name)"
        )
    if (stored["top"], len(stored["seeds"])) != (plan["top"], len(plan["seeds"])):
        raise ValueError(
            f"{confirm.study_name!r} was started with --top {stored['top']} --seeds "
            f"{len(stored['seeds'])}; resume it with those (its finished runs are kept), or "
            "start another confirmation with --name"
        )
    if stored["architectures"] != plan["architectures"]:
        raise ValueError(
            f"the front of {stored['of']!r} changed since {confirm.study_name!r} was planned "
            f"(then: {stored['architectures']}, now: {plan['architectures']}); confirm the new "
            "front under another name (--name), or report the confirmation that exists"
        )


def _enqueue_runs(confirm: optuna.Study, planned: list[Planned], seeds: int) -> None:
    """Queue every (repeat, architecture) run the study has no trial for yet, repeat by repeat
    (so that a study stopped early holds complete pairs)."""
    present = {
        (schema.REPLICATE.get(t), _key_of(t))
        for t in confirm.get_trials(deepcopy=False)
        if schema.REPLICATE.has(t)
    }
    for replicate in range(seeds):
        for p in planned:
            if (replicate, p.key) in present:
                continue
            attrs: dict[str, Any] = {
                schema.REPLICATE.key: replicate,
                schema.SOURCE_TRIAL.key: p.source_trial,
            }
            if p.baseline is not None:
                attrs[schema.BASELINE.key] = p.baseline
            confirm.enqueue_trial(p.params, user_attrs=attrs)


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


def confirm_frame(confirm: optuna.Study, searched: optuna.Study | None = None) -> pd.DataFrame:
    """One row per planned architecture with its repeats' statistics (module docstring).

    Columns: ``architecture``, ``summary``, ``seeds`` (complete repeats), ``val_acc_mean`` /
    ``_low`` / ``_high`` / ``_sd``, ``test_acc_mean`` / ``_low`` / ``_high``, the study's cost
    objectives, ``search_val_acc`` (the search trial's value, where ``searched`` is given) and
    ``search_estimate`` (``supernet`` where that value is a supernet's estimate, else
    ``single run``), ``gain_vs_none`` / ``_low`` / ``_high`` (validation accuracy, paired by
    repeat), ``p_value``, ``p_holm``, ``significant`` (a gain: adjusted p < 0.05 and positive),
    ``vs_none`` (``better``, ``worse`` or ``tie``: within the noise), ``on_confirmed_front``.
    Intervals need two repeats; with fewer they are NaN."""
    runs = _runs(confirm)
    names = list(confirm.metric_names or [])
    costs = names[1:]
    rows = [_row(key, by_repeat, costs, searched) for key, by_repeat in runs.items()]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    reference = runs.get("baseline none", {})
    comparisons = {
        key: _gain(by_repeat, reference)
        for key, by_repeat in runs.items()
        if key != "baseline none"
    }
    tested = [key for key, c in comparisons.items() if c is not None]
    adjusted = dict(zip(tested, holm_adjust([comparisons[k].p_value for k in tested]), strict=True))
    for column in ("gain_vs_none", "gain_vs_none_low", "gain_vs_none_high", "p_value", "p_holm"):
        frame[column] = math.nan
    frame["significant"] = False
    frame["vs_none"] = ""
    for i, key in enumerate(frame["architecture"]):
        comparison = comparisons.get(key)
        if comparison is None:
            continue
        d = comparison.difference
        frame.loc[i, ["gain_vs_none", "gain_vs_none_low", "gain_vs_none_high"]] = (
            d.mean,
            d.low,
            d.high,
        )
        frame.loc[i, "p_value"] = comparison.p_value
        frame.loc[i, "p_holm"] = adjusted[key]
        resolved = adjusted[key] < ALPHA
        frame.loc[i, "significant"] = bool(resolved and d.mean > 0)
        frame.loc[i, "vs_none"] = ("better" if d.mean > 0 else "worse") if resolved else "tie"
    frame["on_confirmed_front"] = _confirmed_front(frame, costs, confirm.directions)
    return frame


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
        interval = mean_interval(values, CONFIDENCE) if len(values) >= 2 else None
        row[f"{metric}_mean"] = float(np.mean(values)) if values else math.nan
        row[f"{metric}_low"] = interval.low if interval else math.nan
        row[f"{metric}_high"] = interval.high if interval else math.nan
        if metric == "val_acc":
            row["val_acc_sd"] = interval.sd if interval else math.nan
    for k, name in enumerate(costs, start=1):
        row[name] = trials[0].values[k] if trials else math.nan
    source = schema.SOURCE_TRIAL.get(trials[0]) if trials else None
    origin = searched.trials[source] if searched is not None and source is not None else None
    row["search_val_acc"] = origin.values[0] if origin is not None and origin.values else math.nan
    row["search_estimate"] = (
        "supernet" if origin is not None and schema.by_supernet(origin) else "single run"
    )
    return row


def _gain(by_repeat: dict[int, FrozenTrial], reference: dict[int, FrozenTrial]):
    """The paired comparison of validation accuracy with ``none`` over their common repeats."""
    common = sorted(set(by_repeat) & set(reference))
    if len(common) < 2:
        return None
    return paired_comparison(
        [by_repeat[r].values[0] for r in common],
        [reference[r].values[0] for r in common],
        CONFIDENCE,
    )


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
    gain = (
        f"{100 * best['gain_vs_none']:+.2f} points (95% CI {100 * best['gain_vs_none_low']:+.2f} "
        f"to {100 * best['gain_vs_none_high']:+.2f}, {seeds} seeds, Holm p = {best['p_holm']:.3g})"
    )
    if best["significant"]:
        return f"best gain over none: {best['architecture']}, {gain}: larger than its noise"
    return (
        f"best gain over none: {best['architecture']}, {gain}: within its noise, no architecture "
        "is confirmed better than none at this budget"
    )


def median_repeat(confirm: optuna.Study, key: str) -> FrozenTrial:
    """The repeat of an architecture whose validation accuracy is the (lower) median: the
    weights ``nas export`` takes for it, neither its luckiest nor its unluckiest run."""
    trials = sorted(_runs(confirm)[key].values(), key=lambda t: (t.values[0], t.number))
    return trials[(len(trials) - 1) // 2]
