"""The pytest layer: options, fixtures, parametrisation by contender, and the run's
summary of how many generated cases each contender was checked on. The only module of
the harness that imports pytest."""

from __future__ import annotations

import os
from collections import defaultdict

import pytest
import torch
from hypothesis import settings

from harness import contenders as registry
from harness import strategies
from harness.contenders import ContenderError

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


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(os.environ.get("XENTBENCH_PROFILE", strategies.DEFAULT_PROFILE))
    config.addinivalue_line("markers", "cuda: needs a CUDA device")


def profile_name() -> str:
    getter = getattr(settings, "get_current_profile_name", None)
    return getter() if getter else settings._current_profile  # older Hypothesis


def resolve_device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda: torch.cuda.is_available() is False on this "
                                "machine; use --device cpu or auto")
    return choice


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
    """Call once per generated case actually checked; the total lands in the summary."""
    counter = {"n": 0}

    def bump() -> None:
        counter["n"] += 1

    yield bump
    request.node.user_properties.append((CASES_CHECKED, counter["n"]))


_counts: dict[str, int] = defaultdict(int)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for key, value in report.user_properties:
            if key == CASES_CHECKED:
                _counts[report.nodeid] += value


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _counts:
        return
    terminalreporter.section("xentbench: generated cases checked per test")
    for nodeid, n in sorted(_counts.items()):
        terminalreporter.write_line(f"{n:6d}  {nodeid.split('::', 1)[-1]}")
    stats = [c for c in registry.builtins() if c.compiled is not None]
    for c in stats:
        if c.compiled.compiles:
            terminalreporter.write_line(
                f"{c.name}: {c.compiled.compiles} compiles ({c.compiled.recompiles} recompiles), "
                f"{c.compiled.graph_runs} compiled calls in this process")
