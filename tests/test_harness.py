"""benchmarks/_harness.py: the tables, numbers, results files, machine facts and command lines
every benchmark script shares."""

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the scripts' own import path
from benchmarks import _harness as harness
from nas.stats import holm_adjust

INFO = {
    "platform": "Linux-x",
    "python": "3.11.7",
    "cpu": "Some CPU",
    "cores": 2,
    "torch_threads": 1,
    "gpu": None,
    "torch": "2.0",
    "lightning": "2.1",
    "optuna": "4.0",
    "load_average": [0.5, 1.25],
}


# --- Markdown ----------------------------------------------------------------------------------


def test_a_table_has_its_header_its_rule_and_a_line_per_row():
    lines = harness.markdown_table(["name", "n"], "lr", [["a", 1], ("b", 2.5)])
    assert lines == ["| name | n |", "| --- | ---: |", "| a | 1 |", "| b | 2.5 |"]


def test_a_compact_rule_has_no_spaces():
    assert harness.markdown_rule("llr", compact=True) == "|---|---|---:|"
    assert harness.markdown_table(["x"], "r", [], compact=True) == ["| x |", "|---:|"]


def test_a_row_or_header_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="2 columns, got a row of 3"):
        harness.markdown_table(["a", "b"], "ll", [["1", "2", "3"]])
    with pytest.raises(ValueError, match="2 columns, got a row of 1"):
        harness.markdown_table(["a"], "ll", [])
    with pytest.raises(ValueError, match="only 'l' and 'r'"):
        harness.markdown_rule("lc")


def test_empty_cells_keep_their_column():
    assert harness.markdown_row(["a", "", "b"]) == "| a |  | b |"


@pytest.mark.parametrize(
    ("value", "spec", "missing", "shown"),
    [
        (0.1234, ".1%", "-", "12.3%"),
        (-0.5, "+.4f", "-", "-0.5000"),
        (None, ".2f", "-", "-"),
        (math.nan, ".2f", "n/a", "n/a"),
        (math.inf, ".2f", "n/a", "n/a"),
        (0.0123, ".3g", "", "0.0123"),
    ],
)
def test_fmt_shows_missing_values_as_the_given_mark(value, spec, missing, shown):
    assert harness.fmt(value, spec, missing) == shown


# --- results files -----------------------------------------------------------------------------


def test_results_head_breaks_every_fact_line_but_the_last():
    head = harness.results_head("Title", ["Command: `x`", "Date: d", "last"])
    assert head == ["# Title", "", "Command: `x`  ", "Date: d  ", "last", ""]


def test_the_machine_line_names_the_gpu_only_where_asked():
    line = harness.machine_line(INFO)
    assert line == (
        "Machine: Linux-x, Some CPU, 2 cores (torch threads 1); Python 3.11.7, torch 2.0, "
        "lightning 2.1, optuna 4.0"
    )
    assert "GPU: none;" in harness.machine_line(INFO, gpu=True)
    assert "GPU: H100;" in harness.machine_line({**INFO, "gpu": "H100"}, gpu=True)


def test_write_results_writes_the_report_and_its_json_twin(tmp_path):
    out = tmp_path / "new" / "bench.md"  # the folder does not exist yet
    raw = {"count": np.int64(3), "share": np.float32(0.5), "path": Path("/a/b"), "rows": [1]}
    written = harness.write_results(
        out,
        title="A benchmark",
        command="python benchmarks/x.py --quick",
        info=INFO,
        load_note="what the load means",
        body=["## Results", "", "| a |"],
        raw=raw,
    )
    assert written == (out, tmp_path / "new" / "bench.json")
    lines = out.read_text().splitlines()
    assert lines[:3] == ["# A benchmark", "", "Command: `python benchmarks/x.py --quick`  "]
    assert re.fullmatch(r"Date: \d{4}-\d\d-\d\d \d\d:\d\d UTC  ", lines[3])
    assert lines[4] == harness.machine_line(INFO) + "  "
    assert lines[5] == "1-minute load average at start / end: 0.5 / 1.25 (what the load means)"
    assert lines[6:] == ["", "## Results", "", "| a |"]
    data = json.loads(written[1].read_text())
    assert list(data)[:3] == ["command", "date", "machine"]
    assert data["command"] == "python benchmarks/x.py --quick" and data["machine"] == INFO
    assert lines[3] == f"Date: {data['date']}  "
    assert data["count"] == 3 and data["share"] == 0.5 and data["path"] == "/a/b"
    assert data["rows"] == [1]


def test_write_markdown_ends_with_one_newline(tmp_path):
    path = tmp_path / "a.md"
    harness.write_markdown(path, ["x", "y"])
    assert path.read_text() == "x\ny\n"


# --- the machine -------------------------------------------------------------------------------


def test_describe_names_the_versions_and_a_session_adds_its_load_average():
    info = harness.describe()
    for key in ("platform", "python", "cpu", "cores", "torch_threads", "torch", "optuna"):
        assert info[key]
    session = harness.Session()
    machine = session.machine(torch_threads=7)
    assert machine["torch_threads"] == 7 and machine["cpu"] == info["cpu"]
    assert len(machine["load_average"]) == 2
    assert machine["load_average"][0] == session.load_start
    assert session.seconds() >= 0


def test_session_log_stamps_the_minutes(capsys):
    harness.Session().log("seed 0 done")
    assert re.fullmatch(r"\[ +0\.0 min\] seed 0 done\n", capsys.readouterr().err)


def test_others_cores_is_the_machine_s_busy_time_less_this_process_s_per_second():
    start, end = (10.0, 100.0, 5.0), (12.0, 103.0, 6.0)  # 3 busy s, 1 of them ours, in 2 s
    assert harness.others_cores(start, end) == pytest.approx(1.0)
    assert harness.others_cores((10.0, None, 5.0), end) is None
    assert harness.others_cores(end, end) is None  # no time passed
    wall, busy, cpu = harness.cpu_snapshot()
    assert wall > 0 and cpu >= 0 and (busy is None or busy > 0)


def test_quiet_samples_leave_out_contended_ones():
    values, contended = harness.quiet_samples([1.0, 9.0, 1.1, 1.2], [0.0, 1.5, 0.1, None])
    assert values == [1.0, 1.1, 1.2] and not contended
    values, contended = harness.quiet_samples([5.0, 9.0], [1.0, 1.5])
    assert values == [5.0, 9.0] and contended


# --- the command line --------------------------------------------------------------------------


def test_command_line_quotes_arguments_and_reads_the_process_s_own(monkeypatch):
    argv = ["--out", "a b.md", "--seeds", "0"]
    assert harness.command_line("/x/benchmarks/noise.py", argv) == (
        ".venv/bin/python benchmarks/noise.py --out 'a b.md' --seeds 0"
    )
    assert harness.command_line("noise.py", [], python="python") == "python benchmarks/noise.py"
    monkeypatch.setattr(sys, "argv", ["noise.py", "--quick"])
    assert harness.command_line("noise.py", None) == ".venv/bin/python benchmarks/noise.py --quick"


def test_a_preset_fills_only_what_the_command_line_left_unset():
    args = argparse.Namespace(seeds=None, epochs=3, out=None)
    harness.apply_preset(args, {"seeds": [0, 1], "epochs": 5})
    assert args.seeds == [0, 1] and args.epochs == 3 and args.out is None


def test_output_arguments_leave_out_unset_only_where_a_render_can_decide_it():
    plain = argparse.ArgumentParser()
    harness.add_output_arguments(plain, Path("/r/x.md"), "json")
    assert plain.parse_args([]).out == "/r/x.md"
    assert not hasattr(plain.parse_args([]), "render")
    rendering = argparse.ArgumentParser()
    harness.add_output_arguments(rendering, Path("/r/x.md"), "json", render="the tables")
    args = rendering.parse_args(["--render", "x.json"])
    assert args.out is None and args.render == "x.json"


def test_results_go_to_out_else_beside_the_rendered_json_else_the_default():
    default = Path("/r/x.md")
    ns = argparse.Namespace
    assert harness.results_path(ns(out=None, render=None), default) == default
    assert harness.results_path(ns(out="a.md", render="b.json"), default) == Path("a.md")
    assert harness.results_path(ns(out=None, render="d/b.json"), default) == Path("d/b.md")
    assert harness.results_path(ns(out="-", render=None), default) is None
    assert harness.results_path(ns(out=str(default)), default) == default  # a script without it


def test_start_session_sets_torch_s_threads():
    before = torch.get_num_threads()
    try:
        session = harness.start_session(2)
        assert torch.get_num_threads() == 2 and isinstance(session, harness.Session)
    finally:
        torch.set_num_threads(before)


# --- data --------------------------------------------------------------------------------------


def test_cifar10_data_says_where_the_archive_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_NAS_DATA", str(tmp_path))
    assert harness.cifar_archive() is None
    with pytest.raises(SystemExit, match=f"needs {tmp_path}/cifar10-jpeg.tar.gz .*ATTN_NAS_DATA"):
        harness.cifar10_data()
    (tmp_path / harness.CIFAR_ARCHIVE).write_bytes(b"")
    section = harness.cifar10_data()
    assert section["root"] == str(tmp_path / harness.CIFAR_ARCHIVE)
    assert section["name"] == "imagefolder" and section["batch_size"] == 128


def test_the_quickstart_study_trains_sampled_trials_the_full_budget():
    data = harness.quickstart_study("bench", "/tmp/runs", trials=5, epochs=2)
    assert data["study"]["name"] == "bench" and data["study"]["runs_dir"] == "/tmp/runs"
    assert data["study"]["n_trials"] == 5 and data["study"]["sampler"] == "random"
    assert data["training"]["epochs"] == 2
    assert data["pruning"] == {"pruner": "none"} and data["evaluation"] == {"baselines": False}


# --- tests over seeds --------------------------------------------------------------------------


def test_holm_by_key_keeps_each_test_s_key():
    p = {"b": 0.04, "a": 0.01, "c": 0.03}
    assert harness.holm_by_key(p) == dict(zip(p, holm_adjust(list(p.values())), strict=True))
    assert harness.holm_by_key({}) == {}


def test_compare_over_seeds_tests_two_seeds_or_more_and_adjusts_over_those():
    rows = harness.compare_over_seeds(
        {
            "better": ([0.5, 0.6, 0.7], [0.1, 0.3, 0.2]),
            "same": ([0.2, 0.2], [0.2, 0.2]),
            "one seed": ([0.4], [0.1]),
        }
    )
    assert rows["one seed"]["mean"] == pytest.approx(0.3) and rows["one seed"]["p_value"] is None
    assert rows["one seed"]["differs"] is None and rows["one seed"]["family"] is None
    assert rows["same"]["t"] is None and rows["same"]["p_value"] == 1.0  # no spread
    assert rows["better"]["family"] == rows["same"]["family"] == 2
    assert rows["better"]["p_adj"] == pytest.approx(min(1.0, 2 * rows["better"]["p_value"]))


def test_comparison_cells_show_a_row_and_say_why_it_has_no_test():
    (row,) = harness.compare_over_seeds({"x": ([0.4], [0.1])}).values()
    cells = harness.comparison_cells(row)
    assert cells == ["1", "+0.3000", "-", "-", "-", "-", harness.NO_TEST]
    kept = harness.compare_over_seeds({"x": ([-0.1, -0.05, -0.15], [0.0] * 3)})["x"]
    cells = harness.comparison_cells(kept, shift=1.0, spec=".1%")
    assert cells[1] == "90.0%" and cells[2].startswith("[") and cells[-1] in ("yes", "no")
    assert harness.undefined_t_note([kept]) == []
    same = harness.compare_over_seeds({"x": ([0.2, 0.2], [0.2, 0.2])})["x"]
    assert "t-test is undefined" in harness.undefined_t_note([kept, same])[1]


def test_table_benchmarks_share_their_arguments_and_start(tmp_path):
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "nas"))
    from _tables import synthetic_table_data

    from benchmarks import _harness as harness

    table = tmp_path / "t.json"
    table.write_text(json.dumps(synthetic_table_data()))
    parser = harness.table_parser("What it measures.\n\nMore.")
    parser.add_argument("--seeds", type=int, default=3)
    argv = ["--table", str(table), "--out", str(tmp_path / "r.md"), "--seeds", "5"]
    args, command, session, loaded = harness.start_table_benchmark(parser, argv, "benchmarks/x.py")
    assert (args.seeds, args.n_boot, args.out) == (5, 1000, tmp_path / "r.md")
    assert parser.description == "What it measures."
    assert command.endswith("benchmarks/x.py " + " ".join(argv))
    assert loaded.name == "synthetic" and session.seconds() >= 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "r.md"])  # --table is required
