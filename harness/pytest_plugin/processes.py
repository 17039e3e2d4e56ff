"""``--bench-processes K`` under plain pytest: after its own passes, this process times the
same benchmarks in K − 1 more pytest processes, one after the other, each with 1/K of the
round time, and pools their rounds into its own records before pytest-benchmark saves or
shows them (`harness.benchmark.pooling.pool_into`).

Why: identical code drifts 10-15 % per benchmark from one process to the next on this
project's 2-core VM, a state no round inside one process can show; pooling three processes
is what took the A/A pairs of ``scripts/noise_demo.sh`` to 0 of 10 with the planted 2×
slowdown found on 87 of 88 comparisons (docs/benchmarking.md, "The noise demonstration").
So on CPU plain ``pytest suites/ --benchmark-only`` pools `VERDICT_PROCESSES` by default;
``python -m harness bench`` passes 1 unless asked (a quick look: each process repeats the
checks and calibration). The extra processes run exactly the node ids this one timed, with
the same harness options; their output goes to a log file, not the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import options
from harness.benchmark.case_sets import ROUND_TIME
from harness.benchmark.passes import pool_passes
from harness.benchmark.pooling import VERDICT_PROCESSES, pool_into
from harness.benchmark.record import stamp_of
from harness.benchmark.runner import wait_or_stop
from harness.pytest_plugin.ownership import is_own_item
from harness.pytest_plugin.session import XentSession
from harness.pytest_plugin.summary import say

PART_ENV = "XENTBENCH_POOL_PART"  # set in the extra processes: they time, they never spawn


def wanted(config: pytest.Config, device: str) -> int:
    """Processes to pool: the option, else `VERDICT_PROCESSES` on CPU and 1 on CUDA (its
    event timing's drift is not measured yet); always 1 inside an extra process, under
    xdist, and when nothing is timed."""
    if os.environ.get(PART_ENV) or os.environ.get("PYTEST_XDIST_WORKER"):
        return 1
    if (config.getoption("benchmark_disable", False) or config.getoption("benchmark_skip", False)
            or config.option.collectonly):
        return 1
    given = config.getoption("bench_processes")
    return given if given else (VERDICT_PROCESSES if device == "cpu" else 1)


def round_time(config: pytest.Config, device: str) -> float:
    """Seconds of timed rounds per benchmark in this process: the option, else the size's
    budget shared among the pooled processes."""
    given = config.getoption("bench_round_time")
    if given:
        return given
    return ROUND_TIME[config.getoption("bench_size")] / wanted(config, device)


def child_command(config: pytest.Config, nodeids: list[str], json_path: Path,
                  round_time: float) -> list[str]:
    """The pytest command of one extra process: these node ids, the harness's options as
    this process resolved them, one process, its share of the round time."""
    get = config.getoption
    values = {o.dest: get(f"bench_{o.dest}") for o in options.BENCH_OPTIONS}
    values.update(processes=1, round_time=round_time)
    flags = [*options.bench_flags(values), f"--device={get('device')}",
             *options.contender_flags(get("contender"), get("binary_contender"), get("only"),
                                      get("call_timeout"))]
    root = config.rootpath
    absolute = [str(root / n.split("::", 1)[0]) + "::" + n.split("::", 1)[1] for n in nodeids]
    return [sys.executable, "-m", "pytest", *absolute, f"--rootdir={root}", "--benchmark-only",
            f"--benchmark-json={json_path}", "-q", "-p", "no:cacheprovider",
            "-W", "ignore::DeprecationWarning", *flags]


@dataclass
class ExtraOutcome:
    """What the extra processes add to this process's run besides their rounds."""

    problems: list[str] = field(default_factory=list)   # a process that produced no timings
    failures: list[dict] = field(default_factory=list)  # failed only in an extra process
    fidelity: dict | None = None                        # an extra process's failed timer check


def merge_outcome(records: list, docs: list[tuple[str, dict]],
                  known_failures: frozenset[str] = frozenset()) -> ExtraOutcome:
    """Fold the extra processes' JSON documents (``docs``: (which process, document)) into
    this process's run, in place: a benchmark that failed its check in any process is a
    failure of the run, its record removed from ``records`` (a fast wrong answer is never
    timed, even when only one process saw it wrong); a failed timer-fidelity check of any
    process is the run's (its rounds are pooled in). Failures this process recorded itself
    (``known_failures``, node ids) are not repeated. Notes are not merged: each process's
    repeat this one's (the fidelity line, compile counts). Rounds: `pool_into`."""
    outcome = ExtraOutcome()
    seen = set(known_failures)
    for which, doc in docs:
        stamp = stamp_of(doc)
        fidelity = stamp.get("fidelity")
        if isinstance(fidelity, dict) and not fidelity.get("ok", True) and outcome.fidelity is None:
            outcome.fidelity = {**fidelity, "process": which}
        for failure in stamp.get("failures") or []:
            if not isinstance(failure, dict) or failure.get("name") in seen:
                continue
            seen.add(failure.get("name"))
            outcome.failures.append({**failure, "process": which,
                                     "error": f"in process {which}: {failure.get('error')}"})
    failed = {f.get("name") for f in outcome.failures}
    records[:] = [r for r in records if r.fullname not in failed]
    return outcome


def time_in_more_processes(config: pytest.Config, records: list, nodeids: list[str], k: int,
                           round_time: float, say, known_failures: frozenset[str] = frozenset()
                           ) -> ExtraOutcome:
    """Run the K − 1 extra processes, fold their failures and timer check into this run
    (`merge_outcome`) and pool their rounds into ``records``; ``say`` prints a line."""
    problems = []
    env = dict(os.environ)
    env[PART_ENV] = "1"
    here = str(config.invocation_params.dir)  # --contender modules live where pytest was run
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="xentbench-processes-") as tmp:
        docs = []
        for part in range(2, k + 1):
            out, log = Path(tmp) / f"process-{part}.json", Path(tmp) / f"process-{part}.log"
            say(f"timing process {part} of {k} ({len(nodeids)} benchmarks; output in a log file)")
            with open(log, "w", encoding="utf-8") as sink:
                code = wait_or_stop(subprocess.Popen(child_command(config, nodeids, out, round_time),
                                              cwd=here, env=env, stdout=sink,
                                              stderr=subprocess.STDOUT))
            # exit 1 is a failed test: its JSON holds what was timed, or only the failures
            doc = _read(out) if code in (0, 1) else None
            if doc is not None:
                docs.append((f"{part} of {k}", doc))
            if doc is None or not (doc.get("benchmarks") or stamp_of(doc).get("failures")):
                tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
                problems.append(f"process {part} of {k} produced no timings (exit {code}): "
                                + " | ".join(tail))
        outcome = merge_outcome(records, docs, known_failures)
        pooled = pool_into(records, [doc for _, doc in docs if doc.get("benchmarks")])
    outcome.problems = problems
    say(f"pooled {1 + sum(1 for _, d in docs if d.get('benchmarks'))} processes into {pooled} "
        "benchmarks")
    return outcome


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def after_passes(session: pytest.Session, xent: XentSession) -> None:
    """After the last pass, before pytest-benchmark saves or shows anything: one record per
    benchmark of xentbench's, its passes' rounds pooled, then timed in the extra processes
    (`time_in_more_processes`); the unstable list comes from those records."""
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is None:
        return
    config = session.config
    own = {item.nodeid for item in session.items if is_own_item(item)}
    mine = [b for b in bs.benchmarks if b.fullname in own]
    if not mine:
        return  # a foreign project's benchmarks: pooled, re-timed and judged by nobody
    others = [b for b in bs.benchmarks if b.fullname not in own]
    bs.benchmarks[:] = pool_passes(mine, xent.passes) + others
    k = wanted(config, xent.device)
    timed = list(dict.fromkeys(b.fullname for b in bs.benchmarks
                               if b.stats is not None and b.fullname in own))
    if (k > 1 and timed and not session.shouldstop and not session.shouldfail
            and not xent.past_deadline()):
        _time_elsewhere(session, xent, bs.benchmarks, timed, k)
    xent.unstable[:] = [(b.fullname.split("::", 1)[-1], b.extra_info.get("unstable_reason") or "")
                        for b in bs.benchmarks if b.extra_info.get("stable") is False]


def _time_elsewhere(session: pytest.Session, xent: XentSession, records: list, timed: list[str],
                    k: int) -> None:
    config = session.config
    known = frozenset(f["name"] for f in xent.failures)
    outcome = time_in_more_processes(config, records, timed, k, round_time(config, xent.device),
                                     lambda text: say(config, text), known)
    for problem in outcome.problems:
        xent.note(problem)
    xent.failures.extend(outcome.failures)  # their records are gone: never timed
    session.testsfailed += len(outcome.failures)  # and the run's exit status says so (1)
    if outcome.fidelity is not None and (xent.fidelity or {}).get("ok", True):
        xent.fidelity = outcome.fidelity
        xent.note(f"timer fidelity failed in process {outcome.fidelity['process']}: "
                  f"{outcome.fidelity.get('reason') or 'see its check'} (the run is unstable)")
