"""``search.strategy = "supernet"``: train one weight-sharing supernet, then search its paths.

Phase one (:func:`ensure_supernet`) trains the supernet of the study's space with Lightning on
the study's data and ``[training]`` settings (precision, channels-last, schedule, seed), one path
per step (``search.sampling``), checkpointed every epoch under ``<runs_dir>/<study>/supernet/``
so a killed training resumes where it stopped. The trained weights go to the study's artifact
store, where every worker reads them, and the study records them (``trial_schema.SUPERNET``).

Phase two is an ordinary Optuna study over the same parameters as a multi-trial one:
:class:`SupernetTrialRunner` activates each trial's architecture, re-estimates its BatchNorm
statistics on ``search.calibration_batches`` fixed training batches and measures validation
accuracy with the inherited weights; costs are those of the stand-alone ``build_model(spec)``.
``nas confirm`` then trains the best of its front on their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from optuna.trial import TrialState

from search_spaces.backbones import backbone_family
from search_spaces.build import build_model
from search_spaces.cost import count_flops
from search_spaces.spec import ArchSpec
from search_spaces.supernet import (
    PathSampler,
    activate,
    build_supernet,
    candidate_paths,
    recalibrate_bn,
    supernet_size,
)

from . import trial_schema as schema
from .artifacts import ArtifactNotFound, describe_store, download_weights, upload_weights
from .compiling import CompileDecision, compile_cache_dir, decide, expected_training_s, with_cache
from .config import StudyConfig, supernet_epochs
from .objective import EpochProgress, TrialOutcome, TrialRunner, ctrl_c_restored, split_size
from .stats import binomial_se
from .training import AtomicCheckpointIO, ClassifierModule, build_trainer, evaluate

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

#: The checkpoint Lightning rewrites at the end of every supernet epoch.
CHECKPOINT_NAME = "last.ckpt"
#: File name of the trained supernet in the artifact store.
WEIGHTS_NAME = "supernet.pt"


# -- what a supernet is, and whether a checkpoint belongs to it --------------------------------


def supernet_identity(cfg: StudyConfig, in_channels: int, num_classes: int) -> dict[str, Any]:
    """What makes two supernet trainings the same: the space, the image channels and classes,
    the seed, the path sampling and the training settings."""
    return {
        "space": cfg.space.to_dict(),
        "in_channels": in_channels,
        "num_classes": num_classes,
        "seed": cfg.study.seed,
        "sampling": cfg.search.sampling,
        "epochs": supernet_epochs(cfg),
        "training": json.loads(json.dumps(asdict(cfg.training), default=str)),
        "pretrained": cfg.pretrained,
    }


def identity_digest(identity: dict[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``key`` (``space.blocks``, ``seed``, ...) of every setting in which two identities differ,
    with both values."""
    out = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [
                f"{key}.{k} (checkpoint {a.get(k)!r}, this study {b.get(k)!r})"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            ]
        elif a != b:
            out.append(f"{key} (checkpoint {a!r}, this study {b!r})")
    return out


def check_identity(stored: dict[str, Any] | None, wanted: dict[str, Any], source: str) -> None:
    """Refuse supernet weights (``source``: a checkpoint file or an artifact) that were trained
    for another space or setting, naming what differs."""
    if stored is None:
        raise ValueError(
            f"{source} is not a supernet checkpoint of attention-nas (it records no space); "
            "delete it or point to the right file"
        )
    differences = identity_differences(stored, wanted)
    if differences:
        raise ValueError(
            f"{source} holds a supernet trained for another space or setting: "
            + "; ".join(differences)[:1500]
            + ". Use the config it was trained with, or delete it to train a new supernet"
        )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A supernet checkpoint (Lightning's or the artifact's), read to the CPU."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn file (killed mid-save), or not a checkpoint at all
        raise ValueError(
            f"supernet checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); a kill "
            "during its save can leave it torn: delete it to train the supernet again"
        ) from None


# -- memory ------------------------------------------------------------------------------------


def memory_limit_bytes(cfg: StudyConfig, device: str) -> int:
    """``search.max_supernet_mb``, or half the memory of the device (the GPU's, or this
    machine's RAM)."""
    if cfg.search.max_supernet_mb:
        return cfg.search.max_supernet_mb * 2**20
    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(torch.device(device)).total_memory // 2
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def optimizer_states(cfg: StudyConfig) -> int:
    """Tensors per parameter the optimiser keeps (SGD with momentum one, AdamW two)."""
    return 2 if cfg.training.optimizer == "adamw" else int(cfg.training.momentum > 0)


def check_supernet_fits(cfg: StudyConfig, datamodule: LightningDataModule, device: str) -> None:
    """Estimate the supernet on the meta device and refuse it, with its size, when training it
    would take more than the limit; nothing is allocated or stored."""
    size = supernet_size(
        cfg.space, datamodule.in_channels, datamodule.num_classes, optimizer_states(cfg)
    )
    limit = memory_limit_bytes(cfg, device)
    if size.training_bytes > limit:
        raise ValueError(
            f"search.strategy='supernet': the supernet of this space would not fit: "
            f"{size.describe()}, over the limit of {limit / 2**20:,.0f} MB "
            f"({'search.max_supernet_mb' if cfg.search.max_supernet_mb else 'half of ' + device}"
            "). Narrow space.blocks, space.reductions, space.eca_kernels or space.positions, or "
            "raise search.max_supernet_mb"
        )


# -- phase one: training -------------------------------------------------------------------------


class SupernetModule(ClassifierModule):
    """A :class:`~nas.training.ClassifierModule` over a supernet: before each training step the
    path of its global step (:class:`~search_spaces.supernet.PathSampler`) becomes active.

    Checkpoints carry the supernet's identity (``supernet``) and the training seconds so far.
    """

    def __init__(
        self,
        cfg: StudyConfig,
        in_channels: int,
        num_classes: int,
        *,
        max_bytes: int | None = None,
    ) -> None:
        net = build_supernet(
            cfg.space,
            in_channels,
            num_classes,
            seed=cfg.study.seed,
            pretrained=cfg.pretrained,
            max_bytes=max_bytes,
            optimizer_states=optimizer_states(cfg),
        )
        super().__init__(config=cfg.training, model=net, seed=cfg.study.seed)
        self.backbone_family = backbone_family(cfg.space.backbone)
        self.identity = supernet_identity(cfg, in_channels, num_classes)
        self.sampler = PathSampler(
            cfg.space,
            seed=cfg.study.seed,
            sampling=cfg.search.sampling,
            in_channels=in_channels,
            num_classes=num_classes,
        )
        self.train_seconds = 0.0
        self._epoch_started = 0.0

    def compiled_paths(self) -> list[str]:
        """Every candidate block where ``compile_scope`` is set: the path changes every step, so
        a supernet compiles its candidates one by one (one graph for candidates of one type and
        shape), never its units or the whole model (each path would be traced again)."""
        return [] if self.compile_scope is None else candidate_paths(self.model)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        activate(self.model, self.sampler(self.global_step))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.train_seconds += time.perf_counter() - self._epoch_started

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["supernet"] = self.identity
        checkpoint["train_seconds"] = self.train_seconds

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.train_seconds = float(checkpoint.get("train_seconds", 0.0))


@dataclass(frozen=True)
class SupernetRecord:
    """The trained supernet of a study (the ``supernet`` study attr)."""

    artifact: str
    identity: str
    epochs: int
    steps: int
    train_images: int
    image_epochs: int
    seconds: float
    sampling: str

    @classmethod
    def of(cls, study: optuna.Study) -> SupernetRecord | None:
        data = schema.supernet_record(study)
        return cls(**data) if data else None


def supernet_folder(cfg: StudyConfig) -> Path:
    return Path(cfg.study.runs_dir) / cfg.study.name / "supernet"


def train_supernet(
    cfg: StudyConfig,
    datamodule: LightningDataModule,
    *,
    device: str = "cpu",
    progress: bool = True,
    folder: Path | None = None,
    callbacks: Sequence[Callback] = (),
    module: SupernetModule | None = None,
) -> SupernetModule:
    """Train (or resume) the supernet of ``cfg``'s space; returns the trained module.

    A checkpoint is written (atomically) at the end of every epoch to ``folder/last.ckpt`` (default
    :func:`supernet_folder`); a checkpoint found there is resumed after its identity is checked,
    so a killed run goes on from its last epoch and ends with the same weights. ``callbacks``
    join the Trainer's (a logger, a timer). ``module``: train this one instead of a fresh
    supernet, e.g. a copy of a trained one whose sampler fixes a site (few-shot splitting)."""
    dm = datamodule
    folder = folder or supernet_folder(cfg)
    module = module or SupernetModule(
        cfg, dm.in_channels, dm.num_classes, max_bytes=memory_limit_bytes(cfg, device)
    )
    module.compile_scope = supernet_compile(cfg, module, dm, device).scope
    last = folder / CHECKPOINT_NAME
    resume = last if last.is_file() else None
    if resume is not None:
        check_identity(read_checkpoint(resume).get("supernet"), module.identity, str(resume))
    epochs = supernet_epochs(cfg)
    trainer_callbacks: list[Callback] = [
        *callbacks,
        ModelCheckpoint(
            dirpath=folder,
            filename="last",
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        ),
    ]
    if progress:
        trainer_callbacks.append(EpochProgress("supernet", epochs, monitor="train_acc"))
    on_gpu = device.startswith("cuda")
    trainer = build_trainer(
        cfg.training,
        seed=cfg.study.seed,
        callbacks=trainer_callbacks,
        accelerator="gpu" if on_gpu else "cpu",
        devices=[torch.device(device).index or 0] if on_gpu else 1,
        max_epochs=epochs,
        validate=False,
        default_root_dir=folder,
        plugins=[AtomicCheckpointIO()],
    )
    if hasattr(dm, "seed"):
        dm.seed = cfg.study.seed
    with ctrl_c_restored(trainer), warnings.catch_warnings():
        # Resuming writes into the folder of its own checkpoint, as it should.
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* is not empty")
        trainer.fit(module, datamodule=dm, ckpt_path=resume)
    return module


def supernet_compile(
    cfg: StudyConfig, module: SupernetModule, datamodule: LightningDataModule, device: str
) -> CompileDecision:
    """``training.compile`` for the supernet's training (its candidate blocks, scope
    ``"blocks"``), from the expected training of its plain backbone over every epoch; said on
    stderr."""
    device_type = device.split(":")[0]
    activate(module.model, {})  # "none" everywhere: the plain backbone's FLOPs
    flops = count_flops(module.model, (1, *datamodule.input_shape))
    samples = split_size(datamodule, "train") or 0
    expected = expected_training_s(flops, samples, supernet_epochs(cfg), device_type)
    decision = decide(cfg.training.compile, expected, device_type, "blocks")
    decision = with_cache(decision, compile_cache_dir(cfg))
    print(decision.line("supernet: "), file=sys.stderr)
    return decision


def ensure_supernet(
    cfg: StudyConfig,
    study: optuna.Study,
    datamodule: LightningDataModule,
    store: ArtifactStore,
    *,
    device: str = "cpu",
    progress: bool = True,
    train: bool = True,
) -> SupernetRecord:
    """The study's trained supernet: recorded already, or trained now (``train``), uploaded to the
    artifact store and recorded. A worker that may not train (``train=False``, ``nas worker``)
    is refused while the supernet is missing."""
    record = SupernetRecord.of(study)
    wanted = identity_digest(supernet_identity(cfg, datamodule.in_channels, datamodule.num_classes))
    if record is not None:
        if record.identity != wanted:
            raise ValueError(
                f"study {study.study_name!r} recorded a supernet trained for another space or "
                "setting; use the config the study was created with"
            )
        return record
    if not train:
        raise ValueError(
            f"the supernet of study {study.study_name!r} is not trained yet; train it with "
            "`nas search CONFIG` (which then runs the search), and join with `nas worker` after"
        )
    started = time.perf_counter()
    module = train_supernet(cfg, datamodule, device=device, progress=progress)
    seconds = module.train_seconds or time.perf_counter() - started
    train_size = split_size(datamodule, "train") or 0
    with tempfile.TemporaryDirectory(prefix="nas-supernet-") as tmp:
        path = Path(tmp) / WEIGHTS_NAME
        torch.save({"supernet": module.identity, "state_dict": module.model.state_dict()}, path)
        artifact = upload_weights(store, study, path)
    epochs = supernet_epochs(cfg)
    record = SupernetRecord(
        artifact=artifact,
        identity=wanted,
        epochs=epochs,
        steps=int(module.global_step),
        train_images=train_size,
        image_epochs=train_size * epochs,
        seconds=round(seconds, 3),
        sampling=cfg.search.sampling,
    )
    study.set_user_attr(schema.SUPERNET, asdict(record))
    return record


def load_trained_supernet(
    cfg: StudyConfig,
    record: SupernetRecord,
    store: ArtifactStore,
    in_channels: int,
    num_classes: int,
) -> torch.nn.Module:
    """The study's trained supernet, downloaded from the artifact store and checked."""
    with tempfile.TemporaryDirectory(prefix="nas-supernet-") as tmp:
        path = Path(tmp) / WEIGHTS_NAME
        try:
            download_weights(store, record.artifact, path)
        except ArtifactNotFound:
            raise ValueError(
                f"the supernet (artifact {record.artifact}) is missing from "
                f"{describe_store(store)}; run the worker where the study's artifact store is "
                "reachable"
            ) from None
        payload = read_checkpoint(path)
    wanted = supernet_identity(cfg, in_channels, num_classes)
    check_identity(payload.get("supernet"), wanted, f"supernet artifact {record.artifact}")
    net = build_supernet(cfg.space, in_channels, num_classes, seed=cfg.study.seed)
    net.load_state_dict(payload["state_dict"])
    return net


# -- phase two: sub-networks as trials -----------------------------------------------------------


def calibration_batches(
    datamodule: LightningDataModule, count: int, seed: int
) -> list[torch.Tensor]:
    """The first ``count`` training batches of epoch 0 under ``seed``: the same images, in the
    same order and augmentation, for every sub-network (common random numbers)."""
    if hasattr(datamodule, "seed"):
        datamodule.seed = seed
    loader = datamodule.train_dataloader()
    sampler = getattr(loader, "batch_sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(0)
    batches = []
    for batch in loader:  # the model's input, as the Trainer hands it on (a stream's uint8 scaled)
        batches.append(datamodule.on_after_batch_transfer(batch, 0)[0])
        if len(batches) == count:
            break
    return batches


class SupernetTrialRunner(TrialRunner):
    """Evaluates trials on the study's trained supernet instead of training them.

    Each trial's values are its validation accuracy with the supernet's weights after the
    BatchNorm statistics of its path are re-estimated, and the costs of the stand-alone model.
    The trial stores what a multi-trial trial stores (``arch``, ``cost``, ``val_history`` of one
    entry, ``val_size``, ``val_acc_se``) plus ``evaluated_by = "supernet"``; it trains no epoch
    of its own (``epochs_run`` 0) and keeps no weights.
    """

    def __init__(self, cfg: StudyConfig, study: optuna.Study, **options: Any) -> None:
        """As :class:`~nas.objective.TrialRunner` (``device``, ``progress``, ``datamodule``,
        ``artifact_store``), then the study's supernet downloaded and its calibration batches
        drawn."""
        super().__init__(cfg, study, **options)
        record = SupernetRecord.of(study)
        if record is None:
            raise ValueError(
                f"study {study.study_name!r} has no trained supernet yet; run `nas search CONFIG`"
            )
        self.record = record
        dm = self.datamodule
        net = load_trained_supernet(
            cfg, record, self.artifact_store, dm.in_channels, dm.num_classes
        )
        self.module = ClassifierModule(config=cfg.training, model=net, seed=cfg.study.seed)
        self.module.backbone_family = backbone_family(cfg.space.backbone)
        self.module.to(self.device)
        self.batches = calibration_batches(dm, cfg.search.calibration_batches, cfg.study.seed)

    def measure(
        self,
        trial: optuna.Trial,
        spec: ArchSpec,
        seed: int,
        data_seed: int,
        stop: threading.Event | None = None,
        loggers: Sequence[Logger] = (),
    ) -> TrialOutcome:
        """Evaluate the path on the supernet (seconds: ``stop`` is left to the worker, which
        looks at it before telling the outcome; no epochs for ``loggers``: the trial's runs get
        its values when it ends)."""
        cost = self.store_cost(trial, build_model(spec, seed=seed))
        accuracy, loss = self.estimate(spec)
        schema.EVALUATED_BY.set(trial, "supernet")
        history = [{"epoch": self.record.epochs - 1, "val_loss": loss, "val_acc": accuracy}]
        schema.VAL_HISTORY.set(trial, history)
        schema.EPOCHS_RUN.set(trial, 0)
        val_size = split_size(self.datamodule, "val")
        if val_size:
            schema.VAL_SIZE.set(trial, val_size)
            schema.VAL_ACC_SE.set(trial, binomial_se(accuracy, val_size))
        return TrialOutcome(TrialState.COMPLETE, self._values(accuracy, cost))

    def estimate(self, spec: ArchSpec) -> tuple[float, float]:
        """(val_acc, val_loss) of ``spec`` with the supernet's weights and its own BN statistics."""
        return estimate(self.module, spec, self.batches, self.datamodule, device=self.device)


def estimate(
    module: ClassifierModule,
    spec: ArchSpec,
    batches: Sequence[torch.Tensor],
    datamodule: LightningDataModule,
    *,
    device: str = "cpu",
) -> tuple[float, float]:
    """(val_acc, val_loss) of ``spec`` on the supernet of ``module``: the path activated, its
    BatchNorm statistics re-estimated on ``batches``, the validation split evaluated."""
    net = module.model
    activate(net, spec)
    recalibrate_bn(net, batches, device=device)
    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    scores = evaluate(module, datamodule, "val", accelerator=accelerator)
    return scores["val_acc"], scores["val_loss"]


def is_supernet(cfg: StudyConfig) -> bool:
    return cfg.search.strategy == "supernet"


__all__ = [
    "SupernetModule",
    "SupernetRecord",
    "SupernetTrialRunner",
    "calibration_batches",
    "check_identity",
    "check_supernet_fits",
    "ensure_supernet",
    "estimate",
    "is_supernet",
    "load_trained_supernet",
    "supernet_identity",
    "train_supernet",
]
