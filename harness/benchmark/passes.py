"""Passes: one benchmark session times every selected benchmark in ``N`` passes over the
whole selection, one block of rounds per pass, and pools each benchmark's blocks into one
record at the end (``--bench-passes``, default `DEFAULT_CPU_PASSES` on CPU).

Why: on this project's 2-core VM the machine's speed wanders on a scale of seconds. The
residual log medians of 55 idle runs (after each run's machine factor) correlate 0.45 with
the benchmark timed just before, 0.32 two before, 0.04 four before, and identical code
moved 12-15 % per benchmark (1σ) between runs. Four blocks timed back to back sat inside
one of those spells: they agreed with each other, so each run's rounds called the move
significant at p < 1e-4. Spread one pass apart (a whole selection's worth of seconds),
the blocks sample independent spells: their median averages the drift, and their spread
is what `harness.analysis.compare`'s block bootstrap resamples, so the interval shows it.

The checks before timing (oracle, compile cost, memory) run in the first pass only; a
benchmark that was skipped or failed there is skipped in the later passes with that
reason. `harness.benchmark.pooling` pools whole processes the same way (`pooled_extra`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pytest_benchmark.stats import Stats

from harness.benchmark.stability import Evidence, judge, pooled_evidence

DEFAULT_CPU_PASSES = 4  # CPU: one block of rounds per pass (`harness.benchmark.step.REPLICATES` blocks)
DEFAULT_CUDA_PASSES = 1  # CUDA: events time each round; drift there is not measured yet

T = TypeVar("T")


def default_passes(device: str) -> int:
    return DEFAULT_CPU_PASSES if device == "cpu" else DEFAULT_CUDA_PASSES


def scheduled(items: Sequence[T], passes: int, is_benchmark: Callable[[T], bool],
              copy: Callable[[T], T] = lambda item: item) -> list[T]:
    """The run order: every item as collected (the first pass), then a ``copy`` of each
    benchmark, in the same order, for each further pass. Other tests run once. (pytest
    cannot run one item object twice in a row: its fixtures would stay torn down.)"""
    if passes < 1:
        raise ValueError(f"passes={passes}: give at least 1")
    again = [item for item in items if is_benchmark(item)]
    return [*items, *(copy(item) for _ in range(passes - 1) for item in again)]


def blocks_per_pass(replicates: int, passes: int) -> int:
    """Blocks each pass times so that all passes together time about ``replicates``: one
    per pass once there are as many passes as replicates."""
    return max(1, -(-replicates // passes))


@dataclass
class FirstPass:
    """What the first pass of one benchmark established for the others (its calibrated
    round count, or why it was not timed), and every pass's stability evidence, judged
    together once the rounds are pooled (`pool_passes`)."""

    rounds: int = 0
    calls: int = 1          # CUDA: calls per event pair (`harness.benchmark.timing.calls_per_event`)
    not_timed: str = ""
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class PassLog:
    """Which pass each benchmark is in, and what its first pass left (kept on the pytest
    config for the session)."""

    passes: int = 1
    seen: dict[str, int] = field(default_factory=dict)
    first: dict[str, FirstPass] = field(default_factory=dict)

    def start(self, nodeid: str) -> int:
        """The 0-based pass this call of ``nodeid`` is in."""
        index = self.seen.get(nodeid, 0)
        self.seen[nodeid] = index + 1
        if index == 0:
            self.first[nodeid] = FirstPass(not_timed="did not finish its first pass")
        return index

    def later_skip_reason(self, nodeid: str) -> str:
        """Why a later pass of ``nodeid`` times nothing; empty when it should time."""
        first = self.first.get(nodeid)
        if first is None:
            return "its first pass did not run"
        if first.not_timed:
            return f"not timed in pass 1 ({first.not_timed}); later passes skip it"
        return ""


def pooled_extra(extras: Sequence[dict]) -> dict:
    """One benchmark's ``extra_info`` from those of its passes (or processes): the first's
    record, with the blocks summed and the stability evidence summed (`pooled_stability`).
    The verdict (``stable``, ``unstable_reason``) is the caller's, judged on the pooled
    rounds (`pool_passes`, `harness.benchmark.pooling`)."""
    out = dict(extras[0])
    out["blocks"] = sum(int(x.get("blocks") or 1) for x in extras)
    summaries = [x["stability"] for x in extras if isinstance(x.get("stability"), dict)]
    if len(summaries) > 1:
        out["stability"] = pooled_stability(summaries)
    return out


def pooled_stability(summaries: Sequence[dict]) -> dict:
    """The `harness.benchmark.stability.Evidence.summary` of several parts of one benchmark: counts
    summed, the CPU share weighted by rounds, the busiest part's runnable tasks, the load
    before the first and after the last."""
    rounds = [int(s.get("rounds") or 0) for s in summaries]
    out = dict(summaries[0])
    out["rounds"] = sum(rounds)
    out["load_after"] = summaries[-1].get("load_after")
    for key in ("preempted_rounds", "involuntary_switches"):
        if any(key in s for s in summaries):
            out[key] = sum(int(s.get(key) or 0) for s in summaries)
    shares = [(s["cpu_per_wall"], n) for s, n in zip(summaries, rounds, strict=True)
              if "cpu_per_wall" in s]
    if shares and sum(n for _, n in shares):
        out["cpu_per_wall"] = sum(v * n for v, n in shares) / sum(n for _, n in shares)
    if any("runnable_max" in s for s in summaries):
        out["runnable_max"] = max(int(s.get("runnable_max") or 0) for s in summaries)
        out["runnable_median"] = max(float(s.get("runnable_median") or 0) for s in summaries)
    return out


def with_bandwidth(info: dict, median: float | None) -> dict:
    """``info`` with its bandwidth fields (``gbps``, ``peak_bw_pct``) for ``median``
    seconds, after rounds were pooled."""
    if info.get("bytes") and median:
        info["gbps"] = info["bytes"] / median / 1e9
        if info.get("peak_gbps"):
            info["peak_bw_pct"] = 100 * info["gbps"] / info["peak_gbps"]
    return info


def pool_passes(benchmarks: list, log: PassLog | None = None) -> list:
    """pytest-benchmark's records (``Metadata``) with one per benchmark: a benchmark timed
    in several passes keeps its first record, holding every pass's rounds in pass order,
    its ``extra_info`` pooled (`pooled_extra`) with ``passes`` set, and its stability
    judged on all its rounds and evidence at once (`stability.judge`; a rule of a few
    rounds per pass would flag one slow round in two)."""
    groups: dict[str, list] = {}
    for record in benchmarks:
        groups.setdefault(record.fullname, []).append(record)
    pooled = []
    for records in groups.values():
        first = records[0]
        timed = [r for r in records if r.stats]
        if len(records) > 1 and timed:
            stats = Stats()
            stats.data = [x for r in timed for x in r.stats.data]
            info = pooled_extra([r.extra_info for r in timed])
            info["passes"] = len(timed)
            info.update(_judged(stats.data, log.first.get(first.fullname) if log else None))
            first.stats = stats
            first.extra_info = with_bandwidth(info, stats.median)
        pooled.append(first)
    return pooled


def _judged(rounds: list[float], first: FirstPass | None) -> dict:
    """The pooled benchmark's ``stable``, ``unstable_reason`` and ``stability`` fields."""
    parts = first.evidence if first is not None else []
    evidence = pooled_evidence(parts) if parts else None
    verdict = judge(rounds, evidence)
    out = {"stable": verdict.stable, "unstable_reason": verdict.reason}
    if evidence is not None:
        out["stability"] = evidence.summary()
    return out
