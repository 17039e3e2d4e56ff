"""The pytest layer's hooks, and only hooks: each asks whether the run or the test is
xentbench's (`ownership`) and hands the work to the module that does it. The run's state is
one `XentSession` on the config, built once in ``pytest_configure`` with the resolved
device and the contenders per family (`session`); the options are written once in
`harness.options`; the fixtures live in `fixtures`, the collection's parametrisation,
shards and passes in `collection`, the Hypothesis profile in `profiles`, extra processes in
`processes`, the end-of-run summaries in `summary`."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

from harness import options
from harness.kernels import interpret_without_cuda
from harness.problem import strategies
from harness.problem.families import FAMILIES
from harness.pytest_plugin import collection, processes, profiles, session, summary
from harness.pytest_plugin.ownership import OWN_RUN, is_own_item, targets_own_suites
from harness.pytest_plugin.session import SESSION, contenders_of, session_of

pytest_plugins = ("harness.pytest_plugin.fixtures",)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xentbench")
    options.add_contender_options(group.addoption)
    options.add_device_option(group.addoption)
    options.add_bench_options(group.addoption, prefix="bench-")
    options.add_pytest_options(group.addoption)
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
    config.stash[SESSION] = xent = session.build(config)
    config.pluginmanager.register(xent, "xentbench-session")  # its hook tallies the reports
    if not own_run(config):
        return  # a foreign project's session: its profile, its JSON, its processes
    # Raw rounds always go into the JSON: compare's significance tests need them, and a
    # file without them used to turn an injected 3x slowdown into 'noisy'.
    if hasattr(config.option, "benchmark_save_data"):
        config.option.benchmark_save_data = True
    profiles.load_own(config)  # before Hypothesis's configure loads --hypothesis-profile
    for family in FAMILIES:
        contenders_of(config, family)  # a bad --contender spec is a usage error, up front
    session.check_only(config)
    session.check_cases(config)
    if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
        # n workers × n intra-op threads on n cores stall each other's OpenMP barriers
        # (a 10 µs op took 15 ms); one thread per worker, and per process a test starts
        # (a child pytest, check, bench, ab: the environment carries it; four of
        # test_external's child pytest runs under -n 2 took 57 s with torch's default
        # threads in the children, 33 s with one). Timing never runs under xdist.
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """A test of xentbench's in a foreign session (``pytest their_tests/ suites/``) still
    runs under xentbench's profile; the foreign tests keep theirs."""
    with profiles.own_while(item.config, not own_run(item.config) and is_own_item(item)):
        yield


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``--bench-deadline``: a test not started in time is skipped, so the session ends by
    itself and pytest-benchmark saves what was timed (a killed session saves nothing)."""
    if session_of(item.config).past_deadline() and is_own_item(item):  # the cheap test first
        pytest.skip(f"deadline: not started within --bench-deadline "
                    f"{item.config.getoption('bench_deadline'):g} s of the session's start")


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not own_run(config):
        return []
    xent = session_of(config)
    draw = (f"cases drawn with --hypothesis-seed {xent.seed}" if xent.seed is not None else
            "cases drawn from each test's own seed" + (" (derandomized: the same on every run; "
                                                        "--hypothesis-seed N for another draw)"
                                                        if settings.default.derandomize else ""))
    return [f"xentbench: device={xent.device}, torch {torch.__version__}, hypothesis profile "
            f"'{strategies.profile_name()}', {draw}",
            *(f"xentbench {f} contenders: {', '.join(c.name for c in contenders_of(config, f)) or '-'}"
              for f in FAMILIES)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    collection.parametrize(metafunc)  # xentbench's tests only


@pytest.hookimpl(trylast=True)  # after -k and -m deselected: only the selection is repeated
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    collection.modify(config, items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session):
    """After the last pass, before pytest-benchmark saves or shows anything: xentbench's
    benchmarks pooled and timed in the extra processes (`processes.after_passes`)."""
    yield
    processes.after_passes(session, session_of(session.config))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Each process (xdist worker or not) writes its own accuracy file into the folder;
    `python -m harness report --accuracy DIR` merges them. A run whose every benchmark
    failed still writes its JSON (`save_untimed_run`)."""
    xent = session_of(session.config)
    xent.save_untimed_run(session.config)
    xent.close_judges()
    out = session.config.getoption("accuracy_out", None)
    if xent.accuracy is None or not out or not xent.accuracy.cells:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    xent.accuracy.write(os.path.join(out, f"accuracy-{worker}.json"))


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """After pytest-benchmark's tables: the run's summaries (`harness.pytest_plugin.summary`)."""
    xent = session_of(config)
    contenders = [c for f in FAMILIES for c in contenders_of(config, f)] if own_run(config) else []
    summary.write(terminalreporter, xent, contenders, xent.device,
                  search_defects=config.getoption("defects"))


# ---- pytest-benchmark's hooks: the machine and the JSON stamp --------------------------
def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    if own_run(config):
        session.add_machine_info(machine_info)


def pytest_benchmark_update_json(config, benchmarks, output_json: dict) -> None:
    if own_run(config):
        output_json["xentbench"] = session_of(config).stamp(config)
