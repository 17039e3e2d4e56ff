"""What theory predicts for an implementation on a case, the vocabulary contenders
declare their limits in and the properties judge by: `Expect` per output (exact, degraded,
breaks), `Expectation`, and `tolerance`, the error the rule allows per dtype (derived in
`harness.equivalence.properties`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch


class Expect(str, Enum):
    """What theory predicts for one output of one contender on one case."""

    EXACT = "exact"        # must match the oracle within tolerance
    DEGRADED = "degraded"  # finite or not, accuracy unspecified: not compared
    BREAKS = "breaks"      # must contain a non-finite value
    DEPARTS = "departs"    # finite or not, must differ from the oracle beyond tolerance


@dataclass(frozen=True)
class Expectation:
    """What theory predicts, for the loss and the gradient as a whole (the worst case) and,
    optionally, element by element: ``loss_regimes`` per loss element (reduction 'none')
    and ``grad_regimes`` per row of the logits, each holding `REGIME_CODES` values. With
    them, exact elements are still compared and breaking ones must be non-finite; without
    them the whole output is judged by ``loss`` / ``grad``."""

    loss: Expect = Expect.EXACT
    grad: Expect = Expect.EXACT
    reason: str = ""
    loss_regimes: torch.Tensor | None = None
    grad_regimes: torch.Tensor | None = None
    output_dtype: torch.dtype | None = None  # declared (float32_output); None: the input's


# Element regimes in Expectation.loss_regimes / grad_regimes.
REGIME_CODES = {Expect.EXACT: 0, Expect.DEGRADED: 1, Expect.BREAKS: 2}


EXACT = Expectation()


K_FACTOR = {torch.float64: 32, torch.float32: 32, torch.bfloat16: 4, torch.float16: 4}


def tolerance(dtype: torch.dtype, terms: int = 1) -> tuple[float, float, float]:
    """(rtol, loss atol, grad atol) for an output that sums ``terms`` per-position terms.

    rtol = K·eps + 2·sqrt(terms)·eps_acc: a sum accumulated in order (inductor's CPU
    reductions do this) has a typical relative error of sqrt(M)·eps of its accumulator,
    where pairwise summation (eager) stays near log2(M)·eps. The accumulator is float32 for
    half-precision inputs — a half-precision accumulator over many terms is a defect this
    rule catches."""
    fi = torch.finfo(dtype)
    acc_eps = torch.finfo(torch.float32).eps if fi.bits == 16 else fi.eps
    return K_FACTOR[dtype] * fi.eps + 2 * math.sqrt(terms) * acc_eps, 1e3 * fi.tiny, fi.tiny
