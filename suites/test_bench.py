"""Benchmarks: every contender × case × mode, timed with pytest-benchmark after one
untimed check against the oracle (a fast wrong answer cannot win).

Run ``pytest suites/ --benchmark-only`` (``--bench-size full`` on a GPU); with
``--benchmark-disable`` each benchmark runs once, as a smoke test."""

from __future__ import annotations

import statistics
import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from harness import bench
from harness.check import Expect, Expectation
from harness.pytest_plugin import bench_note, record_bench_failure
from harness.timing import independent_samples, peak_extra_memory

FIDELITY_TOLERANCE = 0.05


def _rounds(step: bench.Step, round_time: float) -> int:
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


def test_bench(benchmark, bench_item, device, peak_gbps, bench_options, request):
    case, contender, mode = bench_item
    benchmark.group = f"{case.id} {mode}"
    if reason := contender.skip_reason(case, device):
        pytest.skip(reason)
    if reason := bench.predicted_breakdown(contender, case, device):
        pytest.skip(reason)
    if reason := contender.untimed_reason():
        pytest.skip(f"{contender.name}: {reason}")
    inputs = bench.inputs_for(case, device)
    step = bench.make_step(contender, inputs, mode, device, flush=bench_options["flush"])
    try:
        cost = bench.compile_cost(contender, step, bench.compile_key(case), mode)
        verdicts = bench.check_before_timing(contender, case, mode, device)
    except Exception as exc:  # recorded and reported; the run goes on
        kind = "out of memory" if isinstance(exc, torch.cuda.OutOfMemoryError) else type(exc).__name__
        record_bench_failure(request.node.nodeid, contender.name, case.id, mode, f"{kind}: {exc}")
        pytest.fail(f"{contender.name} failed on {case.id} ({mode}): {kind}: {exc}")
    wrong = [v for v in verdicts if not v.ok]
    if wrong:
        detail = "; ".join(f"{v.prop}: {v.detail}" for v in wrong)
        record_bench_failure(request.node.nodeid, contender.name, case.id, mode, detail)
        pytest.fail(f"{contender.name} is wrong on {case.id} ({mode}), not timed: {detail}")

    nbytes = bench.min_bytes(case, mode)
    peak_mem = peak_extra_memory(lambda: (step.setup(), step.run()), device)
    benchmark.extra_info.update({
        "contender": contender.name, "family": contender.family, "case": case.fields(),
        "case_id": case.id, "mode": mode, "device": device, "dtype": case.dtype, "bytes": nbytes,
        "peak_gbps": peak_gbps, "peak_mem_bytes": peak_mem,
        "compile_s": cost.cold_s if cost else None,
        "compile_warm_s": cost.warm_s if cost else None,
        "compile_what": cost.what if cost else None,
        "torch": torch.__version__,
        "accuracy": _accuracy(bench.expectation(contender, case, device)),
    })
    rounds = _rounds(step, bench_options["round_time"])
    benchmark.pedantic(step.run, setup=step.setup, rounds=rounds, warmup_rounds=1, iterations=1)
    median = _median(benchmark)
    gbps = nbytes / median / 1e9 if median else None
    benchmark.extra_info["gbps"] = gbps
    benchmark.extra_info["peak_bw_pct"] = 100 * gbps / peak_gbps if gbps else None


def test_timer_fidelity(benchmark, device):
    """Time one fixed operation with the harness and with an independent timer in the same
    process; print the ratio and warn beyond 5 %."""
    benchmark.group = "timer fidelity"
    logits = torch.randn(256, 1000, device=device)
    target = torch.randint(0, 1000, (256,), device=device)

    def step() -> None:
        F.cross_entropy(logits, target)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    benchmark.pedantic(step, rounds=200, warmup_rounds=10, iterations=1)
    harness_median = _median(benchmark)
    if harness_median is None:
        pytest.skip("benchmarks disabled: no timing to compare")
    other = independent_samples(step, device)
    ratio = harness_median / statistics.median(other.seconds)
    benchmark.extra_info.update({"fidelity_ratio": ratio, "independent_timer": other.method,
                                 "device": device, "contender": "eager", "mode": "fwd"})
    line = (f"timer fidelity on {device}: harness median / {other.method} median = {ratio:.3f}")
    bench_note(line)
    print(line)
    if abs(ratio - 1) > FIDELITY_TOLERANCE:
        warnings.warn(f"{line}: timers disagree by more than {FIDELITY_TOLERANCE:.0%}", stacklevel=1)
