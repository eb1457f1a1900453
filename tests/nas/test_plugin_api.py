"""The plugin path: a user's own Optuna objective with our space, model, pruner and callback
(the README's "Plugin API" example, on a smaller budget)."""

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

    for _ in range(6):
        trial = study.ask()
        spec = suggest_arch(trial, space, in_channels=dm.in_channels, num_classes=dm.num_classes)
        module = ClassifierModule(spec, config=train_cfg, seed=trial.number)
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
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all(len(t.intermediate_values) >= 1 for t in trials)
    assert study.best_trials


def test_optuna_median_pruner_through_our_callback_in_a_single_objective_study():
    space = SearchSpace("resnet8", backbone_args={"width": 4}, blocks=["none", "se"])
    dm = build_datamodule(DataConfig("digits", per_class=6, val_per_class=4, batch_size=32))
    dm.setup("fit")
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    cfg = TrainingConfig(epochs=3)

    def objective(trial: optuna.Trial) -> float:
        module = ClassifierModule(suggest_arch(trial, space, in_channels=1), config=cfg, seed=0)
        trainer = build_trainer(cfg, seed=0, callbacks=[PruningCallback(trial)])
        trainer.fit(module, datamodule=dm)
        return module.val_history[-1]["val_acc"]

    study.optimize(objective, n_trials=4)
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)
    # Optuna's own pruners need a single objective: in a multi-objective study that is an error
    # naming the fix, not a silent no-op.
    multi = optuna.create_study(
        directions=["maximize", "minimize"], pruner=optuna.pruners.MedianPruner()
    )
    with pytest.raises(ValueError, match=r"ParetoPercentilePruner|MOASHAPruner"):
        should_prune(multi.ask())
