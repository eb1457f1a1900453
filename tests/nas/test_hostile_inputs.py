"""Hostile but realistic input: every bad config, flag or file is one line on stderr, exit code 2,
naming the field or file, never a traceback, and nothing is stored."""

import errno
import json
import os
from pathlib import Path

import pytest
import tomli_w

from nas.cli import main

#: (case id, {section: {key: value}} merged into the tiny config, text the message must contain)
BAD_CONFIGS = [
    ("unknown section", {"colour": {"red": 1}}, "colour"),
    ("study typo", {"study": {"n_trails": 3}}, "study.n_trails"),
    ("name ..", {"study": {"name": ".."}}, "study.name"),
    ("name .", {"study": {"name": "."}}, "study.name"),
    ("name with slash", {"study": {"name": "a/b"}}, "study.name"),
    ("name 300 chars", {"study": {"name": "n" * 300}}, "study.name"),
    ("name empty", {"study": {"name": ""}}, "study.name"),
    ("name number", {"study": {"name": 5}}, "study.name"),
    ("runs_dir number", {"study": {"runs_dir": 5}}, "study.runs_dir"),
    ("storage number", {"study": {"storage": 5}}, "study.storage"),
    ("sampler unknown", {"study": {"sampler": "cmaes"}}, "study.sampler"),
    ("seed bool", {"study": {"seed": True}}, "study.seed"),
    ("seed negative", {"study": {"seed": -1}}, "study.seed"),
    ("seed too large", {"study": {"seed": 2**32}}, "study.seed"),
    ("seed float", {"study": {"seed": 1.5}}, "study.seed"),
    ("n_trials zero", {"study": {"n_trials": 0}}, "study.n_trials"),
    ("n_trials string", {"study": {"n_trials": "10"}}, "study.n_trials"),
    ("timeout bool", {"study": {"timeout_s": True}}, "study.timeout_s"),
    ("timeout negative", {"study": {"timeout_s": -5}}, "study.timeout_s"),
    ("population one", {"study": {"population_size": 1}}, "study.population_size"),
    ("grace below heartbeat", {"study": {"grace_period_s": 10}}, "study.grace_period_s"),
    ("max_retry negative", {"study": {"max_retry": -1}}, "study.max_retry"),
    ("data table", {"data": 5}, "data"),
    ("dataset unknown", {"data": {"name": "imagenet"}}, "data.name"),
    ("batch zero", {"data": {"batch_size": 0}}, "data.batch_size"),
    ("batch bool", {"data": {"batch_size": True}}, "data.batch_size"),
    ("val_fraction one", {"data": {"val_fraction": 1.0}}, "data.val_fraction"),
    ("val_fraction string", {"data": {"val_fraction": "0.1"}}, "data.val_fraction"),
    ("per_class zero", {"data": {"per_class": 0}}, "data.per_class"),
    ("augment unknown", {"data": {"augment": "mixup"}}, "data.augment"),
    ("download string", {"data": {"download": "yes"}}, "data.download"),
    ("imagefolder without root", {"data": {"name": "imagefolder"}}, "data.root"),
    ("image_size for digits", {"data": {"image_size": 32}}, "data.image_size"),
    ("backbone unknown", {"backbone": {"name": "vgg16"}}, "backbone.name: unknown backbone"),
    (
        "timm model unknown",
        {"backbone": {"name": "timm:resnet5000"}},
        "backbone.name: unknown timm",
    ),
    ("backbone arg unknown", {"backbone": {"args": {"width": 4, "depthh": 3}}}, "depthh"),
    ("backbone width zero", {"backbone": {"args": {"width": 0}}}, "backbone.args: backbone"),
    ("backbone key unknown", {"backbone": {"depth": 20}}, "backbone.depth"),
    ("backbone args list", {"backbone": {"args": [1, 2]}}, "backbone.args"),
    ("blocks unknown", {"space": {"blocks": ["none", "sse"]}}, "space.blocks"),
    ("blocks empty", {"space": {"blocks": []}}, "space.blocks"),
    ("blocks string", {"space": {"blocks": "se"}}, "space.blocks"),
    ("blocks twice", {"space": {"blocks": ["se", "se"]}}, "space.blocks"),
    ("granularity unknown", {"space": {"granularity": "layer"}}, "space.granularity"),
    ("positions unknown", {"space": {"positions": ["inside"]}}, "space.positions"),
    ("reductions zero", {"space": {"reductions": [0]}}, "space.reductions"),
    ("eca kernel even", {"space": {"eca_kernels": [4]}}, "space.eca_kernels"),
    ("stages out of range", {"space": {"stages": [9]}}, "space.stages"),
    ("from_stage bool", {"space": {"from_stage": True}}, "space.from_stage"),
    ("block_params number", {"space": {"block_params": {"se": 5}}}, "space.block_params"),
    ("block_params list", {"space": {"block_params": {"se": [1]}}}, "space.block_params"),
    ("block_params unknown block", {"space": {"block_params": {"gc": {}}}}, "space.block_params"),
    ("epochs zero", {"training": {"epochs": 0}}, "training.epochs"),
    ("epochs float", {"training": {"epochs": 2.5}}, "training.epochs"),
    ("optimizer unknown", {"training": {"optimizer": "lion"}}, "training.optimizer"),
    ("lr negative", {"training": {"lr": -0.1}}, "training.lr"),
    ("lr bool", {"training": {"lr": True}}, "training.lr"),
    ("momentum one", {"training": {"momentum": 1.0}}, "training.momentum"),
    ("warmup beyond epochs", {"training": {"warmup_epochs": 5}}, "training.warmup_epochs"),
    ("precision unknown", {"training": {"precision": "fp8"}}, "training.precision"),
    ("training typo", {"training": {"lr_max": 1}}, "training.lr_max"),
    ("pruner unknown", {"pruning": {"pruner": "hyperband"}}, "pruning.pruner"),
    ("percentile 150", {"pruning": {"percentile": 150}}, "pruning.percentile"),
    ("reduction_factor one", {"pruning": {"reduction_factor": 1}}, "pruning.reduction_factor"),
    ("median multi-objective", {"pruning": {"pruner": "median"}}, "pruning.pruner"),
    ("moasha no rung", {"pruning": {"pruner": "moasha", "min_epochs": 2}}, "pruning.min_epochs"),
    ("maximize unknown", {"objectives": {"maximize": "val_loss"}}, "objectives.maximize"),
    ("minimize string", {"objectives": {"minimize": "flops"}}, "objectives.minimize"),
    ("minimize unknown", {"objectives": {"minimize": ["energy"]}}, "objectives.minimize"),
    ("minimize twice", {"objectives": {"minimize": ["flops", "flops"]}}, "objectives.minimize"),
    ("constraint bool", {"objectives": {"constraints": {"params": True}}}, "constraints.params"),
    ("constraint negative", {"objectives": {"constraints": {"params": -1}}}, "constraints.params"),
    ("constraint unknown", {"objectives": {"constraints": {"energy": 1}}}, "constraints"),
    ("latency_batch zero", {"objectives": {"latency_batch": 0}}, "objectives.latency_batch"),
]


def _config(tmp_path: Path, data: dict, override: dict) -> Path:
    """``data`` (the tiny config, runs under tmp_path/runs) with ``override`` merged in."""
    for section, values in override.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    path = tmp_path / "study.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def _fails_cleanly(capsys, argv: list[str], expected: str) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    assert len(err.splitlines()) == 1, err
    assert expected in err, err
    return err


def test_there_are_sixty_cases_at_least():
    assert len(BAD_CONFIGS) >= 60
    assert len({case for case, _, _ in BAD_CONFIGS}) == len(BAD_CONFIGS)


@pytest.mark.parametrize(("case", "override", "expected"), BAD_CONFIGS, ids=lambda v: v)
def test_a_bad_config_is_one_line_naming_the_field(
    tiny_config, tmp_path, capsys, case, override, expected
):
    config = _config(tmp_path, tiny_config(), override)
    err = _fails_cleanly(capsys, ["search", str(config), "--no-progress"], expected)
    assert str(config) in err  # and the file
    assert not (tmp_path / "runs").exists()  # nothing stored, no folder made


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"[study\nname = 1", "is not valid TOML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "is not a text file"),
        (b"", "training"),
    ],
    ids=["broken toml", "binary file", "empty file"],
)
def test_unreadable_configs_name_their_file(tmp_path, capsys, text, expected):
    config = tmp_path / "study.toml"
    config.write_bytes(text)
    err = _fails_cleanly(capsys, ["search", str(config)], expected)
    assert "study.toml" in err


def test_a_failed_start_stores_nothing_and_the_fixed_config_runs(tiny_config, tmp_path, capsys):
    bad = {"data": {"name": "imagefolder", "root": str(tmp_path / "no-such-folder")}}
    config = _config(tmp_path, tiny_config(), bad)
    _fails_cleanly(capsys, ["search", str(config), "--no-progress"], "no-such-folder")
    assert not (tmp_path / "runs" / "tiny" / "journal.log").exists()
    config = _config(tmp_path, tiny_config(), {"study": {"n_trials": 1}})  # fixed, same name
    assert main(["search", str(config), "--no-progress"]) == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("5", "got int 5"),
        ("null", "got NoneType"),
        ('{"sites": [1]}', "ArchSpec.sites"),
        ('{"backbone": "resnet8", "sites": {"stage1": 5}}', "block choice"),
        ("{not json", "must be JSON"),
        ('{"backbone": "resnet8", "sites": {"stage1": {"block": "sse"}}}', "sse"),
    ],
)
def test_nas_train_on_a_bad_arch_json_names_the_file(
    tiny_config, tmp_path, capsys, content, expected
):
    arch = tmp_path / "arch.json"
    arch.write_text(content)
    settings = {"data": tiny_config()["data"], "training": {"epochs": 1}}
    (tmp_path / "config.json").write_text(json.dumps(settings))
    err = _fails_cleanly(capsys, ["train", str(arch), "--no-progress"], expected)
    assert "arch.json" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [("[1, 2]", "must hold a JSON object"), ("{oops", "is not JSON"), ('{"data": 5}', "data")],
)
def test_nas_train_on_a_bad_config_json_names_the_file(tmp_path, capsys, content, expected):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"backbone": "resnet8", "num_classes": 10, "in_channels": 1}))
    (tmp_path / "config.json").write_text(content)
    err = _fails_cleanly(capsys, ["train", str(arch), "--no-progress"], expected)
    assert "config.json" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "{config}", "--workers", "0"], "--workers"),
        (["search", "{config}", "--n-trials", "0"], "n_trials"),
        (["search", "missing.toml"], "missing.toml"),
        (["status", "tiny", "--runs-dir", "{tmp}/runs"], "no study storage"),
        (["status", "..", "--runs-dir", "{tmp}/runs"], "name"),
        (["report", "{config}", "--reference", "flops"], "--reference"),
        (["export", "{config}", "--pareto"], "no study storage"),
        (["search", "{config}", "--storage", "{tmp}/file/x/journal.log"], "cannot open"),
        (["doctor", "postgresql://u:secret@127.0.0.1/db"], "is a database"),
    ],
)
def test_bad_flags_are_one_line(tiny_config, tmp_path, capsys, argv, expected):
    config = _config(tmp_path, tiny_config(), {})
    (tmp_path / "file").write_text("")
    argv = [a.format(config=config, tmp=tmp_path) for a in argv]
    err = _fails_cleanly(capsys, argv, expected)
    assert "secret" not in err


# -- operating-system errors a user can cause -----------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """A finished tiny search: its runs folder (a module-scoped copy of conftest.TINY)."""
    from conftest import TINY

    from nas.config import StudyConfig
    from nas.worker import run_search

    data = json.loads(json.dumps(TINY))
    data["study"].update(n_trials=2, runs_dir=str(tmp_path_factory.mktemp("os") / "runs"))
    run_search(StudyConfig.from_dict(data), progress=False)
    return Path(data["study"]["runs_dir"])


def _stored(runs: Path) -> bytes:
    return (runs / "tiny" / "journal.log").read_bytes()


def test_an_export_target_that_is_a_file_is_one_line(searched, tmp_path, capsys):
    before = _stored(searched)
    target = tmp_path / "a-file"
    target.write_text("mine")
    argv = ["export", "tiny", "--runs-dir", str(searched), "--pareto", "--out", str(target)]
    err = _fails_cleanly(capsys, argv, str(target))
    assert "choose another path" in err
    assert target.read_text() == "mine" and _stored(searched) == before


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOSPC, "free space there"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "choose a place you can write"),
    ],
)
def test_a_full_disk_or_read_only_place_is_one_line(
    searched, tmp_path, capsys, monkeypatch, code, fix
):
    import pandas as pd

    before = _stored(searched)

    def fail(self, path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    out = tmp_path / "report"
    argv = ["report", "tiny", "--runs-dir", str(searched), "--out", str(out)]
    err = _fails_cleanly(capsys, argv, os.strerror(code))
    assert str(out / "trials.csv") in err and fix in err
    assert _stored(searched) == before


def test_os_error_lines_name_both_paths_and_fall_back_to_a_generic_fix():
    from nas.cli import os_error_line

    line = os_error_line(OSError(errno.EEXIST, "File exists", "/a", None, "/b"))
    assert line == "File exists (/a -> /b); it exists already: choose another path or remove it"
    assert os_error_line(OSError(errno.EIO, "Input/output error")).endswith(
        "; check the path and its disk"
    )


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only for this process (the tests run as root, whom permissions do not
    stop): opening anything under it for writing fails with EACCES, as on a read-only mount."""
    import builtins
    import io

    folders: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def refuse(path, writing: bool) -> None:
        if writing and isinstance(path, (str, os.PathLike)):
            where = os.path.abspath(os.fspath(path))
            if any(where.startswith(f) for f in folders):
                raise PermissionError(errno.EACCES, "Permission denied", where)

    def guarded_open(file, mode="r", *args, **kwargs):
        refuse(file, any(c in mode for c in "wax+"))
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        refuse(path, bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    return lambda folder: folders.append(str(Path(folder).resolve()))


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


def test_reading_a_study_needs_no_write_access_to_its_folder(searched, tmp_path, capsys, read_only):
    """status, report, export, doctor and a search with nothing left to do, on a study folder
    this process may not write: each succeeds and the folder is exactly as it was."""
    config = tmp_path / "study.toml"
    from conftest import TINY

    data = json.loads(json.dumps(TINY))
    data["study"].update(n_trials=2, runs_dir=str(searched))
    config.write_bytes(tomli_w.dumps(data).encode())
    before = _listing(searched)
    read_only(searched)
    for argv in (
        ["status", "tiny", "--runs-dir", str(searched)],
        ["report", "tiny", "--runs-dir", str(searched), "--out", str(tmp_path / "report")],
        ["export", "tiny", "--runs-dir", str(searched), "--pareto", "--out", str(tmp_path / "x")],
        ["doctor", "tiny", "--runs-dir", str(searched)],
        ["search", str(config), "--no-progress"],
    ):
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    assert _listing(searched) == before
    # Where the study must be written (a new trial), the refusal is one line naming the file.
    argv = ["search", str(config), "--n-trials", "3", "--no-progress"]
    err = _fails_cleanly(capsys, argv, "Permission denied")
    assert str(searched) in err and "fix its permissions" in err


def test_a_full_disk_leaves_no_side_file_and_the_journal_as_it_was(tmp_path, monkeypatch):
    """Setting aside a torn tail, or repairing, on a full disk: no empty or partial side file,
    the journal untouched, the error raised."""
    from nas.journal import repair_journal, set_aside_torn_tail

    journal = tmp_path / "journal.log"
    good = b'{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n'
    for damaged in (good + b'{"op_co', good + b"garbage\n" + good):
        journal.write_bytes(damaged)

        def full(self, data):
            real_open = open
            with real_open(self, "wb") as f:
                f.write(data[:3])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))

        monkeypatch.setattr(Path, "write_bytes", full)
        with pytest.raises(OSError, match="No space left"):
            if damaged.endswith(b'{"op_co'):
                set_aside_torn_tail(journal)
            else:
                repair_journal(journal)
        monkeypatch.undo()
        assert {p.name for p in tmp_path.iterdir()} <= {"journal.log", "journal.log.flock"}
        assert journal.read_bytes() == damaged
