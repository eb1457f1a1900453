"""Evaluation noise: how far one architecture's accuracy moves from seed to seed, what common
random numbers buy when two architectures are compared, and how stable a ranking of twelve
architectures is from one evaluation to the next. A difference smaller than its noise is not a
finding; this benchmark says how large that noise is on a fixed small problem.

Problem (fixed, the one of ``benchmarks/search_efficiency.py``): the JPEG copy of CIFAR-10
(``cifar10-jpeg.tar.gz`` in ``$ATTN_NAS_DATA`` or ``../shared/data``, read with
``DataConfig(name="imagefolder")``), cut to ``--per-class`` training and ``--val-per-class``
validation images per class (the split is drawn from ``split_seed=0`` and never moves; the test
split is CIFAR's official 10,000 images), a CIFAR ResNet-8 of width 16 (``--width``), ``--epochs``
epochs (SGD, lr 0.1, momentum 0.9, weight decay 5e-4, cosine, flip+crop, batch 128), and the
per-stage space ``search_efficiency.SPACE`` (blocks none/se/eca/gct/cbam/coord/simam, reductions
4/8, ECA kernel 3, standard position: 10 choices per stage, 1,000 architectures). The images are
loaded once and one data module serves every run. ``val_acc`` is the accuracy on the validation
split after the last epoch (what a search trial reports), ``test_acc`` the accuracy on the test
split; both are measured after training (``nas.training.evaluate``; the fit itself runs no
validation loop).

Seeds. A run trains one architecture with one seed ``s`` used three times: model
initialisation (``ClassifierModule(seed=s)``; the backbone is built before the blocks, so two
architectures with the same seed start from the same backbone weights), the training RNG
(``build_trainer(seed=s)``) and the batch order and augmentation draws (``datamodule.seed = s``).

1. **Seed-to-seed spread**, architectures :data:`ARCHS`: ``none`` and SE (reduction 8), ECA
   (kernel 3) and CBAM (reduction 8) *everywhere*, i.e. the same block at its standard position
   in every stage (all three stages of the ResNet-8), each in the space. Replicates
   ``r = 0 .. R-1`` with replicate seeds ``s_r`` = ``--seeds`` (default 0..5, R = 6), in two
   modes (:func:`run_seed`):

   * ``common`` (common random numbers): in replicate ``r`` every architecture uses ``s_r``;
   * ``independent``: architecture ``a`` (its index in :data:`ARCHS`, ``none`` = 0) in replicate
     ``r`` uses ``100000 + 1000 s_r + a``: distinct for every (architecture, replicate) and
     disjoint from the common seeds and the rank seeds (checked before anything runs).

   Per mode and architecture: the mean of ``val_acc`` (and ``test_acc``) over the R replicates
   with its Student-t 95% interval (``nas.stats.mean_interval``), the sample sd over seeds, and
   the binomial SE of one evaluation ``sqrt(p (1 - p) / n)`` at the mean accuracy ``p`` and the
   split size ``n`` (``nas.stats.binomial_se``): the noise of the evaluation split alone, to
   compare with the sd (which also holds the training noise). Per mode and architecture other
   than ``none``: the paired difference ``acc(arch) - acc(none)``, paired by replicate, its
   mean, sd, Student-t 95% interval and two-sided paired t-test p-value
   (``nas.stats.paired_comparison``); "significant" is ``p < 0.05`` (the report also flags
   ``p < 0.05 / 3``, Bonferroni over the three blocks). Headline: the **CRN sd ratio**
   ``sd(paired difference, independent) / sd(paired difference, common)`` per architecture,
   what common random numbers buy (how much smaller the noise of a comparison is), with an
   F-based 95% interval ``sqrt(ratio^2 / F_{0.975}(R-1, R-1)) .. sqrt(ratio^2 / F_{0.025}(R-1,
   R-1))`` (the two sets of differences are independent samples of R normal values each; with R
   = 6 that interval spans about a factor 2.5 each way, so one ratio is a rough figure). Beside
   it, Pearson's r of the architecture's and ``none``'s accuracies over the replicates in each
   mode: ``var(a - b) = var(a) + var(b) - 2 r sd(a) sd(b)``, so common seeds can only shrink the
   noise of a comparison where they make r positive.
   Derived: the **resolvable difference** of one evaluation per architecture, ``1.96 x`` the
   pooled sd of the paired differences (root mean of the three variances): two single
   evaluations closer than that are within noise at 95% (normal approximation).

2. **Rank stability**: ``--rank-archs`` architectures (default 12: ``none`` plus 11 drawn
   uniformly from the space by Optuna's ``RandomSampler(seed=--sampler-seed)``, redrawn until
   the digests are distinct), evaluated twice: evaluation A trains each with seed
   ``--rank-seed-a`` (1000), evaluation B with ``--rank-seed-b`` (2000): common random numbers
   within each evaluation, independent between them. Kendall's tau-b and Spearman's rho of the
   A and B validation accuracies with percentile-bootstrap 95% intervals (``--n-boot``
   resamples of the architectures, ``nas.stats.rank_correlation``), where architecture A's best
   lands in B, and the noise seen there: ``sd(A - B) / sqrt(2)`` (one evaluation's sd, from the
   rank architectures) against the sd of the architectures' mean accuracy ``(A + B) / 2`` (the
   spread a ranking has to resolve).

3. **Reproducibility**: the first common run (``none``, seed ``s_0``) is trained again at the
   end; equal accuracies show that every spread above comes from the seeds, not from
   non-deterministic kernels (``TrainingConfig.deterministic`` is on for the CPU).

Sizing: the validation split of 2,500 images (250 per class) has a binomial SE of about 0.9
points at the 24-30% these architectures reach. With ``--threads 1`` on the 2-core machine of
``benchmarks/results/noise.md`` one ResNet-8 epoch over 1,500 images took 2.6 s (``none``; CBAM
everywhere ~1.7x), the 2,500 validation images 1.2 s and the 10,000 test images ~5 s; 48 spread
runs (with test), 24 rank runs (validation only) and one repeat at 150 images per class and 5
epochs took 27.8 minutes there (under a load of 1.6-3.2 from another job), so 5 epochs (the
search-efficiency problem's epochs; 8 epochs at 200 per class would take ~46 minutes) it is.
Accuracy then reaches 24-30% on validation (25-33% on test), clearly above the 10% of chance and
still climbing: this is the noise of a cheap search trial, not of a converged training.

Threads: ``--threads`` defaults to the number of cores; on a machine shared with other jobs use
``--threads 1`` (see ``benchmarks/search_efficiency.py``).

Commands (results go to ``benchmarks/results/noise.md`` and ``noise.json`` beside it unless
``--out`` says otherwise; ``--out -`` prints only):

    # default: 6 seeds x 4 architectures x 2 modes + 2 x 12 rank runs, ~28 minutes
    .venv/bin/python benchmarks/noise.py --threads 1
    # reduced: 3 seeds, 80 / 100 images per class, 4 epochs, 6 rank architectures; 6.4 minutes
    # with --threads 1 on the same machine (val accuracy ~20-26%)
    .venv/bin/python benchmarks/noise.py --quick --threads 1 --out /tmp/noise_quick.md
    # rewrite the tables from a results JSON, training nothing
    .venv/bin/python benchmarks/noise.py --render benchmarks/results/noise.json
    # smoke run on scikit-learn's bundled digits (no CIFAR needed), seconds
    .venv/bin/python benchmarks/noise.py --data digits --seeds 0 1 --epochs 2 --width 4 \\
        --per-class 10 --val-per-class 5 --rank-archs 4 --threads 1 --out -

The tables and their plain-language reading are in ``benchmarks/_noise_report.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

# Run as a script (``python benchmarks/noise.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
import scipy.stats

from benchmarks._harness import (
    ALPHA,
    CONFIDENCE,
    RESULTS,
    add_output_arguments,
    apply_preset,
    command_line,
    load_average,
    provenance,
    results_head,
    results_path,
    start_session,
    utc_now,
    write_markdown,
    write_results,
)
from benchmarks._noise_report import interpretation, tables
from benchmarks.search_efficiency import SPACE, TRAINING, data_section
from nas.config import DataConfig, TrainingConfig
from nas.data import build_datamodule
from nas.stats import binomial_se, mean_interval, paired_comparison, rank_correlation
from nas.training import ClassifierModule, build_trainer, evaluate
from search_spaces.space import SearchSpace, spec_to_params, suggest_arch
from search_spaces.spec import ArchSpec

DEFAULT_OUT = RESULTS / "noise.md"
TITLE = "Evaluation noise: seed-to-seed spread, common random numbers and rank stability"
LOAD_NOTE = (
    "above the torch threads means other processes shared the CPU; that slows wall clock, "
    "never the accuracies, which are deterministic in the seeds"
)
MODES = ("common", "independent")
#: Independent-mode seed of architecture ``a`` in the replicate with seed ``s``:
#: ``INDEPENDENT_BASE + INDEPENDENT_STRIDE * s + a``.
INDEPENDENT_BASE = 100_000
INDEPENDENT_STRIDE = 1_000
#: Normal quantile of a two-sided 95% test, for the resolvable difference.
Z95 = 1.959963984540054


class Arch(NamedTuple):
    key: str
    block: str
    params: dict[str, Any]
    label: str


#: The seed-to-seed architectures: ``none`` and each block at every stage, default parameters.
ARCHS = (
    Arch("none", "none", {}, "none"),
    Arch("se", "se", {"reduction": 8}, "SE (r=8) everywhere"),
    Arch("eca", "eca", {"kernel_size": 3}, "ECA (k=3) everywhere"),
    Arch("cbam", "cbam", {"reduction": 8}, "CBAM (r=8) everywhere"),
)
BASELINE = "none"
SPLIT_OF = {"val_acc": "val", "test_acc": "test"}

#: ``--quick`` and default values of the options left unset on the command line.
PRESETS = {
    "full": {"seeds": [0, 1, 2, 3, 4, 5], "epochs": 5, "per_class": 150, "val_per_class": 250,
             "rank_archs": 12},
    "quick": {"seeds": [0, 1, 2], "epochs": 4, "per_class": 80, "val_per_class": 100,
              "rank_archs": 6},
}  # fmt: skip


# --- the problem -------------------------------------------------------------------------------


def search_space(args: argparse.Namespace) -> SearchSpace:
    return SearchSpace.from_dict(
        {**SPACE, "backbone": args.backbone, "backbone_args": {"width": args.width}}
    )


def training_config(args: argparse.Namespace) -> TrainingConfig:
    return TrainingConfig.from_dict({**TRAINING, "epochs": args.epochs})


def everywhere(arch: Arch, space: SearchSpace, in_channels: int, num_classes: int) -> ArchSpec:
    """``arch``'s block with its parameters at every scope of ``space`` (``none``: no block),
    through the space itself (a FixedTrial), so a choice outside the space raises."""
    params: dict[str, Any] = {}
    for scope in space.scopes():
        params[f"{scope}.block"] = arch.block
        params.update({f"{scope}.{name}": value for name, value in arch.params.items()})
    spec = suggest_arch(
        optuna.trial.FixedTrial(params), space, in_channels=in_channels, num_classes=num_classes
    )
    if spec_to_params(spec, space) != params:
        raise ValueError(f"{arch.label} is not in the space {space.to_dict()}")
    return spec


def rank_architectures(
    space: SearchSpace, count: int, seed: int, in_channels: int, num_classes: int
) -> list[ArchSpec]:
    """``none`` and ``count - 1`` architectures drawn uniformly from ``space`` by a seeded
    ``RandomSampler``; a draw whose digest is taken already is drawn again."""
    if not 2 <= count <= space.size():
        raise ValueError(f"--rank-archs must be in [2, {space.size()}], got {count}")
    none = everywhere(ARCHS[0], space, in_channels, num_classes)
    chosen, digests = [none], {none.digest()}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    while len(chosen) < count:
        trial = study.ask()
        spec = suggest_arch(trial, space, in_channels=in_channels, num_classes=num_classes)
        study.tell(trial, 0.0)
        if spec.digest() not in digests:
            chosen.append(spec)
            digests.add(spec.digest())
    return chosen


def run_seed(mode: str, replicate_seed: int, arch_index: int) -> int:
    """The one seed of a spread run: the replicate's seed in ``common`` mode; in
    ``independent`` mode ``INDEPENDENT_BASE + INDEPENDENT_STRIDE * replicate_seed + arch_index``."""
    if mode == "common":
        return replicate_seed
    if mode == "independent":
        if not 0 <= arch_index < INDEPENDENT_STRIDE:
            raise ValueError(f"arch_index must be in [0, {INDEPENDENT_STRIDE}), got {arch_index}")
        return INDEPENDENT_BASE + INDEPENDENT_STRIDE * replicate_seed + arch_index
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def seed_plan(
    seeds: Sequence[int], n_archs: int, rank_seeds: Sequence[int]
) -> dict[str, dict[tuple[int, int], int]]:
    """``{mode: {(replicate, arch_index): seed}}`` for the spread runs; raises ``ValueError``
    unless the replicate seeds are distinct and >= 0, the independent seeds all distinct and
    disjoint from the common ones, and the rank seeds distinct and unused by the spread runs."""
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds must be distinct ints >= 0, got {list(seeds)}")
    if len(seeds) < 2:
        raise ValueError("--seeds needs at least 2 seeds for a spread (5 or more for a verdict)")
    if max(seeds) >= INDEPENDENT_BASE:
        raise ValueError(f"--seeds must be below {INDEPENDENT_BASE} (independent-mode seeds)")
    plan = {
        mode: {(r, a): run_seed(mode, s, a) for r, s in enumerate(seeds) for a in range(n_archs)}
        for mode in MODES
    }
    independent = list(plan["independent"].values())
    if len(set(independent)) != len(independent):
        raise ValueError("independent-mode seeds collide")
    used = set(seeds) | set(independent)
    if len(set(rank_seeds)) != len(rank_seeds) or min(rank_seeds) < 0 or used & set(rank_seeds):
        raise ValueError(
            f"--rank-seed-a / --rank-seed-b ({list(rank_seeds)}) must be distinct ints >= 0 that "
            "no spread run uses"
        )
    return plan


# --- one run -----------------------------------------------------------------------------------


def train_once(
    spec: ArchSpec, seed: int, dm: Any, cfg: TrainingConfig, splits: Sequence[str]
) -> dict[str, Any]:
    """Train ``spec`` with ``seed`` (model init, trainer RNG, data order and augmentation), then
    evaluate the trained model on each of ``splits``; accuracies, losses and seconds."""
    load_before = load_average()
    dm.seed = seed
    module = ClassifierModule(spec, config=cfg, seed=seed)
    trainer = build_trainer(cfg, seed=seed, accelerator="cpu")
    trainer.limit_val_batches = 0  # no validation during fit: the final model is evaluated below
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit_s = time.perf_counter() - t0
    result: dict[str, Any] = {"seed": seed}
    for split in splits:
        result.update(evaluate(module, dm, split, accelerator="cpu"))
    result.update(
        fit_s=fit_s,
        eval_s=time.perf_counter() - t0 - fit_s,
        load_before=load_before,
        load_after=load_average(),
    )
    return result


# --- analysis ----------------------------------------------------------------------------------


def f_ratio_interval(
    ratio: float, n_a: int, n_b: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Interval of ``sd_a / sd_b`` from the sample ratio ``ratio`` of two independent normal
    samples of ``n_a`` and ``n_b`` values: ``ratio^2 / F`` at F's two tail quantiles."""
    if not math.isfinite(ratio):
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    upper = scipy.stats.f.ppf(1.0 - tail, n_a - 1, n_b - 1)
    lower = scipy.stats.f.ppf(tail, n_a - 1, n_b - 1)
    return math.sqrt(ratio**2 / upper), math.sqrt(ratio**2 / lower)


def spread_values(runs: list[dict[str, Any]], mode: str, arch: str, metric: str) -> list[float]:
    """``metric`` of the spread runs of ``arch`` in ``mode``, in replicate order."""
    chosen = [r for r in runs if r["part"] == "spread" and r["mode"] == mode and r["arch"] == arch]
    return [r[metric] for r in sorted(chosen, key=lambda r: r["replicate"])]


def analyse(raw: dict[str, Any]) -> dict[str, Any]:
    """Every table's numbers from the raw runs (``raw["runs"]``) and split sizes."""
    runs, sizes = raw["runs"], raw["problem"]["split_sizes"]
    archs = [a["key"] for a in raw["archs"]]
    metrics = [m for m in ("val_acc", "test_acc") if any(m in r for r in runs)]
    spread, paired, crn = [], [], []
    for mode in MODES:
        for key in archs:
            row: dict[str, Any] = {"mode": mode, "arch": key}
            for metric in metrics:
                n = sizes[SPLIT_OF[metric]]
                correct = _correct(spread_values(runs, mode, key, metric), n)
                interval = _scaled(mean_interval(correct, CONFIDENCE).to_dict(), n)
                row[metric] = {
                    **interval,
                    "values": [c / n for c in correct],
                    "binomial_se": binomial_se(interval["mean"], n),
                    "split_size": n,
                }
            spread.append(row)
        for key in archs:
            if key == BASELINE:
                continue
            row = {"mode": mode, "arch": key}
            for metric in metrics:
                n = sizes[SPLIT_OF[metric]]
                comparison = paired_comparison(
                    _correct(spread_values(runs, mode, key, metric), n),
                    _correct(spread_values(runs, mode, BASELINE, metric), n),
                )
                row[metric] = {
                    **_scaled(comparison.to_dict(), n),
                    "significant": comparison.significant(ALPHA),
                    "significant_bonferroni": comparison.p_value < ALPHA / (len(archs) - 1),
                }
            paired.append(row)
    spread_of = {(r["mode"], r["arch"]): r for r in spread}
    for key in archs:
        if key == BASELINE:
            continue
        row = {"arch": key}
        for metric in metrics:
            sd = {
                p["mode"]: p[metric]["sd"] for p in paired if p["arch"] == key
            }  # one row per mode
            n = {p["mode"]: p[metric]["n"] for p in paired if p["arch"] == key}
            if sd["common"] > 0:
                ratio = sd["independent"] / sd["common"]
            else:
                ratio = math.inf if sd["independent"] > 0 else math.nan
            low, high = f_ratio_interval(ratio, n["independent"], n["common"])
            row[metric] = {
                "sd_independent": sd["independent"],
                "sd_common": sd["common"],
                "ratio": ratio,
                "low": low,
                "high": high,
                "n": n["common"],
                **{
                    f"corr_{mode}": _pearson(
                        spread_of[mode, key][metric]["values"],
                        spread_of[mode, BASELINE][metric]["values"],
                    )
                    for mode in MODES
                },
            }
        crn.append(row)
    resolvable = {
        mode: {
            metric: Z95
            * math.sqrt(
                sum(p[metric]["sd"] ** 2 for p in paired if p["mode"] == mode)
                / sum(p["mode"] == mode for p in paired)
            )
            for metric in metrics
        }
        for mode in MODES
    }
    return {
        "spread": spread,
        "paired": paired,
        "crn": crn,
        "resolvable": resolvable,
        "rank": analyse_rank(raw),
        "repeat": analyse_repeat(runs),
    }


def analyse_rank(raw: dict[str, Any]) -> dict[str, Any] | None:
    runs = [r for r in raw["runs"] if r["part"] == "rank"]
    if not runs:
        return None
    keys = [a["key"] for a in raw["rank_archs"]]
    acc = {
        ev: {r["arch"]: r["val_acc"] for r in runs if r["evaluation"] == ev} for ev in ("A", "B")
    }
    a = [acc["A"][k] for k in keys]
    b = [acc["B"][k] for k in keys]
    args = raw["args"]
    correlation = rank_correlation(a, b, n_boot=args["n_boot"], confidence=CONFIDENCE, seed=0)
    rank_a = _ranks(a)
    rank_b = _ranks(b)
    best_a = min(range(len(keys)), key=lambda i: rank_a[i])
    best_b = min(range(len(keys)), key=lambda i: rank_b[i])
    differences = [x - y for x, y in zip(a, b, strict=True)]
    means = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
    return {
        "keys": keys,
        "a": a,
        "b": b,
        "rank_a": rank_a,
        "rank_b": rank_b,
        **correlation.to_dict(),
        "best_a": keys[best_a],
        "best_a_rank_in_b": rank_b[best_a],
        "best_b": keys[best_b],
        "best_b_rank_in_a": rank_a[best_b],
        "mean_abs_rank_change": sum(abs(x - y) for x, y in zip(rank_a, rank_b, strict=True))
        / len(keys),
        "single_sd": _sd(differences) / math.sqrt(2),
        "between_sd": _sd(means),
    }


def analyse_repeat(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    repeat = [r for r in runs if r["part"] == "repeat"]
    if not repeat:
        return None
    (again,) = repeat
    (first,) = [
        r
        for r in runs
        if r["part"] == "spread" and r["mode"] == "common" and r["arch"] == again["arch"]
        and r["replicate"] == again["replicate"]
    ]  # fmt: skip
    metrics = [m for m in ("val_acc", "test_acc") if m in again]
    return {
        "arch": again["arch"],
        "seed": again["seed"],
        **{f"{m}_first": first[m] for m in metrics},
        **{f"{m}_again": again[m] for m in metrics},
        "identical": all(first[m] == again[m] for m in metrics),
    }


def _correct(accuracies: Sequence[float], n: int) -> list[int]:
    """Correct answers behind each accuracy on ``n`` images: the statistics run on these
    integers, so equal differences are exactly equal (Lightning logs accuracies as float32)."""
    return [round(a * n) for a in accuracies]


def _scaled(stats: dict[str, Any], n: int) -> dict[str, Any]:
    """``stats`` of correct-answer counts as accuracies: location and spread divided by ``n``."""
    return {**stats, **{k: stats[k] / n for k in ("mean", "sd", "low", "high") if k in stats}}


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r; NaN where either side does not vary."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def _ranks(values: Sequence[float]) -> list[int]:
    """1 = the highest value; ties share the best of their ranks."""
    return [1 + sum(other > v for other in values) for v in values]


def _sd(values: Sequence[float]) -> float:
    n = len(values)
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan


# --- the results file --------------------------------------------------------------------------


def body(raw: dict[str, Any], result: dict[str, Any], note: str = "") -> list[str]:
    """The results file below its head: ``note`` (where given), the problem, the definitions,
    the tables and their reading."""
    args, problem = raw["args"], raw["problem"]
    archs = ", ".join(f"{a['label']} (`{a['summary']}`)" for a in raw["archs"])
    return [
        *([note, ""] if note else []),
        f"Total run time {raw['total_s'] / 60:.1f} min; mean fit time per run "
        f"{raw['mean_fit_s']:.1f} s, evaluation {raw['mean_eval_s']:.1f} s.",
        "",
        "## Problem",
        "",
        f"* data: {problem['data']}; split sizes {problem['split_sizes']}",
        f"* model: {args['backbone']} width {args['width']}, {args['epochs']} epochs (SGD lr "
        "0.1, momentum 0.9, wd 5e-4, cosine, flip+crop, batch 128); val_acc = accuracy on the "
        "validation split after the last epoch",
        f"* spread architectures: {archs}",
        f"* replicate seeds {args['seeds']}; common mode: every architecture of replicate r "
        f"uses s_r; independent mode: architecture a (none = 0, SE 1, ECA 2, CBAM 3) uses "
        f"{INDEPENDENT_BASE} + {INDEPENDENT_STRIDE} s_r + a; a run's seed drives model "
        "initialisation, the trainer's RNG and the batch order / augmentation",
        f"* rank architectures: `none` + {args['rank_archs'] - 1} drawn by RandomSampler(seed="
        f"{args['sampler_seed']}) from the per-stage space (10 choices per stage); evaluation A "
        f"at seed {args['rank_seed_a']}, B at seed {args['rank_seed_b']}",
        "",
        "Definitions (details in the module docstring of `benchmarks/noise.py`): mean ± 95% CI "
        "is a Student-t interval over the replicates; sd the sample sd over seeds; binomial SE "
        "= sqrt(p (1 - p) / n) of one evaluation on the split's n images at the mean accuracy; "
        "paired difference = acc(architecture) - acc(none) in the same replicate, paired t-test; "
        "CRN ratio = sd of the paired differences with independent seeds / with common seeds, "
        "F-based 95% interval.",
        "",
        "## Results",
        "",
        *tables(raw, result),
        "",
        "## Reading",
        "",
        *interpretation(raw, result),
    ]


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced (~6 min) variant")
    parser.add_argument("--data", choices=["cifar10", "digits"], default="cifar10")
    parser.add_argument("--seeds", type=int, nargs="+", help="replicate seeds (default 0..5)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--per-class", type=int, help="training images per class")
    parser.add_argument("--val-per-class", type=int, help="validation images per class")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: cores)"
    )
    parser.add_argument("--backbone", default="resnet8")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--rank-archs", type=int, help="rank architectures, none included")
    parser.add_argument("--sampler-seed", type=int, default=0, help="RandomSampler seed")
    parser.add_argument("--rank-seed-a", type=int, default=1000)
    parser.add_argument("--rank-seed-b", type=int, default=2000)
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    add_output_arguments(parser, DEFAULT_OUT, "json", render="the tables")
    args = parser.parse_args(argv)
    apply_preset(args, PRESETS["quick" if args.quick else "full"])
    if args.render is None:
        try:
            seed_plan(args.seeds, len(ARCHS), [args.rank_seed_a, args.rank_seed_b])
        except ValueError as exc:
            parser.error(str(exc))
        if args.rank_archs < 3:
            parser.error("--rank-archs must be >= 3 (a rank correlation needs 3 pairs)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark (or with ``--render``, rewrite a results file); returns the analysis
    (:func:`analyse`)."""
    args = parse_args(argv)
    command = command_line(__file__, argv)
    return render(args, command) if args.render else run(args, command)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run every measurement, print the tables, write the results unless ``--out -``."""
    session = start_session(args.threads)

    dm = build_datamodule(DataConfig(**data_section(args)), seed=args.seeds[0])
    dm.prepare_data()
    dm.setup("fit")
    space = search_space(args)
    cfg = training_config(args)
    channels, classes = dm.in_channels, dm.num_classes
    specs = {a.key: everywhere(a, space, channels, classes) for a in ARCHS}
    rank_specs = rank_architectures(space, args.rank_archs, args.sampler_seed, channels, classes)
    rank_keys = [f"r{i:02d}" for i in range(len(rank_specs))]
    plan = seed_plan(args.seeds, len(ARCHS), [args.rank_seed_a, args.rank_seed_b])

    runs: list[dict[str, Any]] = []
    for r, replicate_seed in enumerate(args.seeds):
        for mode in MODES:
            for a, arch in enumerate(ARCHS):
                seed = plan[mode][r, a]
                run = {"part": "spread", "mode": mode, "arch": arch.key, "replicate": r}
                run["replicate_seed"] = replicate_seed
                run.update(train_once(specs[arch.key], seed, dm, cfg, ("val", "test")))
                runs.append(run)
                session.log(
                    f"spread {mode:11s} r{r} {arch.key:5s} seed {seed:6d}  val "
                    f"{run['val_acc']:.4f}  test {run['test_acc']:.4f}  fit {run['fit_s']:.1f} s"
                )
    for evaluation, seed in (("A", args.rank_seed_a), ("B", args.rank_seed_b)):
        for key, spec in zip(rank_keys, rank_specs, strict=True):
            run = {"part": "rank", "evaluation": evaluation, "arch": key}
            run.update(train_once(spec, seed, dm, cfg, ("val",)))
            runs.append(run)
            session.log(f"rank {evaluation} {key} seed {seed}  val {run['val_acc']:.4f}")
    run = {"part": "repeat", "mode": "common", "arch": ARCHS[0].key, "replicate": 0}
    run["replicate_seed"] = args.seeds[0]
    run.update(train_once(specs[ARCHS[0].key], plan["common"][0, 0], dm, cfg, ("val", "test")))
    runs.append(run)
    session.log(f"repeat none seed {run['seed']}  val {run['val_acc']:.4f}")
    total = session.seconds()

    raw = {
        "total_s": total,
        "mean_fit_s": sum(r["fit_s"] for r in runs) / len(runs),
        "mean_eval_s": sum(r["eval_s"] for r in runs) / len(runs),
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "render")},
        "problem": {
            "data": (
                f"{args.data} ({dm.config.name}), {args.per_class} train / "
                f"{args.val_per_class} val images per class, split_seed 0"
            ),
            "split_sizes": dm.split_sizes,
            "input_shape": list(dm.input_shape),
            "space": space.to_dict(),
            "training": cfg.to_dict(),
        },
        "archs": [
            {
                "key": a.key,
                "label": a.label,
                "summary": specs[a.key].summary(),
                "digest": specs[a.key].digest(),
                "spec": specs[a.key].to_dict(),
            }
            for a in ARCHS
        ],
        "rank_archs": [
            {"key": k, "label": s.summary(), "digest": s.digest(), "spec": s.to_dict()}
            for k, s in zip(rank_keys, rank_specs, strict=True)
        ],
        "runs": runs,
    }
    result = analyse(raw)
    print(
        f"# evaluation noise, {args.data}, {args.epochs} epochs, seeds {args.seeds}, total "
        f"{total / 60:.1f} min; command: {command}"
    )
    print_report(raw, result)
    out = results_path(args, DEFAULT_OUT)
    if out is not None:
        written = write_results(
            out,
            title=TITLE,
            command=command,
            info=session.machine(),
            load_note=LOAD_NOTE,
            body=body(raw, result),
            raw=raw,
        )
        print("wrote " + ", ".join(map(str, written)))
    return result


def print_report(raw: dict[str, Any], result: dict[str, Any]) -> None:
    """The tables and their reading, on stdout."""
    print("\n".join(tables(raw, result)))
    print()
    print("\n".join(interpretation(raw, result)))


def render(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Rewrite the .md from a results .json (no training); the .json is left as it is."""
    source = Path(args.render)
    raw = json.loads(source.read_text())
    result = analyse(raw)
    print_report(raw, result)
    out = results_path(args, DEFAULT_OUT)
    if out is not None:
        head = results_head(
            TITLE, provenance(raw["command"], raw["date"], raw["machine"], LOAD_NOTE)
        )
        note = f"Tables rendered again from the JSON on {utc_now()}: `{command}`"
        write_markdown(out, [*head, *body(raw, result, note)])
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
