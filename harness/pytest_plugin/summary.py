"""The end-of-run summaries xentbench writes after pytest-benchmark's tables: benchmark
notes and failures, generated cases checked per test and compile counts, the list of
unstable benchmarks, and with ``--defects`` the defect search (every distinct defect of
each contender whose equivalence test failed, shrunk). The hook that calls `write` is in
the plugin module; nothing here is a hook."""

from __future__ import annotations

import contextlib

import pytest

from harness.analysis import tables
from harness.equivalence.runner import repro_command
from harness.equivalence.verdicts import check_contenders, defects_of
from harness.pytest_plugin.session import XentSession


def write(terminalreporter, xent: XentSession, contenders: list, device: str,
          search_defects: bool = False) -> None:
    """Every summary, in order; ``contenders`` are the run's (for the defect search)."""
    cases(terminalreporter, xent)
    if search_defects and xent.failed_contenders:
        defects(terminalreporter, xent, contenders, device)
    unstable(terminalreporter, xent)


def reach(terminalreporter, xent: XentSession) -> None:
    """What each property test reached of its contender's declared values, pairs and
    triples (`harness.problem.coverage`): one line per contender whose tests reached all
    of it (with the fewest cases any of them ran), else "not reached: …" per test."""
    if not xent.reach:
        return
    terminalreporter.section("xentbench: combinations reached")
    complete: dict[str, list] = {}
    for node, got in sorted(xent.reach.items()):
        test = node.split("::", 1)[-1]
        if got.missing:
            terminalreporter.write_line(f"{test}: {got.line()}")
        else:
            complete.setdefault(test.rsplit("[", 1)[-1].rsplit("-", 1)[0], []).append(got)
    for name, reaches in complete.items():
        fewest = min(reaches, key=lambda r: r.cases)
        terminalreporter.write_line(f"{name}: {fewest.line()} by each of its {len(reaches)} property tests")
    missed = sum(1 for got in xent.reach.values() if got.missing)
    terminalreporter.write_line(f"{len(xent.reach)} property tests: "
                                + (f"{missed} left a declared combination unreached" if missed
                                   else "not reached: none"))


def unstable(terminalreporter, xent: XentSession) -> None:
    """One warning: how many benchmarks are unstable and why, each shared reason once
    (`tables.unstable_line`), then their names when only some are (every benchmark's own
    reason is in the JSON and in `report`)."""
    if not xent.unstable:
        return
    terminalreporter.section("xentbench: unstable benchmarks", yellow=True)
    timed = _timed(terminalreporter.config)
    terminalreporter.write_line(tables.unstable_line([reason for _, reason in xent.unstable], timed))
    if len(xent.unstable) < timed:
        for name, _ in xent.unstable:
            terminalreporter.write_line(f"  {name}")
    terminalreporter.write_line(
        f"WARNING: {len(xent.unstable)} benchmark(s) unstable: their medians may be wrong; "
        "rerun on a quiet machine (see docs/benchmarking.md, 'Timing you can trust')",
        yellow=True, bold=True)


def _timed(config) -> int:
    """The run's timed benchmarks (pooled, ours: they carry a contender), of which
    `XentSession.unstable` lists the unstable ones."""
    bs = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(bs, "benchmarks", ())
    return sum(1 for b in benchmarks if b.stats is not None and "contender" in b.extra_info)


def defects(terminalreporter, xent: XentSession, contenders: list, device: str) -> None:
    """``--defects``: one Hypothesis counterexample per property hides a second defect;
    here every contender that failed is checked on its option grid and 60 generated cases
    and each distinct defect is shrunk to its own case (`harness.equivalence.defects`)."""
    terminalreporter.section("xentbench: every distinct defect")
    for contender in (c for c in contenders if c.name in xent.failed_contenders):
        results = check_contenders([contender], [], 60, device, timeout=xent.call_timeout)
        classes = defects_of(contender, results, device, xent.call_timeout)
        terminalreporter.write_line(tables.defect_report(
            contender.name, classes, lambda case, c=contender: repro_command(c, case)))


def cases(terminalreporter, xent: XentSession) -> None:
    """The benchmark notes and failures, the generated cases each test checked, and each
    compiled contender's compile counts."""
    if xent.notes or xent.failures:
        terminalreporter.section("xentbench: benchmark notes")
        for line in xent.notes:
            terminalreporter.write_line(line)
        for f in xent.failures:
            terminalreporter.write_line(f"FAILED {f['contender']} on {f['case_id']} {f['mode']}: "
                                        f"{f['error']}")
    if not xent.cases_checked:
        return
    reach(terminalreporter, xent)
    terminalreporter.section("xentbench: generated cases checked per test")
    for nodeid, n in sorted(xent.cases_checked.items()):
        terminalreporter.write_line(f"{n:6d}  {nodeid.split('::', 1)[-1]}")
    totals: dict[str, list[int]] = {}
    for (_, name), (compiles, runs) in xent.compiles.items():
        total = totals.setdefault(name, [0, 0, 0])
        total[0] += compiles
        total[1] += max(compiles - 1, 0)
        total[2] += runs
    processes = len({worker for worker, _ in xent.compiles})
    for name, (compiles, recompiles, runs) in sorted(totals.items()):
        terminalreporter.write_line(
            f"{name}: {compiles} compiles ({recompiles} recompiles), {runs} compiled calls, "
            f"in {processes} process(es) (a fallback to eager fails its test)")


def say(config: pytest.Config, text: str) -> None:
    """One line of what the run is doing now (a phase that would otherwise be silent)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        # after -q's progress dots: a line of its own (ensure_newline only knows file names)
        if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
            reporter.write("\n")
        reporter.write_line(f"xentbench: {text}")
