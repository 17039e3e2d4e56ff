"""What the plugin does to the collection, for xentbench's tests only: parametrise them by
contender and benchmark (`harness.benchmark.selection`), deselect a test whose family has
no contender in the run, keep one shard (`shard`), repeat the timed benchmarks in passes
(`harness.benchmark.passes`)."""

from __future__ import annotations

import pytest

from harness.benchmark import passes, selection
from harness.benchmark.case_sets import MODES, bench_cases
from harness.problem.families import FAMILIES
from harness.pytest_plugin import shard
from harness.pytest_plugin.ownership import is_own_item
from harness.pytest_plugin.session import contenders_of, session_of

BENCH_FIXTURE = "bench_item"
# node ids (without parameters) of tests whose family has no contender in this run
_NO_CONTENDER = pytest.StashKey[set]()


def parametrize(metafunc: pytest.Metafunc) -> None:
    """A test of xentbench's: one call per benchmark item and per contender of each family
    fixture it asks for. A foreign test's fixtures, whatever their names, stay its own."""
    if not is_own_item(metafunc.definition):
        return
    config = metafunc.config
    if BENCH_FIXTURE in metafunc.fixturenames:
        _parametrize_benchmarks(metafunc)
    for family in FAMILIES.values():
        if family.fixture in metafunc.fixturenames:
            found = contenders_of(config, family.name)
            if not found:  # e.g. --only NAME of the other family: deselected, not skipped
                config.stash.setdefault(_NO_CONTENDER, set()).add(metafunc.definition.nodeid)
            metafunc.parametrize(family.fixture, found, ids=[c.name for c in found])


def _parametrize_benchmarks(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    cases = bench_cases(config.getoption("bench_size"), session_of(config).device,
                        config.getoption("bench_cases"))
    chosen = selection.benchmarks(cases, {f: contenders_of(config, f) for f in FAMILIES}, MODES)
    metafunc.parametrize(BENCH_FIXTURE, [(b.case, b.contender, b.mode) for b in chosen],
                         ids=[b.id for b in chosen])


def modify(config: pytest.Config, items: list[pytest.Item]) -> None:
    """After ``-k`` and ``-m``: drop the tests without a contender, keep the shard, repeat
    the timed benchmarks once per pass."""
    if empty := config.stash.get(_NO_CONTENDER, set()):
        _deselect(config, items, [i for i in items if i.nodeid.partition("[")[0] in empty])
    if spec := config.getoption("shard"):
        keep, dropped = shard.split(items, spec)
        _deselect(config, items, dropped)
        items[:] = keep
    items[:] = passes.scheduled(items, session_of(config).passes.passes, _is_timed_benchmark,
                                _another_pass)


def _deselect(config: pytest.Config, items: list[pytest.Item], dropped: list[pytest.Item]) -> None:
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(map(id, dropped))
        items[:] = [i for i in items if id(i) not in gone]


def _another_pass(item: pytest.Function) -> pytest.Function:
    """The same test (same node id, parameters and fixtures) as a new item for a later pass."""
    return pytest.Function.from_parent(
        item.parent, name=item.name, callspec=getattr(item, "callspec", None), callobj=item.obj,
        fixtureinfo=item._fixtureinfo, keywords=item.keywords, originalname=item.originalname)


def _is_timed_benchmark(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return BENCH_FIXTURE in names and "benchmark" in names and is_own_item(item)
