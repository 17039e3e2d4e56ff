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

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch

L2_FLUSH_BYTES = 256 << 20


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


def copy_samples(device: str, nbytes: int, rounds: int = 10) -> tuple[int, Samples]:
    """Samples of a device-to-device copy of ``nbytes``; moved bytes are 2 × nbytes."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    samples = time_calls(lambda: dst.copy_(src), device, rounds=rounds, warmup=3)
    return 2 * src.numel() * 4, samples


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
