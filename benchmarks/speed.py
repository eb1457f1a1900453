"""Speed of one training step: eager, channels-last and ``torch.compile``, against a plain loop.

For each model (a backbone with one attention block in every unit: none, SE, ECA, CBAM) this
times a training step (forward, cross-entropy, backward, SGD with momentum) on a fixed batch, in
the same process and interleaved so that a change of the machine's load hits every variant alike:

* ``plain``: the model as ``search_spaces.build.build_model`` returns it, in a hand-written loop
  (the floor the project's own training has to reach);
* ``channels_last``: the model and its input in channels-last memory format;
* ``compiled``: ``torch.compile`` of the model (default mode, inductor), timed after its warm-up;
  the warm-up is reported apart, once with an empty inductor cache (a folder of this run's own)
  and once again with that cache warm (a fresh compile of the same model).

``--regional`` times each residual unit compiled in place, as ``training.compile`` does, in
both layouts; ``--scopes`` compares what a compile covers, all channels-last: each unit, each
stage (its units as one region) or the whole model, against the channels-last eager step.
``--supernet`` times a supernet's training step (every block at every site, the next of a fixed
list of sampled paths at each step, channels-last) eager and with each candidate block compiled
in place, as supernet training does under ``training.compile``. ``--bf16`` times the
channels-last eager step in float32 and under bfloat16 autocast (``precision = "bf16-mixed"``),
with whether the CPU has native bfloat16 instructions (AVX512-BF16, AMX).

Each variant runs ``--steps`` steps per repeat, ``--repeats`` times; the table gives the median
images per second with the spread of the repeats, and each variant's speed-up over ``plain``
with a 95% interval from the repeats (a ratio of medians, bootstrapped over repeats). A
variant slower than its noise is a finding only where the interval excludes 1.

    .venv/bin/python benchmarks/speed.py                          # ResNet-8/20 and resnet18
    .venv/bin/python benchmarks/speed.py --models quickstart --threads 2
    .venv/bin/python benchmarks/speed.py --regional --models resnet20   # units, as training does
    .venv/bin/python benchmarks/speed.py --scopes --models resnet20     # units, stages, whole
    .venv/bin/python benchmarks/speed.py --supernet --models resnet20   # candidate blocks
    .venv/bin/python benchmarks/speed.py --bf16 --models resnet20 --threads 2
    .venv/bin/python benchmarks/speed.py --smoke --out -          # tiny: a check that it runs

Results go to ``benchmarks/results/speed.md`` (and ``.json`` beside it). A run resumes: rows of
the JSON already there (the same case, block and threads) are kept, not measured again, and each
new row is saved as it is measured (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._harness import (
    RESULTS,
    command_line,
    markdown_table,
    provenance,
    results_head,
    start_session,
    utc_now,
    write_json,
    write_markdown,
)
from nas.compiling import compile_regions, compiled_regions_scope
from nas.training import cpu_has_native_bf16
from search_spaces.backbones import backbone_sites
from search_spaces.build import build_model
from search_spaces.space import SearchSpace
from search_spaces.spec import ArchSpec, BlockChoice
from search_spaces.supernet import PathSampler, activate, build_supernet, candidate_paths


@dataclass(frozen=True)
class Case:
    """A backbone, its arguments and the batch it is timed on: ``batch`` images of ``channels``
    x ``side`` x ``side``."""

    backbone: str
    args: dict[str, Any]
    channels: int
    side: int
    batch: int


#: The cases by name: the two CIFAR ResNets of the studies and a torchvision one on CIFAR-sized
#: batches, and the quickstart's ResNet-8 on its 8x8 one-channel digits and batch of 64.
CASES = {
    "resnet8": Case("resnet8", {"width": 16}, 3, 32, 128),
    "resnet20": Case("resnet20", {}, 3, 32, 128),
    "resnet18": Case("resnet18", {"small_input": True}, 3, 32, 128),
    "quickstart": Case("resnet8", {"width": 16}, 1, 8, 64),
}
SMOKE = {"smoke": Case("resnet8", {"width": 4}, 3, 16, 8)}
BLOCKS = ("none", "se", "eca", "cbam")
VARIANTS = ("plain", "channels_last", "compiled")
#: ``--regional``: each residual unit compiled in place (what ``training.compile`` does), in
#: either layout.
REGIONAL_VARIANTS = ("plain", "channels_last", "regional", "regional_channels_last")
#: ``--scopes``: what a compile covers, all in channels-last against the channels-last eager
#: step: each residual unit, each stage (its units as one region), or the whole model.
SCOPE_VARIANTS = ("channels_last", "units", "stages", "whole")
#: ``--supernet``: sampled paths (``PathSampler``, uniform, seed 0) the steps cycle through.
SUPERNET_PATHS = 16


def spec_of(
    backbone: str, args: dict[str, Any], block: str, classes: int = 10, in_channels: int = 3
) -> ArchSpec:
    """The backbone with ``block`` (its default parameters) in every insertion site."""
    sites = {s.name: BlockChoice(block) for s in backbone_sites(backbone, **args)}
    return ArchSpec(backbone, args, in_channels=in_channels, num_classes=classes, sites=sites)


def step_function(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool = False
) -> Callable[[], None]:
    """One SGD training step of ``model`` on the batch ``(x, y)``, as a closure; with ``bf16``
    its forward under bfloat16 autocast, as Lightning's ``bf16-mixed`` runs it."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _compiled_step(make: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor) -> tuple:
    """The step of a freshly compiled model from ``make``, twice: against the cache as it is,
    then again after a dynamo reset (the second reads what the first wrote); the last step and
    both warm-ups (seconds of each first step)."""
    warmups = []
    for _ in range(2):
        torch._dynamo.reset()
        step = step_function(make(), x, y)
        start = time.perf_counter()
        step()
        warmups.append(time.perf_counter() - start)
    return step, warmups


def unit_paths(spec: ArchSpec) -> list[str]:
    """The residual units of the spec's backbone (its insertion sites), by module path."""
    return [s.path for s in backbone_sites(spec.backbone, **spec.backbone_args)]


def regions_compiled(
    base: nn.Module, paths: list[str], memory_format: torch.memory_format = torch.preserve_format
) -> nn.Module:
    """A copy of ``base`` in ``memory_format`` with the modules at ``paths`` compiled in place."""
    model = copy.deepcopy(base).to(memory_format=memory_format)
    compile_regions(model, paths)
    return model


def variant_steps(
    spec: ArchSpec, x: torch.Tensor, y: torch.Tensor, regional: bool = False
) -> dict[str, Any]:
    """Each variant's step closure, and the compiled one's warm-up seconds (cold, then warm):
    the whole model compiled, or with ``regional`` each residual unit compiled in place as
    ``training.compile`` does (contiguous, and channels-last)."""
    base = build_model(spec, seed=0).train()
    x_last = x.contiguous(memory_format=torch.channels_last)
    steps = {"plain": step_function(copy.deepcopy(base), x, y)}
    last = copy.deepcopy(base).to(memory_format=torch.channels_last)
    steps["channels_last"] = step_function(last, x_last, y)
    if not regional:
        steps["compiled"], warmups = _compiled_step(
            lambda: torch.compile(copy.deepcopy(base)), x, y
        )
        return {"steps": steps, "warmup_cold_s": warmups[0], "warmup_warm_s": warmups[1]}
    paths = unit_paths(spec)
    with compiled_regions_scope(len(paths)):
        steps["regional"], warmups = _compiled_step(
            lambda: regions_compiled(base, paths, torch.contiguous_format), x, y
        )
    with compiled_regions_scope(len(paths)):
        steps["regional_channels_last"], _ = _compiled_step(
            lambda: regions_compiled(base, paths, torch.channels_last), x_last, y
        )
    return {"steps": steps, "warmup_cold_s": warmups[0], "warmup_warm_s": warmups[1]}


def stage_paths(unit_paths: list[str]) -> list[str]:
    """The stages holding the units at ``unit_paths`` (``layer1.0`` -> ``layer1``), in order."""
    return list(dict.fromkeys(path.rsplit(".", 1)[0] for path in unit_paths))


def scope_steps(spec: ArchSpec, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """The channels-last step eager and compiled per unit, per stage and as a whole, and each
    compiled one's warm-ups (cold, then warm)."""
    base = build_model(spec, seed=0).train().to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    units = unit_paths(spec)
    makers = {
        "units": lambda: regions_compiled(base, units),
        "stages": lambda: regions_compiled(base, stage_paths(units)),
        "whole": lambda: torch.compile(copy.deepcopy(base)),
    }
    steps = {"channels_last": step_function(copy.deepcopy(base), x_last, y)}
    warmups = {}
    for name, make in makers.items():
        steps[name], warmups[name] = _compiled_step(make, x_last, y)
    return {"steps": steps, "warmups": warmups}


def supernet_steps(case: Case, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """The channels-last step of a supernet of :data:`BLOCKS` (SE at r=16, ECA at the adaptive
    k), eager and with each candidate block compiled, each call on the next of
    :data:`SUPERNET_PATHS` sampled paths; the compiled one's warm-up (its first pass over every
    path, less the eager one's)."""
    space = SearchSpace(
        case.backbone, case.args, blocks=BLOCKS, reductions=(16,), eca_kernels=("adaptive",)
    )
    base = build_supernet(space, case.channels, 10, seed=0).train()
    base.to(memory_format=torch.channels_last)
    sampler = PathSampler(space, in_channels=case.channels)
    paths = [sampler(step) for step in range(SUPERNET_PATHS)]
    x_last = x.contiguous(memory_format=torch.channels_last)

    def path_step(model: nn.Module) -> Callable[[], None]:
        step, turn = step_function(model, x_last, y), itertools.count()

        def run() -> None:
            activate(model, paths[next(turn) % len(paths)])
            step()

        return run

    steps = {
        "channels_last": path_step(copy.deepcopy(base)),
        "blocks": path_step(regions_compiled(base, candidate_paths(base))),
    }
    first_pass = {}
    for name, step in steps.items():
        start = time.perf_counter()
        for _ in paths:
            step()
        first_pass[name] = time.perf_counter() - start
    return {"steps": steps, "warmup_s": first_pass["blocks"] - first_pass["channels_last"]}


def time_variants(
    steps: dict[str, Callable[[], None]], n_steps: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per step of each variant, ``repeats`` times, the variants interleaved."""
    for step in steps.values():  # one step each before timing (allocator, first kernels)
        step()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(n_steps):
                step()
            seconds[name].append((time.perf_counter() - start) / n_steps)
    return seconds


def speedup_interval(
    plain: list[float], other: list[float], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Median plain time / median ``other`` time, with a 95% percentile-bootstrap interval
    (repeats resampled with replacement, each list on its own)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(plain), np.asarray(other)
    ratios = [
        np.median(rng.choice(a, a.size)) / np.median(rng.choice(b, b.size)) for _ in range(n_boot)
    ]
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(np.median(a) / np.median(b)), float(low), float(high)


def pending(
    args: argparse.Namespace, rows: list[dict[str, Any]], blocks: tuple[str, ...] | None = None
) -> Iterator[tuple[str, Case, str, torch.Tensor, torch.Tensor]]:
    """Every case x block (default ``args.blocks``) not in ``rows`` yet (at these threads), with
    its batch (the same random images and labels in every run)."""
    threads = torch.get_num_threads()
    done = {(r["model"], r["block"], r.get("threads", 1)) for r in rows}
    for label, case in args.cases.items():
        generator = torch.Generator().manual_seed(0)
        for block in blocks or args.blocks:
            shape = (case.batch, case.channels, case.side, case.side)
            x = torch.randn(shape, generator=generator)
            y = torch.randint(0, 10, (case.batch,), generator=generator)
            if (label, block, threads) not in done:
                yield label, case, block, x, y


def spec_for(case: Case, block: str) -> ArchSpec:
    """The case's backbone with ``block`` in every insertion site."""
    return spec_of(case.backbone, case.args, block, in_channels=case.channels)


def timed_row(
    label: str, case: Case, block: str, seconds: dict[str, list[float]], *measured: str
) -> dict[str, Any]:
    """A row's common fields: what was timed, each variant's seconds, and the images per second
    of the ``measured`` variants."""
    row = {"model": label, "block": block, "batch": case.batch, "threads": torch.get_num_threads()}
    row.update(side=case.side, channels=case.channels, seconds=seconds)
    for name in measured:
        row[f"{name}_images_per_s"] = case.batch / float(np.median(seconds[name]))
    return row


def keep(rows: list[dict[str, Any]], row: dict[str, Any], save: Callable[[], None]) -> None:
    """Append ``row`` to ``rows`` and save them, saying so on stderr."""
    rows.append(row)
    save()
    print(f"# {row['model']} {row['block']}: {row}", file=sys.stderr, flush=True)


def measure(args: argparse.Namespace, rows: list[dict[str, Any]], save: Callable[[], None]) -> None:
    """Every case x block not in ``rows`` yet (at these threads): images/s of each variant,
    speed-ups and compile warm-ups, appended to ``rows`` and saved one by one."""
    if getattr(args, "scopes", False):
        measure_scopes(args, rows, save)
        return
    if getattr(args, "supernet", False):
        measure_supernet(args, rows, save)
        return
    if getattr(args, "bf16", False):
        measure_bf16(args, rows, save)
        return
    variants = REGIONAL_VARIANTS if args.regional else VARIANTS
    for label, case, block, x, y in pending(args, rows):
        made = variant_steps(spec_for(case, block), x, y, regional=args.regional)
        seconds = time_variants(made["steps"], args.steps, args.repeats)
        row = timed_row(label, case, block, seconds, *variants)
        for name in variants[1:]:
            row[f"{name}_speedup"] = speedup_interval(seconds["plain"], seconds[name])
        if args.regional:  # against the faster eager layout too
            row["regional_channels_last_over_channels_last"] = speedup_interval(
                seconds["channels_last"], seconds["regional_channels_last"]
            )
        row["warmup_cold_s"], row["warmup_warm_s"] = (
            made["warmup_cold_s"],
            made["warmup_warm_s"],
        )
        keep(rows, row, save)


def measure_scopes(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    save: Callable[[], None],
) -> None:
    """``--scopes``: every case x block not in ``rows``: each compile scope's speed-up over the
    channels-last eager step, and its warm-ups. Every region's variants fit dynamo's limit."""
    for label, case, block, x, y in pending(args, rows):
        with torch._dynamo.config.patch(recompile_limit=64):
            made = scope_steps(spec_for(case, block), x, y)
            seconds = time_variants(made["steps"], args.steps, args.repeats)
        row = timed_row(label, case, block, seconds, "channels_last")
        for name in SCOPE_VARIANTS[1:]:
            row[f"{name}_speedup"] = speedup_interval(seconds["channels_last"], seconds[name])
        row["warmups"] = made["warmups"]
        keep(rows, row, save)


def measure_supernet(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    save: Callable[[], None],
) -> None:
    """``--supernet``: every case not in ``rows``: the speed-up of compiled candidate blocks
    over the eager supernet step, and their warm-up."""
    label_of_blocks = "+".join(b for b in BLOCKS if b != "none")
    for label, case, block, x, y in pending(args, rows, blocks=(label_of_blocks,)):
        with torch._dynamo.config.patch(recompile_limit=64):
            made = supernet_steps(case, x, y)
            seconds = time_variants(made["steps"], args.steps, args.repeats)
        row = timed_row(label, case, block, seconds, "channels_last")
        row["blocks_speedup"] = speedup_interval(seconds["channels_last"], seconds["blocks"])
        row["warmup_s"] = made["warmup_s"]
        keep(rows, row, save)


def measure_bf16(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    save: Callable[[], None],
) -> None:
    """``--bf16``: every case x block not in ``rows``: the channels-last eager step under
    bfloat16 autocast against float32, and whether the CPU computes bfloat16 natively."""
    for label, case, block, x, y in pending(args, rows):
        base = build_model(spec_for(case, block), seed=0).train()
        base.to(memory_format=torch.channels_last)
        x_last = x.contiguous(memory_format=torch.channels_last)
        steps = {
            precision: step_function(copy.deepcopy(base), x_last, y, bf16=precision == "bf16")
            for precision in ("float32", "bf16")
        }
        seconds = time_variants(steps, args.steps, args.repeats)
        row = timed_row(label, case, block, seconds, "float32")
        row["bf16_speedup"] = speedup_interval(seconds["float32"], seconds["bf16"])
        row["native_bf16"] = cpu_has_native_bf16()
        keep(rows, row, save)


def ratio(value: tuple[float, float, float]) -> str:
    """A speed-up with its interval: ``1.23x [1.10, 1.31]``."""
    return f"{value[0]:.2f}x [{value[1]:.2f}, {value[2]:.2f}]"


#: The first columns of every table: what was timed.
CASE_COLUMNS = ["case", "block", "input", "threads"]


def case_cells(row: dict[str, Any]) -> list[str]:
    """A row's case, block, input (batch x channels x side²) and threads."""
    size = f"{row['batch']} x {row.get('channels', 3)} x {row.get('side', 32)}\u00b2"
    return [row["model"], row["block"], size, str(row.get("threads", 1))]


def render(rows: list[dict[str, Any]]) -> list[str]:
    """The table: images/s per variant, speed-ups over plain with intervals, warm-ups."""
    return markdown_table(
        [
            *CASE_COLUMNS, "plain img/s", "channels-last img/s", "compiled img/s",
            "channels-last / plain", "compiled / plain",
            "compile warm-up cold / warm (s)",
        ],
        "llllrrrrrr",
        [
            [
                *case_cells(r), f"{r['plain_images_per_s']:,.0f}",
                f"{r['channels_last_images_per_s']:,.0f}", f"{r['compiled_images_per_s']:,.0f}",
                ratio(r["channels_last_speedup"]), ratio(r["compiled_speedup"]),
                f"{r['warmup_cold_s']:.1f} / {r['warmup_warm_s']:.1f}",
            ]
            for r in rows
        ],
    )  # fmt: skip


def render_regional(rows: list[dict[str, Any]]) -> list[str]:
    """The ``--regional`` table: per-unit compilation against eager, in both layouts."""
    return markdown_table(
        [
            *CASE_COLUMNS, "plain img/s", "units compiled / plain",
            "channels-last / plain", "units compiled channels-last / channels-last",
            "compile warm-up cold / warm (s)",
        ],
        "llllrrrrr",
        [
            [
                *case_cells(r), f"{r['plain_images_per_s']:,.0f}",
                ratio(r["regional_speedup"]), ratio(r["channels_last_speedup"]),
                ratio(r["regional_channels_last_over_channels_last"]),
                f"{r['warmup_cold_s']:.1f} / {r['warmup_warm_s']:.1f}",
            ]
            for r in rows
        ],
    )  # fmt: skip


def render_scopes(rows: list[dict[str, Any]]) -> list[str]:
    """The ``--scopes`` table: each compile scope against channels-last eager."""
    return markdown_table(
        [
            *CASE_COLUMNS, "channels-last img/s", "units / eager",
            "stages / eager", "whole model / eager",
            "warm-up cold / warm (s): units, stages, whole",
        ],
        "llllrrrrr",
        [
            [
                *case_cells(r), f"{r['channels_last_images_per_s']:,.0f}",
                *(ratio(r[f"{name}_speedup"]) for name in SCOPE_VARIANTS[1:]),
                ", ".join(
                    f"{r['warmups'][name][0]:.1f} / {r['warmups'][name][1]:.1f}"
                    for name in SCOPE_VARIANTS[1:]
                ),
            ]
            for r in rows
        ],
    )  # fmt: skip


def render_supernet(rows: list[dict[str, Any]]) -> list[str]:
    """The ``--supernet`` table: compiled candidate blocks against the eager supernet step."""
    return markdown_table(
        [*CASE_COLUMNS, "eager img/s", "blocks compiled / eager", "warm-up cold (s)"],
        "llllrrr",
        [
            [
                *case_cells(r), f"{r['channels_last_images_per_s']:,.0f}",
                ratio(r["blocks_speedup"]), f"{r['warmup_s']:.1f}",
            ]
            for r in rows
        ],
    )  # fmt: skip


def render_bf16(rows: list[dict[str, Any]]) -> list[str]:
    """The ``--bf16`` table: bfloat16 autocast against float32, both channels-last eager."""
    return markdown_table(
        [*CASE_COLUMNS, "float32 img/s", "bf16 / float32", "native bf16"],
        "llllrrl",
        [
            [
                *case_cells(r), f"{r['float32_images_per_s']:,.0f}", ratio(r["bf16_speedup"]),
                "yes" if r["native_bf16"] else "no",
            ]
            for r in rows
        ],
    )  # fmt: skip


#: The tables of a results file beside ``rows``, each filled by its own flag.
EXTRA_TABLES = ("regional_rows", "scope_rows", "supernet_rows", "bf16_rows")


def load_runs(path: Path | None) -> dict[str, Any]:
    """The results JSON at ``path`` (its runs and rows), or an empty one."""
    if path is None or not path.is_file():
        return {"runs": [], "rows": [], **{table: [] for table in EXTRA_TABLES}}
    stored = json.loads(path.read_text())
    if "runs" not in stored:  # a file of one run, written before runs resumed
        stored = {"runs": [{k: stored[k] for k in ("command", "machine")}], "rows": stored["rows"]}
    for table in EXTRA_TABLES:
        stored.setdefault(table, [])
    return stored


def results_lines(stored: dict[str, Any]) -> list[str]:
    """The results file: every run's command, date and machine, then the table of all rows."""
    head = results_head(
        "Training-step speed: eager, channels-last, compiled",
        [
            line
            for run in stored["runs"]
            for line in provenance(
                run["command"], run.get("date", "-"), run["machine"],
                "other processes' load is noise in every time",
            )
        ],
    )  # fmt: skip
    return [
        *head,
        "Random images (10 classes), SGD with momentum; the input column gives batch x channels x "
        "side\u00b2; --steps steps per repeat (default 5), --repeats repeats (default 7), the "
        "variants interleaved. 95% intervals: percentile bootstrap over repeats.",
        "",
        *render(stored["rows"]),
        *(
            [
                "",
                "## Residual units compiled one by one (`training.compile`)",
                "",
                "`--regional`: each unit compiled in place (`nas.compiling.compile_regions`, "
                "dynamo reset and its recompile limit fitted as in training), against the eager "
                "step in the same layout; warm-ups of the contiguous one.",
                "",
                *render_regional(stored["regional_rows"]),
            ]
            if stored["regional_rows"]
            else []
        ),
        *(
            [
                "",
                "## What to compile: units, stages or the whole model (channels-last)",
                "",
                "`--scopes`: each residual unit, each stage (its units as one region) or the "
                "whole model compiled, all channels-last, against the channels-last eager step "
                "in the same process; dynamo's recompile limit raised so that no region falls "
                "back to eager.",
                "",
                *render_scopes(stored["scope_rows"]),
            ]
            if stored["scope_rows"]
            else []
        ),
        *(
            [
                "",
                "## A supernet's candidate blocks compiled (supernet training)",
                "",
                f"`--supernet`: a supernet with every block of {list(BLOCKS)} at every site "
                f"(SE r=16, ECA adaptive k), channels-last, each step on the next of "
                f"{SUPERNET_PATHS} paths sampled as supernet training samples them; eager "
                "against each candidate block compiled in place (what supernet training "
                "compiles under `training.compile`). Warm-up: the compiled supernet's first pass "
                "over the paths, less the eager one's, with a cold cache.",
                "",
                *render_supernet(stored["supernet_rows"]),
            ]
            if stored["supernet_rows"]
            else []
        ),
        *(
            [
                "",
                "## bfloat16 autocast against float32 (eager, channels-last)",
                "",
                "`--bf16`: the channels-last eager step with its forward under bfloat16 autocast "
                '(what `precision = "bf16-mixed"` runs) against float32, in the same process; '
                "native bf16: the CPU has AVX512-BF16 or AMX instructions.",
                "",
                *render_bf16(stored["bf16_rows"]),
            ]
            if stored["bf16_rows"]
            else []
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(CASES), default=None,
                        help="cases to time (default: resnet8 resnet20 resnet18)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--smoke", action="store_true", help="ResNet-8 none/se, tiny batches")
    parser.add_argument("--fresh", action="store_true", help="ignore the rows already stored")
    parser.add_argument("--regional", action="store_true", help="time per-unit compilation")
    parser.add_argument(
        "--scopes", action="store_true", help="units vs stages vs the whole model compiled"
    )
    parser.add_argument(
        "--supernet", action="store_true", help="a supernet's candidate blocks compiled"
    )
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast vs float32")
    parser.add_argument("--render", action="store_true", help="measure nothing: rewrite the .md")
    parser.add_argument("--out", default=str(RESULTS / "speed.md"), help="'-': print only")
    args = parser.parse_args(argv)
    names = args.models or ["resnet8", "resnet20", "resnet18"]
    args.cases, args.blocks = {name: CASES[name] for name in names}, BLOCKS
    if args.smoke:
        args.cases, args.blocks = SMOKE, ("none", "se")
        args.steps, args.repeats = 1, 3
    json_path = None if args.out == "-" else Path(args.out).with_suffix(".json")
    stored = load_runs(None if args.fresh else json_path)
    if not args.render:
        session = start_session(args.threads)
        command = command_line(__file__, argv)
        stored["runs"].append({"command": command, "machine": session.machine(), "date": utc_now()})

        def save() -> None:
            if json_path is not None:
                write_json(json_path, stored)

        with tempfile.TemporaryDirectory(prefix="nas-speed-inductor-") as cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # cold at the start of this run
            flags = {"scope_rows": args.scopes, "regional_rows": args.regional}
            flags.update(supernet_rows=args.supernet, bf16_rows=args.bf16)
            table = next((name for name, given in flags.items() if given), "rows")
            measure(args, stored[table], save)
        stored["runs"][-1]["machine"] = session.machine()
        save()
    lines = results_lines(stored)
    print("\n".join(lines))
    if args.out != "-":
        write_markdown(Path(args.out), lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
