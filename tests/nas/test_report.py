"""The trials table, the Pareto front and the hypervolume history of a study."""

import dataclasses
import json
import math

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState, create_trial

from nas import trial_schema as schema
from nas.config import StudyConfig
from nas.pareto import front_trials
from nas.pruning import finish_pruned
from nas.report import (
    front_frame,
    hypervolume_history,
    reference_point,
    trials_frame,
    write_report,
)
from nas.worker import run_search


def _hand_made_study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_acc", "flops"])
    for acc, flops, pruned in [
        (0.9, 100.0, False),
        (0.8, 50.0, False),
        (0.7, 80.0, False),  # dominated by trial 1
        (0.95, 10.0, True),  # pruned: would dominate everything, never on the front
        (0.6, 20.0, False),
    ]:
        trial = study.ask({"block": optuna.distributions.CategoricalDistribution(["se", "eca"])})
        schema.SUMMARY.set(trial, f"acc {acc}")
        schema.COST.set(trial, {"flops": flops, "params": flops / 10})
        schema.EPOCHS_RUN.set(trial, 2 if pruned else 5)
        if pruned:
            finish_pruned(study, trial, [acc, flops])
        else:
            study.tell(trial, [acc, flops])
    return study


def test_front_is_the_non_dominated_complete_trials():
    study = _hand_made_study()
    assert [t.number for t in front_trials(study)] == [0, 1, 4]
    front = front_frame(study)
    assert list(front["trial"]) == [0, 1, 4]  # best accuracy first
    assert list(front.columns[:4]) == ["trial", "summary", "val_acc", "flops"]
    assert "cost_params" in front.columns and "cost_flops" not in front.columns


def test_trials_frame_columns_and_pruned_rows():
    study = _hand_made_study()
    frame = trials_frame(study)
    for column in [
        "trial",
        "state",
        "summary",
        "val_acc",
        "flops",
        "on_front",
        "epochs",
        "pruned_at_epoch",
        "duration_s",
        "note",
        "cost_flops",
        "cost_params",
        "param_block",
    ]:
        assert column in frame.columns
    pruned = frame.set_index("trial").loc[3]
    assert pruned["state"] == "PRUNED" and not pruned["on_front"]
    assert pruned["val_acc"] == 0.95 and "pruned after 2 epochs" in pruned["note"]
    assert list(frame["on_front"]) == [True, True, False, False, True]
    assert (frame["duration_s"] >= 0).all()


def test_reference_point_defaults_and_overrides():
    study = _hand_made_study()
    ref = reference_point(study)
    # No baselines: accuracy's worst is the worst COMPLETE trial's (the pruned 0.95 is partial);
    # flops: 1.1 x the largest measured (pruned included).
    assert ref.worst == (0.6, pytest.approx(110.0)) and ref.ideal == (1.0, 0.0)
    assert (
        ref.describe()
        == "val_acc=0.6 (the worst complete trial), flops=110 (1.1 x the largest measured)"
    )
    assert reference_point(study, {"flops": 500.0}).worst == (0.6, 500.0)
    assert "flops=500 (set)" in reference_point(study, {"flops": 500.0}).describe()
    assert reference_point(study, {"val_acc": 0.0}).worst[0] == 0.0
    with pytest.raises(ValueError, match=r"unknown objectives.*latency"):
        reference_point(study, {"latency": 1.0})


def test_reference_accuracy_is_the_worst_complete_baseline():
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_acc", "flops"])
    for acc, baseline, pruned in [
        (0.8, "none", False),
        (0.7, "se", False),  # the worst complete baseline
        (0.2, "eca", True),  # a pruned baseline's partial accuracy does not count
        (0.5, "", False),  # nor does a searched trial's, where baselines completed
    ]:
        trial = study.ask()
        if baseline:
            schema.BASELINE.set(trial, baseline)
        if pruned:
            finish_pruned(study, trial, [acc, 10.0])
        else:
            study.tell(trial, [acc, 10.0])
    ref = reference_point(study)
    assert ref.worst[0] == 0.7 and "(the worst complete baseline, se)" in ref.describe()
    assert ref.to_dict()["basis"][0] == "the worst complete baseline, se"
    # Nothing complete yet: the bound.
    empty = optuna.create_study(directions=["maximize", "minimize"])
    empty.set_metric_names(["val_acc", "flops"])
    assert reference_point(empty).worst[0] == 0.0
    assert "no complete trial yet" in reference_point(empty).describe()


def test_hypervolume_history_over_trials_and_epochs():
    study = _hand_made_study()
    ref = reference_point(study)
    history = hypervolume_history(study, ref)
    assert list(history["trial"]) == [0, 1, 2, 3, 4]
    assert list(history["epochs_spent"]) == [5, 10, 15, 17, 22]
    assert list(history["finished"]) == [1, 2, 3, 4, 5]
    # By hand, against the reference (0.6, 110): trial 0 alone is 0.3 x 10 = 3; trial 1 adds
    # 0.2 x 60 less the 0.2 x 10 they share, 13; the dominated trial 2, the pruned trial 3 and
    # trial 4 (at the reference accuracy) add nothing.
    expected = [3.0, 13.0, 13.0, 13.0, 13.0]
    assert list(history["hypervolume"]) == pytest.approx(expected, rel=1e-12)
    box = (1.0 - 0.6) * 110.0
    assert list(history["hypervolume_norm"]) == pytest.approx([v / box for v in expected])


def test_write_report_on_a_real_search(tiny_config, tmp_path):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 4}))
    study = run_search(cfg, progress=False)
    paths = write_report(study, tmp_path / "report")
    trials = pd.read_csv(paths["trials"])
    assert len(trials) == 4 and {"val_acc", "flops", "cost_params", "epochs"} <= set(trials)
    assert any(c.startswith("param_") for c in trials.columns)
    front = pd.read_csv(paths["front"])
    # Optuna's front, each architecture once (a duplicate reuses its original's values).
    expected = {t.number for t in study.best_trials if not schema.DUPLICATE_OF.has(t)}
    assert set(front["trial"]) == expected
    summary = json.loads(paths["summary"].read_text())
    assert summary["reference"]["names"] == ["val_acc", "flops"]
    # Two epochs per trial; a duplicate architecture reuses its original's result for free.
    trained = [t for t in study.trials if not schema.DUPLICATE_OF.has(t)]
    assert summary["trials"] == {"COMPLETE": 4} and summary["epochs_spent"] == 2 * len(trained)
    assert 0 < summary["hypervolume_norm"] <= 1
    history = pd.read_csv(paths["hypervolume"])
    assert math.isclose(history["hypervolume"].iloc[-1], summary["hypervolume"])


def test_empty_study_gives_empty_tables():
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert trials_frame(study).empty and front_frame(study).empty
    assert hypervolume_history(study).empty


def test_nas_report_command(tiny_config, tmp_path, capsys):
    from nas.cli import main

    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 3}))
    study = run_search(cfg, progress=False)
    args = ["report", "tiny", "--runs-dir", cfg.study.runs_dir]
    assert main([*args, "--reference", "val_acc=0", "--reference", "flops=1e9"]) == 0
    out = capsys.readouterr().out
    assert "against the reference point val_acc=0 (set), flops=1e+09 (set)" in out
    report = tmp_path / "runs" / "tiny" / "report"
    columns = ["trial", "state", "val_acc", "flops", "on_front"]
    written = pd.read_csv(report / "trials.csv")[columns]
    pd.testing.assert_frame_equal(written, trials_frame(study)[columns], check_dtype=False)
    facts = json.loads((report / "summary.json").read_text())
    assert facts["reference"]["worst"] == [0.0, 1e9]
    assert main([*args, "--reference", "flops"]) == 2
    assert "use NAME=NUMBER" in capsys.readouterr().err
    assert main([*args, "--reference", "latency=3"]) == 2
    assert "unknown objectives ['latency']" in capsys.readouterr().err
    assert main(["report", "missing", "--runs-dir", str(tmp_path)]) == 2
    assert "no study storage" in capsys.readouterr().err


def test_nas_dashboard_html_and_report_html(tiny_config, tmp_path, capsys):
    from nas.cli import main

    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 3}))
    run_search(cfg, progress=False)
    args = ["tiny", "--runs-dir", cfg.study.runs_dir]
    assert main(["dashboard", *args, "--html", str(tmp_path / "d.html")]) == 0
    assert "<html" in (tmp_path / "d.html").read_text()[:2000].lower()
    assert main(["report", *args, "--html", "--reference", "val_acc=0"]) == 0
    report = tmp_path / "runs" / "tiny" / "report"
    text = (report / "dashboard.html").read_text()
    facts = json.loads((report / "summary.json").read_text())
    # The page states the report's own facts: its reference point and hypervolume.
    assert "<title>tiny - attention-nas dashboard</title>" in text
    assert f"hypervolume {facts['hypervolume']:.6g} (normalised" in text
    assert "reference point val_acc=0 (set), flops=" in text
    assert main(["dashboard", *args, "--html", str(tmp_path / "e.html"), "--reference", "x"]) == 2


HISTORY_COLUMNS = [
    "trial",
    "finished",
    "epochs_spent",
    "elapsed_s",
    "hypervolume",
    "hypervolume_norm",
]


def test_a_study_with_nothing_finished_reports_zeros():
    from nas.report import Reference, summary

    study = optuna.create_study(directions=["maximize", "minimize"], study_name="empty")
    reference = Reference(("val_acc", "flops"), ("maximize", "minimize"), (0.5, 10.0), (1.0, 0.0))
    history = hypervolume_history(study, reference)
    assert list(history.columns) == HISTORY_COLUMNS and history.empty
    report = summary(study, reference)
    assert report["study"] == "empty"
    assert report["objectives"] == {"val_acc": "maximize", "flops": "minimize"}
    assert (report["epochs_spent"], report["hypervolume"], report["hypervolume_norm"]) == (
        0,
        0.0,
        0.0,
    )


def test_hypervolume_history_follows_completion_time_and_the_given_reference():
    """Trial 1 finished before trial 0 (two workers): the history lists it first, with the
    seconds since the first start; the summary measures against the reference it is given."""
    import datetime

    from nas.report import Reference, summary

    study = optuna.create_study(directions=["maximize", "minimize"])
    start = datetime.datetime(2026, 12, 6, 12, 0, 0)
    for values, started, completed in (([0.8, 4.0], 0, 30), ([0.6, 2.0], 5, 20)):
        trial = optuna.trial.create_trial(values=values, user_attrs={"epochs_run": 3})
        trial.datetime_start = start + datetime.timedelta(seconds=started)
        trial.datetime_complete = start + datetime.timedelta(seconds=completed)
        study.add_trial(trial)
    reference = Reference(("val_acc", "flops"), ("maximize", "minimize"), (0.5, 10.0), (1.0, 0.0))
    history = hypervolume_history(study, reference)
    assert list(history["trial"]) == [1, 0] and list(history["elapsed_s"]) == [20.0, 30.0]
    # By hand: (0.6 - 0.5) x (10 - 2) = 0.8, then + (0.8 - 0.6) x (10 - 4) = 2.0.
    assert list(history["hypervolume"]) == pytest.approx([0.8, 2.0])
    assert list(history["hypervolume_norm"]) == pytest.approx([0.8 / 5.0, 2.0 / 5.0])
    assert summary(study, reference)["hypervolume"] == pytest.approx(2.0)


def test_a_reference_without_basis_names_only_its_values():
    from nas.report import Reference

    reference = Reference(("val_acc", "flops"), ("maximize", "minimize"), (0.5, 1e6), (1.0, 0.0))
    assert reference.describe() == "val_acc=0.5, flops=1e+06"
    with_basis = dataclasses.replace(reference, basis=("the worst baseline", ""))
    assert with_basis.describe() == "val_acc=0.5 (the worst baseline), flops=1e+06"


def test_write_report_writes_each_table_as_computed_into_a_new_nested_folder(tmp_path):
    """Every table read back is the frame the report computes (no index column), under the
    documented names, in a folder created with its parents."""
    from nas.report import summary

    study = _hand_made_study()
    out = tmp_path / "reports" / "2026" / "study"
    paths = write_report(study, out, {"val_acc": 0.0})
    assert {name: path.name for name, path in paths.items()} == {
        "trials": "trials.csv",
        "front": "front.csv",
        "hypervolume": "hypervolume.csv",
        "summary": "summary.json",
    }
    reference = reference_point(study, {"val_acc": 0.0})
    history = hypervolume_history(study, reference)
    for name, frame in (("front", front_frame(study)), ("hypervolume", history)):
        written = pd.read_csv(paths[name])
        assert list(written.columns) == list(frame.columns)
        assert len(written) == len(frame)
    assert list(pd.read_csv(paths["hypervolume"])["hypervolume"]) == pytest.approx(
        list(history["hypervolume"])
    )
    assert list(pd.read_csv(paths["trials"]).columns) == list(trials_frame(study).columns)
    stored = json.loads(paths["summary"].read_text())
    assert stored["hypervolume"] == pytest.approx(summary(study, reference)["hypervolume"])
    assert "confirm" not in stored


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_front_table_lists_the_best_first_objective_first(direction):
    """Front members in trial order are cheap-and-worse first; the table lists them by the first
    objective, best first whichever its direction (the minimised study stores the values
    negated), ties by trial number."""
    study = optuna.create_study(directions=[direction, "minimize"])
    study.set_metric_names(["val_acc", "flops"])
    sign = 1 if direction == "maximize" else -1
    for accuracy, flops in ((0.70, 1.0), (0.80, 2.0), (0.90, 3.0), (0.90, 3.0)):
        study.add_trial(optuna.trial.create_trial(values=[sign * accuracy, flops]))
    assert list(front_frame(study)["trial"]) == [2, 3, 1, 0]


# -- the reference point, objective by objective ---------------------------------------------------


def _study_of(directions, names, trials=()) -> optuna.Study:
    """An in-memory study of hand-made trials: ``(values, user_attrs)`` or a FrozenTrial."""
    study = optuna.create_study(directions=directions)
    study.set_metric_names(names)
    for trial in trials:
        if isinstance(trial, tuple):
            values, attrs = trial
            trial = create_trial(values=values, user_attrs=attrs)
        study.add_trial(trial)
    return study


def test_reference_point_measures_only_the_trials_it_is_given():
    """A caller may pass the trials to measure (e.g. the study as of an earlier time): the
    reference then ignores the others."""
    study = _hand_made_study()
    ref = reference_point(study, trials=[study.trials[1], study.trials[4]])
    # Complete accuracies 0.8 and 0.6; flops 50 and 20: 1.1 x 50.
    assert ref.worst == (0.6, pytest.approx(55.0)) and ref.ideal == (1.0, 0.0)
    assert reference_point(study).worst == (0.6, pytest.approx(110.0))


def test_a_minimised_accuracy_is_referenced_at_its_bound():
    """A minimised accuracy has no baseline rule: its worst is the bound 1 and its ideal 0."""
    study = _study_of(["minimize", "minimize"], ["val_acc", "flops"], [([0.3, 20.0], {})])
    ref = reference_point(study)
    assert ref.worst == (1.0, pytest.approx(22.0)) and ref.ideal == (0.0, 0.0)
    assert ref.describe() == "val_acc=1 (the bound), flops=22 (1.1 x the largest measured)"


def test_another_maximised_objective_spans_its_observed_values():
    """A maximised objective without known bounds (throughput) is referenced at its smallest
    observed value (a pruned trial's included), with the largest as ideal."""
    study = _study_of(
        ["maximize", "maximize"],
        ["val_acc", "throughput"],
        [([0.8, 200.0], {}), ([0.7, 50.0], {}), ([0.9, 120.0], {})],
    )
    study.add_trial(create_trial(state=TrialState.PRUNED, values=[0.6, 80.0]))
    ref = reference_point(study)
    assert ref.worst == (0.7, 50.0) and ref.ideal == (1.0, 200.0)
    assert ref.basis == ("the worst complete trial", "the smallest observed")
    assert ref.describe() == (
        "val_acc=0.7 (the worst complete trial), throughput=50 (the smallest observed)"
    )


def test_reference_point_before_any_trial_finished():
    """Nothing measured yet: accuracy at its bound 0, another maximised objective between 0 and
    1, a cost at 1 with ideal 0, each saying so."""
    study = _study_of(["maximize", "maximize", "minimize"], ["val_acc", "throughput", "flops"])
    ref = reference_point(study)
    assert ref.worst == (0.0, 0.0, 1.0) and ref.ideal == (1.0, 1.0, 0.0)
    assert ref.describe() == (
        "val_acc=0 (the bound: no complete trial yet), throughput=0 (the smallest observed), "
        "flops=1 (1.1 x the largest measured)"
    )


# -- the tables' rows -----------------------------------------------------------------------------


def test_empty_tables_keep_their_documented_columns():
    study = _study_of(["maximize", "minimize"], ["val_acc", "flops"])
    assert list(trials_frame(study).columns) == [
        "trial",
        "state",
        "summary",
        "baseline",
        "val_acc",
        "flops",
        "val_acc_se",
        "on_front",
        "tied_with_front",
        "epochs",
        "pruned_at_epoch",
        "duration_s",
        "worker",
        "note",
    ]
    assert list(front_frame(study).columns) == [
        "trial",
        "summary",
        "val_acc",
        "flops",
        "val_acc_se",
        "epochs",
        "baseline",
    ]


def test_trials_table_notes_say_why_a_trial_ended_and_what_it_retries():
    """The note keeps a failure reason verbatim, says how far a pruned trial trained and whose
    result a duplicate reused, and appends the trial a retry repeats."""
    study = _study_of(["maximize", "minimize"], ["val_acc", "flops"])
    for state, values, attrs in [
        (TrialState.FAIL, None, {"fail_reason": "XLA device lost", "retry_of": 0}),
        (TrialState.COMPLETE, [0.8, 5.0], {"retry_of": 1, "epochs_run": 4}),
        (TrialState.PRUNED, [0.5, 5.0], {"retry_of": 1, "epochs_run": 2}),
        (TrialState.COMPLETE, [0.8, 5.0], {"duplicate_of": 1}),
        (TrialState.FAIL, None, {"fail_reason": "CUDA out of memory"}),
    ]:
        study.add_trial(create_trial(state=state, values=values, user_attrs=attrs))
    assert list(trials_frame(study)["note"]) == [
        "XLA device lost; retry of trial 0",
        "retry of trial 1",
        "pruned after 2 epochs; retry of trial 1",
        "duplicate of trial 1",
        "CUDA out of memory",
    ]


def test_trials_table_leaves_what_a_trial_did_not_record_blank():
    """A trial written without the engine's attrs has empty text fields and NaN numbers; a
    queued trial has no duration; only a PRUNED trial has a pruned-at epoch (a trial failed as
    stale while being pruned keeps the attr, not the state)."""
    study = _study_of(["maximize", "minimize"], ["val_acc", "flops"], [([0.8, 5.0], {})])
    study.add_trial(
        create_trial(state=TrialState.PRUNED, values=[0.5, 5.0], user_attrs={"pruned_at_epoch": 1})
    )
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"pruned_at_epoch": 3}))
    study.enqueue_trial({})
    frame = trials_frame(study)
    bare = frame.iloc[0]
    assert (bare["summary"], bare["baseline"], bare["worker"], bare["note"]) == ("", "", "", "")
    assert frame["val_acc_se"].dtype == float and frame["val_acc_se"].isna().all()
    assert list(frame["state"]) == ["COMPLETE", "PRUNED", "FAIL", "WAITING"]
    assert frame["pruned_at_epoch"].iloc[1] == 1
    assert frame["pruned_at_epoch"].drop(index=1).isna().all()
    assert frame["duration_s"].iloc[:3].notna().all() and math.isnan(frame["duration_s"].iloc[3])


def test_trials_table_states_who_ran_a_trial_and_what_it_is():
    attrs = {
        "summary": "resnet8 se@2",
        "baseline": "se",
        "worker": "node3:4242",
        "val_acc_se": 0.01,
    }
    study = _study_of(["maximize", "minimize"], ["val_acc", "flops"], [([0.8, 5.0], attrs)])
    row = trials_frame(study).iloc[0]
    assert (row["summary"], row["baseline"], row["worker"]) == ("resnet8 se@2", "se", "node3:4242")
    assert row["val_acc_se"] == 0.01


# -- baselines, history, summary ------------------------------------------------------------------


def test_baseline_gains_compare_the_most_accurate_front_member_and_baseline():
    """With two costs the most accurate front member (trial 0) is not the costliest in flops
    (trial 1, on the front for its latency), and the most accurate baseline (se) is not the one
    with the most flops (none): gains are measured from accuracy alone."""
    from nas.report import baseline_gains

    study = _study_of(
        ["maximize", "minimize", "minimize"],
        ["val_acc", "flops", "latency"],
        [
            ([0.90, 100.0, 5.0], {"val_acc_se": 0.01}),
            ([0.85, 200.0, 1.0], {"val_acc_se": 0.01}),
            ([0.80, 10.0, 10.0], {"baseline": "none", "val_acc_se": 0.01}),
            ([0.84, 5.0, 10.0], {"baseline": "se", "val_acc_se": 0.02}),
        ],
    )
    facts = baseline_gains(study)
    assert facts["best_front"] == {
        "trial": 0,
        "summary": "",
        "val_acc": 0.90,
        "val_acc_se": 0.01,
    }
    assert facts["best_baseline"]["name"] == "se" and facts["best_baseline"]["trial"] == 3
    vs_se = facts["vs_best_baseline"]
    assert vs_se["gain"] == pytest.approx(0.06)
    assert vs_se["se"] == pytest.approx(math.sqrt(0.01**2 + 0.02**2))
    assert vs_se["exceeds_noise"] is True  # 0.06 > 2 x 0.0224
    assert facts["none"]["trial"] == 2 and facts["vs_none"]["gain"] == pytest.approx(0.10)


def test_hypervolume_is_zero_until_a_trial_completes():
    """A pruned trial's partial values and a failed trial add nothing: the history starts at 0
    and rises with the first complete trial."""
    from nas.report import Reference

    study = _study_of(["maximize", "minimize"], ["val_acc", "flops"])
    study.add_trial(
        create_trial(state=TrialState.PRUNED, values=[0.95, 1.0], user_attrs={"epochs_run": 1})
    )
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"epochs_run": 2}))
    study.add_trial(create_trial(values=[0.8, 6.0], user_attrs={"epochs_run": 3}))
    reference = Reference(("val_acc", "flops"), ("maximize", "minimize"), (0.5, 10.0), (1.0, 0.0))
    history = hypervolume_history(study, reference)
    assert list(history["trial"]) == [0, 1, 2]
    assert list(history["finished"]) == [1, 1, 2] and list(history["epochs_spent"]) == [1, 3, 6]
    # By hand: (0.8 - 0.5) x (10 - 6) = 1.2 of a box of 0.5 x 10.
    assert list(history["hypervolume"]) == pytest.approx([0.0, 0.0, 1.2])
    assert list(history["hypervolume_norm"]) == pytest.approx([0.0, 0.0, 0.24])


def test_summary_reports_the_last_row_of_the_history_it_is_given():
    """Given a history (the study as of trial 0), the summary states its last row, not the
    study's present hypervolume."""
    from nas.report import summary

    study = _hand_made_study()
    reference = reference_point(study)
    history = hypervolume_history(study, reference)
    early = summary(study, reference, history.iloc[:1])
    assert early["epochs_spent"] == 5 and early["hypervolume"] == pytest.approx(3.0)
    assert early["hypervolume_norm"] == pytest.approx(3.0 / 44.0)
    assert summary(study, reference)["hypervolume"] == pytest.approx(13.0)


def test_summary_lists_the_trials_tied_with_the_front():
    """Trial 1 is 1 point below trial 0 at more flops, within 2 standard errors (1.41 points):
    tied; trial 2, 10 points below, is not."""
    from nas.report import summary

    study = _study_of(
        ["maximize", "minimize"],
        ["val_acc", "flops"],
        [
            ([0.90, 100.0], {"val_acc_se": 0.01}),
            ([0.89, 120.0], {"val_acc_se": 0.01}),
            ([0.80, 120.0], {"val_acc_se": 0.01}),
        ],
    )
    facts = summary(study, reference_point(study))
    assert facts["tied_with_front"] == [1] and facts["front_size"] == 1
    assert list(trials_frame(study)["tied_with_front"]) == [False, True, False]


# -- the report on disk ---------------------------------------------------------------------------


def test_summary_json_is_indented_by_two_spaces_and_ends_with_a_newline(tmp_path):
    paths = write_report(_hand_made_study(), tmp_path)
    text = paths["summary"].read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    assert text.startswith('{\n  "study": ')


def _searched_with_confirm(complete: bool):
    """A searched study and its confirm study in one storage: ``trial 1`` and ``baseline
    none`` repeated with 3 seeds each; where not ``complete`` the last run of ``trial 1``
    failed and has no complete trial yet."""
    storage = optuna.storages.InMemoryStorage()
    searched = optuna.create_study(
        storage=storage, study_name="searched", directions=["maximize", "minimize"]
    )
    searched.set_metric_names(["val_acc", "flops"])
    for values, attrs in [
        ([0.80, 10.0], {"baseline": "none"}),
        ([0.88, 30.0], {"summary": "se@2"}),
    ]:
        searched.add_trial(create_trial(values=values, user_attrs=attrs))
    confirm = optuna.create_study(
        storage=storage, study_name="searched-confirm", directions=["maximize", "minimize"]
    )
    confirm.set_metric_names(["val_acc", "flops"])
    keys = ["baseline none", "trial 1"]
    confirm.set_user_attr(
        schema.CONFIRM,
        {"of": "searched", "top": 1, "seeds": [0, 1, 2], "architectures": keys, "looks": [3]},
    )
    runs = {"baseline none": ([0.80, 0.81, 0.79], 10.0), "trial 1": ([0.86, 0.88, 0.87], 30.0)}
    for key, (accuracies, flops) in runs.items():
        for r, acc in enumerate(accuracies):
            attrs = {"replicate": r, "test_acc": acc - 0.01}
            if key == "baseline none":
                attrs["baseline"] = "none"
            else:
                attrs["source_trial"] = 1
            if not complete and key == "trial 1" and r == 2:
                confirm.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs))
            else:
                confirm.add_trial(create_trial(values=[acc, flops], user_attrs=attrs))
    return searched, confirm


def test_write_report_writes_the_confirm_table_once_every_planned_run_is_complete(tmp_path):
    """confirm.csv is the confirm study's table next to the search values it repeats, and the
    summary names the confirm study, its verdict and that no run is left."""
    from nas.confirm import confirm_frame, verdict

    searched, confirm = _searched_with_confirm(complete=True)
    paths = write_report(searched, tmp_path / "report")
    assert paths["confirm"] == tmp_path / "report" / "confirm.csv"
    table = pd.read_csv(paths["confirm"])
    expected = confirm_frame(confirm, searched)
    assert list(table.columns) == list(expected.columns)
    assert list(table["architecture"]) == list(expected["architecture"])
    row = table.set_index("architecture").loc["trial 1"]
    assert row["seeds"] == 3 and row["val_acc_mean"] == pytest.approx(0.87)
    assert row["search_val_acc"] == pytest.approx(0.88)  # searched trial 1's value
    stored = json.loads(paths["summary"].read_text())
    assert stored["confirm"] == {
        "study": "searched-confirm",
        "verdict": verdict(expected),
        "unfinished_runs": 0,
    }
    assert stored["confirm"]["verdict"].startswith("best gain over none: trial 1, +7.00 points")


def test_write_report_keeps_the_last_complete_confirm_table_while_runs_are_unfinished(tmp_path):
    """A confirmation with a run still unfinished is reported in the summary (how many runs are
    left), and never overwrites a complete confirm.csv already written."""
    searched, _ = _searched_with_confirm(complete=False)
    out = tmp_path / "report"
    out.mkdir()
    (out / "confirm.csv").write_text("the complete table\n")
    paths = write_report(searched, out)
    assert "confirm" not in paths
    assert (out / "confirm.csv").read_text() == "the complete table\n"
    stored = json.loads(paths["summary"].read_text())
    assert stored["confirm"]["study"] == "searched-confirm"
    assert stored["confirm"]["unfinished_runs"] == 1
