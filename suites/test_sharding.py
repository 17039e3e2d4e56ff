"""Sharding splits the benchmark matrix into disjoint, complete, stable parts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.pytest_plugin import parse_shard, shard_of

ROOT = Path(__file__).resolve().parent.parent


def _collect(*extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "suites/test_bench.py", "--collect-only", "-q",
           "-p", "no:cacheprovider", "-p", "no:xdist", *extra]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.fixture(scope="module")
def all_ids() -> list[str]:
    return _collect()


def test_shards_are_disjoint_and_cover_the_matrix(all_ids):
    total = 4
    parts = [{i for i in all_ids if shard_of(i, total) == k} for k in range(1, total + 1)]
    assert sum(len(p) for p in parts) == len(all_ids)
    assert set().union(*parts) == set(all_ids)
    assert all(parts), "a shard is empty: the hash does not spread the matrix"


def test_shard_option_selects_exactly_its_part(all_ids):
    chosen = _collect("--shard", "2/3")
    assert chosen == [i for i in all_ids if shard_of(i, 3) == 2]


def test_shards_are_stable_across_runs(all_ids):
    assert _collect() == all_ids
    assert [shard_of(i, 5) for i in all_ids] == [shard_of(i, 5) for i in all_ids]


@pytest.mark.parametrize("bad", ["3", "0/2", "3/2", "a/b"])
def test_bad_shard_spec_is_a_usage_error(bad):
    with pytest.raises(pytest.UsageError, match=r"I/K|1 <= I <= K"):
        parse_shard(bad)
