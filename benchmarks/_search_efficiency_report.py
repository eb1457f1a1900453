"""The report of ``benchmarks/search_efficiency.py``: its tables, the verdict on the targets and
on random search, the hypervolume figures, and the results files (Markdown, JSON, HTML).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import (
    ALPHA,
    CONFIDENCE,
    comparison_cells,
    fmt,
    machine_line,
    markdown_table,
    results_head,
    results_record,
    undefined_t_note,
    utc_now,
    write_json,
    write_markdown,
)
from benchmarks._search_efficiency_measures import (
    CONTROL,
    RANGE_MARGIN,
    STRATEGIES,
    TARGET_HV,
    TARGET_SAVED,
    distinct,
    moasha_rungs,
    value_at,
)

TITLE = "Search efficiency: hypervolume per epoch and per second, with and without pruning"

# --- figures -----------------------------------------------------------------------------------

COLOURS = {
    "random": "#7f7f7f",
    "nsga2": "#1f77b4",
    "nsga2-pareto": "#d62728",
    "nsga2-moasha": "#2ca02c",
    "tpe-pareto": "#9467bd",
}
#: The figures beside the report, by x axis: the runs' history column, the axis title and the
#: figure's title.
FIGURES = {
    "epochs": (
        "epochs_spent",
        "training epochs spent",
        "Hypervolume against training epochs spent",
    ),
    "wallclock": (
        "elapsed_s",
        "wall clock since the first trial started (s)",
        "Hypervolume against wall clock",
    ),
    "trials": (
        "finished",
        "trials finished (complete + pruned)",
        "Hypervolume against trials finished",
    ),
}


def mean_curve(curves: list[tuple[list[float], list[float]]]) -> tuple[list[float], list[float]]:
    """Mean of step curves on the union of their x values, up to where the shortest one ends."""
    end = min(xs[-1] for xs, _ in curves)
    grid = sorted({x for xs, _ in curves for x in xs if x <= end})
    return grid, [float(np.mean([value_at(xs, ys, x) for xs, ys in curves])) for x in grid]


def figure(runs: list[dict[str, Any]], strategies: Sequence[str], axis: str) -> Any:
    """HV against ``axis`` (a key of :data:`FIGURES`): a thin step line per run, a thick one for
    each strategy's mean over seeds."""
    import plotly.graph_objects as go

    column, x_title, title = FIGURES[axis]
    fig = go.Figure()

    def steps(key: str, xs: list[float], ys: list[float], width: int, **style: Any) -> None:
        line = {"shape": "hv", "width": width, "color": COLOURS.get(key)}
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=line, legendgroup=key, **style))

    for key in strategies:
        curves = []
        for r in (r for r in runs if r["strategy"] == key):
            xs, ys = [0.0, *r["history"][column]], [0.0, *r["history"]["hv"]]
            curves.append((xs, ys))
            name = f"{key} seed {r['seed']}"
            hover = f"{name}<br>%{{x}}: HV %{{y:.4f}}<extra></extra>"
            steps(key, xs, ys, 1, opacity=0.35, name=name, showlegend=False, hovertemplate=hover)
        if curves:
            label = f"{STRATEGIES[key].label} (mean of {len(curves)} seeds)"
            steps(key, *mean_curve(curves), 3, name=label)
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title="normalised hypervolume (common reference)",
        template="plotly_white",
        legend={"yanchor": "bottom", "y": 0.02, "xanchor": "right", "x": 0.98},
    )
    return fig


# --- report ------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return fmt(value, ".1%")


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("**yes**" if flag else "**no**")


def tables(summary: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[str]:
    header = ["strategy", "complete / pruned / dup. (per seed)", "epochs (per seed)"]
    header += ["epochs saved", "HV (mean ± sd)", "HV kept", "HV kept, min seed"]
    header += ["HV kept, 1.1 max ref", "HV kept at equal epochs", "front recovered", "wall s"]
    header += ["CPU s", "saved >= 40%", "HV >= 95%"]
    rows = [
        [
            s["label"],
            f"{s['complete']:.1f} / {s['pruned']:.1f} / {s['duplicates']:.1f}",
            f"{s['epochs']:.1f}",
            _pct(s["epochs_saved"]),
            f"{s['hv']:.4f} ± {s['hv_sd']:.4f}",
            *map(_pct, (s["hv_kept"], s["hv_kept_min"], s["hv_alt_kept"])),
            *map(_pct, (s["hv_kept_equal_epochs"], s["front_recovered"])),
            f"{s['wall_s']:.0f}",
            f"{s['cpu_s']:.0f}",
            _yes(s["saved_met"]),
            _yes(s["hv_met"]),
        ]
        for s in summary
    ]
    per_run_header = ["strategy", "seed", "complete", "pruned (epochs run)", "dup."]
    per_run_header += ["NSGA-II gen.", "epochs", "HV", "HV kept", "front recovered"]
    per_run_header += ["front size", "wall s", "CPU s", "load before / after"]
    per_run = [
        [
            r["strategy"],
            r["seed"],
            r["complete"],
            f"{r['pruned']} ({','.join(str(e) for e in sorted(r['pruned_epochs_run'])) or '-'})",
            r["duplicates"],
            "-" if r["max_generation"] is None else r["max_generation"],
            r["epochs_spent"],
            f"{r['hv']:.4f}",
            _pct(r["hv_kept"]),
            _pct(r["front_recovered"]),
            len(distinct(r["front"])),
            f"{r['wall_s']:.0f}",
            f"{r['cpu_s']:.0f}",
            f"{r['load_before']} / {r['load_after']}",
        ]
        for r in runs
    ]
    return [
        *markdown_table(header, "llrrlrrrrrrrll", rows),
        "",
        "Per run:",
        "",
        *markdown_table(per_run_header, "lrrlrrrrrrrrrl", per_run),
        *comparison_tables(summary),
    ]


def _test_header(measure: str, against: str) -> list[str]:
    """The header of a table of tests over seeds: ``measure`` of each strategy against
    ``against``."""
    return [
        "strategy",
        "seeds",
        f"{measure} (mean)",
        "95% t interval",
        "t",
        "p",
        "p_adj (Holm)",
        f"differs from {against} (p_adj < {ALPHA:g})",
    ]


def comparison_tables(summary: list[dict[str, Any]]) -> list[str]:
    """The tests over seeds: every strategy against random search (final HV, paired by seed),
    and every strategy's HV kept against NSGA-II's 100%."""
    lines = ["", "### Compared with random search (test over seeds)", ""]
    against = [s for s in summary if s.get("vs_random")]
    if not any(s["strategy"] == CONTROL for s in summary):
        lines.append(
            "Random search was not among the strategies of this run (`--strategies`): no "
            "comparison with it, so this run cannot say whether any strategy beats random search."
        )
    elif against:
        family = max((s["vs_random"]["family"] or 0) for s in against)
        lines += [
            "Final HV of the strategy minus final HV of random search, paired by seed (each seed "
            "runs every strategy on the same split and batch order): mean over seeds with its "
            f"{CONFIDENCE:.0%} Student-t interval, two-sided paired t-test, p-value "
            f"Holm-adjusted over the {family or len(against)} comparisons with random search "
            f"(p_adj). A strategy differs from random where p_adj < {ALPHA:g}.",
            "",
            *markdown_table(
                _test_header("HV - random", "random"),
                "lrrlrrrl",
                ([s["label"], *comparison_cells(s["vs_random"])] for s in against),
            ),
            *undefined_t_note(s["vs_random"] for s in against),
        ]
    kept = [s for s in summary if s.get("hv_kept_test")]
    if kept:
        family = max((s["hv_kept_test"]["family"] or 0) for s in kept)
        lines += [
            "",
            "HV kept against NSGA-II without pruning (same test): per-seed HV kept (final HV / "
            "NSGA-II's on the same seed), mean with its 95% Student-t interval, two-sided t-test "
            f"of HV kept = 100%, p-value Holm-adjusted over the {family or len(kept)} strategies "
            "other than NSGA-II.",
            "",
            *markdown_table(
                _test_header("HV kept", "NSGA-II"),
                "lrrlrrrl",
                (
                    [s["label"], *comparison_cells(s["hv_kept_test"], shift=1.0, spec=".1%")]
                    for s in kept
                ),
            ),
            *undefined_t_note(s["hv_kept_test"] for s in kept),
        ]
    return lines


def verdict(
    summary: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    args: argparse.Namespace,
    noise: dict[str, Any] | None = None,
) -> str:
    parts = []
    for s in summary:
        if s["saved_met"] is None:
            continue
        status = "meets both targets" if s["saved_met"] and s["hv_met"] else "misses"
        missed = []
        if not s["saved_met"]:
            missed.append(
                f"epochs saved {_pct(s['epochs_saved'])} < 40% (short by "
                f"{(TARGET_SAVED - s['epochs_saved']) * 100:.1f} points)"
            )
        if not s["hv_met"]:
            missed.append(
                f"HV kept {_pct(s['hv_kept'])} < 95% (short by "
                f"{(TARGET_HV - s['hv_kept']) * 100:.1f} points)"
            )
        detail = f" ({'; '.join(missed)})" if missed else ""
        parts.append(
            f"* {s['label']}: saves {_pct(s['epochs_saved'])} of the epochs and keeps "
            f"{_pct(s['hv_kept'])} of the HV (worst seed {_pct(s['hv_kept_min'])}): "
            f"{status}{detail}."
        )
    settings = (
        f"Pruner settings: pareto percentile {args.percentile:g}, n_startup_trials "
        f"{args.n_startup_trials}, n_warmup_epochs {args.n_warmup_epochs} (engine-fixed "
        f"interval 1, n_min_peers 3); moasha min_epochs {args.min_epochs}, reduction_factor "
        f"{args.reduction_factor}, max_epochs {args.epochs} (rungs after {moasha_rungs(args)} "
        "epochs)."
    )
    prunable = max(0, args.trials - args.n_startup_trials)
    first_check = args.n_warmup_epochs + 1
    bound = prunable * max(0, args.epochs - first_check) / (args.trials * args.epochs)
    facts = [
        f"* Ceiling of the pareto pruner's saving with these settings: the first "
        f"{args.n_startup_trials} complete trials are never pruned and a pruned trial has run "
        f"at least {first_check} epochs, so at most {prunable} of {args.trials} trials save at "
        f"most {max(0, args.epochs - first_check)} of {args.epochs} epochs each: <= {bound:.0%} "
        "of the nominal trials x epochs."
    ]
    generations = {
        key: [r["max_generation"] for r in runs if r["strategy"] == key]
        for key in dict.fromkeys(r["strategy"] for r in runs)
        if STRATEGIES[key].sampler == "nsga2"
    }
    if generations:
        shown = "; ".join(f"{k} {v}" for k, v in generations.items())
        facts.append(
            f"* Last NSGA-II generation reached, per seed: {shown}. Optuna closes a generation "
            f"only once it holds population_size ({args.population}) COMPLETE trials, so a run "
            "that prunes most trials keeps sampling its random first generation."
        )
    last = sum(e >= args.epochs for r in runs for e in r["pruned_epochs_run"])
    facts.append(
        f"* Trials pruned after their final epoch (no epochs saved, finished result dropped): "
        f"{last}."
    )
    spread = [
        f"{s['label']} {s['hv_sd'] / s['hv']:.1%}"
        for s in summary
        if s["hv"] > 0 and s["seeds"] > 1
    ]
    if spread:
        facts.append(f"* Seed-to-seed spread of the final HV (sd / mean): {', '.join(spread)}.")
    control = control_verdict(summary, args, noise)
    return "\n".join([*parts, *(["", control] if control else []), "", settings, "", *facts])


def control_verdict(
    summary: list[dict[str, Any]], args: argparse.Namespace, noise: dict[str, Any] | None
) -> str:
    """What the tests against random search allow one to say (empty without random search)."""
    tested = [s for s in summary if s.get("vs_random")]
    if not tested:
        return ""
    raise_what = (
        "raise the validation split (`--val-per-class`, now "
        f"{args.val_per_class}: the split's standard error falls as 1/sqrt(images)), the epochs "
        f"per trial (`--epochs`, now {args.epochs}) and the seeds (`--seeds`, now "
        f"{len(args.seeds)}: the interval narrows with more seeds and a smaller t quantile)"
    )
    if all(s["vs_random"]["n"] < 2 for s in tested):
        return (
            "* Compared with random search: one seed, so no test over seeds is possible and "
            "the differences from random search are single observations, not evidence. To tell "
            f"the strategies apart, {raise_what}."
        )
    differs = [s for s in tested if s["vs_random"]["differs"]]
    if not differs:
        smallest = min(s["vs_random"]["p_adj"] for s in tested if s["vs_random"]["n"] >= 2)
        largest = max(abs(s["vs_random"]["mean"]) for s in tested)
        seeds = max(s["vs_random"]["n"] for s in tested)
        scale = (
            f", against one validation-split standard error of {noise['binomial_se']:.4f} in "
            f"val_acc (about {noise['hv_se']:.4f} of HV)"
            if noise
            else ""
        )
        return (
            "* **No strategy differs from random search**: the paired t-test over "
            f"{seeds} seeds gives Holm-adjusted p >= {ALPHA:g} for every one of the "
            f"{len(tested)} strategies (smallest p_adj {smallest:.3f}); the mean HV differences "
            f"from random search are at most {largest:.4f}{scale}. At this size the benchmark "
            "cannot tell the strategies apart: the HV kept and front recovered figures above "
            "do not rank them, and the HV target is met or missed within that noise. To measure "
            f"the strategies, {raise_what}."
        )
    shown = "; ".join(
        f"{s['label']} (HV {s['vs_random']['mean']:+.4f}, p_adj {s['vs_random']['p_adj']:.3f})"
        for s in differs
    )
    same = [s["label"] for s in tested if s not in differs]
    rest = f" No difference shown for: {', '.join(same)}." if same else ""
    return f"* Differs from random search (Holm-adjusted p < {ALPHA:g}): {shown}.{rest}"


def write_results(
    out: Path,
    command: str,
    info: dict[str, Any],
    args: argparse.Namespace,
    problem: dict[str, Any],
    summary: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    total_s: float,
    date: str | None = None,
    note: str = "",
    with_json: bool = True,
) -> list[Path]:
    """The report ``out`` (Markdown), its figures beside it and, ``with_json``, the results
    JSON; returns the paths written."""
    date = date or utc_now()
    figures = {axis: out.with_name(f"{out.stem}_hv_{axis}.html") for axis in FIGURES}
    ref, bounds, space = problem["reference"], problem["flops_bounds"], problem["space"]
    variant = "reduced (`--quick`)" if args.quick else "as given by the command"
    facts = [
        f"Command: `{command}`",
        f"Variant: {variant}; total run time {total_s / 60:.1f} min",
        f"Date: {date}",
        *([note] if note else []),
        machine_line(info, gpu=True),
        "Load average (1 min) before / after each run is in the per-run table: a load above the "
        "torch threads means other processes shared the CPU, which slows wall clock (not "
        "epochs, and CPU seconds less).",
    ]
    lines = [
        *results_head(TITLE, facts),
        "The full variant (`.venv/bin/python benchmarks/search_efficiency.py`: 5,000 / 2,000 "
        "images, 3 seeds x 24 trials) needs about 3.5 hours on 2 idle CPU cores (an estimate "
        "from ~8 s per epoch measured there with 2 threads; not run here).",
        "",
        "## Problem",
        "",
        f"* data: {problem['data']}; split sizes {problem['split_sizes']}",
        f"* model: {args.backbone} width {args.width}, {args.epochs} epochs per trial "
        f"(SGD lr 0.1, momentum 0.9, wd 5e-4, cosine, flip+crop)",
        f"* space: per-stage, blocks {space['blocks']}, reductions {space['reductions']}, ECA "
        f"kernel {space['eca_kernels']}, positions {space['positions']}: "
        f"{bounds['architectures']} architectures",
        f"* {args.trials} trials per run, seeds {args.seeds}, NSGA-II population / TPE start-up "
        f"{args.population}",
        f"* objectives: maximise val_acc, minimise FLOPs. FLOPs of the space: backbone "
        f"{bounds['backbone']:,}, cheapest {bounds['min']:,}, most expensive {bounds['max']:,} "
        f"({bounds['dearest']}; per-stage sums match the direct counts: {bounds['additive']})",
        f"* common reference point (all runs): val_acc {ref['worst'][0]}, FLOPs "
        f"{ref['worst'][1]:,.0f} (= max + {RANGE_MARGIN:g} x (max - min)); ideal val_acc 1, "
        f"FLOPs {ref['ideal'][1]:,.0f}; HV normalised by that box. Alternative reference "
        f"(column 'HV kept, 1.1 max ref'): (0, "
        f"{problem['alternative_reference']['worst'][1]:,.0f})",
        *noise_lines(problem.get("val_noise")),
        "",
        "Definitions (details in the module docstring): *epochs saved* = 1 - (epochs of the "
        "strategy summed over seeds) / (epochs of NSGA-II without pruning summed over seeds); "
        "*HV kept* = final HV / final HV of NSGA-II without pruning on the same seed, after the "
        "same number of trials, mean over seeds; *HV kept at equal epochs* = final HV / HV that "
        "unpruned NSGA-II had reached with no more epochs spent; *front recovered* = share of "
        "the unpruned NSGA-II final front's points that some point of the strategy's final front "
        "weakly dominates or equals (same seed), mean over seeds.",
        "",
        "## Results",
        "",
        *tables(summary, runs),
        "",
        "## Targets (pruning saves >= 40% of epochs, keeps >= 95% of the unpruned HV)",
        "",
        verdict(summary, runs, args, problem.get("val_noise")),
        "",
        "Figures (one thin line per seed, thick line = mean over seeds up to where the shortest "
        "run ends): " + ", ".join(f"[HV vs {axis}]({path.name})" for axis, path in figures.items()),
    ]
    write_markdown(out, lines)
    strategies = list(dict.fromkeys(r["strategy"] for r in runs))
    for axis, path in figures.items():
        figure(runs, strategies, axis).write_html(path, include_plotlyjs="cdn")
    if not with_json:
        return [out, *figures.values()]
    json_path = out.with_suffix(".json")
    args_shown = {k: v for k, v in vars(args).items() if k not in ("out", "render")}
    raw = {"total_s": total_s, "args": args_shown, "problem": problem}
    raw.update(summary=summary, runs=runs)
    write_json(json_path, results_record(command, date, info, raw))
    return [out, json_path, *figures.values()]


def noise_lines(noise: dict[str, Any] | None) -> list[str]:
    """The Problem section's bullet on the validation split's measurement noise."""
    if not noise:
        return []
    se, hv_se = noise["binomial_se"], noise["hv_se"]
    width = f"SE x that point's {noise['flops_width']:.2f} share of the FLOPs axis"
    share = (
        f" ({hv_se / noise['mean_hv']:.1%} of the mean final HV; {width})"
        if noise["mean_hv"]
        else f" ({width})"
    )
    return [
        f"* measurement noise of the validation split: binomial standard error sqrt(p (1 - p) / n) "
        f"= {se:.4f} at p = {noise['mean_best_val_acc']:.4f} (the runs' mean final best val_acc) "
        f"and n = {noise['val_images']} val images; it counts the split's sampling only, not "
        f"training-seed noise. On the HV scale one such error on a run's most accurate point is "
        f"about {hv_se:.4f}{share}, so HV differences below that are within the noise of a "
        "single evaluation.",
    ]
