"""The pytest layer: options, fixtures, parametrisation by contender, and the run's
summary of how many generated cases each contender was checked on. The only module of
the harness that imports pytest."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import warnings
import zlib
from collections import defaultdict

import pytest
import torch
from hypothesis import settings

from harness.kernels import interpret_without_cuda

interpret_without_cuda()  # before the imports below: torch._dynamo imports Triton

from harness import contenders as registry  # noqa: E402
from harness import passes, strategies  # noqa: E402
from harness.contenders import ContenderError  # noqa: E402
from harness.timing import DEFAULT_THREADS  # noqa: E402

CASES_CHECKED = "xentbench_cases_checked"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xentbench")
    group.addoption("--contender", action="append", default=[], metavar="NAME=MODULE:ATTR",
                    help="add an external multi-class contender (F.cross_entropy signature); "
                         "repeatable")
    group.addoption("--binary-contender", action="append", default=[],
                    metavar="NAME=MODULE:ATTR",
                    help="add an external binary contender "
                         "(F.binary_cross_entropy_with_logits signature); repeatable")
    group.addoption("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="where contenders run (auto: cuda when available)")
    from harness.bench import CASE_SETS, SIZES

    group.addoption("--bench-size", default="small", choices=SIZES,
                    help="benchmark size preset: small keeps a 2-core CPU run to minutes")
    group.addoption("--bench-flush-l2", action="store_true",
                    help="flush the device cache before every timed round (CUDA)")
    group.addoption("--bench-cases", default="all", choices=CASE_SETS,
                    help="which benchmark cases: the named landmarks, the generated ones, or both")
    group.addoption("--bench-threads", type=_thread_count, default=DEFAULT_THREADS, metavar="N",
                    help="intra-op threads for CPU benchmarks (default 1: with more, a busy "
                         "neighbour process stalls OpenMP's barriers; 0 = torch's default)")
    group.addoption("--bench-passes", type=_pass_count, default=None, metavar="N",
                    help="time the selected benchmarks in N passes over the selection, one "
                         "block of rounds each, pooled per benchmark (default 4 on CPU, 1 on "
                         "CUDA: see harness/passes.py)")
    group.addoption("--bench-round-time", type=float, default=None,
                    help="target seconds of timed rounds per benchmark "
                         "(default 0.25 small, 1.0 full)")
    group.addoption("--accuracy-out", default=None, metavar="DIR",
                    help="record the largest errors against the oracle per contender, dtype "
                         "and logit-scale band into DIR/accuracy-<process>.json")
    group.addoption("--run-id", default=None, metavar="ID",
                    help="id shared by the shard files of one run, so that reports merge them "
                         "(default: $XENTBENCH_RUN_ID)")
    group.addoption("--shard", default=None, metavar="I/K",
                    help="run only shard I of K (1-based): a stable split of the collected "
                         "tests by node id, for one process per GPU or machine")


def _thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of threads, "
                                         "0 for torch's default") from None
    return value


def _pass_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of passes, 1 or more")
    return value


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config: pytest.Config) -> None:
    # Raw rounds always go into the JSON: compare's significance tests need them, and a
    # file without them used to turn an injected 3x slowdown into 'noisy'.
    if hasattr(config.option, "benchmark_save_data"):
        config.option.benchmark_save_data = True
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(os.environ.get("XENTBENCH_PROFILE", strategies.DEFAULT_PROFILE))
    config.addinivalue_line("markers", "cuda: needs a CUDA device")
    for family in registry.FAMILIES:
        _contenders(config, family)  # a bad --contender spec is a usage error, up front
    _start_accuracy_log(config)
    if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
        # n workers × n intra-op threads on n cores stall each other's OpenMP barriers
        # (a 10 µs op took 15 ms); one thread per worker. Timing never runs under xdist.
        torch.set_num_threads(1)


def profile_name() -> str:
    getter = getattr(settings, "get_current_profile_name", None)
    return getter() if getter else settings._current_profile  # older Hypothesis


def resolve_device(choice: str) -> str:
    from harness.execute import DeviceError
    from harness.execute import resolve_device as resolve

    try:
        return resolve(choice)
    except DeviceError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    device = resolve_device(config.getoption("device"))
    names = {f: [c.name for c in _contenders(config, f)] for f in registry.FAMILIES}
    return [f"xentbench: device={device}, torch {torch.__version__}, hypothesis profile "
            f"'{profile_name()}'",
            *(f"xentbench {f} contenders: {', '.join(n) or '-'}" for f, n in names.items())]


def _contenders(config: pytest.Config, family: str) -> list[registry.Contender]:
    option = "contender" if family == "multiclass" else "binary_contender"
    try:
        return registry.resolve(family, config.getoption(option))
    except ContenderError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_item" in metafunc.fixturenames:
        _parametrize_benchmarks(metafunc)
    for fixture, family in (("contender", "multiclass"), ("binary_contender", "binary")):
        if fixture in metafunc.fixturenames:
            found = _contenders(metafunc.config, family)
            metafunc.parametrize(fixture, found, ids=[c.name for c in found])


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    return resolve_device(pytestconfig.getoption("device"))


def example_budget(contender: registry.Contender) -> int | None:
    """Examples per property: the profile's, or the compiled budget for compiled ones."""
    if contender.compiled is None:
        return None
    return strategies.COMPILED_EXAMPLES.get(profile_name(),
                                            strategies.COMPILED_EXAMPLES["ci"])


@pytest.fixture
def count_case(request: pytest.FixtureRequest):
    """Call once per generated case actually checked, with the contender, case and
    verdicts: the count lands in the summary, the errors in the accuracy log."""
    counter = {"n": 0}

    def bump(contender=None, case=None, verdicts=None) -> None:
        counter["n"] += 1
        if _accuracy is not None and verdicts is not None:
            _accuracy.add(contender, case, verdicts)

    yield bump
    request.node.user_properties.append((CASES_CHECKED, counter["n"]))
    request.node.user_properties.append((COMPILE_STATS, _compile_snapshot()))


COMPILE_STATS = "xentbench_compile_stats"


def _compile_snapshot() -> list[tuple[str, str, int, int]]:
    """(process, contender, compiles, compiled calls) so far: counters live in the process
    that compiled, an xdist worker, and reach the summary through the test reports."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return [(worker, c.name, c.compiled.compiles, c.compiled.graph_runs)
            for c in registry.builtins() if c.compiled is not None and c.compiled.compiles]


_accuracy = None  # harness.accuracy.AccuracyLog when --accuracy-out is given


def check_property(contender: registry.Contender, prop: str, device: str, count_case) -> None:
    """Hypothesis over the cases a contender declares it handles: one property against the
    oracle. Shared by the multi-class and binary equivalence suites."""
    from hypothesis import given

    from harness.execute import repro_command, verify

    if why := contender.unavailable(device):
        pytest.skip(why)
    budget = example_budget(contender)
    chosen = settings(max_examples=budget) if budget else (lambda f: f)

    @chosen
    @given(case=strategies.cases(contender))
    def property_holds(case):
        verdict = verify(contender, case, device, (prop,))[prop]
        count_case(contender, case, {prop: verdict})
        assert verdict.ok, (
            f"{contender.name}: property '{prop}' fails on case {case.id}\n  {verdict.detail}\n"
            f"  reproduce: {repro_command(contender, case)}")

    property_holds()


def _start_accuracy_log(config: pytest.Config) -> None:
    global _accuracy
    if config.getoption("accuracy_out"):
        from harness.accuracy import AccuracyLog

        _accuracy = AccuracyLog(device=resolve_device(config.getoption("device")),
                                torch=torch.__version__)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Each process (xdist worker or not) writes its own accuracy file into the folder;
    `python -m harness report --accuracy DIR` merges them."""
    out = session.config.getoption("accuracy_out", None)
    if _accuracy is None or not out or not _accuracy.cells:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _accuracy.write(os.path.join(out, f"accuracy-{worker}.json"))


_counts: dict[str, int] = defaultdict(int)
_compiles: dict[tuple[str, str], tuple[int, int]] = {}  # latest per (process, contender)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for key, value in report.user_properties:
            if key == CASES_CHECKED:
                _counts[report.nodeid] += value
            elif key == COMPILE_STATS:
                for worker, name, compiles, runs in value:
                    _compiles[(worker, name)] = (compiles, runs)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """After pytest-benchmark's tables: the run ends with one warning naming every benchmark
    whose timing cannot be trusted, and why."""
    _cases_summary(terminalreporter)
    if not _unstable:
        return
    terminalreporter.section("xentbench: unstable benchmarks", yellow=True)
    for name, reason in _unstable:
        terminalreporter.write_line(f"{name}: {reason}")
    terminalreporter.write_line(
        f"WARNING: {len(_unstable)} benchmark(s) unstable: their medians may be wrong; "
        "rerun on a quiet machine (see README, 'Timing you can trust')", yellow=True, bold=True)


def _cases_summary(terminalreporter) -> None:
    if _bench_notes or _bench_failures:
        terminalreporter.section("xentbench: benchmark notes")
        for line in _bench_notes:
            terminalreporter.write_line(line)
        for f in _bench_failures:
            terminalreporter.write_line(f"FAILED {f['contender']} on {f['case_id']} {f['mode']}: "
                                        f"{f['error']}")
    if not _counts:
        return
    terminalreporter.section("xentbench: generated cases checked per test")
    for nodeid, n in sorted(_counts.items()):
        terminalreporter.write_line(f"{n:6d}  {nodeid.split('::', 1)[-1]}")
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (_, name), (compiles, runs) in _compiles.items():
        totals[name][0] += compiles
        totals[name][1] += max(compiles - 1, 0)
        totals[name][2] += runs
    processes = len({worker for worker, _ in _compiles})
    for name, (compiles, recompiles, runs) in sorted(totals.items()):
        terminalreporter.write_line(
            f"{name}: {compiles} compiles ({recompiles} recompiles), {runs} compiled calls, "
            f"in {processes} process(es) (a fallback to eager fails its test)")


# ---- sharding -------------------------------------------------------------------------
def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, total = (int(v) for v in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--shard {text!r}: write I/K with 1 <= I <= K, e.g. 2/4") from None
    if not 1 <= index <= total:
        raise pytest.UsageError(f"--shard {text!r}: need 1 <= I <= K")
    return index, total


def shard_of(nodeid: str, total: int) -> int:
    """1-based shard of a test: a hash of its node id, so the split does not depend on
    collection order or on which other tests exist."""
    return zlib.crc32(nodeid.encode()) % total + 1


@pytest.hookimpl(trylast=True)  # after -k and -m deselected: only the selection is repeated
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    spec = config.getoption("shard")
    if spec:
        index, total = parse_shard(spec)
        keep = [i for i in items if shard_of(i.nodeid, total) == index]
        dropped = [i for i in items if shard_of(i.nodeid, total) != index]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    log = pass_log(config)
    items[:] = passes.scheduled(items, log.passes, _is_timed_benchmark)


# ---- benchmarks -----------------------------------------------------------------------
_bench_notes: list[str] = []
_bench_failures: list[dict] = []
_unstable: list[tuple[str, str]] = []  # (benchmark, reason), from the pooled records
_PASS_LOG = pytest.StashKey[passes.PassLog]()


def _timing(config: pytest.Config) -> bool:
    return not (config.getoption("benchmark_disable", False)
                or config.getoption("benchmark_skip", False))


def pass_log(config: pytest.Config) -> passes.PassLog:
    """The session's `harness.passes.PassLog`: how many passes (1 when nothing is timed)
    and where each benchmark is."""
    if _PASS_LOG not in config.stash:
        wanted = config.getoption("bench_passes")
        if wanted is None:
            wanted = passes.default_passes(resolve_device(config.getoption("device")))
        config.stash[_PASS_LOG] = passes.PassLog(passes=wanted if _timing(config) else 1)
    return config.stash[_PASS_LOG]


def _is_timed_benchmark(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return "bench_item" in names and "benchmark" in names


@pytest.fixture
def bench_pass(request: pytest.FixtureRequest) -> tuple[int, passes.PassLog]:
    """(0-based pass of this call, the session's log) for a benchmark (`harness.passes`)."""
    log = pass_log(request.config)
    return log.start(request.node.nodeid), log


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session):
    """After the last pass, before pytest-benchmark saves or shows anything: one record per
    benchmark, its passes' rounds pooled; the unstable list comes from those records."""
    yield
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is None:
        return
    bs.benchmarks[:] = pool_passes(bs.benchmarks)
    _unstable[:] = [(b.fullname.split("::", 1)[-1], b.extra_info.get("unstable_reason") or "")
                    for b in bs.benchmarks if b.extra_info.get("stable") is False]


def pool_passes(benchmarks: list) -> list:
    """pytest-benchmark's records with one per benchmark: a benchmark timed in several
    passes keeps its first record, holding every pass's rounds in pass order."""
    from pytest_benchmark.stats import Stats

    groups: dict[str, list] = {}
    for record in benchmarks:
        groups.setdefault(record.fullname, []).append(record)
    pooled = []
    for records in groups.values():
        first = records[0]
        timed = [r for r in records if r.stats]
        if len(records) > 1 and timed:
            stats = Stats()
            stats.data = [x for r in timed for x in r.stats.data]
            info = passes.pooled_extra([r.extra_info for r in timed])
            info["passes"] = len(timed)
            first.stats = stats
            first.extra_info = passes.with_bandwidth(info, stats.median)
        pooled.append(first)
    return pooled
_run_state: dict = {}                  # threads, fidelity


def _parametrize_benchmarks(metafunc: pytest.Metafunc) -> None:
    from harness import bench

    config = metafunc.config
    device = resolve_device(config.getoption("device"))
    size = config.getoption("bench_size")
    by_family = {f: _contenders(config, f) for f in registry.FAMILIES}
    params, ids = [], []
    for case in bench.bench_cases(size, device, config.getoption("bench_cases")):
        for contender in by_family[case.family]:
            for mode in bench.MODES:
                params.append((case, contender, mode))
                ids.append(f"{case.id}-{contender.name}-{mode}")
    metafunc.parametrize("bench_item", params, ids=ids)


@pytest.fixture(scope="session")
def peak_gbps(device: str) -> float:
    """The device's copy bandwidth, measured once per session (GB/s, 1e9 bytes)."""
    from harness.timing import copy_samples

    nbytes = (1 << 30) if device.startswith("cuda") else (256 << 20)
    moved, samples = copy_samples(device, nbytes)
    return moved / statistics.median(samples.seconds) / 1e9


@pytest.fixture(scope="session")
def bench_threads(pytestconfig: pytest.Config, device: str) -> int:
    """Intra-op threads the benchmarks run with, set once for the session (CPU): one by
    default, because a single thread degrades gracefully under a busy neighbour (measured:
    59 µs read 7,995 µs with two threads and two neighbours; 104 µs against 107 µs idle
    with one thread and one neighbour). 0 keeps torch's default."""
    wanted = pytestconfig.getoption("bench_threads")
    timing = not pytestconfig.getoption("benchmark_disable", False)
    if device == "cpu" and wanted and timing:  # a smoke run (--benchmark-disable) times nothing
        torch.set_num_threads(wanted)
    _run_state["threads"] = torch.get_num_threads()
    return torch.get_num_threads()


@pytest.fixture(scope="session")
def timer_fidelity(pytestconfig: pytest.Config, device: str):
    """The run's timer self-check (`harness.timing.fidelity_check`), once per benchmark
    session before the first benchmark, whatever ``-k`` selected; None when benchmarks are
    disabled. A failed check is kept in the JSON (``xentbench.fidelity``), marks the run
    unstable in `compare`, and warns."""
    if pytestconfig.getoption("benchmark_disable", False):
        return None
    from harness.timing import fidelity_check

    check, method = fidelity_check(device)
    _run_state["fidelity"] = {**check.as_dict(), "independent_timer": method}
    line = (f"timer fidelity on {device}: wall / CPU time per call = {check.ratio:.3f}, off-CPU "
            f"{check.off_cpu:.0%}, harness / {method} = {check.agreement:.3f}: "
            + ("ok" if check.ok else f"FAILED ({check.reason})"))
    bench_note(line)
    if not check.ok:
        warnings.warn(f"{line}: this run's timings are not trustworthy", stacklevel=1)
    return check


@pytest.fixture(scope="session")
def bench_options(pytestconfig: pytest.Config) -> dict:
    size = pytestconfig.getoption("bench_size")
    round_time = pytestconfig.getoption("bench_round_time")
    return {"size": size, "flush": pytestconfig.getoption("bench_flush_l2"),
            "round_time": round_time if round_time else (0.25 if size == "small" else 1.0)}


def bench_note(text: str) -> None:
    """A line for the end-of-run summary (e.g. the timer fidelity ratio)."""
    _bench_notes.append(text)


def record_bench_failure(nodeid: str, contender: str, case_id: str, mode: str, error: str) -> None:
    _bench_failures.append({"name": nodeid, "contender": contender, "case_id": case_id,
                            "mode": mode, "error": error})


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
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
    from harness.results import machine_info_stamp

    run_id = config.getoption("run_id") or os.environ.get("XENTBENCH_RUN_ID")
    output_json["xentbench"] = {
        **machine_info_stamp(run_id, config.getoption("shard")),
        "bench_size": config.getoption("bench_size"),
        "device": resolve_device(config.getoption("device")),
        "failures": list(_bench_failures),
        "notes": list(_bench_notes),
        "threads": _run_state.get("threads", torch.get_num_threads()),
        "fidelity": _run_state.get("fidelity"),
        "unstable": len(_unstable),
    }
