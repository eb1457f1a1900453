"""Supernet ranking quality and cost: does one weight-sharing supernet rank attention placements
as stand-alone training does, and how good a front does supernet-then-confirm find for how much
training, against multi-trial search at the same and at 10x the compute?

Problem (``--preset full``): the JPEG copy of CIFAR-10 (``search_efficiency.data_section``),
``--per-class`` training and ``--val-per-class`` validation images per class, a CIFAR ResNet-8 of
width ``--width``, ``--epochs`` stand-alone epochs (SGD, lr 0.1, momentum 0.9, wd 5e-4, cosine,
flip+crop), objectives validation accuracy (max) and parameters (min), and the per-stage space
:data:`SPACE`: none, SE (r=8), ECA (k=3), CBAM (r=8) or SimAM at each of the 3 stages, 125
architectures. Compute is counted in training image-epochs (epochs x training images).

Phases, each timed:

1. **Stand-alone table, seed A.** Every architecture of the space trained once with one seed
   (``--seed-a``; common random numbers, as the engine's ``evaluation.seeding = "common"``).
   Under common seeding a multi-trial trial's value depends on its architecture alone and the
   engine trains each architecture once (duplicates reuse the first result), so this table
   replays *exactly* any multi-trial search with that seed, at any budget, without training
   again: the multi-trial searches below are NSGA-II studies (population 8) over the table,
   stopped once they have trained ``budget`` distinct architectures, for ``--sampler-seeds``
   sampler seeds.
2. **Supernet.** ``nas.supernet.train_supernet`` for ``--supernet-epochs`` epochs (uniform
   paths), then every architecture estimated with the inherited weights after re-estimating its
   BatchNorm statistics on ``--calibration-batches`` training batches (``nas.supernet.estimate``,
   what a supernet trial runs).
3. **Seed B** for every architecture whose confirmed value is used below: ``none`` plus
   ``--rank-archs`` drawn uniformly (RandomSampler), the supernet's confirmed architectures, and
   every architecture on a multi-trial front or on the table's own front.

Measured:

* **Ranking**: Kendall tau and Spearman rho (percentile bootstrap over architectures) between the
  supernet's estimate and the stand-alone mean of seeds A and B over the rank set plus the
  confirmed supernet front; beside it the same between seeds A and B (how well one stand-alone
  run ranks the other: the ceiling any estimate can reach against a 2-seed truth), and the
  supernet against seed A over the whole space.
* **Noise**: one run's seed-to-seed sd ``sd(A - B) / sqrt(2)`` against the spread of the
  architectures' 2-seed means: a ranking has something to resolve only where the spread is
  larger than the noise of a mean (``sd / sqrt(2)``).
* **Fronts**: supernet-then-confirm = the ``--top`` best architectures by non-dominated rank on
  (estimate, parameters), then estimate (the supernet's front first; where it holds fewer, the
  next fronts fill up), trained with seeds A and B; compute = supernet epochs x images + 2 x top
  stand-alone trainings. Multi-trial at the same compute trains ``round(compute / (epochs x
  images))`` distinct architectures, at 10x ten times as many (capped at the space's size, which
  is said). Every front's hypervolume is measured on the confirmed values (mean of A and B) of
  its architectures, normalised by the hypervolume of the table's own front (all architectures'
  seed-A values; confirmed the same way). Reference point: the lowest accuracy measured minus 1
  point, and 1.01 x the largest parameter count.

``--reuse RESULTS.json`` takes the stand-alone runs of an earlier run of the same problem and
seeds instead of training them again (they are deterministic on the CPU), so the supernet's own
settings (``--supernet-epochs``, ``--top``, ``--calibration-batches``) can be varied for the
cost of the supernet and of the runs not measured yet.

Targets (issue "weight-sharing supernet"): >= 95% of the 10x multi-trial search's confirmed
hypervolume with >= 10x less training compute, and Kendall tau >= 0.5. A target missed is
reported as missed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/supernet.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import optuna
import torch

from benchmarks._harness import (
    RESULTS,
    ROOT,
    Session,
    apply_preset,
    command_line,
    markdown_table,
    write_results,
)
from benchmarks.noise import train_once
from benchmarks.search_efficiency import TRAINING, data_section
from nas.config import StudyConfig
from nas.objective import load_data, split_size
from nas.pareto import hypervolume, non_dominated_sort
from nas.stats import mean_interval, rank_correlation
from nas.supernet import calibration_batches, estimate, train_supernet
from search_spaces.build import build_model
from search_spaces.cost import count_params
from search_spaces.space import SearchSpace, suggest_arch
from search_spaces.spec import ArchSpec

DEFAULT_OUT = RESULTS / "supernet.md"
#: The per-stage space: 5 choices per stage, 125 architectures on a 3-stage ResNet-8.
SPACE: dict[str, Any] = {
    "blocks": ["none", "se", "eca", "cbam", "simam"],
    "reductions": [8],
    "eca_kernels": [3],
    "granularity": "per_stage",
    "positions": ["standard"],
}
DIRECTIONS = ("maximize", "minimize")
TARGET_HV = 0.95
TARGET_COMPUTE = 10.0
TARGET_TAU = 0.5
POPULATION = 8

PRESETS = {
    "full": {"data": "cifar10", "per_class": 150, "val_per_class": 250, "width": 16,
             "epochs": 5, "supernet_epochs": 15, "calibration_batches": 8, "rank_archs": 20,
             "top": 4, "sampler_seeds": 10},
    "quick": {"data": "digits", "per_class": 20, "val_per_class": 20, "width": 8,
              "epochs": 3, "supernet_epochs": 6, "calibration_batches": 2, "rank_archs": 6,
              "top": 2, "sampler_seeds": 3},
}  # fmt: skip


def study_config(args: argparse.Namespace, runs_dir: str) -> StudyConfig:
    return StudyConfig.from_dict(
        {
            "study": {"name": "supernet-benchmark", "runs_dir": runs_dir, "seed": args.seed_a},
            "data": data_section(args),
            "backbone": {"name": "resnet8", "args": {"width": args.width}},
            "space": {**SPACE, "blocks": args.blocks},
            "training": {**TRAINING, "epochs": args.epochs},
            "pruning": {"pruner": "none"},
            "objectives": {"maximize": "val_acc", "minimize": ["params"]},
            "evaluation": {"seeding": "common", "baselines": False},
            "search": {
                "strategy": "supernet",
                "supernet_epochs": args.supernet_epochs,
                "calibration_batches": args.calibration_batches,
                "sampling": args.sampling,
            },
        }
    )


def all_architectures(space: SearchSpace, in_channels: int, num_classes: int) -> list[ArchSpec]:
    """Every architecture of ``space``, in a fixed order (scope by scope over its choices)."""
    scopes = list(space.scopes())
    specs = []
    for combo in itertools.product(space.choices(), repeat=len(scopes)):
        sites = {
            site: c
            for scope, c in zip(scopes, combo, strict=True)
            for site in space.scopes()[scope]
        }
        specs.append(
            ArchSpec(
                backbone=space.backbone,
                backbone_args=space.backbone_args,
                in_channels=in_channels,
                num_classes=num_classes,
                sites=sites,
            )
        )
    return specs


# --- searches over a table ---------------------------------------------------------------------


def replay_multi_trial(
    space: SearchSpace,
    table: dict[str, tuple[float, float]],
    budget: int,
    seed: int,
    dims: tuple[int, int],
) -> list[str]:
    """The digests an NSGA-II search (``seed``) trains before it has trained ``budget`` distinct
    architectures, each valued by ``table`` (digest -> (val_acc, params)). A budget of the whole
    space trains it all (a converged NSGA-II population may take unbounded asks to hit the last
    few architectures)."""
    if budget >= len(table):
        return list(table)
    sampler = optuna.samplers.NSGAIISampler(population_size=POPULATION, seed=seed)
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=sampler)
    trained: list[str] = []
    while len(trained) < budget:
        trial = study.ask()
        digest = suggest_arch(trial, space, in_channels=dims[0], num_classes=dims[1]).digest()
        if digest not in trained:
            trained.append(digest)
        study.tell(trial, list(table[digest]))
    return trained


def front(points: dict[str, tuple[float, float]]) -> list[str]:
    keys = list(points)
    if not keys:
        return []
    first = non_dominated_sort([points[k] for k in keys], DIRECTIONS)[0]
    return [keys[i] for i in first]


def best_by_rank(points: dict[str, tuple[float, float]], count: int) -> list[str]:
    """The ``count`` best keys by non-dominated rank, then accuracy: the front first (its most
    accurate members where it holds more), the next fronts filling up where it holds fewer."""
    keys = list(points)
    ordered = []
    for layer in non_dominated_sort([points[k] for k in keys], DIRECTIONS):
        ordered += sorted((keys[i] for i in layer), key=lambda k: -points[k][0])
    return ordered[:count]


def confirmed_hv(
    digests: list[str], confirmed: dict[str, float], params: dict[str, float], ref: list[float]
) -> float:
    return hypervolume([(confirmed[d], params[d]) for d in digests], ref, DIRECTIONS)


# --- the run ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    for name, value in PRESETS["full"].items():
        kind = str if isinstance(value, str) else int
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    parser.add_argument(
        "--blocks", nargs="+", default=SPACE["blocks"], help="the space's blocks (default: all 5)"
    )
    parser.add_argument("--sampling", choices=["uniform", "fair"], default="uniform")
    parser.add_argument("--seed-a", type=int, default=0)
    parser.add_argument("--seed-b", type=int, default=1)
    parser.add_argument(
        "--rank-seed", type=int, default=0, help="RandomSampler seed of the rank set"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as set)")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--reuse",
        type=Path,
        help="a results JSON of the same problem: its stand-alone runs are taken, not retrained",
    )
    timing = parser.add_argument_group(
        "trial timing",
        "only time supernet trials on studies/cifar10_resnet20.toml's space (generated "
        "CIFAR-sized tensors) against one stand-alone training epoch",
    )
    timing.add_argument("--trial-timing", action="store_true", help="run this instead")
    timing.add_argument("--val-images", type=int, default=5000, help="validation images")
    timing.add_argument("--trials", type=int, default=8, help="supernet trials timed")
    args = parser.parse_args(argv)
    apply_preset(args, PRESETS[args.preset])
    if args.seed_a == args.seed_b:
        parser.error("--seed-a and --seed-b must differ")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    command = command_line(__file__, argv, python="python")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.trial_timing:
        return trial_timing(args, command)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    session = Session()
    with tempfile.TemporaryDirectory(prefix="nas-supernet-bench-") as runs_dir:
        cfg = study_config(args, runs_dir)
        dm = load_data(cfg)
        raw = run_phases(args, cfg, dm, Path(runs_dir))
    raw["total_s"] = session.seconds()
    result = analyse(raw, args)
    title = "Supernet: ranking quality and compute against multi-trial search"
    raw_record = {"args": vars(args), "raw": raw, "result": result}
    write(args, command, session, title, report(raw, result), raw_record)
    print("\n".join(report(raw, result)))
    return result


def write(
    args: argparse.Namespace,
    command: str,
    session: Session,
    title: str,
    body: list[str],
    raw: dict[str, Any],
) -> None:
    """The results of either mode (``--out`` and its JSON twin)."""
    write_results(
        args.out,
        title=title,
        command=command,
        info=session.machine(),
        load_note="above the torch threads means other processes shared the CPU",
        body=body,
        raw=raw,
    )


def run_phases(
    args: argparse.Namespace, cfg: StudyConfig, dm: Any, runs_dir: Path
) -> dict[str, Any]:
    space = cfg.space
    dims = (dm.in_channels, dm.num_classes)
    specs = {s.digest(): s for s in all_architectures(space, *dims)}
    params = {d: float(count_params(build_model(s, seed=0))) for d, s in specs.items()}
    train_images = split_size(dm, "train") or 0
    phase_s: dict[str, float] = {}

    reused = reused_runs(args)
    seed_a = train_all(specs, list(specs), args.seed_a, dm, cfg, reused["A"], "seed A")
    phase_s["stand_alone_seed_a"] = run_seconds(seed_a)

    t0 = time.perf_counter()
    module = train_supernet(cfg, dm, progress=False, folder=runs_dir / "supernet")
    phase_s["supernet_training"] = time.perf_counter() - t0
    steps = int(module.global_step)  # read now: evaluating attaches the module to new Trainers
    t0 = time.perf_counter()
    batches = calibration_batches(dm, cfg.search.calibration_batches, cfg.study.seed)
    estimates = {d: estimate(module, s, batches, dm)[0] for d, s in specs.items()}
    phase_s["supernet_estimates"] = time.perf_counter() - t0

    table = {d: (seed_a[d]["val_acc"], params[d]) for d in specs}
    supernet_front = front({d: (estimates[d], params[d]) for d in specs})
    confirm_set = best_by_rank({d: (estimates[d], params[d]) for d in specs}, args.top)
    compute_unit = args.epochs * train_images
    supernet_compute = args.supernet_epochs * train_images + 2 * len(confirm_set) * compute_unit
    same = max(1, round(supernet_compute / compute_unit))
    budgets = {"same": min(same, len(specs)), "10x": min(10 * same, len(specs))}
    searches = {
        name: [replay_multi_trial(space, table, budget, s, dims) for s in range(args.sampler_seeds)]
        for name, budget in budgets.items()
    }
    multi_fronts = {
        name: [front({d: table[d] for d in trained}) for trained in runs]
        for name, runs in searches.items()
    }
    table_front = front(table)
    rank_set = rank_architectures(space, specs, args.rank_archs, args.rank_seed, dims)
    need_b = set(rank_set) | set(confirm_set) | set(table_front)
    need_b |= {d for fronts in multi_fronts.values() for f in fronts for d in f}

    seed_b = train_all(specs, sorted(need_b), args.seed_b, dm, cfg, reused["B"], "seed B")
    phase_s["stand_alone_seed_b"] = run_seconds(seed_b)
    return {
        "problem": {
            "space_size": len(specs),
            "train_images": train_images,
            "val_images": split_size(dm, "val"),
            "epochs": args.epochs,
            "supernet_epochs": args.supernet_epochs,
            "supernet_steps": steps,
            "sampling": args.sampling,
        },
        "calibration_batches": args.calibration_batches,
        "summaries": {d: s.summary() for d, s in specs.items()},
        "params": params,
        "seed_a": {d: r["val_acc"] for d, r in seed_a.items()},
        "seed_b": {d: r["val_acc"] for d, r in seed_b.items()},
        "fit_s_a": {d: r["fit_s"] + r["eval_s"] for d, r in seed_a.items()},
        "fit_s_b": {d: r["fit_s"] + r["eval_s"] for d, r in seed_b.items()},
        "estimates": estimates,
        "supernet_front": supernet_front,
        "confirm_set": confirm_set,
        "rank_set": rank_set,
        "table_front": table_front,
        "budgets": budgets,
        "budget_same_uncapped": same,
        "searches": searches,
        "multi_fronts": multi_fronts,
        "phase_s": phase_s,
        "compute": {"unit": compute_unit, "supernet_then_confirm": supernet_compute},
    }


#: What must match for stand-alone runs of an earlier results file to be reused.
PROBLEM_ARGS = (
    "data",
    "per_class",
    "val_per_class",
    "width",
    "epochs",
    "blocks",
    "seed_a",
    "seed_b",
)


def reused_runs(args: argparse.Namespace) -> dict[str, Any]:
    """Stand-alone runs of ``--reuse`` (a results JSON of the same problem and seeds), by seed;
    they are deterministic on the CPU, so the same run would give the same accuracy."""
    empty: dict[str, Any] = {"A": {}, "B": {}}
    if args.reuse is None:
        return empty
    old = json.loads(args.reuse.read_text())
    differs = [k for k in PROBLEM_ARGS if old["args"].get(k) != getattr(args, k)]
    if differs:
        raise SystemExit(f"--reuse {args.reuse}: another problem ({', '.join(differs)} differ)")
    raw = old["raw"]

    def runs(seed: str) -> dict[str, dict[str, Any]]:
        return {
            d: {"val_acc": v, "fit_s": raw[f"fit_s_{seed.lower()}"][d], "eval_s": 0.0}
            for d, v in raw[f"seed_{seed.lower()}"].items()
        }

    return {"A": runs("A"), "B": runs("B")}


def run_seconds(runs: dict[str, dict[str, Any]]) -> float:
    """Seconds the runs spent training and evaluating (reused runs: as measured then)."""
    return float(sum(r["fit_s"] + r["eval_s"] for r in runs.values()))


def train_all(
    specs: dict[str, ArchSpec],
    digests: list[str],
    seed: int,
    dm: Any,
    cfg: StudyConfig,
    reused: dict[str, dict[str, Any]],
    label: str,
) -> dict[str, dict[str, Any]]:
    """Train each of ``digests`` with ``seed`` (validation accuracy and seconds), taking a reused
    run where there is one."""
    out = {}
    for i, digest in enumerate(digests):
        if digest in reused:
            out[digest] = reused[digest]
            continue
        out[digest] = train_once(specs[digest], seed, dm, cfg.training, ["val"])
        print(f"[{label} {i + 1}/{len(digests)}] {specs[digest].summary()}: "
              f"{out[digest]['val_acc']:.4f}", flush=True)  # fmt: skip
    return out


def rank_architectures(
    space: SearchSpace, specs: dict[str, ArchSpec], count: int, seed: int, dims: tuple[int, int]
) -> list[str]:
    """``none`` and ``count`` distinct architectures drawn by a seeded RandomSampler."""
    none = suggest_arch(
        optuna.trial.FixedTrial({f"{s}.block": "none" for s in space.scopes()}), space,
        in_channels=dims[0], num_classes=dims[1],
    ).digest()  # fmt: skip
    chosen = [none]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    while len(chosen) < min(count + 1, len(specs)):
        trial = study.ask()
        digest = suggest_arch(trial, space, in_channels=dims[0], num_classes=dims[1]).digest()
        study.tell(trial, 0.0)
        if digest not in chosen:
            chosen.append(digest)
    return chosen


# --- seconds per supernet trial on ResNet-20 ---------------------------------------------------


def trial_timing(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Seconds of one supernet trial (stand-alone costs + BN recalibration + validation) in the
    space of ``studies/cifar10_resnet20.toml`` on generated 32x32 images, against one training
    epoch of a stand-alone ResNet-20 over the same number of images, in this process."""
    from nas.data import Split, TensorDataModule
    from nas.training import ClassifierModule, build_trainer
    from search_spaces.cost import model_cost
    from search_spaces.supernet import build_supernet, supernet_size

    cfg = StudyConfig.load(ROOT / "studies" / "cifar10_resnet20.toml")
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        images = torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)
        return Split(images, torch.randint(0, 10, (n,), generator=generator))

    session = Session()
    n = args.val_images
    dm = TensorDataModule(split(n), split(n), split(128), class_names=[str(i) for i in range(10)])
    dm.setup("fit")
    size = supernet_size(cfg.space, 3, 10)
    t0 = time.perf_counter()
    net = build_supernet(cfg.space, 3, 10, seed=0)
    build_s = time.perf_counter() - t0
    module = ClassifierModule(config=cfg.training, model=net)
    batches = [
        dm.on_after_batch_transfer(batch, 0)[0]
        for batch in itertools.islice(dm.train_dataloader(), cfg.search.calibration_batches)
    ]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cost_s, estimate_s, specs = [], [], []
    for _ in range(args.trials):
        spec = suggest_arch(study.ask(), cfg.space)
        specs.append(spec)
        t0 = time.perf_counter()
        model_cost(build_model(spec, seed=0), (3, 32, 32))
        cost_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        estimate(module, spec, batches, dm)
        estimate_s.append(time.perf_counter() - t0)
    stand_alone = ClassifierModule(specs[0], config=cfg.training, seed=0)
    trainer = build_trainer(cfg.training, seed=0, accelerator="cpu", max_epochs=1, validate=False)
    t0 = time.perf_counter()
    trainer.fit(stand_alone, datamodule=dm)
    epoch_s = time.perf_counter() - t0
    trial_s = [c + e for c, e in zip(cost_s, estimate_s, strict=True)]
    result = {
        "supernet": {"candidates": size.candidates, "parameters": size.parameters,
                     "training_mb": size.training_mb, "build_s": build_s},
        "val_images": n, "calibration_batches": cfg.search.calibration_batches,
        "batch_size": dm.batch_size, "cost_s": cost_s, "estimate_s": estimate_s,
        "trial_s_mean": float(np.mean(trial_s)), "trial_s_max": float(max(trial_s)),
        "epoch_s": epoch_s, "multi_trial_epochs": cfg.training.epochs,
    }  # fmt: skip
    lines = [
        "## Supernet trials on ResNet-20 (the space of studies/cifar10_resnet20.toml)",
        "",
        f"Supernet: {size.describe()}; built in {build_s:.1f} s. A trial: costs of the "
        f"stand-alone model (FLOPs, parameters, activation memory), BatchNorm re-estimated on "
        f"{cfg.search.calibration_batches} batches of {dm.batch_size}, {n:,} validation images; "
        f"{args.trials} random architectures; generated 32x32 images (timing only).",
        "",
        *markdown_table(
            ["what", "seconds", "x one training epoch on the same images"],
            "lrr",
            [
                [
                    f"one stand-alone training epoch ({n:,} images, baseline)",
                    f"{epoch_s:.2f}",
                    "1.00",
                ],
                [
                    f"supernet trial, mean (costs {np.mean(cost_s):.2f} s + estimate "
                    f"{np.mean(estimate_s):.2f} s)",
                    f"{np.mean(trial_s):.2f}",
                    f"{np.mean(trial_s) / epoch_s:.2f}",
                ],
                ["supernet trial, slowest", f"{max(trial_s):.2f}", f"{max(trial_s) / epoch_s:.2f}"],
            ],
            compact=True,
        ),
    ]
    write(args, command, session, "Supernet trial time on ResNet-20", lines, {"result": result})
    print("\n".join(lines))
    return result


# --- analysis ----------------------------------------------------------------------------------


def analyse(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    a, b, est, params = raw["seed_a"], raw["seed_b"], raw["estimates"], raw["params"]
    confirmed = {d: (a[d] + b[d]) / 2 for d in b}
    judged = sorted(set(raw["rank_set"]) | set(raw["confirm_set"]))
    n_boot = args.n_boot
    ranking = {
        "supernet_vs_mean": _corr([est[d] for d in judged], [confirmed[d] for d in judged], n_boot),
        "seed_a_vs_seed_b": _corr([a[d] for d in judged], [b[d] for d in judged], n_boot),
        "supernet_vs_seed_a_all": _corr([est[d] for d in a], [a[d] for d in a], n_boot),
        "architectures": len(judged),
    }
    differences = [a[d] - b[d] for d in judged]
    run_sd = float(np.std(differences, ddof=1) / math.sqrt(2))
    spread = float(np.std([confirmed[d] for d in judged], ddof=1))
    noise = {
        "run_sd": run_sd,
        "mean_sd": run_sd / math.sqrt(2),
        "spread_of_means": spread,
        "spread_over_noise": spread / (run_sd / math.sqrt(2)) if run_sd else math.inf,
        "estimate_range": [min(est.values()), max(est.values())],
    }
    measured = [*a.values(), *b.values(), *confirmed.values()]
    ref = [min(measured) - 0.01, 1.01 * max(params.values())]
    oracle = confirmed_hv(raw["table_front"], confirmed, params, ref)
    hv_sn = confirmed_hv(raw["confirm_set"], confirmed, params, ref)
    fronts = {}
    for name, runs in raw["multi_fronts"].items():
        values = [confirmed_hv(f, confirmed, params, ref) / oracle for f in runs]
        interval = mean_interval(values, 0.95) if len(values) >= 2 else None
        nominal = raw["budget_same_uncapped"] * (10 if name == "10x" else 1)
        fronts[name] = {
            "trainings": raw["budgets"][name],
            # What the search may spend; where the space holds fewer architectures it has
            # trained them all (more compute cannot change its front).
            "compute": nominal * raw["compute"]["unit"],
            "hv_norm": values,
            "hv_mean": float(np.mean(values)),
            "hv_low": interval.low if interval else math.nan,
            "hv_high": interval.high if interval else math.nan,
        }
    sn_compute = raw["compute"]["supernet_then_confirm"]
    hv_sn_norm = hv_sn / oracle
    ten = fronts["10x"]
    targets = {
        "compute_ratio": ten["compute"] / sn_compute,
        "hv_ratio_vs_10x": hv_sn_norm / ten["hv_mean"] if ten["hv_mean"] else math.nan,
        "tau": ranking["supernet_vs_mean"]["kendall_tau"],
    }
    targets["met_hv"] = bool(
        targets["compute_ratio"] >= TARGET_COMPUTE and targets["hv_ratio_vs_10x"] >= TARGET_HV
    )
    targets["met_tau"] = bool(targets["tau"] >= TARGET_TAU)
    return {
        "ranking": ranking,
        "noise": noise,
        "reference": ref,
        "oracle_hv": oracle,
        "supernet_then_confirm": {"hv_norm": hv_sn_norm, "compute": sn_compute},
        "multi_trial": fronts,
        "targets": targets,
    }


def _corr(x: list[float], y: list[float], n_boot: int) -> dict[str, Any]:
    try:
        return rank_correlation(x, y, n_boot=n_boot).to_dict()
    except ValueError as exc:
        return {"kendall_tau": math.nan, "spearman_rho": math.nan, "error": str(exc), "n": len(x)}


# --- the report --------------------------------------------------------------------------------


def _ci(corr: dict[str, Any], key: str, low: str, high: str) -> str:
    if "error" in corr:
        return f"undefined ({corr['error']})"
    return f"{corr[key]:+.2f} [{corr[low]:+.2f}, {corr[high]:+.2f}]"


def _ranking_row(label: str, architectures: int, corr: dict[str, Any]) -> list[object]:
    """One row of the ranking table: Kendall tau and Spearman rho with their intervals."""
    tau = _ci(corr, "kendall_tau", "tau_low", "tau_high")
    return [label, architectures, tau, _ci(corr, "spearman_rho", "rho_low", "rho_high")]


def report(raw: dict[str, Any], result: dict[str, Any]) -> list[str]:
    p, r, n, t = raw["problem"], result["ranking"], result["noise"], result["targets"]
    unit = raw["compute"]["unit"]
    phases = raw["phase_s"]
    confirm = len(raw["confirm_set"])
    confirm_s = sum(raw["fit_s_a"][d] + raw["fit_s_b"][d] for d in raw["confirm_set"])
    sn = result["supernet_then_confirm"]
    fronts = [
        [
            f"supernet, then confirm top {confirm}",
            f"{p['supernet_epochs']} supernet epochs + {2 * confirm}",
            f"{sn['compute']:,}",
            f"{100 * sn['hv_norm']:.1f}% (one supernet)",
        ]
    ]
    for name, f in result["multi_trial"].items():
        capped = (
            " (the whole space: nothing left to train)" if f["trainings"] == p["space_size"] else ""
        )
        fronts.append(
            [
                f"multi-trial, {name} compute{capped}",
                f["trainings"],
                f"{f['compute']:,}",
                f"{100 * f['hv_mean']:.1f}% [{100 * f['hv_low']:.1f}, {100 * f['hv_high']:.1f}]",
            ]
        )
    return [
        "## Problem",
        "",
        f"* space: {p['space_size']} architectures (per stage: none, SE r=8, ECA k=3, CBAM r=8, "
        "SimAM; standard position), ResNet-8",
        f"* data: {p['train_images']:,} training / {p['val_images']:,} validation images; "
        f"stand-alone {p['epochs']} epochs = {unit:,} image-epochs per training",
        f"* supernet: {p['supernet_epochs']} epochs ({p['supernet_steps']:,} steps, "
        f"{p.get('sampling', 'uniform')} paths), then all {p['space_size']} architectures "
        f"estimated ({raw.get('calibration_batches', '?')} calibration batches)",
        f"* total run time {raw['total_s'] / 60:.1f} min",
        "",
        "## Phases (seconds on this machine; stand-alone: the runs' training and evaluation)",
        "",
        *markdown_table(
            ["phase", "seconds", "training image-epochs"],
            "lrr",
            [
                [
                    f"stand-alone table, seed A ({p['space_size']} trainings)",
                    f"{phases['stand_alone_seed_a']:,.0f}",
                    f"{p['space_size'] * unit:,}",
                ],
                [
                    "supernet training",
                    f"{phases['supernet_training']:,.0f}",
                    f"{p['supernet_epochs'] * p['train_images']:,}",
                ],
                [
                    f"supernet estimates ({p['space_size']} sub-networks)",
                    f"{phases['supernet_estimates']:,.0f}",
                    0,
                ],
                [
                    f"seed B ({len(raw['seed_b'])} trainings)",
                    f"{phases['stand_alone_seed_b']:,.0f}",
                    f"{len(raw['seed_b']) * unit:,}",
                ],
                [
                    f"of which: confirming the supernet's top {confirm} (A + B)",
                    f"{confirm_s:,.0f}",
                    f"{2 * confirm * unit:,}",
                ],
            ],
            compact=True,
        ),
        "",
        "## Ranking: supernet estimate against stand-alone training",
        "",
        *markdown_table(
            ["comparison", "architectures", "Kendall tau [95% CI]", "Spearman rho [95% CI]"],
            "lrrr",
            [
                _ranking_row(
                    "supernet vs mean of seeds A, B", r["architectures"], r["supernet_vs_mean"]
                ),
                _ranking_row(
                    "seed A vs seed B (stand-alone against itself)",
                    r["architectures"],
                    r["seed_a_vs_seed_b"],
                ),
                _ranking_row(
                    "supernet vs seed A, whole space", p["space_size"], r["supernet_vs_seed_a_all"]
                ),
            ],
            compact=True,
        ),
        "",
        f"Noise: one stand-alone run's seed-to-seed sd {100 * n['run_sd']:.2f} points (a 2-seed "
        f"mean: {100 * n['mean_sd']:.2f}); spread of the 2-seed means over the judged "
        f"architectures {100 * n['spread_of_means']:.2f} points, {n['spread_over_noise']:.1f}x "
        "the noise of a mean. Supernet estimates range "
        f"{100 * n['estimate_range'][0]:.2f}-{100 * n['estimate_range'][1]:.2f}%.",
        "",
        "## Fronts: confirmed hypervolume against training compute",
        "",
        "Hypervolume of each front's architectures at their confirmed (2-seed mean) accuracy and "
        "parameters, as a share of the table's own front (all architectures, seed A, confirmed "
        "the same way). Multi-trial: NSGA-II over the seed-A table, "
        f"{len(next(iter(raw['multi_fronts'].values())))} sampler seeds, mean [95% CI].",
        "",
        *markdown_table(
            ["search", "trainings", "image-epochs", "confirmed HV (share of the table's front)"],
            "lrrr",
            fronts,
            compact=True,
        ),
        "",
        "## Targets",
        "",
        f"* >= {TARGET_HV:.0%} of the 10x multi-trial search's confirmed hypervolume with >= "
        f"{TARGET_COMPUTE:.0f}x less compute: compute ratio {t['compute_ratio']:.1f}x, "
        f"hypervolume {100 * t['hv_ratio_vs_10x']:.1f}% of it: "
        f"**{'met' if t['met_hv'] else 'missed'}**",
        f"* Kendall tau >= {TARGET_TAU}: tau {t['tau']:+.2f}: "
        f"**{'met' if t['met_tau'] else 'missed'}**",
    ]


if __name__ == "__main__":
    main()
