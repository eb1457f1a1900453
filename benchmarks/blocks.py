"""Cost of every registered attention block, and its speed against timm's version of it.

For each block (default parameters) and each input shape this prints one Markdown table row:
extra parameters, extra FLOPs of one inference forward pass (``search_spaces.cost.count_flops``:
a multiply-add is 2 FLOPs), and the CPU time of a training step: forward, ``(out * r).sum()``
with a fixed random ``r``, backward (the input requires grad, as inside a network).

Times are medians over rounds; in each round every module of a group runs once, in an order
that alternates from round to round, so load from other processes hits all of them alike.
A block's group holds the ``none`` block (the identity: the cost of the loss and its backward,
which every measurement contains) and, where timm has the same block, timm's module built with
the same hidden width. Ratios are medians of the per-round ratios.

    python benchmarks/blocks.py                      # full run: batch 32, three shapes
    python benchmarks/blocks.py --blocks se eca --shapes 256x14x14 --repeats 30
    python benchmarks/blocks.py --quick              # tiny smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

# Run as a script (``python benchmarks/blocks.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attn_blocks
from benchmarks._harness import command_line, cpu_model, markdown_row, markdown_rule
from search_spaces.cost import count_flops, count_params

DEFAULT_BATCH = 32
DEFAULT_SHAPES = ((64, 56, 56), (256, 14, 14), (512, 7, 7))
QUICK_BATCH = 4
QUICK_SHAPES = ((16, 8, 8), (32, 5, 5))
DEFAULT_REPEATS, DEFAULT_WARMUP = 15, 3
QUICK_REPEATS, QUICK_WARMUP = 2, 1
#: Rounds after which a slow group stops (its first round's time sets how many fit).
DEFAULT_MAX_SECONDS = 30.0
MIN_REPEATS = 3
#: ours / timm above this misses the speed target.
TIMM_TARGET = 1.10
SEED = 0

Shape = tuple[int, int, int]


# --- timm counterparts: the same computation at the same hidden width --------------------------


def _timm_se(block: nn.Module, channels: int) -> nn.Module:
    from timm.layers import SEModule

    return SEModule(channels, rd_channels=block.fc1.out_channels)


def _timm_eca(block: nn.Module, channels: int) -> nn.Module:
    from timm.layers import EcaModule

    # channels=None: timm would otherwise recompute k with its own clamp (k >= 3).
    return EcaModule(channels=None, kernel_size=block.conv.kernel_size[0])


def _timm_cbam(block: nn.Module, channels: int) -> nn.Module:
    from timm.layers.cbam import CbamModule

    return CbamModule(
        channels,
        rd_channels=block.fc1.out_features,
        spatial_kernel_size=block.spatial_conv.kernel_size[0],
        mlp_bias=True,
    )


def _timm_gc(block: nn.Module, channels: int) -> nn.Module:
    from timm.layers import GlobalContext

    return GlobalContext(
        channels,
        fuse_add=True,
        fuse_scale=False,
        init_last_zero=True,
        rd_channels=block.fc1.out_channels,
    )


def _timm_coord(block: nn.Module, channels: int) -> nn.Module:
    from timm.layers.coord_attn import CoordAttn

    # bias=True gives the gate convs their bias, as ours; timm then also biases the shared conv.
    return CoordAttn(channels, rd_channels=block.conv_shared.out_channels, bias=True)


def _timm_non_local(block: nn.Module, channels: int) -> nn.Module:
    from timm.layers import NonLocalAttn

    return NonLocalAttn(channels, rd_channels=block.theta.out_channels, use_scale=False)


TIMM_COUNTERPARTS: dict[str, Callable[[nn.Module, int], nn.Module]] = {
    "se": _timm_se,
    "eca": _timm_eca,
    "cbam": _timm_cbam,
    "gc": _timm_gc,
    "coord": _timm_coord,
    "non_local": _timm_non_local,
}


def _timm_available() -> bool:
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


# --- timing ------------------------------------------------------------------------------------


def _training_step(module: nn.Module, x: Tensor, weight: Tensor) -> float:
    """Milliseconds of forward + ``(out * weight).sum()`` + backward (gradients start unset)."""
    x.grad = None
    module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    (module(x) * weight).sum().backward()
    return (time.perf_counter() - start) * 1e3


def time_group(
    modules: Sequence[nn.Module],
    x: Tensor,
    weight: Tensor,
    *,
    repeats: int,
    warmup: int,
    max_seconds: float,
) -> list[list[float]]:
    """Per-module lists of training-step times (ms), measured in interleaved rounds.

    Round k runs the modules in order, reversed on odd k. One warm-up round is always run; its
    duration decides how many of the remaining warm-up and timed rounds fit in ``max_seconds``
    (at least ``MIN_REPEATS`` timed rounds, at most ``repeats``).
    """
    for module in modules:
        module.train()
    first_round = sum(_training_step(module, x, weight) for module in modules) / 1e3
    fitting = int(max_seconds / max(first_round, 1e-9))
    for _ in range(min(warmup - 1, max(fitting - repeats, 0))):
        for module in modules:
            _training_step(module, x, weight)
    rounds = min(repeats, max(MIN_REPEATS, fitting))
    samples: list[list[float]] = [[] for _ in modules]
    for k in range(rounds):
        order = range(len(modules)) if k % 2 == 0 else reversed(range(len(modules)))
        for i in order:
            samples[i].append(_training_step(modules[i], x, weight))
    return samples


def _median_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def _median_difference(minuend: Sequence[float], subtrahend: Sequence[float]) -> float:
    return statistics.median(a - b for a, b in zip(minuend, subtrahend, strict=True))


# --- the benchmark -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One table row: a block at one input shape."""

    block: str
    family: str
    shape: Shape
    params: int
    mflops: float
    ms: float
    vs_none: float
    vs_conv_percent: float
    rounds: int
    timm_ms: float | None = None
    vs_timm: float | None = None


def _seeded(build: Callable[[], nn.Module]) -> nn.Module:
    torch.manual_seed(SEED)
    return build()


def _inputs(batch: int, shape: Shape) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(batch, *shape, generator=generator).requires_grad_()
    weight = torch.randn(batch, *shape, generator=generator)
    return x, weight


def conv_extra_ms(batch: int, shape: Shape, args: argparse.Namespace) -> float:
    """Median extra time of a ``C -> C`` 3x3 conv (no bias) over the identity, per round."""
    x, weight = _inputs(batch, shape)
    conv = _seeded(lambda: nn.Conv2d(shape[0], shape[0], 3, padding=1, bias=False))
    identity = attn_blocks.create("none", shape[0])
    conv_ms, none_ms = time_group(
        [conv, identity],
        x,
        weight,
        repeats=args.repeats,
        warmup=args.warmup,
        max_seconds=args.max_seconds,
    )
    return _median_difference(conv_ms, none_ms)


def measure(name: str, batch: int, shape: Shape, conv_ms: float, args: argparse.Namespace) -> Row:
    channels = shape[0]
    block = _seeded(lambda: attn_blocks.create(name, channels))
    modules = [block, attn_blocks.create("none", channels)]
    if name in TIMM_COUNTERPARTS and args.timm:
        modules.append(_seeded(lambda: TIMM_COUNTERPARTS[name](block, channels)))
    x, weight = _inputs(batch, shape)
    samples = time_group(
        modules,
        x,
        weight,
        repeats=args.repeats,
        warmup=args.warmup,
        max_seconds=args.max_seconds,
    )
    ours, identity = samples[0], samples[1]
    timm_ms = statistics.median(samples[2]) if len(samples) > 2 else None
    return Row(
        block=name,
        family=attn_blocks.info(name).family,
        shape=shape,
        params=count_params(block),
        mflops=count_flops(block, (batch, *shape)) / 1e6,
        ms=statistics.median(ours),
        vs_none=_median_ratio(ours, identity),
        vs_conv_percent=100.0 * _median_difference(ours, identity) / conv_ms,
        rounds=len(ours),
        timm_ms=timm_ms,
        vs_timm=_median_ratio(ours, samples[2]) if timm_ms is not None else None,
    )


# --- output ------------------------------------------------------------------------------------


def header(argv: Sequence[str], args: argparse.Namespace) -> list[str]:
    timm_note = "" if args.timm else " (timm not installed: no comparison)"
    return [
        f"# Attention blocks on CPU: torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {cpu_model()}{timm_note}",
        f"Command: `{command_line(__file__, argv, python='python')}`",
        "",
        f"Batch {args.batch}, default block parameters, seed {SEED}. Params and MFLOPs are what "
        "the block adds (one inference forward of the whole batch; a multiply-add is 2 FLOPs). "
        "ms: median training step (forward, sum of output times a fixed random tensor, "
        "backward). x none: ratio to the `none` block (identity) in the same rounds, i.e. to "
        "the loss-and-backward cost every block pays anyway. % conv3x3: the block's extra time "
        "over `none` as a percentage of a C -> C 3x3 conv's extra time at the same shape. "
        f"ours/timm: timm's module at the same hidden width, interleaved (target <= "
        f"{TIMM_TARGET:.2f}). n: timed rounds.",
        "",
    ]


def _format_shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


#: The table's columns; rows follow as the blocks are measured.
COLUMNS = ["block", "family", "shape", "extra params", "extra MFLOPs", "fwd+bwd ms", "x none"]
COLUMNS += ["% conv3x3", "timm ms", "ours/timm", "n"]
TABLE_HEAD = [markdown_row(COLUMNS), markdown_rule("lllrrrrrrrr", compact=True)]


def table_row(r: Row) -> str:
    timm_ms = f"{r.timm_ms:.2f}" if r.timm_ms is not None else "-"
    if r.vs_timm is None:
        vs_timm = "-"
    else:
        vs_timm = f"{r.vs_timm:.2f}" + (" (!)" if r.vs_timm > TIMM_TARGET else "")
    sizes = [_format_shape(r.shape), f"{r.params:,}", f"{r.mflops:,.1f}"]
    times = [f"{r.ms:.2f}", f"{r.vs_none:.2f}", f"{r.vs_conv_percent:.1f}", timm_ms, vs_timm]
    return markdown_row([r.block, r.family, *sizes, *times, r.rounds])


def summary(rows: Sequence[Row]) -> list[str]:
    compared = [r for r in rows if r.vs_timm is not None]
    if not compared:
        return []
    misses = [f"{r.block} at {_format_shape(r.shape)}" for r in compared if r.vs_timm > TIMM_TARGET]
    if not misses:
        return ["", f"All {len(compared)} timm comparisons within ours/timm <= {TIMM_TARGET:.2f}."]
    return ["", f"Slower than timm by more than {TIMM_TARGET:.2f}x: {', '.join(misses)}."]


# --- command line ------------------------------------------------------------------------------


def _parse_shape(text: str) -> Shape:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"shape must be CxHxW with positive ints, got {text!r}")
    channels, height, width = (int(p) for p in parts)
    return channels, height, width


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--blocks", nargs="+", help="subset of blocks (default: all registered)")
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=_parse_shape,
        help="CxHxW shapes (default: 64x56x56 256x14x14 512x7x7; --quick: 16x8x8 32x5x5)",
    )
    parser.add_argument("--batch", type=int, help=f"batch size (default {DEFAULT_BATCH})")
    parser.add_argument("--repeats", type=int, help=f"timed rounds (default {DEFAULT_REPEATS})")
    parser.add_argument("--warmup", type=int, help=f"warm-up rounds (default {DEFAULT_WARMUP})")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="time budget of one group; slow groups run fewer rounds (at least "
        f"{MIN_REPEATS}; default {DEFAULT_MAX_SECONDS:g})",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and rounds: smoke test")
    args = parser.parse_args(argv)

    known = attn_blocks.available()
    unknown = [b for b in args.blocks or () if b not in known]
    if unknown:
        parser.error(f"--blocks: unknown block(s) {unknown}; available: {', '.join(known)}")
    args.blocks = [b for b in known if b in args.blocks] if args.blocks else known
    args.shapes = args.shapes or list(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    defaults = (
        (QUICK_BATCH, QUICK_REPEATS, QUICK_WARMUP)
        if args.quick
        else (DEFAULT_BATCH, DEFAULT_REPEATS, DEFAULT_WARMUP)
    )
    for field, default, minimum in zip(
        ("batch", "repeats", "warmup"), defaults, (2, 1, 1), strict=True
    ):
        value = getattr(args, field)
        if value is None:
            setattr(args, field, default)
        elif value < minimum:
            parser.error(f"--{field} must be >= {minimum}, got {value}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    args.timm = _timm_available()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print("\n".join([*header(argv, args), *TABLE_HEAD]), flush=True)
    rows = []
    for shape in args.shapes:
        conv_ms = conv_extra_ms(args.batch, shape, args)
        for name in args.blocks:
            rows.append(measure(name, args.batch, shape, conv_ms, args))
            print(table_row(rows[-1]), flush=True)
    print("\n".join(summary(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
