"""Installing xentbench does not change another project's test run (issue 21): a foreign
project made in a temporary folder, with a plain pytest-benchmark test, a Hypothesis test
and a test of its own ``contender`` fixture, runs the same with xentbench's plugin loaded
(its ``pytest11`` entry point, as in any environment where xentbench is installed) as with
``-p no:harness.pytest_plugin``: one process, its own Hypothesis profile, its own JSON, no
Triton interpreter, its fixtures its own."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from harness.pytest_plugin.ownership import targets_own_suites
from harness.stages import stage_env

ROOT = Path(__file__).resolve().parents[2]

FOREIGN_TEST = '''
import json, os, sys
from pathlib import Path
import pytest
from hypothesis import given, settings, strategies as st

OUT = Path(__file__).with_name("seen.json")

@pytest.fixture
def contender():  # a name xentbench parametrizes its own suites by: this one stays theirs
    return "theirs"

def test_their_contender(contender):
    assert contender == "theirs"

def test_sum(benchmark):
    benchmark.pedantic(sum, args=(range(1000),), rounds=7, iterations=1)

@given(st.integers())
def test_integers(x):
    seen = {"profile": settings.get_current_profile_name(),
            "max_examples": settings.default.max_examples,
            "derandomize": settings.default.derandomize,
            "triton_interpret": os.environ.get("TRITON_INTERPRET"),
            "triton_imported": "triton" in sys.modules,
            "pid": os.getpid()}
    OUT.write_text(json.dumps(seen))
'''


def _entry_point_loaded() -> bool:
    eps = metadata.entry_points(group="pytest11")
    return any(ep.value == "harness.pytest_plugin" for ep in eps)


def _clean_env() -> dict[str, str]:
    """The environment without what this (xentbench's own) run set: its interpreter switch."""
    return {k: v for k, v in stage_env().items() if k != "TRITON_INTERPRET"}


def _run(project: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict, dict]:
    out, store = project / "bench.json", project / "store"
    for old in store.rglob("*.json"):
        old.unlink()
    done = subprocess.run([sys.executable, "-m", "pytest", str(project), "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", f"--benchmark-json={out}", "--benchmark-save=run",
                           f"--benchmark-storage=file://{store}", *extra],
                          cwd=project, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    [saved] = store.rglob("*.json")
    doc = {**json.loads(out.read_text()), "saved": json.loads(saved.read_text())}
    return done, doc, json.loads((project / "seen.json").read_text())


@pytest.mark.skipif(not _entry_point_loaded(), reason="xentbench is not installed here: its "
                    "pytest11 entry point is what loads the plugin into foreign projects")
def test_a_foreign_project_runs_as_if_xentbench_were_not_installed(tmp_path):
    project = tmp_path / "foreign"
    project.mkdir()
    (project / "test_foreign.py").write_text(FOREIGN_TEST)
    with_plugin, doc, seen = _run(project)
    _, doc_without, seen_without = _run(project, "-p", "no:harness.pytest_plugin")
    assert "xentbench" not in with_plugin.stdout
    assert "3 passed" in with_plugin.stdout, with_plugin.stdout[-2000:]  # test_their_contender once
    assert seen == {**seen_without, "pid": seen["pid"]}
    # Hypothesis's own profile: 'default', or its built-in 'ci' under CI=true (which
    # xentbench's 'ci' replaced, with 200 examples, until the profiles were registered
    # only for xentbench's runs)
    assert seen["profile"] in ("default", "ci") and seen["max_examples"] == 100
    assert seen["triton_interpret"] is None
    assert "xentbench" not in doc and "xentbench" not in doc["machine_info"]
    assert set(doc["machine_info"]) == set(doc_without["machine_info"])
    [bench], [bench_without] = doc["benchmarks"], doc_without["benchmarks"]
    # one process, its rounds as asked, raw rounds saved only where asked (not forced)
    assert bench["stats"]["rounds"] == bench_without["stats"]["rounds"] == 7
    assert len(bench["stats"]["data"]) == 7  # --benchmark-json always holds the rounds
    for run in (doc, doc_without):
        assert "data" not in run["saved"]["benchmarks"][0]["stats"]
        assert "xentbench" not in run["saved"]
    assert bench["extra_info"] == bench_without["extra_info"] == {}


@pytest.mark.parametrize(("args", "own"), [
    ([], True), (["suites/harness/test_case.py::test_x"], True), ([str(ROOT)], True),
    (["-q", "suites/contenders"], True), (["/tmp"], False), (["-k", "x"], True)])
def test_a_run_is_xentbenchs_when_it_targets_its_suites(args, own, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert targets_own_suites(args, ROOT) is own


def test_a_run_rooted_elsewhere_without_paths_is_foreign(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert targets_own_suites([], tmp_path) is False
