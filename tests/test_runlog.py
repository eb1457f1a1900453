"""The run log of resumable benchmarks: compressed, resumable after a kill at any byte, and
reading the plain logs of earlier releases."""

import gzip
import json

import pytest

from benchmarks._runlog import read_runs, run_log, runs_file

RECORDS = [{"seed": i, "setting": f"s{i % 3}", "values": [i / 7] * 40} for i in range(60)]


def test_records_round_trip_compressed(tmp_path):
    out = tmp_path / "bench.md"
    assert read_runs(out) == []
    with run_log(out) as append:
        for record in RECORDS[:30]:
            append(record)
    with run_log(out) as append:  # a resumed run appends after the saved ones
        for record in RECORDS[30:]:
            append(record)
    assert read_runs(out) == RECORDS
    path = runs_file(out)
    assert path.name == "bench.runs.jsonl.gz"
    assert [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()] == RECORDS
    plain = sum(len(json.dumps(r)) + 1 for r in RECORDS)
    assert path.stat().st_size < plain / 5


def test_a_log_cut_anywhere_keeps_every_flushed_record(tmp_path):
    out = tmp_path / "bench.md"
    with run_log(out) as append:
        sizes = []
        for record in RECORDS:
            append(record)
            sizes.append(runs_file(out).stat().st_size)
    data = runs_file(out).read_bytes()
    for cut in range(0, len(data), 37):
        runs_file(out).write_bytes(data[:cut])
        kept = read_runs(out)
        # every record flushed before the cut, in order, nothing invented
        assert kept == RECORDS[: len(kept)]
        assert len(kept) >= sum(size <= cut for size in sizes) - 1
    # resuming rewrites the cut log cleanly and appends after it
    runs_file(out).write_bytes(data[: len(data) // 2])
    kept = read_runs(out)
    with run_log(out) as append:
        for record in RECORDS[len(kept) :]:
            append(record)
    assert read_runs(out) == RECORDS
    assert len(gzip.decompress(runs_file(out).read_bytes()).splitlines()) == len(RECORDS)


def test_a_plain_log_of_an_earlier_release_is_read_and_folded_in(tmp_path):
    out = tmp_path / "bench.md"
    legacy = tmp_path / "bench.runs.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in RECORDS[:10])
    legacy.write_text(text + '{"seed": 10, "sett')  # a kill cut its last line
    assert read_runs(out) == RECORDS[:10]
    with run_log(out) as append:
        append(RECORDS[10])
    assert not legacy.exists()
    assert read_runs(out) == RECORDS[:11]


def test_a_damaged_record_inside_the_log_is_named(tmp_path):
    out = tmp_path / "bench.md"
    legacy = tmp_path / "bench.runs.jsonl"
    legacy.write_text(json.dumps(RECORDS[0]) + "\nnot json\n" + json.dumps(RECORDS[1]) + "\n")
    with pytest.raises(ValueError, match=r"bench.runs.jsonl: line 2 is not a JSON record"):
        read_runs(out)
    with pytest.raises(ValueError, match="line 2"), run_log(out):
        pass
    assert legacy.read_text().count("\n") == 3  # nothing stored was changed
