"""Synthetic tables for tests: made-up curves over a 9-architecture space, no training."""

import optuna

from nas.config import StudyConfig
from nas.tabular import FORMAT, VERSION, Table, table_from_data
from search_spaces.space import architecture_params, suggest_arch

SPACE = {
    "blocks": ["none", "se", "eca"],
    "reductions": [2],
    "eca_kernels": [3],
    "granularity": "per_stage",
    "stages": [2, 3],
}
CONFIG = {
    "study": {"name": "synthetic"},
    "data": {"name": "digits"},
    "backbone": {"name": "resnet8", "args": {"width": 4}},
    "space": SPACE,
    "training": {"epochs": 4},
    "objectives": {"maximize": "val_acc", "minimize": ["params"]},
}


def synthetic_table_data(seeds: int = 3, drop: int = 0) -> dict:
    """Table file data of the 9-architecture space: architecture i, seed r ends at
    0.5 + 0.03 i + 0.01 r on a linear curve over 4 epochs; its parameters grow with i except
    for architecture 4, as cheap as the cheapest. The last ``drop`` architectures are left out."""
    cfg = StudyConfig.from_dict(CONFIG)
    archs = []
    for i, params in enumerate(architecture_params(cfg.space)):
        spec = suggest_arch(optuna.trial.FixedTrial(params), cfg.space, in_channels=1)
        runs = []
        for r in range(seeds):
            final = 0.5 + 0.03 * i + 0.01 * r
            runs.append(
                {
                    "replicate": r,
                    "seed": 100 + r,
                    "val_acc": [round(final * (e + 1) / 4, 6) for e in range(4)],
                    "val_loss": [1.0] * 4,
                    "test_acc": final,
                    "train_seconds": 4.0,
                    "cpu_seconds": 8.0,
                }
            )
        archs.append(
            {
                "index": i,
                "digest": spec.digest(),
                "summary": spec.summary(),
                "params": params,
                "cost": {"params": 1000.0 + (10 * i if i != 4 else 0), "flops": 1.0},
                "runs": runs,
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": "synthetic",
        "config": cfg.to_dict(),
        "seeds": [100 + r for r in range(seeds)],
        "space_size": 9,
        "in_channels": 1,
        "num_classes": 10,
        "val_size": 100,
        "architectures": archs[: len(archs) - drop],
    }


def synthetic_table(seeds: int = 3, drop: int = 0) -> Table:
    return table_from_data(synthetic_table_data(seeds, drop))
