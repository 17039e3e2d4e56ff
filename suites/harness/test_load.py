"""The results loader: tidy rows, shard merging, validation with one-line errors, atomic
writes. `make_run` / `write_run` build realistic synthetic pytest-benchmark JSON (the
layout of issue 4's benchmarks) and are shared with the report and compare tests."""

from __future__ import annotations

import copy
import json
import math

import pandas as pd
import pytest
from fakes import CASES, SPEED, make_run, write_run

from harness.analysis import load, writers
from harness.atomic import atomic_path, atomic_write_text
from harness.benchmark import record
from harness.cli import main


def test_one_tidy_row_per_benchmark(tmp_path):
    df = load.load([write_run(tmp_path / "a.json", make_run())])
    assert len(df) == len(CASES) * len(SPEED) * 2
    assert df["run_id"].unique().tolist() == ["a"]
    row = df[(df["contender"] == "naive") & (df["mode"] == "fwd_bwd")].iloc[0]
    assert row["case_n"] == CASES[0].n and row["family"] == "multiclass" and row["device"] == "cpu"
    assert row["machine"] == "vm (AMD EPYC)" and row["commit"] == "abc123" and row["torch"] == "2.13.0"
    assert isinstance(row["data"], list) and len(row["data"]) == row["rounds"] == 12
    assert row["size"] == CASES[0].n * CASES[0].c * 64 * 64
    assert math.isnan(row["compile_s"]) and bool(row["ok"])


def test_missing_optional_keys_are_nan(tmp_path):
    doc = make_run(save_data=False)
    for b in doc["benchmarks"]:
        for key in ("gbps", "peak_mem_bytes", "compile_s", "case", "family", "torch"):
            b["extra_info"].pop(key)
    df = load.load([write_run(tmp_path / "a.json", doc)])
    assert df["gbps"].isna().all() and df["compile_s"].isna().all()
    assert df["data"].isna().all()
    assert df["case_n"].notna().all()  # recovered from the case id
    assert set(df["family"]) == {"multiclass"}


def test_name_parsed_when_extra_info_is_absent(tmp_path):
    doc = make_run(cases=CASES[:1])
    for b in doc["benchmarks"]:
        b["extra_info"] = {}
    df = load.load([write_run(tmp_path / "a.json", doc)])
    assert set(df["contender"]) == set(SPEED) and set(df["mode"]) == {"fwd", "fwd_bwd"}
    assert set(df["case_id"]) == {CASES[0].id}


def _shards(doc: dict, k: int) -> list[dict]:
    out = []
    for i in range(k):
        shard = copy.deepcopy(doc)
        shard["benchmarks"] = doc["benchmarks"][i::k]
        shard["machine_info"]["node"] = f"node{i}"
        out.append(shard)
    return out


def test_shards_merge_into_one_run(tmp_path):
    paths = [write_run(tmp_path / f"s{i}.json", s) for i, s in enumerate(_shards(make_run(), 3))]
    df = load.load(paths)
    assert df["run_id"].nunique() == 1 and len(df) == len(make_run()["benchmarks"])
    assert df["node"].iloc[0] == "node0+node1+node2"
    assert load.load([tmp_path]).shape == df.shape  # a directory stands for its shards


def test_two_runs_of_one_commit_stay_two(tmp_path):
    paths = [write_run(tmp_path / "a.json", make_run(0)), write_run(tmp_path / "b.json", make_run(1))]
    df = load.load(paths)
    assert sorted(df["run_id"].unique()) == ["a", "b"]


def test_explicit_run_id_merges_and_names(tmp_path):
    stamp = record.machine_info_stamp(run_id="nightly-7", shard="1/2")
    shards = [dict(s, xentbench=stamp) for s in _shards(make_run(), 2)]
    shards[1]["commit_info"]["id"] = "other"  # the id wins over heuristics
    df = load.load([write_run(tmp_path / f"s{i}.json", s) for i, s in enumerate(shards)])
    assert df["run_id"].unique().tolist() == ["nightly-7"]


def test_failures_recorded_by_the_plugin_become_rows(tmp_path):
    doc = make_run(cases=CASES[:1])
    doc["xentbench"] = {"schema": 1, "failures": [{
        "name": "suites/contenders/test_bench.py::test_bench[x-liger-fwd]", "contender": "liger",
        "case_id": CASES[0].id, "mode": "fwd", "error": "RuntimeError: boom"}]}
    df = load.load([write_run(tmp_path / "a.json", doc)])
    failed = df[df["contender"] == "liger"].iloc[0]
    assert not failed["ok"] and failed["error"] == "RuntimeError: boom" and math.isnan(failed["median"])


@pytest.mark.parametrize(("content", "problem"), [
    ("", "empty file"),
    ("{\"machine_info\": {}, \"benchmarks\": [{\"name\": ", "not valid JSON"),
    ("[1, 2, 3]", "not a pytest-benchmark JSON"),
    ("{\"name\": \"package.json\", \"version\": \"1.0\"}", "not a pytest-benchmark JSON"),
    ("{\"machine_info\": {}, \"benchmarks\": [{\"stats\": {}}]}", "has no 'name'"),
    ("{\"machine_info\": {}, \"benchmarks\": [{\"name\": \"b\", \"stats\": {\"median\": \"fast\"}}]}",
     "stats.median is not a number"),
    ("{\"machine_info\": {}, \"xentbench\": {\"schema\": 99}, \"benchmarks\": []}", "schema 99"),
])
def test_bad_files_raise_one_line_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(load.ResultsError) as info:
        load.load([path])
    message = str(info.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_truncated_file_exits_2_with_one_line(tmp_path, capsys):
    text = json.dumps(make_run())
    path = tmp_path / "run.json"
    path.write_text(text[: len(text) // 2])
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    assert main(["compare", str(path), str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith(f"error: {path}") for line in err)
    assert not (tmp_path / "out" / "report.md").exists()


def test_csv_round_trip_keeps_raw_rounds(tmp_path):
    df = load.load([write_run(tmp_path / "a.json", make_run())])
    back = writers.read_csv(writers.write_csv(df, tmp_path / "runs.csv"))
    assert back["data"].iloc[0] == pytest.approx(df["data"].iloc[0])
    pd.testing.assert_series_equal(back["median"], df["median"])


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = atomic_write_text(tmp_path / "f.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
