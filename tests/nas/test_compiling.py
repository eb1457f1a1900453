"""Compiled training (training.compile): the decision, the regions compiled, the shared cache."""

import math
import os
import sys
from pathlib import Path

import pytest
import torch

from nas import compiling
from nas.compiling import (
    CACHE_ENV,
    COLD_WARMUP_S,
    PAYOFF,
    VARIANTS_PER_UNIT,
    compile_regions,
    compiled_units_scope,
    compiler_missing,
    decide,
    expected_training_s,
    use_compile_cache,
)
from search_spaces.backbones import backbone_sites
from search_spaces.build import build_model
from search_spaces.spec import ArchSpec, BlockChoice


@pytest.fixture
def has_compiler(monkeypatch):
    monkeypatch.setattr(compiling, "compiler_missing", lambda device_type: None)


def test_expected_training_is_three_forward_passes_of_every_sample_at_the_device_rate():
    # 1 MFLOP forward x 3 x 1,000 samples x 10 epochs = 3e10 FLOPs at 5e10 FLOP/s on a CPU
    assert expected_training_s(1e6, 1000, 10, "cpu") == pytest.approx(0.6)
    assert expected_training_s(1e6, 1000, 10, "cuda") == pytest.approx(6e-3)


def test_auto_compiles_only_where_training_outlasts_the_warm_up_tenfold(has_compiler):
    threshold = PAYOFF * COLD_WARMUP_S["cuda"]
    below, at = decide("auto", threshold - 1, "cuda"), decide("auto", threshold, "cuda")
    assert not below.compile and at.compile
    assert (
        below.why == "expected training ~599 s per trial, below 10 x the ~60 s a cold compile takes"
    )
    assert (
        at.why == "expected training ~600 s per trial, at least 10 x the ~60 s a cold compile takes"
    )


def test_auto_never_compiles_on_the_cpu_where_compiled_units_measured_slower(has_compiler):
    decision = decide("auto", 1e9, "cpu")
    assert decision == compiling.CompileDecision(
        False,
        "compiled units train slower than eager on the cpu (benchmarks/results/speed.md); "
        "training.compile = true forces them",
    )
    assert decide(True, 0.0, "cpu").compile  # forced, it compiles
    assert decide(True, 0.0, "cpu") == compiling.CompileDecision(True, "training.compile = true")
    assert decide(False, 1e9, "cpu") == compiling.CompileDecision(False, "training.compile = false")


def test_without_a_compiler_training_runs_eager_and_says_why(monkeypatch):
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)
    assert compiler_missing("cpu") == "no C++ compiler on PATH (install g++ or clang)"
    decision = decide(True, 1e9, "cpu")
    assert not decision.compile
    assert decision.why == (
        "no working compiler (no C++ compiler on PATH (install g++ or clang)); training runs eager"
    )
    monkeypatch.setattr(compiling.importlib.util, "find_spec", lambda name: None)
    assert compiler_missing("cuda") == "Triton is not installed (pip install triton)"
    monkeypatch.setattr(sys, "platform", "win32")
    assert compiler_missing("cpu") == "torch.compile's inductor does not run on Windows"


def _spec(stage2: str = "none") -> ArchSpec:
    sites = {"stage1.0": BlockChoice("se", {"reduction": 4}), "stage2.0": BlockChoice(stage2)}
    return ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=10, sites=sites)


def test_each_residual_unit_is_compiled_in_place_and_nothing_else():
    model = build_model(_spec(), seed=0)
    keys = list(model.state_dict())
    paths = [site.path for site in backbone_sites("resnet8", width=4)]
    assert compile_regions(model, paths) == paths
    compiled = {name for name, m in model.named_modules() if m._compiled_call_impl is not None}
    assert compiled == set(paths)
    assert list(model.state_dict()) == keys  # weights keep their names: checkpoints load as before


def _variants_compiled(shapes: int) -> int:
    """Call one compiled function (dynamo only, no code generation) with ``shapes`` input
    shapes; how many of the calls dynamo compiled (the rest ran eager past the limit)."""
    from torch._dynamo.utils import counters

    fn = torch.compile(lambda x: x.sin() + 1, backend="eager", dynamic=False)
    before = counters["stats"]["unique_graphs"]
    for n in range(1, shapes + 1):
        fn(torch.ones(n))
    return counters["stats"]["unique_graphs"] - before


def test_a_compiled_run_may_compile_every_variant_of_its_units_then_the_limit_is_back():
    import torch._dynamo

    default = torch._dynamo.config.recompile_limit
    torch._dynamo.reset()
    assert _variants_compiled(default + 4) == default  # past the limit: eager
    with compiled_units_scope(n_units=3):
        # the earlier variants were dropped; 3 units allow 3 x VARIANTS_PER_UNIT
        assert torch._dynamo.config.recompile_limit == 3 * VARIANTS_PER_UNIT > default
        assert _variants_compiled(default + 4) == default + 4
    assert torch._dynamo.config.recompile_limit == default


def test_the_run_scope_fits_dynamo_to_a_module_with_compiled_units():
    import torch._dynamo

    from nas.training import ClassifierModule, RunScope

    default = torch._dynamo.config.recompile_limit
    module = ClassifierModule(_spec(), config={"epochs": 1})
    assert module.compiled_unit_paths() == []  # compile_units off: nothing compiled
    module.compile_units = True
    paths = module.compiled_unit_paths()
    assert paths == [site.path for site in backbone_sites("resnet8", width=4)]
    scope = RunScope(deterministic=True, device_type="cpu")
    scope.setup(None, module, "fit")
    assert torch._dynamo.config.recompile_limit == max(default, VARIANTS_PER_UNIT * len(paths))
    scope.teardown(None, module, "fit")
    assert torch._dynamo.config.recompile_limit == default


def test_the_cache_folder_is_made_and_used(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    folder = use_compile_cache(tmp_path / "cache" / "inductor")
    assert folder.is_dir() and os.environ[CACHE_ENV] == str(folder)


def test_a_cache_folder_that_cannot_be_written_is_refused_with_its_path(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(compiling.tempfile, "NamedTemporaryFile", refuse)  # tests run as root
    with pytest.raises(ValueError) as caught:
        use_compile_cache(tmp_path / "ro")
    assert str(caught.value) == (
        f"training.compile_cache: {tmp_path / 'ro'} is not a writable folder (Permission "
        "denied); choose another folder, or set training.compile = false"
    )


def _train(spec: ArchSpec, seed: int, compiled: bool):
    from nas.config import DataConfig, TrainingConfig
    from nas.data import build_datamodule
    from nas.training import ClassifierModule, build_trainer

    cfg = TrainingConfig(epochs=1, lr=0.05, compile=compiled)
    data = DataConfig(name="digits", per_class=8, val_per_class=4, batch_size=16)
    module = ClassifierModule(spec, config=cfg, seed=seed)
    module.compile_units = compiled
    build_trainer(cfg, seed=seed).fit(module, datamodule=build_datamodule(data, seed=0))
    return module


def _fx_cache():
    from torch._dynamo.utils import counters

    return counters["inductor"]["fxgraph_cache_miss"], counters["inductor"]["fxgraph_cache_hit"]


@pytest.mark.slow  # compiles three unit types (a minute or two with an empty cache)
def test_compiled_training_matches_eager_and_reuses_every_unit_it_compiled(tmp_path, monkeypatch):
    if compiler_missing("cpu"):
        pytest.skip(compiler_missing("cpu"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    torch._dynamo.reset()
    eager = _train(_spec(), seed=0, compiled=False)
    compiled = _train(_spec(), seed=0, compiled=True)
    misses, hits = _fx_cache()
    assert misses > 0  # an empty cache: its units compiled
    assert math.isclose(
        eager.val_history[-1]["val_loss"], compiled.val_history[-1]["val_loss"], rel_tol=1e-3
    )
    for name, tensor in eager.model.state_dict().items():
        torch.testing.assert_close(compiled.model.state_dict()[name], tensor, atol=1e-4, rtol=1e-3)

    # The same units with other weights (a confirm repeat, another worker), as a new process
    # sees them: nothing compiled again, every unit read from the cache.
    torch._dynamo.reset()
    _train(_spec(), seed=1, compiled=True)
    assert _fx_cache()[0] == misses and _fx_cache()[1] > hits
    # One new unit type (ECA in stage 2): only it is compiled.
    torch._dynamo.reset()
    before = _fx_cache()
    _train(_spec(stage2="eca"), seed=0, compiled=True)
    assert 0 < _fx_cache()[0] - before[0] < misses


def test_a_search_says_its_compile_decision_once(tiny_config, capsys):
    from nas.config import StudyConfig
    from nas.worker import run_search

    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 3}))
    run_search(cfg, progress=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("compile:")]
    assert len(lines) == 1  # the same decision for every trial: said once
    assert lines[0] == (
        "compile: off (compiled units train slower than eager on the cpu "
        "(benchmarks/results/speed.md); training.compile = true forces them)"
    )
    assert not (Path(cfg.study.runs_dir) / "tiny" / "compile-cache").exists()  # nothing compiled
    from nas import trial_schema as schema
    from nas.study import load_or_create_study

    # Each trial says what "auto" resolved to: a CIFAR ResNet trains channels-last on the CPU.
    trials = load_or_create_study(cfg).trials
    assert [schema.TRAINED_WITH.get(t) for t in trials] == [
        {"channels_last": True, "compiled": False, "precision": "32-true"}
    ] * 3


def test_a_confirm_study_compiles_into_its_searched_studys_cache(tiny_config):
    from nas.compiling import compile_cache_dir
    from nas.config import StudyConfig
    from nas.confirm import confirm_config

    cfg = StudyConfig.from_dict(tiny_config())
    confirm = confirm_config(cfg, cfg.study.storage_url(), 4, "tiny-confirm")
    expected = Path(cfg.study.runs_dir) / "tiny" / "compile-cache"
    assert compile_cache_dir(confirm, searched="tiny") == compile_cache_dir(cfg) == expected
    given = StudyConfig.from_dict(tiny_config(training={"compile_cache": "/shared/cache"}))
    assert compile_cache_dir(given, searched="tiny") == Path("/shared/cache")


def test_a_search_with_an_unwritable_compile_cache_stores_nothing(
    tiny_config, tmp_path, monkeypatch
):
    from nas.config import StudyConfig
    from nas.worker import run_search

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(compiling.tempfile, "NamedTemporaryFile", refuse)  # tests run as root
    cfg = StudyConfig.from_dict(tiny_config(training={"compile_cache": str(tmp_path / "ro")}))
    with pytest.raises(ValueError, match=f"training.compile_cache: {tmp_path / 'ro'} is not a"):
        run_search(cfg, progress=False)
    assert not (Path(cfg.study.runs_dir) / "tiny").exists()  # no storage, no study
