"""Study configs: shipped files load, errors name the field, and to_dict() stays as stored."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas.config import (
    ConfigError,
    DataConfig,
    StudyConfig,
    StudySection,
    TrainingConfig,
    asha_rungs,
)

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ROOT / "studies"
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = StudyConfig.load(path)
    assert cfg.space.size() > 1
    assert cfg.objectives.directions[0] == "maximize"


def test_round_trip_through_plain_data(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config())
    assert StudyConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


# -- to_dict() is what stored studies are compared with: pinned to the output of commit 4ebfbd7 --

#: Every setting away from its default, with ints where floats are usual (a stored 1 is not 1.0).
EVERY_SETTING = {
    "study": {
        "name": "exotic",
        "storage": "sqlite:///x.db",
        "runs_dir": "runs",
        "sampler": "tpe",
        "seed": 7,
        "n_trials": 3,
        "timeout_s": 60,
        "population_size": 2,
        "heartbeat_interval_s": 10,
        "grace_period_s": 30,
        "max_retry": 0,
    },
    "data": {
        "name": "imagefolder",
        "root": "data/pets.tar.gz",
        "download": False,
        "val_fraction": 0.25,
        "split_seed": 3,
        "per_class": 10,
        "val_per_class": 5,
        "test_per_class": 7,
        "batch_size": 16,
        "eval_batch_size": 64,
        "augment": "none",
        "image_size": 24,
        "normalize": False,
        "cache_dir": "/tmp/nas-cache",
    },
    "backbone": {"name": "resnet8", "args": {"width": 8}},
    "space": {
        "blocks": ["none", "eca", "encoding", "simam"],
        "eca_kernels": [3, "adaptive"],
        "granularity": "per_block",
        "stages": [2, 3],
        "positions": ["standard", "post"],
        "block_params": {"encoding": {"codewords": [8, 16]}},
    },
    "training": {
        "epochs": 4,
        "optimizer": "adamw",
        "lr": 1,
        "momentum": 0,
        "nesterov": False,
        "weight_decay": 0,
        "schedule": "onecycle",
        "warmup_epochs": 0.5,
        "label_smoothing": 0,
        "precision": "32",
        "channels_last": False,
        "gradient_clip": 2,
        "deterministic": True,
    },
    "pruning": {
        "pruner": "median",
        "percentile": 25,
        "n_startup_trials": 0,
        "n_warmup_epochs": 0,
        "min_epochs": 2,
        "reduction_factor": 2,
    },
    "objectives": {
        "maximize": "val_acc",
        "minimize": [],
        "constraints": {"params": 100000, "latency_ms_b1": 2.5},
        "latency_batch": 8,
    },
}

EVERY_SETTING_DICT = {
    "study": {
        "name": "exotic",
        "storage": "sqlite:///x.db",
        "runs_dir": "runs",
        "sampler": "tpe",
        "seed": 7,
        "n_trials": 3,
        "timeout_s": 60,
        "population_size": 2,
        "heartbeat_interval_s": 10,
        "grace_period_s": 30,
        "max_retry": 0,
    },
    "data": {
        "name": "imagefolder",
        "root": "data/pets.tar.gz",
        "download": False,
        "val_fraction": 0.25,
        "split_seed": 3,
        "per_class": 10,
        "val_per_class": 5,
        "test_per_class": 7,
        "batch_size": 16,
        "eval_batch_size": 64,
        "augment": "none",
        "image_size": [24, 24],
        "normalize": False,
        "cache_dir": "/tmp/nas-cache",
    },
    "space": {
        "backbone": "resnet8",
        "backbone_args": {"width": 8},
        "blocks": ["none", "eca", "encoding", "simam"],
        "reductions": [4, 8, 16],
        "eca_kernels": [3, "adaptive"],
        "granularity": "per_block",
        "stages": [2, 3],
        "from_stage": 1,
        "positions": ["standard", "post"],
        "block_params": {"encoding": {"codewords": [8, 16]}},
    },
    "training": {
        "epochs": 4,
        "optimizer": "adamw",
        "lr": 1,
        "momentum": 0,
        "nesterov": False,
        "weight_decay": 0,
        "schedule": "onecycle",
        "warmup_epochs": 0.5,
        "label_smoothing": 0,
        "precision": "32",
        "channels_last": False,
        "gradient_clip": 2,
        "deterministic": True,
    },
    "pruning": {
        "pruner": "median",
        "percentile": 25,
        "n_startup_trials": 0,
        "n_warmup_epochs": 0,
        "min_epochs": 2,
        "reduction_factor": 2,
    },
    "objectives": {
        "maximize": "val_acc",
        "minimize": [],
        "constraints": {"params": 100000, "latency_ms_b1": 2.5},
        "latency_batch": 8,
    },
}

QUICKSTART_DICT = {
    "study": {
        "name": "quickstart",
        "storage": "",
        "runs_dir": "studies/runs",
        "sampler": "nsga2",
        "seed": 0,
        "n_trials": 32,
        "timeout_s": 0.0,
        "population_size": 6,
        "heartbeat_interval_s": 30,
        "grace_period_s": 120,
        "max_retry": 1,
    },
    "data": {
        "name": "digits",
        "root": None,
        "download": False,
        "val_fraction": 0.1,
        "split_seed": 0,
        "per_class": None,
        "val_per_class": None,
        "test_per_class": None,
        "batch_size": 64,
        "eval_batch_size": None,
        "augment": "flip_crop",
        "image_size": None,
        "normalize": True,
        "cache_dir": "/home/nas/.cache/attention-nas",
    },
    "space": {
        "backbone": "resnet8",
        "backbone_args": {"width": 16},
        "blocks": ["none", "se", "eca", "gct", "cbam", "coord", "simam"],
        "reductions": [4, 8],
        "eca_kernels": [3, "adaptive"],
        "granularity": "per_stage",
        "stages": None,
        "from_stage": 1,
        "positions": ["standard", "post"],
        "block_params": {},
    },
    "training": {
        "epochs": 8,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 0.0005,
        "schedule": "cosine",
        "warmup_epochs": 0,
        "label_smoothing": 0.0,
        "precision": "auto",
        "channels_last": "auto",
        "gradient_clip": None,
        "deterministic": "auto",
    },
    "pruning": {
        "pruner": "pareto",
        "percentile": 50.0,
        "n_startup_trials": 4,
        "n_warmup_epochs": 2,
        "min_epochs": 1,
        "reduction_factor": 3,
    },
    "objectives": {
        "maximize": "val_acc",
        "minimize": ["flops"],
        "constraints": {},
        "latency_batch": 32,
    },
}

CIFAR10_DICT = {
    "study": {
        "name": "cifar10-resnet20",
        "storage": "",
        "runs_dir": "studies/runs",
        "sampler": "additive",
        "seed": 0,
        "n_trials": 60,
        "timeout_s": 0.0,
        "population_size": 12,
        "heartbeat_interval_s": 30,
        "grace_period_s": 120,
        "max_retry": 1,
    },
    "data": {
        "name": "cifar10",
        "root": "/home/nas/.cache/attention-nas/cifar10",
        "download": False,
        "val_fraction": 0.1,
        "split_seed": 0,
        "per_class": None,
        "val_per_class": None,
        "test_per_class": None,
        "batch_size": 128,
        "eval_batch_size": None,
        "augment": "flip_crop",
        "image_size": None,
        "normalize": True,
        "cache_dir": "/home/nas/.cache/attention-nas",
    },
    "space": {
        "backbone": "resnet20",
        "backbone_args": {},
        "blocks": ["none", "se", "eca", "gct", "srm", "fca", "cbam", "coord", "gc", "simam"],
        "reductions": [4, 8, 16],
        "eca_kernels": [3, 5, "adaptive"],
        "granularity": "per_stage",
        "stages": None,
        "from_stage": 1,
        "positions": ["standard", "pre", "post", "identity"],
        "block_params": {},
    },
    "training": {
        "epochs": 30,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 0.0005,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "label_smoothing": 0.1,
        "precision": "auto",
        "channels_last": "auto",
        "gradient_clip": None,
        "deterministic": "auto",
    },
    "pruning": {
        "pruner": "moasha",
        "percentile": 50.0,
        "n_startup_trials": 4,
        "n_warmup_epochs": 1,
        "min_epochs": 3,
        "reduction_factor": 3,
    },
    "objectives": {
        "maximize": "val_acc",
        "minimize": ["flops", "params"],
        "constraints": {},
        "latency_batch": 32,
    },
}


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        (lambda: StudyConfig.from_dict(EVERY_SETTING), EVERY_SETTING_DICT),
        # The quickstart as 0.1.0 shipped it (the current one differs: tests/fixtures has it).
        (lambda: StudyConfig.load(FIXTURES / "quickstart_v0_1_0.toml"), QUICKSTART_DICT),
        (lambda: StudyConfig.load(STUDIES / "cifar10_resnet20.toml"), CIFAR10_DICT),
    ],
    ids=["every-setting", "quickstart", "cifar10"],
)
def test_to_dict_is_exactly_the_stored_form(monkeypatch, load, expected):
    monkeypatch.setenv("HOME", "/home/nas")  # cache_dir and "~" paths expand under it
    data = load().to_dict()
    # What 0.1.0 stored, read back by this release, is this release's form...
    assert StudyConfig.from_dict(expected).to_dict() == data
    # ... which is 0.1.0's plus the settings added since, at their defaults, appended.
    expected = _with_settings_added_since_0_1_0(expected)
    assert data == expected
    # Key order and value types too: 1 and 1.0 compare equal but are stored differently.
    assert json.dumps(data) == json.dumps(expected)
    # A stored config rebuilds the same config.
    assert json.dumps(StudyConfig.from_dict(data).to_dict()) == json.dumps(expected)


#: Settings added after 0.1.0 (whose to_dict() output the dicts above pin), at their defaults.
ADDED_SINCE_0_1_0 = {
    "study": {
        "artifacts": "",
        "artifacts_endpoint": "",
        "max_store_failures": 2,
        "db_retry_s": 60.0,
    },
    "data": {"loader": "auto", "num_workers": 2},
    "backbone": {"pretrained": False},
    "training": {
        "compile": "auto",
        "compile_scope": "auto",
        "compile_cache": "",
        "validate": "auto",
    },
    "pruning": {"auto_min_rho": 0.5},
    "evaluation": {
        "seeding": "common",
        "baselines": True,
        "baseline_blocks": None,
        "max_baselines": 8,
    },
    "search": {
        "strategy": "multi_trial",
        "supernet_epochs": None,
        "sampling": "uniform",
        "calibration_batches": 8,
        "max_supernet_mb": 0,
    },
    "tracking": {"loggers": [], "dir": "", "uri": "", "experiment": "", "wandb_mode": "offline"},
}


def _with_settings_added_since_0_1_0(stored: dict) -> dict:
    data = json.loads(json.dumps(stored))
    for section, values in ADDED_SINCE_0_1_0.items():
        data.setdefault(section, {}).update(values)
    return data


# -- errors: one line, the field path, the values it allows ----------------------------------


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"colour": {}}, r"unknown section\(s\) \['colour'\]"),
        ({"study": {"n_trails": 3}}, r"study\.n_trails"),
        ({"study": {"sampler": "cmaes"}}, r"study\.sampler must be one of"),
        ({"study": {"n_trials": 0}}, r"study\.n_trials must be an int >= 1"),
        ({"data": {"batch_size": 0}}, r"batch_size"),
        ({"data": {"name": "imagenet"}}, r"imagenet"),
        ({"space": {"blocks": ["none", "sse"]}}, r"space.blocks has unknown block"),
        ({"space": {"granularity": "layer"}}, r"space.granularity"),
        ({"backbone": {"name": "vgg16"}}, r"vgg16"),
        ({"backbone": {"depth": 20}}, r"backbone\.depth"),
        ({"training": {"epochs": 0}}, r"epochs"),
        ({"training": {"optimizer": "lion"}}, r"optimizer"),
        (
            {"pruning": {"pruner": "median"}},
            r"pruning.pruner='median' is one of Optuna's single-objective",
        ),
        ({"pruning": {"percentile": 150}}, r"pruning\.percentile"),
        (
            {"pruning": {"pruner": "moasha", "min_epochs": 2}, "training": {"epochs": 5}},
            r"pruning\.min_epochs x pruning\.reduction_factor \(2 x 3\) must be <= "
            r"training\.epochs \(5\)",
        ),
        ({"objectives": {"minimize": ["energy"]}}, r"objectives\.minimize"),
        ({"objectives": {"maximize": "val_loss"}}, r"objectives\.maximize"),
        ({"objectives": {"constraints": {"params": -1}}}, r"objectives\.constraints\.params"),
    ],
)
def test_invalid_configs_name_the_field(tiny_config, override, match):
    data = tiny_config()
    for section, values in override.items():
        data.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError, match=match):
        StudyConfig.from_dict(data)


COSTS_LIST = (
    "['flops', 'params', 'latency_ms_b1', 'latency_ms_bN', 'activation_bytes', "
    "'ort_latency_ms_b1', 'ort_latency_ms_bN']"
)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"data": {"batch_size": 0}}, "data.batch_size must be an int >= 1, got 0"),
        (
            {"objectives": {"constraints": {"params": True}}},
            "objectives.constraints.params must be a number > 0, got True",
        ),
        (
            {"objectives": {"constraints": {"energy": 1}}},
            f"objectives.constraints keys must be costs from {COSTS_LIST}, got 'energy'",
        ),
        (
            {"objectives": {"minimize": "flops"}},
            f"objectives.minimize must be a list of distinct costs from {COSTS_LIST}, got 'flops'",
        ),
        (
            {"objectives": {"minimize": ["flops", "flops"]}},
            f"objectives.minimize must be a list of distinct costs from {COSTS_LIST}, "
            "got ['flops', 'flops']",
        ),
        (
            {"study": {"timeout_s": True}},
            "study.timeout_s must be a number of seconds >= 0 (0 = no limit), got True",
        ),
        ({"study": {"seed": True}}, "study.seed must be an int in [0, 4294967295], got True"),
        (
            {"study": {"seed": 2**32}},
            "study.seed must be an int in [0, 4294967295], got 4294967296",
        ),
        ({"study": {"seed": -1}}, "study.seed must be an int in [0, 4294967295], got -1"),
        (
            {"study": {"name": "a/b"}},
            "study.name must be a folder name: 1-100 characters, no '/', '\\\\' or NUL, not "
            "'.' or '..', got 'a/b'",
        ),
        (
            {"study": {"name": ".."}},
            "study.name must be a folder name, not '..' (the study's files would land outside "
            "runs_dir); choose e.g. 'my-study'",
        ),
        (
            {"study": {"name": "x" * 101}},
            "study.name must be a folder name: 1-100 characters, no '/', '\\\\' or NUL, not "
            f"'.' or '..', got {'x' * 101!r}",
        ),
        (
            {"study": {"heartbeat_interval_s": 30, "grace_period_s": 30}},
            "study.grace_period_s must be an int of seconds greater than heartbeat_interval_s "
            "(30), got 30",
        ),
        ({"training": {"lr": float("nan")}}, "training.lr must be a positive number, got nan"),
        ({"training": {"epochs": 2.0}}, "training.epochs must be an int >= 1, got 2.0"),
        (
            {"training": {"momentum": 0}},
            "training.nesterov needs momentum > 0 with SGD; set momentum (e.g. 0.9) or "
            "nesterov=False",
        ),
        (
            {"training": {"warmup_epochs": 2}},
            "training.warmup_epochs must be >= 0 and below epochs=2, got 2",
        ),
        (
            {"data": {"image_size": 32}},
            "data.image_size only applies to name='imagefolder' (got name='digits'); leave it "
            "unset",
        ),
        (
            {"data": {"name": "imagefolder", "root": "pets", "image_size": [32, 0]}},
            "data.image_size must be an int or [height, width] of ints >= 1 (imagefolder only), "
            "got [32, 0]",
        ),
        ({"space": {"reductions": "4"}}, "space.reductions must be a list of ints, got '4'"),
        (
            {"space": {"block_params": {"encoding": {"codewords": 8}}}},
            "space.block_params.encoding.codewords must be a list of values to try, got 8",
        ),
        ({"space": {"backbone": "resnet20"}}, "set backbone.name or space.backbone, not both"),
        ({"study": 3}, "study must be a table, got 3"),
        (
            {"training": {"epoch": 3}},
            "unknown key(s) ['training.epoch']; allowed: ['channels_last', 'compile', "
            "'compile_cache', 'compile_scope', 'deterministic', 'epochs', 'gradient_clip', 'label_smoothing', 'lr', 'momentum', 'nesterov', "
            "'optimizer', 'precision', 'schedule', 'validate', 'warmup_epochs', 'weight_decay']",
        ),
    ],
)
def test_errors_are_one_line_with_the_field_and_the_fix(tiny_config, override, message):
    data = tiny_config()
    for section, values in override.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    with pytest.raises(ConfigError) as error:
        StudyConfig.from_dict(data)
    assert str(error.value) == message


def test_a_missing_training_table_or_epochs_is_named(tiny_config):
    data = tiny_config()
    data["training"] = {"epoch": 3}
    # A typo is reported as such, not as the missing key it was meant to be.
    with pytest.raises(ConfigError, match=r"^unknown key\(s\) \['training\.epoch'\]"):
        StudyConfig.from_dict(data)
    del data["training"]["epoch"]
    with pytest.raises(
        ConfigError, match=r"^training\.epochs is required; it must be an int >= 1$"
    ):
        StudyConfig.from_dict(data)
    del data["training"]
    with pytest.raises(ConfigError, match=r"^training is required; it must be a table"):
        StudyConfig.from_dict(data)


def test_single_objective_with_optuna_pruner_is_fine(tiny_config):
    cfg = StudyConfig.from_dict(
        tiny_config(
            objectives={"minimize": [], "constraints": {"params": 1e6}},
            pruning={"pruner": "median"},
        )
    )
    assert cfg.objectives.directions == ["maximize"]


def test_validating_only_the_last_epoch_is_refused_where_a_pruner_reads_the_curve(tiny_config):
    data = tiny_config(
        training={"validate": "last_epoch"},
        pruning={"pruner": "moasha", "min_epochs": 1, "reduction_factor": 2},
    )
    with pytest.raises(ConfigError) as error:
        StudyConfig.from_dict(data)
    assert str(error.value) == (
        "training.validate = 'last_epoch' leaves pruning.pruner = 'moasha' no accuracy to read "
        "before the last epoch; use 'auto' or 'every_epoch', or pruning.pruner = 'none'"
    )
    assert StudyConfig.from_dict(tiny_config(training={"validate": "last_epoch"}))
    with pytest.raises(ConfigError) as error:
        StudyConfig.from_dict(tiny_config(training={"validate": "never"}))
    assert str(error.value) == (
        "training.validate must be one of ['auto', 'every_epoch', 'last_epoch'], got 'never'"
    )


def test_moasha_needs_a_rung_within_the_epochs(tiny_config):
    assert asha_rungs(3, 3, 30) == [3, 9] and asha_rungs(2, 3, 5) == []
    cfg = StudyConfig.from_dict(
        tiny_config(pruning={"pruner": "moasha", "min_epochs": 1, "reduction_factor": 2})
    )
    assert cfg.pruning.pruner == "moasha"


def test_load_reports_the_file_and_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        StudyConfig.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        StudyConfig.load(tmp_path / "missing.toml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[study]\nsampler = "cmaes"\n')
    with pytest.raises(ConfigError, match=r"wrong.toml: study\.sampler"):
        StudyConfig.load(wrong)


# -- the classes built directly ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainingConfig(epochs=0), "TrainingConfig.epochs must be an int >= 1, got 0"),
        (lambda: TrainingConfig(), "TrainingConfig.epochs is required; it must be an int >= 1"),
        (
            lambda: TrainingConfig(epochs=3, deterministic=None),
            "TrainingConfig.deterministic must be true, false or 'auto', got None",
        ),
        (
            lambda: TrainingConfig.from_dict({"epochs": 1, "lr_max": 0.1}),
            "TrainingConfig: unknown key(s) ['lr_max']; allowed: ['channels_last', 'compile', "
            "'compile_cache', 'compile_scope', 'deterministic', 'epochs', 'gradient_clip', 'label_smoothing', 'lr', 'momentum', "
            "'nesterov', 'optimizer', 'precision', 'schedule', 'validate', 'warmup_epochs', 'weight_decay']",
        ),
        (lambda: DataConfig(batch_size=0), "DataConfig.batch_size must be an int >= 1, got 0"),
        (
            lambda: DataConfig("imagefolder"),
            "DataConfig.root is required for name='imagefolder': pass a folder with train/ (and "
            "test/) subfolders or a .tar.gz archive of that layout",
        ),
        (
            lambda: StudySection(name="a/b"),
            "StudySection.name must be a folder name: 1-100 characters, no '/', '\\\\' or NUL, "
            "not '.' or '..', got 'a/b'",
        ),
    ],
)
def test_direct_construction_names_class_and_field(build, message):
    with pytest.raises(ValueError) as error:
        build()
    assert str(error.value) == message


def test_dataclass_api_keeps_working(tiny_config, tmp_path):
    assert DataConfig("digits").name == "digits" and TrainingConfig(5).epochs == 5
    data = DataConfig("imagefolder", root="~/pets", image_size=24, cache_dir=str(tmp_path))
    assert data.root == Path("~/pets").expanduser() and data.image_size == (24, 24)
    assert data.cache_dir == tmp_path
    assert dataclasses.asdict(data)["root"] == data.root
    training = TrainingConfig(epochs=3, schedule="onecycle", gradient_clip=1.0)
    assert TrainingConfig.from_dict(training.to_dict()) == training
    assert dataclasses.replace(training, epochs=4).epochs == 4
    with pytest.raises(ValueError, match=r"TrainingConfig\.epochs"):
        dataclasses.replace(training, epochs=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        training.epochs = 4  # type: ignore[misc]
    cfg = StudyConfig.from_dict(tiny_config())
    more = dataclasses.replace(cfg, study=dataclasses.replace(cfg.study, n_trials=9))
    assert more.study.n_trials == 9 and more.space is cfg.space
    with pytest.raises(ValueError, match=r"^StudyConfig: pruning\.pruner='asha' is one of"):
        dataclasses.replace(cfg, pruning=dataclasses.replace(cfg.pruning, pruner="asha"))


def test_loading_a_config_does_not_import_lightning():
    code = (
        "import sys; from nas.config import StudyConfig; "
        "StudyConfig.load('studies/cifar10_resnet20.toml'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
