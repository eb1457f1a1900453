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
from nas.dashboard import (
    FRONT_LINE,
    PRUNED_MARKS,
    attention_type,
    build_figures,
    front_table_html,
    param_importances,
    placement_grid,
    serve_optuna_dashboard,
    write_dashboard,
)
from nas.pareto import front_trials, non_dominated_sort
from nas.pruning import finish_pruned, record_epoch
from nas.report import front_frame, hypervolume_history, reference_point
from nas.worker import run_search
from search_spaces.spec import ArchSpec, BlockChoice

ROOT = Path(__file__).resolve().parents[2]

# conftest.TINY with MO-ASHA pruning; seed 3 gives two complete trials on the front and two
# pruned ones (a module-scoped study cannot use the function-scoped ``tiny_config``).
REAL = {
    "study": {"name": "tiny", "sampler": "random", "seed": 3, "n_trials": 6},
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


def _scatter(fig) -> list:
    return [t for t in fig.data if t.name != FRONT_LINE]


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
    assert all("<sup>objective;" in figures[k].layout.title.text for k in list(figures)[:2])
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
            trace, (_, hover, state) = seen[t.number]
            assert trace.legendgroup == attention_type(schema.ARCH.get(t))
            assert state == t.state.name
            assert hover.replace("<br>", " | ") == schema.SUMMARY.get(t)
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
        assert row[1] == expected["summary"]
        assert [float(v) for v in row[2:]] == [float(v) for v in expected.iloc[2:]]


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
        assert next(d for d in drawn if d["id"] == "front_flops")["points"] == len(finished)

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
