"""The one vocabulary, default threshold and decision of ``compare`` and ``ab``.

Both commands judge a ratio HEAD/BASE (NEW/BASE) on its logarithm, and say the same words:

- ``slower`` / ``faster``: significant *and* beyond the threshold (and, for ``compare``,
  beyond the run-to-run drift floor it passes in);
- ``same``: the evidence lies within ± the threshold;
- ``undecided``: neither (a change that is not significant, or not beyond the floor);
- ``unstable``: every timing was contaminated (preempted, oversubscribed, quantised):
  nothing left to judge;
- ``too few``: fewer timings than the test needs to reach alpha at all (``ab``'s pairs,
  ``compare``'s rounds).

``undecided`` and ``same`` over ``compare``'s former ``noisy`` and ``unchanged``: ``noisy``
blamed noise where the cause can be the drift floor, too few rounds or a machine that moved,
and ``undecided`` says only what is known (no verdict); and ``same`` is what ``ab``'s
verdict files, the CI gate and the README already say. Which *method* judged is said
beside the words (`PAIRED`, `UNPAIRED`): the words mean the same, the evidence differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SLOWER, FASTER, SAME, UNDECIDED, UNSTABLE, TOO_FEW = ("slower", "faster", "same", "undecided",
                                                      "unstable", "too few")
CHANGED = (SLOWER, FASTER)
# 10 %: asv's factor (1.1), the change this project sizes its runs for (`paired.pairs_needed`
# at 1.1×), and above the 5 % offset a worker process alone gave identical code in `ab`
# (docs/benchmarking.md, "Sessions"). `ab` used 5 % before, `compare` 10 %.
DEFAULT_THRESHOLD = 0.10

PAIRED = "paired signed-rank on block pairs"
UNPAIRED = "unpaired comparison of two runs"


def log_ratio(ratio: float | Sequence[float] | np.ndarray) -> float | np.ndarray:
    """log of a ratio HEAD/BASE (or of each, for an array); NaN where the ratio is missing,
    not positive or infinite (a side that failed or read 0), so nothing downstream takes
    log of 0 or of a negative number."""
    r = np.asarray(ratio, dtype=float)
    valid = np.isfinite(r) & (r > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(valid, np.log(np.where(valid, r, 1.0)), math.nan)
    return float(logs) if logs.ndim == 0 else logs


def decide(log_r: float, significant: bool, threshold: float = DEFAULT_THRESHOLD,
           interval: tuple[float, float] | None = None,
           floor: tuple[float, float] = (0.0, 0.0)) -> str:
    """The verdict on one log ratio ``log_r``.

    ``slower``/``faster`` when ``significant`` and beyond log(1 + ``threshold``) and beyond
    ``floor`` (slower, faster: log ratios within which a change is put down to drift).
    Otherwise ``same`` when ``interval`` (log ratios) lies strictly within ± the threshold
    — with ``interval`` None, the ratio itself is the evidence (instruction counts, which
    do not vary; `compare`, whose rounds cannot bound the next run's drift) — else
    ``undecided``."""
    if not math.isfinite(log_r):
        return UNDECIDED
    band = math.log1p(threshold)
    slower_floor, faster_floor = (f if math.isfinite(f) else 0.0 for f in floor)
    if significant and log_r >= band and log_r > slower_floor:
        return SLOWER
    if significant and log_r <= -band and -log_r > faster_floor:
        return FASTER
    lo, hi = interval if interval is not None else (log_r, log_r)
    if math.isfinite(lo) and math.isfinite(hi) and -band < lo and hi < band:
        return SAME
    return UNDECIDED
