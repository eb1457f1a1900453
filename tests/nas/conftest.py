"""Tiny study configs: real digits data, cut to a few images per class, and a 4-wide ResNet-8."""

import copy

import pytest

TINY = {
    "study": {"name": "tiny", "sampler": "random", "seed": 0, "n_trials": 4, "population_size": 2},
    "data": {"name": "digits", "per_class": 6, "val_per_class": 4, "batch_size": 32},
    "backbone": {"name": "resnet8", "args": {"width": 4}},
    "space": {
        "blocks": ["none", "se", "eca", "simam"],
        "reductions": [2],
        "eca_kernels": [3],
        "granularity": "per_stage",
    },
    "training": {"epochs": 2, "lr": 0.05},
    "pruning": {"pruner": "none"},
    "objectives": {"maximize": "val_acc", "minimize": ["flops"]},
}


@pytest.fixture
def tiny_config(tmp_path):
    """A function returning the tiny config dict with overrides, stored under tmp_path."""

    def make(**sections):
        data = copy.deepcopy(TINY)
        data["study"]["runs_dir"] = str(tmp_path / "runs")
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return data

    return make
