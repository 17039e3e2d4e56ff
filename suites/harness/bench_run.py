"""What the harness's own tests make once per session and share (`conftest.py`'s fixtures):
the shared benchmark run, one real run in a child pytest for the tests that each read a
part of its output (pooled processes, a contender wrong only in an extra process,
stability fields, the deadline that leaves what was timed), a `bench` run whose every
benchmark fails (its JSON, the passes that skip it), and the benchmark suite's collection
for the sharding tests. Under xdist the first worker to need one makes it,
under a file lock, and the others read what it left (`once`). Not a test module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

IGNORES_WEIGHT = '''\
import torch.nn.functional as F


def fn(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Drops `weight`: right on every unweighted case, wrong on weighted ones."""
    return F.cross_entropy(input, target, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)
'''

WRONG_IN_EXTRA_PROCESSES = '''\
import os

import torch.nn.functional as F


def fn(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Right in the first process, twice the loss in the extra ones (a contender whose
    answer depends on the process: uninitialised memory, a race, an environment switch)."""
    loss = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)
    return loss * 2 if os.environ.get("XENTBENCH_POOL_PART") else loss
'''


@dataclass(frozen=True)
class BenchRun:
    """What the child pytest left: its exit code, its output (stdout and stderr), the JSON."""

    args: tuple[str, ...]
    returncode: int
    output: str
    doc: dict

    def show(self) -> str:
        return f"exit {self.returncode}; output tail:\n{self.output[-4000:]}"

    def record(self, contender: str) -> dict:
        [found] = [b for b in self.doc["benchmarks"] if b["extra_info"]["contender"] == contender]
        return found


PROCESSES, PASSES = 2, 2
SHARED_ARGS = (
    "suites/contenders/test_bench.py", "--benchmark-only", "-p", "no:cacheprovider", "-p", "no:xdist",
    "-q", "-rs", "-k", "n256-c1000 and fwd and not fwd_bwd and not compiled",
    "--only", "eager", "--only", "module", "--only", "flaky", "--contender", "flaky=flaky:fn",
    f"--bench-processes={PROCESSES}", f"--bench-passes={PASSES}", "--bench-threads=1",
    "--bench-round-time=0.02", "--bench-deadline=600")


def make_run(where: Path) -> BenchRun:
    """The classification landmark's forward, timed for eager and module and checked for a
    contender wrong only in the extra processes (flaky), in 2 pooled processes of 2 passes
    each, one thread, a deadline far away (about 25 s on an idle 2-core machine)."""
    (where / "flaky.py").write_text(WRONG_IN_EXTRA_PROCESSES)
    out = where / "run.json"
    # outside the outer run's xdist and harness variables: pytest-benchmark disables itself
    # when it sees xdist's, and the extra processes would think themselves extra
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "XENTBENCH_")) and k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(where), str(ROOT)])
    args = (*SHARED_ARGS, f"--benchmark-json={out}")
    proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600, check=False)
    assert out.exists(), proc.stdout[-4000:]
    return BenchRun(args, proc.returncode, proc.stdout, json.loads(out.read_text()))


def once(root: Path, name: str, make: Callable[[Path], Any]) -> Any:
    """``make(folder)`` once under ``root`` (the session's temporary folder, which every
    xdist worker of the session shares), its result kept as JSON: the first caller makes
    it under a lock, the others wait for it and read it back."""
    from filelock import FileLock

    where, done = root / name, root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if done.exists():
            return json.loads(done.read_text())
        where.mkdir(exist_ok=True)
        made = make(where)
        done.write_text(json.dumps(made))
        return made


def shared_run(root: Path) -> BenchRun:
    """`make_run` once per session (`once`)."""
    def make(where: Path) -> dict:
        run = make_run(where)
        return {"args": run.args, "returncode": run.returncode, "output": run.output, "doc": run.doc}

    saved = once(root, "shared_bench_run", make)
    return BenchRun(tuple(saved["args"]), saved["returncode"], saved["output"], saved["doc"])


FAILED_ARGS = ("-m", "harness", "bench", "--only", "wrong", "--contender", "wrong=wrongmod:fn",
               "--", "-k", "n8-c2-512x512 and fwd_bwd", "-rs")


def make_failed_bench(where: Path) -> dict:
    """``python -m harness bench`` on a contender that drops the class weights (wrong), on the
    seed's weighted landmark, its 4 default passes: it fails its check in pass 1, the later
    passes skip it, nothing is timed (about 14 s)."""
    (where / "wrongmod.py").write_text(IGNORES_WEIGHT)
    out = where / "run.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "XENTBENCH_")) and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(where)
    args = (*FAILED_ARGS[:7], "--out", str(out), *FAILED_ARGS[7:])
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    assert out.exists(), proc.stdout[-4000:]
    return {"args": args, "returncode": proc.returncode, "output": proc.stdout,
            "doc": json.loads(out.read_text()), "out": str(out)}
