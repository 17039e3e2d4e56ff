"""Benchmarks: every contender × case × mode, timed with pytest-benchmark after one
untimed check against the oracle (a fast wrong answer cannot win).

Run ``pytest suites/ --benchmark-only`` (``--bench-size full`` on a GPU); with
``--benchmark-disable`` each benchmark runs once, as a smoke test."""

from __future__ import annotations

from harness.benchmark import fixture
from harness.pytest_plugin.summary import say


def test_bench(benchmark, bench_item, device, peak_gbps, bench_options, bench_threads, timer_fidelity,
               bench_pass, xent, request):
    fixture.run(benchmark, bench_item, device, peak_gbps, bench_options, bench_threads, bench_pass,
                xent, request.node.nodeid, lambda text: say(request.config, text))
