"""``[tracking]``: the experiment trackers every trial logs to (TensorBoard, MLflow, W&B, CSV).

Empty by default: a study without the section tracks nothing, as before it existed. The runs
themselves are made by :mod:`nas.tracking`; here only the settings and their types.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, StrictStr, model_validator
from pydantic.dataclasses import dataclass

from ._validation import _CONFIG, _distinct, _field, _invalid, _one_line_errors, _one_of

_Tracker = Literal["tensorboard", "mlflow", "wandb", "csv"]
_WandbMode = Literal["offline", "online"]

TRACKERS: tuple[str, ...] = get_args(_Tracker)
WANDB_MODES: tuple[str, ...] = get_args(_WandbMode)


@_one_line_errors
@dataclass(frozen=True, config=_CONFIG)
class TrackingSection:
    """``[tracking]``: each trial is one run (``trial-00012``) of every tracker listed in
    ``loggers``, with its parameters, per-epoch metrics, costs, final values and state.

    Offline by default: TensorBoard event files, CSV files and W&B offline runs under ``dir``, an
    MLflow SQLite store there too unless ``uri`` (or ``MLFLOW_TRACKING_URI``) names a server.
    Not part of what makes trials comparable: it may change when a study is resumed.
    """

    loggers: Annotated[tuple[_Tracker, ...], AfterValidator(_distinct)] = _field(
        (),
        allowed=f"a list of distinct trackers from {list(TRACKERS)}",
        doc="Trackers each trial logs to (empty: none).",
    )
    dir: StrictStr = _field(
        "",
        allowed="a folder path, or '' for runs_dir/<name>/tracking",
        doc="Folder of TensorBoard and CSV logs, W&B offline runs and the default MLflow store.",
    )
    uri: StrictStr = _field(
        "",
        allowed="an MLflow tracking URI (http://host:5000, sqlite:///file.db, databricks), or '' "
        "for the MLFLOW_TRACKING_URI variable, else sqlite:///<dir>/mlflow/mlflow.db",
        doc="MLflow tracking server or store.",
    )
    experiment: StrictStr = _field(
        "",
        allowed="an experiment name, or '' for study.name",
        doc="MLflow experiment and W&B project the runs belong to (default: the study name).",
    )
    wandb_mode: _WandbMode = _field(
        "offline",
        allowed=_one_of(WANDB_MODES),
        doc="W&B: offline runs under dir (upload later with `wandb sync`), or online (needs "
        "`wandb login` or WANDB_API_KEY).",
    )

    @model_validator(mode="after")
    def _settings_of_listed_trackers(self) -> TrackingSection:
        if self.uri and "mlflow" not in self.loggers:
            raise _invalid(
                "uri",
                "is MLflow's tracking URI, but loggers does not list 'mlflow'; add it to "
                "tracking.loggers, or remove tracking.uri",
            )
        if self.wandb_mode == "online" and "wandb" not in self.loggers:
            raise _invalid(
                "wandb_mode",
                "applies to W&B, but loggers does not list 'wandb'; add it to tracking.loggers, "
                "or remove tracking.wandb_mode",
            )
        return self
