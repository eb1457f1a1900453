"""A confirmation's plan on in-memory studies (no training): which confirmations ``nas confirm``
resumes and what it says when it will not, and what a plan is made of (seeds, counts, the
searched config, the planned architectures, failed runs queued again)."""

import numpy as np
import optuna
import pytest

from nas import trial_schema as schema
from nas.confirm.planning import _check_resumable

ARCHS = ["baseline none", "trial 3"]


def _confirm(plan: dict | None, waiting: int = 0) -> optuna.Study:
    """An in-memory study named like a confirmation, holding ``plan`` and ``waiting`` queued
    runs (not finished)."""
    study = optuna.create_study(study_name="quick-confirm", directions=["maximize"])
    if plan is not None:
        study.set_user_attr(schema.CONFIRM, plan)
    for _ in range(waiting):
        study.enqueue_trial({})
    return study


def _plan(looks: list[int], top: int = 1, **extra) -> dict:
    plan = {"of": "quick", "top": top, "seeds": list(range(looks[-1])), "architectures": ARCHS}
    plan["looks"] = looks
    return {**plan, **extra}


def test_the_same_plan_resumes_and_a_finished_fixed_one_extends_to_a_sequential_design():
    stored = _plan([2], comparison="dunnett")
    _check_resumable(_confirm(stored), stored)
    _check_resumable(_confirm(stored), _plan([2, 4, 6], comparison="dunnett"))


def test_a_study_that_is_no_confirmation_is_refused_with_the_fix():
    with pytest.raises(ValueError) as err:
        _check_resumable(_confirm(None), _plan([2]))
    assert str(err.value) == (
        "study 'quick-confirm' exists and is not a confirm study; give the confirmation another "
        "name (--name)"
    )


@pytest.mark.parametrize(
    ("asked", "stored_option"),
    [
        (_plan([3]), "--top 1 --seeds 2"),  # other seeds
        (_plan([2], top=2), "--top 1 --seeds 2"),  # other top
        (_plan([2, 4, 6], top=2), "--top 1 --seeds 2"),  # an extension must keep top
        (_plan([3, 6]), "--top 1 --seeds 2"),  # an extension must start from the same seeds
    ],
)
def test_other_seeds_or_top_are_refused_naming_the_options_it_started_with(asked, stored_option):
    with pytest.raises(ValueError) as err:
        _check_resumable(_confirm(_plan([2])), asked)
    assert str(err.value) == (
        f"'quick-confirm' was started with {stored_option}; resume it with those (its finished "
        "runs are kept), or start another confirmation with --name"
    )


def test_a_sequential_plan_is_not_shrunk_or_changed_back_to_fixed_seeds():
    stored = _plan([3, 6], comparison="dunnett")
    with pytest.raises(ValueError, match="started with --top 1 --seeds 3 --max-seeds 6; resume"):
        _check_resumable(_confirm(stored), _plan([3]))
    with pytest.raises(ValueError, match="started with --top 1 --seeds 3 --max-seeds 6; resume"):
        _check_resumable(_confirm(stored), _plan([3, 6, 9], comparison="dunnett"))


def test_a_changed_front_is_refused_with_both_lists():
    asked = {**_plan([2]), "architectures": ["baseline none", "trial 7"]}
    with pytest.raises(ValueError) as err:
        _check_resumable(_confirm(_plan([2])), asked)
    assert str(err.value) == (
        "the front of 'quick' changed since 'quick-confirm' was planned (then: ['baseline none', "
        "'trial 3'], now: ['baseline none', 'trial 7']); confirm the new front under another "
        "name (--name), or report the confirmation that exists"
    )


def test_an_extension_waits_until_every_run_of_the_fixed_plan_has_finished():
    with pytest.raises(ValueError) as err:
        _check_resumable(_confirm(_plan([2]), waiting=3), _plan([2, 4, 8], comparison="holm"))
    assert str(err.value) == (
        "'quick-confirm' has 3 unfinished runs: finish it first (nas confirm ... --top 1 "
        "--seeds 2 resumes it), then add --max-seeds 8 to extend it"
    )
    # Unfinished runs of the same plan are what a resume is for.
    _check_resumable(_confirm(_plan([2]), waiting=3), _plan([2]))


def test_rounds_keep_their_comparison_and_a_plan_stored_without_one_decides_by_dunnett():
    old = _plan([3, 6])  # stored before --comparison existed
    _check_resumable(_confirm(old), _plan([3, 6], comparison="dunnett"))
    with pytest.raises(ValueError) as err:
        _check_resumable(_confirm(old), _plan([3, 6], comparison="holm"))
    assert str(err.value) == (
        "'quick-confirm' decides its rounds with --comparison dunnett; resume it with that, or "
        "start another confirmation with --name"
    )
    holm = _plan([3, 6], comparison="holm")
    with pytest.raises(ValueError, match="decides its rounds with --comparison holm; resume"):
        _check_resumable(_confirm(holm), _plan([3, 6], comparison="dunnett"))
    # One look has no rounds: its comparison is only a report setting, re-judged freely.
    _check_resumable(_confirm(_plan([2], comparison="holm")), _plan([2], comparison="dunnett"))


def _trial(state: str, values=None, params=None, **attrs) -> optuna.trial.FrozenTrial:
    """A trial in ``state`` with ``values``, ``params`` (choices of a block) and user attrs."""
    names = list(params or {})
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState[state],
        values=values,
        params=params or {},
        distributions={
            n: optuna.distributions.CategoricalDistribution(["se", "none"]) for n in names
        },
        user_attrs=attrs,
    )


def _failed(
    study: optuna.Study, replicate: int, reason: str | None, baseline: str = "none", params=None
):
    attrs = {schema.REPLICATE.key: replicate, schema.BASELINE.key: baseline}
    if reason is not None:
        attrs[schema.FAIL_REASON.key] = reason
    study.add_trial(_trial("FAIL", params=params, **attrs))


def test_a_run_gives_up_after_max_attempts_failures_quoting_the_last_reason():
    from nas.confirm.runs import MAX_ATTEMPTS, GaveUp, gave_up

    study = _confirm(_plan([2]))
    for attempt in range(MAX_ATTEMPTS):
        _failed(study, 0, f"OOM {attempt}")
    for attempt in range(MAX_ATTEMPTS - 1):  # one short of the cap: queued again, not given up
        _failed(study, 1, f"OOM {attempt}")
    for _ in range(MAX_ATTEMPTS):
        _failed(study, 0, None, baseline="se")
    assert gave_up(study) == [
        GaveUp(0, "baseline none", MAX_ATTEMPTS, f"OOM {MAX_ATTEMPTS - 1}"),
        GaveUp(0, "baseline se", MAX_ATTEMPTS, ""),
    ]
    assert gave_up(study)[1].describe() == (
        f"baseline se repeat 0 ({MAX_ATTEMPTS} failed, the last: no reason recorded)"
    )


def test_the_newest_confirmation_of_a_study_is_found_in_its_storage():
    from nas.confirm.planning import find_confirm_study

    storage = optuna.storages.InMemoryStorage()
    searched = optuna.create_study(study_name="quick", storage=storage)
    assert find_confirm_study(searched) is None
    optuna.create_study(study_name="plain", storage=storage)  # no plan at all
    for name, of in [("quick-confirm", "quick"), ("quick-b", "quick"), ("other-confirm", "other")]:
        study = optuna.create_study(study_name=name, storage=storage)
        study.set_user_attr(schema.CONFIRM, {"of": of})
    found = find_confirm_study(searched)
    assert found is not None and found.study_name == "quick-b"
    other = optuna.create_study(study_name="other", storage=storage)
    assert find_confirm_study(other).study_name == "other-confirm"


# -- what a plan is made of: seeds, counts, the searched config, failed runs queued again ------


def test_repeat_seeds_are_stable_31_bit_draws_of_the_study_seed():
    """A resumed confirmation must draw the seeds it started with, release after release."""
    from nas.confirm.planning import confirm_seeds

    assert confirm_seeds(0, 3) == [1119383258, 406786280, 1951393159]
    seeds = confirm_seeds(7, 50)
    assert len(set(seeds)) == 50 and all(0 <= s < 2**31 for s in seeds)
    assert confirm_seeds(7, 3) == seeds[:3]


@pytest.mark.parametrize(
    ("top", "seeds", "max_seeds", "message"),
    [
        (True, 3, None, "--top must be an int >= 1 (front architectures to repeat), got True"),
        ("2", 3, None, "--top must be an int >= 1 (front architectures to repeat), got '2'"),
        (
            1,
            True,
            None,
            "--seeds must be an int >= 2 or auto, got True: an interval needs at least two seeds "
            "(one seed has no spread to estimate); use --seeds 3 or more",
        ),
        (
            1,
            "3",
            None,
            "--seeds must be an int >= 2 or auto, got '3': an interval needs at least two seeds "
            "(one seed has no spread to estimate); use --seeds 3 or more",
        ),
        (1, "auto", True, "--max-seeds must be an int >= 2, got True"),
        (1, "auto", "5", "--max-seeds must be an int >= 2, got '5'"),
        (1, "auto", 1, "--max-seeds must be an int >= 2, got 1"),
        (
            1,
            5,
            3,
            "--max-seeds 3 is below --seeds 5: give --max-seeds >= 5 (the budget per "
            "architecture), or leave --max-seeds out for a fixed design",
        ),
        (
            1,
            "auto",
            None,
            "--seeds auto needs a budget: add --max-seeds N (the most seeds any architecture "
            "gets, e.g. --max-seeds 10)",
        ),
    ],
)
def test_bad_counts_are_refused_by_whole_message(top, seeds, max_seeds, message):
    from nas.confirm.planning import _check_counts

    with pytest.raises(ValueError) as err:
        _check_counts(top, seeds, max_seeds, None)
    assert str(err.value) == message


def test_the_smallest_counts_are_accepted_and_a_bad_comparison_is_refused_first():
    from nas.confirm.planning import _check_counts, prepare_confirm

    _check_counts(1, 2, 2, "holm")  # two seeds, a budget of two: the least that has a spread
    _check_counts(1, "auto", 2, "dunnett")
    with pytest.raises(ValueError) as err:  # before the study is even read
        prepare_confirm(_confirm(None), "journal.log", top=1, seeds=2, comparison="bogus")
    assert str(err.value) == "--comparison must be one of dunnett, holm, got 'bogus'"


def test_a_study_without_a_complete_trial_has_nothing_to_confirm(tiny_config):
    from nas.config import StudyConfig
    from nas.confirm.planning import prepare_confirm

    cfg = StudyConfig.from_dict(tiny_config())
    study = optuna.create_study(study_name="tiny", directions=cfg.objectives.directions)
    study.set_user_attr(schema.STUDY_CONFIG, cfg.to_dict())
    with pytest.raises(ValueError) as err:
        prepare_confirm(study, cfg.study.storage_url(), top=1, seeds=2)
    assert str(err.value) == (
        "study 'tiny' has no complete (feasible) trial to confirm; run the search further "
        "(nas search) first"
    )


def test_queueing_skips_the_runs_already_there_and_queues_the_rest():
    from nas.confirm.planning import Planned, _enqueue

    study = _confirm(_plan([2]))
    none = Planned("baseline none", {"block": "none"}, None, "none")
    trial = Planned("trial 3", {"block": "se"}, 3, None)
    _enqueue(study, [(0, none)])
    _enqueue(study, [(0, none), (1, none), (0, trial)])
    queued = [
        (t.user_attrs[schema.REPLICATE.key], t.user_attrs.get(schema.BASELINE.key))
        for t in study.get_trials()
    ]
    assert queued == [(0, "none"), (1, "none"), (0, None)]


def test_the_confirm_config_keeps_the_searched_artifact_store_and_samples_nothing(tiny_config):
    from nas.config import StudyConfig
    from nas.confirm.planning import confirm_config

    cfg = StudyConfig.from_dict(tiny_config(study={"sampler": "tpe"}))
    confirm = confirm_config(cfg, "sqlite:///elsewhere.db", 12, "tiny-confirm")
    assert confirm.study.artifacts == cfg.study.artifacts_url()  # weights beside the search's
    assert (confirm.study.sampler, confirm.study.n_trials) == ("random", 12)
    assert (confirm.study.name, confirm.study.storage) == ("tiny-confirm", "sqlite:///elsewhere.db")


def test_the_searched_config_is_refused_by_whole_message_where_it_cannot_be_trusted(tiny_config):
    from nas.config import StudyConfig
    from nas.confirm.planning import searched_config

    cfg = StudyConfig.from_dict(tiny_config())
    study = optuna.create_study(study_name="tiny", directions=["maximize"])
    with pytest.raises(ValueError) as err:
        searched_config(study, None, "journal.log")
    assert str(err.value) == (
        "study 'tiny' was not created by `nas search` (no stored config); `nas confirm` repeats "
        "the trials of a nas search study"
    )
    study.set_user_attr(schema.STUDY_CONFIG, cfg.to_dict())
    assert searched_config(study, cfg, "journal.log") == cfg
    other = StudyConfig.from_dict(
        tiny_config(study={"n_trials": 99}, training={"epochs": 9, "lr": 0.5})
    )
    with pytest.raises(ValueError) as err:
        searched_config(study, other, "journal.log")
    assert str(err.value) == (
        "study 'tiny' in journal.log was searched with a different config (changed: "
        "training.epochs, training.lr); confirm it with the config it was searched with, "
        "or by its name"
    )
    study.set_user_attr(schema.STUDY_CONFIG, {**cfg.to_dict(), "training": {"epochs": "x"}})
    with pytest.raises(ValueError, match=r"^the config stored with study 'tiny' is not valid"):
        searched_config(study, cfg, "journal.log")


def _failed_run(study: optuna.Study, replicate: int, attempts: int, baseline: str) -> None:
    """``attempts`` failed trials of one run, each with the parameters it was queued with."""
    for _ in range(attempts):
        _failed(study, replicate, None, baseline, params={"block": baseline})


def test_failed_runs_below_the_cap_are_queued_once_each_and_counted():
    from nas.confirm.runs import MAX_ATTEMPTS, requeue_failed

    study = _confirm(_plan([2]))
    _failed_run(study, 0, 1, "none")
    _failed_run(study, 1, MAX_ATTEMPTS - 1, "none")  # its last attempt
    _failed_run(study, 0, MAX_ATTEMPTS, "se")  # gave up: never again
    assert requeue_failed(study) == 2
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(
        (t.user_attrs[schema.REPLICATE.key], t.user_attrs[schema.RETRIES.key]) for t in waiting
    ) == [(0, 1), (1, MAX_ATTEMPTS - 1)]
    assert requeue_failed(study) == 0  # queued already: not twice


def test_a_plan_keeps_the_stored_comparison_unless_another_is_asked(tiny_config):
    from nas.config import StudyConfig
    from nas.confirm.planning import Planned
    from nas.confirm.planning import _plan as plan_of

    cfg = StudyConfig.from_dict(tiny_config())
    study = optuna.create_study(study_name="tiny")
    planned = [Planned("baseline none", {}, None, "none")]
    stored = _plan([2], comparison="holm")
    assert plan_of(study, cfg, planned, 1, (2, None, None), stored)["comparison"] == "holm"
    assert plan_of(study, cfg, planned, 1, (2, None, "dunnett"), stored)["comparison"] == "dunnett"
    assert plan_of(study, cfg, planned, 1, (2, None, None), None)["comparison"] == "dunnett"


def test_the_plan_is_none_first_then_completed_baselines_then_the_front(tiny_config):
    """Each planned architecture keeps the parameters and number of the trial it repeats; a
    baseline the search pruned or lost is not repeated, none always is; front trials without a
    digest are told apart by number."""
    from nas.config import StudyConfig
    from nas.confirm.planning import Planned, plan_architectures
    from search_spaces.space import baselines

    cfg = StudyConfig.from_dict(tiny_config())
    study = optuna.create_study(directions=cfg.objectives.directions)
    extra = [1.0] * (len(cfg.objectives.directions) - 1)
    arch = {"in_channels": 3, "num_classes": 10}
    se = {"stage1.block": "se"}
    for state, values, params, attrs in [
        ("COMPLETE", [0.9, *extra], {"stage2.block": "se"}, {schema.ARCH.key: arch}),
        ("COMPLETE", [0.7, *extra], se, {schema.DIGEST.key: "d-se", schema.BASELINE.key: "se"}),
        ("PRUNED", None, {}, {schema.DIGEST.key: "d-eca", schema.BASELINE.key: "eca"}),
        ("FAIL", None, {}, {schema.DIGEST.key: "d-cbam", schema.BASELINE.key: "cbam"}),
        ("COMPLETE", [0.9, *extra], {"stage3.block": "se"}, {schema.ARCH.key: arch}),
    ]:
        study.add_trial(_trial(state, values, params, **attrs))
    none = baselines(cfg.space, blocks=[], limit=1)["none"]
    assert plan_architectures(study, cfg, top=2) == [
        Planned("baseline none", none, None, "none"),
        Planned("baseline se", se, 1, "se"),
        Planned("trial 0", {"stage2.block": "se"}, 0, None),
        Planned("trial 4", {"stage3.block": "se"}, 4, None),
    ]


def test_ranked_trials_take_fronts_in_order_and_accuracy_first_within_one():
    from nas.confirm.planning import ranked_trials

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for values in ([0.8, 300.0, 1.0], [0.9, 100.0, 5.0], [0.7, 400.0, 6.0], [0.85, 200.0, 0.5]):
        study.add_trial(_trial("COMPLETE", values))
    # Fronts: {1, 3} (the most accurate first), then {0} (dominated by 3), then {2} (by 0).
    assert [t.number for t in ranked_trials(study)] == [1, 3, 0, 2]


def test_the_runs_table_has_a_column_per_repeat_and_nan_where_none_completed():
    from nas.confirm.rounds import _table

    run = _trial("COMPLETE", [0.8, 1.0], **{schema.TEST_ACC.key: 0.75})
    runs = {"baseline none": {0: run, 2: run}, "trial 3": {1: run}}
    table = _table(runs, ["baseline none", "trial 3"], "val_acc")
    assert table.dtype == np.float64 and table.shape == (2, 3)
    np.testing.assert_array_equal(table, [[0.8, np.nan, 0.8], [np.nan, 0.8, np.nan]])
    np.testing.assert_array_equal(_table(runs, ["trial 3"], "test_acc"), [[np.nan, 0.75]])
    assert _table({}, ["baseline none"], "val_acc").shape == (1, 1)
