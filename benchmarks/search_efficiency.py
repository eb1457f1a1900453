"""Search efficiency: hypervolume against epochs and wall clock for five strategies, with and
without pruning, on one fixed small problem.

Problem (fixed): the JPEG copy of CIFAR-10 (``cifar10-jpeg.tar.gz`` in ``$ATTN_NAS_DATA`` or
``../shared/data``, read with ``DataConfig(name="imagefolder")``), cut to ``--per-class`` training
and ``--val-per-class`` validation images per class (the split is drawn from ``split_seed=0`` and
never moves), a CIFAR ResNet-8 of width 16, ``--epochs`` epochs per trial (SGD, lr 0.1, cosine,
flip+crop), and the per-stage space :data:`SPACE` (blocks none/se/eca/gct/cbam/coord/simam,
reductions 4/8, ECA kernel 3, standard position: 10 choices per stage, 1,000 architectures).
Objectives: maximise ``val_acc``, minimise ``flops`` (deterministic, unlike latency).

Strategies (:data:`STRATEGIES`), each run for the same ``--trials`` trials per seed (pruned trials
count as trials; failed ones would not), sequentially in this one process with torch threads =
cores, seeds interleaved (seed 0: all strategies, then seed 1, ...). ``study.seed`` is the seed:
it seeds the sampler, every trial's training (``seed + trial number``) and the batch order.

1. ``random``: random search, no pruning;
2. ``nsga2``: NSGA-II, no pruning -- the baseline every ratio below refers to (same seed);
3. ``nsga2-pareto``: NSGA-II with the Pareto-aware percentile pruner (``pruner = "pareto"``);
4. ``nsga2-moasha``: NSGA-II with MO-ASHA (``pruner = "moasha"``);
5. ``tpe-pareto``: multi-objective TPE (``sampler = "tpe"``) with the ``pareto`` pruner.

Measures, per run (strategy x seed) and averaged over seeds:

* hypervolume (HV) of the front of COMPLETE trials (``nas.pareto.front_trials``; pruned trials'
  partial accuracies never count) after each finished trial, against the training epochs spent
  and against wall clock (``nas.report.hypervolume_history``: ``elapsed_s`` runs from the start
  of the first trial to the end of each trial, read from the trials' datetimes);
* one common reference point for every run, computed from the space, not from any run:
  ``val_acc`` worst 0 / ideal 1; ``flops`` worst ``F_max + 0.1 (F_max - F_min)`` and ideal
  ``F_min``, where ``F_min`` and ``F_max`` are the FLOPs of the cheapest and of the most expensive
  architecture of the space. They are exact: FLOPs add up over stages (each stage's block sees
  only its own stage's shapes), so :func:`flops_bounds` measures every choice at every stage
  alone, builds the per-stage argmin / argmax architectures and counts them directly (and
  records that the sum matches). The HV is normalised by the box between the reference and the
  ideal point. A margin relative to the range is used rather than ``1.1 x F_max`` because the
  blocks add at most ~2% FLOPs to the backbone: with ``1.1 x F_max`` about 5/6 of the flops
  axis lies beyond every architecture and the HV is mostly the best accuracy. The HV ratio under
  ``(0, 1.1 x F_max)`` is reported as well (``HV kept, 1.1 max ref``);
* epochs spent (``nas.trial_schema.epochs_spent``: a duplicate architecture that reuses a completed
  trial's result costs 0) and **epochs saved** ``= 1 - sum_seeds(epochs of the run) /
  sum_seeds(epochs of nsga2)``; **HV kept** ``= HV of the run / HV of nsga2`` after the same
  number of trials (both ran ``--trials``), per seed, then averaged over seeds; **HV kept at
  equal epochs**: the run's final HV over nsga2's HV when nsga2 had spent no more epochs than
  the run did in total;
* **front recovered**: with ``B`` the final front of nsga2 (same seed) and ``P`` the run's final
  front, both as distinct (val_acc, flops) points of COMPLETE trials (a duplicate trial repeats
  its original's point and is counted once), the share of points ``b`` of ``B``
  for which some ``p`` of ``P`` is no worse in every objective (``p.val_acc >= b.val_acc`` and
  ``p.flops <= b.flops``; equal points count): ``|{b in B : exists p in P, p weakly dominates
  b}| / |B|``. Training is seeded by trial number, so one architecture trained at two trial
  numbers reaches slightly different accuracies: a recovered point is one matched or beaten in
  value, not necessarily the same architecture;
* wall seconds and CPU seconds (``time.process_time`` of this process) per run, the 1-minute
  load average around each run (other processes on the machine slow wall clock, not epochs),
  the NSGA-II generation each run reached (Optuna's NSGA-II only closes a generation once it has
  ``population_size`` COMPLETE trials, so pruned trials keep it in the random first generation);
* **compared with random search (test over seeds)**: every other strategy's final HV minus random
  search's, paired by seed (each seed runs every strategy on the same split and batch order):
  mean, 95% Student-t interval and two-sided paired t-test (``nas.stats.paired_comparison``),
  p-values Holm-adjusted over the strategies compared (``nas.stats.holm_adjust``); a strategy
  differs from random where the adjusted p < 0.05, and one seed allows no test. The same test
  for HV kept against NSGA-II's 100%. Where no strategy differs from random search the verdict
  says the benchmark cannot tell the strategies apart at this size. ``--render`` computes both
  from the per-run data of any saved JSON, old ones included;
* the validation split's measurement noise: the binomial standard error ``sqrt(p (1 - p) / n)``
  (``nas.stats.binomial_se``) at the runs' mean final best val_acc on the ``n`` val images, and
  what it is on the HV scale (times the most accurate point's share of the FLOPs axis).

Targets (issue): a pruned strategy saves >= 40% of the training epochs and keeps >= 95% of the
unpruned HV at equal trial count. The pruners run with the engine's defaults unless flags say
otherwise: ``pareto`` percentile 50, n_startup_trials 4, n_warmup_epochs 1 (epochs are 0-based:
the first check is after the 2nd epoch), and the engine's fixed interval 1 / n_min_peers 3;
``moasha`` min_epochs 1, reduction_factor 3, max_epochs = the trial's epochs (ASHA's rungs: for
5 epochs one rung, after the first epoch).

Threads: ``--threads`` defaults to the number of cores. On a machine shared with other jobs use
``--threads 1``: with two torch threads on two cores that other processes also use, each step
waits for the slower thread, and a 5-epoch trial that takes ~5 s alone took 18-30 s under a load
of ~3 (8 s with one thread) in our measurements.

Commands (results go to ``benchmarks/results/search_efficiency.md``, ``.json`` and
``search_efficiency_hv_{epochs,wallclock,trials}.html`` beside it unless ``--out`` says otherwise;
``--out -`` prints only):

    # full variant (default): 5,000 train / 2,000 val images, 3 seeds x 24 trials x 5 strategies,
    # about 3.5 hours on 2 idle CPU cores (estimate, not run: ~8 s per epoch incl. validation
    # measured with 2 threads, ~1,500 epochs in all)
    .venv/bin/python benchmarks/search_efficiency.py
    # reduced variant: 800 / 400 images, 2 seeds x 12 trials; 12-13 minutes with --threads 1 on
    # 2 shared cores (benchmarks/results/search_efficiency.md)
    .venv/bin/python benchmarks/search_efficiency.py --quick --threads 1
    # the intermediate variant of benchmarks/results/search_efficiency_large.md (~43 minutes)
    .venv/bin/python benchmarks/search_efficiency.py --seeds 0 1 2 --trials 16 \\
        --per-class 150 --val-per-class 75 --population 6 --threads 1 \\
        --out benchmarks/results/search_efficiency_large.md
    # rewrite the tables and figures from a results JSON, training nothing (the JSON itself
    # is left as it is; one is written only with an --out other than the .md beside it)
    .venv/bin/python benchmarks/search_efficiency.py \\
        --render benchmarks/results/search_efficiency.json
    # smoke run on scikit-learn's bundled digits (no CIFAR needed), seconds
    .venv/bin/python benchmarks/search_efficiency.py --data digits --trials 4 --epochs 2 \\
        --reduction-factor 2 --seeds 0 --per-class 10 --val-per-class 5 --width 4 --out -

This script holds the problem and runs it; the strategies, targets and measures are in
``benchmarks/_search_efficiency_measures.py``, the tables, verdict and figures in
``benchmarks/_search_efficiency_report.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/search_efficiency.py``) from a checkout that is not
# pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import (
    RESULTS,
    add_output_arguments,
    apply_preset,
    cifar10_data,
    command_line,
    describe,
    load_average,
    results_path,
    start_session,
    utc_now,
)
from benchmarks._search_efficiency_measures import (
    BASELINE,
    STRATEGIES,
    Strategy,
    add_comparisons,
    alternative_reference,
    common_reference,
    distinct,
    flops_bounds,
    measure_run,
    moasha_rungs,
    summarise,
    val_noise,
)
from benchmarks._search_efficiency_report import tables, verdict, write_results
from nas.config import StudyConfig
from nas.data import build_datamodule
from nas.worker import run_search

DEFAULT_OUT = RESULTS / "search_efficiency.md"

#: The fixed per-stage space: 10 choices per stage, 1,000 architectures on a 3-stage ResNet-8.
SPACE: dict[str, Any] = {
    "blocks": ["none", "se", "eca", "gct", "cbam", "coord", "simam"],
    "reductions": [4, 8],
    "eca_kernels": [3],
    "granularity": "per_stage",
    "positions": ["standard"],
}
TRAINING: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "label_smoothing": 0.0,
}
OBJECTIVES = {"maximize": "val_acc", "minimize": ["flops"]}
#: ``--quick`` and full defaults for the options left unset on the command line.
PRESETS = {
    "full": {"seeds": [0, 1, 2], "trials": 24, "per_class": 500, "val_per_class": 200,
             "population": 8},
    "quick": {"seeds": [0, 1], "trials": 12, "per_class": 80, "val_per_class": 40,
              "population": 4},
}  # fmt: skip


# --- configuration -----------------------------------------------------------------------------


def data_section(args: argparse.Namespace) -> dict[str, Any]:
    """The study's ``data`` section: ``--data`` (digits, or the CIFAR-10 JPEG copy) cut to
    ``--per-class`` / ``--val-per-class`` images (and ``--val-fraction`` where given)."""
    if args.data == "digits":
        section = {"name": "digits", "batch_size": 64, "augment": "flip_crop"}
    else:
        section = cifar10_data()
    section.update(per_class=args.per_class, val_per_class=args.val_per_class)
    if getattr(args, "val_fraction", None) is not None:  # absent from older results' args
        section["val_fraction"] = args.val_fraction
    return section


def study_config(
    args: argparse.Namespace, strategy: Strategy, seed: int, runs_dir: str
) -> StudyConfig:
    """The study one run of ``strategy`` with ``seed`` makes: the fixed problem, the strategy's
    sampler and pruner, ``--trials`` sampled trials (no baselines) seeded per trial."""
    return StudyConfig.from_dict(
        {
            "study": {
                "name": f"{strategy.key}-seed{seed}",
                "runs_dir": runs_dir,
                "sampler": strategy.sampler,
                "seed": seed,
                "n_trials": args.trials,
                "population_size": args.population,
            },
            "data": data_section(args),
            "backbone": {"name": args.backbone, "args": {"width": args.width}},
            "space": SPACE,
            "training": {**TRAINING, "epochs": args.epochs},
            "pruning": {
                "pruner": strategy.pruner,
                "percentile": args.percentile,
                "n_startup_trials": args.n_startup_trials,
                "n_warmup_epochs": args.n_warmup_epochs,
                "min_epochs": args.min_epochs,
                "reduction_factor": args.reduction_factor,
            },
            "objectives": OBJECTIVES,
            # Samplers compared on sampled trials only, seeded per trial as the committed runs
            # were (the engine's defaults would queue the same 7 baselines into every run).
            "evaluation": {"seeding": "per_trial", "baselines": False},
        }
    )


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced (< 15 min) variant")
    parser.add_argument("--data", choices=["cifar10", "digits"], default="cifar10")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--trials", type=int, help="trials per run (every strategy, every seed)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--per-class", type=int, help="training images per class")
    parser.add_argument("--val-per-class", type=int, help="validation images per class")
    parser.add_argument(
        "--val-fraction",
        type=float,
        help="share of the non-test images held out for validation (default: DataConfig's 0.1)",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: cores)"
    )
    parser.add_argument("--backbone", default="resnet8")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--population", type=int, help="NSGA-II population / TPE start-up")
    parser.add_argument(
        "--strategies", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES)
    )
    parser.add_argument("--percentile", type=float, default=50.0)
    parser.add_argument("--n-startup-trials", type=int, default=4)
    parser.add_argument("--n-warmup-epochs", type=int, default=1)
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--reduction-factor", type=int, default=3)
    add_output_arguments(parser, DEFAULT_OUT, "json, html", render="the tables and figures")
    args = parser.parse_args(argv)
    apply_preset(args, PRESETS["quick" if args.quick else "full"])
    if BASELINE not in args.strategies:
        parser.error(f"--strategies must include {BASELINE!r}: every ratio refers to it")
    args.strategies = [k for k in STRATEGIES if k in args.strategies]
    moasha = any(STRATEGIES[k].pruner == "moasha" for k in args.strategies)
    if moasha and args.render is None and not moasha_rungs(args):
        parser.error(
            f"--min-epochs x --reduction-factor ({args.min_epochs} x {args.reduction_factor}) "
            f"must be <= --epochs ({args.epochs}) for MO-ASHA to have a rung; lower them or "
            "leave nsga2-moasha out of --strategies"
        )
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark (or with ``--render``, rewrite a results file); returns the
    per-strategy summary rows."""
    args = parse_args(argv)
    command = command_line(__file__, argv)
    return render(args, command) if args.render else run(args, command)


def run(args: argparse.Namespace, command: str) -> list[dict[str, Any]]:
    """Run every strategy for every seed; print the table; write the results unless ``--out -``."""
    session = start_session(args.threads)

    # The problem: data loaded once here (decoding the JPEGs on a first run), space bounds.
    probe = study_config(args, STRATEGIES[BASELINE], args.seeds[0], tempfile.gettempdir())
    dm = build_datamodule(probe.data)
    dm.prepare_data()
    dm.setup("fit")
    bounds = flops_bounds(probe.space, tuple(dm.input_shape), dm.num_classes)
    reference, alternative = common_reference(bounds), alternative_reference(bounds)
    problem = {
        "data": (
            f"{args.data} ({probe.data.name}), {args.per_class} train / {args.val_per_class} "
            "val images per class, split_seed 0"
        ),
        "split_sizes": dm.split_sizes,
        "input_shape": list(dm.input_shape),
        "flops_bounds": bounds,
        "reference": reference.to_dict(),
        "alternative_reference": alternative.to_dict(),
        "space": SPACE,
        "training": {**TRAINING, "epochs": args.epochs},
    }
    del dm

    runs = []
    for seed in args.seeds:
        for key in args.strategies:
            strategy = STRATEGIES[key]
            with tempfile.TemporaryDirectory() as runs_dir:
                cfg = study_config(args, strategy, seed, runs_dir)
                load_before, cpu0, t0 = load_average(), time.process_time(), time.perf_counter()
                study = run_search(cfg, progress=False)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                run = {"strategy": key, "seed": seed, "wall_s": wall, "cpu_s": cpu}
                run.update(load_before=load_before, load_after=load_average())
                run.update(measure_run(study, reference, alternative))
            runs.append(run)
            session.log(
                f"seed {seed} {key:13s} HV {run['hv']:.4f}  epochs {run['epochs_spent']:4d}  "
                f"complete {run['complete']:2d}  pruned {run['pruned']:2d}  wall {wall:6.1f} s"
            )
    add_comparisons(runs)
    summary = summarise(runs, args.strategies)
    problem["val_noise"] = val_noise(problem, runs)
    total = session.seconds()

    print(
        f"# search efficiency, {args.data}, {args.trials} trials x {args.epochs} epochs, seeds "
        f"{args.seeds}, total {total / 60:.1f} min; command: {command}"
    )
    print_report(summary, runs, args, problem["val_noise"])
    out = results_path(args, DEFAULT_OUT)
    if out is not None:
        paths = write_results(out, command, describe(), args, problem, summary, runs, total)
        print("wrote " + ", ".join(str(p) for p in paths))
    return summary


def print_report(
    summary: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    args: argparse.Namespace,
    noise: dict[str, Any] | None,
) -> None:
    """The tables and the verdict, on stdout."""
    print("\n".join(tables(summary, runs)))
    print()
    print(verdict(summary, runs, args, noise))


def render(args: argparse.Namespace, command: str) -> list[dict[str, Any]]:
    """Recompute the comparisons, tables and figures from a results .json (no training)."""
    source = Path(args.render)
    raw = json.loads(source.read_text())
    saved = argparse.Namespace(**{"render": None, **raw["args"]})
    runs = raw["runs"]
    for run in runs:
        run["front"] = distinct(run["front"])
    add_comparisons(runs)
    summary = summarise(runs, saved.strategies)
    problem = {**raw["problem"], "val_noise": val_noise(raw["problem"], runs)}
    print_report(summary, runs, saved, problem["val_noise"])
    out = results_path(args, DEFAULT_OUT)
    if out is not None:
        note = f"Tables and figures rendered again from the JSON on {utc_now()}: `{command}`"
        # The raw data is never overwritten: a JSON is written only beside another .md.
        in_place = out.with_suffix(".json").resolve() == source.resolve()
        paths = write_results(
            out,
            raw["command"],
            raw["machine"],
            saved,
            problem,
            summary,
            runs,
            raw["total_s"],
            date=raw["date"],
            note=note,
            with_json=not in_place,
        )
        print("wrote " + ", ".join(str(p) for p in paths))
    return summary


if __name__ == "__main__":
    main()
