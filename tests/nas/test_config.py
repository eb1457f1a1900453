from pathlib import Path

import pytest

from nas.config import ConfigError, StudyConfig

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = StudyConfig.load(path)
    assert cfg.space.size() > 1
    assert cfg.objectives.directions[0] == "maximize"


def test_round_trip_through_plain_data(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config())
    assert StudyConfig.from_dict(_as_sections(cfg.to_dict())).to_dict() == cfg.to_dict()


def _as_sections(data):
    data = dict(data)
    return data


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


def test_single_objective_with_optuna_pruner_is_fine(tiny_config):
    cfg = StudyConfig.from_dict(
        tiny_config(
            objectives={"minimize": [], "constraints": {"params": 1e6}},
            pruning={"pruner": "median"},
        )
    )
    assert cfg.objectives.directions == ["maximize"]


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
