"""What the cost model costs per trial, against a plain forward pass of the same model.

Builds a CIFAR backbone (ResNet-20 by default) with ``search_spaces.build.build_model``,
optionally with one attention block at every site, and prints a table: each measure of
``search_spaces.cost``, its wall time (median over repeats, in this process) and its ratios to
plain inference forward passes at batch 1 and at the latency/memory batch size.
Run: ``python benchmarks/cost.py [--block se]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from search_spaces.backbones import backbone_sites
from search_spaces.build import build_model
from search_spaces.cost import activation_memory, count_flops, count_params, model_cost
from search_spaces.spec import ArchSpec, BlockChoice


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls pay for lazy imports and allocator growth
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet20")
    parser.add_argument("--block", default="none", help="attention block put at every site")
    parser.add_argument("--batch-size", type=int, default=32, help="batch of latency/memory")
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sites = {site.name: BlockChoice(args.block) for site in backbone_sites(args.backbone)}
    model = build_model(ArchSpec(args.backbone, sites=sites), seed=0).eval()
    sample = (3, args.size, args.size)
    batch = args.batch_size
    one = torch.randn(1, *sample)
    many = torch.randn(batch, *sample)

    def forward(x: torch.Tensor) -> None:
        with torch.inference_mode():
            model(x)

    rows = [
        ("plain forward, batch 1", lambda: forward(one)),
        (f"plain forward, batch {batch}", lambda: forward(many)),
        ("count_params", lambda: count_params(model)),
        ("count_flops, batch 1", lambda: count_flops(model, (1, *sample))),
        (f"activation_memory, batch {batch}", lambda: activation_memory(model, (batch, *sample))),
        ("model_cost(latency=False)", lambda: model_cost(model, sample, batch_size=batch)),
        (
            "model_cost(latency=True)",
            lambda: model_cost(model, sample, batch_size=batch, latency=True),
        ),
    ]
    cost = model_cost(model, sample, batch_size=batch, latency=True)
    print(
        f"{args.backbone} with {args.block!r} at {len(sites)} sites, input {sample}, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )
    print("  " + ", ".join(f"{k}={v:.4g}" for k, v in cost.to_dict().items() if v is not None))
    timings = [(what, _median_ms(fn, args.repeats)) for what, fn in rows]
    forward_b1, forward_bn = timings[0][1], timings[1][1]
    print(f"\n{'what':<34} {'time ms':>10} {'x forward b1':>13} {f'x forward b{batch}':>14}")
    for what, ms in timings:
        print(f"{what:<34} {ms:>10.2f} {ms / forward_b1:>13.1f} {ms / forward_bn:>14.2f}")


if __name__ == "__main__":
    main()
