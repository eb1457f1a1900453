"""Compiled training (training.compile): the decision, the regions compiled, the shared cache."""

import math
import os
import re
import sys
from pathlib import Path

import optuna
import pytest
import torch

from nas import compiling
from nas.compiling import (
    CACHE_ENV,
    COLD_WARMUP_S,
    PAYOFF,
    VARIANTS_PER_REGION,
    CompileDecision,
    compile_regions,
    compiled_regions_scope,
    compiler_missing,
    decide,
    expected_training_s,
    resolve_scope,
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


@pytest.mark.parametrize(("device_type", "scope"), [("cuda", "units"), ("cpu", "model")])
def test_auto_compiles_only_where_training_outlasts_the_warm_up_tenfold(
    has_compiler, device_type, scope
):
    threshold = PAYOFF * COLD_WARMUP_S[device_type]
    below = decide("auto", threshold - 1, device_type)
    at = decide("auto", threshold, device_type)
    assert below.scope is None and not below.compile
    assert at.scope == scope and at.compile
    words = {"units": "each residual unit", "model": "the whole model"}[scope]
    warmup = COLD_WARMUP_S[device_type]
    assert below.why == (
        f"{words}: expected training ~{threshold - 1:.0f} s per trial, below 10 x the "
        f"~{warmup:.0f} s a cold compile takes"
    )
    assert at.why == (
        f"{words}: expected training ~{threshold:.0f} s per trial, at least 10 x the "
        f"~{warmup:.0f} s a cold compile takes"
    )


def test_the_auto_scope_is_the_whole_model_on_the_cpu_and_units_elsewhere():
    assert resolve_scope("auto", "cpu") == "model"
    assert resolve_scope("auto", "cuda") == "units"
    assert resolve_scope("auto", "mps") == "units"
    assert resolve_scope("units", "cpu") == "units"  # as written
    assert resolve_scope("model", "cuda") == "model"


def test_auto_compiles_no_scope_on_the_cpu_that_was_not_measured_faster(has_compiler):
    decision = decide("auto", 1e9, "cpu", "units")
    assert decision == CompileDecision(
        None,
        "each residual unit compiled is not measured faster than eager on the cpu "
        "(benchmarks/results/speed.md); training.compile = true forces it",
    )
    assert decide(True, 0.0, "cpu", "units") == CompileDecision(
        "units", "training.compile = true, each residual unit"
    )  # forced, it compiles
    assert decide(True, 0.0, "cpu") == CompileDecision(
        "model", "training.compile = true, the whole model"
    )
    assert decide(False, 1e9, "cpu") == CompileDecision(None, "training.compile = false")
    assert decide("auto", 1e9, "cuda", "model").scope == "model"  # a GPU: both scopes


def test_without_a_compiler_training_runs_eager_and_says_why(monkeypatch):
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)
    assert compiler_missing("cpu") == "no C++ compiler on PATH (install g++ or clang)"
    decision = decide(True, 1e9, "cpu")
    assert not decision.compile and decision.scope is None
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


def test_the_whole_model_is_compiled_in_place_as_one_region():
    model = build_model(_spec(), seed=0)
    keys = list(model.state_dict())
    assert compile_regions(model, [""]) == [""]
    compiled = [name for name, m in model.named_modules() if m._compiled_call_impl is not None]
    assert compiled == [""]  # the model itself, no unit on its own
    assert list(model.state_dict()) == keys


def test_a_compiled_run_may_compile_every_variant_of_its_regions_then_the_limit_is_back():
    import torch._dynamo

    default = torch._dynamo.config.recompile_limit
    torch._dynamo.reset()
    assert _variants_compiled(default + 4) == default  # past the limit: eager
    with compiled_regions_scope(n_regions=3):
        # the earlier variants were dropped; 3 regions allow 3 x VARIANTS_PER_REGION
        assert torch._dynamo.config.recompile_limit == 3 * VARIANTS_PER_REGION > default
        assert _variants_compiled(default + 4) == default + 4
    assert torch._dynamo.config.recompile_limit == default


def test_a_region_the_compiler_fails_on_runs_eager_and_is_said_once(monkeypatch, caplog):
    import torch._inductor.compile_fx

    def fail(*args, **kwargs):
        raise RuntimeError("no kernel for this op")

    monkeypatch.setattr(torch._inductor.compile_fx, "compile_fx", fail)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    x = torch.randn(2, 4)
    expected = model(x)
    compile_regions(model, [""])
    with pytest.raises(torch._dynamo.exc.BackendCompilerFailed):  # outside a compiled run
        model(x)
    with compiled_regions_scope(n_regions=1), caplog.at_level("WARNING"):
        outputs = [model(x) for _ in range(3)]
    for out in outputs:
        torch.testing.assert_close(out, expected)
    said = [r for r in caplog.records if "no kernel for this op" in r.getMessage()]
    assert len(said) == 1


def test_the_run_scope_fits_dynamo_to_a_module_with_compiled_regions():
    import torch._dynamo

    from nas.training import ClassifierModule, RunScope

    default = torch._dynamo.config.recompile_limit
    module = ClassifierModule(_spec(), config={"epochs": 1})
    assert module.compiled_paths() == []  # compile_scope None: nothing compiled
    module.compile_scope = "model"
    assert module.compiled_paths() == [""]
    module.compile_scope = "units"
    paths = module.compiled_paths()
    assert paths == [site.path for site in backbone_sites("resnet8", width=4)]
    scope = RunScope(deterministic=True, device_type="cpu")
    scope.setup(None, module, "fit")
    assert torch._dynamo.config.recompile_limit == max(default, VARIANTS_PER_REGION * len(paths))
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


def _train(spec: ArchSpec, seed: int, scope: str | None):
    from nas.config import DataConfig, TrainingConfig
    from nas.data import build_datamodule
    from nas.training import ClassifierModule, build_trainer

    cfg = TrainingConfig(epochs=1, lr=0.05, compile=scope is not None)
    data = DataConfig(name="digits", per_class=8, val_per_class=4, batch_size=16)
    module = ClassifierModule(spec, config=cfg, seed=seed)
    module.compile_scope = scope
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
    eager = _train(_spec(), seed=0, scope=None)
    compiled = _train(_spec(), seed=0, scope="units")
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
    _train(_spec(), seed=1, scope="units")
    assert _fx_cache()[0] == misses and _fx_cache()[1] > hits
    # One new unit type (ECA in stage 2): only it is compiled.
    torch._dynamo.reset()
    before = _fx_cache()
    _train(_spec(stage2="eca"), seed=0, scope="units")
    assert 0 < _fx_cache()[0] - before[0] < misses


@pytest.mark.slow  # compiles a whole ResNet-8 (about a minute with an empty cache)
def test_a_long_cpu_trial_compiles_its_whole_model_and_trains_as_eager_does(
    tiny_config, monkeypatch, capsys
):
    if compiler_missing("cpu"):
        pytest.skip(compiler_missing("cpu"))
    from nas import trial_schema as schema
    from nas.config import StudyConfig
    from nas.study import load_or_create_study
    from nas.worker import run_search

    def search(name: str, compile: bool | str) -> optuna.trial.FrozenTrial:
        data = tiny_config(study={"n_trials": 1, "name": name}, training={"compile": compile})
        cfg = StudyConfig.from_dict(data)
        run_search(cfg, progress=False)
        return load_or_create_study(cfg).trials[0]

    monkeypatch.setattr(compiling, "PAYOFF", 0.0)  # every trial outlasts its warm-up
    compiled = search("whole", "auto")
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("compile:")]
    assert len(said) == 1 and re.fullmatch(
        r"compile: on \(the whole model: expected training ~\d+ s per trial, at least 0 x the "
        r"~90 s a cold compile takes\)",
        said[0],
    )
    assert schema.TRAINED_WITH.get(compiled)["compile_scope"] == "model"
    eager = search("eager", False)
    assert schema.TRAINED_WITH.get(eager)["compile_scope"] is None
    assert compiled.params == eager.params  # the same seed samples the same architecture
    assert compiled.values[1] == eager.values[1]  # FLOPs
    assert compiled.values[0] == pytest.approx(eager.values[0], abs=1 / 40)  # one image of 40
    history = schema.VAL_HISTORY.get
    assert [h["val_loss"] for h in history(compiled)] == pytest.approx(
        [h["val_loss"] for h in history(eager)], rel=1e-3
    )


def test_a_search_says_its_compile_decision_once(tiny_config, capsys):
    from nas.config import StudyConfig
    from nas.worker import run_search

    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 3}))
    run_search(cfg, progress=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("compile:")]
    assert len(lines) == 1  # the same decision for every trial: said once
    # "auto" would compile the whole model on the CPU; these trials are too short to pay for it
    assert re.fullmatch(
        r"compile: off \(the whole model: expected training ~\d+ s per trial, below 10 x the "
        r"~90 s a cold compile takes\)",
        lines[0],
    )
    assert not (Path(cfg.study.runs_dir) / "tiny" / "compile-cache").exists()  # nothing compiled
    from nas import trial_schema as schema
    from nas.study import load_or_create_study

    # Each trial says what "auto" resolved to: a CIFAR ResNet trains channels-last on the CPU.
    trials = load_or_create_study(cfg).trials
    assert [schema.TRAINED_WITH.get(t) for t in trials] == [
        {"channels_last": True, "compiled": False, "compile_scope": None, "precision": "32-true"}
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


def _supernet(tiny_config, compile: bool | str):
    from nas import supernet as engine
    from nas.config import StudyConfig
    from nas.objective import load_data

    search = {"strategy": "supernet", "supernet_epochs": 1}
    cfg = StudyConfig.from_dict(tiny_config(search=search, training={"compile": compile}))
    dm = load_data(cfg)
    return cfg, dm, engine.SupernetModule(cfg, dm.in_channels, dm.num_classes)


def test_a_supernet_compiles_each_candidate_block_where_told_and_says_so(
    tiny_config, has_compiler, capsys, monkeypatch, tmp_path
):
    from nas.supernet import supernet_compile
    from search_spaces.supernet import MixedAttention

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))  # restored after the test
    cfg, dm, module = _supernet(tiny_config, True)
    assert module.compiled_paths() == []  # nothing until decided
    forced = supernet_compile(cfg, module, dm, "cpu")
    assert forced == CompileDecision("blocks", "training.compile = true, each candidate block")
    module.compile_scope = forced.scope
    candidates = [
        block
        for mixed in module.model.modules()
        if isinstance(mixed, MixedAttention)
        for block in mixed.candidates.values()
    ]
    paths = module.compiled_paths()
    assert len(candidates) == 3 * 3  # ResNet-8: 3 sites x se, eca, simam
    assert [module.model.get_submodule(path) for path in paths] == candidates
    assert os.environ[CACHE_ENV] == str(Path(cfg.study.runs_dir).resolve() / "tiny/compile-cache")

    cfg, dm, module = _supernet(tiny_config, "auto")
    assert supernet_compile(cfg, module, dm, "cpu") == CompileDecision(
        None,
        "each candidate block compiled is not measured faster than eager on the cpu "
        "(benchmarks/results/speed.md); training.compile = true forces it",
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("compile:")]
    assert lines == [
        "compile: on (supernet: training.compile = true, each candidate block)",
        "compile: off (supernet: each candidate block compiled is not measured faster than eager "
        "on the cpu (benchmarks/results/speed.md); training.compile = true forces it)",
    ]


@pytest.mark.slow  # compiles three block types at two shapes (a minute with an empty cache)
def test_a_supernet_with_compiled_candidates_trains_as_the_eager_one(
    tiny_config, tmp_path, monkeypatch
):
    if compiler_missing("cpu"):
        pytest.skip(compiler_missing("cpu"))
    from nas.supernet import train_supernet

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    trained, graphs = {}, {}
    for compile in (False, True):
        cfg, dm, _ = _supernet(tiny_config, compile)
        folder = tmp_path / str(compile)
        before = sum(_fx_cache())
        trained[compile] = train_supernet(cfg, dm, progress=False, folder=folder)
        graphs[compile] = sum(_fx_cache()) - before  # inductor graphs compiled or cache-loaded
    assert trained[False].compiled_paths() == [] and trained[True].compiled_paths()
    assert graphs[False] == 0 and graphs[True] > 0
    eager, compiled = (trained[c].model.state_dict() for c in (False, True))
    assert eager.keys() == compiled.keys()
    for name, tensor in eager.items():
        torch.testing.assert_close(compiled[name], tensor, atol=1e-4, rtol=1e-3)
