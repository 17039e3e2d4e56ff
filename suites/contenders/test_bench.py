"""Benchmarks: every contender × case × mode, timed with pytest-benchmark after one
untimed check against the oracle (a fast wrong answer cannot win).

Run ``pytest suites/ --benchmark-only`` (``--bench-size full`` on a GPU); with
``--benchmark-disable`` each benchmark runs once, as a smoke test."""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from harness.benchmark import passes, stability
from harness.benchmark.record import BenchRecord, unknown_keys
from harness.benchmark.step import (
    REPLICATES,
    Replicates,
    Step,
    check_before_timing,
    compile_cost,
    compile_key,
    expectation,
    inputs_for,
    make_step,
    predicted_breakdown,
    replicated,
)
from harness.benchmark.timing import RoundProbe, peak_extra_memory
from harness.benchmark.traffic import min_bytes
from harness.kernels import watch
from harness.problem.expectations import Expect, Expectation
from harness.pytest_plugin import say


def _rounds(step: Step, round_time: float) -> int:
    step.setup()
    start = time.perf_counter()
    step.run()
    once = max(time.perf_counter() - start, 1e-6)
    return int(min(max(round_time / once, 5), 200))


def _accuracy(expect: Expectation) -> str:
    exact = expect.loss is Expect.EXACT and expect.grad is Expect.EXACT
    return "exact" if exact else "degraded"


def _median(benchmark) -> float | None:
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats is not None else None


def test_bench(benchmark, bench_item, device, peak_gbps, bench_options, bench_threads, timer_fidelity,
               bench_pass, xent, request):
    case, contender, mode = bench_item
    benchmark.group = f"{case.id} {mode}"
    if reason := contender.skip_reason(case, device):
        pytest.skip(reason)
    if reason := predicted_breakdown(contender, case, device):
        pytest.skip(reason)
    if reason := contender.untimed_reason():
        pytest.skip(f"{contender.name}: {reason}")
    index, log = bench_pass
    nodeid = request.node.nodeid
    if index and (reason := log.later_skip_reason(nodeid)):
        pytest.skip(reason)
    inputs = inputs_for(case, device)
    step = make_step(contender, inputs, mode, device, flush=bench_options["flush"])
    first = log.first[nodeid]
    if index == 0:
        if contender.compiled is not None:  # the one phase that can take a minute
            say(request.config, f"compiling {contender.name} for {case.id} {mode} (once per "
                                "compile signature)")
        first.rounds = _first_pass(benchmark, step, case, contender, mode, device, peak_gbps,
                                   bench_options, bench_threads, nodeid, first, xent)
        first.not_timed = ""
    blocks = passes.blocks_per_pass(REPLICATES if device == "cpu" else 1, log.passes)
    reps = replicated(contender, case, mode, device, step,
                            -(-first.rounds // log.passes), bench_options["flush"], blocks=blocks)
    _timed_rounds(benchmark, reps, device, bench_threads, first)
    passes.with_bandwidth(benchmark.extra_info, _median(benchmark))  # pooling recomputes it


def _first_pass(benchmark, step: Step, case, contender, mode: str, device: str,
                peak_gbps: float, bench_options: dict, bench_threads: int, nodeid: str,
                first: passes.FirstPass, xent) -> int:
    """What only the first pass does: compile cost, the check against the oracle (a wrong
    contender fails here and is never timed), peak memory and the record's fields; returns
    the calibrated number of rounds for all passes together."""
    watching = watch.watch()
    launched = watch.launches()
    try:
        cost = compile_cost(contender, step, compile_key(case), mode)
        verdicts = check_before_timing(contender, case, mode, device, xent.call_timeout)
    except Exception as exc:  # recorded and reported; the run goes on
        kind = "out of memory" if isinstance(exc, torch.cuda.OutOfMemoryError) else type(exc).__name__
        xent.record_failure(nodeid, contender.name, case.id, mode, f"{kind}: {exc}")
        first.not_timed = f"failed: {kind}"
        pytest.fail(f"{contender.name} failed on {case.id} ({mode}): {kind}: {exc}")
    wrong = [v for v in verdicts if not v.ok]
    if wrong:
        detail = "; ".join(f"{v.prop}: {v.detail}" for v in wrong)
        xent.record_failure(nodeid, contender.name, case.id, mode, detail)
        first.not_timed = "wrong against the oracle"
        pytest.fail(f"{contender.name} is wrong on {case.id} ({mode}), not timed: {detail}")
    if watching and watch.launches() > launched:  # whoever registered it: never timed
        first.not_timed = "Triton interpreter"
        pytest.skip(f"{contender.name}: runs Triton kernels in the interpreter (no GPU): checked "
                    "against the oracle, never timed")

    nbytes = min_bytes(case, mode)
    peak_mem = peak_extra_memory(lambda: (step.setup(), step.run()), device)
    record = BenchRecord(
        contender=contender.name, family=contender.family, case_id=case.id, mode=mode,
        device=device, dtype=case.dtype, case=case.fields(), bytes=nbytes, peak_gbps=peak_gbps,
        peak_mem_bytes=peak_mem, compile_s=cost.cold_s if cost else None,
        compile_warm_s=cost.warm_s if cost else None, compile_what=cost.what if cost else None,
        accuracy=_accuracy(expectation(contender, case, device)), torch=torch.__version__,
        threads=bench_threads)
    benchmark.extra_info.update(record.as_extra())
    return _rounds(step, bench_options["round_time"])


def _timed_rounds(benchmark, reps: Replicates, device: str, threads: int,
                 first: passes.FirstPass) -> None:
    """Time the replicated rounds with pytest-benchmark, each bracketed by the stability
    probe (CPU) or timed by CUDA events (CUDA, whose times replace the wall clock's), then
    record how they were timed and whether they can be trusted (`harness.benchmark.stability.judge`)."""
    probe = RoundProbe(threads) if device == "cpu" else None
    step = reps.step

    def setup() -> None:
        reps.setup()
        if probe:
            probe.start()

    if probe:
        probe.begin()
    benchmark.pedantic(reps.run, setup=setup, teardown=probe.stop if probe else None,
                       rounds=reps.rounds, warmup_rounds=1, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: ran once, nothing timed
        return
    info = benchmark.extra_info
    info.update(timing_method="perf_counter", blocks=reps.blocks)
    if step.events is not None:
        info["wall_median"] = statistics.median(stats.stats.data)
        stats.stats.data = step.events.seconds(len(stats.stats.data))
        info["timing_method"] = step.events.METHOD
    evidence = probe.evidence(len(stats.stats.data)) if probe else None
    if evidence is not None:
        first.evidence.append(evidence)  # judged with the other passes' when pooled
    verdict = stability.judge(stats.stats.data, evidence)
    info.update(stable=verdict.stable, unstable_reason=verdict.reason,
                stability=evidence.summary() if evidence else None)
    assert not unknown_keys(info), f"declare {unknown_keys(info)} in harness.benchmark.record"
