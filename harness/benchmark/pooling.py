"""One run from several processes: the same benchmarks timed by K pytest processes, their
rounds pooled per benchmark (``--bench-processes K`` under pytest, the default on CPU;
``python -m harness bench --processes K``): `pool_into` pools the running process's records
with the other processes' JSON, `pool` whole saved documents.

Why: identical code drifts by 12-15 % per benchmark from one process to the next on this
project's 2-core VM (1σ of log medians, after the machine factor), a state that no round
inside one process can show. Pooling the rounds of K processes averages it like 1/√K
(measured offline on four sets of 11 runs: 0.13-0.15 for one, 0.09-0.11 for two, 0.06-0.10
for three), as pyperf's worker processes do. Each process's rounds become blocks of the
pooled benchmark, which `harness.analysis.compare` resamples block first. Passes inside one
process (`harness.benchmark.passes`) average the drift that changes within seconds (σ 0.13 →
0.10-0.11 on this VM), not the part that lasts a process: on the same 11 runs with passes,
pooling two and three consecutive runs gave 0.074 and 0.046 (`scripts/pool_drift.py`).
Hence plain pytest on CPU, the CI gate and its baseline pool `VERDICT_PROCESSES`
(`harness.pytest_plugin.processes`; `make bench-ci`, `make baseline`), each process with a
third of the round time. Each process also repeats the checks and calibration: `make bench`
(the full small preset) took 8 min 10 s with three processes from a fresh clone, so
`python -m harness bench` stays at one process unless asked.

Shards (`harness.analysis.load.group_runs`) are the other way round: disjoint benchmarks of one
run. Here every file holds the same benchmarks.
"""

from __future__ import annotations

import copy

from pytest_benchmark.stats import Stats

from harness.benchmark.passes import pooled_extra, with_bandwidth
from harness.benchmark.record import STAMP_KEY, stamp_of
from harness.benchmark.stability import judge_pooled

VERDICT_PROCESSES = 3  # what regression verdicts use on CPU (make bench-ci, make baseline)


class PoolingError(ValueError):
    """Files that are not K timings of one benchmark set; the message is one line."""


def _stats(data: list[float]) -> dict:
    """pytest-benchmark's own statistics of the pooled rounds, so that every field keeps
    its conventions (quartiles, outlier counts)."""
    stats = Stats()
    stats.data = list(data)
    return {**stats.as_dict(), "iterations": 1, "data": list(data)}


def _pool_benchmark(entries: list[dict]) -> dict:
    first = copy.deepcopy(entries[0])
    if any(e.get("stats") is None or not (e["stats"] or {}).get("data") for e in entries):
        return first  # failed or untimed somewhere: kept as the first process recorded it
    data = [x for e in entries for x in e["stats"]["data"]]
    first["stats"] = _stats(data)
    extras = [e.get("extra_info") or {} for e in entries]
    info = pooled_extra(extras)
    info["processes"] = len(entries)
    summaries = [x["stability"] for x in extras if isinstance(x.get("stability"), dict)]
    if any("stable" in x for x in extras):
        verdict = judge_pooled(data, summaries)
        info.update(stable=verdict.stable, unstable_reason=verdict.reason)
    first["extra_info"] = with_bandwidth(info, first["stats"]["median"])
    return first


def _pool_stamp(docs: list[dict]) -> dict:
    stamps = [stamp_of(d) for d in docs]
    out = copy.deepcopy(stamps[0])
    fidelity = [s.get("fidelity") for s in stamps if isinstance(s.get("fidelity"), dict)]
    if fidelity:
        failed = [f for f in fidelity if not f.get("ok", True)]
        out["fidelity"] = failed[0] if failed else fidelity[0]
    out["notes"] = [n for s in stamps for n in s.get("notes") or []]
    seen, failures = set(), []
    for s in stamps:
        for f in s.get("failures") or []:
            if f.get("name") not in seen:
                seen.add(f.get("name"))
                failures.append(f)
    out["failures"] = failures
    out["processes"] = len(docs)
    out["unstable"] = sum(int(s.get("unstable") or 0) for s in stamps)
    return out


def pool_into(records: list, docs: list[dict]) -> int:
    """Pool, in place, the live pytest-benchmark records of this process (``records``,
    ``Metadata`` objects) with the same benchmarks' entries in ``docs``, other processes'
    JSON documents (matched by ``fullname``): each record then holds every process's
    rounds, its ``extra_info`` pooled and judged as `pool` does. Returns how many records
    were pooled; a benchmark another process did not time keeps its own rounds."""
    by_name = [{b["fullname"]: b for b in d.get("benchmarks", [])} for d in docs]
    pooled = 0
    for record in records:
        if record.stats is None or not record.stats.data:
            continue
        others = [run[record.fullname] for run in by_name if record.fullname in run]
        if not others:
            continue
        mine = {"stats": {"data": list(record.stats.data)}, "extra_info": dict(record.extra_info)}
        merged = _pool_benchmark([mine, *others])
        stats = Stats()
        stats.data = merged["stats"]["data"]
        record.stats, record.extra_info = stats, merged["extra_info"]
        pooled += 1
    return pooled


def pool(docs: list[dict]) -> dict:
    """One pytest-benchmark document whose every benchmark holds the rounds of all
    ``docs`` (K runs of the same benchmarks by K processes), in process order."""
    if not docs:
        raise PoolingError("no runs to pool")
    names = [[b["name"] for b in d["benchmarks"]] for d in docs]
    if any(set(n) != set(names[0]) for n in names[1:]):
        raise PoolingError("the processes did not time the same benchmarks; pool only K runs of "
                           "one selection")
    by_name = [{b["name"]: b for b in d["benchmarks"]} for d in docs]
    out = copy.deepcopy(docs[0])
    out["benchmarks"] = [_pool_benchmark([run[name] for run in by_name]) for name in names[0]]
    out[STAMP_KEY] = _pool_stamp(docs)
    out["datetime"] = min(str(d.get("datetime", "")) for d in docs)
    return out
