"""The Hypothesis profile xentbench's tests run under, registered only for its runs (a
foreign project keeps its own: `suites/harness/test_foreign.py`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import settings

from harness.problem import strategies


def own_profile(config: pytest.Config) -> str:
    """``--hypothesis-profile``, else ``$XENTBENCH_PROFILE``, else ``ci``."""
    return (config.getoption("hypothesis_profile", None)
            or os.environ.get("XENTBENCH_PROFILE", strategies.DEFAULT_PROFILE))


def load_own(config: pytest.Config) -> None:
    """In xentbench's run, before Hypothesis's configure reads ``--hypothesis-profile``."""
    strategies.register_profiles()
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(own_profile(config))


@contextmanager
def own_while(config: pytest.Config, swap: bool) -> Iterator[None]:
    """With ``swap`` (a test of xentbench's in a foreign session): xentbench's profile
    while it runs, the foreign one back after."""
    previous = strategies.profile_name() if swap else None
    if swap:
        strategies.register_profiles()
        settings.load_profile(own_profile(config))
    try:
        yield
    finally:
        if swap and previous:
            settings.load_profile(previous)
