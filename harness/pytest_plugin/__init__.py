"""The pytest layer, hooks and fixtures only: options (written once in `harness.options`),
whether the run is xentbench's (`ownership`), parametrisation by contender and benchmark
item, passes and shards of the collection, pooling. What the hooks call lives beside them:
the run's state and its behaviour in one `XentSession` on the config (``xent`` fixture,
`session`), the end-of-run summaries and the defect search (`summary`), extra processes
(`processes`). The only module of the harness that pytest hooks live in."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import statistics
import time
import warnings

import pytest
import torch
from hypothesis import settings

from harness import contenders as registry
from harness import options
from harness.analysis.accuracy import AccuracyLog
from harness.benchmark import case_sets, passes
from harness.benchmark.case_sets import MODES, ROUND_TIME, bench_cases
from harness.benchmark.timing import copy_samples, fidelity_check, reserve_flush_buffer
from harness.contenders import ContenderError
from harness.equivalence.runner import CALL_TIMEOUT_S
from harness.kernels import interpret_without_cuda
from harness.problem import strategies
from harness.problem.case import CaseError
from harness.problem.families import FAMILIES
from harness.pytest_plugin import processes, shard, summary
from harness.pytest_plugin.ownership import OWN_RUN, is_own_item, targets_own_suites
from harness.pytest_plugin.session import (
    CASES_CHECKED,
    COMPILE_STATS,
    SESSION,
    XentSession,
    session_of,
)


# ---- options and configuration ---------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xentbench")
    options.add_contender_options(group.addoption)
    options.add_device_option(group.addoption)
    options.add_bench_options(group.addoption, prefix="bench-")
    group.addoption("--defects", action="store_true",
                    help="after the run, list every distinct defect of each contender whose "
                         "equivalence test failed, each with its minimal case (as `python -m "
                         "harness check` does)")
    group.addoption("--accuracy-out", default=None, metavar="DIR",
                    help="record the largest errors against the oracle per contender, dtype "
                         "and logit-scale band into DIR/accuracy-<process>.json")
    options.add_run_options(group.addoption)


def pytest_load_initial_conftests(early_config: pytest.Config, parser, args: list[str]) -> None:
    """Before any conftest or test module is imported: is this xentbench's own run
    (`harness.pytest_plugin.ownership`)? Only then is Triton's interpreter turned on (no
    CUDA), which must happen before anything imports Triton. A foreign project's session
    gets nothing of this plugin's (`suites/harness/test_foreign.py`). (The checkout's
    conftest.py loads the plugin after this hook: it turns the interpreter on itself.)"""
    early_config.stash[OWN_RUN] = own = targets_own_suites(args, early_config.rootpath)
    if own:
        interpret_without_cuda()


def own_run(config: pytest.Config) -> bool:
    """Whether this session runs xentbench's suites; True where the early hook did not run
    (the plugin loaded by the checkout's conftest.py, which only xentbench's runs have)."""
    return config.stash.get(OWN_RUN, True)


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA device")
    config.stash[SESSION] = xent = _new_session(config)
    config.pluginmanager.register(xent, "xentbench-session")  # its hook tallies the reports
    if not own_run(config):
        return  # a foreign project's session: its profile, its JSON, its processes
    # Raw rounds always go into the JSON: compare's significance tests need them, and a
    # file without them used to turn an injected 3x slowdown into 'noisy'.
    if hasattr(config.option, "benchmark_save_data"):
        config.option.benchmark_save_data = True
    strategies.register_profiles()  # before Hypothesis's configure loads --hypothesis-profile
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(own_profile(config))
    for family in FAMILIES:
        _contenders(config, family)  # a bad --contender spec is a usage error, up front
    _check_only(config)
    _check_cases(config)
    if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
        # n workers × n intra-op threads on n cores stall each other's OpenMP barriers
        # (a 10 µs op took 15 ms); one thread per worker, and per process a test starts
        # (a child pytest, check, bench, ab: the environment carries it; four of
        # test_external's child pytest runs under -n 2 took 57 s with torch's default
        # threads in the children, 33 s with one). Timing never runs under xdist.
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def own_profile(config: pytest.Config) -> str:
    """The Hypothesis profile xentbench's tests run under: ``--hypothesis-profile``, else
    ``$XENTBENCH_PROFILE``, else ``ci``."""
    return (config.getoption("hypothesis_profile", None)
            or os.environ.get("XENTBENCH_PROFILE", strategies.DEFAULT_PROFILE))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """A test of xentbench's in a foreign session (``pytest their_tests/ suites/``) still
    runs under xentbench's profile; the foreign tests keep theirs."""
    swap = not own_run(item.config) and is_own_item(item)
    previous = strategies.profile_name() if swap else None
    if swap:
        strategies.register_profiles()
        settings.load_profile(own_profile(item.config))
    try:
        yield
    finally:
        if swap and previous:
            settings.load_profile(previous)


def _new_session(config: pytest.Config) -> XentSession:
    device = resolve_device(config.getoption("device"))
    wanted = config.getoption("bench_passes") or passes.default_passes(device)
    timing = not (config.getoption("benchmark_disable", False)
                  or config.getoption("benchmark_skip", False) or config.option.collectonly)
    accuracy = (AccuracyLog(device=device, torch=torch.__version__)
                if config.getoption("accuracy_out") else None)
    seconds = config.getoption("bench_deadline")
    return XentSession(accuracy=accuracy, device=device,
                       passes=passes.PassLog(passes=wanted if timing else 1),
                       call_timeout=config.getoption("call_timeout") or CALL_TIMEOUT_S,
                       seed=_seed(config),
                       started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       deadline=time.monotonic() + seconds if seconds else None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``--bench-deadline``: a test not started in time is skipped, so the session ends by
    itself and pytest-benchmark saves what was timed (a killed session saves nothing)."""
    xent = session_of(item.config)
    if xent.past_deadline() and is_own_item(item):
        pytest.skip(f"deadline: not started within --bench-deadline "
                    f"{item.config.getoption('bench_deadline'):g} s of the session's start")


def resolve_device(choice: str) -> str:
    try:
        return options.resolve_device(choice)
    except options.DeviceError as exc:
        raise pytest.UsageError(str(exc)) from None


def _seed(config: pytest.Config) -> int | None:
    """``--hypothesis-seed`` as an int (Hypothesis takes any text: hashed to one)."""
    given = config.getoption("hypothesis_seed", None)
    if given is None:
        return None
    return int(given) if str(given).isdigit() else int.from_bytes(str(given).encode()[:8], "little")


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not own_run(config):
        return []
    device = resolve_device(config.getoption("device"))
    names = {f: [c.name for c in _contenders(config, f)] for f in FAMILIES}
    seed = _seed(config)
    draw = (f"cases drawn with --hypothesis-seed {seed}" if seed is not None else
            "cases drawn from each test's own seed" + (" (derandomized: the same on every run; "
                                                        "--hypothesis-seed N for another draw)"
                                                        if settings.default.derandomize else ""))
    return [f"xentbench: device={device}, torch {torch.__version__}, hypothesis profile "
            f"'{strategies.profile_name()}', {draw}",
            *(f"xentbench {f} contenders: {', '.join(n) or '-'}" for f, n in names.items())]


def _contenders(config: pytest.Config, family: str) -> list[registry.Contender]:
    """The family's contenders, narrowed by ``--only`` (exact names)."""
    try:
        found = registry.resolve(family, config.getoption(FAMILIES[family].option_dest))
    except ContenderError as exc:
        raise pytest.UsageError(str(exc)) from None
    return options.keep_only(found, config.getoption("only"))


def _check_only(config: pytest.Config) -> None:
    """``--only`` names that no family has are a usage error listing the known names."""
    known = [c.name for f in FAMILIES
             for c in registry.resolve(f, config.getoption(FAMILIES[f].option_dest))]
    try:
        options.check_only(config.getoption("only"), known)
    except options.UnknownContender as exc:
        raise pytest.UsageError(str(exc)) from None


def _check_cases(config: pytest.Config) -> None:
    """A ``--bench-cases`` set name or case id that cannot be read is a usage error (one
    line naming it), not a collection error of the benchmark suite."""
    try:
        case_sets.selected(config.getoption("bench_cases"), flag="--bench-cases")
    except CaseError as exc:
        raise pytest.UsageError(str(exc)) from None


# ---- parametrisation and collection ----------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_item" in metafunc.fixturenames:
        _parametrize_benchmarks(metafunc)
    for family in FAMILIES.values():
        if family.fixture in metafunc.fixturenames:
            found = _contenders(metafunc.config, family.name)
            if not found:  # e.g. --only NAME of the other family: deselected, not skipped
                metafunc.config.stash.setdefault(_NO_CONTENDER, set()).add(metafunc.definition.nodeid)
            metafunc.parametrize(family.fixture, found, ids=[c.name for c in found])


# node ids (without parameters) of tests whose family has no contender in this run
_NO_CONTENDER = pytest.StashKey[set]()


def _parametrize_benchmarks(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    device = resolve_device(config.getoption("device"))
    by_family = {f: _contenders(config, f) for f in FAMILIES}
    params, ids = [], []
    for case in bench_cases(config.getoption("bench_size"), device, config.getoption("bench_cases")):
        for contender in by_family[case.family]:
            for mode in MODES:
                params.append((case, contender, mode))
                ids.append(f"{case.id}-{contender.name}-{mode}")
    metafunc.parametrize("bench_item", params, ids=ids)


@pytest.hookimpl(trylast=True)  # after -k and -m deselected: only the selection is repeated
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if empty := config.stash.get(_NO_CONTENDER, set()):
        dropped = [i for i in items if i.nodeid.partition("[")[0] in empty]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [i for i in items if i.nodeid.partition("[")[0] not in empty]
    if spec := config.getoption("shard"):
        keep, dropped = shard.split(items, spec)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    items[:] = passes.scheduled(items, session_of(config).passes.passes, _is_timed_benchmark,
                                _another_pass)


def _another_pass(item: pytest.Function) -> pytest.Function:
    """The same test (same node id, parameters and fixtures) as a new item for a later pass."""
    return pytest.Function.from_parent(
        item.parent, name=item.name, callspec=getattr(item, "callspec", None), callobj=item.obj,
        fixtureinfo=item._fixtureinfo, keywords=item.keywords, originalname=item.originalname)


def _is_timed_benchmark(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return "bench_item" in names and "benchmark" in names


# ---- fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    return resolve_device(pytestconfig.getoption("device"))


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


@pytest.fixture(scope="session")
def peak_gbps(pytestconfig: pytest.Config, device: str) -> float:
    """The device's copy bandwidth, measured once per session (GB/s, 1e9 bytes)."""
    nbytes = (1 << 30) if device.startswith("cuda") else (256 << 20)
    say(pytestconfig, f"measuring {device} copy bandwidth ({nbytes >> 20} MiB), the peak behind "
                      "'% of peak'")
    moved, samples = copy_samples(device, nbytes)
    return moved / statistics.median(samples.seconds) / 1e9


@pytest.fixture(scope="session")
def bench_threads(pytestconfig: pytest.Config, device: str, xent: XentSession) -> int:
    """Intra-op threads the benchmarks run with, set once for the session (CPU): one by
    default, because a single thread degrades gracefully under a busy neighbour (measured:
    59 µs read 7,995 µs with two threads and two neighbours; 104 µs against 107 µs idle
    with one thread and one neighbour). 0 keeps torch's default."""
    wanted = pytestconfig.getoption("bench_threads")
    timing = not pytestconfig.getoption("benchmark_disable", False)
    if device == "cpu" and wanted and timing:  # a smoke run (--benchmark-disable) times nothing
        torch.set_num_threads(wanted)
    xent.threads = torch.get_num_threads()
    return xent.threads


@pytest.fixture(scope="session")
def timer_fidelity(pytestconfig: pytest.Config, device: str, xent: XentSession):
    """The run's timer self-check (`harness.benchmark.timing.fidelity_check`), once per
    benchmark session before the first benchmark, whatever ``-k`` selected; None when
    benchmarks are disabled. A failed check is kept in the JSON (``xentbench.fidelity``),
    marks the run unstable in `compare`, and warns."""
    if pytestconfig.getoption("benchmark_disable", False):
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
            "round_time": _round_time(pytestconfig),
            "timing": not pytestconfig.getoption("benchmark_disable", False)}


def _round_time(config: pytest.Config) -> float:
    """Seconds of timed rounds per benchmark in this process: the option, else the size's
    budget shared among the pooled processes."""
    given = config.getoption("bench_round_time")
    if given:
        return given
    k = processes.wanted(config, resolve_device(config.getoption("device")))
    return ROUND_TIME[config.getoption("bench_size")] / k


# ---- the end of the run ----------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session):
    """After the last pass, before pytest-benchmark saves or shows anything: one record per
    benchmark, its passes' rounds pooled; the unstable list comes from those records."""
    yield
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is None:
        return
    config = session.config
    own = {item.nodeid for item in session.items if is_own_item(item)}
    mine = [b for b in bs.benchmarks if b.fullname in own]
    if not mine:
        return  # a foreign project's benchmarks: pooled, re-timed and judged by nobody
    others = [b for b in bs.benchmarks if b.fullname not in own]
    bs.benchmarks[:] = passes.pool_passes(mine, session_of(config).passes) + others
    k = processes.wanted(config, resolve_device(config.getoption("device")))
    timed = list(dict.fromkeys(b.fullname for b in bs.benchmarks
                               if b.stats is not None and b.fullname in own))
    if (k > 1 and timed and not session.shouldstop and not session.shouldfail
            and not session_of(config).past_deadline()):
        xent = session_of(config)
        known = frozenset(f["name"] for f in xent.failures)
        outcome = processes.time_in_more_processes(config, bs.benchmarks, timed, k, _round_time(config),
                                                   lambda text: say(config, text), known)
        for problem in outcome.problems:
            xent.note(problem)
        xent.failures.extend(outcome.failures)  # their records are gone: never timed
        session.testsfailed += len(outcome.failures)  # and the run's exit status says so (1)
        if outcome.fidelity is not None and (xent.fidelity or {}).get("ok", True):
            xent.fidelity = outcome.fidelity
            xent.note(f"timer fidelity failed in process {outcome.fidelity['process']}: "
                      f"{outcome.fidelity.get('reason') or 'see its check'} (the run is unstable)")
    session_of(session.config).unstable[:] = [
        (b.fullname.split("::", 1)[-1], b.extra_info.get("unstable_reason") or "")
        for b in bs.benchmarks if b.extra_info.get("stable") is False]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Each process (xdist worker or not) writes its own accuracy file into the folder;
    `python -m harness report --accuracy DIR` merges them. A run whose every benchmark
    failed still writes its JSON (`save_untimed_run`)."""
    session_of(session.config).save_untimed_run(session.config)
    session_of(session.config).close_judges()
    out = session.config.getoption("accuracy_out", None)
    log = session_of(session.config).accuracy
    if log is None or not out or not log.cells:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    log.write(os.path.join(out, f"accuracy-{worker}.json"))


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """After pytest-benchmark's tables: the run's summaries (`harness.pytest_plugin.summary`)."""
    xent = session_of(config)
    contenders = [c for f in FAMILIES for c in _contenders(config, f)] if own_run(config) else []
    summary.write(terminalreporter, xent, contenders, resolve_device(config.getoption("device")),
                  search_defects=config.getoption("defects"))


# ---- pytest-benchmark's hooks: the machine and the JSON stamp --------------------------
def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    if not own_run(config):
        return
    machine_info["torch"] = torch.__version__
    machine_info["python_implementation"] = platform.python_implementation()
    machine_info["cpu_count"] = os.cpu_count()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        machine_info["gpu_name"] = props.name
        machine_info["gpu_memory_bytes"] = props.total_memory
        machine_info["gpu_count"] = torch.cuda.device_count()
        machine_info["cuda"] = torch.version.cuda
        machine_info["driver"] = _nvidia_driver()


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().strip()
    except OSError:
        return None


def pytest_benchmark_update_json(config, benchmarks, output_json: dict) -> None:
    if own_run(config):
        output_json["xentbench"] = session_of(config).stamp(config)
