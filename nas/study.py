"""A study from its config: sampler, pruner, creation and resume, and re-queued trials.

``load_or_create_study`` is the one place a study config becomes an ``optuna.Study``: the config
is stored with the study (``nas.trial_schema.STUDY_CONFIG``), so re-running it resumes, a
changed config under the same name is refused, and any machine can join from the storage alone
(:func:`load_stored_study`).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search_spaces.space import baselines

from . import trial_schema as schema
from .config import (
    EVALUATION_BEFORE_0_2,
    EvaluationSection,
    PruningSection,
    SearchSection,
    StudyConfig,
    StudySection,
    first_rung_candidates,
)
from .noise_pruner import NoiseAwarePruner
from .pruning import (
    CurveAwareTPESampler,
    MOASHAPruner,
    ParetoPercentilePruner,
    PruningAwareNSGAIISampler,
)
from .samplers import AdditiveCosts, AdditiveThompsonSampler
from .storage import machine_lock, open_storage, redact


def quiet_third_party_output() -> None:
    """Keep the terminal for our progress bars and tables: Optuna's per-trial INFO lines and
    known third-party notices say nothing the user can act on (the workers record heartbeats
    themselves, ``nas.storage.heartbeat``), and a warning takes one line, not two."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.formatwarning = _one_line_warning


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """``file.py:12: RuntimeWarning: message``, without the source line Python adds."""
    return f"{Path(filename).name}:{lineno}: {category.__name__}: {message}\n"


#: Seed distance between successive worker processes of a study (a prime, far from worker ids).
SEED_STRIDE = 7919


#: Random trials before the additive sampler's model proposes (what its benchmark measured).
ADDITIVE_STARTUP = 4


def make_sampler(
    cfg: StudyConfig, worker: int = 0, costs: AdditiveCosts | None = None
) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with ``study.seed + worker`` (modulo 2**32).

    Concurrent workers must use different ``worker`` numbers: with one seed they would propose
    the same architectures in the same order and train each one twice. ``costs``: the costs of
    an architecture from its parameters, which the ``additive`` sampler needs before it
    proposes (the worker gives them once its data is loaded)."""
    seed = (cfg.study.seed + worker) % 2**32
    name = cfg.study.sampler
    if name == "additive":
        return AdditiveThompsonSampler(
            cfg.space, costs, n_startup_trials=ADDITIVE_STARTUP, seed=seed
        )
    if name == "nsga2":
        return PruningAwareNSGAIISampler(population_size=cfg.study.population_size, seed=seed)
    if name == "tpe":
        return CurveAwareTPESampler(
            multivariate=True,
            group=True,
            constant_liar=True,
            n_startup_trials=cfg.study.population_size,
            seed=seed,
        )
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=cfg.study.population_size)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(cfg: StudyConfig) -> optuna.pruners.BasePruner:
    """The configured pruner. ``pruning.n_warmup_epochs`` is Optuna's ``n_warmup_steps`` (steps
    are 0-based epochs); ``pruning.min_epochs`` counts epochs trained before the first rung
    (Optuna's ``asha``: its ``min_resource``, 0-based steps); ``"auto"`` lets the study's own
    trials choose it (:class:`nas.rungs.AutoRungPruner`)."""
    p = cfg.pruning
    if p.min_epochs == "auto" and p.pruner != "none":
        from .rungs import AutoRungPruner, with_first_rung  # nas.rungs reads stored configs here

        candidates = first_rung_candidates(p.pruner, p.reduction_factor, cfg.training.epochs)
        return AutoRungPruner(
            lambda epoch: make_pruner(with_first_rung(cfg, epoch)), candidates, p.auto_min_rho
        )
    costs = tuple(cfg.objectives.minimize)
    if p.pruner == "pareto":
        return ParetoPercentilePruner(
            percentile=p.percentile,
            cost_names=costs,
            n_startup_trials=p.n_startup_trials,
            n_warmup_steps=p.n_warmup_epochs,
        )
    if p.pruner == "noise":
        return NoiseAwarePruner(
            min_epochs=p.min_epochs,
            reduction_factor=p.reduction_factor,
            max_epochs=cfg.training.epochs,
            cost_names=costs,
        )
    if p.pruner == "moasha":
        return MOASHAPruner(
            min_epochs=p.min_epochs,
            reduction_factor=p.reduction_factor,
            cost_names=costs,
            max_epochs=cfg.training.epochs,
        )
    if p.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_epochs
        )
    if p.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_epochs
        )
    if p.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_epochs, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()


def reseed_sampler(
    study: optuna.Study, cfg: StudyConfig, worker: int = 0, costs: AdditiveCosts | None = None
) -> None:
    """Give this process's sampler a seed no earlier process of the study had.

    A resumed or second ``nas search`` with the same seed would replay the first one's proposals
    (NSGA-II's first generation, TPE's start-up trials) and train known architectures again. The
    k-th worker process to start sampling (study user attr ``sampler_starts``) seeds with
    ``study.seed + worker + SEED_STRIDE * k``, so a fresh study's first process has the seed it
    always had and the same commands give the same trials. Call it under the machine lock
    (``nas.storage.machine_lock``) so that local processes count apart."""
    starts = schema.sampler_starts(study)
    study.set_user_attr(schema.SAMPLER_STARTS, starts + 1)
    study.sampler = make_sampler(cfg, worker + SEED_STRIDE * starts, costs)


def planned_runs_config(cfg: StudyConfig, study: StudySection) -> StudyConfig:
    """``cfg`` as a study of planned runs (a confirm or a table study) runs it, with ``study``
    as its study section: every trial queued up front and trained stand-alone for its full
    epochs (no pruning, no baselines of its own, the repeat's seed: common seeding)."""
    evaluation = dataclasses.replace(cfg.evaluation, seeding="common", baselines=False)
    return dataclasses.replace(
        cfg,
        study=study,
        pruning=PruningSection(pruner="none"),
        evaluation=evaluation,
        search=SearchSection(),
    )


def requeue_trial(study: optuna.Study, trial: FrozenTrial, max_retry: int = 1) -> None:
    """Queue the architecture of an interrupted trial again, at most ``max_retry`` times.

    The parameters are carried over, and what the trial was queued as (a baseline, a confirm
    repeat), not what it measured (unlike Optuna's RetryHeartbeatStaleTrialCallback, which copies
    every attr, and with them the old trial's failure reason); the new trial records
    ``retry_of`` (the trial it repeats) and ``retries`` (how many times the original was retried).
    """
    retries = int(schema.RETRIES.get(trial, 0))
    if retries < max_retry:
        enqueue_retry(study, trial, retries + 1)


def enqueue_retry(study: optuna.Study, trial: FrozenTrial, retries: int) -> bool:
    """Queue ``trial`` again as retry number ``retries`` (:func:`requeue_trial`), unless a
    waiting trial already is it (the same parameters, queued as the same thing): two waiting
    copies would train it twice. The parameters it was queued with (``fixed_params``) win over
    those it suggested, which a trial interrupted mid-suggestion holds only some of. Returns
    whether it was queued."""
    params = dict(trial.system_attrs.get("fixed_params") or trial.params)
    queued_as = {a.key: a.get(trial) for a in schema.QUEUED_ATTRS if a.has(trial)}
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if not params or any(
        w.system_attrs.get("fixed_params") == params
        and all(w.user_attrs.get(k) == v for k, v in queued_as.items())
        for w in waiting
    ):
        return False
    study.enqueue_trial(
        params,
        user_attrs={
            **queued_as,
            schema.RETRY_OF.key: trial.number,
            schema.RETRIES.key: retries,
        },
    )
    return True


def enqueue_baselines(study: optuna.Study, cfg: StudyConfig) -> list[str]:
    """Queue the config's baselines (``search_spaces.space.baselines``) as the study's next
    trials, once per study: the names queued are recorded (``baselines_enqueued``), so a resumed
    study or a second worker queues none again, and a baseline some trial already is is skipped.
    Returns the names queued by this call."""
    evaluation = cfg.evaluation
    if not evaluation.baselines or schema.BASELINES_ENQUEUED in study.user_attrs:
        return []
    wanted = baselines(cfg.space, evaluation.baseline_blocks, evaluation.max_baselines)
    present = {schema.BASELINE.get(t) for t in study.get_trials(deepcopy=False)}
    queued = [name for name in wanted if name not in present]
    for name in queued:
        study.enqueue_trial(wanted[name], user_attrs={schema.BASELINE.key: name})
    study.set_user_attr(schema.BASELINES_ENQUEUED, list(wanted))
    return queued


def open_study_storage(cfg: StudyConfig, url: str) -> optuna.storages.BaseStorage:
    """The study's storage with its heartbeat settings; stale trials are re-queued."""
    max_retry = cfg.study.max_retry
    return open_storage(
        url,
        heartbeat_interval_s=cfg.study.heartbeat_interval_s,
        grace_period_s=cfg.study.grace_period_s,
        stale_trial_callback=lambda study, trial: requeue_trial(study, trial, max_retry),
        retry_s=cfg.study.db_retry_s,
    )


def load_or_create_study(
    cfg: StudyConfig, storage: str | None = None, worker: int = 0
) -> optuna.Study:
    """Create the study, or load it to resume; the config is stored with the study.

    Re-running the same config resumes. A different config under the same study name is refused
    (its trials would not be comparable) with the fields that differ.
    """
    url = storage or cfg.study.storage_url()
    backend = open_study_storage(cfg, url)
    sampler, pruner = make_sampler(cfg, worker), make_pruner(cfg)
    try:
        # Loaded first: create_study(load_if_exists=True) appends to the storage on every call,
        # and a command that changes nothing should write nothing.
        study = optuna.load_study(
            study_name=cfg.study.name, storage=backend, sampler=sampler, pruner=pruner
        )
    except KeyError:
        try:
            study = optuna.create_study(
                study_name=cfg.study.name,
                storage=backend,
                directions=cfg.objectives.directions,
                sampler=sampler,
                pruner=pruner,
            )
        except optuna.exceptions.DuplicatedStudyError:  # another process created it meanwhile
            study = optuna.load_study(
                study_name=cfg.study.name, storage=backend, sampler=sampler, pruner=pruner
            )
    stored = schema.stored_config(study)
    if stored is None:
        study.set_user_attr(schema.STUDY_CONFIG, cfg.to_dict())
        study.set_metric_names(cfg.objectives.names)
    else:
        changed = config_changes(cfg, stored, cfg.study.name)
        if changed:
            raise ValueError(
                f"study {cfg.study.name!r} in {redact(url)} was created with a different config "
                f"(changed: {', '.join(changed)}); use a new study.name, or restore the old values"
            )
        _store_tracking(study, cfg, stored)
    with machine_lock(url, cfg.study.name):
        enqueue_baselines(study, config_for_study(cfg, stored))
    return study


def _store_tracking(study: optuna.Study, cfg: StudyConfig, stored: dict) -> None:
    """Store ``cfg``'s ``[tracking]`` where it differs from the stored one (trackers may change
    when a study resumes), so that workers joining from the storage alone log where it does."""
    tracking = cfg.to_dict()["tracking"]
    if _as_this_release(stored, cfg.study.name)["tracking"] != tracking:
        study.set_user_attr(schema.STUDY_CONFIG, {**stored, "tracking": tracking})


def config_changes(cfg: StudyConfig, stored: dict, name: str) -> list[str]:
    """The settings (``section.key``) in which ``cfg`` differs from the config the study
    ``name`` stored, both read as this release writes them (:func:`changed_fields`)."""
    current = config_for_study(cfg, stored).to_dict()
    return changed_fields(_as_this_release(stored, name), current)


def _as_this_release(stored: dict, name: str) -> dict:
    """A stored config as this release writes it: settings added since the study was created
    take their defaults, so an older study resumes under a config that leaves them alone."""
    try:
        return StudyConfig.from_dict(stored_as_this_release(stored)).to_dict()
    except ValueError as exc:
        raise ValueError(
            f"the config stored with study {name!r} is not valid for this release ({exc}); "
            "finish the study with the release that created it, or start a new study.name"
        ) from None


def config_for_study(cfg: StudyConfig, stored: dict | None) -> StudyConfig:
    """``cfg`` as it runs on the study that stored ``stored``: a study stored before
    ``[evaluation]`` existed keeps its seeding and baselines when ``cfg`` leaves the section at
    its defaults (so its own TOML file resumes it); any other ``cfg`` is returned unchanged."""
    if stored is None or "evaluation" in stored or cfg.evaluation != EvaluationSection():
        return cfg
    return dataclasses.replace(cfg, evaluation=EvaluationSection(**EVALUATION_BEFORE_0_2))


def stored_as_this_release(stored: dict) -> dict:
    """A stored config with the settings its study ran under where they predate a section: a
    study stored without ``[evaluation]`` seeded each trial apart and enqueued no baselines, and
    goes on so (the section's defaults would change how its remaining trials run)."""
    if "evaluation" in stored:
        return stored
    return {**stored, "evaluation": dict(EVALUATION_BEFORE_0_2)}


def changed_fields(stored: dict, current: dict) -> list[str]:
    """``section.key`` of every setting that differs, the ``study`` (name, storage, budget) and
    ``tracking`` sections excepted: they may change between runs without making trials
    incomparable."""
    sections = (set(stored) | set(current)) - {"study", "tracking"}
    return sorted(
        f"{section}.{key}"
        for section in sections
        for key in set(stored.get(section, {})) | set(current.get(section, {}))
        if stored.get(section, {}).get(key) != current.get(section, {}).get(key)
    )


def load_stored_study(storage: str, study_name: str) -> tuple[optuna.Study, StudyConfig]:
    """An existing study and the config stored with it, for a worker joining from any machine."""
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise ValueError(
            f"no study named {study_name!r} in {redact(storage)}; create it with "
            "`nas search CONFIG --storage URL` first"
        ) from None
    stored = schema.stored_config(study)
    if stored is None:
        raise ValueError(
            f"study {study_name!r} was not created by `nas search` (no stored config); "
            "create it with `nas search CONFIG --storage URL`"
        )
    return study, StudyConfig.from_dict(stored_as_this_release(stored))
