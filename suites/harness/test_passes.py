"""`harness.benchmark.passes`: a benchmark session timed in passes over the whole selection, each
benchmark's blocks pooled into one record (`--bench-passes`). The order, the first pass's
duties and the pooling are proven here without timing anything."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pytest_benchmark.stats import Stats

from harness.benchmark import passes
from harness.benchmark.passes import pool_passes


def test_later_passes_repeat_only_the_benchmarks_in_collection_order():
    items = ["a", "B1", "c", "B2"]
    order = passes.scheduled(items, 3, str.isupper)
    assert order == ["a", "B1", "c", "B2", "B1", "B2", "B1", "B2"]
    assert passes.scheduled(items, 1, str.isupper) == items


def test_zero_passes_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="at least 1"):
        passes.scheduled(["a"], 0, str.isupper)


@pytest.mark.parametrize(("replicates", "n", "want"), [(4, 1, 4), (4, 2, 2), (4, 4, 1), (4, 8, 1),
                                                       (1, 4, 1), (4, 3, 2)])
def test_passes_share_the_blocks(replicates, n, want):
    assert passes.blocks_per_pass(replicates, n) == want


def test_the_log_counts_passes_and_remembers_why_a_benchmark_was_not_timed():
    log = passes.PassLog(passes=3)
    assert log.start("t[x]") == 0
    assert "did not finish its first pass" in log.later_skip_reason("t[x]")  # it failed
    log.first["t[x]"].not_timed = "wrong against the oracle"
    assert log.start("t[x]") == 1 and log.start("t[y]") == 0 and log.start("t[x]") == 2
    assert log.later_skip_reason("t[x]") == ("not timed in pass 1 (wrong against the oracle); "
                                              "later passes skip it")
    log.first["t[y]"].not_timed = ""
    assert log.later_skip_reason("t[y]") == ""
    assert log.later_skip_reason("t[never]") == "its first pass did not run"


def _summary(rounds: int, preempted: int, share: float, runnable: int) -> dict:
    return {"rounds": rounds, "threads": 1, "cores": 2, "load_before": 0.1 * rounds,
            "load_after": 0.2 * rounds, "cpu_per_wall": share, "preempted_rounds": preempted,
            "involuntary_switches": preempted, "runnable_median": 1.0, "runnable_max": runnable}


def test_pooled_extra_keeps_the_first_record_and_sums_blocks_and_evidence():
    extras = [{"contender": "eager", "blocks": 1, "stable": True, "unstable_reason": "",
               "stability": _summary(10, 0, 1.0, 1)},
              {"blocks": 1, "stable": False, "unstable_reason": "preempted: 3 of 30 rounds",
               "stability": _summary(30, 3, 0.8, 3)}]
    info = passes.pooled_extra(extras)
    assert info["contender"] == "eager" and info["blocks"] == 2
    s = info["stability"]
    assert (s["rounds"], s["preempted_rounds"], s["involuntary_switches"], s["runnable_max"]) == (40, 3, 3, 3)
    assert s["cpu_per_wall"] == pytest.approx((10 * 1.0 + 30 * 0.8) / 40)
    assert (s["load_before"], s["load_after"]) == (1.0, 6.0)  # before the first, after the last


def _record(name: str, data: list[float], info: dict):
    stats = Stats()
    stats.data = list(data)
    return SimpleNamespace(fullname=f"suites/contenders/test_bench.py::{name}", stats=stats, extra_info=info)


def test_pooling_keeps_one_record_per_benchmark_with_every_pass_rounds_in_order():
    first_info = {"contender": "eager", "bytes": 4e6, "peak_gbps": 10.0, "blocks": 1, "stable": True,
                  "unstable_reason": ""}
    records = [_record("t[a]", [1e-3, 3e-3], dict(first_info)), _record("t[b]", [5e-3], {"blocks": 1}),
               _record("t[a]", [2e-3, 4e-3], {"blocks": 1, "stable": True, "unstable_reason": ""})]
    a, b = pool_passes(records)
    assert a.stats.data == [1e-3, 3e-3, 2e-3, 4e-3] and a.stats.median == pytest.approx(2.5e-3)
    assert a.extra_info["passes"] == 2 and a.extra_info["blocks"] == 2
    assert a.extra_info["gbps"] == pytest.approx(4e6 / 2.5e-3 / 1e9)  # from the pooled median
    assert a.extra_info["peak_bw_pct"] == pytest.approx(100 * a.extra_info["gbps"] / 10.0)
    assert b.stats.data == [5e-3] and "passes" not in b.extra_info  # timed once: untouched


def test_an_untimed_pass_adds_nothing():
    records = [_record("t[a]", [1e-3], {"blocks": 1}), _record("t[a]", [], {})]
    (a,) = pool_passes(records)
    assert a.stats.data == [1e-3] and a.extra_info["passes"] == 1


def test_a_contender_wrong_in_the_first_pass_is_never_timed_in_the_others(failed_bench_run):
    """A real `bench` run of 4 passes (the session's shared failing run): the wrong
    contender fails its check in pass 1 and the 3 later passes skip it with that reason;
    the JSON holds no timing of it."""
    run = failed_bench_run
    text = run["output"]
    assert run["returncode"] == 1, text[-3000:]
    assert "xentbench: timing pass 4 of 4" in text, text[-3000:]
    assert "1 failed, 3 skipped" in text, text[-3000:]
    assert "not timed in pass 1 (wrong against the oracle)" in text, text[-3000:]
    assert not [b for b in run["doc"]["benchmarks"] if (b.get("stats") or {}).get("data")]


def test_stability_is_judged_on_every_pass_rounds_together():
    """One preempted round among five in one pass would make that pass unstable (20 %
    of its rounds); among the benchmark's twenty rounds it is 5 %, under the rule's 10 %."""
    from harness.benchmark.stability import Evidence

    def evidence(n: int, preempted: int) -> Evidence:
        wall = (1e-3,) * n
        cpu = (0.5e-3,) * preempted + (1e-3,) * (n - preempted)
        return Evidence(wall=wall, cpu=cpu, switches=(0,) * n, runnable=(1,) * n, threads=1, cores=2)

    log = passes.PassLog(passes=2)
    log.start("suites/contenders/test_bench.py::t[a]")
    first = log.first["suites/contenders/test_bench.py::t[a]"]
    first.evidence += [evidence(5, 1), evidence(15, 0)]
    records = [_record("t[a]", [1e-3] * 5, {"blocks": 1, "stable": False, "unstable_reason": "x"}),
               _record("t[a]", [1e-3] * 15, {"blocks": 1, "stable": True, "unstable_reason": ""})]
    (a,) = pool_passes(records, log)
    assert a.extra_info["stable"] is True and a.extra_info["unstable_reason"] == ""
    assert a.extra_info["stability"]["rounds"] == 20
    assert a.extra_info["stability"]["preempted_rounds"] == 1
