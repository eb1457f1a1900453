"""The dashboard: figure data against nas.report, the HTML file in a real headless chromium, and
optuna-dashboard serving a study's metric names and user attrs.

The browser test needs a system ``chromium`` and the ``playwright`` package (no browser
download: it drives the system chromium); without them it skips, saying how to install them.
"""

import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.config import StudyConfig
from nas.confirm import confirm_frame, verdict
from nas.dashboard import (
    BAND,
    BASELINES,
    CONFIRMED_FRONT,
    CONFIRMED_MEANS,
    FRONT_LINE,
    PRUNED_MARKS,
    SEARCH_RUNS,
    SIGNIFICANT,
    TIED_OUTLINE,
    TIED_RINGS,
    attention_colours,
    attention_type,
    baseline_sentence,
    build_figures,
    confirm_table_html,
    front_table_html,
    param_importances,
    placement_grid,
    serve_optuna_dashboard,
    write_dashboard,
)
from nas.dashboard.curves import OFF_FRONT, OFF_FRONT_COLOUR
from nas.dashboard.front import spread_labels
from nas.pareto import front_trials, non_dominated_sort, tied_with_front
from nas.pruning import finish_pruned, record_epoch
from nas.replay import replay_config
from nas.report import baseline_gains, front_frame, hypervolume_history, reference_point
from nas.stats import binomial_se, logit_interval, mean_intervals
from nas.tabular import load_table
from nas.worker import run_search
from search_spaces.spec import ArchSpec, BlockChoice

ROOT = Path(__file__).resolve().parents[2]

# conftest.TINY with MO-ASHA pruning and the four baselines first (never pruned); seed 5 gives
# six complete trials (three on the front: the baselines none and simam, and trial 4) and two
# pruned ones (a module-scoped study cannot use the function-scoped ``tiny_config``).
REAL = {
    "study": {"name": "tiny", "sampler": "random", "seed": 5, "n_trials": 8},
    "data": {"name": "digits", "per_class": 6, "val_per_class": 4, "batch_size": 32},
    "backbone": {"name": "resnet8", "args": {"width": 4}},
    "space": {
        "blocks": ["none", "se", "eca", "simam"],
        "reductions": [2],
        "eca_kernels": [3],
        "granularity": "per_stage",
    },
    "training": {"epochs": 3, "lr": 0.05},
    "pruning": {"pruner": "moasha", "min_epochs": 1, "reduction_factor": 2},
    "objectives": {"maximize": "val_acc", "minimize": ["flops"]},
}


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[optuna.Study, StudyConfig]:
    """A real search (a few seconds) and its config, shared by this module's tests."""
    data = json.loads(json.dumps(REAL))
    data["study"]["runs_dir"] = str(tmp_path_factory.mktemp("dashboard") / "runs")
    cfg = StudyConfig.from_dict(data)
    return run_search(cfg, progress=False), cfg


@pytest.fixture(scope="module")
def real_html(real, tmp_path_factory) -> Path:
    return write_dashboard(real[0], tmp_path_factory.mktemp("html") / "dashboard.html")


def _arch(blocks: tuple[str, str, str]) -> dict:
    sites = {f"stage{i}.0": BlockChoice(block=b) for i, b in enumerate(blocks, start=1)}
    return ArchSpec(backbone="resnet8", backbone_args={"width": 4}, sites=sites).to_dict()


# (val_acc, flops, params, blocks at the three stages, how the trial ends)
HAND_MADE = [
    (0.9, 100.0, 10.0, ("se", "se", "none"), "complete"),
    (0.8, 50.0, 30.0, ("eca", "none", "none"), "complete"),
    (0.7, 80.0, 5.0, ("none", "eca", "eca"), "complete"),  # dominated; on the params front
    (0.95, 10.0, 1.0, ("se", "none", "none"), "pruned"),  # would dominate everything
    (0.6, 20.0, 40.0, ("none", "none", "none"), "complete"),
    (0.99, 5.0, 2.0, ("eca", "eca", "se"), "infeasible"),  # violates a constraint
]


def _hand_made_study(costs: tuple[str, ...] = ("flops",)) -> optuna.Study:
    """Known values: the flops front is trials 4, 1, 0; the params front 2, 0. ``costs`` are the
    minimised objectives."""
    study = optuna.create_study(
        directions=["maximize"] + ["minimize"] * len(costs), study_name="hand-made"
    )
    study.set_metric_names(["val_acc", *costs])
    choice = optuna.distributions.CategoricalDistribution(["none", "se", "eca"])
    for acc, flops, params, blocks, end in HAND_MADE:
        trial = study.ask({f"stage{i}.block": choice for i in (1, 2, 3)})
        arch = _arch(blocks)
        schema.ARCH.set(trial, arch)
        schema.SUMMARY.set(trial, ArchSpec.from_dict(arch).summary())
        schema.COST.set(trial, {"flops": flops, "params": params, "latency_ms_b1": None})
        epochs = 2 if end == "pruned" else 4
        for epoch in range(epochs):
            record_epoch(trial, epoch, acc * (epoch + 1) / epochs)
        schema.EPOCHS_RUN.set(trial, epochs)
        if end == "infeasible":
            trial.set_constraint("flops", 1.0)
        values = [acc, *({"flops": flops, "params": params}[c] for c in costs)]
        if end == "pruned":
            finish_pruned(study, trial, values)
        else:
            study.tell(trial, values)
    return study


NOT_TRIALS = (FRONT_LINE, BAND, TIED_RINGS)


def _scatter(fig) -> list:
    """The attention types' traces (no front line, band, rings or baselines)."""
    return [t for t in fig.data if t.name not in NOT_TRIALS and not t.name.startswith(BASELINES)]


def _line(fig):
    (line,) = [t for t in fig.data if t.name == FRONT_LINE]
    return line


# -- figure data ---------------------------------------------------------------------------------


def test_figures_in_order_for_every_objective_and_measured_cost():
    figures = build_figures(_hand_made_study())
    # flops is an objective; params is measured; latency was not measured (None).
    assert list(figures) == [
        "front_flops",
        "front_params",
        "placement",
        "hypervolume",
        "learning_curves",
        "importances",
    ]
    assert "measured cost, not an objective" in figures["front_params"].layout.title.text
    # With both costs as objectives, both fronts are objective fronts, in objective order.
    figures = build_figures(_hand_made_study(costs=("params", "flops")))
    assert list(figures)[:2] == ["front_params", "front_flops"]
    assert all("<sup>objective</sup>" in figures[k].layout.title.text for k in list(figures)[:2])
    assert list(_line(figures["front_params"]).customdata) == [2, 0]


def test_front_line_is_the_2d_front_of_complete_feasible_trials():
    study = _hand_made_study()
    figures = build_figures(study)
    line = _line(figures["front_flops"])
    # In a two-objective study the flops line is report.front_trials, sorted by cost.
    expected = sorted(front_trials(study), key=lambda t: t.values[1])
    assert list(line.customdata) == [t.number for t in expected] == [4, 1, 0]
    assert list(line.x) == [t.values[1] for t in expected]
    assert list(line.y) == [t.values[0] for t in expected]
    assert line.line.shape == "hv"
    # Against params (not an objective) the front differs: brute force over complete, feasible.
    candidates = [0, 1, 2, 4]
    points = [(HAND_MADE[n][0], HAND_MADE[n][2]) for n in candidates]
    first = non_dominated_sort(points, ["maximize", "minimize"])[0]
    brute = sorted((candidates[i] for i in first), key=lambda n: HAND_MADE[n][2])
    assert list(_line(figures["front_params"]).customdata) == brute == [2, 0]


def test_scatter_has_every_finished_trial_pruned_open_and_coloured_by_attention():
    study = _hand_made_study()
    for fig in list(build_figures(study).values())[:2]:
        seen = {}
        for trace in _scatter(fig):
            for row in trace.customdata:
                seen[int(row[0])] = (trace, row)
        assert sorted(seen) == [t.number for t in study.trials]  # pruned and infeasible too
        for t in study.trials:
            trace, (_, hover, state, interval, note) = seen[t.number]
            assert trace.legendgroup == attention_type(schema.ARCH.get(t))
            assert state == t.state.name
            assert hover.replace("<br>", " | ") == schema.SUMMARY.get(t)
            assert interval == note == ""  # no standard errors, no baselines, no ties here
            assert trace.marker.symbol == ("circle-open" if state == "PRUNED" else "circle")
            assert trace.name.endswith("(pruned)") == (state == "PRUNED")
        assert 3 not in _line(fig).customdata and 5 not in _line(fig).customdata
        colour = {}
        for trace in _scatter(fig):
            assert colour.setdefault(trace.legendgroup, trace.marker.color) == trace.marker.color
        assert len(set(colour.values())) == len(colour) == 3  # se, eca, none


def test_attention_type_is_the_most_frequent_block():
    assert attention_type(_arch(("se", "eca", "eca"))) == "eca"
    assert attention_type(_arch(("none", "se", "none"))) == "se"
    assert attention_type(_arch(("eca", "se", "none"))) == "eca"  # a tie: the first site's
    assert attention_type(_arch(("none", "none", "none"))) == "none"
    assert attention_type(None) == "none"


def test_hypervolume_traces_equal_the_history_and_state_the_reference(real):
    study, _ = real
    reference = reference_point(study, {"flops": 2e5})
    fig = build_figures(study, reference)["hypervolume"]
    history = hypervolume_history(study, reference)
    by_trials, by_epochs = fig.data
    assert list(by_trials.x) == list(history["finished"])
    assert list(by_epochs.x) == list(history["epochs_spent"])
    for trace in fig.data:
        assert np.allclose(trace.y, history["hypervolume_norm"])
        assert [int(c[0]) for c in trace.customdata] == list(history["trial"])
    assert reference.describe() in fig.layout.title.text
    assert "flops=200000" in fig.layout.title.text


def test_learning_curves_one_trace_per_trial_pruned_dashed_and_marked(real):
    study, _ = real
    fig = build_figures(study)["learning_curves"]
    curves = {t.meta: t for t in fig.data if t.name != PRUNED_MARKS}
    trials = [t for t in study.trials if t.intermediate_values]
    assert sorted(curves) == [t.number for t in trials]
    # The front's members: in their attention colour, named, drawn last (on top); the rest grey.
    front = {t.number for t in front_trials(study)}
    colours = attention_colours({attention_type(schema.ARCH.get(t)) for t in study.trials})
    assert front and len(front) < len(trials)
    for t in trials:
        curve = curves[t.number]
        if t.number in front:
            block = attention_type(schema.ARCH.get(t))
            assert (
                curve.line.color == colours[block] and curve.name == f"trial {t.number} ({block})"
            )
            assert curve.showlegend and curve.line.width > 1
        else:
            assert curve.line.color == OFF_FRONT_COLOUR and curve.name == OFF_FRONT
    order = [t.meta for t in fig.data if t.name != PRUNED_MARKS]
    assert set(order[-len(front) :]) == front
    assert sum(bool(t.showlegend) for t in fig.data if t.name == OFF_FRONT) == 1
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "the real study prunes some trials"
    for t in trials:
        steps = sorted(t.intermediate_values)
        assert list(curves[t.number].x) == steps
        assert list(curves[t.number].y) == [t.intermediate_values[s] for s in steps]
        assert curves[t.number].line.dash == ("dash" if t in pruned else "solid")
    (marks,) = [t for t in fig.data if t.name == PRUNED_MARKS]
    assert list(marks.customdata) == [t.number for t in pruned]
    assert list(marks.x) == [schema.PRUNED_AT_EPOCH.get(t) for t in pruned]
    assert list(marks.y) == [t.intermediate_values[schema.PRUNED_AT_EPOCH.get(t)] for t in pruned]


def test_importances_per_objective_are_optunas_and_reproducible(real):
    study, _ = real
    fig = build_figures(study)["importances"]
    assert [t.name for t in fig.data] == ["val_acc", "flops"]
    for i, trace in enumerate(fig.data):
        expected = get_param_importances(
            study, target=lambda t, i=i: t.values[i], evaluator=FanovaImportanceEvaluator(seed=0)
        )
        assert dict(zip(trace.y, trace.x, strict=True)) == pytest.approx(expected)
    again = build_figures(study)["importances"]
    assert [list(t.x) for t in again.data] == [list(t.x) for t in fig.data]


def test_importances_with_too_few_trials_is_a_note_not_a_crash():
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_acc", "flops"])
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.5, 10.0],
            params={"x": "se"},
            distributions={"x": optuna.distributions.CategoricalDistribution(["se", "eca"])},
        )
    )
    importances, notes = param_importances(study)
    assert importances == {} and "the study has 1" in notes[0]
    fig = build_figures(study)["importances"]
    assert not fig.data and "need 3 completed trials" in fig.layout.annotations[0].text


def test_placement_grids_are_the_front_specs_sites(real):
    study, _ = real
    fig = build_figures(study)["placement"]
    front = list(front_frame(study)["trial"])
    assert [t.meta for t in fig.data] == front
    for trace in fig.data:
        spec = ArchSpec.from_dict(schema.ARCH.get(study.trials[trace.meta]))
        assert list(trace.y) == ["stage1", "stage2", "stage3"] and list(trace.x) == ["block 0"]
        labels = [[spec.choice(f"{stage}.0").label()] for stage in trace.y]
        assert [list(row) for row in trace.text] == labels


def test_placement_grid_of_a_per_block_spec():
    sites = {
        "stage1.1": BlockChoice("se", {"reduction": 8}, "post"),
        "stage2.2": BlockChoice("eca", {"kernel_size": 5}),
        "stage3.0": BlockChoice("simam"),
    }
    spec = ArchSpec(backbone="resnet20", sites=sites)
    grid = placement_grid(spec.to_dict())
    assert grid.shape == (3, 3)
    for stage in (1, 2, 3):
        for index in range(3):
            site = f"stage{stage}.{index}"
            assert grid.loc[f"stage{stage}", f"block {index}"] == spec.choice(site).to_dict()
    # mobilenet_v2's sites start in stage 2 and skip index 0: only real sites get cells.
    grid = placement_grid(ArchSpec(backbone="mobilenet_v2").to_dict())
    assert grid.index[0] == "stage2" and grid.isna().any().any()


class _TableParser(HTMLParser):
    """Headers and each row's ``data-value`` attributes of the first table."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        if tag == "th":
            self._in_th = True
        elif tag == "tr" and self.headers:
            self.rows.append([])
        elif tag == "td":
            self.rows[-1].append(dict(attrs)["data-value"])

    def handle_endtag(self, tag):
        self._in_th = self._in_th and tag != "th"

    def handle_data(self, data):
        if self._in_th:
            self.headers.append(data)


def test_front_table_rows_are_the_front():
    study = _hand_made_study()
    parser = _TableParser()
    parser.feed(front_table_html(study))
    front = front_frame(study)
    assert parser.headers == [c.removeprefix("cost_") for c in front.columns]
    assert [int(r[0]) for r in parser.rows] == list(front["trial"]) == [0, 1, 4]
    for row, (_, expected) in zip(parser.rows, front.iterrows(), strict=True):
        cells = dict(zip(front.columns, row, strict=True))
        assert cells.pop("summary") == expected["summary"]
        assert cells.pop("baseline") == expected["baseline"] == ""
        # val_acc_se is NaN in a study that recorded none: data-value "nan".
        assert [float(v) for v in cells.values()] == pytest.approx(
            [float(expected[c]) for c in cells], nan_ok=True
        )


class _Links(HTMLParser):
    """Every ``src`` / ``href`` attribute of the page's tags."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [f"{tag} {k}={v}" for k, v in attrs if k in ("src", "href")]


def test_dashboard_file_is_self_contained(real, real_html):
    study, _ = real
    text = real_html.read_text()
    assert text.count("plotly.js v") == 1  # the bundle, inlined once
    links = _Links()
    links.feed(text)
    assert links.found == []  # nothing fetched: no <script src>, <link href>, <img src>
    for fact in (
        f"Study {study.study_name}",
        "val_acc (maximize), flops (minimize)",
        f"trials: {len(study.trials)}",
        reference_point(study).describe(),
    ):
        assert fact in text
    for key in build_figures(study):
        assert f'id="{key}"' in text


def test_empty_study_still_gives_a_dashboard(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="empty")
    study.set_metric_names(["val_acc", "flops"])
    figures = build_figures(study)
    assert list(figures) == [
        "front_flops",
        "placement",
        "hypervolume",
        "learning_curves",
        "importances",
    ]
    assert "trials: 0" in write_dashboard(study, tmp_path / "d.html").read_text()


# -- measurement noise, baselines and the confirmed front ----------------------------------------

VAL_SIZE = 100
# (baseline, val_acc, flops, blocks, state) of a study with standard errors (val_size 100) and
# baselines first: the front is 0, 1, 4, 3 (in cost order); trial 5 is 0.04 below trial 3 at
# more cost, within 2 s.e. of the difference (0.092): tied; trial 6 is far below everything.
NOISY = [
    ("none", 0.60, 20.0, ("none", "none", "none"), "complete"),
    ("se", 0.70, 30.0, ("se", "se", "se"), "complete"),
    ("eca", 0.50, 25.0, ("eca", "eca", "eca"), "pruned"),
    (None, 0.90, 100.0, ("se", "eca", "none"), "complete"),
    (None, 0.80, 50.0, ("eca", "none", "none"), "complete"),
    (None, 0.86, 120.0, ("se", "none", "eca"), "complete"),
    (None, 0.30, 200.0, ("none", "eca", "none"), "complete"),
    (None, 0.05, 60.0, ("se", "se", "none"), "pruned"),
]


def _noisy_study(
    storage: optuna.storages.BaseStorage | None = None, objectives: int = 2
) -> optuna.Study:
    """:data:`NOISY` as a study named ``noisy``, every trial with ``val_size``, ``val_acc_se``
    and (the first three) ``baseline``; ``objectives=1`` keeps only the accuracy (flops and
    params then are measured costs)."""
    study = optuna.create_study(
        directions=["maximize", "minimize"][:objectives], study_name="noisy", storage=storage
    )
    study.set_metric_names(["val_acc", "flops"][:objectives])
    for baseline, acc, flops, blocks, end in NOISY:
        arch = _arch(blocks)
        epochs = 2 if end == "pruned" else 4
        attrs = {
            schema.ARCH.key: arch,
            schema.SUMMARY.key: ArchSpec.from_dict(arch).summary(),
            schema.COST.key: {"flops": flops, "params": flops / 10},
            schema.EPOCHS_RUN.key: epochs,
            schema.VAL_SIZE.key: VAL_SIZE,
            schema.VAL_ACC_SE.key: binomial_se(acc, VAL_SIZE),
        }
        if baseline is not None:
            attrs[schema.BASELINE.key] = baseline
        if end == "pruned":
            attrs[schema.PRUNED_AT_EPOCH.key] = epochs - 1
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.PRUNED if end == "pruned" else TrialState.COMPLETE,
                values=[acc, flops][:objectives],
                intermediate_values={e: acc * (e + 1) / epochs for e in range(epochs)},
                user_attrs=attrs,
            )
        )
    return study


# Three seeds of ``baseline none`` and of ``trial 3`` (val_acc, test_acc): means 0.60 and 0.86,
# each with sd 0.02 (test: 0.01); the paired differences 0.26, 0.22, 0.30 (sd 0.04).
CONFIRM_RUNS = {
    "baseline none": ([0.60, 0.62, 0.58], [0.59, 0.61, 0.60], 0, 20.0),
    "trial 3": ([0.86, 0.84, 0.88], [0.85, 0.87, 0.86], 3, 100.0),
}
# The 95% Student-t half-width with 2 degrees of freedom: t(0.975, 2) * sd / sqrt(3).
T_975_2 = 4.302652729911275


def _confirmed_noisy_study(storage: optuna.storages.BaseStorage) -> optuna.Study:
    """:func:`_noisy_study` and, in the same storage, its confirm study ``noisy-confirm``."""
    study = _noisy_study(storage)
    confirm = optuna.create_study(
        directions=["maximize", "minimize"], study_name="noisy-confirm", storage=storage
    )
    confirm.set_metric_names(["val_acc", "flops"])
    confirm.set_user_attr(
        schema.CONFIRM,
        {"of": "noisy", "top": 1, "seeds": [1, 2, 3], "architectures": list(CONFIRM_RUNS)},
    )
    for replicate in range(3):
        for key, (vals, tests, source, flops) in CONFIRM_RUNS.items():
            attrs = {
                schema.REPLICATE.key: replicate,
                schema.SOURCE_TRIAL.key: source,
                schema.TEST_ACC.key: tests[replicate],
                schema.SUMMARY.key: schema.SUMMARY.get(study.trials[source]),
            }
            if key.startswith("baseline "):
                attrs[schema.BASELINE.key] = key.removeprefix("baseline ")
            confirm.add_trial(
                optuna.trial.create_trial(values=[vals[replicate], flops], user_attrs=attrs)
            )
    return study


def _points_by_trial(fig) -> dict[int, tuple]:
    """``{trial: (trace, index of the point in it)}`` over the trial traces (baselines too)."""
    found = {}
    for trace in fig.data:
        if trace.name in NOT_TRIALS:
            continue
        for i, row in enumerate(trace.customdata):
            found[int(row[0])] = (trace, i)
    return found


def test_error_bars_are_95_percent_normal_intervals_of_every_measured_trial():
    study = _noisy_study()
    fig = build_figures(study)["front_flops"]
    points = _points_by_trial(fig)
    assert sorted(points) == list(range(len(NOISY)))  # pruned ones too
    for t in study.trials:
        trace, i = points[t.number]
        se = schema.VAL_ACC_SE.get(t)
        assert trace.error_y.type == "data" and trace.error_y.symmetric
        assert trace.error_y.array[i] == pytest.approx(1.96 * se)
        assert trace.customdata[i][3] == f" ± {1.96 * se:.4f} (95%)"
    assert "1.96 s.e." in fig.layout.title.text
    assert "normal approximation" in fig.layout.title.text
    # A trial without a standard error among (se) trials with one: no bar of its own.
    arch = _arch(("se", "se", "none"))
    study.add_trial(
        optuna.trial.create_trial(values=[0.5, 70.0], user_attrs={schema.ARCH.key: arch})
    )
    trace, i = _points_by_trial(build_figures(study)["front_flops"])[8]
    assert trace.name == "se" and len(trace.customdata) > 1
    assert trace.error_y.array[i] is None and trace.customdata[i][3] == ""


def test_baselines_are_labelled_stars_in_their_colour_and_none_a_dotted_line():
    study = _noisy_study()
    fig = build_figures(study)["front_flops"]
    (stars,) = [t for t in fig.data if t.name == BASELINES]
    (pruned,) = [t for t in fig.data if t.name == f"{BASELINES} (pruned)"]
    assert [int(r[0]) for r in stars.customdata] == [0, 1] and list(stars.text) == ["none", "se"]
    assert [int(r[0]) for r in pruned.customdata] == [2] and list(pruned.text) == ["eca"]
    assert stars.marker.symbol == "star" and pruned.marker.symbol == "star-open"
    assert pruned.yaxis == "y2" and stars.yaxis == "y"  # the pruned baseline sits in the strip
    assert pruned.legendgroup == stars.legendgroup and pruned.showlegend is False
    colours = attention_colours({"none", "se", "eca"})
    assert list(stars.marker.color) == [colours["none"], colours["se"]]
    assert all(
        r[4] == f"<br>baseline {name}" for r, name in zip(stars.customdata, stars.text, strict=True)
    )
    for trace in _scatter(fig):  # the baselines are not drawn twice
        assert not {int(r[0]) for r in trace.customdata} & {0, 1, 2}
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 0.60 and line.line.dash == "dot" and line.yref == "y"
    # The complete baselines are named in the column right of the plot, at their accuracy.
    labels = {a.text.rsplit(" ", 1)[-1]: a for a in fig.layout.annotations}
    assert sorted(labels) == ["none", "se"]
    for name, y in (("none", 0.60), ("se", 0.70)):
        assert labels[name].xref == "paper" and labels[name].x == 1.0
        assert labels[name].yref == "y" and labels[name].y == pytest.approx(y)
        assert colours[name] in labels[name].text
    assert "stars: the hand-made baselines; dotted: none" in fig.layout.title.text


def test_baseline_labels_spread_apart_in_order_around_their_accuracies():
    ys = [0.95, 0.951, 0.949, 0.952, 0.90]
    placed = spread_labels(ys, 0.005, 0.88, 0.99)
    assert placed[4] == 0.90  # alone: at its own height
    # The four close ones: 0.005 apart, in their order, centred on their mean (0.9505).
    ordered = sorted(placed[:4])
    assert [placed[2], placed[0], placed[1], placed[3]] == ordered
    assert np.diff(ordered) == pytest.approx([0.005] * 3)
    assert np.mean(ordered) == pytest.approx(0.9505)
    # Near the top: pushed down inside the range; a run that grows merges with the one below.
    assert spread_labels([0.99, 0.989], 0.005, 0.88, 0.99) == pytest.approx([0.99, 0.985])
    assert spread_labels([0.90, 0.904, 0.909], 0.005, 0.0, 1.0) == pytest.approx(
        [0.9, 0.905, 0.91], abs=1e-3
    )
    assert spread_labels([], 0.005, 0.0, 1.0) == []


def test_main_axis_spans_complete_trials_and_pruned_ones_sit_in_a_strip():
    study = _noisy_study()
    fig = build_figures(study)["front_flops"]
    frame = {t.number: t for t in study.trials}
    low, high = fig.layout.yaxis.range
    for trace in fig.data:
        if trace.name in (FRONT_LINE, BAND):
            continue
        numbers = [int(r[0]) if trace.name != TIED_RINGS else int(r) for r in trace.customdata]
        states = {frame[n].state for n in numbers}
        axis = "y2" if states == {TrialState.PRUNED} else "y"
        assert trace.yaxis == axis and len(states) == 1, trace.name
        if axis == "y":  # every complete trial and its error bar inside the main axis
            half = [1.96 * schema.VAL_ACC_SE.get(frame[n]) for n in numbers]
            assert all(low <= y - h and y + h <= high for y, h in zip(trace.y, half, strict=True))
    pruned = [t.values[0] for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t.values[0] for t in study.trials if t.state == TrialState.COMPLETE]
    assert min(pruned) < min(complete) and low > min(pruned)  # the partial value sets no axis
    assert 0.0 <= low < high <= 1.0
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yref == "container"


def test_trials_tied_with_the_front_are_in_the_band_and_outlined():
    study = _noisy_study()
    assert [t.number for t in tied_with_front(study)] == [5]
    fig = build_figures(study)["front_flops"]
    (band,) = [t for t in fig.data if t.name == BAND]
    assert list(band.meta) == [5] and "statistically tied with the front: trials 5" in band.text
    assert band.fill == "toself"
    # The band: the front's steps (trials 0, 1, 4, 3 by cost, the last one on to the largest
    # cost plotted) and back along the same steps 2 s.e. of each member lower.
    front = [(20.0, 0.6), (30.0, 0.7), (50.0, 0.8), (100.0, 0.9)]
    ends = [30.0, 50.0, 100.0, 200.0]
    step_x = [x for (x0, _), end in zip(front, ends, strict=True) for x in (x0, end)]
    upper = [y for _, y in front for _ in range(2)]
    lower = [y - 2 * binomial_se(y, VAL_SIZE) for y in upper]
    assert list(band.x) == step_x + step_x[::-1]
    assert list(band.y) == pytest.approx(upper + lower[::-1])
    assert list(_line(fig).customdata) == [0, 1, 4, 3]
    # Trial 5 lies in the band (cost 120, under trial 3's step) and is outlined and named.
    assert 0.9 - 2 * binomial_se(0.9, VAL_SIZE) <= 0.86 <= 0.9
    (rings,) = [t for t in fig.data if t.name == TIED_RINGS]
    assert list(rings.customdata) == [5] and rings.marker.color == TIED_OUTLINE
    points = _points_by_trial(fig)
    for number, (trace, i) in points.items():
        note = trace.customdata[i][4]
        assert ("statistically tied with the front" in note) == (number == 5)
    assert "trials in it are statistically tied with it (red rings)" in fig.layout.title.text


def test_header_states_the_gain_over_the_baselines_against_the_noise(tmp_path):
    study = _noisy_study()
    # best front 0.90 (trial 3) against none 0.60: s.e. hypot(0.03, 0.049) = 5.74 points;
    # against the best baseline, se 0.70: hypot(0.03, 0.0458) = 5.48 points.
    sentence = (
        "best front val_acc 0.9000 (trial 3): +30.00 points over baseline none (0.6000, trial "
        "0), s.e. 5.74 points: exceeds the noise (2 s.e. = 11.49 points); +20.00 points over "
        "the best baseline, se (0.7000, trial 1), s.e. 5.48 points: exceeds the noise (2 s.e. = "
        "10.95 points) (one run each)"
    )
    assert baseline_sentence(study) == sentence
    text = write_dashboard(study, tmp_path / "d.html").read_text()
    assert sentence in text
    assert "trials statistically tied with the front (within 2 s.e." in text
    assert "of no greater cost): 5" in text
    # A gain within the noise; none being the best baseline is said once.
    gains = baseline_gains(study)
    gains["best_baseline"] = {**gains["none"], "name": "none"}
    gains["vs_none"] = {"gain": 0.01, "se": 0.02, "exceeds_noise": False}
    assert baseline_sentence(study, gains).endswith(
        "+1.00 points over baseline none (0.6000, trial 0), s.e. 2.00 points: does not exceed "
        "the noise (2 s.e. = 4.00 points); none is also the best baseline (one run each)"
    )


def test_real_search_header_compares_with_its_baselines(real, real_html):
    study, _ = real
    text = real_html.read_text()
    sentence = baseline_sentence(study)
    assert "points over baseline none" in sentence and sentence in text
    fig = build_figures(study)["front_flops"]
    (stars,) = [t for t in fig.data if t.name == BASELINES]
    assert sorted(stars.text) == sorted(schema.BASELINE.get(t) for t in study.trials[:4])
    assert all(t.error_y.array is not None for t in fig.data if t.name not in NOT_TRIALS)


def test_confirmed_front_section_shows_the_intervals_over_seeds(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    study = _confirmed_noisy_study(storage)
    figures = build_figures(study)
    assert list(figures) == [
        "front_flops",
        "front_params",
        "confirm",
        "placement",
        "hypervolume",
        "learning_curves",
        "importances",
    ]
    # Intervals of the means on the logit scale (they stay in [0, 1]): both rows have SD 0.02
    # and the seeds shift nothing (their means are all 0.73): pooled SD 0.02 with 2 df.
    val = [logit_interval(m, 0.02 / np.sqrt(3), 2) for m in (0.60, 0.86)]
    tests = np.array([CONFIRM_RUNS[k][1] for k in CONFIRM_RUNS])
    test_low, test_high = mean_intervals(tests, pooled=True)
    gain_half = T_975_2 * 0.04 / np.sqrt(3)  # K = 2: Dunnett is the paired t-test
    fig = figures["confirm"]
    (means,) = [t for t in fig.data if t.name == CONFIRMED_MEANS]
    assert list(means.x) == [20.0, 100.0]
    assert list(means.y) == pytest.approx([0.60, 0.86])
    assert list(means.error_y.array) == pytest.approx([val[0][1] - 0.60, val[1][1] - 0.86])
    assert list(means.error_y.arrayminus) == pytest.approx([0.60 - val[0][0], 0.86 - val[1][0]])
    assert not means.error_y.symmetric
    assert 0.0 <= fig.layout.yaxis.range[0] < fig.layout.yaxis.range[1] <= 1.0
    (search,) = [t for t in fig.data if t.name == SEARCH_RUNS]
    assert list(search.y) == [0.60, 0.90]  # trial 3's single run: the winner's curse
    (front,) = [t for t in fig.data if t.name == CONFIRMED_FRONT]
    assert list(front.customdata) == ["baseline none", "trial 3"] and front.line.shape == "hv"
    (significant,) = [t for t in fig.data if t.name == SIGNIFICANT]
    assert list(significant.customdata) == ["trial 3"]
    assert fig.layout.shapes[0].y0 == pytest.approx(0.60)

    confirm = optuna.load_study(study_name="noisy-confirm", storage=storage)
    frame = confirm_frame(confirm, study)
    parser = _TableParser()
    parser.feed(confirm_table_html(confirm, frame))
    assert parser.headers[:5] == [
        "architecture",
        "summary",
        "seeds",
        "val_acc % [95% CI]",
        "test_acc % [95% CI]",
    ]
    assert [r[0] for r in parser.rows] == ["baseline none", "trial 3"]
    text = write_dashboard(study, tmp_path / "d.html").read_text()
    assert text.count("plotly.js v") == 1 and 'id="confirm"' in text
    section = text[text.index("<h2>Confirmed front</h2>") :]
    assert section.index("<h2>Confirmed front</h2>") < section.index('id="confirm"')
    assert "study noisy-confirm: 2 architectures retrained with\n3 fresh seeds each" in section
    assert "from one residual variance pooled over every run" in section  # the frame's model
    assert "Dunnett&#x27;s many-to-one test with 95% simultaneous intervals" in section
    assert "Student-t intervals over seeds" not in section
    assert verdict(frame) in section and "larger than its noise" in verdict(frame)
    for cell in (
        f"60.00 [{100 * val[0][0]:.2f}, {100 * val[0][1]:.2f}]",  # 54.95, 64.85
        f"86.00 [{100 * val[1][0]:.2f}, {100 * val[1][1]:.2f}]",
        f"60.00 [{100 * test_low[0]:.2f}, {100 * test_high[0]:.2f}]",
        f"86.00 [{100 * test_low[1]:.2f}, {100 * test_high[1]:.2f}]",
        f"+26.00 [{26 - 100 * gain_half:+.2f}, {26 + 100 * gain_half:+.2f}]",
        ">90.00<",  # the search's single run of trial 3
    ):
        assert f">{cell}<" in section or cell in section, cell
    assert "60.00 [54.95, 64.85]" in section
    (trial3,) = [r for r in parser.rows if r[0] == "trial 3"]
    row = frame.set_index("architecture").loc["trial 3"]
    assert float(trial3[3]) == pytest.approx(0.86)  # data-value: the raw mean
    assert float(trial3[-3]) == pytest.approx(row["p_adjusted"]) and row["p_adjusted"] < 0.05
    assert row["p_adjusted"] == pytest.approx(row["p_holm"])  # one comparison: Dunnett = t-test
    assert trial3[-2:] == ["True", "True"]  # significant, on the confirmed front


def test_confirmed_front_of_a_sequential_plan_says_up_to_its_budget(tmp_path):
    """``--seeds auto --max-seeds 6``: the plan holds 6 seeds, 3 of them run (the first look)."""
    storage = optuna.storages.InMemoryStorage()
    study = _confirmed_noisy_study(storage)
    confirm = optuna.load_study(study_name="noisy-confirm", storage=storage)
    plan = {**schema.confirm_plan(confirm), "seeds": [1, 2, 3, 4, 5, 6], "looks": [3, 6]}
    confirm.set_user_attr(schema.CONFIRM, plan)
    fig = build_figures(study)["confirm"]
    assert "over up to 6 seeds" in fig.layout.title.text
    text = write_dashboard(study, tmp_path / "d.html").read_text()
    section = text[text.index("<h2>Confirmed front</h2>") :]
    assert (
        "retrained with\nup to 6 fresh seeds each, 3 complete so far, in looks at 3, 6 seeds"
        in section
    )
    assert "97.5% simultaneous intervals" in section and "alpha 0.05/2" in section
    parser = _TableParser()
    parser.feed(confirm_table_html(confirm, confirm_frame(confirm, study)))
    assert "gain vs none, points [97.5% CI]" in parser.headers


def test_a_study_without_the_new_attrs_renders_without_them(tmp_path):
    study = _hand_made_study()
    for key, fig in build_figures(study).items():
        if not key.startswith("front_"):
            continue
        assert {t.name for t in fig.data} & {BAND, BASELINES} == set()
        assert all(t.error_y.array is None for t in fig.data)
        assert not fig.layout.shapes and "error bars" not in fig.layout.title.text
    text = write_dashboard(study, tmp_path / "d.html").read_text()
    assert "the study has no baselines" in text
    assert "Confirmed front" not in text and "statistically tied" not in text


def test_single_objective_and_empty_studies_with_noise_attrs_render(tmp_path):
    study = _noisy_study(objectives=1)
    figures = build_figures(study)
    assert list(figures)[:2] == ["front_flops", "front_params"]  # measured costs
    fig = figures["front_flops"]
    assert "measured cost, not an objective" in fig.layout.title.text
    assert [t for t in fig.data if t.name == BASELINES]
    text = write_dashboard(study, tmp_path / "one.html").read_text()
    assert "points over baseline none" in text
    empty = optuna.create_study(directions=["maximize", "minimize"], study_name="empty")
    text = write_dashboard(empty, tmp_path / "empty.html").read_text()
    assert "the study has no baselines" in text


# -- a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system chromium; the test skips where there is none (CI installs it)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip(
            "headless-browser test needs chromium on PATH: install it with "
            "`sudo apt-get install -y chromium` (Debian/Ubuntu; CI installs it)"
        )
    return path


def test_dashboard_renders_offline_in_chromium(real, real_html, chromium):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from PIL import Image

    study, _ = real
    errors, remote = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else remote.append(r),
        )
        page.goto(real_html.as_uri(), wait_until="load")
        page.wait_for_function(
            "[...document.querySelectorAll('.plotly-graph-div')]"
            ".every(d => d.classList.contains('js-plotly-plot'))"
        )
        drawn = page.evaluate(
            """[...document.querySelectorAll('.plotly-graph-div')].map(d => ({
                id: d.id,
                traces: d.data.length,
                drawn: d.querySelectorAll('.main-svg g.trace, .main-svg g.hm').length,
                points: d.querySelectorAll('.main-svg path.point').length,
                overflow: d.querySelector('.main-svg').getBoundingClientRect().right
                    - d.parentElement.getBoundingClientRect().right,
            }))"""
        )
        figures = build_figures(study)
        assert [d["id"] for d in drawn] == list(figures)
        for d in drawn:
            assert d["drawn"] == d["traces"] == len(figures[d["id"]].data) > 0, d
            assert d["overflow"] <= 1, d  # each figure fits its column of the page
        assert not errors, errors
        finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        rings = len(tied_with_front(study))
        assert next(d for d in drawn if d["id"] == "front_flops")["points"] == len(finished) + rings
        _assert_legible(page, study, [k for k in figures if k.startswith("front_")])

        png = page.screenshot(full_page=True)
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
        assert pixels.shape[0] > 2000 and pixels.std() > 20
        assert (pixels < 200).mean() > 0.02  # not blank: text, markers, lines, grids

        def trial_column() -> list[int]:
            return [
                int(x)
                for x in page.locator("table.sortable tbody td:first-child").all_inner_texts()
            ]

        front = front_frame(study)
        assert trial_column() == list(front["trial"]) and len(front) >= 2
        header = page.locator("table.sortable th", has_text="flops")
        header.click()
        ascending = list(front.sort_values(["flops", "trial"])["trial"])
        assert trial_column() == ascending
        header.click()
        assert trial_column() == ascending[::-1]
        page.locator("table.sortable th", has_text="trial").click()
        assert trial_column() == sorted(front["trial"])
        browser.close()
    assert not errors, errors
    assert not remote, [r.url for r in remote]


def test_noise_band_baselines_and_confirmation_render_in_chromium(chromium, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    study = _confirmed_noisy_study(optuna.storages.InMemoryStorage())
    path = write_dashboard(study, tmp_path / "noisy.html")
    figures = build_figures(study)
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function(
            "[...document.querySelectorAll('.plotly-graph-div')]"
            ".every(d => d.classList.contains('js-plotly-plot'))"
        )
        drawn = page.evaluate(
            """Object.fromEntries([...document.querySelectorAll('.plotly-graph-div')].map(d => [
                d.id, {
                    traces: d.querySelectorAll('.main-svg g.trace, .main-svg g.hm').length,
                    bars: d.querySelectorAll('.main-svg path.yerror').length,
                    fills: d.querySelectorAll('.main-svg path.js-fill').length,
                    labels: [...d.querySelectorAll('.main-svg g.annotation')]
                        .map(t => t.textContent),
                }]))"""
        )
        assert list(drawn) == list(figures)
        for key, d in drawn.items():
            assert d["traces"] == len(figures[key].data), key
        assert drawn["front_flops"]["bars"] == len(NOISY)  # every trial has a standard error
        assert drawn["front_flops"]["fills"] >= 1  # the band
        assert sorted(drawn["front_flops"]["labels"]) == ["★ none", "★ se"]  # eca was pruned
        assert drawn["confirm"]["bars"] == len(CONFIRM_RUNS)
        rows = page.locator("table.sortable").nth(1).locator("tbody td:first-child")
        assert rows.all_inner_texts() == list(CONFIRM_RUNS)
        browser.close()
    assert not errors, errors


_LAYOUT = """ids => ids.map(id => {
    const d = document.getElementById(id);
    const box = e => { const r = e.getBoundingClientRect();
                       return [r.left, r.top, r.right, r.bottom]; };
    const legend = d.querySelector('g.legend');
    return {
        id,
        svg: box(d.querySelector('.main-svg')),
        legend: legend ? box(legend.querySelector('.bg')) : null,
        scrollbars: [...d.querySelectorAll('g.legend .scrollbar')]
            .map(e => e.getBoundingClientRect().height),
        labels: [...d.querySelectorAll('.main-svg g.annotation')]
            .map(a => ({text: a.textContent, box: box(a)})),
        range: d._fullLayout.yaxis.range,
        hypervolume: d.id === 'hypervolume' ? Array.from(d._fullData[0].y) : null,
    };
})"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _assert_legible(page, study: optuna.Study, ids: list[str]) -> None:
    """As rendered: no two baseline labels overlap, nor a label the legend; the legend is whole
    (inside the figure, no scrollbar); the main accuracy axis holds every complete trial and
    starts above any pruned trial's partial accuracy that is below them all."""
    complete = [t.values[0] for t in study.get_trials(states=(TrialState.COMPLETE,))]
    pruned = [t.values[0] for t in study.get_trials(states=(TrialState.PRUNED,))]
    for fig in page.evaluate(_LAYOUT, ids):
        labels = [label["box"] for label in fig["labels"]]
        assert labels, fig["id"]
        for i, a in enumerate(labels):
            assert not any(_overlap(a, b) for b in labels[i + 1 :]), (fig["id"], fig["labels"])
            assert not _overlap(a, fig["legend"]), fig["id"]
            assert fig["svg"][0] <= a[0] and a[2] <= fig["svg"][2] + 1, fig["id"]  # not cut
        svg, legend = fig["svg"], fig["legend"]
        assert svg[0] <= legend[0] and legend[2] <= svg[2] + 1 and legend[3] <= svg[3] + 1
        assert not any(height > 0 for height in fig["scrollbars"]), fig["id"]
        low, high = fig["range"]
        assert low <= min(complete) and max(complete) <= high <= 1.0
        if pruned and min(pruned) < min(complete):
            assert low > min(pruned), fig["id"]


def test_a_250_trial_study_is_legible_in_chromium(chromium, tmp_path):
    """A replayed 250-trial search on the digits table (baselines first, MO-ASHA): baseline
    labels apart, legend whole, pruned trials off the main axis, the hypervolume rising."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    table = load_table(ROOT / "benchmarks" / "tables" / "table-digits-placement.json")
    data = table.config.to_dict()
    data["study"].update(name="replay-250", sampler="nsga2", n_trials=250)
    data["pruning"].update(pruner="moasha", min_epochs=2, reduction_factor=2)
    data["evaluation"]["baselines"] = True
    study = replay_config(table, StudyConfig.from_dict(data)).study
    assert len(study.trials) == 250 and study.get_trials(states=(TrialState.PRUNED,))
    path = write_dashboard(study, tmp_path / "replay.html")
    figures = build_figures(study)
    history = hypervolume_history(study)["hypervolume"]
    assert history.is_monotonic_increasing and history.iloc[-1] > history.iloc[0]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function(
            "[...document.querySelectorAll('.plotly-graph-div')]"
            ".every(d => d.classList.contains('js-plotly-plot'))"
        )
        _assert_legible(page, study, [k for k in figures if k.startswith("front_")])
        (drawn,) = page.evaluate(_LAYOUT, ["hypervolume"])
        assert drawn["hypervolume"] == pytest.approx(
            list(hypervolume_history(study)["hypervolume_norm"])
        )
        assert drawn["hypervolume"][-1] > drawn["hypervolume"][0]  # the plot rises
        browser.close()


# -- optuna-dashboard ----------------------------------------------------------------------------


def test_serving_a_missing_journal_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no study storage"):
        serve_optuna_dashboard(str(tmp_path / "nope" / "journal.log"))
    assert not (tmp_path / "nope").exists()  # and creates nothing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


@pytest.mark.parametrize("backend", ["journal", "sqlite"])
def test_optuna_dashboard_shows_metric_names_and_user_attrs(real, backend, tmp_path):
    pytest.importorskip("optuna_dashboard", reason="pip install optuna-dashboard")
    study, cfg = real
    url = cfg.study.storage_url()
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'copy.db'}"
        optuna.copy_study(
            from_study_name=study.study_name, from_storage=study._storage, to_storage=url
        )
    port = _free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from nas.dashboard import serve_optuna_dashboard; "
                "serve_optuna_dashboard(sys.argv[1], port=int(sys.argv[2]))",
                url,
                str(port),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"no server after 90 s\n{log.read_text()}"
                time.sleep(0.3)
        (summary,) = [s for s in studies if s["study_name"] == study.study_name]
        assert summary["directions"] == ["maximize", "minimize"]
        detail = _get(f"{base}/api/studies/{summary['study_id']}")
        assert detail["objective_names"] == ["val_acc", "flops"]
        assert detail["has_intermediate_values"]
        served = {
            t["number"]: {a["key"]: a["value"] for a in t["user_attrs"]} for t in detail["trials"]
        }
        assert sorted(served) == [t.number for t in study.trials]
        for t in study.trials:
            assert served[t.number][schema.SUMMARY.key] == schema.SUMMARY.get(t)
            assert json.loads(served[t.number][schema.COST.key]) == schema.cost(t)
    finally:
        server.kill()
        server.wait()
