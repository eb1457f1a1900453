"""benchmarks/mutation.py: each module's score from mutmut's results, equivalents left out, and
the table with the figures of an older run as "before"."""

import json
import shutil

import pytest

from benchmarks import mutation


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "ROOT", tmp_path / "repo")
    monkeypatch.setattr(mutation, "WORK", tmp_path / "work")
    monkeypatch.setattr(mutation, "EQUIVALENT", tmp_path / "equivalent.toml")
    monkeypatch.setattr(mutation, "STATE", tmp_path / "state")
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "pyproject.toml").write_text('[project]\nname = "x"\n')

    def results(module: str, codes: dict[str, int | None]) -> None:
        meta = mutation.work_folder(module) / "mutants" / f"{module}.meta"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"exit_code_by_key": codes}))

    return results


def test_the_score_counts_timeouts_as_killed_and_leaves_out_equivalents(work, tmp_path):
    codes = {f"nas.pareto.x_f__mutmut_{i}": 1 for i in range(1, 7)}  # 6 killed
    codes |= {"nas.pareto.x_f__mutmut_7": 36, "nas.pareto.x_f__mutmut_8": 0}  # timeout, survivor
    codes |= {"nas.pareto.x_f__mutmut_9": 0, "nas.pareto.x_f__mutmut_10": None}  # 9: equivalent
    work("nas/pareto.py", codes)
    mutation.EQUIVALENT.write_text(
        '["nas.pareto.x_f__mutmut_9"]\nchange = "a -> b"\nwhy = "the same"\n'
        # Not checked yet: it counts nowhere until it is.
        '["nas.pareto.x_f__mutmut_10"]\nchange = "c -> d"\nwhy = "the same"\n'
    )
    found = mutation.statuses("nas/pareto.py")
    assert mutation.score(found, mutation.equivalent_mutants()) == {
        "mutants": 10,
        "checked": 9,
        "killed": 7,
        "survived": 2,
        "no_tests": 0,
        "equivalent": 1,
        "score": 0.875,  # 7 of the 8 checked that are not equivalent
    }


def test_the_table_lists_survivors_and_takes_before_from_an_older_run(work, tmp_path):
    work("nas/pareto.py", {"nas.pareto.x_f__mutmut_1": 1, "nas.pareto.x_f__mutmut_2": 0})
    work("nas/confirm", {})
    older = tmp_path / "older.json"
    older.write_text(json.dumps({"nas/pareto.py": {"now": {"score": 0.25}}}))
    out = tmp_path / "mutation.md"
    text = mutation.render(
        ["nas/pareto.py", "nas/confirm"], out, "cmd", before=(older, ["nas/pareto.py"])
    )
    assert "| `nas/pareto.py` | 2 | 2 | 1 | 1 | 0 | 0 | 25.0% | 50.0% |" in text
    assert "| `nas/confirm` | 0 | 0 | 0 | 0 | 0 | 0 | - | - |" in text
    assert "- `nas.pareto.x_f__mutmut_2`" in text and "mutmut_1`" not in text
    kept = json.loads(out.with_suffix(".json").read_text())
    assert kept["nas/pareto.py"]["before"] == {"score": 0.25}
    # A later render without --before keeps it.
    mutation.render(["nas/pareto.py"], out, "cmd")
    assert json.loads(out.with_suffix(".json").read_text())["nas/pareto.py"]["before"] == {
        "score": 0.25
    }


def test_a_checkout_without_some_selected_test_files_runs_those_it_has(work, tmp_path):
    tests = tmp_path / "repo" / "tests" / "nas"
    tests.mkdir(parents=True)
    (tests / "test_confirm.py").write_text("")  # the newer test files of the selection are absent
    settings = (mutation.work_folder("nas/confirm") / "pyproject.toml").read_text()
    assert 'pytest_add_cli_args_test_selection = ["tests/nas/test_confirm.py"]' in settings
    assert 'only_mutate = ["nas/confirm/*"]' in settings


def test_results_are_kept_and_a_fresh_work_folder_resumes_from_them(work, tmp_path):
    codes = {"nas.confirm.frame.x_f__mutmut_1": 1, "nas.confirm.frame.x_f__mutmut_2": None}
    meta = mutation.work_folder("nas/confirm") / "mutants" / "nas" / "confirm" / "frame.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))  # a package: a file per module
    (meta.parent.parent / "pareto.py.meta").write_text("{}")  # another module's: not kept
    mutation.keep_state("nas/confirm")
    kept = tmp_path / "state" / "nas-confirm" / "nas" / "confirm" / "frame.py.meta"
    assert json.loads(kept.read_text())["exit_code_by_key"] == codes
    assert not (tmp_path / "state" / "nas-confirm" / "nas" / "pareto.py.meta").exists()
    # A fresh clone: no work folder; its statuses come back from what was kept.
    shutil.rmtree(tmp_path / "work")
    assert mutation.statuses("nas/confirm") == {
        "nas.confirm.frame.x_f__mutmut_1": "killed",
        "nas.confirm.frame.x_f__mutmut_2": "not checked",
    }
    # What a run has written since is never replaced by what was kept.
    meta.write_text(json.dumps({"exit_code_by_key": {"nas.confirm.frame.x_f__mutmut_1": 0}}))
    assert mutation.statuses("nas/confirm") == {"nas.confirm.frame.x_f__mutmut_1": "survived"}


def test_a_module_without_results_at_hand_keeps_its_figures_and_survivors(work, tmp_path):
    work("nas/pareto.py", {"nas.pareto.x_f__mutmut_1": 1, "nas.pareto.x_f__mutmut_2": 0})
    out = tmp_path / "mutation.md"
    mutation.render(["nas/pareto.py"], out, "cmd")
    shutil.rmtree(tmp_path / "work")
    shutil.rmtree(tmp_path / "state")  # results from before they were kept: only the figures
    text = mutation.render(["nas/pareto.py"], out, "cmd")
    assert "| `nas/pareto.py` | 2 | 2 | 1 | 1 | 0 | 0 | - | 50.0% |" in text
    assert "- `nas.pareto.x_f__mutmut_2`" in text


def test_before_figures_come_from_a_first_run_committed_earlier(work, tmp_path, monkeypatch):
    """From the results kept at that commit, or, where none were kept, from its table (counts
    and survivors); either way scored with today's equivalent mutants."""
    import subprocess

    repo = tmp_path / "repo"
    results = repo / "benchmarks" / "results"
    monkeypatch.setattr(mutation, "RESULTS", results)
    monkeypatch.setattr(mutation, "STATE", results / "mutation_state")
    meta = results / "mutation_state" / "nas-pareto" / "nas" / "pareto.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(
        json.dumps(
            {
                "exit_code_by_key": {
                    "nas.pareto.x_f__mutmut_1": 1,
                    "nas.pareto.x_f__mutmut_2": 0,
                    "nas.pareto.x_f__mutmut_3": 0,
                }
            }
        )
    )
    counts = {"mutants": 4, "checked": 4, "killed": 2, "survived": 2, "no_tests": 0}
    (results / "mutation.json").write_text(json.dumps({"nas/stats.py": {"now": counts}}))
    (results / "mutation.md").write_text(
        "## Surviving mutants (2)\n\n- `nas.stats.x_g__mutmut_3`\n- `nas.stats.x_g__mutmut_4`\n"
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "first run"], cwd=repo, check=True)
    mutation.EQUIVALENT.write_text(
        '["nas.pareto.x_f__mutmut_3"]\nchange = "a"\nwhy = "b"\n'
        '["nas.stats.x_g__mutmut_4"]\nchange = "a"\nwhy = "b"\n'
    )
    equivalent = mutation.equivalent_mutants()
    pareto = mutation.figures_at("HEAD", "nas/pareto.py", equivalent)
    assert (pareto["killed"], pareto["equivalent"], pareto["score"]) == (1, 1, 0.5)
    stats = mutation.figures_at("HEAD", "nas/stats.py", equivalent)
    assert (stats["killed"], stats["equivalent"], stats["score"]) == (2, 1, round(2 / 3, 4))
    with pytest.raises(ValueError, match=r"has no mutation results of nas/report\.py"):
        mutation.figures_at("HEAD", "nas/report.py", equivalent)


def test_the_wilson_interval_is_scipys():
    from scipy.stats import binomtest

    for killed, scored in [(170, 200), (200, 200), (0, 12), (57, 61)]:
        expected = binomtest(killed, scored).proportion_ci(0.95, method="wilson")
        low, high = mutation.wilson_interval(killed, scored)
        assert low == pytest.approx(expected.low, abs=1e-6)
        assert high == pytest.approx(expected.high, abs=1e-6)


def test_a_sample_is_seeded_and_a_larger_one_contains_a_smaller():
    names = [f"nas.stats.x_f__mutmut_{i}" for i in range(1, 101)]
    ten = mutation.sample_of(names, 10, seed=0)
    assert ten == mutation.sample_of(list(reversed(names)), 10, seed=0)  # order does not count
    assert mutation.sample_of(names, 30, seed=0)[:10] == ten
    assert len(set(ten)) == 10 and set(ten) <= set(names)
    assert mutation.sample_of(names, 10, seed=1) != ten
    assert sorted(mutation.sample_of(names, 500, seed=0)) == sorted(names)


def test_a_sampled_score_counts_the_sample_only_and_gives_its_interval(work):
    names = [f"nas.stats.x_f__mutmut_{i}" for i in range(1, 11)]
    sample = names[:5]
    found = dict.fromkeys(names, "not checked")
    found |= dict.fromkeys(sample[:3], "killed") | {sample[3]: "survived", sample[4]: "survived"}
    found[names[9]] = "survived"  # checked, but not drawn: it counts nowhere
    figures = mutation.score(found, {sample[4]: "the same"}, sample)
    assert figures == {
        "mutants": 10,
        "checked": 5,
        "killed": 3,
        "survived": 2,
        "no_tests": 0,
        "equivalent": 1,
        "score": 0.75,
        "sample": 5,
        "interval": [round(x, 4) for x in mutation.wilson_interval(3, 4)],
    }
    assert mutation._figure(figures) == "75.0% [30.1%, 95.4%] (sample of 5)"


def test_a_sampled_run_checks_only_the_drawn_mutants_not_yet_checked(work, monkeypatch):
    names = [f"nas.stats.x_f__mutmut_{i}" for i in range(1, 21)]
    drawn = mutation.sample_of(names, 6, seed=3)
    work("nas/stats.py", dict.fromkeys(names) | {drawn[0]: 1})  # one checked already
    monkeypatch.setattr(mutation, "mutant_names", lambda module: names)
    calls = []
    monkeypatch.setattr(mutation.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    mutation.run(["nas/stats.py"], sample=6, seed=3)
    assert calls[0][3:] == ["run", *drawn[1:]]
    # All of the sample checked: nothing runs.
    work("nas/stats.py", dict.fromkeys(names) | dict.fromkeys(drawn, 1))
    mutation.run(["nas/stats.py"], sample=6, seed=3)
    assert len(calls) == 1


def test_mutants_are_listed_from_the_source_as_mutmut_names_them(work, tmp_path):
    source = tmp_path / "repo" / "nas" / "pareto.py"
    source.parent.mkdir()
    source.write_text("def add(a, b):\n    return a + b\n")
    names = mutation.mutant_names("nas/pareto.py")
    assert names and all(n.startswith("nas.pareto.x_add__mutmut_") for n in names)
    assert len(set(names)) == len(names)


def test_before_figures_of_a_module_the_older_run_lacks_are_refused(work, tmp_path):
    older = tmp_path / "older.json"
    older.write_text(json.dumps({"nas/pareto.py": {"now": {"score": 0.25}}}))
    with pytest.raises(ValueError, match=r"has no figures of nas/stats\.py"):
        mutation.render(
            ["nas/stats.py"], tmp_path / "m.md", "cmd", before=(older, ["nas/stats.py"])
        )
