"""Sharding splits the benchmark matrix into disjoint, complete, stable parts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.pytest_plugin.shard import parse_shard, shard_of

ROOT = Path(__file__).resolve().parents[2]


def _collect(*extra: str, hash_seed: str = "0") -> list[str]:
    """The benchmark suite's node ids as a child pytest collects them (each call a new
    process: ``hash_seed`` sets its PYTHONHASHSEED, so a shard drawn from Python's salted
    hash would move between two of them)."""
    cmd = [sys.executable, "-m", "pytest", "suites/contenders/test_bench.py", "--collect-only", "-q",
           "-p", "no:cacheprovider", "-p", "no:xdist", *extra]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                         check=True)
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.fixture(scope="module")
def all_ids(shared_collection) -> list[str]:
    """Every benchmark's node id (collected once per session, for every xdist worker)."""
    return shared_collection("bench_ids", lambda _: _collect(hash_seed="1"))


@pytest.fixture(scope="module")
def second_of_three(shared_collection) -> list[str]:
    """A real ``--shard 2/3`` collection, in another process than `all_ids`."""
    return shared_collection("bench_ids_2_of_3", lambda _: _collect("--shard", "2/3", hash_seed="2"))


def test_shards_are_disjoint_and_cover_the_matrix(all_ids, second_of_three):
    """Every test is in exactly one of three shards (each non-empty), and the option's
    part is that one (the other two parts are `shard_of`'s, as the option's is)."""
    parts = [[i for i in all_ids if shard_of(i, 3) == k] for k in (1, 2, 3)]
    assert all(parts), "a shard is empty: the hash does not spread the matrix"
    assert all(shard_of(i, 3) in (1, 2, 3) for i in all_ids)
    assert sum(len(p) for p in parts) == len(all_ids)
    assert sorted(i for p in parts for i in p) == sorted(all_ids)
    assert second_of_three == parts[1]


def test_shards_are_balanced(all_ids):
    """Each of three shards holds a fair share (a linear hash such as CRC32 put one case's
    contenders and modes, ids a few characters apart, into one shard)."""
    sizes = [sum(shard_of(i, 3) == k for i in all_ids) for k in (1, 2, 3)]
    assert len(set(all_ids)) == len(all_ids)  # collection lists each benchmark once
    assert min(sizes) >= 0.2 * len(all_ids), sizes


def test_shard_option_selects_exactly_its_part(all_ids, second_of_three):
    assert second_of_three == [i for i in all_ids if shard_of(i, 3) == 2]


def test_shards_are_stable_across_runs(all_ids, second_of_three):
    """Two processes with different hash seeds collect the same ids in the same order:
    the second process's shard is, id for id, what this one computes from the first's."""
    assert second_of_three and set(second_of_three) <= set(all_ids)
    assert [i for i in all_ids if i in set(second_of_three)] == second_of_three
    assert [shard_of(i, 3) for i in second_of_three] == [2] * len(second_of_three)


# two real benchmark processes (about 20 s): the slow tier. `make test` keeps the parts:
# the option's selection (the collections above) and the merge (test_load's shards).
@pytest.mark.slow
def test_shard_files_of_one_run_merge_into_one_run(tmp_path):
    """Two shard processes with one --run-id: `harness.analysis.load` reads them as one run."""
    from harness.analysis.load import load

    selection = "n256-c1000 and (eager or module) and not compiled"
    files = []
    for k in (1, 2):
        out = tmp_path / f"shard-{k}.json"
        cmd = [sys.executable, "-m", "pytest", "suites/contenders/test_bench.py", "--benchmark-only",
               "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-k", selection,
               f"--shard={k}/2", "--run-id=run-42", f"--benchmark-json={out}",
               "--benchmark-save-data", "--bench-round-time=0.02", "--bench-processes=1",
               "--bench-passes=1"]
        # Outside xdist's variables: pytest-benchmark disables itself when it sees them.
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("PYTEST_XDIST")}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        files.append(out)
    df = load(files)
    assert set(df["run_id"]) == {"run-42"}  # one run, named by --run-id
    assert len(df) == 4  # eager and module, fwd and fwd_bwd, split across the two files
    assert set(df["contender"]) == {"eager", "module"}


@pytest.mark.parametrize("bad", ["3", "0/2", "3/2", "a/b"])
def test_bad_shard_spec_is_a_usage_error(bad):
    with pytest.raises(pytest.UsageError, match=r"I/K|1 <= I <= K"):
        parse_shard(bad)
