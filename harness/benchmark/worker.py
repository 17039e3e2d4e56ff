"""One side's timing process for ``python -m harness ab`` (`harness.benchmark.ab`).

The controller starts one worker per side and alternates them block by block: it asks
BASE's worker for a block of rounds of a benchmark, then HEAD's (in an order drawn afresh
for every block pair), so that the two halves of a pair are milliseconds apart and see
the same machine. While one worker times, the other waits on its pipe (no CPU).

The worker is started from the controller's copy of this file but imports the *side's*
harness (its directory comes first on ``sys.path``): the side's contenders, cases, inputs,
timed step and check against the oracle. The timing loop is this file's, the same for
both sides, and uses only the standard library and torch, so it also drives an older
revision's harness as long as that has `harness.benchmark.step.make_step`.

Protocol: one JSON object per line on stdin, one reply per line on the original stdout
(the worker's own prints go to stderr, which the controller logs). Ops: ``list``,
``prepare``, ``block``, ``quit``; every reply has ``ok`` and, when not ok, ``error``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path


def _runnable() -> int:
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return -1


def _machine_info(torch) -> dict:
    """What pytest-benchmark's JSON says of the machine, as the side's run would."""
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    info = pytest_benchmark_generate_machine_info()
    info.update(_beside("_xentbench_machine", Path(__file__).parents[1] / "machine.py").run_info(torch))
    return info


def _commit_info() -> dict:
    from pytest_benchmark.utils import get_commit_info

    try:
        return get_commit_info()
    except Exception as exc:  # not a git checkout: said, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"}


def _selection():
    """`harness.benchmark.selection` of the controller's checkout, loaded from beside this
    file: the ``harness`` on ``sys.path`` is the side's, which may predate that module."""
    return _beside("_xentbench_selection", Path(__file__).with_name("selection.py"))


def _beside(name: str, path: Path):
    """A module of the controller's checkout (`harness.benchmark.selection`,
    `harness.machine`), loaded from its file as ``name``: the side's ``harness`` may
    predate it."""
    import importlib.util

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _copier(case, device: str):
    """Fresh inputs for a block: on CUDA cloned from the side's cached device copy (making
    the seed's large case in float64 on the CPU took longer than its blocks), where the
    side's harness has `clone_inputs`; else made anew from the case, as every revision can."""
    from harness.problem.inputs import make_inputs

    if device.startswith("cuda"):
        try:
            from harness.benchmark.step import clone_inputs, inputs_for
        except ImportError:  # an older side
            pass
        else:
            return lambda: clone_inputs(inputs_for(case, device))
    return lambda: make_inputs(case, device)

class Worker:
    def __init__(self) -> None:
        self.items: dict[str, tuple] = {}
        # per prepared benchmark (two at once when one worker times both halves of a pair,
        # `ab --pair`): how to make a fresh step, and the last copies of its inputs, kept
        # so that the next copy lands elsewhere in memory
        self.fresh: dict[str, object] = {}
        self.alive: dict[str, list] = {}

    # ---- list: the side's benchmarks of the selection ----------------------------------
    def list(self, msg: dict) -> dict:
        import torch

        from harness import contenders as registry
        from harness.benchmark.case_sets import MODES, bench_cases
        from harness.problem.families import FAMILIES

        torch.set_num_threads(int(msg.get("threads") or torch.get_num_threads()))
        if msg.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
            # both sides' workers on one core: a side that the scheduler kept on the core a
            # neighbour uses would be slower for the whole run (measured: identical code
            # read 0.92-0.96x on every fwd_bwd beside a busy valgrind)
            os.sched_setaffinity(0, {int(msg["cpu"])})
        device = msg.get("device", "cpu")
        specs = {"multiclass": msg.get("contender") or [], "binary": msg.get("binary_contender") or []}
        by_family = {f: registry.resolve(f, specs.get(f, [])) for f in FAMILIES}
        cases = bench_cases(msg.get("size", "small"), device, msg.get("cases", "all"))
        selection = _selection()
        listed, skipped = [], {}
        for case, contender, mode, ident in selection.benchmarks(
                cases, by_family, MODES, msg.get("only") or [], msg.get("select")):
            if reason := selection.skip_reason(contender, case, device):
                skipped[ident] = reason
                continue
            self.items[ident] = (case, contender, mode, device)
            listed.append(ident)
        return {"ok": True, "benchmarks": listed, "skipped": skipped, "torch": torch.__version__,
                "threads": torch.get_num_threads(), "cores": os.cpu_count() or 1,
                "machine_info": _machine_info(torch), "commit_info": _commit_info(),
                "cpu": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}

    # ---- prepare: check once against the oracle, warm up, time one call ---------------
    def prepare(self, msg: dict) -> dict:
        from harness.benchmark.step import check_before_timing, make_step
        from harness.benchmark.traffic import min_bytes
        case, contender, mode, device = self.items[msg["id"]]
        known = {"case": case.fields(), "case_id": case.id, "contender": contender.name,
                 "family": contender.family, "mode": mode, "dtype": case.dtype, "device": device}
        try:  # the counting worker skips it: its side's timing worker has checked the same code
            verdicts = (check_before_timing(contender, case, mode, device, msg.get("timeout"))
                        if msg.get("check", True) else [])
        except Exception as exc:  # the contender raised: recorded, never timed
            return {**known, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        wrong = [f"{v.prop}: {v.detail}" for v in verdicts if not v.ok]
        if wrong:
            return {**known, "ok": False,
                    "error": "wrong against the oracle, not timed: " + "; ".join(wrong)}

        copies = _copier(case, device)

        def fresh():
            step = make_step(contender, copies(), mode, device)
            step.setup()
            step.run()  # first touch of the new copy, untimed
            return step

        if not msg.get("keep"):  # the benchmarks prepared before are done with
            self.fresh.clear()
            self.alive.clear()
        self.fresh[msg["id"]] = fresh
        step = fresh()
        for _ in range(int(msg.get("warmup", 3))):
            step.setup()
            step.run()
        step.setup()
        t0 = time.perf_counter()
        step.run()
        once = time.perf_counter() - t0
        self.alive[msg["id"]] = [step]
        return {**known, "ok": True, "once": once, "bytes": min_bytes(case, mode)}

    # ---- block: k rounds on a fresh copy of the inputs ---------------------------------
    def block(self, msg: dict) -> dict:
        ident = msg["id"]
        step = self.fresh[ident]() if msg.get("fresh", True) else self.alive[ident][-1]
        self.alive[ident] = [*self.alive[ident][-1:], step]
        wall, cpu, switches = [], [], []
        runnable = _runnable()
        for _ in range(int(msg["rounds"])):
            step.setup()
            s0 = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
            c0 = time.process_time()
            t0 = time.perf_counter()
            step.run()
            t1 = time.perf_counter()
            cpu.append(time.process_time() - c0)
            switches.append(resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - s0)
            wall.append(t1 - t0)
        events = getattr(step, "events", None)
        if events is not None:
            # CUDA: the events' device time replaces the wall clock (it holds the host's
            # synchronisation), and the host's CPU time says nothing about the device
            wall, cpu, switches = events.seconds(len(wall)), [], []
        return {"ok": True, "wall": wall, "cpu": cpu, "switches": switches,
                "runnable": [runnable, _runnable()]}

    # ---- count: instructions under callgrind (the worker runs under valgrind) ------------
    def count(self, msg: dict) -> dict:
        """``repeats`` dumps of callgrind's counts, each over ``number`` calls of the step,
        collection switched on around the calls only (torch's own CALLGRIND_TOGGLE_COLLECT
        client requests); the controller reads the dumps."""
        import torch

        if not torch._C._valgrind_supported_platform():
            return {"ok": False, "error": "this torch build has no valgrind client requests"}
        step = self.alive[msg["id"]][-1]
        for _ in range(2):  # warm under instrumentation: first-call paths are not the steady state
            step.setup()
            step.run()
        # a first dump after the instrumentation was switched on is not to be trusted (seen:
        # 2**64 / 5, a counter that went below zero): one call is dumped and thrown away
        step.setup()
        torch._C._valgrind_toggle()
        step.run()
        torch._C._valgrind_toggle_and_dump_stats()
        number = int(msg.get("number", 5))
        for _ in range(int(msg.get("repeats", 3))):
            for i in range(number):
                step.setup()
                torch._C._valgrind_toggle()
                step.run()
                if i + 1 < number:
                    torch._C._valgrind_toggle()
                else:
                    torch._C._valgrind_toggle_and_dump_stats()
        return {"ok": True, "number": number}


def serve(inp, out) -> None:
    worker = Worker()
    for line in inp:
        msg = json.loads(line)
        op = msg.get("op")
        if op == "quit":
            break
        try:
            reply = getattr(worker, op)(msg)
        except Exception as exc:  # reported to the controller; the worker goes on
            traceback.print_exc(file=sys.stderr)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    try:  # as the CLI does, before torch._dynamo imports Triton: interpreted kernels without CUDA
        from harness.kernels import interpret_without_cuda
        interpret_without_cuda()
    except ImportError:
        pass
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not break the protocol
    serve(sys.stdin, protocol)
