"""Tests of ``nas.training`` on a tiny learnable toy task (CPU, a few seconds each)."""

from __future__ import annotations

import logging
import math
import warnings

import lightning as L
import optuna
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import attn_blocks
from nas.config import DataConfig
from nas.data import build_datamodule
from nas.training import (
    CPU_BF16_MIN_FLOPS,
    ClassifierModule,
    NonFiniteLossError,
    RunScope,
    TrainingConfig,
    build_trainer,
    evaluate,
    param_groups_weight_decay,
    resolve_channels_last,
    resolve_precision,
    validation_interval,
)
from search_spaces.backbones import backbone_family, backbone_sites
from search_spaces.build import build_model
from search_spaces.spec import ArchSpec, BlockChoice

NUM_CLASSES = 4
BATCH = 16
TRAIN_SIZE = 128  # 8 optimiser steps per epoch
STEPS_PER_EPOCH = TRAIN_SIZE // BATCH


def toy_tensors(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images whose class is one of four textures (row stripes, column stripes,
    checkerboard, flat) with a random sign, under Gaussian noise.

    A texture rule rather than a positional one: the backbones end in global average pooling,
    which cannot see where in the image something is, but conv filters see textures at once.
    """
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(8).view(8, 1).expand(8, 8)
    cols = torch.arange(8).view(1, 8).expand(8, 8)
    textures = torch.stack(
        [1 - 2 * (rows % 2), 1 - 2 * (cols % 2), 1 - 2 * ((rows + cols) % 2), torch.ones(8, 8)]
    ).float()
    labels = torch.randint(NUM_CLASSES, (n,), generator=gen)
    signs = torch.randint(2, (n, 1, 1), generator=gen).float() * 2 - 1
    images = signs * textures[labels] + 0.5 * torch.randn(n, 8, 8, generator=gen)
    return images.unsqueeze(1), labels


class ToyData(L.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.splits = {
            "train": TensorDataset(*toy_tensors(TRAIN_SIZE, seed=1)),
            "val": TensorDataset(*toy_tensors(64, seed=2)),
            "test": TensorDataset(*toy_tensors(64, seed=3)),
        }

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["train"], batch_size=BATCH, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], batch_size=BATCH)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], batch_size=BATCH)


def toy_spec() -> ArchSpec:
    return ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=NUM_CLASSES, sites={})


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, NUM_CLASSES),
    )


def fit(module: ClassifierModule, cfg: TrainingConfig, seed: int = 0, **kwargs) -> L.Trainer:
    trainer = build_trainer(cfg, seed=seed, **kwargs)
    trainer.fit(module, datamodule=ToyData())
    return trainer


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for name, tensor in state_a.items():
        assert torch.equal(tensor, state_b[name]), name


class LRRecorder(L.Callback):
    """The learning rate used by each optimiser step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


# -- training ------------------------------------------------------------------------------


def test_training_raises_val_acc_and_keeps_one_history_entry_per_epoch(tmp_path):
    cfg = TrainingConfig(epochs=4, lr=0.1)
    module = ClassifierModule(toy_spec(), config=cfg, seed=0)
    before = evaluate(module, ToyData(), split="val")
    trainer = fit(module, cfg, default_root_dir=tmp_path)

    assert [entry["epoch"] for entry in module.val_history] == [0, 1, 2, 3]
    accuracies = [entry["val_acc"] for entry in module.val_history]
    assert accuracies[-1] >= 0.85
    assert accuracies[-1] >= before["val_acc"] + 0.4
    assert max(accuracies[1:]) > accuracies[0]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert key in trainer.callback_metrics
    assert trainer.callback_metrics["val_acc"].item() == pytest.approx(accuracies[-1])
    assert list(tmp_path.iterdir()) == []  # no logs or checkpoints unless asked


class UnevenToyData(ToyData):
    """120 training samples in batches of 16: the last batch holds 8, so means need weights."""

    def __init__(self) -> None:
        super().__init__()
        images, labels = self.splits["train"].tensors
        self.splits["train"] = TensorDataset(images[:120], labels[:120])


class TrainStepRecorder(L.Callback):
    """Each training step's (loss, number correct, batch size), as the step computed them."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, int, int]] = []
        self._logits: torch.Tensor | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._hook = pl_module.model.register_forward_hook(self._keep_logits)

    def _keep_logits(self, module, inputs, output) -> None:
        self._logits = output.detach()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._hook.remove()
        labels = batch[1]
        correct = int((self._logits.argmax(dim=1) == labels).sum())
        self.steps.append((float(outputs["loss"]), correct, len(labels)))


def test_train_metrics_are_sample_weighted_means_of_the_epochs_steps():
    cfg = TrainingConfig(epochs=2, lr=0.05, label_smoothing=0.1)
    module = ClassifierModule(toy_spec(), config=cfg, seed=0)
    recorder = TrainStepRecorder()
    trainer = build_trainer(cfg, seed=0, callbacks=[recorder])
    trainer.fit(module, datamodule=UnevenToyData())

    assert len(recorder.steps) == 16
    steps = recorder.steps[8:]  # the metrics start afresh each epoch: the last epoch's steps
    assert [n for _, _, n in steps] == [16] * 7 + [8]
    count = sum(n for _, _, n in steps)
    loss = math.fsum(step_loss * n for step_loss, _, n in steps) / count
    accuracy = sum(correct for _, correct, _ in steps) / count
    metrics = trainer.callback_metrics
    assert metrics["train_loss"].item() == pytest.approx(loss, rel=1e-6)
    assert metrics["train_acc"].item() == pytest.approx(accuracy, abs=1e-6)  # float32
    # The unweighted mean of the step losses differs: the short last batch is not over-counted.
    assert loss != pytest.approx(sum(step_loss for step_loss, _, _ in steps) / len(steps))


def test_val_and_test_metrics_are_exact_over_the_split():
    module = ClassifierModule(model=small_cnn(), config=TrainingConfig(epochs=1))
    data = ToyData()
    result = evaluate(module, data, split="test")
    images, labels = data.splits["test"].tensors
    module.eval()
    with torch.no_grad():
        logits = module(images)
    assert set(result) == {"test_acc", "test_loss"}
    assert result["test_acc"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert result["test_loss"] == pytest.approx(
        nn.functional.cross_entropy(logits, labels).item(), rel=1e-5
    )
    assert module.val_history == []
    evaluate(module, data, split="val")
    assert module.val_history == []  # only fit records history
    assert evaluate(module, data, split="test") == result  # nothing left over from the last run
    with pytest.raises(ValueError, match="split"):
        evaluate(module, data, split="train")


def test_val_history_holds_float64_means_over_the_whole_split():
    cfg = TrainingConfig(epochs=1)
    module = ClassifierModule(model=small_cnn(), config=cfg)
    data = ToyData()
    fit(module, cfg)
    module.eval()
    with torch.no_grad():  # in the loader's batches, so the float32 per-sample losses match
        logits = torch.cat([module(x) for x, _ in data.val_dataloader()])
    labels = data.splits["val"].tensors[1]
    losses = nn.functional.cross_entropy(logits, labels, reduction="none").double()
    (entry,) = module.val_history
    assert entry["val_acc"] == int((logits.argmax(1) == labels).sum()) / len(labels)  # exact
    assert entry["val_loss"] == pytest.approx(losses.mean().item(), rel=1e-12)
    # Per-split metric state is not saved: checkpoints hold the model's weights only.
    assert all(key.startswith("model.") for key in module.state_dict())


class NaNOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


def test_a_nan_validation_loss_is_reported_not_dropped():
    module = ClassifierModule(
        model=nn.Sequential(small_cnn(), NaNOutput()), config=TrainingConfig(epochs=1)
    )
    assert math.isnan(evaluate(module, ToyData(), split="val")["val_loss"])


def test_same_seed_reproduces_history_and_weights_and_another_seed_does_not():
    cfg = TrainingConfig(epochs=2, lr=0.05)

    def run(seed: int) -> ClassifierModule:
        module = ClassifierModule(toy_spec(), config=cfg, seed=seed)
        fit(module, cfg, seed=seed)
        return module

    first, second, other = run(0), run(0), run(1)
    assert first.val_history == second.val_history
    assert_same_weights(first, second)
    assert first.val_history != other.val_history
    assert not torch.equal(first.model.fc.weight, other.model.fc.weight)


def test_validating_only_after_the_last_epoch_trains_the_same_weights():
    """The project's loaders draw nothing from torch's global RNG (their own generators), so
    skipping validations changes no training step."""
    cfg = TrainingConfig(epochs=3, lr=0.05)
    data = DataConfig(name="digits", per_class=8, val_per_class=4, batch_size=16)
    spec = ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=10, sites={})
    every, once = (ClassifierModule(spec, config=cfg, seed=0) for _ in range(2))
    for module, n in ((every, 1), (once, 3)):
        trainer = build_trainer(cfg, seed=0, val_every_n_epochs=n)
        trainer.fit(module, datamodule=build_datamodule(data, seed=0))
    assert [h["epoch"] for h in every.val_history] == [0, 1, 2]
    assert once.val_history == every.val_history[-1:]  # the same final validation, bit for bit
    assert_same_weights(every, once)


@pytest.mark.parametrize(
    ("validate", "curve_read", "interval"),
    [
        ("auto", True, 1),
        ("auto", False, 12),
        ("every_epoch", False, 1),
        ("every_epoch", True, 1),
        ("last_epoch", False, 12),
    ],
)
def test_validation_runs_every_epoch_only_where_the_curve_is_read(validate, curve_read, interval):
    assert validation_interval(validate, 12, curve_read) == interval


def test_the_progress_bar_moves_every_epoch_of_a_run_that_validates_at_its_end():
    from nas.objective import EpochProgress

    class Watched(EpochProgress):
        """The bar's count and postfix after each epoch."""

        def __init__(self, *args) -> None:
            super().__init__(*args)
            self.seen: list[tuple[int, str]] = []

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            super().on_train_epoch_end(trainer, pl_module)
            self.seen.append((self.bar.n, self.bar.postfix))

    cfg = TrainingConfig(epochs=3, lr=0.05)
    data = DataConfig(name="digits", per_class=4, val_per_class=2, batch_size=16)
    spec = ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=10, sites={})
    module = ClassifierModule(spec, config=cfg, seed=0)
    bar = Watched("trial 0", cfg.epochs)
    trainer = build_trainer(cfg, seed=0, callbacks=[bar], val_every_n_epochs=3)
    trainer.fit(module, datamodule=build_datamodule(data, seed=0))
    final = f"{module.val_history[-1]['val_acc']:.3f}"
    assert bar.seen == [(1, "val_acc=-"), (2, "val_acc=-"), (3, f"val_acc={final}")]
    assert bar.bar is None  # closed at teardown


class FlagProbe(L.Callback):
    """The torch flags and Lightning's log level at the first batch of a run, and optionally an
    exception raised from the end of the first validation (as a pruned trial's callback does)."""

    def __init__(self, raise_on_validation: BaseException | None = None) -> None:
        self.seen: list[tuple[bool, bool, int]] = []
        self.raise_on_validation = raise_on_validation

    def _record(self, *args: object) -> None:
        if not self.seen:
            self.seen.append(
                (
                    torch.are_deterministic_algorithms_enabled(),
                    torch.backends.cudnn.benchmark,
                    logging.getLogger("lightning.pytorch").getEffectiveLevel(),
                )
            )

    on_train_batch_start = on_validation_batch_start = on_test_batch_start = _record

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.raise_on_validation is not None and trainer.state.fn == "fit":
            raise self.raise_on_validation


@pytest.fixture
def caller_flags():
    """Non-default process-wide settings of a caller, put back after the test."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = True
    lightning_logger.setLevel(logging.INFO)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.benchmark = before[2]
    lightning_logger.setLevel(level)


def _current_flags() -> tuple:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        logging.getLogger("lightning.pytorch").level,
        list(warnings.filters),
    )


@pytest.mark.parametrize("run", ["fit", "validate", "test", "fit_nan", "fit_pruned"])
@pytest.mark.usefixtures("caller_flags")
def test_runs_set_torch_flags_and_log_levels_and_restore_them_even_when_they_raise(run, capfd):
    cfg = TrainingConfig(epochs=2, deterministic=False)
    model = nn.Sequential(small_cnn(), TurnsNaN(after=3)) if run == "fit_nan" else small_cnn()
    module = ClassifierModule(model=model, config=cfg)
    probe = FlagProbe(optuna.TrialPruned("pruned") if run == "fit_pruned" else None)
    trainer = build_trainer(cfg, seed=0, callbacks=[probe], accelerator="cpu")
    assert type(trainer) is L.Trainer
    assert [type(cb) for cb in trainer.callbacks[:2]] == [RunScope, FlagProbe]
    caller = _current_flags()
    assert caller[:4] == (True, True, True, logging.INFO)

    if run in ("fit", "validate", "test"):
        getattr(trainer, run)(module, datamodule=ToyData())
    else:
        expected = NonFiniteLossError if run == "fit_nan" else optuna.TrialPruned
        with pytest.raises(expected):
            trainer.fit(module, datamodule=ToyData())

    # Inside the run: the config's flags (not deterministic; no cuDNN autotuning on the CPU) and
    # Lightning quiet; afterwards the caller's settings, warning filters included.
    assert probe.seen == [(False, False, logging.WARNING)]
    assert _current_flags() == caller
    assert trainer.precision == "32-true"
    out, err = capfd.readouterr()
    assert "GPU available" not in out + err
    assert "stopped" not in out + err


def test_cpu_runs_are_deterministic_by_default():
    cfg = TrainingConfig(epochs=1)
    probe = FlagProbe()
    assert not torch.are_deterministic_algorithms_enabled()
    fit(ClassifierModule(model=small_cnn(), config=cfg), cfg, callbacks=[probe])
    assert probe.seen[0][0]  # deterministic on the CPU while fitting ...
    assert not torch.are_deterministic_algorithms_enabled()  # ... and restored afterwards


# -- failures ------------------------------------------------------------------------------


class TurnsNaN(nn.Module):
    """Multiplies its input by NaN from the ``after``-th training forward on."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                return x * float("nan")
        return x


def test_non_finite_loss_raises_with_the_step_out_of_fit():
    model = nn.Sequential(small_cnn(), TurnsNaN(after=3))
    cfg = TrainingConfig(epochs=2)
    with pytest.raises(NonFiniteLossError, match=r"global step 3 \(epoch 0, batch 3\)"):
        fit(ClassifierModule(model=model, config=cfg), cfg)
    assert issubclass(NonFiniteLossError, RuntimeError)
    assert not torch.are_deterministic_algorithms_enabled()


# -- optimisation --------------------------------------------------------------------------


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


@pytest.mark.parametrize(
    ("schedule", "warmup_epochs"), [("cosine", 0), ("cosine", 1), ("constant", 1), ("constant", 0)]
)
def test_lambda_schedules_follow_their_formulas(schedule, warmup_epochs):
    cfg = TrainingConfig(epochs=3, lr=0.2, schedule=schedule, warmup_epochs=warmup_epochs)
    recorder = LRRecorder()
    fit(ClassifierModule(model=small_cnn(), config=cfg), cfg, callbacks=[recorder])

    total, warmup = 3 * STEPS_PER_EPOCH, warmup_epochs * STEPS_PER_EPOCH
    assert len(recorder.lrs) == total
    for step in (0, 1, warmup - 1, warmup, warmup + 1, total // 2, total - 1):
        if step < 0:
            continue
        if schedule == "cosine":
            expected = 0.2 * _cosine(step, total, warmup)
        else:
            expected = 0.2 * min(1.0, (step + 1) / warmup) if warmup else 0.2
        assert recorder.lrs[step] == pytest.approx(expected, rel=1e-6), step


def test_onecycle_rises_to_lr_then_anneals_to_lr_over_25e4():
    cfg = TrainingConfig(epochs=2, lr=0.4, schedule="onecycle", warmup_epochs=1)
    recorder = LRRecorder()
    fit(ClassifierModule(model=small_cnn(), config=cfg), cfg, callbacks=[recorder])

    total, peak = 2 * STEPS_PER_EPOCH, STEPS_PER_EPOCH - 1  # pct_start = 1/2
    initial, final = 0.4 / 25, 0.4 / 25 / 1e4  # OneCycleLR's div_factor and final_div_factor

    def anneal(start: float, end: float, fraction: float) -> float:
        return end + (start - end) / 2 * (1 + math.cos(math.pi * fraction))

    assert len(recorder.lrs) == total
    assert recorder.lrs[0] == pytest.approx(initial)
    assert recorder.lrs[3] == pytest.approx(anneal(initial, 0.4, 3 / peak))
    assert recorder.lrs[peak] == pytest.approx(0.4)
    assert recorder.lrs[12] == pytest.approx(anneal(0.4, final, (12 - peak) / (total - 1 - peak)))
    assert recorder.lrs[-1] == pytest.approx(final)


class WithGate(nn.Module):
    """A conv net with a 4-D gate parameter it exempts through timm's ``no_weight_decay``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = small_cnn()
        self.gate = nn.Parameter(torch.ones(1, 8, 1, 1))
        self.scale = nn.Parameter(torch.ones(8))

    def no_weight_decay(self) -> set[str]:
        return {"gate"}


def test_weight_decay_skips_norm_layers_biases_and_listed_params():
    model = WithGate()
    decay, no_decay = param_groups_weight_decay(model, 5e-4)
    conv, bn, linear = model.net[0], model.net[1], model.net[5]
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(conv.weight), id(linear.weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(p) for p in (conv.bias, bn.weight, bn.bias, linear.bias, model.gate, model.scale)
    }


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_optimizer_uses_the_decay_groups(optimizer):
    cfg = TrainingConfig(epochs=1, optimizer=optimizer, lr=0.01, schedule="constant")
    module = ClassifierModule(toy_spec(), config=cfg)
    opt = module.configure_optimizers()["optimizer"]
    expected = torch.optim.SGD if optimizer == "sgd" else torch.optim.AdamW
    assert type(opt) is expected
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0]
    bn_weight = module.model.bn1.weight
    assert any(p is bn_weight for p in opt.param_groups[1]["params"])
    if optimizer == "sgd":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9


# -- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_round_trip_rebuilds_spec_config_and_weights(tmp_path):
    cfg = TrainingConfig(epochs=1, label_smoothing=0.1)
    module = ClassifierModule(toy_spec().to_dict(), config=cfg, seed=3)
    trainer = fit(module, cfg)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    loaded = ClassifierModule.load_from_checkpoint(path)
    assert loaded.spec == toy_spec()
    assert loaded.config == cfg
    assert loaded.val_history == module.val_history and len(loaded.val_history) == 1
    assert_same_weights(module, loaded)


def test_checkpoint_of_a_model_module_needs_the_model_again(tmp_path):
    cfg = TrainingConfig(epochs=1)
    module = ClassifierModule(model=small_cnn(seed=0), config=cfg)
    trainer = fit(module, cfg)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    with pytest.raises(ValueError, match="model="):
        ClassifierModule.load_from_checkpoint(path)
    loaded = ClassifierModule.load_from_checkpoint(path, model=small_cnn(seed=1))
    assert_same_weights(module, loaded)


def test_module_needs_exactly_one_of_spec_and_model():
    cfg = TrainingConfig(epochs=1)
    with pytest.raises(ValueError, match=r"exactly one of spec= .* or model="):
        ClassifierModule(config=cfg)
    with pytest.raises(ValueError, match="exactly one"):
        ClassifierModule(toy_spec(), model=small_cnn(), config=cfg)


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 2.5),
        ("optimizer", "adam"),
        ("lr", 0),
        ("lr", float("nan")),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("schedule", "step"),
        ("warmup_epochs", 5),
        ("label_smoothing", 1.0),
        ("precision", "16-mixed"),
        ("channels_last", "yes"),
        ("deterministic", None),
        ("gradient_clip", 0),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"TrainingConfig\.{field}"):
        TrainingConfig(**{"epochs": 5, field: value})


def test_config_rejects_nesterov_without_momentum_and_unknown_keys():
    with pytest.raises(ValueError, match=r"nesterov needs momentum > 0"):
        TrainingConfig(epochs=1, momentum=0.0)
    assert TrainingConfig(epochs=1, optimizer="adamw", momentum=0.0).momentum == 0.0
    with pytest.raises(ValueError, match=r"unknown key.*'lr_max'"):
        TrainingConfig.from_dict({"epochs": 1, "lr_max": 0.1})
    cfg = TrainingConfig(epochs=3, schedule="onecycle", gradient_clip=1.0)
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg


def test_precision_resolves_from_the_device(monkeypatch):
    assert resolve_precision("auto", "cpu") == "32-true"  # FLOPs unknown
    assert resolve_precision("32", "cuda") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert resolve_precision("32", "cpu", flops=1e12) == "32-true"
    # "auto" on a CPU: bfloat16 from the measured FLOPs up, where the CPU computes it natively
    big, small = CPU_BF16_MIN_FLOPS, CPU_BF16_MIN_FLOPS * 0.99
    monkeypatch.setattr("nas.training.cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu", flops=big) == "bf16-mixed"
    assert resolve_precision("auto", "cpu", flops=small) == "32-true"
    assert resolve_precision("auto", "mps", flops=big) == "32-true"
    monkeypatch.setattr("nas.training.cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu", flops=big) == "32-true"  # emulated: slower


def test_bf16_threshold_lies_between_the_models_measured():
    """The quickstart's ResNet-8 (slower in bfloat16) stays below it, the CIFAR ResNet-20 (every
    block faster) above it, as ``benchmarks/speed.py --bf16`` measured them."""
    from search_spaces.cost import model_cost

    def flops(backbone: str, channels: int, side: int) -> float:
        args = {"width": 16} if backbone == "resnet8" else {}
        sites = {s.name: BlockChoice("se") for s in backbone_sites(backbone, **args)}
        spec = ArchSpec(backbone, args, in_channels=channels, num_classes=10, sites=sites)
        return model_cost(build_model(spec), (channels, side, side), latency=False).flops

    assert flops("resnet8", 1, 8) < flops("resnet8", 3, 32) < CPU_BF16_MIN_FLOPS
    assert flops("resnet20", 3, 32) >= CPU_BF16_MIN_FLOPS


def test_channels_last_auto_follows_the_device_and_the_measured_backbone_families():
    assert backbone_family("resnet20") == backbone_family("cifar_resnet") == "cifar_resnet"
    assert backbone_family("resnet18") == "torchvision_resnet"
    assert backbone_family("timm:resnet18") == "timm"
    assert resolve_channels_last("auto", "cuda", "timm") and resolve_channels_last(
        "auto", "cuda", None
    )
    assert resolve_channels_last("auto", "cpu", "cifar_resnet")
    assert resolve_channels_last("auto", "cpu", "torchvision_resnet")
    assert not resolve_channels_last("auto", "cpu", "mobilenet_v2")
    assert not resolve_channels_last("auto", "cpu", "timm")  # not measured: contiguous
    assert not resolve_channels_last("auto", "cpu", None)  # a model= module
    assert not resolve_channels_last("auto", "mps", "cifar_resnet")
    assert resolve_channels_last(True, "cpu", None)
    assert not resolve_channels_last(False, "cuda", "cifar_resnet")


def _channels_last_convs(model: nn.Module) -> set[bool]:
    """For each conv weight with several input channels (one channel is both layouts at once):
    whether it is stored channels-last."""
    return {
        p.is_contiguous(memory_format=torch.channels_last)
        for p in model.parameters()
        if p.dim() == 4 and p.shape[1] > 1
    }


def test_auto_trains_a_cifar_resnet_channels_last_on_the_cpu_and_a_given_model_as_it_is():
    cfg = TrainingConfig(epochs=1)
    module = ClassifierModule(toy_spec(), config=cfg)
    fit(module, cfg)
    assert _channels_last_convs(module.model) == {True}
    own_model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, NUM_CLASSES),
    )
    own = ClassifierModule(model=own_model, config=cfg)
    fit(own, cfg)
    assert _channels_last_convs(own.model) == {False}


@pytest.mark.parametrize("block", [b for b in attn_blocks.available() if b != "none"])
def test_channels_last_leaves_each_blocks_numerics_unchanged(block):
    sites = {s.name: BlockChoice(block) for s in backbone_sites("resnet8", width=16)}
    spec = ArchSpec("resnet8", {"width": 16}, in_channels=3, num_classes=10, sites=sites)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    results = []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        model = build_model(spec, seed=0).to(memory_format=memory_format).train()
        out = model(x.contiguous(memory_format=memory_format))
        out.square().sum().backward()
        results.append((out, {n: p.grad for n, p in model.named_parameters()}))
    (out, grads), (out_last, grads_last) = results
    torch.testing.assert_close(out_last, out, rtol=1e-4, atol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_last[name], grad, rtol=1e-3, atol=1e-4, msg=name)


def test_gpu_defaults_bf16_and_channels_last_also_run_on_the_cpu():
    cfg = TrainingConfig(epochs=1, precision="bf16-mixed", channels_last=True)
    module = ClassifierModule(toy_spec(), config=cfg)
    trainer = fit(module, cfg)
    assert trainer.precision == "bf16-mixed"
    assert module.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert len(module.val_history) == 1 and math.isfinite(module.val_history[0]["val_loss"])
