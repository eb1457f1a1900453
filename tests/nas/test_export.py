"""Export of searched trials (weights, ONNX, TorchScript, model card) and ``nas.load``."""

import copy
import csv
import json
import socket
import warnings
from pathlib import Path

import onnxruntime
import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

import nas
from nas import export
from nas import trial_schema as schema
from nas.artifacts import download_weights, study_artifact_store
from nas.checkpoints import load_checkpoint
from nas.config import StudyConfig
from nas.data import default_cache_dir
from nas.export import export_arch, export_confirmed_front, export_trials, load
from nas.pareto import front_trials
from nas.study import load_or_create_study
from nas.worker import run_search
from search_spaces.build import build_model
from search_spaces.spec import ArchSpec

FILES = {"arch.json", "weights.pt", "model.onnx", "model.ts", "config.json", "model_card.md"}


def _search(tiny_config, n_trials: int = 4) -> optuna.Study:
    return run_search(
        StudyConfig.from_dict(tiny_config(study={"n_trials": n_trials})), progress=False
    )


def _search_weights(study: optuna.Study, trial, folder: Path) -> Path:
    """The trial's search checkpoint, downloaded from the study's artifact store."""
    artifact = schema.WEIGHTS_ARTIFACT.get(trial)
    return download_weights(study_artifact_store(study), artifact, folder / f"{artifact}.pt")


def _checkpoint_model(study: optuna.Study, trial, folder: Path) -> torch.nn.Module:
    payload = load_checkpoint(_search_weights(study, trial, folder))
    model = build_model(ArchSpec.from_dict(payload["arch"]), seed=1)
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def _index(out: Path) -> list[dict[str, str]]:
    with (out / "index.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_round_trip(tiny_config, tmp_path):
    study = _search(tiny_config)
    trial = study.best_trials[0]
    rng = torch.get_rng_state()
    (folder,) = export_trials(study, tmp_path / "out", trials=[trial.number])
    assert torch.equal(torch.get_rng_state(), rng)  # exporting leaves the caller's RNG alone
    assert folder == tmp_path / "out" / f"trial_{trial.number}"
    assert {p.name for p in folder.iterdir()} == FILES

    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        expected = _checkpoint_model(study, trial, tmp_path)(x)
        model = nas.load(folder)
        assert not model.training
        assert torch.equal(model(x), expected)
        session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        (onnx_out,) = session.run(None, {"input": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(onnx_out), expected, atol=1e-5, rtol=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(folder / "model.ts"))
        torch.testing.assert_close(scripted(x), expected, atol=1e-5, rtol=1e-4)

    spec = ArchSpec.from_json((folder / "arch.json").read_text())
    assert spec.digest() == schema.DIGEST.get(trial)
    weights = torch.load(folder / "weights.pt", weights_only=True)
    assert weights["arch"] == spec.to_dict() and weights["study"] == "tiny"
    assert weights["input_shape"] == [1, 8, 8] and len(weights["class_names"]) == 10
    assert model.checkpoint_info["mean"] == weights["mean"]

    stored = schema.stored_config(study)
    config = json.loads((folder / "config.json").read_text())
    assert config["source"] == {"study": "tiny", "trial": trial.number}
    assert config["training"] == stored["training"]
    assert config["data"] == {**stored["data"], "cache_dir": None}

    card = (folder / "model_card.md").read_text()
    cost = schema.cost(trial)
    for text in (
        f"Trial {trial.number} of the attention-nas study `tiny`",
        schema.SUMMARY.get(trial),
        f"| val_acc | {trial.values[0]:.4f} | search-time validation accuracy",
        "not a test accuracy",
        f"| params | {cost['params']:,} |",
        f"| flops | {cost['flops']:,} |",
        "measured at export",  # the tiny study does not time latency during the search
        "torch.jit.script",
        "mean = [",
        f'nas.load("trial_{trial.number}")',
        "onnxruntime.InferenceSession",
        "torch.jit.load",
        f"nas train trial_{trial.number}/arch.json",
    ):
        assert text in card, text

    assert (folder / "arch.json").read_text() == spec.to_json(indent=2) + "\n"
    (row,) = _index(tmp_path / "out")
    assert row["trial"] == str(trial.number) and row["digest"] == spec.digest()
    assert row["torchscript"] == "script" and float(row["val_acc"]) == trial.values[0]
    assert (row["dir"], row["study"], row["duplicate_of"]) == (folder.name, "tiny", "")
    assert row["summary"] == spec.summary() == schema.SUMMARY.get(trial)
    assert (int(row["params"]), float(row["flops"])) == (cost["params"], cost["flops"])
    assert float(row["latency_ms_b1"]) > 0 and float(row["latency_ms_bN"]) > 0


def test_pareto_exports_exactly_the_front_and_duplicates_use_the_original(tiny_config, tmp_path):
    data = tiny_config(study={"n_trials": 3})
    study = run_search(StudyConfig.from_dict(data), progress=False)
    original = study.best_trials[0]
    load_or_create_study(StudyConfig.from_dict(data)).enqueue_trial(original.params)
    data["study"]["n_trials"] = 4
    study = run_search(StudyConfig.from_dict(data), progress=False)
    duplicate = study.trials[3]
    assert schema.DUPLICATE_OF.get(duplicate) == original.number

    out = tmp_path / "out"
    folders = export_trials(study, out, pareto=True)
    front = sorted(t.number for t in front_trials(study))
    # Each architecture once: the original stands for its duplicate on the front.
    assert original.number in front and duplicate.number not in front
    assert duplicate.number in {t.number for t in study.best_trials}
    assert [f.name for f in folders] == [f"trial_{n}" for n in front]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.csv", *(f.name for f in folders)]
    )
    assert [int(row["trial"]) for row in _index(out)] == front

    # Exported by number, the duplicate has its original's weights.
    export_trials(study, out, trials=[duplicate.number])
    exported = sorted([*front, duplicate.number])
    copy_weights = torch.load(out / f"trial_{duplicate.number}" / "weights.pt", weights_only=True)
    source = load_checkpoint(_search_weights(study, original, tmp_path))
    assert all(
        torch.equal(copy_weights["state_dict"][k], v) for k, v in source["state_dict"].items()
    )
    card = (out / f"trial_{duplicate.number}" / "model_card.md").read_text()
    assert f"repeated the architecture of trial {original.number}" in card
    rows = {int(row["trial"]): row for row in _index(out)}
    assert rows[duplicate.number]["duplicate_of"] == str(original.number)
    assert rows[original.number]["duplicate_of"] == ""

    # Re-exporting one trial replaces its files, keeps a retrained/ folder and the index rows.
    kept = out / f"trial_{original.number}" / "retrained"
    kept.mkdir()
    export_trials(study, out, trials=[original.number])
    assert kept.is_dir() and [int(row["trial"]) for row in _index(out)] == exported


class _ReadCounter:
    """An artifact store that counts the artifacts read through it."""

    def __init__(self, store) -> None:
        self.store, self.reads = store, 0

    def open_reader(self, artifact_id: str):
        self.reads += 1
        return self.store.open_reader(artifact_id)

    def write(self, artifact_id: str, content_body) -> None:
        self.store.write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(artifact_id)


def test_the_confirmed_front_is_exported_with_each_members_median_repeat(tiny_config, tmp_path):
    study = _search(tiny_config, n_trials=3)
    assert export_confirmed_front(study, tmp_path) is None  # not confirmed yet
    donors = study.get_trials(states=(TrialState.COMPLETE,))[:3]
    confirm = optuna.create_study(
        study_name="tiny-confirm", storage=study._storage, directions=study.directions
    )
    confirm.set_metric_names(study.metric_names)
    confirm.set_user_attr(schema.STUDY_CONFIG, schema.stored_config(study))
    repeats = {  # key: (its weights, cost, accuracy per repeat); trial 2 is dominated
        "baseline none": (donors[0], 1.0, [0.7, 0.5, 0.6]),
        f"trial {donors[1].number}": (donors[1], 2.0, [0.9, 0.95, 0.8]),
        f"trial {donors[2].number}": (donors[2], 3.0, [0.55, 0.6, 0.5]),
    }
    plan = {"of": "tiny", "seeds": [0, 1, 2], "architectures": list(repeats)}
    confirm.set_user_attr(schema.CONFIRM, plan)
    number, medians = 0, {}
    for key, (donor, cost, accuracies) in repeats.items():
        kind, name = key.split(" ")
        ident = {"baseline": name} if kind == "baseline" else {"source_trial": int(name)}
        for r, acc in enumerate(accuracies):
            attrs = {**donor.user_attrs, **ident, "replicate": r}
            confirm.add_trial(create_trial(values=[acc, cost], user_attrs=attrs))
            if acc == sorted(accuracies)[1]:
                medians[key] = number
            number += 1
            if number == 1:  # one repeat is no confirmation: no front yet
                assert export_confirmed_front(study, tmp_path) is None
    store = _ReadCounter(study_artifact_store(study))
    folders, what = export_confirmed_front(study, tmp_path / "out", store=store)
    members = list(repeats)[:2]
    assert store.reads == 2  # the weights come from the store given, one read per member
    assert [f.name for f in folders] == [f"trial_{medians[k]}" for k in members]
    assert all(f.parent == tmp_path / "out" / "confirmed" for f in folders)
    assert what == (
        f"the confirmed front of 'tiny-confirm' (2 architectures: {', '.join(members)}), each "
        "with the weights of its median repeat of 3 or more seeds"
    )
    for i, (folder, key) in enumerate(zip(folders, members, strict=True)):
        weights = torch.load(folder / "weights.pt", weights_only=True)["state_dict"]
        (tmp_path / f"donor{i}").mkdir()
        donor = load_checkpoint(_search_weights(study, repeats[key][0], tmp_path / f"donor{i}"))
        donor = donor["state_dict"]
        assert all(torch.equal(weights[k], v) for k, v in donor.items())


def _add(study, state, values=None, attrs=()):
    """A hand-made trial with trial 0's architecture and the given ``(Attr, value)`` pairs."""
    user_attrs = {a.key: v for a, v in [(schema.ARCH, schema.ARCH.get(study.trials[0])), *attrs]}
    trial = create_trial(
        state=state,
        values=values,
        params={"x": 0},
        distributions={"x": CategoricalDistribution([0])},
        user_attrs=user_attrs,
    )
    study.add_trial(trial)
    return study.trials[-1].number


def test_errors_name_the_trial_and_the_fix(tiny_config, tmp_path):
    study = _search(tiny_config)
    good = study.best_trials[0].number
    here = socket.gethostname()
    pruned = _add(study, TrialState.PRUNED, [0.9, 1.0], [(schema.PRUNED_AT_EPOCH, 1)])
    failed = _add(
        study, TrialState.FAIL, attrs=[(schema.FAIL_REASON, "NonFiniteLossError: loss is nan")]
    )
    elsewhere = _add(
        study, TrialState.COMPLETE, [0.0, 1e12], [(schema.CHECKPOINT, "gpu-node-7:/data/t.pt")]
    )
    dominated = _add(
        study, TrialState.COMPLETE, [0.0, 1e12], [(schema.CHECKPOINT, f"{here}:{tmp_path}/gone.pt")]
    )
    removed = _add(study, TrialState.COMPLETE, [0.0, 1e12], [(schema.WEIGHTS_ARTIFACT, "gone")])
    store = f"artifact store {tmp_path}/runs/tiny/artifacts"
    out = tmp_path / "out"
    cases = [
        ([99], r"study 'tiny' has no trial 99; its trials are numbered 0 to \d+"),
        ([-1], "has no trial -1"),
        ([pruned], f"trial {pruned} of study 'tiny' was pruned .*never on the front"),
        ([failed], f"trial {failed} .* is FAIL, not COMPLETE \\(NonFiniteLossError"),
        ([elsewhere], f"trial {elsewhere} .* on host 'gpu-node-7' at /data/t.pt; run the export"),
        ([dominated], f"trial {dominated} .* deleted because the trial is dominated.*nas train"),
        (
            [removed],
            f"trial {removed} .* \\(artifact gone\\) were removed from {store} because the "
            "trial is dominated.*nas train",
        ),
        ([good, 99], "no trial 99"),  # all trials are checked before anything is written
        ([good, removed], f"trial {removed} .* were removed from"),  # and downloaded
    ]
    for trials, message in cases:
        with pytest.raises(ValueError, match=message):
            export_trials(study, out, trials=trials)
    assert not out.exists()
    for kwargs in ({}, {"trials": [good], "pareto": True}, {"trials": []}):
        with pytest.raises(ValueError, match="give trial numbers or pareto=True"):
            export_trials(study, out, **kwargs)

    # A front trial whose file went missing is not called dominated.
    on_front = _add(
        study, TrialState.COMPLETE, [1.0, 1.0], [(schema.CHECKPOINT, f"{here}:{tmp_path}/x.pt")]
    )
    with pytest.raises(ValueError, match=r"missing from .*moved or deleted by hand"):
        export_trials(study, out, trials=[on_front])
    lost = _add(study, TrialState.COMPLETE, [1.0, 0.5], [(schema.WEIGHTS_ARTIFACT, "lost")])
    with pytest.raises(ValueError, match=f"trial {lost} .* are missing from {store}: removed by"):
        export_trials(study, out, trials=[lost])
    assert not out.exists()

    # Whole messages: what happened to the trial and what to do instead.
    unknown_epoch = _add(study, TrialState.PRUNED, [0.9, 1.0])
    quiet_failure = _add(study, TrialState.FAIL)
    expected = {
        pruned: f"trial {pruned} of study 'tiny' was pruned (at epoch 1): pruned trials are never "
        "on the front and keep no weights; export a COMPLETE trial, or retrain its architecture "
        f"with `nas train` (`nas export --arch-only --trial {pruned}` writes its arch.json)",
        unknown_epoch: f"trial {unknown_epoch} of study 'tiny' was pruned (at epoch ?): ",
        failed: f"trial {failed} of study 'tiny' is FAIL, not COMPLETE (NonFiniteLossError: loss "
        "is nan): only completed trials have trained weights; export a COMPLETE trial",
        quiet_failure: f"trial {quiet_failure} of study 'tiny' is FAIL, not COMPLETE: only "
        "completed trials have trained weights; export a COMPLETE trial",
        lost: f"the weights of trial {lost} of study 'tiny' (artifact lost) are missing from "
        f"{store}: removed by hand, or the study's workers wrote to another store (a relative "
        "study.artifacts folder is read from the current folder); export where the workers' "
        "store is reachable, or retrain the architecture with `nas train`",
    }
    for number, message in expected.items():
        with pytest.raises(ValueError) as caught:
            export_trials(study, out, trials=[number])
        assert str(caught.value).startswith(message)
        assert number == unknown_epoch or str(caught.value) == message

    # The whole message of a dominated trial: why its weights are gone and what to do.
    with pytest.raises(ValueError) as caught:
        export_trials(study, out, trials=[dominated])
    assert str(caught.value) == (
        f"the checkpoint of trial {dominated} of study 'tiny' ({tmp_path}/gone.pt) was deleted "
        "because the trial is dominated (or violates a cost constraint): only trials on the "
        "Pareto front keep their weights. Export the front (pareto=True), or retrain this "
        f"architecture from scratch with `nas train` (`nas export --arch-only --trial "
        f"{dominated}` writes its arch.json)"
    )

    # The architecture of any of them can still be written for `nas train`, again and again.
    for _ in range(2):
        folder = export_arch(study, dominated, out)
    assert sorted(p.name for p in folder.iterdir()) == ["arch.json", "config.json"]
    spec = ArchSpec.from_dict(schema.ARCH.get(study.trials[dominated]))
    assert (folder / "arch.json").read_text() == spec.to_json(indent=2) + "\n"
    stored = schema.stored_config(study)
    assert stored["data"]["cache_dir"] == str(default_cache_dir())
    assert json.loads((folder / "config.json").read_text()) == {
        "source": {"study": "tiny", "trial": dominated},
        "data": {**stored["data"], "cache_dir": None},  # the retraining machine's own default
        "training": stored["training"],
    }
    with pytest.raises(FileNotFoundError, match="architecture without weights"):
        load(folder)
    no_arch = len(study.trials)
    study.add_trial(create_trial(state=TrialState.FAIL))
    with pytest.raises(ValueError) as caught:
        export_arch(study, no_arch, out)
    assert str(caught.value) == (
        f"trial {no_arch} of study 'tiny' has no architecture (it failed before one was sampled)"
    )


def test_failed_verification_writes_nothing(tiny_config, tmp_path, monkeypatch):
    study = _search(tiny_config, n_trials=2)
    trial = study.best_trials[0]
    save_torchscript = export.trials._export_torchscript

    staged = []

    def perturbed(model, shape, path):
        staged.append(path.parent)
        broken = copy.deepcopy(model)
        with torch.no_grad():
            next(broken.parameters()).add_(1.0)
        return save_torchscript(broken, shape, path)

    monkeypatch.setattr(export.trials, "_export_torchscript", perturbed)
    out = tmp_path / "out"
    with pytest.raises(
        RuntimeError, match=f"trial {trial.number} failed verification: TorchScript"
    ):
        export_trials(study, out, trials=[trial.number])
    assert list(out.iterdir()) == []
    # Built in a hidden folder beside its destination (one rename away), removed after.
    (folder,) = staged
    assert folder.parent == out and folder.name.startswith(f".trial_{trial.number}-")
    assert not folder.exists()


def test_load_reads_folders_weights_and_search_checkpoints(tiny_config, tmp_path):
    study = _search(tiny_config, n_trials=2)
    trial = study.best_trials[0]
    (folder,) = export_trials(study, tmp_path, trials=[trial.number])
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        outputs = [
            load(path)(x)
            for path in (folder, folder / "weights.pt", _search_weights(study, trial, tmp_path))
        ]
    assert all(torch.equal(out, outputs[0]) for out in outputs)
    assert nas.load is load
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load(tmp_path / "missing")


def test_torchscript_falls_back_to_a_trace_and_says_so(tiny_config, tmp_path, monkeypatch):
    study = _search(tiny_config, n_trials=2)
    trial = study.best_trials[0]

    def unscriptable(model):
        raise RuntimeError("Python builtin <built-in function id> is currently not supported")

    monkeypatch.setattr(torch.jit, "script", unscriptable)
    (folder,) = export_trials(study, tmp_path, trials=[trial.number])
    assert "torch.jit.trace (scripting failed)" in (folder / "model_card.md").read_text()
    assert _index(tmp_path)[0]["torchscript"] == "trace"


def test_single_objective_front_is_the_best_trials(tiny_config, tmp_path):
    data = tiny_config(study={"n_trials": 3}, objectives={"minimize": []})
    study = run_search(StudyConfig.from_dict(data), progress=False)
    folders = export_trials(study, tmp_path, pareto=True)
    best = sorted(t.number for t in front_trials(study))  # every trial tied at the best value
    assert study.best_trial.number in best
    assert {t.number for t in study.best_trials} - set(best) == {
        t.number for t in study.best_trials if schema.DUPLICATE_OF.has(t)
    }
    assert [f.name for f in folders] == [f"trial_{n}" for n in best]
    assert "objectives: val_acc (maximize))" in (folders[0] / "model_card.md").read_text()


def test_old_studies_export_the_checkpoint_on_this_host(tiny_config, tmp_path):
    """A 0.1.0 trial names its weights file on the host that trained it (``checkpoint``)."""
    study = _search(tiny_config, n_trials=2)
    trial = study.best_trials[0]
    path = _search_weights(study, trial, tmp_path)
    old = _add(
        study,
        TrialState.COMPLETE,
        list(trial.values),
        [(schema.ARCH, schema.ARCH.get(trial)), (schema.CHECKPOINT, schema.checkpoint_value(path))],
    )
    (folder,) = export_trials(study, tmp_path / "out", trials=[old])
    exported = torch.load(folder / "weights.pt", weights_only=True)
    assert exported["trial"] == trial.number and path.exists()
    # A weights file that holds another architecture than the trial's is refused, nothing written.
    other = copy.deepcopy(schema.ARCH.get(trial))
    other["num_classes"] = 5
    wrong = _add(
        study,
        TrialState.COMPLETE,
        list(trial.values),
        [(schema.ARCH, other), (schema.CHECKPOINT, schema.checkpoint_value(path))],
    )
    with pytest.raises(ValueError) as caught:
        export_trials(study, tmp_path / "wrong", trials=[wrong])
    assert str(caught.value) == (
        f"{path} holds a different architecture than trial {wrong} of study 'tiny' (another "
        "study wrote to the same runs_dir?); re-run the search under a new study name"
    )
    assert not (tmp_path / "wrong" / f"trial_{wrong}").exists()
