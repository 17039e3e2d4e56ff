"""Fixtures shared by the harness's own test modules."""

from __future__ import annotations

import os

import pytest
from bench_run import BenchRun, make_failed_bench, once, shared_run


@pytest.fixture(scope="session")
def shared_bench_run(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    """One real benchmark run for the tests that read a part of it (`bench_run.make_run`),
    made once per session: under xdist, in the folder every worker's temporary folder is in."""
    return shared_run(_session_folder(tmp_path_factory))


@pytest.fixture(scope="session")
def failed_bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One `bench` run whose every benchmark fails (`bench_run.make_failed_bench`), made once
    per session: its args, returncode, output, JSON (doc) and the JSON's path (out)."""
    return once(_session_folder(tmp_path_factory), "failed_bench_run", make_failed_bench)


@pytest.fixture(scope="session")
def shared_collection(tmp_path_factory: pytest.TempPathFactory):
    """``make(folder)``'s result once per session, for every worker (`bench_run.once`)."""
    return lambda name, make: once(_session_folder(tmp_path_factory), name, make)


def _session_folder(tmp_path_factory: pytest.TempPathFactory):
    """The session's temporary folder: under xdist, the one every worker's folder is in."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
