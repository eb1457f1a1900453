"""A confirm study's repeats as a table of verdicts, the confirmed front, and their lines.

:func:`confirm_frame` turns the repeats into verdicts (:func:`nas.stats.many_to_one`): by
default one residual variance pooled over every run of the architecture x seed table, the gains
over ``none`` tested by Dunnett's many-to-one procedure with simultaneous intervals; per-row
intervals and Holm-adjusted paired t-tests where the rows' variances are clearly unequal or
``--comparison holm`` asks. Accuracy intervals stay in [0, 1] (logit scale). The **confirmed
front** holds the architectures no other dominates on mean validation accuracy and the study's
costs, each marked by whether its gain over ``none`` is significant (adjusted p < 0.05 and a
positive mean difference). :func:`verdict`, :func:`model_line` and :func:`power_line` say it in
one line each; :func:`supernet_agreement` compares a supernet's ranking with the stand-alone one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from .. import trial_schema as schema
from ..files import written_in_one_step
from ..pareto import non_dominated_sort
from ..stats import (
    RankCorrelation,
    bonferroni_design,
    detectable_effect,
    dunnett_design,
    many_to_one,
    mean_intervals,
    rank_correlation,
    seeds_for_power,
)
from ..supernet_rankings import yardstick_line
from .planning import ALPHA, CONFIDENCE, POWER
from .rounds import Verdicts, _runs, _table, verdicts


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
            f"accuracies to rank (at least 3); {yardstick_line()}"
        )
    return (
        f"supernet vs stand-alone ranking over {corr.n} architectures: Kendall tau "
        f"{corr.kendall_tau:+.2f} (95% CI {corr.tau_low:+.2f} to {corr.tau_high:+.2f}), "
        f"Spearman rho {corr.spearman_rho:+.2f} "
        f"(95% CI {corr.rho_low:+.2f} to {corr.rho_high:+.2f}); {yardstick_line()}"
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


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` (``confirm.csv``) in one step: a reader, or a concurrent
    writer, sees the old table or the new one, never a mix. Callers write complete tables only
    (:func:`.runs.unfinished` empty), so a partial one never replaces a complete one."""
    with written_in_one_step(path) as partial:
        frame.to_csv(partial, index=False)
    return path


def median_repeat(confirm: optuna.Study, key: str) -> FrozenTrial:
    """The repeat of an architecture whose validation accuracy is the (lower) median: the
    weights ``nas export`` takes for it, neither its luckiest nor its unluckiest run."""
    trials = sorted(_runs(confirm)[key].values(), key=lambda t: (t.values[0], t.number))
    return trials[(len(trials) - 1) // 2]
