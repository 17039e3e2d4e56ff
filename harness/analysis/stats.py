"""Statistics of timings: pure functions of numbers (no I/O, no printing, numpy only).

Timings are skewed and heavy-tailed (a preempted round is 10× slower, never 10× faster),
so everything here is rank- or quantile-based: medians rather than means, the IQR rather
than the standard deviation, Mann-Whitney U rather than a t-test, and percentile bootstrap
intervals when rounds are too few for a rank test to reach significance. scipy is only a
dev extra, so the U test is implemented here (exact distribution without ties, normal
approximation with tie correction otherwise) and checked against scipy in the tests.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from harness.rounding import round_sig

ArrayLike = Sequence[float] | np.ndarray

# Half-width of a 95 % interval of the median, per IQR/sqrt(n): the median's standard error
# is sqrt(pi/2)·sigma/sqrt(n) for a normal sample, with sigma = IQR / 1.349.
_MEDIAN_CI95_PER_IQR = 1.96 * math.sqrt(math.pi / 2) / 1.349
EXACT_U_LIMIT = 2500  # exact U distribution up to n1·n2 this large (and no ties)


def _arr(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


def median(x: ArrayLike) -> float:
    a = _arr(x)
    return float(np.median(a)) if a.size else math.nan


def quartiles(x: ArrayLike) -> tuple[float, float]:
    """(Q1, Q3) by linear interpolation (numpy's default). Not pytest-benchmark's own: its
    ``q1``/``q3`` take the median of each half (an even count) or a weighted pair of
    neighbours (an odd one), so its IQR can differ from this one on a few rounds."""
    a = _arr(x)
    if not a.size:
        return math.nan, math.nan
    q1, q3 = np.percentile(a, [25, 75])
    return float(q1), float(q3)


def iqr(x: ArrayLike) -> float:
    q1, q3 = quartiles(x)
    return q3 - q1


def median_noise(iqr_value: float, rounds: float) -> float:
    """Half-width of an approximate 95 % interval of a median from its IQR and round count:
    the uncertainty that decides how many digits of a median mean anything."""
    if not (rounds and rounds > 1) or not math.isfinite(iqr_value):
        return math.nan
    return _MEDIAN_CI95_PER_IQR * iqr_value / math.sqrt(rounds)


def bootstrap_ci(x: ArrayLike, statistic: Callable[[np.ndarray], np.ndarray] | None = None,
                 confidence: float = 0.99, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (default: the median).

    ``statistic`` takes a (n_boot, n) array and returns n_boot values. Seeded so that a
    report or a CI verdict is the same every time it is computed from the same file."""
    a = _arr(x)
    if a.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    samples = a[rng.integers(0, a.size, size=(n_boot, a.size))]
    values = statistic(samples) if statistic else np.median(samples, axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def resampled_medians(x: np.ndarray, rng: np.random.Generator, n_boot: int,
                      blocks: int = 1) -> np.ndarray:
    """``n_boot`` bootstrap medians of ``x``. With ``blocks`` > 1, ``x`` is that many
    consecutive equal blocks (rounds on fresh copies of the inputs), resampled
    hierarchically: blocks first, then rounds within each. A single value is held fixed."""
    if x.size == 1:
        return np.full(n_boot, x[0])
    per = x.size // blocks if blocks > 1 else 0
    if per < 2:
        return np.median(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)
    grid = x[: blocks * per].reshape(blocks, per)
    which = rng.integers(0, blocks, size=(n_boot, blocks, 1))
    rounds = rng.integers(0, per, size=(n_boot, blocks, per))
    return np.median(grid[which, rounds].reshape(n_boot, -1), axis=1)


def rankdata(x: ArrayLike) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    a = np.asarray(x, dtype=float).ravel()
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    ranks = np.empty(a.size)
    start = 0
    for end in range(1, a.size + 1):
        if end == a.size or sorted_a[end] != sorted_a[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # mean of start+1 .. end
            start = end
    return ranks


class UTest(NamedTuple):
    u: float        # U statistic of the first sample
    p: float        # two-sided p-value
    method: str     # 'exact' or 'normal'


def mann_whitney_u(x: ArrayLike, y: ArrayLike) -> UTest:
    """Two-sided Mann-Whitney U test: do ``x`` and ``y`` come from one distribution?

    Exact null distribution when there are no ties and n1·n2 <= `EXACT_U_LIMIT`; else the
    normal approximation with tie correction and continuity correction (as scipy's
    ``mannwhitneyu(..., method='asymptotic')``)."""
    a, b = _arr(x), _arr(y)
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        return UTest(math.nan, math.nan, "none")
    ranks = rankdata(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    has_ties = np.unique(ranks).size < ranks.size
    if not has_ties and n1 * n2 <= EXACT_U_LIMIT:
        return UTest(u1, _exact_p(u1, n1, n2), "exact")
    return UTest(u1, _normal_p(u1, n1, n2, ranks), "normal")


@functools.lru_cache(maxsize=64)
def _u_distribution(n1: int, n2: int) -> np.ndarray:
    """P(U = k), k = 0..n1·n2, under the null: coefficients of the Gaussian binomial
    [n1+n2 choose n1]_q = prod_{i=1..n1} (1 - q^(n2+i)) / (1 - q^i)."""
    size = n1 * n2 + 1
    c = np.zeros(size)
    c[0] = 1.0
    for i in range(1, n1 + 1):
        shift = n2 + i
        if shift < size:
            c[shift:] -= c[:-shift].copy()  # times (1 - q^shift), highest powers first
        for r in range(min(i, size)):     # divide by (1 - q^i): running sums with stride i
            c[r::i] = np.cumsum(c[r::i])
    return c / c.sum()


def _exact_p(u: float, n1: int, n2: int) -> float:
    dist = _u_distribution(n1, n2)
    k = round(u)
    lower = dist[: k + 1].sum()
    upper = dist[k:].sum()
    return float(min(1.0, 2 * min(lower, upper)))


def _normal_p(u: float, n1: int, n2: int, ranks: np.ndarray) -> float:
    n = n1 + n2
    _, counts = np.unique(ranks, return_counts=True)
    tie_term = float((counts ** 3 - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12 * ((n + 1) - tie_term)
    if var <= 0:
        return 1.0
    z = max(abs(u - n1 * n2 / 2) - 0.5, 0.0) / math.sqrt(var)
    return math.erfc(z / math.sqrt(2))


def significant_digits(value: float, noise: float, default: int = 3, most: int = 4) -> int:
    """Significant digits of ``value`` that its ``noise`` (an uncertainty, same unit)
    supports: down to the decimal place of the noise's leading digit, at least 1 and at
    most ``most``. Without a noise estimate, ``default``."""
    if not math.isfinite(value) or value == 0:
        return 1
    if not (math.isfinite(noise) and noise > 0):
        return default
    digits = math.floor(math.log10(abs(value))) - math.floor(math.log10(noise)) + 1
    return max(1, min(most, digits))


def round_to_noise(value: float, noise: float, default: int = 3) -> float:
    """``value`` rounded to the digits its ``noise`` supports."""
    return round_sig(value, significant_digits(value, noise, default))


def relative_noise(*pairs: tuple[float, float]) -> float:
    """Relative uncertainty of a product or quotient of (value, noise) pairs: the root sum
    of squares of the relative noises (first order). Used for speedups and GB/s, which
    inherit the noise of the medians they are made of."""
    total = 0.0
    for value, noise in pairs:
        if not (math.isfinite(value) and value and math.isfinite(noise)):
            return math.nan
        total += (noise / value) ** 2
    return math.sqrt(total)


def proportional_noise(value: float, base: float, base_noise: float) -> float:
    """Noise of ``value`` when it is ``base`` times a constant (a share of peak bandwidth
    from GB/s): ``base``'s relative noise carried over. NaN when any of the three is not a
    finite number or ``base`` is 0."""
    try:
        v, b, n = float(value), float(base), float(base_noise)
    except (TypeError, ValueError):
        return math.nan
    if not (math.isfinite(v) and math.isfinite(b) and math.isfinite(n)) or b == 0:
        return math.nan
    return v * n / b


def half_width(low: float, high: float) -> float:
    """Half the width of the interval [low, high]: the uncertainty of a value inside it.
    NaN when there is no interval (``low`` is NaN)."""
    if low is None or not math.isfinite(low):
        return math.nan
    return (high - low) / 2


def speedup(reference_median: float, median_value: float) -> float:
    """How many times faster than the family's reference contender: >1 is faster."""
    if not (median_value and math.isfinite(median_value)):
        return math.nan
    return reference_median / median_value


def geometric_mean(values: ArrayLike) -> float:
    a = _arr(values)
    a = a[a > 0]
    return float(np.exp(np.log(a).mean())) if a.size else math.nan


def one_sided_scales(values: ArrayLike, center: float) -> tuple[float, float]:
    """(below, above): the spread of ``values`` on each side of ``center``, each
    1.4826 times the median distance of that side's values (the MAD of a symmetric sample,
    one half at a time). A change that moved some benchmarks one way inflates that side
    only, so the other side still measures the drift of the untouched ones. NaN for a
    side with fewer than 3 values."""
    a = _arr(values)
    out = []
    for side in (a[a < center], a[a > center]):
        out.append(float(1.4826 * np.median(np.abs(side - center))) if side.size >= 3 else math.nan)
    return out[0], out[1]


def t_quantile(p: float, df: float) -> float:
    """Quantile ``p`` (> 0.5) of Student's t with ``df`` degrees of freedom: bisection on
    the CDF, integrated by Simpson's rule (matches scipy to 1e-6 in the tests; scipy is
    only a dev extra)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def upper_half(t: float) -> float:  # P(0 < T < t)
        x = np.linspace(0.0, t, 2001)
        y = np.exp(log_norm - (df + 1) / 2 * np.log1p(x * x / df))
        return float((x[1] - x[0]) / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum()))

    lo, hi = 0.0, 1.0
    while upper_half(hi) < p - 0.5:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if upper_half(mid) < p - 0.5 else (lo, mid)
    return (lo + hi) / 2
