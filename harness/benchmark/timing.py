"""Raw samples only: how one call is timed on each device, peak bandwidth, extra memory.

Nothing here computes a statistic. On CUDA a timed call is bracketed by synchronisation
(the setup synchronises, the target ends with a synchronise), so pytest-benchmark's wall
clock measures device time, not launch time; its calibration is bypassed by running a fixed
number of rounds of one iteration each (`pedantic`). Between rounds the setup can flush L2
by zeroing a buffer larger than the cache, as triton.testing.do_bench does.

`time_calls` is a second, self-contained timer (CUDA events per call on CUDA,
perf_counter on CPU): it measures the copy bandwidth and serves, with torch.utils.benchmark,
as the independent timer of the fidelity check.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import torch

from harness.benchmark.stability import Evidence

L2_FLUSH_BYTES = 256 << 20
# Intra-op threads of CPU benchmarks unless told otherwise: with two on a 2-core machine and
# two busy neighbours a 59 µs operation read 7,995 µs (OpenMP barriers waiting across time
# slices); with one it held (252 µs against 253 µs idle). docs/benchmarking.md, 'Timing you can trust'.
DEFAULT_THREADS = 1


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@cache
def _flush_buffer(device: str) -> torch.Tensor:
    return torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)


def flush_cache(device: str) -> None:
    """Evict the device cache between rounds (CUDA only: a CPU's caches are per core and
    an equivalent flush would cost more than the kernels timed)."""
    if device.startswith("cuda"):
        _flush_buffer(device).zero_()


@dataclass(frozen=True)
class Samples:
    """Seconds per call, in the order measured."""

    seconds: tuple[float, ...]
    method: str


def time_calls(fn: Callable[[], object], device: str, rounds: int, warmup: int = 2,
               setup: Callable[[], object] | None = None, flush: bool = False) -> Samples:
    """Time ``fn`` ``rounds`` times: CUDA events on CUDA, perf_counter on CPU."""
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    synchronize(device)
    out = []
    cuda = device.startswith("cuda")
    for _ in range(rounds):
        if setup:
            setup()
        if flush:
            flush_cache(device)
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return Samples(tuple(out), "cuda-events" if cuda else "perf_counter")


class EventRounds:
    """CUDA-event timing of each round, as triton.testing.do_bench does: an event is
    recorded before and after the call on the stream, and the round ends by waiting for
    the second. The interval is the device's time from the first launch to the last
    kernel's end, without the host's synchronisation latency that a wall clock around
    ``synchronize()`` adds to every round (tens of µs against kernels of tens of µs)."""

    METHOD = "cuda-events"

    def __init__(self) -> None:
        self._pairs: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def wrap(self, fn: Callable[[], object]) -> Callable[[], None]:
        def timed() -> None:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            self._pairs.append((start, end))
        return timed

    def seconds(self, last: int) -> list[float]:
        """Seconds of the last ``last`` rounds (the timed ones: warmup rounds come first)."""
        return [s.elapsed_time(e) / 1e3 for s, e in self._pairs[-last:]] if last else []


def copy_samples(device: str, nbytes: int, rounds: int = 10) -> tuple[int, Samples]:
    """Samples of a device-to-device copy of ``nbytes``; moved bytes are 2 × nbytes."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    samples = time_calls(lambda: dst.copy_(src), device, rounds=rounds, warmup=3)
    return 2 * src.numel() * 4, samples


def fidelity_check(device: str, rounds: int = 400):
    """The run's timer self-check (`harness.benchmark.stability.fidelity`): F.cross_entropy on 256 ×
    1000 logits, single-threaded (CPU time equals wall time only for one thread), timed per
    call by perf_counter as pytest-benchmark's runner does, each call bracketed by the
    `RoundProbe`; then by an independent timer. Threads are restored afterwards."""
    import torch.nn.functional as F

    from harness.benchmark.stability import fidelity

    logits = torch.randn(256, 1000, device=device)
    target = torch.randint(0, 1000, (256,), device=device)

    def step() -> None:
        F.cross_entropy(logits, target)
        synchronize(device)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probe, timed = RoundProbe(1), []
        probe.begin()
        for _ in range(rounds + 10):
            probe.start()
            t0 = time.perf_counter()
            step()
            timed.append(time.perf_counter() - t0)
            probe.stop()
        evidence = probe.evidence(rounds)
        other = independent_samples(step, device)
    finally:
        torch.set_num_threads(threads)
    on_cpu = device == "cpu"  # on CUDA the host waits for the device: CPU time says nothing
    median = float(sorted(timed[-rounds:])[rounds // 2])
    other_median = sorted(other.seconds)[len(other.seconds) // 2]
    return fidelity(median, evidence.wall if on_cpu else (), evidence.cpu if on_cpu else (),
                    other_median, evidence.runnable, evidence.cores), other.method


def independent_samples(fn: Callable[[], object], device: str) -> Samples:
    """An independent timer for the fidelity check: torch.utils.benchmark's
    blocked_autorange on CPU (it sizes blocks so timer overhead stays under 1e-4), CUDA
    events per call on CUDA."""
    if device.startswith("cuda"):
        return time_calls(fn, device, rounds=50, warmup=5)
    from torch.utils.benchmark import Timer

    # Timer defaults to one thread; time with the threads the harness itself uses.
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=0.5)
    per_call = [t / measurement.number_per_run for t in measurement.raw_times]
    return Samples(tuple(per_call), "torch.utils.benchmark.blocked_autorange")


# ---- what the rounds of a CPU benchmark were exposed to ----------------------------------
def runnable_tasks() -> int | None:
    """Tasks runnable on the machine right now (Linux's /proc/loadavg, 4th field, which
    counts the reader too); None where there is no such file."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass
class RoundProbe:
    """Brackets every round of a pytest-benchmark ``pedantic`` run (``start`` as the last
    thing of its setup, ``stop`` as its teardown, so both sit outside the timed region) with
    the wall clock, the process's CPU time (all threads), its involuntary context switches
    and the machine's runnable tasks: the evidence of `harness.benchmark.stability.judge`. Warmup
    rounds are probed too; `evidence` drops them."""

    threads: int
    _rows: list[tuple[float, float, int, int | None, float, float, int]] = field(default_factory=list)
    _open: tuple[float, float, int, int | None] | None = None
    _load_before: float | None = None

    def begin(self) -> None:
        self._rows.clear()
        self._load_before = load_average()

    def start(self) -> None:
        runnable = runnable_tasks()
        switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
        self._open = (time.perf_counter(), time.process_time(), switches, runnable)

    def stop(self, *_ignored: object) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
        if self._open is not None:
            self._rows.append((*self._open, wall, cpu, switches))
            self._open = None

    def evidence(self, timed_rounds: int) -> Evidence:
        rows = self._rows[-timed_rounds:] if timed_rounds else []
        runnable = [r[3] for r in rows]
        return Evidence(wall=tuple(r[4] - r[0] for r in rows), cpu=tuple(r[5] - r[1] for r in rows),
                        switches=tuple(r[6] - r[2] for r in rows),
                        runnable=tuple(runnable) if None not in runnable else (),
                        threads=self.threads, cores=os.cpu_count() or 1,
                        load_before=self._load_before, load_after=load_average())


# ---- memory -----------------------------------------------------------------------------
def peak_extra_memory(fn: Callable[[], object], device: str) -> int | None:
    """Bytes allocated at peak during ``fn`` above what was live before it.

    CUDA: the caching allocator's peak statistics (exact for tensor memory). CPU: None. We
    tried Linux's resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs):
    glibc serves a loss's temporaries from heap memory freed by earlier calls, so the mark
    read 0 for most contenders on the seed's 16 MB case — a wrong number is worse than
    none."""
    if not device.startswith("cuda"):
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    synchronize(device)
    return max(torch.cuda.max_memory_allocated() - before, 0)
