"""ONNX Runtime CPU latency as a study objective and constraint: refused at config time where the
runtime is missing, measured once per architecture, stored, reported, drawn and exported."""

import csv
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.config import ConfigError, StudyConfig
from nas.dashboard import COST_LABELS, build_figures
from nas.export import export_trials
from nas.objective import TrialRunner
from nas.report import write_report
from nas.worker import run_search
from search_spaces import ort_latency
from search_spaces.build import build_model
from search_spaces.spec import ArchSpec, BlockChoice

ORT = {"minimize": ["ort_latency_ms_b1"], "constraints": {"ort_latency_ms_bN": 1000.0}}


@pytest.mark.parametrize(
    ("objectives", "field", "costs"),
    [
        ({"minimize": ["flops", "ort_latency_ms_b1"]}, "minimize", "ort_latency_ms_b1"),
        ({"constraints": {"ort_latency_ms_bN": 5.0}}, "constraints", "ort_latency_ms_bN"),
    ],
)
def test_without_onnxruntime_the_objective_is_refused_and_nothing_is_stored(
    tiny_config, tmp_path, monkeypatch, capsys, objectives, field, costs
):
    import tomli_w

    from nas.cli import main

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    data = tiny_config(objectives=objectives)
    message = (
        f"objectives.{field} asks for {costs}, ONNX Runtime latency, which needs onnxruntime "
        "(not installed); install them: pip install 'attention-nas[export]'"
    )
    with pytest.raises(ConfigError) as error:
        StudyConfig.from_dict(data)
    assert str(error.value) == message
    config = tmp_path / "study.toml"
    config.write_text(tomli_w.dumps(data))
    assert main(["search", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nas search: error: {config}: {message}"]
    assert not Path(data["study"]["runs_dir"]).exists()
    # Costs other than ONNX Runtime latency need no runtime.
    StudyConfig.from_dict(tiny_config(objectives={"constraints": {"latency_ms_bN": 5.0}}))


def test_ort_latency_is_measured_once_per_architecture(tiny_config, monkeypatch):
    measured = []
    real = ort_latency.ort_latency_profile

    def counted(model, *args, **kwargs):
        measured.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(ort_latency, "ort_latency_profile", counted)
    cfg = StudyConfig.from_dict(tiny_config(objectives=ORT))
    study = optuna.create_study(directions=cfg.objectives.directions)
    runner = TrialRunner(
        cfg, study, datamodule=SimpleNamespace(input_shape=(1, 8, 8)), artifact_store=object()
    )

    def cost_of(sites: dict[str, BlockChoice], fail: bool = False) -> dict:
        spec = ArchSpec(
            "resnet8", backbone_args={"width": 4}, in_channels=1, num_classes=10, sites=sites
        )
        trial = study.ask()
        schema.DIGEST.set(trial, spec.digest())
        cost = runner.store_cost(trial, build_model(spec, seed=trial.number))
        if fail:  # a failed trial's measurement counts too (its retry reuses it)
            study.tell(trial, state=TrialState.FAIL)
        return cost

    first = cost_of({}, fail=True)
    assert len(measured) == 1
    assert first["ort_latency_ms_b1"] > 0 and first["ort_latency_ms_bN"] > 0
    again = cost_of({})  # the same architecture, another seed: not measured again
    assert len(measured) == 1
    assert {k: again[k] for k in ort_latency.ORT_LATENCY_COSTS} == {
        k: first[k] for k in ort_latency.ORT_LATENCY_COSTS
    }
    cost_of({"stage1.0": BlockChoice("se", {"reduction": 2})})  # a new architecture is measured
    assert len(measured) == 2
    # The constraint is set from the (reused) cost: feasible when <= 0.
    stored = study.trials[1].system_attrs["constraints:ort_latency_ms_bN"]
    assert stored == again["ort_latency_ms_bN"] - 1000.0


def test_a_search_minimises_ort_latency_and_every_view_shows_it(tiny_config, tmp_path):
    data = tiny_config(objectives=ORT, study={"n_trials": 3}, training={"epochs": 1})
    study = run_search(StudyConfig.from_dict(data), progress=False)
    assert study.metric_names == ["val_acc", "ort_latency_ms_b1"]
    trials = study.get_trials(states=[TrialState.COMPLETE])
    assert len(trials) == 3
    for t in trials:
        cost = schema.cost(t)
        assert t.values[1] == cost["ort_latency_ms_b1"] > 0
        assert cost["ort_latency_ms_bN"] > cost["ort_latency_ms_b1"]  # batch 32 against 1
        assert cost["latency_ms_b1"] is None  # eager latency was not asked for
        assert t.system_attrs["constraints:ort_latency_ms_bN"] == cost["ort_latency_ms_bN"] - 1000

    paths = write_report(study, tmp_path / "report")
    with paths["trials"].open(newline="") as handle:
        rows = {int(r["trial"]): r for r in csv.DictReader(handle)}
    for t in trials:
        cost = schema.cost(t)
        assert float(rows[t.number]["ort_latency_ms_b1"]) == pytest.approx(t.values[1])
        assert float(rows[t.number]["cost_ort_latency_ms_bN"]) == pytest.approx(
            cost["ort_latency_ms_bN"]
        )

    figures = build_figures(study)
    for name in ort_latency.ORT_LATENCY_COSTS:
        assert figures[f"front_{name}"].layout.xaxis.title.text == COST_LABELS[name]

    best = study.best_trials[0]
    (folder,) = export_trials(study, tmp_path / "out", trials=[best.number])
    card = (folder / "model_card.md").read_text()
    cost = schema.cost(best)
    assert f"| ort_latency_ms_b1 | {cost['ort_latency_ms_b1']:.4g} ms | median ONNX Runtime" in card
    assert (
        f"| ort_latency_ms_bN | {cost['ort_latency_ms_bN']:.4g} ms | the same at batch 32" in card
    )
    assert (
        "CPUExecutionProvider, 1 intra-op and inter-op thread), measured during the search" in card
    )
    with (tmp_path / "out" / "index.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert float(row["ort_latency_ms_b1"]) == cost["ort_latency_ms_b1"]
