"""Judging a contender without trusting it: each call under a limit that fits it, and an
untrusted contender (``--contender``, an entry point) in a worker process the harness
watches, so that a hang in native code, a segmentation fault, an ``abort()`` or an
allocation without bound ends that call, not the run.

* `call_limit`: the seconds one call may take, derived from the family's reference
  contender on the same case (`REFERENCE_FACTOR` × its time, at least `FLOOR_S`), plus
  `COMPILE_ALLOWANCE_S` on a compiled contender's first call per compile signature (and on
  an isolated contender's first call: imports, lazy initialisation, a JIT). ``--call-timeout`` replaces
  the derived limit.
* `InProcess`: the built-ins (and the harness's own tests), where isolation cannot matter:
  the call runs here under SIGALRM (`runner.time_limit`).
* `Isolated`: one worker per contender (``python -m harness.equivalence.worker``, a
  `harness.child.Child`), JSON lines over a pipe, restarted after a death; the worker's
  address space is capped (`memory_limit`, RLIMIT_AS, CPU only: CUDA reserves address
  space by the terabyte). A worker that does not answer within the limit (plus
  `KILL_MARGIN_S`) is killed.

Either judge answers a case with its verdicts or a `Failure`: ``hang``, ``crash`` (the
signal or exit code, the last lines the worker wrote), or ``not run`` (a case of a kind
that already hung or crashed: `kind_of`). Tests: ``suites/harness/test_isolation.py``."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from harness.child import Child, ChildStopped, ended
from harness.contenders import Contender
from harness.equivalence.properties import Verdict
from harness.equivalence.runner import CallTimeout, evaluate, judge_outcome, solve
from harness.problem.case import Case
from harness.problem.families import family
from harness.problem.inputs import make_inputs

FLOOR_S = 5.0               # the least a call may take: a first call allocates, warms caches
REFERENCE_FACTOR = 200.0    # × the reference's time on the same case
COMPILE_ALLOWANCE_S = 120.0  # a first compile on a 2-core CPU takes about a minute
KILL_MARGIN_S = 2.0          # past the limit, before a worker that did not stop itself is killed
WORKER_START_S = 120.0       # importing torch and the contender's module

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Failure:
    """A call that gave no verdict: ``kind`` is 'hang', 'crash' or 'not run'; ``detail``
    says how (the limit, the signal, the case that hung first)."""

    kind: str
    detail: str


def memory_limit() -> int:
    """Bytes of address space a CPU worker may take: half the machine's memory, at least
    4 GiB (importing torch takes about 1.5 GiB of it). ``XENTBENCH_WORKER_MEMORY`` (GiB)
    overrides."""
    if given := os.environ.get("XENTBENCH_WORKER_MEMORY"):
        return int(float(given) * (1 << 30))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 16 << 30
    return max(4 << 30, total // 2)


def is_untrusted(contender: Contender) -> bool:
    """Whether ``contender`` is the user's code (``--contender``, an entry point): it is
    judged in a worker process. Built-ins and the ecosystem's losses run in process."""
    return contender.source.startswith(("external ", "entry point "))


def reference_seconds(case: Case, device: str) -> float:
    """The family's reference contender's wall time on ``case`` (forward and backward)."""
    from harness import contenders as registry

    reference = registry.get(family(case.family).reference)
    inputs = make_inputs(case, device)
    started = time.perf_counter()
    evaluate(reference, inputs, timeout=None)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def call_limit(case: Case, device: str, *, first_compile: bool, given: float | None) -> float:
    """Seconds one call may take: ``given`` (``--call-timeout``) when set, as it is; else
    derived from the reference on the same case, and a first compile gets
    `COMPILE_ALLOWANCE_S` more."""
    if given is not None:
        return given
    if _elements(case) < SMALL_ELEMENTS:  # the reference takes milliseconds: the floor
        base = FLOOR_S
    else:
        base = max(FLOOR_S, REFERENCE_FACTOR * reference_seconds(case, device))
    return base + (COMPILE_ALLOWANCE_S if first_compile else 0.0)


SMALL_ELEMENTS = 1 << 18  # logits elements below which the reference is not timed


def _elements(case: Case) -> int:
    return math.prod(case.logits_shape)


def kind_of(case: Case, completed: list[Case]) -> tuple[str, ...]:
    """The kind of case that hung or crashed, as far as the cases that came back tell: the
    capabilities' kinds of case (`defects.KIND_FEATURES`) of ``case`` that none of
    ``completed`` has. Later cases with every one of them are not called (empty: nothing
    singles it out). Not every dimension's values: "class weights 'balanced'" would split
    one abort on class weights into a class per weight scheme."""
    from harness.equivalence.defects import KIND_FEATURES as FEATURES

    return tuple(name for name, test in FEATURES.items()
                 if test(case) and not any(test(c) for c in completed))


def of_kind(case: Case, kind: tuple[str, ...]) -> bool:
    from harness.equivalence.defects import KIND_FEATURES as FEATURES

    return bool(kind) and all(FEATURES[name](case) for name in kind)


class InProcess:
    """Calls the contender here, under SIGALRM: for code the harness trusts."""

    def __init__(self, contender: Contender, device: str):
        self.contender, self.device = contender, device

    def verdicts(self, case: Case, props: tuple[str, ...], limit: float) -> dict[str, Verdict] | Failure:
        inputs = make_inputs(case, self.device)
        truth = solve(inputs)
        outcome = evaluate(self.contender, inputs, timeout=limit)
        if outcome.error and outcome.error.startswith(CallTimeout.__name__):
            return Failure("hang", f"no answer within {limit:.1f} s")
        return judge_outcome(self.contender, inputs, truth, outcome, props)

    def close(self) -> None:
        pass


class Isolated:
    """One worker process for one contender (a `Child`), started on first use and again
    after it died."""

    def __init__(self, contender: Contender, device: str):
        self.contender, self.device = contender, device
        self.child: Child | None = None
        self.up = False    # started and answering; a death or a kill makes it start again
        self.fresh = True  # no call made yet: the contender's first gets the compile allowance

    # ---- the worker ----------------------------------------------------------------
    def _spec(self) -> dict:
        c = self.contender
        target = c.source.removeprefix("external ") if c.source.startswith("external ") else None
        return {"name": c.name, "family": c.family, "target": target, "device": self.device,
                "memory": memory_limit() if self.device == "cpu" else None}

    def _child(self) -> Child:
        fd, log = tempfile.mkstemp(prefix=f"xentbench-worker-{self.contender.name}-", suffix=".log")
        os.close(fd)
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.getcwd(), os.environ.get("PYTHONPATH", "")) if p)}
        # its own process group: a Ctrl-C reaches the harness, which stops the worker
        return Child([sys.executable, "-m", "harness.equivalence.worker", json.dumps(self._spec())],
                     Path(log), env=env)

    def _start(self) -> Failure | None:
        if self.child is None:
            self.child = self._child()
        self.child.start()
        self.up = True
        reply = self._reply(None, WORKER_START_S, "starting its worker")
        if isinstance(reply, Failure):
            return reply
        if not reply.get("ok"):
            self.child.kill()
            self.up = False
            return Failure("crash", f"its worker could not load it: {reply.get('error')}")
        return None

    def _reply(self, msg: dict | None, limit: float, doing: str) -> dict | Failure:
        """The worker's reply (to ``msg``, or its greeting) within ``limit`` seconds, or how
        it failed."""
        assert self.child is not None
        try:
            if msg is None:
                return self.child.receive(limit)
            return self.child.request(msg, limit)
        except ChildStopped as stopped:
            self.up = False
            if stopped.hung:
                return Failure("hang", f"no answer within {limit:.1f} s ({doing}; the worker was killed)")
            return _crash(stopped)

    # ---- the calls --------------------------------------------------------------------
    def verdicts(self, case: Case, props: tuple[str, ...], limit: float,
                 backward: bool = True) -> dict[str, Verdict] | Failure:
        if not self.up and (failed := self._start()):
            return failed
        self.fresh = False
        reply = self._reply({"op": "verify", "case": case.id, "props": list(props), "timeout": limit,
                             "backward": backward}, limit + KILL_MARGIN_S, f"on case {case.id}")
        if isinstance(reply, Failure):
            return reply
        if reply.get("hang"):
            return Failure("hang", f"no answer within {limit:.1f} s")
        if reply.get("oom"):
            return Failure("out of memory", f"stopped by the worker's memory limit "
                           f"({memory_limit() / (1 << 30):.0f} GiB): {reply['oom']}")
        if not reply.get("ok"):
            return Failure("crash", f"the worker failed: {reply.get('error')}")
        return {p: Verdict(**v) for p, v in reply["verdicts"].items()}

    def close(self) -> None:
        if self.child is not None:
            self.child.close({"op": "quit"}, wait_s=5)
            self.child.log.unlink(missing_ok=True)


def _crash(stopped: ChildStopped) -> Failure:
    """A worker that died: its signal or exit code and its last words."""
    how = ended(stopped.code)
    if stopped.code == -signal.SIGKILL:  # the kernel's OOM killer (the harness kills only on a hang)
        how += f" (out of memory? the worker's limit is {memory_limit() / (1 << 30):.0f} GiB)"
    return Failure("crash", how + (f"; its last words: {stopped.tail}" if stopped.tail else ""))


def judge_for(contender: Contender, device: str) -> InProcess | Isolated:
    return Isolated(contender, device) if is_untrusted(contender) else InProcess(contender, device)


def verdict_dicts(verdicts: dict[str, Verdict]) -> dict[str, dict]:
    return {p: asdict(v) for p, v in verdicts.items()}
