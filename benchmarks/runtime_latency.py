"""Does latency on the deployment runtime rank architectures as the training host's proxies do?

Samples ``--archs`` distinct architectures of a study's space (``--config``, e.g. the quickstart
space), builds each with ``search_spaces.build.build_model`` and measures its FLOPs, parameters,
PyTorch eager forward latency and ONNX Runtime CPU latency (the graph ``nas export`` writes, one
intra-op and inter-op thread: ``search_spaces.ort_latency``), each at batch 1 and ``--batch``:
median of ``--repeats`` timed calls after ``--warmup`` untimed ones, torch on one thread too.
It reports Kendall's tau-b and Spearman's rho, with 95% percentile-bootstrap intervals over
architectures (:func:`nas.stats.rank_correlation`), of ONNX Runtime latency against eager latency,
FLOPs and parameters. Noise: the first ``--recheck`` architectures are measured a second time
after all of them (a new export and session), and the two measurements' rank correlation is the
ceiling any ranking of latency can reach on this machine.

Resumable: each measured architecture is logged beside the results (``.runs.jsonl.gz``) and a
re-run measures only what the log lacks.

    python benchmarks/runtime_latency.py --config studies/quickstart.toml \\
        --out benchmarks/results/runtime_latency_quickstart.md
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/runtime_latency.py``) from a checkout not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import onnxruntime
import optuna
import torch

from benchmarks import _harness as harness
from nas.config import StudyConfig
from nas.stats import rank_correlation
from search_spaces.build import build_model
from search_spaces.cost import count_flops, count_params, latency_profile
from search_spaces.ort_latency import ORT_THREADS, ort_latency_profile
from search_spaces.space import suggest_arch
from search_spaces.spec import ArchSpec

#: What the results file says of itself.
FACTS = {
    "title": "Latency on ONNX Runtime (CPU) against eager latency, FLOPs and parameters",
    "load_note": "other processes' load is noise in every latency; the recheck rows measure it",
}
#: (channels, height, width) and classes of the built-in datasets; imagefolder needs
#: ``--input-shape`` and ``--classes``.
DATASETS = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashionmnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "svhn": ((3, 32, 32), 10),
}
#: (row, x, y) of the rankings compared on every architecture.
RANKINGS = (
    ("ONNX Runtime b1 vs eager b1", "ort_latency_ms_b1", "latency_ms_b1"),
    ("ONNX Runtime bN vs eager bN", "ort_latency_ms_bN", "latency_ms_bN"),
    ("ONNX Runtime b1 vs FLOPs", "ort_latency_ms_b1", "flops"),
    ("ONNX Runtime b1 vs params", "ort_latency_ms_b1", "params"),
    ("ONNX Runtime bN vs FLOPs", "ort_latency_ms_bN", "flops"),
    ("ONNX Runtime bN vs params", "ort_latency_ms_bN", "params"),
    ("eager b1 vs FLOPs", "latency_ms_b1", "flops"),
    ("eager b1 vs params", "latency_ms_b1", "params"),
)
#: Latencies whose repeat-to-repeat agreement is the noise ceiling.
LATENCIES = ("latency_ms_b1", "latency_ms_bN", "ort_latency_ms_b1", "ort_latency_ms_bN")


def sample_specs(cfg: StudyConfig, n: int, seed: int, in_channels: int, classes: int):
    """``n`` distinct architectures (by digest) of the config's space, drawn at random."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs: dict[str, ArchSpec] = {}
    for _ in range(50 * n):
        if len(specs) == n:
            break
        spec = suggest_arch(study.ask(), cfg.space, in_channels=in_channels, num_classes=classes)
        specs.setdefault(spec.digest(), spec)
    return list(specs.values())


def measure(
    spec: ArchSpec, sample: tuple[int, ...], batch: int, warmup: int, repeats: int
) -> dict[str, Any]:
    """FLOPs, parameters and both latencies (eager and ONNX Runtime) at batch 1 and ``batch``,
    with each latency's inter-quartile range over the repeats."""
    model = build_model(spec, seed=0).eval()
    eager = latency_profile(model, sample, (1, batch), warmup=warmup, repeats=repeats)
    ort = ort_latency_profile(model, sample, (1, batch), warmup=warmup, repeats=repeats)
    record: dict[str, Any] = {
        "digest": spec.digest(),
        "summary": spec.summary(),
        "flops": count_flops(model, (1, *sample)),
        "params": count_params(model),
    }
    for prefix, timings in (("latency_ms", eager), ("ort_latency_ms", ort)):
        for suffix, size in (("b1", 1), ("bN", batch)):
            record[f"{prefix}_{suffix}"] = timings[size].median_ms
            record[f"{prefix}_{suffix}_iqr"] = timings[size].iqr_ms
    return record


def run(
    specs: Sequence[ArchSpec],
    recheck: int,
    done: Mapping[tuple[int, str], dict[str, Any]],
    measure_one: Callable[[ArchSpec], dict[str, Any]],
    append: Callable[[dict[str, Any]], None],
    log: Callable[[str], None],
) -> dict[tuple[int, str], dict[str, Any]]:
    """Measure every architecture (round 0), then the first ``recheck`` again (round 1), keyed
    by (round, digest), with the cores other processes took meanwhile; what ``done`` holds (a
    resumed run's log) is not measured again."""
    records = dict(done)
    jobs = [(0, s) for s in specs] + [(1, s) for s in specs[:recheck]]
    for number, (round_, spec) in enumerate(jobs):
        key = (round_, spec.digest())
        if key in records:
            continue
        start = harness.cpu_snapshot()
        record = {"round": round_, **measure_one(spec)}
        end = harness.cpu_snapshot()
        record["seconds"] = end[0] - start[0]
        record["others_cores"] = harness.others_cores(start, end)
        append(record)
        records[key] = record
        log(f"{number + 1}/{len(jobs)} round {round_}: {spec.summary()}")
    return records


def correlations(
    first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]], n_boot: int
) -> list[dict[str, Any]]:
    """The rank correlations of :data:`RANKINGS` over ``first`` (every architecture), then
    each latency against its own re-measurement over the rechecked ones (``second``)."""
    rows = []
    for name, x, y in RANKINGS:
        value = rank_correlation([r[x] for r in first], [r[y] for r in first], n_boot=n_boot)
        rows.append({"ranking": name, "n": len(first), **value.to_dict()})
    by_digest = {r["digest"]: r for r in first}
    for key in LATENCIES if len(second) >= 3 else ():
        again = [r[key] for r in second]
        before = [by_digest[r["digest"]][key] for r in second]
        value = rank_correlation(before, again, n_boot=n_boot)
        name = f"noise: {key} vs its re-measurement"
        rows.append({"ranking": name, "n": len(second), **value.to_dict()})
    return rows


def relative_change(
    first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """Per latency, the median over rechecked architectures of |second - first| / first."""
    by_digest = {r["digest"]: r for r in first}
    return {
        key: float(np.median([abs(r[key] / by_digest[r["digest"]][key] - 1) for r in second]))
        for key in LATENCIES
        if second
    }


def render(
    first: Sequence[Mapping[str, Any]],
    second: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    args: argparse.Namespace,
    sample: tuple[int, ...],
) -> list[str]:
    def interval(row: Mapping[str, Any], key: str, low: str, high: str) -> str:
        return f"{row[key]:+.3f} [{row[low]:+.3f}, {row[high]:+.3f}]"

    changes = relative_change(first, second)
    spread = {key: float(np.median([r[f"{key}_iqr"] / r[key] for r in first])) for key in LATENCIES}
    summary = [
        [
            key,
            f"{np.median([r[key] for r in first]):.4g}",
            f"{min(r[key] for r in first):.4g} - {max(r[key] for r in first):.4g}",
            f"{100 * spread[key]:.1f}%",
            f"{100 * changes[key]:.1f}%" if key in changes else "-",
        ]
        for key in LATENCIES
    ]
    ratio = [r["ort_latency_ms_b1"] / r["latency_ms_b1"] for r in first]
    others = [r["others_cores"] for r in (*first, *second) if r.get("others_cores") is not None]
    load = (
        f"Other processes took a median of {np.median(others):.2f} cores (range "
        f"{min(others):.2f} - {max(others):.2f}) of the machine's {os.cpu_count()} while an "
        "architecture was measured."
        if others
        else "The cores other processes took are unknown here (no /proc/stat)."
    )
    return [
        f"Space of `{args.config}`: {len(first)} distinct architectures drawn at random (seed "
        f"{args.seed}), input {sample}, latency batch N = {args.batch}. Each latency is the "
        f"median of {args.repeats} timed calls after {args.warmup} warm-up calls; torch and "
        f"ONNX Runtime (CPUExecutionProvider, {ORT_THREADS} intra-op and inter-op thread, "
        f"onnxruntime {onnxruntime.__version__}) on one thread. 95% percentile-bootstrap "
        f"intervals over architectures ({args.n_boot} resamples). The first {len(second)} "
        "architectures were measured again after all of them (a new export and session): the "
        "noise rows are the ceiling a latency ranking reaches on this machine.",
        "",
        *harness.markdown_table(
            ["ranking", "n", "Kendall tau", "Spearman rho"],
            "lrrr",
            [
                [
                    r["ranking"],
                    r["n"],
                    interval(r, "kendall_tau", "tau_low", "tau_high"),
                    interval(r, "spearman_rho", "rho_low", "rho_high"),
                ]
                for r in rows
            ],
        ),
        "",
        "Latencies (ms) over the architectures; spread: median over architectures of the "
        "inter-quartile range of the repeats over their median; recheck: median |second / "
        "first - 1| over the re-measured architectures.",
        "",
        *harness.markdown_table(
            ["latency", "median", "range", "spread of repeats", "recheck change"],
            "lrrrr",
            summary,
        ),
        "",
        f"ONNX Runtime b1 / eager b1: median {np.median(ratio):.3f} (range {min(ratio):.3f} - "
        f"{max(ratio):.3f}). {load}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("studies/quickstart.toml"))
    parser.add_argument("--archs", type=int, default=40, help="architectures sampled")
    parser.add_argument("--recheck", type=int, default=15, help="architectures measured twice")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--batch", type=int, default=None, help="batch N (default: the config's)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before the timed")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per latency")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--input-shape", type=int, nargs=3, help="C H W (imagefolder)")
    parser.add_argument("--classes", type=int, help="classes (imagefolder)")
    harness.add_output_arguments(
        parser, harness.RESULTS / "runtime_latency.md", "the .json and .runs.jsonl.gz"
    )
    args = parser.parse_args(argv)
    command = harness.command_line(__file__, argv)
    session = harness.start_session(threads=1)
    cfg = StudyConfig.load(args.config)
    shape, classes = DATASETS.get(cfg.data.name, (None, None))
    if not (args.input_shape or shape) or not (args.classes or classes):
        parser.error(f"data.name = {cfg.data.name!r}: pass --input-shape C H W and --classes")
    sample = tuple(args.input_shape or shape)
    classes = args.classes or classes
    args.batch = args.batch or cfg.objectives.latency_batch
    specs = sample_specs(cfg, args.archs, args.seed, sample[0], classes)
    out = harness.results_path(args, harness.RESULTS / "runtime_latency.md")
    done = {}
    if out is not None:
        done = {(r["round"], r["digest"]): r for r in harness.read_runs(out)}
    wanted = {s.digest() for s in specs}
    done = {k: r for k, r in done.items() if k[1] in wanted}

    def measure_one(spec: ArchSpec) -> dict[str, Any]:
        return measure(spec, sample, args.batch, args.warmup, args.repeats)

    if out is None:
        records = run(specs, args.recheck, done, measure_one, lambda r: None, session.log)
    else:
        with harness.run_log(out) as append:
            records = run(specs, args.recheck, done, measure_one, append, session.log)
    first = [records[0, s.digest()] for s in specs]
    second = [records[1, s.digest()] for s in specs[: args.recheck]]
    rows = correlations(first, second, args.n_boot)
    body = render(first, second, rows, args, sample)
    print("\n".join(body))
    if out is not None:
        info = session.machine(torch_threads=torch.get_num_threads())
        raw = {"rankings": rows, "architectures": first, "rechecked": second}
        harness.write_results(out, command=command, info=info, body=body, raw=raw, **FACTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
