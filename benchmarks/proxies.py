"""Rankings that cost no training, judged on a tabular benchmark: zero-cost proxies and size.

Every architecture of a table (``nas table build``) is built untrained and scored by SynFlow and
NASWOT (:mod:`search_spaces.proxies`; the mean over ``--init-seeds`` initialisations, SynFlow on a
log scale) and by its parameter count and FLOPs, the baselines papers report beside every proxy.
Each score is ranked against the architectures' true accuracy, the mean final validation accuracy
over the table's seeds: Kendall's tau-b and Spearman's rho with 95% percentile-bootstrap
intervals over architectures (:func:`nas.stats.rank_correlation`). The last row is the ceiling
a single training reaches: one seed's final accuracy against the mean of the other seeds.

    python benchmarks/proxies.py --table benchmarks/tables/table-digits-placement.json \\
        --out benchmarks/results/proxies_digits.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/proxies.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import optuna
import torch
from scipy import stats

from benchmarks import _harness as harness
from nas.data import build_datamodule
from nas.stats import rank_correlation
from nas.tabular import Table
from search_spaces.build import build_model
from search_spaces.proxies import naswot, synflow
from search_spaces.space import suggest_arch

#: What the results file says of itself.
FACTS = {
    "title": "Rankings without training on a tabular benchmark",
    "load_note": "the load changes only the seconds per architecture",
}


def proxy_scores(table: Table, images: torch.Tensor, init_seeds: int) -> dict[str, list[float]]:
    """Per architecture (table order): SynFlow (log10) and NASWOT, each the mean over
    ``init_seeds`` initialisations, the first two initialisations' scores apart (to measure how
    much a proxy's ranking depends on the draw), and the seconds both took."""
    scores: dict[str, list] = {"synflow": [], "naswot": [], "seconds": [], "per_init": []}
    shape = tuple(images.shape[1:])
    for arch in table.architectures:
        spec = suggest_arch(
            optuna.trial.FixedTrial(arch.params),
            table.space,
            in_channels=table.in_channels,
            num_classes=table.num_classes,
        )
        start = time.perf_counter()
        flows, patterns = [], []
        for seed in range(init_seeds):
            model = build_model(spec, seed=seed)
            flows.append(math.log10(synflow(model, shape)))
            patterns.append(naswot(model, images))
        scores["synflow"].append(float(np.mean(flows)))
        scores["naswot"].append(float(np.mean(patterns)))
        scores["seconds"].append((time.perf_counter() - start) / init_seeds)
        scores["per_init"].append({"synflow": flows[:2], "naswot": patterns[:2]})
    return scores


def init_agreement(scores: dict[str, list], proxy: str) -> float | None:
    """Spearman rho between the first and second initialisations' scores of ``proxy``."""
    pairs = [s[proxy] for s in scores["per_init"]]
    if len(pairs[0]) < 2:
        return None
    return float(stats.spearmanr([a for a, _ in pairs], [b for _, b in pairs])[0])


def rankings(table: Table, scores: dict[str, list[float]], n_boot: int) -> list[dict[str, Any]]:
    """One row per ranking: its rank correlation with the true accuracy."""
    truth = [a.mean_val_acc() for a in table.architectures]
    candidates = {
        "SynFlow (log10, untrained)": scores["synflow"],
        "NASWOT (untrained)": scores["naswot"],
        "parameters": [float(a.cost["params"]) for a in table.architectures],
        "FLOPs": [float(a.cost["flops"]) for a in table.architectures],
    }
    agreement = {
        "SynFlow (log10, untrained)": init_agreement(scores, "synflow"),
        "NASWOT (untrained)": init_agreement(scores, "naswot"),
    }
    rows = []
    for name, values in candidates.items():
        if len(set(values)) < 2:  # e.g. FLOPs of a space whose blocks add none: no order
            continue
        correlation = rank_correlation(values, truth, n_boot=n_boot).to_dict()
        rows.append({"ranking": name, **correlation, "init_agreement": agreement.get(name)})
    one_run = [a.runs[0].final_val_acc for a in table.architectures]
    others = [float(np.mean([r.final_val_acc for r in a.runs[1:]])) for a in table.architectures]
    ceiling = rank_correlation(one_run, others, n_boot=n_boot).to_dict()
    rows.append(
        {
            "ranking": "one trained run (seed 0) vs the other seeds",
            **ceiling,
            "init_agreement": None,
        }
    )
    return rows


def render(table: Table, rows: list[dict[str, Any]], seconds: float, args: argparse.Namespace):
    def interval(row: dict[str, Any], key: str, low: str, high: str) -> str:
        return f"{row[key]:+.3f} [{row[low]:+.3f}, {row[high]:+.3f}]"

    return [
        f"Table `{args.table}`: {len(table.architectures)} architectures, {len(table.seeds)} "
        f"seeds, {table.epochs} epochs. Truth: each architecture's mean final validation accuracy "
        f"over the seeds. Proxies: mean over {args.init_seeds} initialisations on one batch of "
        f"{args.batch} training images (NASWOT) or an all-ones input (SynFlow), "
        f"{seconds:.2f} s per architecture for both. 95% percentile-bootstrap intervals over "
        f"architectures ({args.n_boot} resamples). Between inits: Spearman rho of a proxy's "
        "scores under two initialisations (how much of its ranking is the draw).",
        "",
        *harness.markdown_table(
            ["ranking", "Spearman rho", "Kendall tau", "between inits"],
            "lrrr",
            [
                [
                    r["ranking"],
                    interval(r, "spearman_rho", "rho_low", "rho_high"),
                    interval(r, "kendall_tau", "tau_low", "tau_high"),
                    harness.fmt(r["init_agreement"], "+.3f"),
                ]
                for r in rows
            ],
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = harness.table_parser(__doc__)
    parser.add_argument("--init-seeds", type=int, default=3, help="initialisations per proxy")
    parser.add_argument("--batch", type=int, default=64, help="images NASWOT scores on")
    args, command, session, table = harness.start_table_benchmark(
        parser, argv, "benchmarks/proxies.py"
    )
    datamodule = build_datamodule(table.config.data, seed=0)
    datamodule.setup("fit")
    images, _ = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    scores = proxy_scores(table, images[: args.batch].float(), args.init_seeds)
    rows = rankings(table, scores, args.n_boot)
    body = render(table, rows, float(np.mean(scores["seconds"])), args)
    print("\n".join(body))
    raw = {"rankings": rows, "scores": scores}
    harness.write_results(
        args.out, command=command, info=session.machine(), body=body, raw=raw, **FACTS
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
