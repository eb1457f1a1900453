"""Seconds per trial and its accuracy: the training settings before issue 27 against today's.

Each problem trains its study's baselines (``none`` and each block everywhere) for several seeds
through the search's own code path (``nas.objective.TrialRunner``: costs, Lightning, weights
saved), in three arms run back to back for every (architecture, seed), in an order that rotates:

* ``before``: ``channels_last = false``, ``compile = false``, ``validate = "every_epoch"``,
  ``precision = "32"`` and ``eval_batch_size`` equal to the training batch, what every CPU trial
  ran with before channels-last was decided per backbone, compiling existed, trials validated
  only where the accuracy is read, a CPU with native bfloat16 trained large models in it and
  evaluation batches grew to 4 training batches;
* ``now``: the study's config as written (``"auto"`` for all four), except that a problem whose
  study prunes (``cifar10_resnet20``; these trials run unpruned) validates every epoch as its
  pruner's study would, and for a problem cut
  down to fit this machine (``cifar10_resnet20``) ``compile`` is what ``"auto"`` decides for the
  study's full-size trial (45,000 images x 30 epochs), so the cut-down trial runs as a full one
  would (on a CPU ``"auto"`` compiles the whole model for it); where it compiles, the compile
  cache is this run's own, empty at the start, so the first seed of each architecture pays its
  cold compile and later seeds find it warm;
* ``plain``: the same training (model, batches, optimiser, schedule) in a hand-written eager loop
  (``benchmarks/overhead.py``'s ``run_plain``): no costs, no checkpoint, no Lightning.

Speed-up ``before / now`` per (architecture, seed) pair, summarised by its geometric mean with a
95% Student-t interval on the log ratios (apart for cold and warm compile caches where ``now``
compiled), and per epoch after the first, with a cut-down problem's full trial projected from
the epochs. Accuracy: the
paired difference ``now - before`` of the final ``val_acc`` (same seeds), its 95% interval, and
the binomial standard error of one accuracy for scale. ``--search`` also times the quickstart's
whole search (``nas search``) under both settings, each in a fresh process and folder.

    .venv/bin/python benchmarks/trial_speed.py --search              # both problems, ~35 min
    .venv/bin/python benchmarks/trial_speed.py --problems quickstart --seeds 2 --out -

Results go to ``benchmarks/results/trial_speed.md`` (and ``.json`` beside it); ``--render``
rewrites the table from the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import optuna
import scipy.stats

import nas.objective
from benchmarks._harness import (
    RESULTS,
    ROOT,
    cifar10_data,
    command_line,
    fmt,
    markdown_table,
    provenance,
    results_head,
    start_session,
    utc_now,
    write_json,
    write_markdown,
)
from benchmarks.overhead import EpochTimer, run_plain
from nas.compiling import decide, expected_training_s
from nas.config import StudyConfig
from nas.objective import TrialRunner, load_data
from nas.stats import binomial_se, paired_comparison
from search_spaces.build import build_model
from search_spaces.cost import model_cost
from search_spaces.space import baselines, suggest_arch

ARMS = ("before", "now", "plain")
#: The group of pairs whose ``now`` run found an empty compile cache.
COLD = "first seed (cold compile cache)"
#: The ``before`` arm's ``[training]`` settings (its ``[data]`` adds ``eval_batch_size``).
BEFORE = {"channels_last": False, "compile": False, "validate": "every_epoch", "precision": "32"}
#: The full-size trial of a cut-down problem (``compile = "auto"`` is decided for it, and its
#: time is projected from the measured epochs): CIFAR-10's 45,000 training images, 30 epochs.
FULL_TRIAL = {"cifar10_resnet20": {"images": 45_000, "epochs": 30}}
#: The blocks a problem's baselines place (default: every block of its space): for ResNet-20,
#: the three timed in ``benchmarks/speed.py``.
PROBLEM_BLOCKS = {"cifar10_resnet20": ["se", "eca", "cbam"]}


def _study(name: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "studies" / f"{name}.toml").read_text())


def problem_config(problem: str, args: argparse.Namespace, runs_dir: str) -> dict[str, Any]:
    """The study config a problem's trials run: the quickstart as it is, or the CIFAR-10
    ResNet-20 study on ``--per-class`` images per class for ``--epochs`` epochs."""
    if problem == "quickstart":
        data = _study("quickstart")
    else:
        data = _study("cifar10_resnet20")
        data["data"] = {
            **cifar10_data(),
            "per_class": args.per_class,
            "val_per_class": args.val_per_class,
        }
        training = data["training"]  # the same share of the epochs warms up
        training["warmup_epochs"] *= args.epochs / training["epochs"]
        training["epochs"] = args.epochs
    data["study"].update(name=problem, runs_dir=runs_dir, sampler="random")
    data["pruning"] = {"pruner": "none"}
    data["training"]["compile_cache"] = str(Path(runs_dir) / "compile-cache")
    return data


def now_settings(problem: str, cfg: StudyConfig, flops: float) -> dict[str, Any]:
    """The ``now`` arm's training settings: the config's own, but validated every epoch where the
    problem's study prunes (its pruner reads each epoch there; these trials run unpruned), and
    with ``compile`` for a cut-down problem fixed to ``"auto"``'s decision for the full-size
    trial of ``flops`` per image."""
    prunes = _study(problem).get("pruning", {}).get("pruner", "none") != "none"
    read = {"validate": "every_epoch"} if prunes and cfg.training.validate == "auto" else {}
    if problem == "quickstart":
        return read
    full = FULL_TRIAL[problem]
    expected = expected_training_s(flops, full["images"], full["epochs"], "cpu")
    decision = decide(cfg.training.compile, expected, "cpu")
    print(f"# {problem}: full-size trial compile = {decision.compile} ({decision.why})")
    return {**read, "compile": decision.compile}


def arm_config(data: dict[str, Any], arm: str, seed: int, now: dict[str, Any]) -> StudyConfig:
    """``data`` with ``study.seed = seed`` and the arm's settings: ``before``'s (also for the
    plain loop) or ``now`` over its ``[training]``."""
    before = arm != "now"
    return StudyConfig.from_dict(
        {
            **data,
            "study": {**data["study"], "seed": seed},
            "data": {
                **data["data"],
                **({"eval_batch_size": data["data"]["batch_size"]} if before else {}),
            },
            "training": {**data["training"], **(BEFORE if before else now)},
        }
    )


@contextlib.contextmanager
def epoch_timed(timers: list[EpochTimer]) -> Iterator[None]:
    """Every Trainer ``nas.objective`` builds meanwhile gets an :class:`EpochTimer`, appended to
    ``timers``."""
    original = nas.objective.build_trainer

    def build(*args: Any, callbacks: list[Any], **kwargs: Any) -> Any:
        timers.append(EpochTimer())
        return original(*args, callbacks=[*callbacks, timers[-1]], **kwargs)

    nas.objective.build_trainer = build
    try:
        yield
    finally:
        nas.objective.build_trainer = original


def epoch_seconds(timer: EpochTimer) -> list[float]:
    """Seconds of each epoch: its training, and its validation where it has one."""
    seconds = list(timer.train_s)
    for epoch, validation in zip(timer.val_epochs, timer.val_s, strict=True):
        seconds[epoch] += validation
    return seconds


def run_trial(cfg: StudyConfig, params: dict[str, Any], datamodule: Any) -> dict[str, Any]:
    """One trial of ``params`` through :class:`TrialRunner` in a fresh in-memory study: wall
    seconds of ``run`` and of each epoch, the final ``val_acc``, whether it compiled and its
    precision."""
    study = optuna.create_study(
        directions=cfg.objectives.directions, pruner=optuna.pruners.NopPruner()
    )
    study.enqueue_trial(params)
    trial = study.ask()
    runner = TrialRunner(cfg, study, progress=False, datamodule=datamodule)
    timers: list[EpochTimer] = []
    start = time.perf_counter()
    with epoch_timed(timers):
        outcome = runner.run(trial)
    wall = time.perf_counter() - start
    study.tell(trial, outcome.values)
    return {
        "seconds": wall,
        "epoch_seconds": epoch_seconds(timers[0]),
        "val_acc": outcome.values[0],
        "compiled": runner.last_compile is not None and runner.last_compile.compile,
        "precision": study.trials[0].user_attrs["trained_with"]["precision"],
    }


def measure_problem(problem: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every (baseline, seed) in the three arms; one record per run."""
    with tempfile.TemporaryDirectory(prefix=f"nas-trial-speed-{problem}-") as runs_dir:
        data = problem_config(problem, args, runs_dir)
        base = arm_config(data, "now", 0, {})
        datamodules = {arm: load_data(arm_config(data, arm, 0, {})) for arm in ("before", "now")}
        for datamodule in datamodules.values():
            datamodule.setup("fit")
        datamodule = datamodules["now"]
        archs = baselines(base.space, args.blocks or PROBLEM_BLOCKS.get(problem))
        specs = {
            name: suggest_arch(
                optuna.trial.FixedTrial(params),
                base.space,
                in_channels=datamodule.in_channels,
                num_classes=datamodule.num_classes,
            )
            for name, params in archs.items()
        }
        flops = model_cost_flops(specs["none"], datamodule)
        now = now_settings(problem, base, flops)
        runs = []
        for seed in range(args.seeds):  # seeds outer: seed 0 meets every unit type first
            for index, (name, params) in enumerate(archs.items()):
                shift = (seed * len(archs) + index) % len(ARMS)
                for arm in ARMS[shift:] + ARMS[:shift]:
                    cfg = arm_config(data, arm, seed, now)
                    if arm == "plain":
                        start = time.perf_counter()
                        dm = datamodules["before"]
                        timer = run_plain(specs[name], cfg.training, dm, cfg.training.epochs, seed)
                        record = {
                            "seconds": time.perf_counter() - start,
                            "epoch_seconds": epoch_seconds(timer),
                        }
                    else:
                        record = run_trial(cfg, params, datamodules[arm])
                    record.update(arch=name, seed=seed, arm=arm)
                    runs.append(record)
                    print(f"# {problem}: {record}", file=sys.stderr, flush=True)
        return {
            "problem": problem,
            "epochs": base.training.epochs,
            "split_sizes": dict(datamodule.split_sizes),
            "eval_batch": {arm: dm.eval_batch_size for arm, dm in datamodules.items()},
            "now_settings": now,
            "full_trial": FULL_TRIAL.get(problem),
            "runs": runs,
        }


def model_cost_flops(spec: Any, datamodule: Any) -> float:
    """Forward FLOPs per image of ``spec`` on the data's input shape."""
    model = build_model(spec, seed=0)
    return float(model_cost(model, tuple(datamodule.input_shape)).flops)


def geometric_interval(ratios: list[float]) -> tuple[float, float | None, float | None]:
    """Geometric mean of ``ratios`` and its 95% Student-t interval (on the logs)."""
    logs = np.log(np.asarray(ratios, dtype=float))
    mean = float(logs.mean())
    if logs.size < 2:
        return math.exp(mean), None, None
    half = float(scipy.stats.t.ppf(0.975, logs.size - 1) * logs.std(ddof=1) / math.sqrt(logs.size))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Speed-ups (cold / warm cache), seconds per arm and the accuracy comparison."""
    by_key = {(r["arch"], r["seed"], r["arm"]): r for r in result["runs"]}
    pairs = sorted({(r["arch"], r["seed"]) for r in result["runs"]})
    groups: dict[str, list[tuple[str, int]]] = {
        COLD: [p for p in pairs if p[1] == 0],
        "later seeds (warm compile cache)": [p for p in pairs if p[1] > 0],
        "all": pairs,
    }
    speed = {}
    for label, members in groups.items():
        if not members:
            continue
        seconds = {arm: [by_key[(*p, arm)]["seconds"] for p in members] for arm in ARMS}
        speed[label] = {
            "pairs": len(members),
            "median_s": {arm: float(np.median(v)) for arm, v in seconds.items()},
            "now_speedup": geometric_interval(
                [b / n for b, n in zip(seconds["before"], seconds["now"], strict=True)]
            ),
            "plain_speedup": geometric_interval(
                [b / n for b, n in zip(seconds["before"], seconds["plain"], strict=True)]
            ),
        }
    before = [by_key[(*p, "before")]["val_acc"] for p in pairs]
    now = [by_key[(*p, "now")]["val_acc"] for p in pairs]
    comparison = paired_comparison(now, before)
    val_size = result["split_sizes"]["val"]
    return {
        "speed": speed,
        "epochs": epoch_summary(result, by_key, groups),
        "accuracy": {
            "pairs": len(pairs),
            "before_mean": float(np.mean(before)),
            "now_mean": float(np.mean(now)),
            **comparison.to_dict(),
            "binomial_se": binomial_se(float(np.mean(before)), val_size),
        },
        "compiled_now": sorted({r["compiled"] for r in result["runs"] if r["arm"] == "now"}),
        # Runs stored before ``precision = "auto"`` could choose bfloat16 on a CPU ran float32.
        "precision_now": sorted(
            {r.get("precision", "32-true") for r in result["runs"] if r["arm"] == "now"}
        ),
    }


def epoch_summary(
    result: dict[str, Any],
    by_key: dict[tuple[str, int, str], dict[str, Any]],
    groups: dict[str, list[tuple[str, int]]],
) -> dict[str, Any] | None:
    """Seconds of an epoch after the first (mean per run: a run validated after its last epoch
    only spreads that validation over its epochs) and their ratios, the ``now`` arm's
    warm-up (its first epoch less its later ones; cold and warm cache) and, for a cut-down
    problem, the full-size trial projected from them; None with one epoch."""
    if result["epochs"] < 2:
        return None

    def steady(arm: str, members: list[tuple[str, int]]) -> list[float]:
        return [float(np.mean(by_key[(*p, arm)]["epoch_seconds"][1:])) for p in members]

    pairs = groups["all"]
    epoch = {arm: steady(arm, pairs) for arm in ARMS}
    warmups = {
        label: [
            by_key[(*p, "now")]["epoch_seconds"][0] - later
            for p, later in zip(members, steady("now", members), strict=True)
        ]
        for label, members in groups.items()
        if members and label != "all"
    }
    summary: dict[str, Any] = {
        "median_s": {arm: float(np.median(v)) for arm, v in epoch.items()},
        "now_speedup": geometric_interval(
            [b / n for b, n in zip(epoch["before"], epoch["now"], strict=True)]
        ),
        "plain_speedup": geometric_interval(
            [b / n for b, n in zip(epoch["before"], epoch["plain"], strict=True)]
        ),
        "now_warmup_s": {label: float(np.median(v)) for label, v in warmups.items()},
    }
    full = result.get("full_trial")
    if full:
        # The full trial's epochs are longer by its share of images; the warm-up is paid once,
        # with a cold cache (a search's architectures are mostly new to it).
        epochs = full["epochs"] * full["images"] / result["split_sizes"]["train"]
        compiled = any(r["compiled"] for r in result["runs"] if r["arm"] == "now")
        cold = summary["now_warmup_s"].get(COLD, 0.0) if compiled else 0.0
        before_s = epochs * summary["median_s"]["before"]
        now_s = epochs * summary["median_s"]["now"] + max(cold, 0.0)
        summary["projection"] = {**full, "before_s": before_s, "now_s": now_s}
    return summary


def time_search(before: bool) -> float:
    """Wall seconds of ``nas search`` on the quickstart, in a fresh process and folder, as
    committed or (``before``) with the ``before`` arm's settings."""
    with tempfile.TemporaryDirectory(prefix="nas-trial-speed-search-") as folder:
        text = (ROOT / "studies" / "quickstart.toml").read_text()
        text = text.replace("[study]\n", f'[study]\nruns_dir = "{folder}"\n', 1)
        if before:
            lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in BEFORE.items())  # TOML
            text = text.replace("[training]\n", f"[training]\n{lines}", 1)
            text = text.replace("[data]\n", "[data]\neval_batch_size = 64\n", 1)
        config = Path(folder) / "quickstart.toml"
        config.write_text(text)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "nas.cli", "search", str(config), "--no-progress"],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        return time.perf_counter() - start


def render(problem: str, result: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """One problem's section: the speed table and the accuracy line."""

    def ratio(value: tuple[float, float | None, float | None]) -> str:
        if value[1] is None:
            return f"{value[0]:.2f}x"
        return f"{value[0]:.2f}x [{value[1]:.2f}, {value[2]:.2f}]"

    sizes = result["split_sizes"]
    acc = summary["accuracy"]
    rows = [
        [
            label, str(s["pairs"]), fmt(s["median_s"]["before"], ".2f"),
            fmt(s["median_s"]["now"], ".2f"), fmt(s["median_s"]["plain"], ".2f"),
            ratio(s["now_speedup"]), ratio(s["plain_speedup"]),
        ]
        for label, s in summary["speed"].items()
        if label == "all" or True in summary["compiled_now"]  # a cache matters where it compiled
    ]  # fmt: skip
    epochs = summary["epochs"]
    if epochs is not None:
        rows.append([
            "an epoch after the first (all pairs)", str(summary["accuracy"]["pairs"]),
            fmt(epochs["median_s"]["before"], ".2f"), fmt(epochs["median_s"]["now"], ".2f"),
            fmt(epochs["median_s"]["plain"], ".2f"), ratio(epochs["now_speedup"]),
            ratio(epochs["plain_speedup"]),
        ])  # fmt: skip
    return [
        f"## {problem}",
        "",
        f"{sizes['train']} training and {sizes['val']} validation images, "
        f"{result['epochs']} epochs; evaluation batches {result['eval_batch']}; `now` settings "
        "over the config: "
        f"`{result['now_settings'] or 'none (as written)'}`; `now` compiled: "
        f"{summary['compiled_now']}, precision: {summary['precision_now']}.",
        "",
        *markdown_table(
            [
                "pairs (architecture x seed)",
                "n",
                "before s/trial",
                "now s/trial",
                "plain loop s",
                "before / now",
                "before / plain",
            ],
            "lrrrrrr",
            rows,
        ),
        "",
        f"Final val_acc over {acc['pairs']} pairs: before {acc['before_mean']:.4f}, now "
        f"{acc['now_mean']:.4f}; now - before {acc['mean']:+.4f} [{acc['low']:+.4f}, "
        f"{acc['high']:+.4f}] (95%, paired t, p = {acc['p_value']:.2f}); one accuracy's binomial "
        f"s.e. {acc['binomial_se']:.4f}.",
        "",
        *epoch_lines(epochs, compiled=True in summary["compiled_now"]),
    ]


def epoch_lines(epochs: dict[str, Any] | None, compiled: bool) -> list[str]:
    """The ``now`` arm's compile warm-up (where it compiled) and, for a cut-down problem, the
    projected full trial."""
    if epochs is None:
        return []
    lines = []
    if compiled:
        warmups = ", ".join(
            f"{label} {value:.1f} s" for label, value in epochs["now_warmup_s"].items()
        )
        lines += [f"`now`'s warm-up (its first epoch less its later ones, median): {warmups}.", ""]
    projection = epochs.get("projection")
    if projection:
        lines += [
            f"Projected to the full trial ({projection['images']:,} images x "
            f"{projection['epochs']} epochs, from the median over pairs of each run's mean "
            "epoch after the first"
            f"{' and the cold-cache warm-up' if compiled else ''}): "
            f"before {projection['before_s'] / 60:.0f} min, now {projection['now_s'] / 60:.0f} "
            f"min, {projection['before_s'] / projection['now_s']:.2f}x.",
            "",
        ]
    return lines


def results_lines(stored: dict[str, Any]) -> list[str]:
    """The results file from what a run stored: its provenance, each problem's section and the
    whole-search times. Summaries are recomputed from the runs."""
    lines = results_head(
        "Seconds per trial: before and now",
        provenance(
            stored["command"], stored["date"], stored["machine"],
            "other processes' load is noise in every time",
        ),
    )  # fmt: skip
    for problem in stored["problems"]:
        result = stored[problem]
        lines += render(problem, result, summarise(result))
    searches = stored.get("search")
    if searches:
        lines += [
            "## The quickstart's whole search",
            "",
            "`nas search studies/quickstart.toml` (48 trials), each run in a fresh process and "
            f"folder, alternating: before {[round(s, 1) for s in searches['before']]} s, now "
            f"{[round(s, 1) for s in searches['now']]} s.",
            "",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", nargs="+", default=["quickstart", "cifar10_resnet20"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--blocks", nargs="+", default=None, help="baselines besides none")
    parser.add_argument("--per-class", type=int, default=500, help="cifar10_resnet20 images")
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3, help="cifar10_resnet20 epochs")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--search", action="store_true", help="also time the whole quickstart")
    parser.add_argument("--render", action="store_true", help="run nothing: rewrite the .md")
    parser.add_argument("--out", default=str(RESULTS / "trial_speed.md"), help="'-': print only")
    args = parser.parse_args(argv)
    json_path = Path(args.out).with_suffix(".json")
    if args.render:
        stored = json.loads(json_path.read_text())
    else:
        session = start_session(args.threads)
        stored = {"command": command_line(__file__, argv), "date": utc_now()}
        stored["problems"] = list(args.problems)
        for problem in args.problems:
            stored[problem] = measure_problem(problem, args)
        if args.search:
            searches: dict[str, list[float]] = {"before": [], "now": []}
            for _ in range(2):
                for arm in ("before", "now"):
                    searches[arm].append(time_search(arm == "before"))
            stored["search"] = searches
        stored["machine"] = session.machine()
    lines = results_lines(stored)
    print("\n".join(lines))
    if args.out != "-":
        write_markdown(Path(args.out), lines)
        if not args.render:
            write_json(json_path, stored)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
