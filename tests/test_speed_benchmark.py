"""benchmarks/speed.py: the models it times and its speed-up intervals."""

import pytest

from search_spaces.backbones import backbone_sites


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("speed")


def test_every_site_of_the_backbone_gets_the_block(bench):
    spec = bench.spec_of("resnet20", {}, "se")
    assert set(spec.sites) == {s.name for s in backbone_sites("resnet20")}
    assert {choice.block for choice in spec.sites.values()} == {"se"}
    assert bench.spec_of("resnet8", {"width": 16}, "none").attended_sites() == {}


def test_speedup_is_the_ratio_of_median_times_with_an_interval_around_it(bench):
    plain, faster = [0.010, 0.012, 0.011, 0.030], [0.005, 0.0055, 0.006, 0.005]
    ratio, low, high = bench.speedup_interval(plain, faster)
    assert ratio == pytest.approx(0.0115 / 0.00525)
    assert low <= ratio <= high
    same = [0.01] * 5
    assert bench.speedup_interval(same, same) == (1.0, 1.0, 1.0)


@pytest.mark.slow  # compiles whole models, then units (a few minutes with a cold inductor cache)
def test_smoke_run_times_every_variant(bench, tmp_path):
    out = tmp_path / "speed.md"
    assert bench.main(["--smoke", "--out", str(out)]) == 0
    assert bench.main(["--smoke", "--regional", "--out", str(out)]) == 0  # resumes into it
    assert bench.main(["--smoke", "--scopes", "--out", str(out)]) == 0
    assert bench.main(["--smoke", "--supernet", "--out", str(out)]) == 0
    assert bench.main(["--smoke", "--bf16", "--out", str(out)]) == 0
    text = out.read_text()
    whole, regional = text.split("## Residual units compiled one by one")
    regional, scopes = regional.split("## What to compile: units, stages or the whole model")
    scopes, supernet = scopes.split("## A supernet's candidate blocks compiled")
    supernet, bf16 = supernet.split("## bfloat16 autocast against float32")
    for table in (whole, regional, scopes, bf16):
        rows = [line for line in table.splitlines() if line.startswith("| smoke |")]
        assert [row.split(" | ")[1] for row in rows] == ["none", "se"]
    rows = [line for line in supernet.splitlines() if line.startswith("| smoke |")]
    assert [row.split(" | ")[1] for row in rows] == ["se+eca+cbam"]
    assert text.count("Command: ") == 5
    assert (tmp_path / "speed.json").is_file()


def test_a_stage_is_the_folder_of_its_units_in_order(bench):
    units = [s.path for s in backbone_sites("resnet20")]
    assert bench.stage_paths(units) == ["layer1", "layer2", "layer3"]
    assert bench.stage_paths(["features.1", "features.2", "blocks.0.1"]) == ["features", "blocks.0"]


def test_a_run_resumes_measuring_only_the_rows_not_stored_yet(bench, tmp_path, monkeypatch):
    import argparse
    import json

    import torch

    threads = torch.get_num_threads()
    old = {"model": "resnet8", "block": "none", "threads": threads, "batch": 128}
    path = tmp_path / "speed.json"  # a file of one run, as written before runs resumed
    path.write_text(json.dumps({"command": "c", "machine": {"cores": 2}, "rows": [old]}))
    stored = bench.load_runs(path)
    assert stored == {
        "runs": [{"command": "c", "machine": {"cores": 2}}],
        "rows": [old],
        "regional_rows": [],
        "scope_rows": [],
        "supernet_rows": [],
        "bf16_rows": [],
    }

    measured = []

    def fake_steps(spec, x, y, regional):
        measured.append((spec.backbone, {c.block for c in spec.sites.values()}, tuple(x.shape)))
        steps = {name: (lambda: None) for name in bench.VARIANTS}
        return {"steps": steps, "warmup_cold_s": 2.0, "warmup_warm_s": 0.5}

    monkeypatch.setattr(bench, "variant_steps", fake_steps)
    saves = []
    args = argparse.Namespace(
        cases={"resnet8": bench.CASES["resnet8"], "quickstart": bench.CASES["quickstart"]},
        blocks=("none", "se"),
        steps=1,
        repeats=2,
        regional=False,
    )
    bench.measure(args, stored["rows"], lambda: saves.append(len(stored["rows"])))
    assert measured == [
        ("resnet8", {"se"}, (128, 3, 32, 32)),
        ("resnet8", {"none"}, (64, 1, 8, 8)),
        ("resnet8", {"se"}, (64, 1, 8, 8)),
    ]
    assert saves == [2, 3, 4]  # each new row saved as it is measured
    assert [(r["model"], r["block"]) for r in stored["rows"][1:]] == [
        ("resnet8", "se"), ("quickstart", "none"), ("quickstart", "se"),
    ]  # fmt: skip


def test_render_rewrites_the_results_file_from_its_json_without_measuring(
    bench, tmp_path, monkeypatch
):
    import json

    row = {
        "model": "quickstart", "block": "se", "batch": 64, "threads": 2, "side": 8, "channels": 1,
        "plain_images_per_s": 7546.2, "channels_last_images_per_s": 8277.0,
        "compiled_images_per_s": 9000.4, "channels_last_speedup": [1.10, 1.00, 1.16],
        "compiled_speedup": [1.19, 1.14, 1.36], "warmup_cold_s": 14.4, "warmup_warm_s": 0.5,
    }  # fmt: skip
    machine = {"platform": "p", "python": "3", "cpu": "c", "cores": 2, "torch_threads": 2,
               "gpu": None, "torch": "t", "lightning": "l", "optuna": "o",
               "load_average": [1.0, 1.3]}  # fmt: skip
    run = {"command": "speed.py --models quickstart", "machine": machine, "date": "D"}
    (tmp_path / "speed.json").write_text(json.dumps({"runs": [run], "rows": [row]}))
    monkeypatch.setattr(bench, "measure", lambda *a: pytest.fail("--render measured"))
    assert bench.main(["--render", "--out", str(tmp_path / "speed.md")]) == 0
    text = (tmp_path / "speed.md").read_text()
    assert "Command: `speed.py --models quickstart`" in text and "Date: D" in text
    assert (
        "| quickstart | se | 64 x 1 x 8\u00b2 | 2 | 7,546 | 8,277 | 9,000 | 1.10x [1.00, 1.16] | "
        "1.19x [1.14, 1.36] | 14.4 / 0.5 |" in text
    )


def test_a_bf16_step_runs_its_forward_in_bfloat16_and_stays_close_to_float32(bench):
    import copy

    import torch

    torch.manual_seed(0)
    base = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 10)
    )
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    models = {bf16: copy.deepcopy(base) for bf16 in (False, True)}
    seen = []
    models[True][0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    for bf16, model in models.items():
        bench.step_function(model, x, y, bf16=bf16)()
    assert seen == [torch.bfloat16]
    float32, bf16 = (models[b][2].weight for b in (False, True))
    assert not torch.equal(float32, bf16)  # rounded differently
    torch.testing.assert_close(bf16, float32, atol=1e-3, rtol=0)  # one step at lr 0.01
