"""Search strategies replayed on a tabular benchmark: which sampler and pruner beat random search?

Every strategy (a sampler x a pruner, built by the engine's own ``make_sampler`` /
``make_pruner`` from the table's config) runs ``--seeds`` times on the table through
:func:`nas.replay.replay_search`: each trial sees one stored seed's curve (drawn per trial) and
is pruned where the pruner would prune it. A run is scored by what it *reports*: its Pareto front
of complete trials by the values it measured, valued at the table's seed means (the truth a single
run only estimates):

* **HV share**: hypervolume of the reported architectures at their true values, as a share of
  the hypervolume of the table's true front (reference: the worst true accuracy and 1.01 x the
  largest cost, :func:`nas.replay.table_reference`);
* **P(best)**: the share of runs whose report holds the true most accurate architecture;
* **epochs**: training epochs the run stood for (duplicates cost none).

Budgets are trials (``n_trials``, duplicates included, as the engine counts them). Samplers that
do not depend on the budget run once at the largest budget and are scored on each prefix;
NSGA-II runs once per budget with a population of ``max(4, budget // 5)`` (five generations),
so that its population fits the budget. Each strategy is tested against random search without
pruning at every budget by a one-sided Mann-Whitney U test on HV share (greater), Holm-adjusted
over all comparisons; mean +- standard error curves of HV share against trials and against
epochs are written as an HTML figure beside the results.

    python benchmarks/strategies.py --table benchmarks/tables/table-cifar10-placement.json \\
        --seeds 100 --workers 2 --out benchmarks/results/strategies_cifar10.md

Runs are appended to ``<out>.runs.jsonl.gz`` as they finish; the same command resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import multiprocessing
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

# Run as a script (``python benchmarks/strategies.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import optuna
from scipy import stats

from benchmarks._harness import (
    ALPHA,
    Session,
    command_line,
    fmt,
    holm_by_key,
    markdown_table,
    read_runs,
    run_log,
    write_results,
)
from nas.config import PruningSection, StudyConfig
from nas.pareto import hypervolume, non_dominated_sort
from nas.replay import best_digest, replay_config, table_reference, true_front
from nas.study import quiet_third_party_output
from nas.tabular import Table, load_table

DEFAULT_BUDGETS = (10, 20, 50, 100)
CONTROL = "random"
SAMPLERS = ("random", "nsga2", "tpe", "gp", "additive")
PRUNERS = ("none", "moasha", "pareto")


class Strategy(NamedTuple):
    sampler: str
    pruner: str

    @property
    def key(self) -> str:
        return self.sampler if self.pruner == "none" else f"{self.sampler}+{self.pruner}"

    @property
    def per_budget(self) -> bool:
        """Whether the sampler's settings depend on the budget (one run per budget)."""
        return self.sampler == "nsga2"


def all_strategies(samplers: Sequence[str], pruners: Sequence[str]) -> list[Strategy]:
    return [Strategy(s, p) for s in samplers for p in pruners]


def population(budget: int) -> int:
    """NSGA-II's population at a budget: five generations, at least 4 trials each."""
    return max(4, budget // 5)


def run_config(table: Table, strategy: Strategy, seed: int, budget: int, args: Any) -> StudyConfig:
    """The table's config with the strategy's sampler and pruner (and baselines or not), as a
    study would set them; the additive sampler starts with its engine default of random trials
    (``nas.study.ADDITIVE_STARTUP``)."""
    cfg = table.config
    study = dataclasses.replace(
        cfg.study,
        sampler=strategy.sampler,
        seed=seed,
        population_size=population(budget) if strategy.per_budget else args.startup,
    )
    pruning = PruningSection(
        pruner=strategy.pruner,
        min_epochs=args.min_epochs,
        reduction_factor=args.reduction_factor,
        percentile=args.percentile,
        n_startup_trials=args.n_startup_trials,
        n_warmup_epochs=args.n_warmup_epochs,
    )
    evaluation = dataclasses.replace(cfg.evaluation, baselines=args.baselines)
    return dataclasses.replace(cfg, study=study, pruning=pruning, evaluation=evaluation)


class Scorer:
    """True HV share and whether the true best is reported, for prefixes of a replayed study."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.reference = table_reference(table)
        self.truth = {
            a.digest: table.objective_values(a, a.mean_val_acc()) for a in table.architectures
        }
        self.front = set(true_front(table))
        self.best_hv = self._hv(self.front)
        self.best = best_digest(table)

    def _hv(self, digests: Sequence[str]) -> float:
        points = [self.truth[d] for d in set(digests)]
        return hypervolume(points, self.reference, self.table.directions) if points else 0.0

    def trajectory(self, study: optuna.Study) -> tuple[list[float], list[bool], list[float]]:
        """(HV share, true best reported, regret) after each trial; the regret is how far the
        truly most accurate reported architecture falls below the table's best (in accuracy)."""
        shares, best, regret = [], [], []
        top = self.truth[self.best][0]
        complete: list[tuple[list[float], str]] = []
        for t in study.get_trials(deepcopy=False):
            if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None:
                complete.append((list(t.values), t.user_attrs["digest"]))
            if complete:
                first = non_dominated_sort([v for v, _ in complete], study.directions)[0]
                reported = [complete[i][1] for i in first]
            else:
                reported = []
            shares.append(self._hv(reported) / self.best_hv)
            best.append(self.best in reported)
            regret.append(top - max((self.truth[d][0] for d in reported), default=-np.inf))
        return shares, best, regret


def run_one(job: tuple[str, Strategy, int, int, dict[str, Any]]) -> dict[str, Any]:
    """One replayed search: its trajectory of HV share, true best reported and epochs."""
    table_path, strategy, seed, budget, options = job
    quiet_third_party_output()
    warnings.filterwarnings("ignore")
    table = cached_table(table_path)
    args = argparse.Namespace(**options)
    start = time.perf_counter()
    cfg = run_config(table, strategy, seed, budget, args)
    result = replay_config(table, cfg, seed=seed, n_trials=budget)
    shares, best, regret = cached_scorer(table_path).trajectory(result.study)
    return {
        "strategy": strategy.key,
        "sampler": strategy.sampler,
        "pruner": strategy.pruner,
        "seed": seed,
        "budget": budget,
        "hv_share": [round(x, 6) for x in shares],
        "best": best,
        "regret": [round(x, 6) if math.isfinite(x) else None for x in regret],
        "epochs": result.epochs,
        "replay_seconds": round(time.perf_counter() - start, 3),
    }


@functools.cache
def cached_table(path: str) -> Table:
    """The table at ``path``, loaded once per worker process."""
    return load_table(path)


@functools.cache
def cached_scorer(path: str) -> Scorer:
    """The :class:`Scorer` of the table at ``path``, built once per worker process."""
    return Scorer(cached_table(path))


def jobs(args: argparse.Namespace, done: set[tuple[str, int, int]]) -> list[tuple]:
    options = {k: getattr(args, k) for k in OPTION_KEYS}
    out = []
    for strategy in all_strategies(args.samplers, args.pruners):
        budgets = args.budgets if strategy.per_budget else [max(args.budgets)]
        for budget in budgets:
            for seed in range(args.seeds):
                if (strategy.key, seed, budget) not in done:
                    out.append((str(args.table), strategy, seed, budget, options))
    return out


OPTION_KEYS = (
    "baselines",
    "startup",
    "min_epochs",
    "reduction_factor",
    "percentile",
    "n_startup_trials",
    "n_warmup_epochs",
)


# -- analysis ------------------------------------------------------------------------------------


def at_budget(runs: list[dict[str, Any]], key: str, budget: int) -> list[dict[str, Any]]:
    """The runs of ``key`` scored at ``budget``, one per seed (prefix of a longer run, or the
    run made for that budget)."""
    chosen: dict[int, dict[str, Any]] = {}
    for r in runs:
        if r["strategy"] != key or r["budget"] < budget:
            continue
        if r["sampler"] == "nsga2" and r["budget"] != budget:
            continue
        chosen.setdefault(r["seed"], r)
    return [chosen[s] for s in sorted(chosen)]


def summarise(runs: list[dict[str, Any]], keys: list[str], budgets: list[int]) -> list[dict]:
    rows = []
    for budget in budgets:
        control = [r["hv_share"][budget - 1] for r in at_budget(runs, CONTROL, budget)]
        for key in keys:
            chosen = at_budget(runs, key, budget)
            if not chosen:
                continue
            hv = np.array([r["hv_share"][budget - 1] for r in chosen])
            best = np.array([r["best"][budget - 1] for r in chosen], dtype=float)
            epochs = np.array([sum(r["epochs"][:budget]) for r in chosen], dtype=float)
            regret = np.array(
                [
                    np.nan if r["regret"][budget - 1] is None else r["regret"][budget - 1]
                    for r in chosen
                ]
            )
            row = {
                "budget": budget,
                "strategy": key,
                "seeds": len(chosen),
                "hv_mean": float(hv.mean()),
                "hv_se": float(hv.std(ddof=1) / math.sqrt(len(hv))) if len(hv) > 1 else math.nan,
                "p_best": float(best.mean()),
                "regret_mean": float(np.nanmean(regret)) if np.isfinite(regret).any() else math.nan,
                "epochs_mean": float(epochs.mean()),
                "p_value": math.nan,
                "p_worse": math.nan,
            }
            if key != CONTROL and len(control) >= 2 and len(hv) >= 2:
                for column, alternative in (("p_value", "greater"), ("p_worse", "less")):
                    row[column] = float(
                        stats.mannwhitneyu(hv, control, alternative=alternative).pvalue
                    )
            rows.append(row)
    holm = holm_by_key(
        {i: r["p_value"] for i, r in enumerate(rows) if not math.isnan(r["p_value"])}
    )
    for i, r in enumerate(rows):
        r["p_holm"] = float(holm.get(i, math.nan))
    for r in rows:
        r["beats_random"] = bool(r["p_holm"] < ALPHA)
        # "Worse" is not adjusted on purpose: a default must not be even nominally worse than
        # random search, and an adjustment would call more strategies ties, cheap ones first.
        r["verdict"] = (
            "-"
            if r["strategy"] == CONTROL
            else "better"
            if r["beats_random"]
            else "worse"
            if r["p_worse"] < ALPHA
            else "tie"
        )
    return rows


def cheapest_tie(rows: list[dict[str, Any]], budget: int) -> dict[str, Any] | None:
    """The strategy the defaults take at ``budget``: the best one that beats random search (by
    mean HV share), or where none does, the one that ties random (neither better nor worse)
    with the fewest training epochs; random search itself where nothing ties."""
    at = [r for r in rows if r["budget"] == budget]
    winners = [r for r in at if r["verdict"] == "better"]
    if winners:
        return max(winners, key=lambda r: r["hv_mean"])
    ties = [r for r in at if r["verdict"] in ("tie", "-")]
    return min(ties, key=lambda r: r["epochs_mean"]) if ties else None


def curves(runs: list[dict[str, Any]], key: str, budget: int, epoch_grid: np.ndarray) -> dict:
    """Mean +- s.e. of HV share after each trial, and at each point of ``epoch_grid``."""
    chosen = at_budget(runs, key, budget)
    by_trial = np.array([r["hv_share"][:budget] for r in chosen])
    by_epoch = []
    for r in chosen:
        spent = np.cumsum(r["epochs"][:budget])
        shares = np.array(r["hv_share"][:budget])
        index = np.searchsorted(spent, epoch_grid, side="right") - 1
        by_epoch.append(np.where(index >= 0, shares[np.clip(index, 0, None)], 0.0))
    by_epoch = np.array(by_epoch)

    def mean_se(a: np.ndarray) -> tuple[list[float], list[float]]:
        se = a.std(axis=0, ddof=1) / math.sqrt(len(a)) if len(a) > 1 else np.zeros(a.shape[1])
        return a.mean(axis=0).tolist(), se.tolist()

    return {"trials": mean_se(by_trial), "epochs": mean_se(by_epoch)}


def figure(runs: list[dict[str, Any]], keys: list[str], budget: int, epochs_max: int, path: Path):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    grid = np.linspace(0, epochs_max, 101)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("HV share vs trials", "HV share vs training epochs"),
    )
    for key in keys:
        if not at_budget(runs, key, budget):
            continue
        c = curves(runs, key, budget, grid)
        for col, (xs, (mean, se)) in enumerate(
            ((list(range(1, budget + 1)), c["trials"]), (grid.tolist(), c["epochs"])), start=1
        ):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=mean,
                    name=key,
                    legendgroup=key,
                    showlegend=col == 1,
                    error_y={"type": "data", "array": se, "visible": True, "thickness": 0.5},
                    mode="lines",
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(title_text="true HV share (mean +- s.e.)")
    fig.update_layout(width=1200, height=500)
    fig.write_html(path, include_plotlyjs="cdn")


def body(table: Table, rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        f"Table `{args.table}`: {len(table.architectures)} of {table.space_size} architectures, "
        f"{len(table.seeds)} seeds, {table.epochs} epochs, objectives {table.objectives}; "
        f"{args.seeds} replayed searches per strategy and budget (seeds 0..{args.seeds - 1}). "
        f"Pruners: MO-ASHA min_epochs {args.min_epochs}, reduction_factor "
        f"{args.reduction_factor}; Pareto percentile {args.percentile:g}, n_startup_trials "
        f"{args.n_startup_trials}, n_warmup_epochs {args.n_warmup_epochs}; TPE and GP start-up "
        f"trials {args.startup}; NSGA-II population max(4, budget // 5); "
        + (
            "every search starts with the space's baselines (none and each block everywhere, "
            "never pruned, in the budget)."
            if args.baselines
            else "no baselines."
        ),
        "",
        "HV share: true hypervolume of the reported front / the table's true front's (mean +- "
        "s.e. over seeds). P(best): share of runs reporting the true most accurate "
        "architecture. Regret: true accuracy of the table's best minus that of the best "
        "reported architecture (mean, points; runs that report nothing yet left out). p: "
        "one-sided Mann-Whitney U against random search at the same budget "
        "(HV share greater), Holm over every comparison in this table; p worse: the same test "
        "the other way (HV share less), not adjusted (a default must not be even nominally "
        "worse; an adjustment would call more strategies ties, the cheap ones first). Verdict: "
        "better where Holm p < 0.05, worse where p worse < 0.05, else tie.",
        "",
    ]
    header = ["strategy", "seeds", "HV share", "P(best)", "regret (points)", "epochs", "p"]
    header += ["Holm p", "p worse", "verdict"]
    for budget in sorted({r["budget"] for r in rows}):
        cells = [
            [
                r["strategy"],
                r["seeds"],
                f"{100 * r['hv_mean']:.2f} +- {100 * r['hv_se']:.2f} %",
                f"{100 * r['p_best']:.0f} %",
                f"{100 * r['regret_mean']:.2f}",
                f"{r['epochs_mean']:.0f}",
                *(fmt(r[c], ".3g", "") for c in ("p_value", "p_holm", "p_worse")),
                r["verdict"],
            ]
            for r in sorted((r for r in rows if r["budget"] == budget), key=lambda r: -r["hv_mean"])
        ]
        lines += [f"### Budget {budget} trials", ""]
        lines += markdown_table(header, "lrrrrrrrrl", cells, compact=True)
        choice = cheapest_tie(rows, budget)
        if choice is not None:
            lines += [
                "",
                f"Defaults at {budget} trials: **{choice['strategy']}** ("
                + (
                    "beats random search"
                    if choice["verdict"] == "better"
                    else "no strategy beats random search; the fewest epochs among those "
                    "that tie it"
                )
                + f": {100 * choice['hv_mean']:.2f}% HV share with {choice['epochs_mean']:.0f} "
                "epochs).",
            ]
        lines.append("")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, required=True, help="a table file (nas table export)")
    p.add_argument("--seeds", type=int, default=100, help="replays per strategy and budget")
    p.add_argument("--budgets", type=int, nargs="+", default=list(DEFAULT_BUDGETS))
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    p.add_argument("--pruners", nargs="+", default=list(PRUNERS), choices=PRUNERS)
    p.add_argument(
        "--baselines",
        action="store_true",
        help="each search starts with the space's baselines, as a study with "
        "evaluation.baselines does (never pruned, in the budget)",
    )
    p.add_argument("--startup", type=int, default=8, help="TPE / GP start-up trials (8)")
    p.add_argument("--min-epochs", type=int, default=1, help="MO-ASHA's first rung (1)")
    p.add_argument("--reduction-factor", type=int, default=2, help="MO-ASHA's eta (2)")
    p.add_argument("--percentile", type=float, default=50.0)
    p.add_argument("--n-startup-trials", type=int, default=4)
    p.add_argument("--n-warmup-epochs", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="processes (1)")
    p.add_argument("--render", action="store_true", help="only render the saved runs")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    session = Session()
    quiet_third_party_output()
    table = load_table(args.table)
    if max(args.budgets) > table.space_size:
        raise SystemExit(
            f"--budgets up to {max(args.budgets)} exceed the table's {table.space_size} "
            "architectures; use budgets up to the space's size"
        )
    runs = read_runs(args.out)
    done = {(r["strategy"], r["seed"], r["budget"]) for r in runs}
    todo = [] if args.render else jobs(args, done)
    start = time.perf_counter()
    if todo:
        print(f"{len(todo)} replayed searches to run ({len(done)} saved)")
        with run_log(args.out) as append:
            if args.workers > 1:
                ctx = multiprocessing.get_context("spawn")
                with ctx.Pool(args.workers) as pool:
                    for i, run in enumerate(pool.imap_unordered(run_one, todo, chunksize=4)):
                        append(run)
                        runs.append(run)
                        if (i + 1) % 100 == 0:
                            print(f"  {i + 1} / {len(todo)}  {time.perf_counter() - start:.0f} s")
            else:
                for run in map(run_one, todo):
                    append(run)
                    runs.append(run)
    keys = [s.key for s in all_strategies(args.samplers, args.pruners)]
    rows = summarise(runs, keys, sorted(args.budgets))
    budget = max(args.budgets)
    figure(runs, keys, budget, table.epochs * budget, args.out.with_suffix(".html"))
    write_results(
        args.out,
        title="Search strategies replayed on a tabular benchmark",
        command=command_line(__file__, argv, python="python"),
        info=session.machine(),
        load_note="replays train nothing: the load changes only their wall clock",
        body=body(table, rows, args),
        raw={"rows": rows, "args": {k: str(v) for k, v in vars(args).items()}},
    )
    print("\n".join(body(table, rows, args)))
    return rows


if __name__ == "__main__":
    main()
