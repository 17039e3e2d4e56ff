"""Each side of an `ab` run as a pytest-benchmark JSON document, so that ``report`` and
``compare`` read it like any run: one benchmark per interleaved benchmark, named as the
benchmark suite names it, its rounds (every block, in order) as ``stats.data``, its record
(`harness.benchmark.record.BenchRecord`) as ``extra_info``, and failures in the stamp."""

from __future__ import annotations

import datetime as dt

from pytest_benchmark import __version__ as PYTEST_BENCHMARK_VERSION
from pytest_benchmark.stats import Stats

from harness.benchmark.ab import Interleaved, Side
from harness.benchmark.passes import with_bandwidth
from harness.benchmark.record import STAMP_KEY, BenchRecord, machine_info_stamp

SUITE_NODE = "suites/contenders/test_bench.py::test_bench"
TIMING_METHOD = "perf_counter (ab: interleaved blocks)"


def _entry(item: Interleaved, label: str, listed: dict) -> dict | None:
    info = item.info.get(label) or {}
    blocks = item.blocks[label]
    data = [x for b in blocks for x in b.wall]
    if not info.get("ok") or not data:
        return None
    threads, cores = int(listed.get("threads") or 1), int(listed.get("cores") or 1)
    contaminated = sum(b.stability(threads, cores).contaminated for b in blocks)
    stats = Stats()
    stats.data = data
    record = BenchRecord(
        contender=info["contender"], family=info["family"], case_id=info["case_id"],
        mode=info["mode"], device=info["device"], dtype=info["dtype"],
        case=info["case"], bytes=info["bytes"], peak_gbps=None, peak_mem_bytes=None,
        torch=listed.get("torch"), threads=threads, timing_method=TIMING_METHOD,
        blocks=len(blocks), passes=1, processes=1, stable=contaminated == 0,
        unstable_reason=f"contaminated blocks: {contaminated} of {len(blocks)}" if contaminated else "")
    extra = with_bandwidth(record.as_extra(), stats.median)
    ident = item.ident_of(label)
    return {"group": f"{info['case_id']} {record.mode}", "name": f"test_bench[{ident}]",
            "fullname": f"{SUITE_NODE}[{ident}]", "params": None, "param": ident,
            "extra_info": extra, "options": {"timer": "perf_counter", "rounds": len(data)},
            "stats": {**stats.as_dict(), "iterations": 1, "data": data}}


def side_document(side: Side, listed: dict, results: dict[str, Interleaved], started: str,
                  settings: dict) -> dict:
    """The pytest-benchmark document of ``side`` (``listed``: its worker's ``list`` reply)."""
    label = side.label
    benchmarks, failures = [], []
    for item in results.values():
        entry = _entry(item, label, listed)
        if entry is not None:
            benchmarks.append(entry)
        elif not (item.info.get(label) or {}).get("ok", True):
            info = item.info[label]
            failures.append({"name": f"{SUITE_NODE}[{item.ident_of(label)}]", "case_id": info.get("case_id"),
                             "contender": info.get("contender"), "mode": info.get("mode"),
                             "error": info.get("error")})
    stamp = {**machine_info_stamp(), "bench_size": settings.get("size"),
             "device": settings.get("device", "cpu"), "failures": failures, "notes": [],
             "threads": listed.get("threads"), "fidelity": None,
             "unstable": sum(1 for b in benchmarks if b["extra_info"]["stable"] is False),
             "started": started,
             "ab": {"side": label, "spec": side.spec, "commit": side.commit, "python": side.python}}
    return {"machine_info": listed.get("machine_info") or {}, "commit_info": listed.get("commit_info") or {},
            "benchmarks": benchmarks, "datetime": dt.datetime.now(dt.timezone.utc).isoformat(),
            "version": PYTEST_BENCHMARK_VERSION, STAMP_KEY: stamp}
