"""Instruction counts beside wall time (``python -m harness ab --instructions``).

Callgrind (valgrind) executes the program on a simulated CPU and counts the instructions
it runs: the same binary on the same inputs gives the same count whatever else the
machine is doing (measured here: 21,648,054 and 21,648,650 instructions for ten
``F.cross_entropy`` calls on 256 × 1000, idle and beside two busy loops). So a count is a
deterministic second opinion on a wall-time verdict, as CodSpeed uses it; it cannot see
what the memory does (cache misses, bandwidth, page faults), so on a memory-bound loss
the two can disagree, and the gate stays with wall time (`harness.analysis.ab_verdicts`).

How: one more worker per side (`harness.benchmark.worker`) runs under
``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no``, so importing torch
costs about 25 s instead of minutes; ``callgrind_control -i on`` switches the
instrumentation on once a benchmark's inputs are made (and off after it), and the worker toggles the
collection around each timed call with torch's own client requests
(``torch._C._valgrind_toggle``), dumping once per repeat. The two sides count at the same
time (two cores; counts do not depend on load). Costs are in docs/benchmarking.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from harness.benchmark.ab import SIDES, Side, WorkerDied, WorkerProcess

TOTALS = re.compile(r"^(?:totals|summary):\s+(\d+)", re.M)


def unavailable() -> str | None:
    """Why instructions cannot be counted here, or None."""
    if not sys.platform.startswith("linux"):
        return f"callgrind counting needs Linux, not {sys.platform}"
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install valgrind; scripts/install_valgrind.sh)"
    return None


def _instrument(worker: WorkerProcess, state: str) -> str | None:
    """Switch callgrind's instrumentation of the worker on or off; why not, or None."""
    done = subprocess.run(["callgrind_control", "-i", state, str(worker.pid)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else f"callgrind_control failed: {done.stderr.strip()[-200:]}"


def _dumps(folder: Path) -> list[Path]:
    """Callgrind's dump files in the order written (cg.out.1, cg.out.2, ...)."""
    found = [p for p in folder.glob("cg.out.*") if p.suffix[1:].isdigit()]
    return sorted(found, key=lambda p: int(p.suffix[1:]))


def total(path: Path) -> int:
    match = TOTALS.search(path.read_text(errors="replace"))
    if match is None:
        raise ValueError(f"{path}: no totals line (not a callgrind dump)")
    return int(match.group(1))


def count_side(side: Side, idents: dict[str, str], selection: dict, out_dir: Path, caller_dir: Path,
               number: int = 5, repeats: int = 3) -> dict[str, list[float] | str]:
    """Instructions per call of each benchmark (``idents``: row key -> this side's benchmark
    id), one value per repeat, or the reason it was not counted."""
    # absolute: valgrind runs in the side's directory (seen: a relative --out put the dumps
    # under the BASE worktree, where valgrind could not open them)
    folder = Path(tempfile.mkdtemp(prefix=f"xentbench-cg-{side.label.lower()}-", dir=out_dir)).resolve()
    prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
              f"--callgrind-out-file={folder / 'cg.out'}"]
    out: dict[str, list[float] | str] = {}
    try:
        # string hashing seeded alike on both sides: counts then agree to the instruction
        worker = WorkerProcess(side, out_dir / f"{side.label.lower()}-callgrind.log", caller_dir, prefix,
                               env={"PYTHONHASHSEED": "0"})
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return dict.fromkeys(idents, f"cannot start valgrind: {exc}")
    try:
        listed = worker.call(op="list", **selection)
        if not listed.get("ok"):
            return dict.fromkeys(idents, f"not listed: {listed.get('error')}")
        for key, ident in idents.items():
            ready = worker.call(op="prepare", id=ident, check=False, warmup=1)
            if ready.get("ok") and (why := _instrument(worker, "on")):
                return {**out, **{k: why for k in idents if k not in out}}
            counted = worker.call(op="count", id=ident, number=number, repeats=repeats) if ready.get("ok") \
                else ready
            _instrument(worker, "off")  # making the next inputs runs at full speed
            if not counted.get("ok"):
                out[key] = str(counted.get("error"))
                continue
            dumps = _dumps(folder)[-repeats:]
            out[key] = [total(p) / number for p in dumps]
            for p in _dumps(folder):
                p.unlink()
    except WorkerDied as exc:
        out.update({k: str(exc) for k in idents if k not in out})
    finally:
        worker.close()
        shutil.rmtree(folder, ignore_errors=True)
    return out


Counted = dict[str, list[float] | str]  # benchmark -> instructions per call per repeat, or why not


def count_both(sides: dict[str, Side], idents: dict[str, dict[str, str]], selection: dict, out_dir: Path,
               caller_dir: Path, say: Callable[[str], None] = print) -> dict[str, Counted]:
    """`count_side` for both sides at once, one thread each."""
    results: dict[str, dict] = {}

    def run(label: str) -> None:
        try:
            results[label] = count_side(sides[label], idents[label], selection, out_dir, caller_dir)
        except Exception as exc:  # said per benchmark; the wall-time verdicts stand
            results[label] = dict.fromkeys(idents[label], f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(label,)) for label in SIDES]
    say(f"xentbench ab: counting instructions under callgrind, both sides at once "
        f"({len(idents['BASE'])} benchmarks; about 30 s to start, then seconds each)")
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
