"""The storage schema: every study and trial attribute the engine writes, named once.

A study written by ``nas search`` is plain Optuna data, readable with ``optuna.load_study`` and
``study.trials_dataframe()``. What the engine adds lives in user attrs; this module is the only
place their keys appear. Each :class:`Attr` knows its key, what it holds and reads or writes it
on a live ``optuna.Trial``, a ``FrozenTrial`` or (for another process's trial) through the
storage. Values are JSON data, so Optuna's storages keep them unchanged.

Trial user attrs (all optional for a reader: older or hand-made trials may lack any of them):

==================  ======================================================================
``arch``            the trial's ArchSpec, ``ArchSpec.to_dict()`` (written before training)
``summary``         one-line description of the architecture (``ArchSpec.summary()``)
``digest``          16-hex-digit hash of the architecture (``ArchSpec.digest()``)
``seed``            the seed the model and its training were drawn from (int)
``worker``          ``host:pid`` of the process that ran the trial
``cost``            ``{"flops", "params", "latency_ms_b1", "latency_ms_bN", "activation_bytes",
                    "ort_latency_ms_b1", "ort_latency_ms_bN", ...}`` of the built model,
                    measured before training (latencies may be null; the ``ort_`` keys, ONNX
                    Runtime CPU latency, are absent from studies of 0.1.0)
``val_history``     ``[{"epoch", "val_acc", "val_loss"}, ...]``, one entry per validation
``epochs_run``      training epochs run (int); a duplicate ran none of its own
``checkpoint``      ``host:/abs/path.pt`` of the trained weights (studies of 0.1.0)
``weights_artifact`` id of the trained weights in the study's artifact store (``optuna.artifacts``)
``duplicate_of``    number of the completed trial whose results this one reused (same digest)
``pruned_at_epoch`` 0-based epoch at which a PRUNED trial stopped
``fail_reason``     why a FAIL trial failed (at most 2,000 characters)
``retry_of``        number of the interrupted trial this one repeats
``retries``         how many times the original trial has been re-queued (int)
``data_seed``       the seed of the batch order and augmentation draws (int)
``val_size``        images in the validation split (int)
``val_acc_se``      binomial standard error of the final ``val_acc``: sqrt(p (1 - p) / val_size)
``baseline``        name of the hand-made baseline the trial is (``none``, ``se``, ...)
``replicate``       confirm and table studies: which of the seeds the trial is (0-based)
``source_trial``    confirm studies: the search trial whose architecture it repeats (or null)
``test_acc``        confirm studies: accuracy on the held-out test split after training
``train_seconds``   wall-clock seconds of the trial's training (``trainer.fit``)
``cpu_seconds``     CPU seconds of this process (all its threads) during that training
``torch_threads``   torch's intra-op threads during it (CPU results are exact per thread count)
``evaluated_by``    ``supernet`` where the values were measured with a supernet's shared weights
                    (BatchNorm re-estimated; no training of its own); absent: trained stand-alone
==================  ======================================================================

Study user attrs: ``config``, the study config as plain data (``StudyConfig.to_dict()``),
``sampler_starts``, how many worker processes have started sampling (each seeds apart),
``baselines_enqueued``, the baselines queued when the study was created (names), and on a confirm
study ``confirm``: ``{"of": <searched study>, "top": K, "seeds": [...], "architectures": [...],
"looks": [...], "comparison": "dunnett" | "holm"}`` (every planned seed, as many as the last look;
the keys repeated, ``baseline none``, ``trial N``; the seeds per architecture at each look of
``--seeds auto``, one look for fixed seeds; how the gains over ``none`` are tested; a plan without
``looks`` or ``comparison`` is one look of all its seeds, Dunnett); on a table study
(``nas table build``) ``table``: ``{"seeds": [...], "architectures": N, "space_size": M,
"sample": n or null}``; on a supernet study
``supernet``: ``{"artifact", "identity", "epochs", "steps", "train_images", "image_epochs",
"seconds", "sampling"}`` once its supernet is trained (``nas.supernet.SupernetRecord``); on a
study with ``pruning.min_epochs = "auto"``, ``auto_first_rung``: ``{"epochs", "n",
"spearman_rho", "low", "high", "better_than_chance"}``, the first rung's epoch once the
study's completed trials chose it, with the evidence (``nas.rungs.AutoRungPruner``).
System attrs: Optuna's own (``constraints`` via ``FrozenTrial.constraints``, ``fixed_params``
of enqueued trials) and the MO-ASHA rung values ``moasha:completed_rung_<k>``
(:func:`moasha_rung_key`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import optuna
from optuna.trial import FrozenTrial

T = TypeVar("T")
AnyTrial = optuna.Trial | FrozenTrial


@dataclass(frozen=True)
class Attr(Generic[T]):
    """One trial user attr: its key and what it holds."""

    key: str
    doc: str

    def get(self, trial: AnyTrial, default: T | None = None) -> T | None:
        return trial.user_attrs.get(self.key, default)

    def has(self, trial: AnyTrial) -> bool:
        return self.key in trial.user_attrs

    def set(self, trial: optuna.Trial, value: T) -> None:
        trial.set_user_attr(self.key, value)

    def set_stored(self, study: optuna.Study, trial: FrozenTrial, value: T) -> None:
        """Write the attr of a trial this process does not hold (e.g. a dead worker's)."""
        study._storage.set_trial_user_attr(trial._trial_id, self.key, value)


ARCH: Attr[dict[str, Any]] = Attr("arch", "the ArchSpec as plain data")
SUMMARY: Attr[str] = Attr("summary", "one-line description of the architecture")
DIGEST: Attr[str] = Attr("digest", "hash of the architecture")
SEED: Attr[int] = Attr("seed", "seed of the model and its training")
WORKER: Attr[str] = Attr("worker", "host:pid of the process that ran the trial")
COST: Attr[dict[str, float | None]] = Attr("cost", "costs of the built model")
VAL_HISTORY: Attr[list[dict[str, float]]] = Attr("val_history", "one entry per validation")
EPOCHS_RUN: Attr[int] = Attr("epochs_run", "training epochs run")
CHECKPOINT: Attr[str] = Attr("checkpoint", "host:path of the trained weights")
WEIGHTS_ARTIFACT: Attr[str] = Attr("weights_artifact", "artifact id of the trained weights")
DUPLICATE_OF: Attr[int] = Attr("duplicate_of", "trial whose results this one reused")
PRUNED_AT_EPOCH: Attr[int] = Attr("pruned_at_epoch", "epoch at which the trial was pruned")
FAIL_REASON: Attr[str] = Attr("fail_reason", "why the trial failed")
RETRY_OF: Attr[int] = Attr("retry_of", "the interrupted trial this one repeats")
RETRIES: Attr[int] = Attr("retries", "times the original trial was re-queued")
DATA_SEED: Attr[int] = Attr("data_seed", "seed of the batch order and augmentation")
VAL_SIZE: Attr[int] = Attr("val_size", "images in the validation split")
VAL_ACC_SE: Attr[float] = Attr("val_acc_se", "binomial standard error of val_acc")
BASELINE: Attr[str] = Attr("baseline", "name of the hand-made baseline")
REPLICATE: Attr[int] = Attr("replicate", "confirm studies: the seed repeat")
SOURCE_TRIAL: Attr[int] = Attr("source_trial", "confirm studies: the search trial repeated")
TEST_ACC: Attr[float] = Attr("test_acc", "confirm studies: held-out test accuracy")
EVALUATED_BY: Attr[str] = Attr("evaluated_by", "supernet: measured with shared weights")
TABLE_ARCH: Attr[int] = Attr("table_arch", "table studies: index of the architecture")
TRAIN_SECONDS: Attr[float] = Attr("train_seconds", "wall-clock seconds of the training")
CPU_SECONDS: Attr[float] = Attr("cpu_seconds", "CPU seconds of the training process")
TORCH_THREADS: Attr[int] = Attr("torch_threads", "torch intra-op threads of the training")
TRAINED_WITH: Attr[dict[str, Any]] = Attr(
    "trained_with", "resolved training settings: channels_last, compiled, precision"
)

TRIAL_ATTRS: tuple[Attr[Any], ...] = (
    ARCH,
    SUMMARY,
    DIGEST,
    SEED,
    WORKER,
    COST,
    VAL_HISTORY,
    EPOCHS_RUN,
    CHECKPOINT,
    WEIGHTS_ARTIFACT,
    DUPLICATE_OF,
    PRUNED_AT_EPOCH,
    FAIL_REASON,
    RETRY_OF,
    RETRIES,
    DATA_SEED,
    VAL_SIZE,
    VAL_ACC_SE,
    BASELINE,
    REPLICATE,
    SOURCE_TRIAL,
    TEST_ACC,
    EVALUATED_BY,
    TABLE_ARCH,
    TRAIN_SECONDS,
    CPU_SECONDS,
    TORCH_THREADS,
    TRAINED_WITH,
)
#: Attrs a duplicate copies from the completed trial whose results it reuses.
REUSED_BY_DUPLICATES: tuple[Attr[Any], ...] = (
    COST,
    VAL_HISTORY,
    EPOCHS_RUN,
    CHECKPOINT,
    WEIGHTS_ARTIFACT,
    VAL_SIZE,
    VAL_ACC_SE,
    EVALUATED_BY,
    TRAINED_WITH,
)
#: Attrs a re-queued trial keeps: what it was queued as, not what it measured.
QUEUED_ATTRS: tuple[Attr[Any], ...] = (BASELINE, REPLICATE, SOURCE_TRIAL, TABLE_ARCH)
#: Longest failure reason stored (Optuna's RDB storage caps a user attr at 2,048 characters).
MAX_FAIL_REASON = 2000

#: Study user attr holding the study config as plain data.
STUDY_CONFIG = "config"
#: Study user attr counting the worker processes that started sampling (their seeds differ).
SAMPLER_STARTS = "sampler_starts"

#: Study user attr: names of the baselines queued when the study was created.
BASELINES_ENQUEUED = "baselines_enqueued"
#: Study user attr of a confirm study: ``{"of": <searched study>, "top": K, "seeds": [...],
#: "architectures": [...], "looks": [...], "comparison": ...}`` (module docstring).
CONFIRM = "confirm"
#: Study user attr of a table study: ``{"seeds": [...], "architectures": N, "space_size": M}``.
TABLE = "table"
#: Study user attr of a supernet study once its supernet is trained (``supernet_record``).
SUPERNET = "supernet"

#: Study user attr of a study with ``pruning.min_epochs = "auto"`` once its first rung is chosen.
AUTO_FIRST_RUNG = "auto_first_rung"

_MOASHA_RUNG_PREFIX = "moasha:completed_rung_"


def moasha_rung_key(rung: int) -> str:
    """System attr holding a trial's curve value at MO-ASHA rung ``rung`` (0-based)."""
    return f"{_MOASHA_RUNG_PREFIX}{rung}"


# -- typed readers ------------------------------------------------------------------------------


def cost(trial: AnyTrial) -> dict[str, float | None]:
    """The trial's measured costs (empty where none were recorded)."""
    return dict(COST.get(trial) or {})


def epochs_run(trial: AnyTrial) -> int:
    """Training epochs a trial ran; trials written without the attr count their curve's epochs
    (only a FrozenTrial has them: a live ``optuna.Trial`` of Optuna 5 has no
    ``intermediate_values``, and the engine's own trials always hold the attr)."""
    if EPOCHS_RUN.has(trial):
        return int(EPOCHS_RUN.get(trial))
    return len(trial.intermediate_values)


def epochs_spent(trial: AnyTrial) -> int:
    """Epochs of training the trial cost: a duplicate reused another's results and cost none."""
    return 0 if DUPLICATE_OF.has(trial) else epochs_run(trial)


def worker_host_pid(trial: AnyTrial) -> tuple[str, int | None]:
    """(host, pid) of the trial's worker; ``("", None)`` where unknown."""
    host, _, pid = str(WORKER.get(trial, "")).rpartition(":")
    return host, int(pid) if pid.isdigit() else None


def this_worker() -> str:
    """The ``worker`` value of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def checkpoint_location(trial: AnyTrial) -> tuple[str, Path] | None:
    """(host, path) of the trial's weights as recorded in the study, or None."""
    where = CHECKPOINT.get(trial)
    if not where:
        return None
    host, _, path = where.partition(":")
    return host, Path(path)


def checkpoint_value(path: Path) -> str:
    """The ``checkpoint`` value for a file written on this host."""
    return f"{socket.gethostname()}:{path.resolve()}"


def sampler_starts(study: optuna.Study) -> int:
    """How many worker processes have started sampling this study."""
    return int(study.user_attrs.get(SAMPLER_STARTS, 0))


def stored_config(study: optuna.Study) -> dict[str, Any] | None:
    """The study config stored by ``nas search``, or None for a study made elsewhere."""
    return study.user_attrs.get(STUDY_CONFIG)


def confirm_plan(study: optuna.Study) -> dict[str, Any] | None:
    """What a confirm study repeats (``confirm``), or None for a searched study."""
    return study.user_attrs.get(CONFIRM)


def table_plan(study: optuna.Study) -> dict[str, Any] | None:
    """What a table study trains (``table``), or None for any other study."""
    return study.user_attrs.get(TABLE)


def planned_seeds(study: optuna.Study) -> list[int] | None:
    """The seeds of a study whose runs are planned up front (a confirm or a table study:
    ``replicate`` r trains with the r-th), or None for a searched study."""
    plan = confirm_plan(study) or table_plan(study)
    return None if plan is None else [int(s) for s in plan["seeds"]]


def auto_first_rung(study: optuna.Study) -> dict[str, Any] | None:
    """The first rung ``pruning.min_epochs = "auto"`` chose, with its evidence; None until then."""
    return study.user_attrs.get(AUTO_FIRST_RUNG)


def supernet_record(study: optuna.Study) -> dict[str, Any] | None:
    """The trained supernet of a supernet study (``supernet``), or None until it is trained."""
    return study.user_attrs.get(SUPERNET)


def by_supernet(trial: AnyTrial) -> bool:
    """Whether the trial's values are a supernet's estimate rather than a stand-alone run."""
    return EVALUATED_BY.get(trial) == "supernet"


#: ``trained_with["precision"]`` (Lightning's name) as a ``training.precision`` value.
CONFIG_PRECISION = {"32-true": "32", "bf16-mixed": "bf16-mixed"}


def study_precision(study: optuna.Study) -> str | None:
    """The ``training.precision`` the study's first trial trained with (by trial number; trials
    of any release store it in ``trained_with``), or None before one did."""
    for trial in study.get_trials(deepcopy=False):
        stored = (TRAINED_WITH.get(trial) or {}).get("precision")
        if stored in CONFIG_PRECISION:
            return CONFIG_PRECISION[stored]
    return None
