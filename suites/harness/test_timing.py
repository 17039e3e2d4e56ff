"""The CUDA timing choices that can be proven without a GPU (`harness.benchmark.timing`):
how many calls share an event pair, when a round counts as launch-bound, warm-up by time,
and replicate inputs cloned with their strides (`harness.benchmark.step.clone_inputs`)."""

from __future__ import annotations

import time

import pytest
import torch

from harness.benchmark import timing
from harness.benchmark.step import clone_inputs
from harness.problem.case import Case
from harness.problem.inputs import make_inputs


@pytest.mark.parametrize(("once_s", "calls"), [
    (1e-3, 1), (200e-6, 1), (199e-6, 2), (50e-6, 4), (3e-6, 67), (1e-7, 100), (0.0, 100)])
def test_short_calls_share_an_event_pair_until_a_round_holds_200_us(once_s, calls):
    assert timing.calls_per_event(once_s) == calls


def test_a_round_whose_enqueue_took_as_long_as_the_device_is_launch_bound():
    device = [10e-6] * 9
    assert timing.launch_bound(device, [9e-6] * 9)          # 0.9 of the device time
    assert not timing.launch_bound(device, [2e-6] * 9)      # the host ran ahead
    assert not timing.launch_bound([], [])


def test_warm_up_runs_for_its_time_not_a_count():
    calls = []
    start = time.perf_counter()
    n, spent = timing.warm_up(lambda: time.sleep(0.01), lambda: calls.append(1), "cpu",
                              seconds=0.1)
    assert spent >= 0.1 and time.perf_counter() - start >= 0.1
    assert n == len(calls) and 5 <= n <= 11
    n, _ = timing.warm_up(lambda: None, lambda: None, "cpu", seconds=0.0)
    assert n == 2  # at least two calls, however short the time


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_a_replicate_is_a_copy_in_new_memory_with_the_same_strides(layout):
    case = Case(n=2, c=3, spatial=(4, 5), p=0.2, layout=layout, weights="inverse_freq")
    original = make_inputs(case)
    copy = clone_inputs(original)
    for name in ("logits", "target", "weight", "grad_out"):
        a, b = getattr(original, name), getattr(copy, name)
        assert torch.equal(a, b) and a.stride() == b.stride(), name
        assert a.data_ptr() != b.data_ptr(), name
    assert copy.case == original.case


def test_the_flush_buffer_outsizes_the_largest_l2_it_must_evict():
    assert timing.L2_FLUSH_BYTES >= 4 * 60 * 10**6  # the H200's 60 MB, four times over


class _FakeEvent:
    """A CUDA event stand-in: records the host clock, so the event rounds' arithmetic
    (per-call seconds, the pool, the host's enqueue time) is exercised on CPU."""

    made = 0

    def __init__(self, enable_timing: bool = False) -> None:
        type(self).made += 1
        self.at: float | None = None

    def record(self) -> None:
        self.at = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _FakeEvent) -> float:
        return (end.at - self.at) * 1e3  # milliseconds, as CUDA's


def test_event_rounds_time_k_calls_per_pair_and_report_seconds_per_call(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    _FakeEvent.made = 0
    events = timing.EventRounds(calls=4)
    events.reserve(3)
    made_before = _FakeEvent.made
    calls, cleared = [], []
    run = events.wrap(lambda: (calls.append(1), time.sleep(0.002)), between=lambda: cleared.append(1))
    for _ in range(3):
        run()
    assert _FakeEvent.made == made_before == 6  # no event made inside the timed calls
    assert len(calls) == 12 and len(cleared) == 9  # `between` before each call but the first
    per_call = events.seconds(3)
    assert len(per_call) == 3 and all(0.0019 < s < 0.02 for s in per_call)
    host = events.host_seconds(3)
    assert all(h >= s * 0.9 for h, s in zip(host, per_call, strict=True))  # sleeping is host time
    assert timing.launch_bound(per_call, host)
    run()  # past the pool: more pairs are made rather than failing
    assert len(events.seconds(10)) == 4


def test_cpu_peak_memory_counts_a_freed_temporary_and_what_is_left():
    """What CUDA's allocator statistics count, on CPU through the profiler's allocation
    events: an 8 MB temporary freed inside the call counts while it lived, with the 4 MB the
    call leaves allocated; nothing allocated reads 0, not None."""
    kept = []

    def call():
        temporary = torch.empty(2 << 20)  # 8 MiB of float32
        kept.append(torch.empty(1 << 20))  # 4 MiB, still allocated after the call
        del temporary

    assert timing.peak_extra_memory(call, "cpu") == 12 << 20
    assert timing.peak_extra_memory(lambda: None, "cpu") == 0
