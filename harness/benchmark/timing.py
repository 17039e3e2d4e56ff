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

import math
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
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


def reserve_flush_buffer(device: str) -> None:
    """Allocate the flush buffer now (CUDA): at a session's start, not in a benchmark."""
    if device.startswith("cuda"):
        _flush_buffer(device)


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
    events = ([(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
               for _ in range(rounds)] if cuda else [])
    for i in range(rounds):
        if setup:
            setup()
        if flush:
            flush_cache(device)
        if cuda:
            start, end = events[i]
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


# A round on CUDA should hold at least this much device time: one short kernel per event
# pair after a synchronisation times the host's launch latency (tens of µs) instead.
EVENT_ROUND_S = 200e-6
MAX_CALLS_PER_EVENT = 100
WARMUP_S = 0.1       # of the step, right before the rounds: an idle SM clock needs it to rise
LAUNCH_BOUND = 0.8   # host enqueue time / event time at or above which a round was launch-bound


def calls_per_event(once_s: float, round_s: float = EVENT_ROUND_S,
                    most: int = MAX_CALLS_PER_EVENT) -> int:
    """Back-to-back calls per CUDA-event pair so that a round holds ``round_s`` of work, as
    torch.utils.benchmark's blocks do: 1 for a call of ``round_s`` or more
    (`suites/harness/test_timing.py`)."""
    if not once_s > 0:
        return most
    return int(min(max(math.ceil(round_s / once_s), 1), most))


def warm_up(run: Callable[[], object], setup: Callable[[], object], device: str,
            seconds: float = WARMUP_S, least: int = 2) -> tuple[int, float]:
    """Call ``setup`` then ``run`` until ``seconds`` of them have passed (at least ``least``
    calls); (calls, seconds spent). By time, not by count: on CUDA the first calls after the
    CPU-side setup find the SM clock idling, and one call of a 50 µs loss does not raise it."""
    start = time.perf_counter()
    calls = 0
    while calls < least or time.perf_counter() - start < seconds:
        setup()
        run()
        calls += 1
    synchronize(device)
    return calls, time.perf_counter() - start


class EventRounds:
    """CUDA-event timing of each round, as triton.testing.do_bench does: an event is
    recorded before and after ``calls`` back-to-back calls on the stream, and the round ends
    by waiting for the second. The interval is the device's time from the first launch to
    the last kernel's end, without the host's synchronisation latency that a wall clock
    around ``synchronize()`` adds to every round; with several calls the host enqueues the
    next while the device runs the last, so a short kernel is not timed as its launch.
    Events come from a pool made before the rounds (`reserve`), not inside the timed call;
    the host's enqueue time per round is kept beside (`launch_bound`)."""

    METHOD = "cuda-events"

    def __init__(self, calls: int = 1) -> None:
        self.calls = calls
        self._pairs: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._pool: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._host: list[float] = []

    def reserve(self, rounds: int) -> None:
        """Make the event pairs of ``rounds`` rounds now, outside the timed calls."""
        self._pool += [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                       for _ in range(max(rounds - len(self._pool), 0))]

    def _pair(self) -> tuple[torch.cuda.Event, torch.cuda.Event]:
        if not self._pool:
            self.reserve(16)
        return self._pool.pop()

    def wrap(self, fn: Callable[[], object],
             between: Callable[[], object] | None = None) -> Callable[[], None]:
        """The timed round: ``calls`` calls of ``fn``, ``between`` (host-only, e.g. clearing
        a gradient) before each but the first."""

        def timed() -> None:
            start, end = self._pair()
            t0 = time.perf_counter()
            start.record()
            for i in range(self.calls):
                if i and between is not None:
                    between()
                fn()
            end.record()
            self._host.append(time.perf_counter() - t0)
            end.synchronize()
            self._pairs.append((start, end))
        return timed

    def seconds(self, last: int) -> list[float]:
        """Seconds per call of the last ``last`` rounds (the timed ones: warmup rounds come
        first)."""
        return ([s.elapsed_time(e) / 1e3 / self.calls for s, e in self._pairs[-last:]]
                if last else [])

    def host_seconds(self, last: int) -> list[float]:
        """The host's enqueue time per call of the last ``last`` rounds."""
        return [h / self.calls for h in self._host[-last:]] if last else []


def launch_bound(event_s: Sequence[float], host_s: Sequence[float],
                 share: float = LAUNCH_BOUND) -> bool:
    """Whether the host took nearly as long to enqueue a round as the device to run it: the
    device then waited on launches, and the time is the host's (`suites/harness/test_timing.py`)."""
    if not event_s or not host_s:
        return False
    return statistics.median(host_s) >= share * statistics.median(event_s)


def copy_samples(device: str, nbytes: int, rounds: int = 10) -> tuple[int, Samples]:
    """Samples of a device-to-device copy of ``nbytes``; moved bytes are 2 × nbytes."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    samples = time_calls(lambda: dst.copy_(src), device, rounds=rounds, warmup=3)
    return 2 * src.numel() * 4, samples


CEILING_BYTES = {"cuda": 1 << 30, "cpu": 32 << 20}  # the read's: past the caches; CPU: ms


def measure_ceilings(device: str, copy_gbps: float, nbytes: int | None = None,
                     rounds: int = 5) -> dict:
    """The device's copy and read ceilings, kept once per timing session in the run's JSON
    (``xentbench.ceilings``): the copy is the session's own (``copy_gbps``, the figure
    behind every record's '% of peak', so the headline's '% copy' and '% of peak' divide by
    one number); the read is GB/s (1e9 bytes) of the median of ``rounds`` timed ``x.sum()``
    over ``nbytes``. `report` divides each headline row's GB/s by ``copy_gbps``."""
    if nbytes is None:
        nbytes = CEILING_BYTES["cuda" if device.startswith("cuda") else "cpu"]
    x = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    reads = time_calls(lambda: x.sum(), device, rounds, warmup=2)
    return {"bytes": x.numel() * 4, "rounds": rounds, "copy_gbps": copy_gbps,
            "read_gbps": x.numel() * 4 / statistics.median(reads.seconds) / 1e9,
            "copy_model": "2 x bytes (read + write) / median copy_, the session's peak_gbps",
            "read_model": "bytes / median x.sum()"}


def fidelity_check(device: str, rounds: int = 400):
    """The run's timer self-check (`harness.benchmark.stability.fidelity`): F.cross_entropy on 256 ×
    1000 logits, single-threaded (CPU time equals wall time only for one thread), timed per
    call by perf_counter as pytest-benchmark's runner does, each call bracketed by the
    `RoundProbe`; then by an independent timer. Threads are restored afterwards."""
    import torch.nn.functional as F

    from harness.benchmark.stability import fidelity

    if device.startswith("cuda"):
        return cuda_fidelity(device)
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


COPY_CHECK_BYTES = 1 << 30  # four times the flush buffer, 17 times the H200's L2
COPY_AGREEMENT = 1.10       # the event rounds' copy bandwidth may exceed the reference by 10 %


def cuda_fidelity(device: str):
    """The timer self-check on CUDA, where CPU time says nothing (the host waits for the
    device): (1) F.cross_entropy on 256 × 1000 timed the way the benchmarks time it (event
    rounds of `calls_per_event` calls, L2 flushed, after `warm_up`) against
    triton.testing.do_bench (torch.utils.benchmark-style events per call where Triton is
    missing), within the agreement factor; (2) a 1 GiB device-to-device copy timed by event
    rounds, whose bytes over its time must not exceed the same copy's bandwidth by the
    reference timer (`copy_samples`) by more than `COPY_AGREEMENT`: a timer that drops part
    of the work reads as impossible bandwidth."""
    import torch.nn.functional as F

    from harness.benchmark.stability import Fidelity, fidelity

    logits = torch.randn(256, 1000, device=device)
    target = torch.randint(0, 1000, (256,), device=device)

    def step() -> None:
        F.cross_entropy(logits, target)

    median, _ = event_median(step, device)
    other, method = reference_median(step, device)
    check = fidelity(median, (), (), other)
    moved, reference = copy_samples(device, COPY_CHECK_BYTES)
    src = torch.empty(COPY_CHECK_BYTES // 4, device=device)
    dst = torch.empty_like(src)
    copy_s, _ = event_median(lambda: dst.copy_(src), device, flush=False)
    ratio = statistics.median(reference.seconds) / copy_s
    problems = [check.reason] if check.reason else []
    if not ratio <= COPY_AGREEMENT:
        problems.append(f"a 1 GiB copy timed by event rounds ran at {ratio:.2f}× the reference "
                        f"copy bandwidth ({moved / copy_s / 1e9:.0f} GB/s)")
    return Fidelity(check.ratio, check.off_cpu, check.agreement, not problems,
                    "; ".join(problems)), f"{method}; copy {ratio:.3f}× the reference"


def event_median(fn: Callable[[], object], device: str, rounds: int = 50,
                 flush: bool = True) -> tuple[float, int]:
    """Median seconds per call of ``fn`` timed as a CUDA benchmark is: warmed up by time,
    `calls_per_event` calls per event pair, the L2 flushed before each round; and the calls."""
    events = EventRounds()
    run = events.wrap(fn)

    def setup() -> None:
        if flush:
            flush_cache(device)
        synchronize(device)

    setup()
    run()
    events.calls = calls_per_event(events.seconds(1)[0])
    events.reserve(rounds)
    warm_up(run, setup, device)
    for _ in range(rounds):
        setup()
        run()
    return statistics.median(events.seconds(rounds)), events.calls


def reference_median(fn: Callable[[], object], device: str) -> tuple[float, str]:
    """triton.testing.do_bench's median (ms → s), or events per call without Triton."""
    try:
        from triton.testing import do_bench
    except ImportError:
        samples = time_calls(fn, device, rounds=100, warmup=10, flush=True)
        return statistics.median(samples.seconds), "cuda events per call (no Triton)"
    return do_bench(fn, warmup=25, rep=100, return_mode="median") / 1e3, "triton.testing.do_bench"


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
    """Bytes of tensor memory allocated at peak during ``fn`` above what was live before it.

    CUDA: the caching allocator's peak statistics. CPU: the same quantity from the
    allocations torch's CPU allocator reports to its profiler (`cpu_peak_allocated`). Not
    Linux's resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs): glibc
    serves a loss's temporaries from heap memory freed by earlier calls, so that mark read
    0 for most contenders on the seed's 16 MB case — a wrong number is worse than none."""
    if not device.startswith("cuda"):
        return cpu_peak_allocated(fn)
    synchronize(device)
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    synchronize(device)
    return max(torch.cuda.max_memory_allocated() - before, 0)


def cpu_peak_allocated(fn: Callable[[], object]) -> int:
    """The highest running sum of the tensor allocations (+) and frees (-) torch's CPU
    allocator reported while ``fn`` ran: what `torch.cuda.max_memory_allocated` minus the
    memory live before counts on CUDA, here from the profiler's ``[memory]`` events (each
    carries its signed size). A freed temporary counts while it lived; what ``fn`` leaves
    allocated (a gradient) counts too, as on CUDA. Memory outside torch's allocator (a
    library's own malloc) is not seen, nor is any on CUDA. The profiler's first start in a
    process took 3 s (its import), each later one under 1 ms, on the 2-core VM: measured
    once per benchmark, in its first pass, never inside a timed round."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    changes = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    live = peak = 0
    for _, nbytes in changes:
        live += nbytes
        peak = max(peak, live)
    return peak
