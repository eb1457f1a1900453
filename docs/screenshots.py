"""Make the dashboard screenshots README and docs show, in the real browser the tests use.

    .venv/bin/python docs/screenshots.py

* ``docs/dashboard.png``: the quickstart study's dashboard (header and accuracy-against-cost
  figures), after ``make quickstart`` and ``.venv/bin/nas confirm studies/quickstart.toml --top 3
  --seeds 5``;
* ``docs/dashboard-250.png`` and ``docs/dashboard-250-progress.png``: a 250-trial search replayed
  on the CIFAR-10 table (``studies/table_cifar10.toml`` with NSGA-II, MO-ASHA from epoch 2 and the
  baselines first; seed 0): its header and figures, then its hypervolume and learning curves.
  A replay answers every trial from the table's stored runs, so it takes seconds.

Needs the system ``chromium`` and ``playwright`` (both installed by ``.ci/run``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.config import StudyConfig  # noqa: E402
from nas.dashboard import write_dashboard  # noqa: E402
from nas.replay import replay_config  # noqa: E402
from nas.storage import open_storage  # noqa: E402
from nas.tabular import load_table  # noqa: E402

WIDTH = 1400


def replayed_study(trials: int, seed: int) -> optuna.Study:
    """The CIFAR-10 table's study replayed with NSGA-II and MO-ASHA, baselines first."""
    table = load_table(ROOT / "benchmarks" / "tables" / "table-cifar10-placement.json")
    data = table.config.to_dict()
    data["study"].update(name=f"replay-cifar10-{trials}", sampler="nsga2", n_trials=trials)
    data["pruning"].update(pruner="moasha", min_epochs=2, reduction_factor=2)
    data["evaluation"]["baselines"] = True
    return replay_config(table, StudyConfig.from_dict(data), seed=seed).study


def shoot(page, html: Path, shots: dict[Path, tuple[str, str | None]]) -> None:
    """Open ``html`` and save, per output path, the page from the top of the first selector's
    element (None: the page's top) to the bottom of the second's."""
    page.goto(html.as_uri(), wait_until="load")
    page.wait_for_function(
        "[...document.querySelectorAll('.plotly-graph-div')]"
        ".every(d => d.classList.contains('js-plotly-plot'))"
    )
    page.wait_for_timeout(500)
    for out, (first, last) in shots.items():
        top = 0.0 if first is None else page.locator(first).bounding_box()["y"] - 10
        box = page.locator(last).bounding_box()
        clip = {"x": 0, "y": top, "width": WIDTH, "height": box["y"] + box["height"] + 10 - top}
        page.screenshot(path=str(out), clip=clip, full_page=True)
        print(f"wrote {out.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quickstart", default="studies/runs/quickstart/journal.log")
    parser.add_argument("--trials", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs chromium on PATH: sudo apt-get install -y chromium")
    quickstart = optuna.load_study(
        study_name="quickstart", storage=open_storage(args.quickstart, must_exist=True)
    )
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        pages = {
            "quickstart": write_dashboard(quickstart, Path(tmp) / "quickstart.html"),
            "replay": write_dashboard(
                replayed_study(args.trials, args.seed), Path(tmp) / "replay.html"
            ),
        }
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        shoot(page, pages["quickstart"], {ROOT / "docs" / "dashboard.png": (None, ".grid")})
        shoot(
            page,
            pages["replay"],
            {
                ROOT / "docs" / "dashboard-250.png": (None, ".grid"),
                ROOT / "docs" / "dashboard-250-progress.png": ("#hypervolume", "#learning_curves"),
            },
        )
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
