"""The plugin path: a user's own Optuna objective with our space, model, pruner and callback
(the example of docs/plugin-api.md, on a smaller budget and with checks of what it did;
tests/test_docs.py runs the example itself)."""

import optuna
import pytest
from optuna.trial import TrialState

from nas.data import DataConfig, build_datamodule
from nas.pruning import ParetoPercentilePruner, PruningCallback, finish_pruned, should_prune
from nas.training import ClassifierModule, TrainingConfig, build_trainer
from search_spaces import SearchSpace, model_cost, suggest_arch


def test_readme_plugin_loop():
    space = SearchSpace("resnet8", backbone_args={"width": 4}, blocks=["none", "se", "eca"])
    dm = build_datamodule(DataConfig("digits", per_class=6, val_per_class=4, batch_size=32))
    dm.setup("fit")
    pruner = ParetoPercentilePruner(cost_names=("flops",), n_startup_trials=2, n_warmup_epochs=0)
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        pruner=pruner,
        sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=2),
    )
    train_cfg = TrainingConfig(epochs=2)
    histories = {}

    for _ in range(6):
        trial = study.ask()
        spec = suggest_arch(trial, space, in_channels=dm.in_channels, num_classes=dm.num_classes)
        module = ClassifierModule(spec, config=train_cfg, seed=trial.number)
        histories[trial.number] = module.val_history
        flops = model_cost(module.model, dm.input_shape).flops
        trial.set_user_attr("cost", {"flops": flops})
        trainer = build_trainer(
            train_cfg, seed=trial.number, callbacks=[PruningCallback(trial, monitor="val_acc")]
        )
        try:
            trainer.fit(module, datamodule=dm)
            study.tell(trial, [module.val_history[-1]["val_acc"], flops])
        except optuna.TrialPruned:
            finish_pruned(study, trial, [module.val_history[-1]["val_acc"], flops])

    trials = study.get_trials()
    assert len(trials) == 6
    for t in trials:
        _assert_recorded_each_epoch(t, histories[t.number], epochs=2)
        assert t.values[0] == histories[t.number][-1]["val_acc"]
    assert study.best_trials


def _assert_recorded_each_epoch(trial, history, epochs: int) -> None:
    """The callback stored each epoch's validation accuracy (logged as float32) at that epoch; a
    trial stopped before the last epoch is PRUNED, one that ran them all COMPLETE."""
    recorded = {h["epoch"]: pytest.approx(h["val_acc"], abs=1e-6) for h in history}
    assert trial.intermediate_values == recorded
    assert list(trial.intermediate_values) == list(range(len(history)))
    finished = TrialState.COMPLETE if len(history) == epochs else TrialState.PRUNED
    assert 1 <= len(history) <= epochs and trial.state == finished


def test_optuna_median_pruner_through_our_callback_in_a_single_objective_study():
    space = SearchSpace("resnet8", backbone_args={"width": 4}, blocks=["none", "se"])
    dm = build_datamodule(DataConfig("digits", per_class=6, val_per_class=4, batch_size=32))
    dm.setup("fit")
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    cfg = TrainingConfig(epochs=3)
    histories = {}

    def objective(trial: optuna.Trial) -> float:
        module = ClassifierModule(suggest_arch(trial, space, in_channels=1), config=cfg, seed=0)
        histories[trial.number] = module.val_history
        trainer = build_trainer(cfg, seed=0, callbacks=[PruningCallback(trial)])
        trainer.fit(module, datamodule=dm)
        return module.val_history[-1]["val_acc"]

    study.optimize(objective, n_trials=4)
    for t in study.trials:
        _assert_recorded_each_epoch(t, histories[t.number], epochs=3)
    # Optuna's own pruners need a single objective: in a multi-objective study that is an error
    # naming the fix, not a silent no-op.
    multi = optuna.create_study(
        directions=["maximize", "minimize"], pruner=optuna.pruners.MedianPruner()
    )
    with pytest.raises(ValueError, match=r"ParetoPercentilePruner|MOASHAPruner"):
        should_prune(multi.ask())


def test_readme_supernet_plugin():
    """The supernet example of docs/supernet.md: train it in a user's Trainer, search it in a
    user's study."""
    import itertools

    import lightning as L

    from nas.training import evaluate
    from search_spaces.supernet import PathSampler, activate, build_supernet, recalibrate_bn

    space = SearchSpace("resnet8", backbone_args={"width": 4}, blocks=["none", "se", "eca"])
    dm = build_datamodule(DataConfig("digits", per_class=6, val_per_class=4, batch_size=32))
    dm.setup("fit")
    supernet = build_supernet(space, dm.in_channels, dm.num_classes, seed=0)
    sampler = PathSampler(space, seed=0, in_channels=dm.in_channels, num_classes=dm.num_classes)
    trained = []

    class SamplePath(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            trained.append(sampler(trainer.global_step))
            activate(module.model, trained[-1])

    module = ClassifierModule(model=supernet, config=TrainingConfig(epochs=2))
    trainer = build_trainer(module.config, seed=0, callbacks=[SamplePath()], validate=False)
    trainer.fit(module, datamodule=dm)
    assert len(trained) == 4 and module.val_history == []  # 2 epochs of 2 batches, no validation

    batches = [x for x, _ in itertools.islice(dm.train_dataloader(), 2)]

    def objective(trial):
        spec = suggest_arch(trial, space, in_channels=dm.in_channels, num_classes=dm.num_classes)
        activate(supernet, spec)
        recalibrate_bn(supernet, batches)
        return evaluate(module, dm, "val")["val_acc"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=4)
    assert len(study.trials) == 4 and all(0 <= t.value <= 1 for t in study.trials)
    # The parameters of a multi-trial study: the same study opens in optuna-dashboard alike.
    assert all(f"{scope}.block" in study.trials[0].params for scope in space.scopes())
