"""Verdicts: common random numbers, baselines, per-trial noise and the tied band."""

import hashlib
import math

import lightning
import optuna
import pytest
import torch
from optuna.trial import TrialState

import nas.objective
from nas import trial_schema as schema
from nas.config import StudyConfig
from nas.pareto import tied_with_front
from nas.report import baseline_gains, gain_line, trials_frame
from nas.study import enqueue_baselines, load_or_create_study, requeue_trial
from nas.worker import run_search, run_worker
from search_spaces.build import build_model
from search_spaces.space import SearchSpace, baseline_choice, baselines, suggest_arch
from search_spaces.spec import ArchSpec, BlockChoice

# -- common random numbers ------------------------------------------------------------------------


class _Recorder(lightning.Callback):
    """What a trial started from: its backbone weights and a digest of every training batch."""

    def __init__(self, runs: list[dict]) -> None:
        self.runs = runs

    def on_fit_start(self, trainer, pl_module):
        state = pl_module.model.state_dict()
        backbone = {k: v.clone() for k, v in state.items() if ".attn." not in k}
        self.runs.append({"backbone": backbone, "batches": [], "model": state})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        x, y = batch
        digest = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
        self.runs[-1]["batches"].append(digest)


@pytest.fixture
def recorded(monkeypatch):
    """Run trials with a :class:`_Recorder` among each Trainer's callbacks; its runs."""
    runs: list[dict] = []
    build = nas.objective.build_trainer

    def with_recorder(cfg, *, callbacks=(), **kwargs):
        return build(cfg, callbacks=[*callbacks, _Recorder(runs)], **kwargs)

    monkeypatch.setattr(nas.objective, "build_trainer", with_recorder)
    return runs


def _two_architectures(tiny_config, seeding: str) -> StudyConfig:
    data = tiny_config(study={"n_trials": 2, "seed": 1}, evaluation={"seeding": seeding})
    cfg = StudyConfig.from_dict(data)
    study = load_or_create_study(cfg)
    # Two different architectures: the runs may differ by nothing else.
    study.enqueue_trial({"stage1.block": "none", "stage2.block": "none", "stage3.block": "none"})
    study.enqueue_trial(
        {
            "stage1.block": "se",
            "stage1.reduction": 2,
            "stage2.block": "eca",
            "stage2.kernel_size": 3,
            "stage3.block": "simam",
        }
    )
    return cfg


def test_common_random_numbers_share_backbone_weights_and_batches(tiny_config, recorded):
    cfg = _two_architectures(tiny_config, "common")
    assert run_worker(cfg, progress=False) == 2
    first, second = recorded
    assert first["backbone"].keys() == second["backbone"].keys()
    assert all(torch.equal(first["backbone"][k], second["backbone"][k]) for k in first["backbone"])
    assert len(first["model"]) < len(second["model"])  # the second carries attention
    assert first["batches"] == second["batches"] and len(first["batches"]) >= 2
    trials = load_or_create_study(cfg).get_trials()
    assert schema.DIGEST.get(trials[0]) != schema.DIGEST.get(trials[1])
    assert {schema.SEED.get(t) for t in trials} == {schema.DATA_SEED.get(t) for t in trials} == {1}


def test_per_trial_seeding_draws_each_trial_its_own_weights(tiny_config, recorded):
    cfg = _two_architectures(tiny_config, "per_trial")
    assert run_worker(cfg, progress=False) == 2
    first, second = recorded
    assert not all(
        torch.equal(first["backbone"][k], second["backbone"][k]) for k in first["backbone"]
    )
    assert first["batches"] == second["batches"]  # the data order stays study.seed
    trials = load_or_create_study(cfg).get_trials()
    assert [schema.SEED.get(t) for t in trials] == [1, 2]
    assert [schema.DATA_SEED.get(t) for t in trials] == [1, 1]


def test_a_block_starts_the_same_at_a_site_whatever_the_other_sites_carry():
    def spec(**sites):
        return ArchSpec(backbone="resnet8", backbone_args={"width": 4}, sites=sites)

    alone = build_model(spec(**{"stage2.0": BlockChoice("se", {"reduction": 2})}), seed=5)
    crowded = build_model(
        spec(
            **{
                "stage1.0": BlockChoice("cbam", {"reduction": 2}),
                "stage2.0": BlockChoice("se", {"reduction": 2}),
                "stage3.0": BlockChoice("eca"),
            }
        ),
        seed=5,
    )
    a, b = alone.state_dict(), crowded.state_dict()
    shared = [k for k in a if k in b]
    assert any(".attn." in k for k in shared)
    assert all(torch.equal(a[k], b[k]) for k in shared)
    # The caller's RNG is left alone, and another seed gives other block weights.
    state = torch.get_rng_state()
    other = build_model(spec(**{"stage2.0": BlockChoice("se", {"reduction": 2})}), seed=6)
    assert torch.equal(state, torch.get_rng_state())
    attn = [k for k in a if ".attn." in k]
    assert not all(torch.equal(a[k], other.state_dict()[k]) for k in attn)


# -- baselines ------------------------------------------------------------------------------------


def test_baseline_choices_take_block_defaults_inside_the_space():
    space = SearchSpace(
        backbone="resnet8",
        backbone_args={"width": 4},
        blocks=["none", "se", "eca", "cbam"],
        reductions=[4, 16],
        eca_kernels=[5, "adaptive"],
        positions=["post", "standard"],
    )
    assert baseline_choice(space, "se") == BlockChoice("se", {"reduction": 16}, "standard")
    assert baseline_choice(space, "eca").params["kernel_size"] == "adaptive"
    no_default = SearchSpace(
        backbone="resnet8", backbone_args={"width": 4}, blocks=["se"], reductions=[4, 8]
    )
    assert baseline_choice(no_default, "se").params["reduction"] == 4  # the first choice
    found = baselines(space, limit=3)
    assert list(found) == ["none", "se", "eca"]
    for name, params in found.items():
        arch = suggest_arch(optuna.trial.FixedTrial(params), space)
        expected = baseline_choice(space, name)
        assert all(c == expected for c in arch.sites.values())  # placed at every site
    assert list(baselines(space, blocks=["cbam"])) == ["none", "cbam"]
    with pytest.raises(ValueError, match="not in the space"):
        baseline_choice(space, "simam")


def test_baselines_are_queued_first_and_once(tiny_config):
    cfg = StudyConfig.from_dict(
        tiny_config(study={"n_trials": 6}, evaluation={"baselines": True, "max_baselines": 3})
    )
    study = load_or_create_study(cfg)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [schema.BASELINE.get(t) for t in waiting] == ["none", "se", "eca"]
    # A second process (or a resume) queues none again.
    load_or_create_study(cfg)
    assert enqueue_baselines(load_or_create_study(cfg), cfg) == []
    assert len(load_or_create_study(cfg).get_trials()) == 3
    run_worker(cfg, progress=False)
    run_worker(cfg, progress=False)  # resumed: nothing left to do
    trials = load_or_create_study(cfg).get_trials()
    assert len(trials) == 6
    names = [schema.BASELINE.get(t) for t in trials]
    assert names[:3] == ["none", "se", "eca"] and names[3:] == [None] * 3
    assert schema.SUMMARY.get(trials[0]).count("none") == 3


def test_baselines_can_be_switched_off_and_cannot_name_foreign_blocks(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(evaluation={"baselines": False}))
    assert load_or_create_study(cfg).get_trials() == []
    with pytest.raises(ValueError, match=r"evaluation.baseline_blocks \['cbam'\] are not in"):
        StudyConfig.from_dict(tiny_config(evaluation={"baseline_blocks": ["cbam"]}))


@pytest.mark.slow
def test_two_workers_run_each_baseline_once(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 6}, evaluation={"baselines": True}))
    study = run_search(cfg, workers=2, progress=False)
    names = [schema.BASELINE.get(t) for t in study.get_trials() if schema.BASELINE.has(t)]
    assert sorted(names) == ["eca", "none", "se", "simam"]


def test_a_requeued_trial_keeps_what_it_was_queued_as():
    study = optuna.create_study()
    study.enqueue_trial({"x": 1.0}, user_attrs={"baseline": "se", "replicate": 2})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    schema.FAIL_REASON.set(trial, "worker died")
    study.tell(trial, state=TrialState.FAIL)
    requeue_trial(study, study.trials[0])
    retry = study.get_trials(states=(TrialState.WAITING,))[0]
    assert retry.user_attrs == {"baseline": "se", "replicate": 2, "retry_of": 0, "retries": 1}


# -- noise -----------------------------------------------------------------------------------------


def test_each_trial_stores_the_binomial_error_of_its_accuracy(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 2}))
    study = run_search(cfg, progress=False)
    for t in study.get_trials():
        n = schema.VAL_SIZE.get(t)
        assert n == 40  # 4 validation images per class, 10 classes
        p = t.values[0]
        assert schema.VAL_ACC_SE.get(t) == pytest.approx(math.sqrt(p * (1 - p) / n))
    frame = trials_frame(study)
    assert list(frame["val_acc_se"]) == [schema.VAL_ACC_SE.get(t) for t in study.get_trials()]


def _hand_made(rows):
    """A study of COMPLETE trials: (val_acc, val_acc_se, flops, baseline or None)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_acc", "flops"])
    for acc, se, flops, baseline in rows:
        attrs = {"val_acc_se": se, "summary": f"{acc}/{flops}"}
        if baseline:
            attrs["baseline"] = baseline
        study.add_trial(
            optuna.trial.create_trial(
                values=[acc, flops], user_attrs=attrs, state=TrialState.COMPLETE
            )
        )
    return study


def test_tied_trials_are_within_two_standard_errors_of_a_no_costlier_front_member():
    study = _hand_made(
        [
            (0.80, 0.02, 10.0, "none"),  # front
            (0.90, 0.02, 20.0, None),  # front
            (0.76, 0.02, 12.0, None),  # 0.04 below trial 0, 2 s.e. = 0.0566: tied
            (0.70, 0.02, 12.0, None),  # 0.10 below: not tied
            (0.86, 0.02, 19.0, None),  # front: cheaper than trial 1, better than trial 0
            (0.87, 0.01, 25.0, None),  # 0.03 below trial 1 (cost 20 <= 25): tied
        ]
    )
    assert sorted(t.number for t in tied_with_front(study)) == [2, 5]
    frame = trials_frame(study)
    assert list(frame["tied_with_front"]) == [False, False, True, False, False, True]


def _trial(acc, flops, *, se=0.02, state=TrialState.COMPLETE, **attrs):
    user_attrs = {"val_acc_se": se, **attrs} if se is not None else attrs
    return optuna.trial.create_trial(values=[acc, flops], user_attrs=user_attrs, state=state)


def test_ties_need_a_candidate_with_its_error_and_cost_no_lower_than_a_front_member():
    """A trial of the same cost as a front member counts as no costlier (tied when close); a
    duplicate or a pruned trial is never tied whatever its error; a front member without a
    recorded error is skipped and the next member still decides."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for trial in (
        _trial(0.95, 20.0, se=None),  # 0: front, no error recorded
        _trial(0.80, 10.0),  # 1: front
        _trial(0.78, 10.0),  # 2: same cost as 1, 0.02 below (2 s.e. = 0.057): tied
        _trial(0.79, 11.0, duplicate_of=1),  # 3: a duplicate stands for trial 1: never tied
        _trial(0.79, 12.0, se=None),  # 4: no error recorded: left out
    ):
        study.add_trial(trial)
    assert [t.number for t in tied_with_front(study)] == [2]


def test_a_trial_exactly_two_standard_errors_below_is_tied():
    """The tie band includes its edge: 0.15625 below a front member of the same cost, with
    errors 0.046875 and 0.0625 (a difference's error of 0.078125; all exact in binary)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_trial(0.90625, 10.0, se=0.0625))
    study.add_trial(_trial(0.75, 10.0, se=0.046875))
    study.add_trial(_trial(0.75 - 2**-20, 10.0, se=0.046875))  # just outside
    assert [t.number for t in tied_with_front(study)] == [1]


def test_no_ties_where_the_first_objective_is_minimised():
    study = optuna.create_study(directions=["minimize", "minimize"])
    study.add_trial(_trial(0.10, 10.0))
    study.add_trial(_trial(0.11, 10.0))  # would be tied if accuracy-like
    assert tied_with_front(study) == []


def test_the_gain_over_none_is_judged_against_its_noise():
    study = _hand_made(
        [(0.80, 0.02, 10.0, "none"), (0.84, 0.02, 12.0, "se"), (0.9, 0.02, 20, None)]
    )
    facts = baseline_gains(study)
    assert facts["none"]["trial"] == 0 and facts["best_baseline"]["name"] == "se"
    assert facts["vs_none"]["gain"] == pytest.approx(0.10)
    assert facts["vs_none"]["se"] == pytest.approx(math.hypot(0.02, 0.02))
    assert facts["vs_none"]["exceeds_noise"] is True  # 0.10 > 2 x 0.0283
    assert facts["vs_best_baseline"]["exceeds_noise"] is True  # 0.06 > 0.0566
    assert "exceeds its noise" in gain_line(study)
    close = _hand_made([(0.80, 0.05, 10.0, "none"), (0.85, 0.05, 12.0, None)])
    assert baseline_gains(close)["vs_none"]["exceeds_noise"] is False
    assert "does not exceed its noise" in gain_line(close)
    assert baseline_gains(_hand_made([(0.8, 0.02, 1.0, None)])) is None


def _baseline_study(**first_objective) -> optuna.Study:
    """Baselines none (0.75) and se and eca (both 0.78125), two identical front members at
    0.90625; standard errors exact in binary."""
    study = optuna.create_study(
        directions=first_objective.get("directions", ["maximize", "minimize"])
    )
    for trial in (
        _trial(0.75, 10.0, se=0.046875, baseline="none"),
        _trial(0.78125, 12.0, se=0.0625, baseline="se"),
        _trial(0.90625, 20.0, se=0.0625),
        _trial(0.90625, 20.0, se=0.0625),
        _trial(0.78125, 12.0, se=0.0625, baseline="eca"),
    ):
        study.add_trial(trial)
    return study


def test_the_gain_over_none_by_hand():
    """The best front member is the lower-numbered of two equal ones (trial 2), the best
    baseline the lower-numbered of two equal ones (se, trial 1). Over none the gain, 0.15625,
    is exactly 2 standard errors (hypot(0.0625, 0.046875) = 0.078125): not beyond the noise."""
    facts = baseline_gains(_baseline_study())
    assert facts["best_front"] == {
        "trial": 2,
        "summary": "",
        "val_acc": 0.90625,
        "val_acc_se": 0.0625,
    }
    assert facts["best_baseline"]["trial"] == 1 and facts["best_baseline"]["name"] == "se"
    assert facts["vs_none"] == {"gain": 0.15625, "se": 0.078125, "exceeds_noise": False}
    assert facts["vs_best_baseline"]["gain"] == 0.125
    assert facts["tie_standard_errors"] == 2.0
    assert gain_line(_baseline_study()) == (
        "best front accuracy 0.9062 (trial 2) vs baseline none 0.7500: +15.62 points, does not "
        "exceed its noise (2 s.e. = 15.62 points, one run each; `nas confirm` repeats them with "
        "fresh seeds)"
    )


def test_a_gain_without_a_standard_error_says_so():
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_trial(0.75, 10.0, se=0.05, baseline="none"))
    study.add_trial(_trial(0.85, 10.0, se=None))
    assert baseline_gains(study)["vs_none"] == {
        "gain": pytest.approx(0.1),
        "se": None,
        "exceeds_noise": None,
    }
    assert gain_line(study) == (
        "best front accuracy 0.8500 (trial 1) vs baseline none 0.7500: +10.00 points "
        "(no standard error recorded)"
    )


def test_no_baseline_verdict_for_a_confirm_study_or_a_minimised_first_objective():
    confirm = _baseline_study()
    confirm.set_user_attr(schema.CONFIRM, {"of": "x"})
    assert baseline_gains(confirm) is None and gain_line(confirm) is None
    assert baseline_gains(_baseline_study(directions=["minimize", "minimize"])) is None


def test_baselines_that_failed_or_a_missing_none_leave_the_other_verdicts():
    """Only completed baselines count (a failed one has no accuracy); without a completed
    none there is no gain over it, and no line, but the best baseline is still compared."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_trial(0.7, 10.0, baseline="se"))
    study.add_trial(
        optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"baseline": "none"})
    )
    study.add_trial(_trial(0.9, 20.0))
    facts = baseline_gains(study)
    assert "vs_none" not in facts and facts["best_baseline"]["name"] == "se"
    assert gain_line(study) is None
