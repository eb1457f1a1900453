"""Supernet rankings judged on a tabular benchmark: does weight sharing order a table's
architectures as training each of them does, and which supernet setting orders them best?

For each setting (``--settings``) and supernet seed (``--supernet-seeds``), a supernet of the
table's space is trained on the table's own data and recipe (``nas.supernet.train_supernet``) and
every architecture of the table is estimated with the inherited weights after its BatchNorm
statistics are re-estimated on each of ``--calibration`` training batches
(``nas.supernet.estimate``: what a supernet trial runs). Settings:

* ``uniform:E`` / ``fair:E``: one supernet, ``E`` epochs, SPOS's uniform paths or FairNAS's fair
  ones (``search.sampling``).
* ``fewshot:P+C``: few-shot splitting (Zhao et al., "Few-shot Neural Architecture Search", ICML
  2021): the uniform supernet trained ``P`` epochs is copied once per choice of one scope
  (``--split-scope``, default the last); each copy trains ``C`` more epochs on the paths that take
  its choice there and estimates those architectures. Training compute ``P + choices x C`` epochs.

Each estimate is ranked against the truth, the architectures' mean final validation accuracy over
the table's seeds: Kendall's tau-b and Spearman's rho over all architectures, and Kendall's tau
among the best 10% by truth (does it order the architectures a search is after), with 95%
percentile-bootstrap intervals over architectures (:func:`nas.stats.rank_correlation`). On the same
rows: parameters and FLOPs, the zero-cost proxies of ``benchmarks/proxies.py`` (``--proxies``: its
JSON on the same table), and the ceiling, one trained run against the other seeds' mean.

    python benchmarks/supernet_table.py --table benchmarks/tables/table-cifar10-placement.json \\
        --proxies benchmarks/results/proxies_cifar10.json --workers 2 \\
        --out benchmarks/results/supernet_cifar10.md

Runs are appended to ``<out>.runs.jsonl.gz`` as they finish; the same command resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/supernet_table.py``) from a checkout not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import optuna
import torch

from benchmarks import _harness as harness
from nas.config import StudyConfig
from nas.data import build_datamodule
from nas.objective import split_size
from nas.stats import rank_correlation
from nas.study import quiet_third_party_output
from nas.supernet import SupernetModule, calibration_batches, estimate, train_supernet
from nas.tabular import Table, load_table
from search_spaces.space import suggest_arch
from search_spaces.spec import ArchSpec, BlockChoice
from search_spaces.supernet import PathSampler

FACTS = {
    "title": "Supernet rankings on a tabular benchmark",
    "load_note": "the load changes only the seconds",
}
DEFAULT_SETTINGS = ("uniform:8", "uniform:32", "fair:32", "uniform:96", "fewshot:32+8")
#: The share of the table (by true accuracy) whose internal order the top tau measures.
TOP_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way to train the supernet (see the module's docstring for the notation)."""

    text: str
    sampling: str
    epochs: int
    child_epochs: int = 0

    @classmethod
    def parse(cls, text: str) -> Setting:
        kind, _, epochs = text.partition(":")
        parent, _, child = epochs.partition("+")
        if kind not in ("uniform", "fair", "fewshot"):
            raise SystemExit(
                f"--settings {text!r}: the sampling must be uniform, fair or fewshot "
                "(e.g. uniform:32, fewshot:32+8)"
            )
        if not parent.isdigit() or int(parent) < 1 or (kind == "fewshot") != child.isdigit():
            form = "fewshot:PARENT+CHILD" if kind == "fewshot" else f"{kind}:EPOCHS"
            raise SystemExit(f"--settings {text!r}: write it as {form} with epochs >= 1")
        return cls(text, kind, int(parent), int(child or 0))

    def training_epochs(self, choices: int) -> int:
        """Supernet epochs trained in all (a few-shot split trains one child per choice)."""
        return self.epochs + choices * self.child_epochs

    def describe(self) -> str:
        if self.sampling == "fewshot":
            return f"few-shot: uniform {self.epochs} ep., then {self.child_epochs} per split"
        return f"{self.sampling}, {self.epochs} ep."


class FixedScope:
    """A path sampler whose paths all take ``choice`` at the sites of one scope: the paths of
    one few-shot sub-supernet."""

    def __init__(self, sampler: PathSampler, sites: list[str], choice: BlockChoice) -> None:
        self.sampler, self.sites, self.choice = sampler, sites, choice

    def __call__(self, step: int) -> ArchSpec:
        spec = self.sampler(step)
        sites = {**spec.sites, **dict.fromkeys(self.sites, self.choice)}
        return dataclasses.replace(spec, sites=sites)


def supernet_config(table: Table, sampling: str, epochs: int, seed: int) -> StudyConfig:
    """The table's study with the supernet strategy: its data, space and recipe."""
    data = table.config.to_dict()
    data["study"] = {**data["study"], "seed": seed}
    search = {"strategy": "supernet", "supernet_epochs": epochs, "sampling": sampling}
    data["search"] = {**data.get("search", {}), **search}
    data["pruning"] = {"pruner": "none"}
    return StudyConfig.from_dict(data)


@functools.cache
def _problem(table_path: str) -> tuple[Table, Any, list[ArchSpec]]:
    """The table, its data module and every architecture's spec, once per worker process."""
    table = load_table(table_path)
    dm = build_datamodule(table.config.data, seed=table.config.study.seed)
    dm.setup("fit")
    specs = [
        suggest_arch(
            optuna.trial.FixedTrial(a.params),
            table.space,
            in_channels=table.in_channels,
            num_classes=table.num_classes,
        )
        for a in table.architectures
    ]
    return table, dm, specs


def _train(cfg: StudyConfig, dm: Any, module: SupernetModule | None = None) -> SupernetModule:
    with tempfile.TemporaryDirectory(prefix="supernet-table-") as folder:
        return train_supernet(cfg, dm, progress=False, folder=Path(folder), module=module)


def run_one(job: tuple[str, str, int, tuple[int, ...], int]) -> dict[str, Any]:
    """Train one setting's supernet(s) with one seed and estimate every architecture of the
    table with each calibration count: ``{"estimates": {count: [val_acc per architecture]}}``."""
    table_path, text, seed, calibrations, split_scope = job
    torch.set_num_threads(1)
    quiet_third_party_output()
    table, dm, specs = _problem(table_path)
    setting = Setting.parse(text)
    started = time.perf_counter()
    sampling = "uniform" if setting.sampling == "fewshot" else setting.sampling
    parent = _train(supernet_config(table, sampling, setting.epochs, seed), dm)
    # (supernet module, the architectures it estimates) pairs
    parts: list[tuple[SupernetModule, list[int]]] = [(parent, list(range(len(specs))))]
    if setting.sampling == "fewshot":
        scope_sites = list(table.space.scopes().values())[split_scope]
        child_cfg = supernet_config(table, "uniform", setting.child_epochs, seed)
        parts = []
        for choice in table.space.choices():
            child = SupernetModule(child_cfg, dm.in_channels, dm.num_classes)
            child.model.load_state_dict(parent.model.state_dict())
            child.sampler = FixedScope(child.sampler, scope_sites, choice)
            members = [i for i, s in enumerate(specs) if s.sites[scope_sites[0]] == choice]
            parts.append((_train(child_cfg, dm, child), members))
    trained = time.perf_counter()
    batches = calibration_batches(dm, max(calibrations), seed)
    estimates = {count: [math.nan] * len(specs) for count in calibrations}
    for module, members in parts:
        for count in calibrations:
            for i in members:
                estimates[count][i] = estimate(module, specs[i], batches[:count], dm)[0]
    return {
        "setting": text,
        "seed": seed,
        "image_epochs": setting.training_epochs(len(table.space.choices()))
        * (split_size(dm, "train") or 0),
        "train_seconds": trained - started,
        "estimate_seconds": (time.perf_counter() - trained) / (len(specs) * len(calibrations)),
        "estimates": {str(k): v for k, v in estimates.items()},
    }


# -- analysis -----------------------------------------------------------------------------------


def top_indices(truth: list[float], share: float = TOP_SHARE) -> list[int]:
    """The best ``share`` of the architectures by true accuracy (at least 3)."""
    count = max(3, math.ceil(share * len(truth)))
    return [int(i) for i in np.argsort(truth)[::-1][:count]]


def correlations(values: list[float], truth: list[float], n_boot: int) -> dict[str, Any]:
    """Rank correlations over all architectures and, as ``top``, among the best 10% by truth."""
    top = top_indices(truth)
    return {
        "all": rank_correlation(values, truth, n_boot=n_boot).to_dict(),
        "top": rank_correlation(
            [values[i] for i in top], [truth[i] for i in top], n_boot=n_boot
        ).to_dict(),
    }


def baseline_rankings(
    table: Table, proxies: dict[str, Any] | None, n_boot: int
) -> list[dict[str, Any]]:
    """Rankings that train no supernet: size, zero-cost proxies, and one trained run."""
    archs = table.architectures
    truth = [a.mean_val_acc() for a in archs]
    candidates = {
        "parameters": [float(a.cost["params"]) for a in archs],
        "FLOPs": [float(a.cost["flops"]) for a in archs],
    }
    if proxies is not None:
        candidates["SynFlow (log10, untrained)"] = proxies["scores"]["synflow"]
        candidates["NASWOT (untrained)"] = proxies["scores"]["naswot"]
    candidates["one trained run (seed 0) vs the other seeds"] = [
        a.runs[0].final_val_acc for a in archs
    ]
    rows = []
    for name, values in candidates.items():
        if len(set(values)) < 2:
            continue
        target = truth
        if name.startswith("one trained run"):
            target = [float(np.mean([r.final_val_acc for r in a.runs[1:]])) for a in archs]
        rows.append({"ranking": name, **correlations(values, target, n_boot)})
    return rows


def supernet_rankings(
    table: Table, runs: list[dict[str, Any]], order: list[str], n_boot: int
) -> list[dict[str, Any]]:
    truth = [a.mean_val_acc() for a in table.architectures]
    rows = []
    for run in sorted(runs, key=lambda r: (order.index(r["setting"]), r["seed"])):
        for count, values in sorted(run["estimates"].items(), key=lambda kv: int(kv[0])):
            rows.append(
                {
                    "setting": run["setting"],
                    "seed": run["seed"],
                    "calibration": int(count),
                    "image_epochs": run["image_epochs"],
                    "train_seconds": run["train_seconds"],
                    "estimate_seconds": run["estimate_seconds"],
                    "mean_estimate": float(np.mean(values)),
                    **correlations(values, truth, n_boot),
                }
            )
    return rows


def seed_agreement(runs: list[dict[str, Any]], calibration: int) -> dict[str, float]:
    """Per setting with two or more seeds: Kendall tau between its first two seeds' estimates
    (how much of a supernet's ranking is the draw of its training)."""
    by_setting: dict[str, list[list[float]]] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        by_setting.setdefault(run["setting"], []).append(run["estimates"][str(calibration)])
    return {
        setting: rank_correlation(pair[0], pair[1], n_boot=1).kendall_tau
        for setting, pair in by_setting.items()
        if len(pair) >= 2
    }


def _cell(corr: dict[str, Any], key: str, low: str, high: str) -> str:
    return f"{corr[key]:+.2f} [{corr[low]:+.2f}, {corr[high]:+.2f}]"


def _row_cells(corr: dict[str, Any]) -> list[str]:
    return [
        _cell(corr["all"], "kendall_tau", "tau_low", "tau_high"),
        _cell(corr["all"], "spearman_rho", "rho_low", "rho_high"),
        _cell(corr["top"], "kendall_tau", "tau_low", "tau_high"),
    ]


def render(
    table: Table,
    supernet_rows: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    agreement: dict[str, float],
    args: argparse.Namespace,
) -> list[str]:
    settings = {s: Setting.parse(s) for s in args.settings}
    top = len(top_indices([a.mean_val_acc() for a in table.architectures]))
    columns = ["Kendall tau", "Spearman rho", f"tau among the best {top}"]
    return [
        f"Table `{args.table}`: {len(table.architectures)} architectures, "
        f"{len(table.seeds)} seeds, {table.epochs} epochs. Truth: each architecture's mean "
        "final validation accuracy over the seeds. 95% percentile-bootstrap "
        f"intervals over architectures ({args.n_boot} resamples).",
        "",
        "## Supernets",
        "",
        "Each trained with the table's recipe on its training split, every architecture then "
        "estimated on the validation split with the shared weights after its BatchNorm statistics "
        "are re-estimated on the first `calibration` training batches. Compute: supernet training "
        "in image-epochs (one stand-alone training of the table is "
        f"{table.epochs * (args.train_images or 0):,}).",
        "",
        *harness.markdown_table(
            ["setting", "seed", "calibration", "image-epochs", "train s", "s / est.", *columns],
            "lrrrrrrrr",
            [
                [
                    settings[r["setting"]].describe(),
                    r["seed"],
                    r["calibration"],
                    f"{r['image_epochs']:,}",
                    f"{r['train_seconds']:.0f}",
                    f"{r['estimate_seconds']:.2f}",
                    *_row_cells(r),
                ]
                for r in supernet_rows
            ],
        ),
        "",
        "Between supernet seeds (Kendall tau of two seeds' estimates, "
        f"{max(args.calibration)} calibration batches): "
        + (
            ", ".join(f"{settings[s].describe()} {t:+.2f}" for s, t in agreement.items())
            if agreement
            else "one seed per setting."
        ),
        "",
        "## Without a supernet",
        "",
        *harness.markdown_table(
            ["ranking", *columns],
            "lrrr",
            [[r["ranking"], *_row_cells(r)] for r in baselines],
        ),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = harness.table_parser(__doc__)
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--supernet-seeds", type=int, default=2, help="seeds 0..N-1")
    parser.add_argument(
        "--calibration", type=int, nargs="+", default=[1, 8], help="BatchNorm batches"
    )
    parser.add_argument("--split-scope", type=int, default=-1, help="few-shot: scope index")
    parser.add_argument("--proxies", type=Path, help="benchmarks/proxies.py's JSON, same table")
    parser.add_argument("--workers", type=int, default=1, help="processes (1)")
    parser.add_argument("--render", action="store_true", help="only render the saved runs")
    args = parser.parse_args(argv)
    for text in args.settings:
        Setting.parse(text)
    if min(args.calibration) < 1:
        raise SystemExit("--calibration: counts of batches must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = harness.command_line("benchmarks/supernet_table.py", argv)
    session = harness.start_session(threads=1)
    table, dm, _ = _problem(str(args.table))
    args.train_images = split_size(dm, "train")
    runs = [r for r in harness.read_runs(args.out) if r["setting"] in args.settings]
    done = {(r["setting"], r["seed"]) for r in runs}
    calibrations = tuple(sorted(set(args.calibration)))
    todo = [
        (str(args.table), text, seed, calibrations, args.split_scope)
        for text in args.settings
        for seed in range(args.supernet_seeds)
        if (text, seed) not in done and not args.render
    ]
    if todo:
        session.log(f"{len(todo)} supernets to train ({len(done)} saved)")
        with harness.run_log(args.out) as append:
            for run in harness.run_jobs(run_one, todo, args.workers):
                append(run)
                runs.append(run)
                session.log(f"{run['setting']} seed {run['seed']}: done")
    missing = [c for c in calibrations if any(str(c) not in r["estimates"] for r in runs)]
    if missing:
        raise SystemExit(
            f"--calibration {missing}: saved runs in {harness.runs_file(args.out)} lack these "
            "counts; use the counts they were run with or a new --out"
        )
    proxies = json.loads(args.proxies.read_text()) if args.proxies else None
    supernet_rows = supernet_rankings(table, runs, list(args.settings), args.n_boot)
    supernet_rows = [r for r in supernet_rows if r["calibration"] in calibrations]
    baselines = baseline_rankings(table, proxies, args.n_boot)
    agreement = seed_agreement(runs, max(calibrations))
    body = render(table, supernet_rows, baselines, agreement, args)
    print("\n".join(body))
    raw = {"supernets": supernet_rows, "baselines": baselines, "seed_agreement": agreement}
    harness.write_results(
        args.out, command=command, info=session.machine(), body=body, raw=raw, **FACTS
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
