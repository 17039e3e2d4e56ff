"""Root conftest: the harness's pytest layer lives in a plugin module. Where xentbench is
not installed, this file loads it, too late for the plugin's own early hook: so Triton's
interpreter (no CUDA) is turned on here, before any test module imports Triton.

Also the checkout's test tiers for the benchmark suite's smoke run (``--benchmark-disable``,
`make test`): each compiled contender keeps its smallest case there, in both modes; its other
cases, an inductor compile each (4-12 s on 2 cores), are marked ``slow`` (`make test-slow`)."""

import math

import pytest

from harness.kernels import interpret_without_cuda

interpret_without_cuda()

pytest_plugins = ["harness.pytest_plugin"]


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("benchmark_disable", False):
        return  # timing runs: every benchmark is what it is
    compiled = [(item, *item.callspec.params["bench_item"]) for item in items
                if "bench_item" in getattr(getattr(item, "callspec", None), "params", {})]
    compiled = [(item, case, contender) for item, case, contender, _ in compiled
                if contender.compiled is not None]
    smallest: dict[str, str] = {}
    for _, case, contender in sorted(compiled, key=lambda c: math.prod(c[1].logits_shape)):
        smallest.setdefault(contender.name, case.id)
    for item, case, contender in compiled:
        if smallest[contender.name] != case.id:
            item.add_marker(pytest.mark.slow)
