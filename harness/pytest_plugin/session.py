"""The run's state, one object per pytest session kept on the config (as pytest-benchmark
keeps its ``BenchmarkSession``), with its behaviour: tallying reports, the JSON stamp,
saving a run nothing was timed in. Tests reach it through the ``xent`` fixture; nothing is
kept in module globals."""

from __future__ import annotations

import datetime
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from harness import contenders as registry
from harness import machine, options
from harness.analysis.accuracy import AccuracyLog
from harness.atomic import atomic_write_text
from harness.benchmark import case_sets, passes
from harness.benchmark.passes import PassLog
from harness.benchmark.record import machine_info_stamp
from harness.contenders import ContenderError
from harness.equivalence.runner import CALL_TIMEOUT_S
from harness.problem.case import CaseError
from harness.problem.coverage import Reach
from harness.problem.families import FAMILIES

CASES_CHECKED = "xentbench_cases_checked"  # user property: generated cases one test checked
REACH = "xentbench_reach"  # user property: a property test's `coverage.Reach`, as a dict
COMPILE_STATS = "xentbench_compile_stats"  # user property: (process, contender, compiles, calls)


@dataclass(eq=False)  # registered as a plugin: hashed by identity
class XentSession:
    accuracy: AccuracyLog | None = None          # with --accuracy-out: errors per contender
    cases_checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per node id
    reach: dict[str, Any] = field(default_factory=dict)  # per property test: coverage.Reach
    compiles: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    # ^ latest (compiles, compiled calls) per (process, contender)
    notes: list[str] = field(default_factory=list)        # lines for the benchmark summary
    failures: list[dict] = field(default_factory=list)    # benchmarks that raised or were wrong
    unstable: list[tuple[str, str]] = field(default_factory=list)  # (benchmark, reason), pooled
    threads: int | None = None                   # intra-op threads the benchmarks ran with
    fidelity: dict | None = None                 # the timer self-check, as recorded
    passes: PassLog = field(default_factory=PassLog)
    call_timeout: float | None = None            # --call-timeout: seconds one contender call may take
    failed_contenders: set[str] = field(default_factory=set)  # a property test failed (--defects)
    announced_pass: int = -1                     # the last pass whose start was printed
    started: str = ""                            # UTC time the session started (the stamp's)
    deadline: float | None = None                # --bench-deadline: time.monotonic() to stop at
    device: str = "cpu"                          # where this session's contenders run
    seed: int | None = None                      # --hypothesis-seed: the suites' draw
    contenders: dict[str, list] = field(default_factory=dict)  # per family, as `contenders_of` resolved
    ceilings: dict | None = None                 # copy and read GB/s, measured in a timing run

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Tally what each test reported (in the controller under xdist, where the
        workers' reports arrive): cases checked, each process's compile counters, and the
        contenders whose equivalence test failed."""
        if report.when == "call" and report.failed and "_property[" in report.nodeid:
            self.failed_contenders.add(report.nodeid.rsplit("[", 1)[1].rsplit("-", 1)[0])
        if report.when != "teardown":
            return
        for key, value in report.user_properties:
            if key == CASES_CHECKED:
                self.cases_checked[report.nodeid] += value
            elif key == REACH:
                self.reach[report.nodeid] = Reach(**{**value, "missing": tuple(value["missing"])})
            elif key == COMPILE_STATS:
                for worker, name, compiles, runs in value:
                    self.compiles[(worker, name)] = (compiles, runs)

    timing_copies: dict[tuple[str, str], Any] = field(default_factory=dict)
    judges: dict[str, Any] = field(default_factory=dict)  # an untrusted contender's worker

    def contained_check(self, contender: Any, case: Any, mode: str) -> Any:
        """An untrusted contender's first call on ``case``, in its worker process
        (`harness.equivalence.isolation.Isolated`), before any call in this one: its
        verdicts, or the `Failure` (hang, crash, out of memory) that would have taken the
        benchmark run with it. None for a contender the harness trusts."""
        from harness.equivalence import isolation

        if not isolation.is_untrusted(contender):
            return None
        if contender.name not in self.judges:
            self.judges[contender.name] = isolation.Isolated(contender, self.device)
        judge = self.judges[contender.name]
        props = ("loss", "nonfinite", "grad") if mode == "fwd_bwd" else ("loss", "nonfinite")
        limit = isolation.call_limit(case, self.device, first_compile=judge.fresh,
                                     given=self.call_timeout)
        return judge.verdicts(case, props, limit, backward=mode == "fwd_bwd")

    def close_judges(self) -> None:
        for judge in self.judges.values():
            judge.close()
        self.judges.clear()

    def timing_copy(self, contender: Any, case: Any) -> Any:
        """The contender a benchmark of ``case`` times, made once per case and kept for the
        session's passes and modes: a compiled contender's static copy, compiled for this
        case alone (`harness.contenders.compiled.for_timing`); any other as it is."""
        from harness.contenders.compiled import for_timing  # torch.compile: not at plugin import

        key = (contender.name, case.id)
        if key not in self.timing_copies:
            self.timing_copies[key] = for_timing(contender)
        return self.timing_copies[key]

    def note(self, text: str) -> None:
        """A line for the end-of-run summary (e.g. the timer fidelity ratio)."""
        self.notes.append(text)

    def record_failure(self, nodeid: str, contender: str, case_id: str, mode: str,
                       error: str) -> None:
        """A benchmark that raised or failed its check: kept in the JSON and the summary."""
        self.failures.append({"name": nodeid, "contender": contender, "case_id": case_id,
                              "mode": mode, "error": error})


    def stamp(self, config: pytest.Config) -> dict:
        """The ``xentbench`` key of the run's JSON: machine, options, failures, notes, timer
        check, unstable count and, in a timing run, the copy and read ceilings."""
        run_id = config.getoption("run_id") or os.environ.get("XENTBENCH_RUN_ID")
        return {
            **machine_info_stamp(run_id, config.getoption("shard")),
            "bench_size": config.getoption("bench_size"),
            "device": self.device,
            "failures": list(self.failures),
            "notes": list(self.notes),
            "threads": self.threads if self.threads is not None else torch.get_num_threads(),
            "fidelity": self.fidelity,
            "unstable": len(self.unstable),
            "started": self.started,  # pytest-benchmark's "datetime" is when the file was saved
            **({"ceilings": self.ceilings} if self.ceilings else {}),
        }

    def save_untimed_run(self, config: pytest.Config) -> None:
        """pytest-benchmark saves nothing when no benchmark was timed ("Not saving
        anything"), so a run whose every contender failed its check left no record of why.
        Then the JSON asked for holds no benchmarks and the stamp with the failures: `report`
        and `compare` show them, `harness bench` prints its summary, a pooled run's extra
        process tells the parent. (Runs after pytest-benchmark's own save: its hook wraps
        the caller's.)"""
        bs = getattr(config, "_benchmarksession", None)
        if bs is None or not bs.json or bs.benchmarks or bs.disabled or not self.failures:
            return
        # pytest-benchmark's own sequence of hooks (its handle_saving), our stamp included
        commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
        config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
        doc = config.hook.pytest_benchmark_generate_json(config=config, benchmarks=[], include_data=True,
                                                         machine_info=bs.get_machine_info(),
                                                         commit_info=commit_info)
        config.hook.pytest_benchmark_update_json(config=config, benchmarks=[], output_json=doc)
        atomic_write_text(Path(bs.json), json.dumps(doc, indent=1, default=str))


SESSION = pytest.StashKey[XentSession]()


def session_of(config: pytest.Config) -> XentSession:
    return config.stash[SESSION]


def build(config: pytest.Config) -> XentSession:
    """The run's session, made once in ``pytest_configure`` from the options: the device
    resolved, the passes wanted, the accuracy log, the deadline."""
    device = resolve_device(config.getoption("device"))
    wanted = config.getoption("bench_passes") or passes.default_passes(device)
    accuracy = (AccuracyLog(device=device, torch=torch.__version__)
                if config.getoption("accuracy_out") else None)
    seconds = config.getoption("bench_deadline")
    return XentSession(accuracy=accuracy, device=device,
                       passes=PassLog(passes=wanted if timing(config) else 1),
                       call_timeout=config.getoption("call_timeout") or CALL_TIMEOUT_S,
                       seed=seed(config),
                       started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       deadline=time.monotonic() + seconds if seconds else None)


def timing(config: pytest.Config) -> bool:
    """Whether this run times anything (not a smoke run, a skip of benchmarks, a collection)."""
    return not (config.getoption("benchmark_disable", False)
                or config.getoption("benchmark_skip", False) or config.option.collectonly)


def resolve_device(choice: str) -> str:
    try:
        return options.resolve_device(choice)
    except options.DeviceError as exc:
        raise pytest.UsageError(str(exc)) from None


def seed(config: pytest.Config) -> int | None:
    """``--hypothesis-seed`` as an int (Hypothesis takes any text: hashed to one)."""
    given = config.getoption("hypothesis_seed", None)
    if given is None:
        return None
    return int(given) if str(given).isdigit() else int.from_bytes(str(given).encode()[:8], "little")


def contenders_of(config: pytest.Config, family: str) -> list[registry.Contender]:
    """The family's contenders, resolved once per session: at its start in xentbench's runs
    (a bad spec is a usage error up front), in a foreign run only if one of xentbench's
    tests asks (the registry's entry points are none of its business)."""
    known = session_of(config).contenders
    if family not in known:
        known[family] = resolve_contenders(config, family)
    return known[family]


def resolve_contenders(config: pytest.Config, family: str) -> list[registry.Contender]:
    """The family's contenders as the options name them, narrowed by ``--only`` (exact names)."""
    try:
        found = registry.resolve(family, config.getoption(FAMILIES[family].option_dest))
    except ContenderError as exc:
        raise pytest.UsageError(str(exc)) from None
    return options.keep_only(found, config.getoption("only"))


def check_only(config: pytest.Config) -> None:
    """``--only`` names that no family has are a usage error listing the known names."""
    known = [c.name for f in FAMILIES
             for c in registry.resolve(f, config.getoption(FAMILIES[f].option_dest))]
    try:
        options.check_only(config.getoption("only"), known)
    except options.UnknownContender as exc:
        raise pytest.UsageError(str(exc)) from None


def check_cases(config: pytest.Config) -> None:
    """A ``--bench-cases`` set name or case id that cannot be read is a usage error (one
    line naming it), not a collection error of the benchmark suite."""
    try:
        case_sets.selected(config.getoption("bench_cases"), flag="--bench-cases")
    except CaseError as exc:
        raise pytest.UsageError(str(exc)) from None


def add_machine_info(machine_info: dict) -> None:
    """What pytest-benchmark's JSON says of the machine, plus torch's and the GPU's."""
    machine_info.update(machine.run_info(torch))
