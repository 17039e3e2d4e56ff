"""The fixtures xentbench's suites use, registered by the plugin (its ``pytest_plugins``):
the session's device and state, the case counter of the equivalence suite, and what the
benchmark suite needs once per session (its pass, the copy bandwidth, threads, the timer's
self-check, the settings). Each reads the run's `XentSession` rather than the options."""

from __future__ import annotations

import os
import statistics
import warnings

import pytest
import torch

from harness import contenders as registry
from harness import options
from harness.benchmark import passes
from harness.benchmark.timing import (
    copy_samples,
    fidelity_check,
    measure_ceilings,
    reserve_flush_buffer,
)
from harness.pytest_plugin import processes
from harness.pytest_plugin.session import CASES_CHECKED, COMPILE_STATS, XentSession, session_of
from harness.pytest_plugin.session import timing as timing_run
from harness.pytest_plugin.summary import say


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    return session_of(pytestconfig).device


@pytest.fixture(scope="session")
def xent(pytestconfig: pytest.Config) -> XentSession:
    """The run's `XentSession`: notes and failures for the summary and the JSON."""
    return session_of(pytestconfig)


@pytest.fixture
def count_case(request: pytest.FixtureRequest):
    """Call once per generated case actually checked, with the contender, case and
    verdicts: the count lands in the summary, the errors in the accuracy log."""
    counter = {"n": 0}
    log = session_of(request.config).accuracy

    def bump(contender=None, case=None, verdicts=None) -> None:
        counter["n"] += 1
        if log is not None and verdicts is not None:
            log.add(contender, case, verdicts)

    yield bump
    request.node.user_properties.append((CASES_CHECKED, counter["n"]))
    request.node.user_properties.append((COMPILE_STATS, _compile_snapshot()))


def _compile_snapshot() -> list[tuple[str, str, int, int]]:
    """(process, contender, compiles, compiled calls) so far: counters live in the process
    that compiled, an xdist worker, and reach the summary through the test reports."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return [(worker, c.name, c.compiled.compiles, c.compiled.graph_runs)
            for c in registry.builtins() if c.compiled is not None and c.compiled.compiles]


@pytest.fixture
def bench_pass(request: pytest.FixtureRequest) -> tuple[int, passes.PassLog]:
    """(0-based pass of this call, the session's log) for a benchmark (`harness.benchmark.passes`)."""
    xent = session_of(request.config)
    log = xent.passes
    index = log.start(request.node.nodeid)
    if index != xent.announced_pass and log.passes > 1:
        xent.announced_pass = index
        say(request.config, f"timing pass {index + 1} of {log.passes}"
            + (" (checks against the oracle, compile cost, calibration)" if index == 0 else ""))
    return index, log


@pytest.fixture(scope="session")
def peak_gbps(pytestconfig: pytest.Config, device: str, xent: XentSession) -> float:
    """The device's copy bandwidth, measured once per session (GB/s, 1e9 bytes); in a
    timing run also the copy and read ceilings the run's JSON keeps (``xentbench.ceilings``,
    `harness.benchmark.timing.measure_ceilings`), which a smoke run does not pay for."""
    nbytes = (1 << 30) if device.startswith("cuda") else (256 << 20)
    say(pytestconfig, f"measuring {device} copy bandwidth ({nbytes >> 20} MiB), the peak behind "
                      "'% of peak'")
    moved, samples = copy_samples(device, nbytes)
    copy_gbps = moved / statistics.median(samples.seconds) / 1e9
    if timing_run(pytestconfig) and xent.ceilings is None:  # the same copy, and a read
        xent.ceilings = measure_ceilings(device, copy_gbps)
        say(pytestconfig, f"ceilings on {device}: copy {xent.ceilings['copy_gbps']:.1f} GB/s, "
                          f"read {xent.ceilings['read_gbps']:.1f} GB/s")
    return copy_gbps


@pytest.fixture(scope="session")
def bench_threads(pytestconfig: pytest.Config, device: str, xent: XentSession) -> int:
    """Intra-op threads the benchmarks run with, set once for the session (CPU): one by
    default, because a single thread degrades gracefully under a busy neighbour (measured:
    59 µs read 7,995 µs with two threads and two neighbours; 104 µs against 107 µs idle
    with one thread and one neighbour). 0 keeps torch's default."""
    wanted = pytestconfig.getoption("bench_threads")
    if device == "cpu" and wanted and timing_run(pytestconfig):  # a smoke run times nothing
        torch.set_num_threads(wanted)
    xent.threads = torch.get_num_threads()
    return xent.threads


@pytest.fixture(scope="session")
def timer_fidelity(pytestconfig: pytest.Config, device: str, xent: XentSession):
    """The run's timer self-check (`harness.benchmark.timing.fidelity_check`), once per
    benchmark session before the first benchmark, whatever ``-k`` selected; None when
    benchmarks are disabled. A failed check is kept in the JSON (``xentbench.fidelity``),
    marks the run unstable in `compare`, and warns."""
    if not timing_run(pytestconfig):
        return None
    say(pytestconfig, "checking the timer against CPU time and an independent timer (fidelity)")
    check, method = fidelity_check(device)
    xent.fidelity = {**check.as_dict(), "independent_timer": method}
    line = (f"timer fidelity on {device}: wall / CPU time per call = {check.ratio:.3f}, off-CPU "
            f"{check.off_cpu:.0%}, harness / {method} = {check.agreement:.3f}: "
            + ("ok" if check.ok else f"FAILED ({check.reason})"))
    xent.note(line)
    if not check.ok:
        warnings.warn(f"{line}: this run's timings are not trustworthy", stacklevel=1)
    return check


@pytest.fixture(scope="session")
def bench_options(pytestconfig: pytest.Config, device: str) -> dict:
    """The session's benchmark settings; the L2 flush buffer is allocated here, at the
    session's start, not inside the first benchmark's rounds."""
    flush = options.flush_l2(pytestconfig.getoption("bench_flush_l2"), device)
    if flush:
        reserve_flush_buffer(device)
    return {"size": pytestconfig.getoption("bench_size"), "flush": flush,
            "round_time": processes.round_time(pytestconfig, device),
            "timing": timing_run(pytestconfig)}
