"""Is a benchmark's median trustworthy? The evidence recorded beside its rounds, and the rule.

A wall clock cannot tell a slow operation from a process that was waiting for a CPU, so each
timed round is bracketed (outside the timed region) by the process's CPU time, its count of
involuntary context switches, and the number of runnable tasks on the machine. From those
and from the rounds themselves, `judge` calls a benchmark *unstable* when any of these holds
(`Rule` holds the thresholds; `suites/harness/test_stability.py` proves each on synthetic
rounds, `scripts/noise_demo.sh` shows them on real runs):

1. **preempted**: more than ``max_preempted_share`` of the rounds lost at least
   ``off_cpu_round`` of their wall time with no thread of the process on a CPU (wall time
   above the process's CPU time). A median over rounds of which a share ``s`` are slowed
   can sit as high as the ``0.5 / (1 - s)`` quantile of the clean ones: 10 % keeps it within
   the clean rounds' 56th percentile.
2. **oversubscribed**: in at least half of the rounds more tasks were runnable than there
   are cores. With several intra-op threads the operation waits at every barrier for a
   preempted sibling while the sibling's partner spins and keeps the process's CPU time
   equal to its wall time, so rule 1 cannot see it (measured: 59 µs read 7,995 µs with two
   threads and two neighbours, CPU/wall 1.00, runnable 3-4 on 2 cores). With one thread a
   neighbour on the other core still slows it through shared caches without preempting
   it (measured: one thread, two busy-loop neighbours, a 614 µs fwd_bwd read 935 µs with
   7 % of its rounds preempted). One neighbour on a 2-core machine (2 runnable)
   does not fire it: one thread then held (104 µs against 107 µs idle).
3. **quantised**: at least ``quantised_share`` of the rounds lie within ``tick_tolerance`` of
   a multiple of one scheduler tick (1, 2, 4 or 10 ms) spread over at least two multiples: the
   rounds measure time slices, not work. Needs only the wall-clock rounds, so it also judges
   runs without CPU evidence (files from before this rule, CUDA).
4. **spread**: the rounds' IQR exceeds ``max_spread`` of their median: pyperf calls a result
   unstable when the standard deviation exceeds 10 % of the mean; this is its robust
   counterpart, set wide because compare's rank tests already account for ordinary spread.
   Rules 1-3 are contamination (`Stability.contaminated`): compare never judges such a
   benchmark. Rule 4 alone marks it wide, and compare still judges it on its intervals.

The run as a whole also gets a fidelity verdict (`fidelity`): the wall time of a
single-threaded operation's rounds against their CPU time, which a descheduled process
cannot fake.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

TICKS = (0.001, 0.002, 0.004, 0.010)  # CONFIG_HZ 1000, 500, 250, 100
SPREAD = "spread:"  # how rule 4's reason starts (the one rule that is not contamination)


@dataclass(frozen=True)
class Rule:
    """Thresholds of `judge` (module docstring)."""

    off_cpu_round: float = 0.10
    max_preempted_share: float = 0.10
    oversubscribed_share: float = 0.5
    quantised_share: float = 0.6
    tick_tolerance: float = 0.08
    max_spread: float = 0.5
    fidelity_tolerance: float = 0.05
    fidelity_off_cpu: float = 0.10
    agreement_factor: float = 2.0


RULE = Rule()


@dataclass(frozen=True)
class Evidence:
    """Per timed round, in order: ``wall`` seconds (the interval the probe bracketed, which
    contains the timed call), the process's ``cpu`` seconds over it, its involuntary
    context switches ``switches``, and ``runnable``, the machine's runnable tasks at the
    round's start; ``threads`` intra-op threads on ``cores`` cores. CPU fields are empty
    where they were not measured."""

    wall: tuple[float, ...]
    cpu: tuple[float, ...] = ()
    switches: tuple[int, ...] = ()
    runnable: tuple[int, ...] = ()
    threads: int = 1
    cores: int = 1
    load_before: float | None = None
    load_after: float | None = None

    def summary(self) -> dict:
        """What the benchmark record keeps (the JSON's ``extra_info["stability"]``)."""
        wall, cpu = np.asarray(self.wall, float), np.asarray(self.cpu, float)
        out: dict = {"rounds": len(self.wall), "threads": self.threads, "cores": self.cores,
                     "load_before": self.load_before, "load_after": self.load_after}
        if cpu.size and cpu.size == wall.size and wall.sum() > 0:
            out["cpu_per_wall"] = float(cpu.sum() / wall.sum())
            out["preempted_rounds"] = int(_preempted(wall, cpu, RULE.off_cpu_round).sum())
        if self.switches:
            out["involuntary_switches"] = int(sum(self.switches))
        if self.runnable:
            out["runnable_median"] = float(np.median(self.runnable))
            out["runnable_max"] = int(max(self.runnable))
        return out


@dataclass(frozen=True)
class Stability:
    stable: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        """One line, empty when stable (the JSON's ``unstable_reason``)."""
        return "; ".join(self.reasons)

    @property
    def contaminated(self) -> bool:
        """Whether a reason other than the spread holds: the rounds measured something
        besides the work (another process, the scheduler's tick), so no verdict can rest
        on them. A wide spread alone is the benchmark's own variability — the 256 × 32000
        fwd_bwd landmark's IQR is 55-70 % of its median on an idle 2-core VM, from page
        faults on its 33 MB buffers — and `harness.analysis.compare` judges it on its
        intervals (which a wide spread widens) instead of never."""
        if self.stable:
            return False
        return not self.reasons or any(not r.startswith(SPREAD) for r in self.reasons)


# Where a reason may be cut and still read as a statement: after its rule's name, before a
# clause (", a neighbour…"), a parenthesis or " in 93% of rounds", and at its end.
_CLAUSE_END = re.compile(r"(?<=:)(?=\s)|(?=,\s)|(?=\s\()|(?=\sin\s)|$")


def shared_reasons(reasons: Iterable[str]) -> list[tuple[str, int]]:
    """Unstable benchmarks' reasons (``Stability.reason``, one per benchmark) said once: per
    rule, the words every benchmark's reason under it shares up to a clause boundary, and
    how many benchmarks it holds, most first. 72 reasons "oversubscribed: 4 runnable tasks
    on 2 cores in 9x% of rounds, …" read ("oversubscribed: 4 runnable tasks on 2 cores",
    72); a rule whose reasons share only its name reads as the name ("preempted")."""
    by_rule: dict[str, list[str]] = {}
    for reason in reasons:
        for part in (p.strip() for p in (reason or "").split("; ")):
            if part:
                by_rule.setdefault(part.split(":", 1)[0], []).append(part)
    said = [(_shared_text(parts), len(parts)) for parts in by_rule.values()]
    return sorted(said, key=lambda s: -s[1])


def _shared_text(parts: list[str]) -> str:
    first, common = parts[0], len(parts[0])  # characters every part starts with
    for other in parts[1:]:
        differs = (i for i, (a, b) in enumerate(zip(first, other, strict=False)) if a != b)
        common = min(common, next(differs, len(other)))
    cut = max(m.start() for m in _CLAUSE_END.finditer(first) if m.start() <= common)
    return first[:cut].rstrip(":").strip() or first.split(":", 1)[0]


def _preempted(wall: np.ndarray, cpu: np.ndarray, off_cpu_round: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (wall - cpu) / wall >= off_cpu_round


def preempted_reason(wall: Sequence[float], cpu: Sequence[float], rule: Rule = RULE) -> str | None:
    """Rule 1."""
    w, c = np.asarray(wall, float), np.asarray(cpu, float)
    if not c.size or c.size != w.size:
        return None
    hit = _preempted(w, c, rule.off_cpu_round)
    share = float(hit.mean())
    if share <= rule.max_preempted_share:
        return None
    off = float(np.clip(w - c, 0, None).sum() / w.sum())
    return (f"preempted: {hit.sum()} of {hit.size} rounds lost ≥{rule.off_cpu_round:.0%} of their "
            f"time off-CPU ({off:.0%} of all timed wall time): another process competed for the cores")


def busy_share(runnable: Sequence[int], cores: int) -> float:
    """Share of rounds that started with more runnable tasks than cores (0 without counts)."""
    return float((np.asarray(runnable) > cores).mean()) if len(runnable) else 0.0


def oversubscribed_reason(runnable: Sequence[int], threads: int, cores: int,
                          rule: Rule = RULE) -> str | None:
    """Rule 2."""
    share = busy_share(runnable, cores)
    if share < rule.oversubscribed_share:
        return None
    why = (f"{threads} intra-op threads waiting on each other (use --bench-threads 1)" if threads > 1
           else "a neighbour shares the cores and caches")
    return (f"oversubscribed: {np.median(np.asarray(runnable)):.0f} runnable tasks on {cores} cores "
            f"in {share:.0%} of rounds, {why}")


def quantised_reason(wall: Sequence[float], rule: Rule = RULE) -> str | None:
    """Rule 3."""
    w = np.asarray(wall, float)
    w = w[np.isfinite(w)]
    if w.size < 5:
        return None
    for tick in sorted(TICKS, reverse=True):  # the coarsest tick that explains them
        k = np.rint(w / tick)
        near = (k >= 1) & (np.abs(w - k * tick) <= rule.tick_tolerance * tick)
        if near.mean() < rule.quantised_share:
            continue
        multiples, counts = np.unique(k[near], return_counts=True)
        if (counts >= 0.1 * w.size).sum() >= 2:
            shown = ", ".join(f"{m * tick * 1e3:g}" for m in multiples[:4])
            return (f"quantised: {near.mean():.0%} of rounds sit on multiples of a {tick * 1e3:g} ms "
                    f"scheduler tick ({shown} ms): they time the scheduler, not the work")
    return None


def spread_reason(wall: Sequence[float], rule: Rule = RULE) -> str | None:
    """Rule 4."""
    w = np.asarray(wall, float)
    w = w[np.isfinite(w)]
    if w.size < 5:
        return None
    q1, med, q3 = np.percentile(w, [25, 50, 75])
    if med <= 0 or (q3 - q1) / med <= rule.max_spread:
        return None
    return f"{SPREAD} IQR is {(q3 - q1) / med:.0%} of the median (limit {rule.max_spread:.0%})"


def judge_pooled(rounds: Sequence[float], summaries: Sequence[dict], rule: Rule = RULE) -> Stability:
    """The rules on a benchmark pooled from parts (processes) whose raw evidence is gone:
    quantised and spread on all the pooled ``rounds``; preempted on the summed counts of
    the parts' `Evidence.summary`; oversubscribed when a part's rounds mostly were. Judged
    per part, a process with a third of the rounds flagged 2 of 8 rounds as a spread."""
    reasons = []
    rounds_n = sum(int(s.get("rounds") or 0) for s in summaries)
    hit = sum(int(s.get("preempted_rounds") or 0) for s in summaries)
    if rounds_n and hit / rounds_n > rule.max_preempted_share:
        reasons.append(f"preempted: {hit} of {rounds_n} rounds lost ≥{rule.off_cpu_round:.0%} of "
                       "their time off-CPU: another process competed for the cores")
    busy = [s for s in summaries if (s.get("runnable_median") or 0) > (s.get("cores") or 1)]
    if busy:
        s = busy[0]
        reasons.append(f"oversubscribed: {s['runnable_median']:.0f} runnable tasks on {s['cores']} "
                       f"cores in most rounds of {len(busy)} of {len(summaries)} processes")
    reasons += [quantised_reason(rounds, rule), spread_reason(rounds, rule)]
    found = tuple(r for r in reasons if r)
    return Stability(not found, found)


def pooled_evidence(parts: Sequence[Evidence]) -> Evidence:
    """One benchmark's evidence from its parts (passes), rounds in order: what `judge`
    sees is then the whole benchmark, as when its rounds were timed in one go."""
    first, last = parts[0], parts[-1]
    return Evidence(wall=tuple(x for p in parts for x in p.wall),
                    cpu=tuple(x for p in parts for x in p.cpu),
                    switches=tuple(x for p in parts for x in p.switches),
                    runnable=tuple(x for p in parts for x in p.runnable),
                    threads=first.threads, cores=first.cores,
                    load_before=first.load_before, load_after=last.load_after)


def judge(rounds: Sequence[float], evidence: Evidence | None = None, rule: Rule = RULE) -> Stability:
    """Rules 1-4 on a benchmark's timed ``rounds`` (seconds) and its probe ``evidence``."""
    reasons = []
    if evidence is not None:
        reasons += [preempted_reason(evidence.wall, evidence.cpu, rule),
                    oversubscribed_reason(evidence.runnable, evidence.threads, evidence.cores, rule)]
    reasons += [quantised_reason(rounds, rule), spread_reason(rounds, rule)]
    found = tuple(r for r in reasons if r)
    return Stability(not found, found)


@dataclass(frozen=True)
class Fidelity:
    """The run's timer self-check: ``ratio`` = the median over rounds of wall time / the
    process's CPU time (one thread, so 1.00 when it was never descheduled); ``off_cpu`` =
    the share of all the rounds' wall time spent off-CPU; ``agreement`` = the harness's
    median / an independent wall-clock timer's (torch.utils.benchmark's blocks of calls)."""

    ratio: float
    off_cpu: float
    agreement: float
    ok: bool
    reason: str

    def as_dict(self) -> dict:
        return {"ratio": self.ratio, "off_cpu": self.off_cpu, "agreement": self.agreement,
                "ok": self.ok, "reason": self.reason}


def fidelity(harness_median: float, wall: Sequence[float], cpu: Sequence[float],
             independent_median: float, runnable: Sequence[int] = (), cores: int = 1,
             rule: Rule = RULE) -> Fidelity:
    """Judge the timer self-check (see `Fidelity`). It fails when a typical round's wall
    time exceeds its CPU time by more than ``fidelity_tolerance``, when the process was
    off-CPU for more than ``fidelity_off_cpu`` of the check (what two wall clocks in one
    process cannot see: both run on while it waits), when more tasks than ``cores`` were
    ``runnable`` in at least half of the rounds (a short check can fall between a
    neighbour's time slices; the count at each round cannot), or when the two wall-clock
    timers disagree by more than ``agreement_factor`` (a timer bug, such as timing with
    another thread count: 0.237 before it was fixed). Only a gross disagreement counts:
    measured one after the other on this project's idle 2-core VM, the two medians
    differed by up to 1.8× (33 runs; 25 % flagged 5 of them). Without CPU times (CUDA,
    where the host waits for the device) only the last two apply."""
    w, c = np.asarray(wall, float), np.asarray(cpu, float)
    measured = c.size and c.size == w.size and (c > 0).all()
    ratio = float(np.median(w / c)) if measured else math.nan
    off_cpu = float(np.clip(w - c, 0, None).sum() / w.sum()) if measured else math.nan
    agreement = harness_median / independent_median if independent_median > 0 else math.nan
    problems = []
    if measured and not abs(ratio - 1) <= rule.fidelity_tolerance:
        problems.append(f"a round's wall time is {ratio:.3f}× its CPU time")
    if measured and not off_cpu <= rule.fidelity_off_cpu:
        problems.append(f"the process was off-CPU for {off_cpu:.0%} of the check")
    if not 1 / rule.agreement_factor <= agreement <= rule.agreement_factor:
        problems.append(f"the independent timer disagrees ({agreement:.3f}×)")
    if busy_share(runnable, cores) >= rule.oversubscribed_share:
        problems.append(f"the machine was busy: {np.median(runnable):.0f} runnable tasks on {cores} "
                        "cores")
    return Fidelity(ratio, off_cpu, agreement, not problems, "; ".join(problems))
