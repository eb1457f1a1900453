"""Early stopping on a tabular benchmark: does a rung rank the trials, and what does pruning cost?

Two measures on one table (``nas table build``):

* **Per-epoch ranking.** For each epoch e, Spearman's rho over every architecture of the table
  between one run's validation accuracy after e epochs (what a search sees at a rung) and the
  architecture's true final accuracy, taken as the mean final accuracy of its *other* seeds (so a
  run is never compared with itself); averaged over the seeds, with a 95% percentile-bootstrap
  interval over architectures. The last row (e = all epochs) is the ceiling a single full
  training reaches: the noise of one run.
* **Pruner settings replayed.** Random search with each pruner setting (MO-ASHA's and the noise-
  aware pruner's first rung and eta, the Pareto percentile pruner's warm-up), ``--seeds`` replays
  each through :func:`nas.replay.replay_config`, scored as ``benchmarks/strategies.py`` scores
  (true HV share of the reported front) plus the **epochs saved** against no pruning and the
  **false-prune rate**: the share of sampled trials whose architecture is on the table's true
  front that the pruner stopped. One-sided Mann-Whitney U against no pruning (HV share less): a
  setting that loses front quality at p < 0.05 (not adjusted: a default must not be even nominally
  worse) is marked.

    python benchmarks/pruning.py --table benchmarks/tables/table-digits-placement.json \\
        --seeds 100 --budget 48 --baselines --out benchmarks/results/pruning_digits.md
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

# Run as a script (``python benchmarks/pruning.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import optuna
from scipy import stats

from benchmarks import _harness as harness
from benchmarks.strategies import cached_scorer, cached_table
from nas import trial_schema as schema
from nas.config import PruningSection
from nas.replay import replay_config
from nas.study import quiet_third_party_output
from nas.tabular import Table

#: What the results file says of itself.
FACTS = {
    "title": "Early stopping on a tabular benchmark",
    "load_note": "replays train nothing: the load changes only their wall clock",
}


class Setting(NamedTuple):
    """One pruner setting: ``none``, ``moasha`` or ``noise`` (first rung, ``"auto"`` included,
    and eta), or ``pareto`` (warm-up)."""

    pruner: str
    min_epochs: int | str = 1
    reduction_factor: int = 2
    n_warmup_epochs: int = 0
    auto_min_rho: float = 0.0

    @property
    def key(self) -> str:
        if self.pruner in ("moasha", "noise"):
            first = self.min_epochs
            if first == "auto" and self.auto_min_rho:
                first = f"auto(rho>{self.auto_min_rho:g})"
            return f"{self.pruner} r={first} eta={self.reduction_factor}"
        if self.pruner == "pareto":
            return f"pareto warm-up {self.n_warmup_epochs}"
        return self.pruner

    def section(self) -> PruningSection:
        return PruningSection(
            pruner=self.pruner,
            min_epochs=self.min_epochs,
            reduction_factor=self.reduction_factor,
            n_warmup_epochs=self.n_warmup_epochs,
            auto_min_rho=self.auto_min_rho,
        )


#: The ``pruning.auto_min_rho`` thresholds replayed: better than chance, and a rung that ranks.
AUTO_MIN_RHOS = (0.0, 0.5)


def settings(epochs: int) -> list[Setting]:
    """No pruning; MO-ASHA and the noise-aware pruner with every first rung that leaves a
    promotion and with the automatic one (eta 2 and 3); the Pareto percentile pruner from the
    first epoch, and warmed up a quarter and a half of the run."""
    grid = [Setting("none")]
    for pruner in ("moasha", "noise"):
        for eta in (2, 3):
            grid += [Setting(pruner, r, eta) for r in range(1, epochs // eta + 1)]
            grid += [Setting(pruner, "auto", eta, auto_min_rho=rho) for rho in AUTO_MIN_RHOS]
    warm_ups = sorted({0, epochs // 4, epochs // 2})
    return grid + [Setting("pareto", n_warmup_epochs=w) for w in warm_ups]


# -- per-epoch ranking ---------------------------------------------------------------------------


def epoch_ranking(table: Table, n_boot: int, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of (epochs, mean rho over seeds, bootstrap interval) as described above."""
    curves = np.array([[r.val_acc for r in a.runs] for a in table.architectures])  # (A, S, E)
    n_arch, n_seeds, n_epochs = curves.shape
    finals = curves[:, :, -1]
    others = (finals.sum(axis=1, keepdims=True) - finals) / (n_seeds - 1)  # (A, S)
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, n_arch, (n_boot, n_arch))
    rows = []
    for epoch in range(1, n_epochs + 1):
        early = curves[:, :, epoch - 1]

        def mean_rho(index: np.ndarray, early: np.ndarray = early) -> float:
            return float(
                np.mean(
                    [stats.spearmanr(early[index, s], others[index, s])[0] for s in range(n_seeds)]
                )
            )

        boot = np.array([mean_rho(i) for i in resamples])
        low, high = np.nanquantile(
            boot, [(1 - harness.CONFIDENCE) / 2, (1 + harness.CONFIDENCE) / 2]
        )
        rows.append(
            {
                "epochs": epoch,
                "spearman_rho": mean_rho(np.arange(n_arch)),
                "low": float(low),
                "high": float(high),
            }
        )
    return rows


# -- replayed pruner settings ----------------------------------------------------------------------


def run_one(job: tuple[str, Setting, int, int, bool]) -> dict[str, Any]:
    """One replayed random search under one pruner setting."""
    table_path, setting, seed, budget, baselines = job
    quiet_third_party_output()
    warnings.filterwarnings("ignore")
    table = cached_table(table_path)
    cfg = table.config
    cfg = dataclasses.replace(
        cfg,
        study=dataclasses.replace(cfg.study, sampler="random", seed=seed),
        pruning=setting.section(),
        evaluation=dataclasses.replace(cfg.evaluation, baselines=baselines),
    )
    result = replay_config(table, cfg, seed=seed, n_trials=budget)
    scorer = cached_scorer(table_path)
    sampled = [
        t
        for t in result.study.get_trials(deepcopy=False)
        if schema.DIGEST.get(t) in scorer.front and not schema.BASELINE.has(t)
    ]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in sampled)
    return {
        "setting": setting.key,
        "seed": seed,
        "hv_share": scorer.trajectory(result.study)[0][-1],
        "epochs": sum(result.epochs),
        "front_sampled": len(sampled),
        "front_pruned": pruned,
    }


def summarise(runs: Sequence[dict[str, Any]], grid: Sequence[Setting]) -> list[dict[str, Any]]:
    """Per setting: HV share (mean, s.e.), epochs and their saving against no pruning, the pooled
    false-prune rate, and the one-sided test of HV share against no pruning."""
    by_key = {s.key: [r for r in runs if r["setting"] == s.key] for s in grid}
    control = by_key["none"]
    control_epochs = np.mean([r["epochs"] for r in control])
    rows = []
    for setting in grid:
        group = by_key[setting.key]
        shares = np.array([r["hv_share"] for r in group])
        sampled = sum(r["front_sampled"] for r in group)
        row = {
            "setting": setting.key,
            "seeds": len(group),
            "hv_share": float(shares.mean()),
            "hv_se": float(shares.std(ddof=1) / np.sqrt(len(shares))),
            "epochs": float(np.mean([r["epochs"] for r in group])),
            "saved": 1.0 - float(np.mean([r["epochs"] for r in group])) / control_epochs,
            "false_prune": sum(r["front_pruned"] for r in group) / sampled if sampled else None,
            "p_worse": None,
        }
        if setting.pruner != "none":
            control_shares = [r["hv_share"] for r in control]
            row["p_worse"] = float(
                stats.mannwhitneyu(shares, control_shares, alternative="less").pvalue
            )
        rows.append(row)
    return rows


def render(table: Table, ranking: list[dict], rows: list[dict], args: argparse.Namespace) -> list:
    seeds = len(table.seeds)
    first = " with the baselines first" if args.baselines else ""
    body = [
        f"Table `{args.table}`: {len(table.architectures)} architectures, {seeds} seeds, "
        f"{table.epochs} epochs.",
        "",
        "## Does an early epoch rank the architectures?",
        "",
        f"Spearman rho over all {len(table.architectures)} architectures between one run's "
        "validation accuracy after e epochs and the mean final accuracy of the architecture's "
        f"other {seeds - 1} seeds, averaged over the {seeds} seeds; 95% percentile-bootstrap "
        f"interval over architectures ({args.n_boot} resamples). The last row is the ceiling: "
        "one full run against the other seeds.",
        "",
        *harness.markdown_table(
            ["epochs", "Spearman rho", "95% interval"],
            "rrr",
            [
                [r["epochs"], f"{r['spearman_rho']:+.3f}", f"[{r['low']:+.3f}, {r['high']:+.3f}]"]
                for r in ranking
            ],
        ),
        "",
        "## Pruner settings replayed",
        "",
        f"Random search, {args.budget} trials{first}, {args.seeds} replays per setting (seeds "
        f"0..{args.seeds - 1}). HV share: true "
        "hypervolume of the reported front / the true front's (mean +- s.e.). Saved: epochs "
        "against no pruning. False prunes: sampled trials on the true front that were stopped / "
        "all sampled trials on the true front (pooled over replays). p worse: one-sided "
        "Mann-Whitney U, HV share less than without pruning; loses front where < "
        f"{harness.ALPHA:g}.",
        "",
        *harness.markdown_table(
            ["setting", "seeds", "HV share", "epochs", "saved", "false prunes", "p worse", ""],
            "lrrrrrrl",
            [
                [
                    r["setting"],
                    r["seeds"],
                    f"{100 * r['hv_share']:.2f} +- {100 * r['hv_se']:.2f} %",
                    f"{r['epochs']:.0f}",
                    f"{100 * r['saved']:.0f} %",
                    harness.fmt(None if r["false_prune"] is None else 100 * r["false_prune"], ".1f")
                    + ("" if r["false_prune"] is None else " %"),
                    harness.fmt(r["p_worse"], ".3g"),
                    "loses front" if (r["p_worse"] or 1.0) < harness.ALPHA else "",
                ]
                for r in rows
            ],
        ),
    ]
    return body


def main(argv: list[str] | None = None) -> int:
    parser = harness.table_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=100, help="replays per pruner setting")
    parser.add_argument("--budget", type=int, default=48, help="trials per replay")
    parser.add_argument("--baselines", action="store_true", help="the baselines come first")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    args, command, session, table = harness.start_table_benchmark(
        parser, argv, "benchmarks/pruning.py"
    )
    ranking = epoch_ranking(table, args.n_boot)
    grid = settings(table.epochs)
    wanted = {(s.key, seed) for s in grid for seed in range(args.seeds)}
    runs = [r for r in harness.read_runs(args.out) if (r["setting"], r["seed"]) in wanted]
    done = {(r["setting"], r["seed"]) for r in runs}
    jobs = [
        (str(args.table), s, seed, args.budget, args.baselines)
        for s in grid
        for seed in range(args.seeds)
        if (s.key, seed) not in done
    ]
    session.log(f"{len(jobs)} replays to run ({len(done)} saved)")
    with harness.run_log(args.out) as append:
        for run in harness.run_jobs(run_one, jobs, args.workers, chunksize=8):
            append(run)
            runs.append(run)
    rows = summarise(runs, grid)
    body = render(table, ranking, rows, args)
    print("\n".join(body))
    raw = {"ranking": ranking, "settings": rows, "runs": runs}
    harness.write_results(
        args.out, command=command, info=session.machine(), body=body, raw=raw, **FACTS
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
