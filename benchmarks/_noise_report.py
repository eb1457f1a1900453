"""The tables and the plain-language reading of ``benchmarks/noise.py``'s analysis (its
``analyse`` result and the raw runs it came from).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from benchmarks._harness import ALPHA, fmt, markdown_table

#: The cells of one metric of a table row.
Cells = Callable[[dict[str, Any]], list[str]]


def _pt(value: float, digits: int = 2) -> str:
    """An accuracy (or difference) in percentage points."""
    return fmt(value * 100, f".{digits}f", "n/a")


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _ratio(value: float) -> str:
    return fmt(value, ".2f", "n/a")


def _labels(raw: dict[str, Any]) -> dict[str, str]:
    return {a["key"]: a["label"] for a in raw["archs"]}


def _spread_cells(s: dict[str, Any]) -> list[str]:
    """Mean ± half-width, sd and binomial SE of one metric of a spread row."""
    return [
        f"{_pt(s['mean'])} ± {_pt(s['high'] - s['mean'])}",
        _pt(s["sd"]),
        f"{_pt(s['binomial_se'])} ({s['split_size']:,})",
    ]


def _paired_cells(d: dict[str, Any]) -> list[str]:
    """Mean, sd, interval and p of one metric of a paired row (bold where significant)."""
    mark = "**" if d["significant"] else ""
    star = " †" if d["significant_bonferroni"] else ""
    return [
        f"{mark}{_pt(d['mean'])}{mark}",
        _pt(d["sd"]),
        f"[{_pt(d['low'])}, {_pt(d['high'])}]",
        f"{mark}{_p(d['p_value'])}{mark}{star}",
    ]


def _crn_cells(c: dict[str, Any]) -> list[str]:
    """Both sds, their ratio with its interval, and both correlations of one metric."""
    return [
        _pt(c["sd_independent"]),
        _pt(c["sd_common"]),
        f"{_ratio(c['ratio'])} ({_ratio(c['low'])} - {_ratio(c['high'])})",
        f"{_ratio(c['corr_common'])} / {_ratio(c['corr_independent'])}",
    ]


def tables(raw: dict[str, Any], result: dict[str, Any]) -> list[str]:
    labels = _labels(raw)
    metrics = [m for m in ("val_acc", "test_acc") if m in result["spread"][0]]
    names = {"val_acc": "val", "test_acc": "test"}

    def header(*columns: str) -> list[str]:
        return [f"{names[m]} {column}" for m in metrics for column in columns]

    def cells(row: dict[str, Any], of_metric: Cells) -> list[str]:
        return [cell for m in metrics for cell in of_metric(row[m])]

    def by_mode(rows: list[dict[str, Any]], of_metric: Cells, *columns: str) -> list[str]:
        """A table of one row per mode and architecture, ``columns`` per metric."""
        return markdown_table(
            ["mode", "architecture", *header(*columns)],
            "ll" + "r" * len(columns) * len(metrics),
            ([row["mode"], labels[row["arch"]], *cells(row, of_metric)] for row in rows),
            compact=True,
        )

    spread_columns = ("mean ± 95% CI", "sd", "binomial SE (n)")
    lines = [
        "### Seed-to-seed spread (accuracy in %, over the replicates)",
        "",
        *by_mode(result["spread"], _spread_cells, *spread_columns),
        "",
        f"### Paired difference to `none` (points; paired by replicate, n = "
        f"{result['paired'][0][metrics[0]]['n']})",
        "",
        *by_mode(result["paired"], _paired_cells, "mean", "sd", "95% CI", "p"),
        "",
        f"Bold: p < {ALPHA:g}; †: also p < {ALPHA:g} / {len(result['crn'])} (Bonferroni over the "
        "blocks).",
        "",
        "### What common random numbers buy: sd(paired difference) independent / common",
        "",
        *markdown_table(
            [
                "architecture",
                *header(
                    "sd indep.",
                    "sd common",
                    "ratio (95% F interval)",
                    "r(arch, none) common / indep.",
                ),
            ],
            "l" + "rrrr" * len(metrics),
            ([labels[row["arch"]], *cells(row, _crn_cells)] for row in result["crn"]),
            compact=True,
        ),
        "",
        "r(arch, none): Pearson correlation of the architecture's and `none`'s accuracies over "
        "the replicates; var(difference) = var(arch) + var(none) - 2 r sd(arch) sd(none), so "
        f"common seeds shrink a comparison's noise only where r is positive (with n = "
        f"{result['crn'][0][metrics[0]]['n']}, r's own 95% interval spans about ±0.8).",
        "",
        "Resolvable difference of one evaluation per architecture (1.96 x pooled sd of the "
        "paired differences, points): "
        + "; ".join(
            f"{mode}: "
            + ", ".join(f"{names[m]} {_pt(result['resolvable'][mode][m])}" for m in metrics)
            for mode in result["resolvable"]
        )
        + ".",
    ]
    rank = result["rank"]
    if rank is not None:
        summaries = {a["key"]: a["label"] for a in raw["rank_archs"]}
        lines += [
            "",
            f"### Rank stability: {rank['n']} architectures, two evaluations (val accuracy, %)",
            "",
            *markdown_table(
                [
                    "architecture",
                    f"A (seed {raw['args']['rank_seed_a']})",
                    "rank A",
                    f"B (seed {raw['args']['rank_seed_b']})",
                    "rank B",
                ],
                "lrrrr",
                (
                    [
                        f"`{summaries[rank['keys'][i]]}`",
                        _pt(rank["a"][i]),
                        rank["rank_a"][i],
                        _pt(rank["b"][i]),
                        rank["rank_b"][i],
                    ]
                    for i in sorted(range(rank["n"]), key=lambda i: rank["rank_a"][i])
                ),
                compact=True,
            ),
            "",
            f"Kendall tau-b {rank['kendall_tau']:.3f} (95% bootstrap interval "
            f"{rank['tau_low']:.3f} to {rank['tau_high']:.3f}); Spearman rho "
            f"{rank['spearman_rho']:.3f} ({rank['rho_low']:.3f} to {rank['rho_high']:.3f}); "
            f"{rank['n_boot']} resamples of the architectures. A's best "
            f"(`{summaries[rank['best_a']]}`) is ranked {rank['best_a_rank_in_b']} in B; B's "
            f"best is ranked {rank['best_b_rank_in_a']} in A; mean |rank A - rank B| "
            f"{rank['mean_abs_rank_change']:.2f}. One evaluation's sd from these runs, "
            f"sd(A - B) / sqrt(2): {_pt(rank['single_sd'])} points; sd of the architectures' "
            f"mean (A + B) / 2: {_pt(rank['between_sd'])} points.",
        ]
    repeat = result["repeat"]
    if repeat is not None:
        shown = ", ".join(
            f"{names[m]} {_pt(repeat[f'{m}_first'], 2)} / {_pt(repeat[f'{m}_again'], 2)}"
            for m in metrics
        )
        lines += [
            "",
            f"Reproducibility: `{repeat['arch']}` at seed {repeat['seed']} trained twice: "
            f"{shown} -> {'identical' if repeat['identical'] else 'DIFFERENT'}.",
        ]
    return lines


def interpretation(raw: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """Plain-language reading of the numbers (nothing in it is fixed in advance)."""
    labels = _labels(raw)
    n_seeds = len(raw["args"]["seeds"])
    lines = []
    spread = {(r["mode"], r["arch"]): r for r in result["spread"]}
    sds = [r["val_acc"]["sd"] for r in result["spread"]]
    ses = [r["val_acc"]["binomial_se"] for r in result["spread"]]
    pooled = math.sqrt(sum(v**2 for v in sds) / len(sds))
    mean_se = sum(ses) / len(ses)
    indep = [spread["independent", a["key"]]["val_acc"] for a in raw["archs"]]
    half = sum(i["high"] - i["mean"] for i in indep) / len(indep)
    ratio = pooled / mean_se if mean_se > 0 else math.nan
    lines.append(
        f"* **One evaluation** of an architecture moves from seed to seed by an sd of "
        f"{_pt(pooled, 1)} points of val accuracy (root mean variance over all architectures "
        f"and modes, {n_seeds} seeds each; single sds {_pt(min(sds), 1)} to {_pt(max(sds), 1)}). "
        f"A finite split of {indep[0]['split_size']:,} validation images alone would give a "
        f"binomial SE of ~{_pt(mean_se, 1)} points; the measured sd is {ratio:.1f}x that."
        + f" The 95% interval of a mean over the {n_seeds} seeds is about ±{_pt(half, 1)} points "
        "(independent mode, mean half-width)."
    )
    if "test_acc" in result["spread"][0]:
        test_sds = [r["test_acc"]["sd"] for r in result["spread"]]
        test_pooled = math.sqrt(sum(v**2 for v in test_sds) / len(test_sds))
        test_se = sum(r["test_acc"]["binomial_se"] for r in result["spread"]) / len(test_sds)
        gaps = [r["test_acc"]["mean"] - r["val_acc"]["mean"] for r in result["spread"]]
        lines.append(
            f"  On the {result['spread'][0]['test_acc']['split_size']:,} test images (binomial "
            f"SE ~{_pt(test_se, 1)}) the seed-to-seed sd is {_pt(test_pooled, 1)} points "
            f"({test_pooled / test_se:.1f}x): the trained model's accuracy itself moves by at "
            f"least ~{_pt(math.sqrt(max(test_pooled**2 - test_se**2, 0.0)), 1)} points "
            "(sqrt(sd^2 - SE^2), a lower bound: one fixed split's errors are partly shared by "
            "all seeds), "
            + (
                "so most of the noise is training noise, which a larger validation split would "
                "not remove."
                if test_pooled / test_se > 1.5
                else "so the finite evaluation split accounts for much of the noise."
            )
            + " Test minus val accuracy is "
            f"{_pt(min(gaps), 1)} to {_pt(max(gaps), 1)} points over the rows: an offset of the "
            "fixed validation split that every architecture shares, so it cancels in "
            "comparisons."
        )
    for mode in result["resolvable"]:  # the seeding modes, in the analysis's order
        rows = [p for p in result["paired"] if p["mode"] == mode]
        found = [
            f"{labels[p['arch']]} ({_pt(p['val_acc']['mean'], 1)} points, p = "
            f"{_p(p['val_acc']['p_value'])})"
            for p in rows
            if p["val_acc"]["significant"]
        ]
        noise = [
            f"{labels[p['arch']]} ({_pt(p['val_acc']['mean'], 1)}, p = "
            f"{_p(p['val_acc']['p_value'])})"
            for p in rows
            if not p["val_acc"]["significant"]
        ]
        lines.append(
            f"* **Differences to `none`, {mode} seeds (val)**: significant (p < {ALPHA:g}): "
            f"{', '.join(found) or 'no architecture'}; within noise: "
            f"{', '.join(noise) or 'no architecture'}."
        )
        if "test_acc" in rows[0]:
            found_test = [
                f"{labels[p['arch']]} ({_pt(p['test_acc']['mean'], 1)}, p = "
                f"{_p(p['test_acc']['p_value'])})"
                for p in rows
                if p["test_acc"]["significant"]
            ]
            lines.append(
                f"  On the test split ({mode}): significant: "
                f"{', '.join(found_test) or 'no architecture'}."
            )
    ratios = [c["val_acc"] for c in result["crn"]]
    resolved = [
        labels[c["arch"]] for c in result["crn"] if c["val_acc"]["low"] > 1
    ]  # interval above 1
    lines.append(
        "* **Common random numbers** change the sd of a paired val difference by a factor of "
        + ", ".join(
            f"{_ratio(r['ratio'])} ({labels[c['arch']]}, 95% {_ratio(r['low'])} - "
            f"{_ratio(r['high'])})"
            for c, r in zip(result["crn"], ratios, strict=True)
        )
        + f" (independent / common, {n_seeds} seeds each). "
        + (
            f"The interval lies above 1 for {', '.join(resolved)}: there CRN measurably reduce "
            "the noise of a comparison."
            if resolved
            else "No interval lies wholly above 1: with this many seeds the gain of common "
            "random numbers is not resolved."
        )
        + " The correlation of an architecture's val accuracy with `none`'s over the common "
        "replicates is r = "
        + ", ".join(
            f"{_ratio(r['corr_common'])} ({labels[c['arch']]})"
            for c, r in zip(result["crn"], ratios, strict=True)
        )
        + (
            ": sharing the backbone initialisation, the batch order and the augmentation draws "
            "does not make different architectures' results move together here, and without "
            "that correlation common seeds cannot cancel noise."
            if all(not r["corr_common"] > 0.5 for r in ratios)
            else "."
        )
    )
    res = result["resolvable"]
    lines.append(
        "* **Resolvable difference**: two architectures evaluated once each must differ by "
        f"more than ~{_pt(res['independent']['val_acc'], 1)} points of val accuracy with "
        f"independent seeds, or ~{_pt(res['common']['val_acc'], 1)} points with common random "
        "numbers, before the difference stands out of the noise at 95%; averaging k seeds "
        "divides these by sqrt(k)."
    )
    rank = result["rank"]
    if rank is not None:
        excludes = rank["tau_low"] > 0
        verdict = (
            "The tau interval excludes 0: one evaluation orders the architectures better than "
            "chance"
            if excludes
            else "The tau interval includes 0: one evaluation does not order these architectures "
            "reliably better than chance"
        )
        noise = f"the single-evaluation sd seen here is {_pt(rank['single_sd'], 1)} points"
        if rank["between_sd"] > 0:
            noise += (
                f", {rank['single_sd'] / rank['between_sd']:.2f}x the spread of the "
                f"architectures' means ({_pt(rank['between_sd'], 1)} points)"
            )
        lines.append(
            f"* **Ranking {rank['n']} architectures from one evaluation**: Kendall tau "
            f"{rank['kendall_tau']:.2f} ({rank['tau_low']:.2f} to {rank['tau_high']:.2f}), "
            f"Spearman rho {rank['spearman_rho']:.2f} ({rank['rho_low']:.2f} to "
            f"{rank['rho_high']:.2f}). {verdict}; {noise}; A's best is ranked "
            f"{rank['best_a_rank_in_b']} of {rank['n']} in B."
        )
    return lines
