"""Paired verdicts: the statistics of ``python -m harness ab`` (pure functions of numbers).

A pair is one timing of BASE and one of HEAD taken seconds apart on the same machine (two
adjacent processes of an interleaved `ab` run). Its log ratio log(HEAD / BASE) cancels
whatever the machine was doing at that moment; what is left is judged across the pairs:

- the test is Wilcoxon's signed-rank test on the pairs' log ratios (exact null
  distribution without ties, normal approximation with tie correction otherwise);
- the estimate is the median ratio over pairs, with a seeded percentile bootstrap
  interval (`PairedSettings.confidence`);
- the false changes over every benchmark compared are controlled by Benjamini–Hochberg
  (`benjamini_hochberg`) at ``alpha``;
- three verdicts (`harness.verdict.decide`, shared with ``compare``):
  ``slower``/``faster`` when the adjusted p is below ``alpha`` and the median ratio is
  beyond the threshold; ``same`` when the interval lies within ± the threshold (an
  equivalence claim); ``undecided`` otherwise;
- and none on fewer pairs than the test needs to reach ``alpha`` at all (`fewest_pairs`):
  ``too few``, whatever the pairs seem to say.

No machine factor is needed: a machine that drifts moves both halves of a pair.
``suites/harness/test_paired.py`` proves the rules on synthetic pairs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from harness import verdict
from harness.analysis.stats import rankdata

ArrayLike = Sequence[float] | np.ndarray
EXACT_LIMIT = 60  # exact signed-rank distribution up to this many pairs (without ties)
N_BOOT = 4000
VERDICTS = (verdict.SLOWER, verdict.FASTER, verdict.UNDECIDED, verdict.SAME, verdict.TOO_FEW)


@dataclass(frozen=True)
class PairedSettings:
    threshold: float = verdict.DEFAULT_THRESHOLD  # the smallest change that counts, and the band of `same`
    alpha: float = 0.01       # false-discovery rate over the benchmarks of one comparison
    confidence: float = 0.95  # of the median ratio's interval (`same` is a 2.5 % one-sided claim)

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold {self.threshold!r}: give a fraction such as 0.05 (5 %)")
        if not 0 < self.alpha < 1 or not 0 < self.confidence < 1:
            raise ValueError("alpha and confidence must lie between 0 and 1")


def log_ratios(base: ArrayLike, head: ArrayLike) -> np.ndarray:
    """log(HEAD / BASE) per pair; a pair with a missing or non-positive side is dropped."""
    b, h = np.asarray(base, dtype=float).ravel(), np.asarray(head, dtype=float).ravel()
    if b.shape != h.shape:
        raise ValueError(f"{b.size} BASE timings against {h.size} HEAD timings: pairs need one "
                         "of each")
    keep = np.isfinite(b) & np.isfinite(h) & (b > 0) & (h > 0)
    return verdict.log_ratio(h[keep] / b[keep])


class SignedRank(NamedTuple):
    w: float       # sum of the ranks of the positive differences
    p: float       # two-sided p-value
    n: int         # non-zero differences used
    method: str    # 'exact', 'normal' or 'none'


@functools.lru_cache(maxsize=128)
def _w_distribution(n: int) -> np.ndarray:
    """P(W+ = k), k = 0..n(n+1)/2, under the null: each rank's sign a fair coin, so the
    counts are the coefficients of prod_{i=1..n} (1 + q^i)."""
    top = n * (n + 1) // 2
    c = np.zeros(top + 1)
    c[0] = 1.0
    for i in range(1, n + 1):
        c[i:] = c[i:] + c[:-i].copy()
    return c / c.sum()


def signed_rank(d: ArrayLike) -> SignedRank:
    """Two-sided Wilcoxon signed-rank test of "the differences ``d`` are centred on 0".

    Zeros are dropped (Wilcoxon's convention). Exact when there are no ties among the
    absolute differences and at most `EXACT_LIMIT` of them; else the normal approximation
    with tie and continuity correction (as scipy's ``wilcoxon(..., method='approx',
    correction=True)``)."""
    a = np.asarray(d, dtype=float).ravel()
    a = a[np.isfinite(a) & (a != 0)]
    n = a.size
    if n == 0:
        return SignedRank(math.nan, 1.0, 0, "none")
    ranks = rankdata(np.abs(a))
    w = float(ranks[a > 0].sum())
    if np.unique(ranks).size == n and n <= EXACT_LIMIT:
        dist = _w_distribution(n)
        k = round(w)
        p = 2 * min(dist[: k + 1].sum(), dist[k:].sum())
        return SignedRank(w, float(min(1.0, p)), n, "exact")
    _, counts = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - float((counts ** 3 - counts).sum()) / 48
    if var <= 0:
        return SignedRank(w, 1.0, n, "normal")
    z = max(abs(w - n * (n + 1) / 4) - 0.5, 0.0) / math.sqrt(var)
    return SignedRank(w, math.erfc(z / math.sqrt(2)), n, "normal")


def smallest_p(n: int) -> float:
    """The smallest two-sided p a signed-rank test of ``n`` pairs can reach (all of one
    sign): 2 / 2**n. Below 0.01 from 8 pairs on; what `ab` needs before it can decide."""
    return min(1.0, 2.0 / 2 ** n) if n > 0 else 1.0


def fewest_pairs(alpha: float) -> int:
    """The fewest pairs whose signed-rank test can reach ``alpha`` at all (`smallest_p`
    at most ``alpha``): below it no outcome of the pairs is significant, so a verdict
    would rest on the interval of a handful of values (seen: 3 pairs read ``undecided
    1.37× (1.36-1.39), p 0.25``, and 0.25 is the least 3 pairs can give)."""
    n = 1
    while smallest_p(n) > alpha:
        n += 1
    return n


def median_interval(d: ArrayLike, confidence: float = 0.95, n_boot: int = N_BOOT,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``d`` (seeded: one file, one
    verdict). NaN for fewer than 2 values."""
    a = np.asarray(d, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    medians = np.median(a[rng.integers(0, a.size, size=(n_boot, a.size))], axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(medians, [tail, 100 - tail])
    return float(lo), float(hi)


def benjamini_hochberg(p: ArrayLike) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (step-up; NaN stays NaN and is not counted):
    rejecting those below ``alpha`` keeps the expected share of false changes among the
    claimed ones at most ``alpha``."""
    a = np.asarray(p, dtype=float).ravel()
    out = np.full(a.size, math.nan)
    ok = np.flatnonzero(np.isfinite(a))
    m = ok.size
    if not m:
        return out
    order = ok[np.argsort(a[ok], kind="mergesort")]
    scaled = a[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out


@dataclass(frozen=True)
class Judged:
    """One benchmark's pairs, judged. Ratios are HEAD / BASE (> 1: HEAD slower)."""

    name: str
    pairs: int
    dropped: int           # pairs with a contaminated side (never judged)
    ratio: float           # median over pairs
    low: float             # its interval
    high: float
    p: float               # signed-rank, before adjustment
    p_adjusted: float
    sigma: float           # robust σ of the log ratios (1.4826 · MAD)
    verdict: str

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def robust_sigma(d: ArrayLike) -> float:
    """1.4826 × the median absolute deviation: σ for a normal sample, unmoved by one wild
    pair. NaN for fewer than 3 values."""
    a = np.asarray(d, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size < 3:
        return math.nan
    return float(1.4826 * np.median(np.abs(a - np.median(a))))


def pairs_needed(sigma: float, change: float = 0.10, z_alpha: float = 2.326,
                 z_power: float = 1.645) -> int:
    """Pairs a paired test needs to find a slowdown of ``change`` (0.10: 1.1×) at
    one-sided ``z_alpha`` (1 % false alarms) with power ``z_power`` (95 %), for log ratios
    of σ ``sigma``: ((z_a + z_b) σ / log(1 + change))², about (41.7·σ)² for 1.1×."""
    if not (math.isfinite(sigma) and sigma > 0):
        return 0
    return math.ceil(((z_alpha + z_power) * sigma / math.log1p(change)) ** 2)


def decide(median_log: float, interval: tuple[float, float], p_adjusted: float,
           settings: PairedSettings) -> str:
    """The verdict of one benchmark from its pairs: the shared `verdict.decide`, significant
    when the adjusted p is below alpha, ``same`` judged on the median's interval."""
    significant = math.isfinite(p_adjusted) and p_adjusted < settings.alpha
    return verdict.decide(median_log, significant, settings.threshold, interval=interval)


def judge_all(pairs: dict[str, tuple[np.ndarray, int]], settings: PairedSettings = PairedSettings(),
              seed: int = 0) -> list[Judged]:
    """Judge every benchmark: ``pairs`` maps its name to (log ratios of the kept pairs,
    pairs dropped as contaminated). The p-values are adjusted together, over the
    benchmarks with enough pairs to be tested (`fewest_pairs`): one that cannot reach
    ``alpha`` is ``too few``, without an interval, and adds no test to the adjustment."""
    names = list(pairs)
    enough = fewest_pairs(settings.alpha)
    tests = [signed_rank(pairs[n][0]) for n in names]
    adjusted = benjamini_hochberg([t.p if len(pairs[n][0]) >= enough and t.n else math.nan
                                   for n, t in zip(names, tests, strict=True)])
    out = []
    for name, test, p_adj in zip(names, tests, adjusted, strict=True):
        d, dropped = pairs[name]
        med = float(np.median(d)) if len(d) else math.nan
        if len(d) < enough:
            out.append(Judged(name, len(d), dropped, math.exp(med), math.nan, math.nan, test.p, math.nan,
                              robust_sigma(d), verdict.TOO_FEW))
            continue
        lo, hi = median_interval(d, settings.confidence, seed=seed)
        said = decide(med, (lo, hi), float(p_adj), settings)
        out.append(Judged(name, len(d), dropped, math.exp(med), math.exp(lo), math.exp(hi),
                          test.p, float(p_adj), robust_sigma(d), said))
    return out
