"""Experiment trackers (``[tracking]``): every trial is one run of TensorBoard, MLflow, W&B or CSV.

The runs are Lightning's own loggers, one set per trial, built from the config, the study name
and the trial number alone: run ``trial-00012`` of the study's experiment (MLflow experiment,
W&B project and group, ``<dir>/<logger>/<study>/trial-00012`` folders), so workers on several
machines log into one experiment without clashing. The Trainer logs each epoch's metrics through
them; :class:`TrialTracker` adds the trial's parameters at its start and its costs, values and
state (complete, pruned at epoch k, failed) at its end.

A tracker is never what fails a trial: :class:`GuardedLogger` turns a logger's error into one
warning per tracker and process, and drops that logger for the rest of the trial.
:func:`check_trackers` runs before a study is stored: a tracker that is not installed or a
server that cannot be reached is one line naming the field and the fix.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)

from . import trial_schema as schema
from .config import ConfigError, StudyConfig
from .storage import redact

#: Module each tracker needs, and the package that installs it.
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
#: The status a run of each final state ends with (MLflow's run status; the others save).
_STATUS = {"complete": "success", "pruned": "KILLED", "failed": "failed"}
#: Characters of a failure reason logged with a failed run.
_MAX_REASON = 500


def run_name(number: int) -> str:
    """The run of trial ``number`` in every tracker: ``trial-00012``."""
    return f"trial-{number:05d}"


def tracking_dir(cfg: StudyConfig) -> Path:
    """``tracking.dir``, else ``<runs_dir>/<study>/tracking``."""
    return Path(cfg.tracking.dir or Path(cfg.study.runs_dir) / cfg.study.name / "tracking")


def experiment_name(cfg: StudyConfig) -> str:
    """``tracking.experiment``, else the study's name."""
    return cfg.tracking.experiment or cfg.study.name


def mlflow_uri(cfg: StudyConfig) -> str:
    """``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else a SQLite store in the tracking dir."""
    given = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    return given or f"sqlite:///{(tracking_dir(cfg) / 'mlflow' / 'mlflow.db').resolve()}"


# -- the start-time check ----------------------------------------------------------------------


def check_trackers(cfg: StudyConfig) -> None:
    """Refuse, with one line naming the field, trackers that are not installed or an MLflow URI
    that cannot be reached; create the MLflow experiment once, before workers start (several at
    once would race to create it). Run before the study is stored."""
    for tracker in cfg.tracking.loggers:
        module = PACKAGES.get(tracker)
        if module is None:
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"tracking.loggers lists {tracker!r}, but {module} is not installed; "
                f"pip install {module} (or attention-nas[tracking]), or remove it from the list"
            ) from None
    if "mlflow" in cfg.tracking.loggers:
        _open_experiment(cfg)
    if cfg.tracking.wandb_mode == "online" and not _wandb_logged_in():
        raise ConfigError(
            "tracking.wandb_mode = 'online' needs a W&B login: run `wandb login` or set "
            "WANDB_API_KEY, or use 'offline' (upload later with `wandb sync`)"
        )


def _open_experiment(cfg: StudyConfig) -> None:
    """Reach the MLflow store (failing fast: no retries) and make sure the experiment exists."""
    from mlflow import MlflowClient

    uri = mlflow_uri(cfg)
    if cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI"):
        field = "tracking.uri" if cfg.tracking.uri else "MLFLOW_TRACKING_URI"
        fix = (
            f"start the server or correct {field}, or leave tracking.uri and "
            "MLFLOW_TRACKING_URI empty for a local store in tracking.dir"
        )
    else:
        field, fix = "tracking.dir", "choose a tracking.dir where MLflow can keep a SQLite file"
        (tracking_dir(cfg) / "mlflow").mkdir(parents=True, exist_ok=True)
    try:
        with _mlflow_fails_fast():
            _ensure_experiment(MlflowClient(uri), experiment_name(cfg))
    except Exception as exc:
        reason = str(exc).strip().split("\n")[0][:300]
        raise ConfigError(
            f"{field}: MLflow at {redact(uri)} cannot be reached ({type(exc).__name__}: "
            f"{reason}); {fix}"
        ) from None


def _ensure_experiment(client: Any, name: str) -> None:
    """Create the experiment ``name`` unless it exists (or another process just created it)."""
    if client.get_experiment_by_name(name) is not None:
        return
    try:
        client.create_experiment(name)
    except Exception:
        if client.get_experiment_by_name(name) is None:
            raise


@contextlib.contextmanager
def _mlflow_fails_fast() -> Iterator[None]:
    """MLflow's HTTP client without its retries (minutes of back-off against a closed port)."""
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    previous = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value


def _wandb_logged_in() -> bool:
    """Whether W&B has an API key (WANDB_API_KEY, or one ``wandb login`` stored)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import wandb

    try:
        return bool(wandb.Api().api_key)
    except wandb.errors.UsageError:  # "No API key configured"
        return False


# -- one trial's runs --------------------------------------------------------------------------


class GuardedLogger(Logger):
    """A Lightning logger whose errors never reach the trial: the first one (building it
    included) warns, once per tracker and process (``warned`` holds the trackers that did), and
    the logger logs nothing more of this trial; the trial and the study go on."""

    def __init__(
        self, build: Callable[[], Logger], tracker: str, trial: int, warned: set[str]
    ) -> None:
        super().__init__()
        self.tracker = tracker
        self.trial = trial
        self.warned = warned
        self.broken = False
        self.inner: Logger | None = self._call(build)

    @property
    def name(self) -> str | None:
        return self._call(lambda: self.inner.name)

    @property
    def version(self) -> int | str | None:
        return self._call(lambda: self.inner.version)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._call(lambda: self.inner.log_metrics(metrics, step))

    def log_hyperparams(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        self._call(lambda: self.inner.log_hyperparams(params))

    def save(self) -> None:
        self._call(lambda: self.inner.save())

    def finalize(self, status: str) -> None:
        self._call(lambda: self.inner.finalize(status))

    def close(self, state: str) -> None:
        """End the run with the trial's final state; a W&B run also after an error (left open,
        it would take in the next trial's metrics)."""
        self.finalize(_STATUS[state])
        if self.tracker == "wandb":
            import wandb

            if self.broken:
                with contextlib.suppress(Exception):  # already warned
                    wandb.finish(exit_code=1)
            else:
                self._call(lambda: wandb.finish(exit_code=int(state == "failed")))

    def _call(self, call: Callable[[], Any]) -> Any:
        """``call()``, or None once this logger has failed in this trial (warned once)."""
        if self.broken:
            return None
        try:
            return call()
        except Exception as exc:
            self.broken = True
            if self.tracker not in self.warned:
                self.warned.add(self.tracker)
                warnings.warn(
                    f"tracking: {self.tracker} failed while logging trial {self.trial} "
                    f"({type(exc).__name__}: {exc}); it logs nothing more of that trial, and "
                    "the study goes on with every result stored (this warning is not repeated)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return None


def _tensorboard(cfg: StudyConfig, name: str, tags: dict[str, Any]) -> Logger:
    folder = tracking_dir(cfg) / "tensorboard"
    return TensorBoardLogger(folder, cfg.study.name, name, default_hp_metric=False)


def _csv(cfg: StudyConfig, name: str, tags: dict[str, Any]) -> Logger:
    return CSVLogger(tracking_dir(cfg) / "csv", cfg.study.name, name)


def _mlflow(cfg: StudyConfig, name: str, tags: dict[str, Any]) -> Logger:
    return MLFlowLogger(
        experiment_name(cfg),
        run_name=name,
        tracking_uri=mlflow_uri(cfg),
        tags={key: str(value) for key, value in tags.items()},
    )


def _wandb(cfg: StudyConfig, name: str, tags: dict[str, Any]) -> Logger:
    folder = tracking_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        name=name,
        save_dir=str(folder),
        project=experiment_name(cfg),
        group=cfg.study.name,
        job_type="trial",
        offline=cfg.tracking.wandb_mode == "offline",
        settings={"silent": True, "console": "off"},
    )


_BUILDERS: dict[str, Callable[[StudyConfig, str, dict[str, Any]], Logger]] = {
    "tensorboard": _tensorboard,
    "csv": _csv,
    "mlflow": _mlflow,
    "wandb": _wandb,
}


def trial_params(study_name: str, trial: optuna.Trial) -> dict[str, Any]:
    """What a run records of its trial before training: study, number, the sampled parameters,
    the architecture (summary, digest), seeds, and what it was queued as (a baseline, a
    confirm repeat of ``source_trial``, a retry)."""
    attrs = trial.user_attrs
    params: dict[str, Any] = {"study": study_name, "trial": trial.number, **trial.params}
    for attr in (schema.SUMMARY, schema.DIGEST, schema.SEED, schema.DATA_SEED, schema.WORKER):
        params[attr.key] = attrs.get(attr.key)
    for attr in (schema.BASELINE, schema.SOURCE_TRIAL, schema.RETRY_OF):
        if attr.key in attrs:
            params[attr.key] = attrs[attr.key]
    if schema.REPLICATE.key in attrs:
        params["repeat"] = attrs[schema.REPLICATE.key]
    return params


def final_metrics(
    attrs: dict[str, Any], names: list[str], values: list[float] | None
) -> dict[str, float]:
    """What a run records at the end, from the trial's user ``attrs``: the objective values
    (``final/<name>``, partial for a pruned trial that has them), the costs (``cost/<name>``),
    epochs and seconds trained."""
    metrics = {f"final/{n}": float(v) for n, v in zip(names, values or [], strict=False)}
    costs = attrs.get(schema.COST.key) or {}
    metrics.update({f"cost/{k}": float(v) for k, v in costs.items() if v is not None})
    for attr in (schema.EPOCHS_RUN, schema.TRAIN_SECONDS, schema.CPU_SECONDS):
        if attrs.get(attr.key) is not None:
            metrics[attr.key] = float(attrs[attr.key])
    return metrics


class TrialTracker:
    """The runs of one trial in every tracker of ``[tracking]``: :attr:`loggers` go to the
    trial's Trainer; :meth:`finish` records how the trial ended and closes them."""

    def __init__(self, cfg: StudyConfig, trial: optuna.Trial, warned: set[str]) -> None:
        self.cfg = cfg
        self.loggers: list[GuardedLogger] = []
        if not cfg.tracking.loggers:
            return
        params = trial_params(cfg.study.name, trial)
        tags = {k: params[k] for k in ("study", "trial", "source_trial", "repeat") if k in params}
        for tracker in cfg.tracking.loggers:
            build = functools.partial(_BUILDERS[tracker], cfg, run_name(trial.number), tags)
            self.loggers.append(GuardedLogger(build, tracker, trial.number, warned))
        for logger in self.loggers:
            logger.log_hyperparams(params)

    def finish(
        self,
        trial: optuna.Trial,
        state: str,
        values: list[float] | None = None,
        reason: str = "",
    ) -> None:
        """Log the trial's final values and costs and its state (``complete``, ``pruned`` with
        ``pruned_at_epoch``, ``failed`` with ``fail_reason``), then end its runs."""
        if not self.loggers:
            return
        attrs = trial.user_attrs
        metrics = final_metrics(attrs, self.cfg.objectives.names, values)
        outcome: dict[str, Any] = {"state": state}
        if state == "pruned":
            outcome[schema.PRUNED_AT_EPOCH.key] = int(attrs.get(schema.EPOCHS_RUN.key, 0)) - 1
        if reason:
            outcome[schema.FAIL_REASON.key] = reason[:_MAX_REASON]
        for attr in (schema.DUPLICATE_OF, schema.EVALUATED_BY):
            if attr.key in attrs:
                outcome[attr.key] = attrs[attr.key]
        for logger in self.loggers:
            logger.log_metrics(metrics)
            logger.log_hyperparams(outcome)
            logger.close(state)
