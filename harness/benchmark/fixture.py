"""The benchmark procedure, as pytest-benchmark keeps its own in ``fixture.py``: what one
benchmark of the suite does with pytest-benchmark's ``benchmark`` fixture — skip what cannot
or must not be timed, check against the oracle before timing (a fast wrong answer cannot
win), calibrate, time the replicated rounds (CPU probe or CUDA events) and record the
`BenchRecord`. ``suites/contenders/test_bench.py`` only parametrises and calls `run`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import torch

from harness.benchmark import passes, selection, stability, timing
from harness.benchmark.gpu_state import exposure_reason, gpu_state
from harness.benchmark.record import BenchRecord, unknown_keys
from harness.benchmark.step import (
    REPLICATES,
    Replicates,
    Step,
    check_before_timing,
    compile_cost,
    expectation,
    inputs_for,
    make_step,
    replicated,
)
from harness.benchmark.timing import RoundProbe, peak_extra_memory
from harness.benchmark.traffic import min_bytes, model_bytes
from harness.contenders.compiled import for_timing
from harness.equivalence.isolation import Failure
from harness.kernels import watch
from harness.problem.expectations import Expect, Expectation


def _calibrated(step: Step, round_time: float) -> tuple[int, int]:
    """(rounds, calls per round) for about ``round_time`` seconds of timed rounds: one call
    per round on CPU; on CUDA as many back-to-back calls per event pair as bring a round to
    `timing.EVENT_ROUND_S` of device time (`timing.calls_per_event`)."""
    step.setup()
    start = time.perf_counter()
    step.run()
    once = max(time.perf_counter() - start, 1e-6)
    calls = 1
    if step.events is not None:
        device_once = step.events.seconds(1)[0]
        calls = timing.calls_per_event(device_once)
        once = max(once, device_once * calls)
    return int(min(max(round_time / once, 5), 200)), calls


def traffic_fields(contender: str, case, mode: str) -> dict:
    """The record's traffic: ``bytes`` (`min_bytes`, the least any loss moves) and
    ``model_bytes`` (what this contender moves by its own stated model, None without one)."""
    return {"bytes": min_bytes(case, mode), "model_bytes": model_bytes(contender, case, mode)}


def _accuracy(expect: Expectation) -> str:
    exact = expect.loss is Expect.EXACT and expect.grad is Expect.EXACT
    return "exact" if exact else "degraded"


def _errors(verdicts) -> dict:
    """The check's largest errors against the oracle, for the record; None where a
    property was not compared (a degraded regime, no gradient taken)."""
    compared = {v.prop: v for v in verdicts if v.compared and v.prop in ("loss", "grad")}
    bounds = [v.of_bound for v in compared.values()]
    return {"loss_error": compared["loss"].max_abs if "loss" in compared else None,
            "grad_error": compared["grad"].max_abs if "grad" in compared else None,
            "error_of_bound": max(bounds) if bounds else None}


def _median(benchmark) -> float | None:
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats is not None else None


def run(benchmark, bench_item, device: str, peak_gbps: float, bench_options: dict,
        bench_threads: int, bench_pass, xent, nodeid: str, say: Callable[[str], None]) -> None:
    """One benchmark of ``bench_item`` (case, contender, mode) in this pass: skip what
    cannot or must not be timed, check against the oracle and calibrate in the first pass,
    then time the replicated rounds and record how (`BenchRecord`)."""
    case, contender, mode = bench_item
    benchmark.group = f"{case.id} {mode}"
    if reason := selection.skip_reason(contender, case, device):
        pytest.skip(reason)
    index, log = bench_pass
    if index and (reason := log.later_skip_reason(nodeid)):
        pytest.skip(reason)
    inputs = inputs_for(case, device)
    timed = xent.timing_copy(contender, case) if bench_options["timing"] else contender
    step = make_step(timed, inputs, mode, device, flush=bench_options["flush"])
    first = log.first[nodeid]
    if index == 0:
        if timed.compiled is not None and not timed.compiled.compiles:  # can take a minute
            say(f"compiling {contender.name} for {case.id} {mode} (static shapes, once per case)")
        first.rounds, first.calls = _first_pass(benchmark, step, case, contender, timed, mode,
                                                device, peak_gbps, bench_options, bench_threads,
                                                nodeid, first, xent)
        first.not_timed = ""
    blocks = passes.blocks_per_pass(REPLICATES if device == "cpu" else 1, log.passes)
    reps = replicated(timed, case, mode, device, step,
                      -(-first.rounds // log.passes), bench_options["flush"], blocks=blocks)
    _timed_rounds(benchmark, reps, device, bench_threads, first, bench_options["flush"])
    passes.with_bandwidth(benchmark.extra_info, _median(benchmark))  # pooling recomputes it


def _first_pass(benchmark, step: Step, case, contender, timed, mode: str, device: str,
                peak_gbps: float, bench_options: dict, bench_threads: int, nodeid: str,
                first: passes.FirstPass, xent) -> tuple[int, int]:
    """What only the first pass does: compile cost, the check against the oracle (a wrong
    contender fails here and is never timed), peak memory and the record's fields; returns
    the calibrated rounds for all passes together and the calls per round. ``timed`` is
    what is timed: ``contender`` itself, or its static compiled copy for this case."""
    contained = xent.contained_check(contender, case, mode)  # the user's code: a worker first
    if isinstance(contained, Failure):  # it would have taken this run with it: never called here
        xent.record_failure(nodeid, contender.name, case.id, mode, f"{contained.kind}: {contained.detail}")
        first.not_timed = contained.kind
        pytest.fail(f"{contender.name} {contained.kind} on {case.id} ({mode}) in its worker process, "
                    f"not run here: {contained.detail}")
    watching = watch.watch()
    launched = watch.launches()
    try:
        cost = _compile_cost(step, contender, timed, inputs_for(case, device), mode, device,
                             bench_options)
        verdicts = check_before_timing(timed, case, mode, device, xent.call_timeout)
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

    step.setup()  # the gradient the compile or an earlier call left is gone before the count
    # a smoke run (--benchmark-disable) records no numbers: the CPU measure's first profiler
    # start in a process (3 s, its import) is spent only on a timed run
    peak_mem = peak_extra_memory(step.run, device) if bench_options["timing"] else None
    record = BenchRecord(
        contender=contender.name, family=contender.family, case_id=case.id, mode=mode,
        device=device, dtype=case.dtype, case=case.fields(), **traffic_fields(contender.name, case, mode),
        peak_gbps=peak_gbps,
        peak_mem_bytes=peak_mem, compile_s=cost.cold_s if cost else None,
        compile_warm_s=cost.warm_s if cost else None, compile_what=cost.what if cost else None,
        accuracy=_accuracy(expectation(contender, case, device)), torch=torch.__version__,
        threads=bench_threads, **_errors(verdicts))
    benchmark.extra_info.update(record.as_extra())
    return _calibrated(step, bench_options["round_time"])


def _compile_cost(step: Step, contender, timed, inputs, mode: str, device: str,
                  bench_options: dict):
    """The compiled copy's first call (None for a contender that is not compiled); the warm
    figure from a second fresh copy only when timing (a smoke run keeps one compile)."""
    if timed.compiled is None:
        return None
    again = None
    if bench_options["timing"] and timed.compiled.compiles == 0:
        def again() -> Step:
            return make_step(for_timing(contender), inputs, mode, device, bench_options["flush"])
    return compile_cost(step, mode, again, compiled_before=timed.compiled.compiles > 0)


def _timed_rounds(benchmark, reps: Replicates, device: str, threads: int,
                  first: passes.FirstPass, flushed: bool) -> None:
    """Time the replicated rounds with pytest-benchmark, each bracketed by the stability
    probe (CPU) or timed by CUDA events (CUDA, whose times replace the wall clock's: warmed
    up by time first, `first.calls` calls per event pair, the GPU's clocks and processes
    read before and after), then record how they were timed and whether they can be trusted
    (`harness.benchmark.stability.judge`, `harness.benchmark.gpu_state.exposure_reason`)."""
    probe = RoundProbe(threads) if device == "cpu" else None
    step = reps.step
    events = step.events
    warmed, before = None, None
    if events is not None:
        events.calls = first.calls
        events.reserve(reps.rounds + 2)
        warmed = timing.warm_up(step.run, step.setup, device)
        before = gpu_state()

    def setup() -> None:
        reps.setup()
        if probe:
            probe.start()

    if probe:
        probe.begin()
    # teardown only where it is used: pytest-benchmark < 5.2 has no such argument
    extra = {"teardown": probe.stop} if probe else {}
    benchmark.pedantic(reps.run, setup=setup, rounds=reps.rounds, warmup_rounds=1, iterations=1,
                       **extra)
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: ran once, nothing timed
        return
    info = benchmark.extra_info
    info.update(timing_method="perf_counter", blocks=reps.blocks, l2_flushed=flushed)
    gpu_reason = None
    if events is not None:
        after = gpu_state()
        n = len(stats.stats.data)
        info["wall_median"] = statistics.median(stats.stats.data) / events.calls
        stats.stats.data = events.seconds(n)
        host = events.host_seconds(n)
        info.update(timing_method=events.METHOD, calls_per_event=events.calls,
                    host_median=statistics.median(host),
                    launch_bound=timing.launch_bound(stats.stats.data, host),
                    warmup_calls=warmed[0], warmup_s=warmed[1],
                    gpu_state={"before": before.as_dict(), "after": after.as_dict()})
        gpu_reason = exposure_reason(before, after)
    evidence = probe.evidence(len(stats.stats.data)) if probe else None
    if evidence is not None:
        first.evidence.append(evidence)  # judged with the other passes' when pooled
    verdict = stability.judge(stats.stats.data, evidence)
    if gpu_reason:
        verdict = stability.Stability(False, (*verdict.reasons, gpu_reason))
    info.update(stable=verdict.stable, unstable_reason=verdict.reason,
                stability=evidence.summary() if evidence else None)
    assert not unknown_keys(info), f"declare {unknown_keys(info)} in harness.benchmark.record"
