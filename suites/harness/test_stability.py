"""The stability rule (`harness.benchmark.stability`) on synthetic rounds: what a busy neighbour does
to a benchmark's rounds, and what the rule must say about it. The same shapes were measured
on this project's 2-core machine (see the module docstring and docs/benchmarking.md,
'Timing you can trust'); here they are exact, so the rule's verdicts are deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from bench_run import PASSES, PROCESSES

from harness.benchmark import stability
from harness.benchmark.stability import Evidence, judge

CORES = 2


def _clean(n: int = 200, median: float = 250e-6, spread: float = 0.05, seed: int = 0) -> np.ndarray:
    return median * np.exp(np.random.default_rng(seed).normal(0, spread, n))


def _evidence(wall, cpu=None, threads: int = 1, runnable=None, switches=None) -> Evidence:
    wall = tuple(float(x) for x in wall)
    return Evidence(wall=wall, cpu=tuple(wall if cpu is None else (float(x) for x in cpu)),
                    switches=tuple(switches or [0] * len(wall)),
                    runnable=tuple(runnable or [1] * len(wall)), threads=threads, cores=CORES)


def test_clean_rounds_are_stable():
    rounds = _clean()
    verdict = judge(rounds, _evidence(rounds))
    assert verdict.stable and verdict.reason == ""


def test_rounds_quantised_at_the_scheduler_tick_are_unstable():
    """The issue's case: a 59 µs operation read at 4 ms, 8 ms and 12 ms, two threads waiting
    for each other across time slices. Wall-clock rounds alone show it."""
    rng = np.random.default_rng(1)
    rounds = rng.choice([4e-3, 8e-3, 12e-3], size=60, p=[0.3, 0.5, 0.2]) + rng.normal(0, 30e-6, 60)
    verdict = judge(rounds)
    assert not verdict.stable and verdict.reason.startswith("quantised") and "4 ms" in verdict.reason


def test_a_steady_benchmark_that_happens_to_last_two_ticks_is_not_quantised():
    """8 ms ± 1 % sits on one multiple of the 4 ms tick: a real duration, not time slices."""
    assert judge(_clean(median=8e-3, spread=0.01)).stable


def test_a_smooth_spread_over_many_ticks_is_not_quantised():
    rounds = np.random.default_rng(2).uniform(1e-3, 20e-3, 200)
    assert stability.quantised_reason(rounds) is None


def test_many_preempted_rounds_are_unstable():
    """20 % of the rounds lost most of their time off-CPU (wall far above CPU time)."""
    cpu = _clean()
    wall = cpu.copy()
    wall[::5] += 4e-3
    verdict = judge(wall, _evidence(wall, cpu))
    assert not verdict.stable and verdict.reason.startswith("preempted: 40 of 200 rounds")


def test_a_few_preempted_rounds_leave_the_median_and_the_verdict_alone():
    """6 % of the rounds preempted (measured with one thread and two busy neighbours): the
    median survives, and by itself this does not make the benchmark unstable."""
    cpu = _clean()
    wall = cpu.copy()
    wall[::16] += 4e-3
    assert judge(wall, _evidence(wall, cpu)).stable
    assert abs(np.median(wall) / np.median(cpu) - 1) < 0.02


def test_two_threads_on_an_oversubscribed_machine_are_unstable_though_cpu_time_keeps_up():
    """With two threads one spins while the other waits for a CPU: CPU time equals wall
    time, so only the runnable count shows the contention."""
    wall = _clean(median=8e-3, spread=0.3)
    verdict = judge(wall, _evidence(wall, threads=2, runnable=[4] * wall.size))
    assert not verdict.stable and "oversubscribed" in verdict.reason


def test_one_thread_on_an_oversubscribed_machine_is_unstable():
    """A neighbour on the other core slows a single thread through the shared caches without
    preempting it (measured: 614 µs read 935 µs with 7 % of rounds preempted)."""
    wall = _clean()
    verdict = judge(wall, _evidence(wall, threads=1, runnable=[3] * wall.size))
    assert not verdict.stable and "a neighbour shares the cores" in verdict.reason


def test_one_neighbour_on_two_cores_leaves_one_thread_stable():
    wall = _clean()
    assert judge(wall, _evidence(wall, threads=1, runnable=[2] * wall.size)).stable


def test_a_transient_runnable_task_does_not_make_two_threads_unstable():
    wall = _clean()
    runnable = [2] * wall.size
    runnable[::10] = [3] * len(runnable[::10])
    assert judge(wall, _evidence(wall, threads=2, runnable=runnable)).stable


def test_a_wide_spread_is_unstable():
    rounds = np.concatenate([_clean(100), _clean(100, median=600e-6, seed=1)])
    verdict = judge(rounds)
    assert not verdict.stable and verdict.reason.startswith("spread")


def test_reasons_accumulate():
    rng = np.random.default_rng(3)
    wall = rng.choice([4e-3, 8e-3], size=100) + rng.normal(0, 10e-6, 100)
    verdict = judge(wall, _evidence(wall, cpu=np.full(100, 60e-6), threads=2, runnable=[4] * 100))
    assert [r.split(":")[0] for r in verdict.reasons] == ["preempted", "oversubscribed", "quantised",
                                                          "spread"]


def test_evidence_summary_counts_what_the_probe_saw():
    cpu = _clean(100)
    wall = cpu.copy()
    wall[:30] *= 2
    summary = _evidence(wall, cpu, runnable=[3] * 100, switches=[1] * 100).summary()
    assert summary["preempted_rounds"] == 30 and summary["involuntary_switches"] == 100
    assert summary["runnable_median"] == 3 and summary["cpu_per_wall"] < 1


@pytest.mark.parametrize(("wall_factor", "off", "agreement", "runnable", "ok", "says"), [
    (1.0, 0.0, 1.01, 1, True, ""),
    (1.0, 0.0, 0.237, 1, False, "independent timer"),       # a timer bug (thread count)
    (1.0, 0.0, 1.5, 1, True, ""),                            # idle VM: timers 1.5x apart
    (1.5, 0.0, 1.0, 1, False, "wall time is 1.500"),         # every round descheduled a bit
    (1.0, 0.3, 1.0, 1, False, "off-CPU for"),                # a few rounds descheduled a lot
    (1.0, 0.0, 1.0, 3, False, "machine was busy"),           # between a neighbour's slices
])
def test_fidelity_fails_on_what_two_wall_clocks_cannot_see(wall_factor, off, agreement, runnable,
                                                           ok, says):
    cpu = _clean(200)
    wall = cpu * wall_factor
    if off:
        wall[:10] += off * cpu.sum() / 10 / (1 - off)
    check = stability.fidelity(float(np.median(wall)), wall, cpu, float(np.median(wall)) / agreement,
                               [runnable] * 200, CORES)
    assert check.ok is ok and says in check.reason


def test_fidelity_without_cpu_times_checks_the_timers_only():
    check = stability.fidelity(1e-3, (), (), 1e-3)
    assert check.ok and np.isnan(check.ratio)


def test_a_real_benchmark_run_records_its_stability_threads_and_fidelity(shared_bench_run):
    """A benchmark timed for real in a child pytest (the shared run; without
    --benchmark-save-data: the plugin turns it on): raw rounds in blocks, per pass and per
    process, pooled into one record; the probe's verdict and evidence, the thread count,
    and the run's timer fidelity check in the JSON."""
    from harness.benchmark import passes
    from harness.benchmark.step import REPLICATES

    doc = shared_bench_run.doc
    bench = shared_bench_run.record("eager")
    extra = bench["extra_info"]
    assert len(bench["stats"]["data"]) == bench["stats"]["rounds"] >= 8
    assert extra["blocks"] == PROCESSES * PASSES * passes.blocks_per_pass(REPLICATES, PASSES)
    assert extra["passes"] == PASSES and extra["threads"] == 1
    assert extra["timing_method"] == "perf_counter"
    assert isinstance(extra["stable"], bool) and isinstance(extra["unstable_reason"], str)
    assert extra["stability"]["rounds"] == bench["stats"]["rounds"] and "cpu_per_wall" in extra["stability"]
    assert doc["xentbench"]["threads"] == 1
    assert {"ratio", "off_cpu", "agreement", "ok", "reason"} <= set(doc["xentbench"]["fidelity"])


def test_reasons_shared_by_many_benchmarks_are_said_once_with_their_count():
    """72 benchmarks oversubscribed on a busy 2-core machine read as one reason, cut where
    their texts start to differ (the share of rounds) at a clause, not mid-phrase; a rule
    whose texts differ right after its name reads as the name; most benchmarks first."""
    over = [stability.oversubscribed_reason([4] * 10 + [1] * k, 1, CORES) for k in range(4)]
    preempted = [stability.preempted_reason([1.0] * 10, [0.5] * hit + [1.0] * (10 - hit))
                 for hit in (3, 5)]
    reasons = [over[i % 4] for i in range(72)]
    reasons[:2] = [f"{over[0]}; {preempted[0]}", f"{over[1]}; {preempted[1]}"]
    assert stability.shared_reasons(reasons) == [("oversubscribed: 4 runnable tasks on 2 cores", 72),
                                                 ("preempted", 2)]
    same = stability.shared_reasons([over[0]] * 3)  # nothing differs: said whole
    assert same == [(over[0], 3)]
