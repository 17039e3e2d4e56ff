"""The ``bench`` command's job: run the benchmark suite under pytest and publish its JSON
atomically; a run that produced nothing leaves an existing file as it was."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from harness.atomic import atomic_path

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = (ROOT / "pyproject.toml").exists() and (ROOT / "suites").is_dir()


def suite_path() -> Path:
    """The benchmark suite: the checkout's, or the copy an installed wheel ships (the
    ``suites.contenders`` package beside ``harness``)."""
    if CHECKOUT:
        return ROOT / "suites" / "contenders" / "test_bench.py"
    spec = importlib.util.find_spec("suites.contenders.test_bench")
    if spec is None or spec.origin is None:
        raise NoResults(4)  # nothing to run: an install without the suites
    return Path(spec.origin)


def work_dir() -> Path:
    """Where pytest runs and runs are saved: the checkout, or the working directory of an
    installed harness."""
    return ROOT if CHECKOUT else Path.cwd()


def default_output() -> Path:
    """results/runs/<UTC time>-<machine>-<process id>.json under the working directory (the
    user's own project; the checkout when run from it, as `make bench` does): two runs
    started in the same second on one machine get two files."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    machine = re.sub(r"[^A-Za-z0-9_.-]+", "_", platform.node() or "machine")
    return Path.cwd() / "results" / "runs" / f"{stamp}-{machine}-{os.getpid()}.json"


def pytest_command(json_path: Path, flags: Sequence[str] = ()) -> list[str]:
    """The pytest command line timing the suite into ``json_path``, with ``flags`` (the
    harness's own options, then anything for pytest) appended."""
    return [sys.executable, "-m", "pytest", str(suite_path()),
            "--benchmark-only", f"--benchmark-json={json_path}", "--benchmark-save-data",
            "--benchmark-group-by=group", "--benchmark-sort=mean",
            "--benchmark-columns=min,median,iqr,rounds",
            "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", *flags]


class NoResults(Exception):
    """pytest produced nothing to publish; ``args[0]`` is its exit code."""


def _call(cmd: list[str]) -> int:
    """Run pytest and wait; SIGTERM to this process stops the child too (and then raises
    here, so the atomic writer removes its temporary file)."""
    return wait_or_stop(subprocess.Popen(cmd, cwd=work_dir(), env=_child_env()))


def wait_or_stop(child: subprocess.Popen) -> int:
    """Wait for ``child``; SIGTERM to this process, or Ctrl-C, stops it first and then
    raises here (a timed process left behind would load the machine for whatever runs
    next). The handler is only installed from the main thread, where signals arrive."""

    def stop(signum, frame):
        child.terminate()
        raise SystemExit(128 + signum)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        return child.wait()
    except BaseException:
        child.terminate()
        child.wait()
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _child_env() -> dict[str, str]:
    """The caller's environment, with the caller's working directory importable: pytest
    runs from the repository, but ``--contender mine=my_loss:f`` names the user's module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
    return env


def _run_once(flags: Sequence[str], path: Path) -> int:
    code = _call(pytest_command(path, flags))
    # 0: all passed; 1: some benchmarks failed (recorded in the JSON). Anything else (usage
    # error, nothing collected, interrupted) publishes nothing.
    if code not in (0, 1) or not path.exists() or path.stat().st_size == 0:
        raise NoResults(code)
    return code


def run_benchmarks(out: Path, flags: Sequence[str]) -> int:
    """Time the suite into ``out`` (atomically); pytest's exit code, 0 or 1 (some
    benchmarks failed, recorded in the JSON). Raises `NoResults` when nothing was written.
    Pooled processes (``--bench-processes``) are the plugin's
    (`harness.pytest_plugin.processes`)."""
    with atomic_path(out) as tmp:
        return _run_once(flags, tmp)
