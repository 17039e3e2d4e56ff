"""Tolerances and comparison against the oracle: the five equivalence properties.

Tolerance rule (one line per element, loss and gradient alike)::

    |impl - oracle| <= atol[dtype] + (K[dtype]·eps[dtype] + 2·sqrt(M)·eps_acc) · scale

``eps`` is the dtype's machine epsilon. ``scale`` is the element's condition magnitude
from the oracle: for the loss, the weighted row count times ``1 + max|x| + log C`` reduced
like the loss (a log-softmax computed in precision eps has an absolute error of about
eps · (|x|max + log C) per row, however it is written); for the gradient, the row's
largest possible entry times the same condition number. ``K`` covers a few roundings: 32
for float64/float32, 4 for bfloat16/float16, where the final rounding to the output dtype
(eps/2) already dominates. The second term covers an output that sums M terms (sum and
mean; the mean's gradient through its weight total): accumulated in order, as inductor's
CPU reductions do, a sum has a typical relative error of sqrt(M)·eps_acc, where eps_acc is
the accumulator's epsilon (float32 for half-precision inputs). Measured: compiled_eager on
the seed's 8×2×512×512 case is off by 7e-5 relative, eager by far less. ``atol`` is the
smallest normal number of the dtype for gradients (below it values are subnormal and lose
relative precision) and 1e3 · tiny for losses. `F.cross_entropy` itself is checked by the
same rule, so the table is not tuned to one implementation; ``suites/harness/test_properties.py`` shows
it still rejects the defects it exists for (ignored weights, missing smoothing, a wrong
normalisation, a half-precision accumulator).

Non-finite values follow the oracle: NaN where the oracle is NaN, ±inf where it is ±inf,
finite elsewhere — except where the exact value overflows the output dtype, where ±inf
is required (and either is accepted within one tolerance of the dtype's maximum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.problem.expectations import EXACT, REGIME_CODES, Expect, Expectation, tolerance
from harness.problem.inputs import Inputs
from harness.problem.oracle import OracleResult

F64 = torch.float64
PROPERTIES = ("loss", "grad", "nonfinite", "inputs", "meta")

@dataclass(frozen=True)
class Outcome:
    """What one call of a contender produced (see `harness.equivalence.runner.evaluate`)."""

    loss: torch.Tensor | None
    grad: torch.Tensor | None
    error: str | None
    modified_inputs: tuple[str, ...] = ()
    no_grad: str = ""  # why no gradient was taken although the call worked (its output's shape)


@dataclass(frozen=True)
class Verdict:
    """One property on one case. ``max_abs``/``max_rel`` are the largest errors against
    the oracle over the compared elements (rel: error / tolerance scale), ``of_bound`` the
    largest error as a share of its tolerance bound (1 = at the bound: how close to failing);
    ``regime`` is what theory predicted (an `Expect` value): anything but 'exact' was
    asserted as a known limit rather than compared."""

    prop: str
    ok: bool
    detail: str = ""
    max_abs: float = 0.0
    max_rel: float = 0.0
    compared: bool = True
    regime: str = "exact"
    of_bound: float = 0.0


def reduced_terms(inputs: Inputs) -> int:
    """Terms a 'sum' or 'mean' accumulates (and that the mean's weight total sums)."""
    return 1 if inputs.case.reduction == "none" else max(inputs.case.positions, 1)


def _weight_total_overflows(oracle: OracleResult, inputs: Inputs) -> str | None:
    """A weighted mean whose Σ|w_y| exceeds the input dtype's range: eager sums W in that
    precision, W becomes ±inf and the loss and gradient 0 (the seed's helper's weights
    [−300, 301] on n2-c2-6x5x5-p0-f16-mean-wseed_inverse_freq-ig0.25, thorough profile).
    Degraded: the value is not compared."""
    if inputs.case.reduction != "mean" or oracle.weight_abs_sum <= torch.finfo(inputs.logits.dtype).max:
        return None
    return (f"not compared: Σ|w_y| = {oracle.weight_abs_sum:.3g} overflows "
            f"{inputs.logits.dtype} (degraded regime)")


def cancellation_rtol(oracle: OracleResult, inputs: Inputs) -> float:
    """Extra relative tolerance of a weighted mean whose weights have both signs (the seed's
    helper): W = Σ w_y then cancels, and a W summed in the input precision — eager does this
    for half inputs — is off by about 2·sqrt(M)·eps·(Σ|w_y| / |W| − 1) relative. 0 for
    weights of one sign. Measured: eager's bfloat16 gradient on
    n3-c2-2x3-p0.5-bf16-mean-wseed_inverse_freq-ig0.25 (weights [−65.5, 66.5], W = 7) is
    16 % off while scratch, summing in float32, is exact."""
    if oracle.weight_condition <= 1 or not math.isfinite(oracle.weight_condition):
        return 0.0
    eps = torch.finfo(inputs.logits.dtype).eps
    return 2 * math.sqrt(reduced_terms(inputs)) * eps * (oracle.weight_condition - 1)


def _as64(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` in float64 on the device of ``like`` (the oracle's: `harness.problem.oracle.oracle_device`)."""
    return t.detach().to(like.device, F64)


def _first_index(mask: torch.Tensor) -> list[int]:
    """The index of ``mask``'s first True element (row-major), without `torch.nonzero`,
    which builds an index of every True element (4.3 GB for a 134M-element mask)."""
    flat = int(mask.reshape(-1).to(torch.uint8).argmax())
    return [int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape)]


def _compare(prop: str, got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor,
             rtol: float, atol: float, fmax: float, only: torch.Tensor | None = None) -> Verdict:
    got, want = _as64(got, want).reshape(want.shape), want
    scale = scale.expand_as(want)
    mask = torch.isfinite(want) & torch.isfinite(got) & (want.abs() <= fmax)
    if only is not None:
        mask &= only
    if not bool(mask.any()):
        return Verdict(prop, True, "nothing finite to compare", compared=False)
    # Full-shape tensors with the masked-out elements at 0 (never boolean indexing, which
    # copies every compared element and needs `torch.nonzero` for the worst one's index).
    err = torch.where(mask, (got - want).abs(), 0.0)
    bound = atol + rtol * scale
    excess = torch.where(mask, err / bound, 0.0)
    flat = int(excess.reshape(-1).argmax())
    idx = [int(i) for i in torch.unravel_index(torch.tensor(flat), want.shape)]
    max_rel = float(torch.where(mask, err / scale.clamp(min=atol), 0.0).max())
    ok = bool(((err <= bound) | ~mask).all())
    detail = (f"worst at index {idx}: got {float(got.reshape(-1)[flat]):.8g}, oracle "
              f"{float(want.reshape(-1)[flat]):.8g}, |error| {float(err.reshape(-1)[flat]):.3g} > bound "
              f"{float(bound.reshape(-1)[flat]):.3g}" if not ok else
              f"max |error| {float(err.max()):.3g}, {float(excess.max()):.2f} of the bound")
    return Verdict(prop, ok, detail, float(err.max()), max_rel, of_bound=float(excess.max()))


def _incomparable(prop: str, got: torch.Tensor, want: torch.Tensor) -> Verdict | None:
    """A pass that says why nothing was compared, when ``got`` cannot be laid over the
    oracle's ``want`` (other element count): the shape is `meta`'s finding, not this
    property's. A shape with the right count ([N, 1] for [N]) is compared as reshaped."""
    if got.numel() == want.numel():
        return None
    return Verdict(prop, True, f"not compared: the output has shape {tuple(got.shape)} where the "
                               f"oracle's is {tuple(want.shape)} (meta reports it)", compared=False)


def judged_dtype(loss: torch.Tensor, inputs: Inputs) -> torch.dtype:
    """The precision a loss is judged in: the coarser of the dtype it came back in and
    the input's. A float32 loss of half inputs is held to half precision — computed from
    half-precision logits, it cannot be better — and its dtype is `meta`'s finding alone."""
    out = loss.dtype if loss.is_floating_point() else inputs.logits.dtype
    given = inputs.logits.dtype
    return out if torch.finfo(out).eps >= torch.finfo(given).eps else given


def check_loss(out: Outcome, oracle: OracleResult, inputs: Inputs, expect: Expectation) -> Verdict:
    """(a) the loss matches the oracle within tolerance."""
    if (why := out.error and f"raised {out.error}") or out.loss is None:
        return Verdict("loss", False, why or "returned nothing")
    if (skip := _incomparable("loss", out.loss, oracle.loss)) is not None:
        return skip
    dtype = judged_dtype(out.loss, inputs)
    rtol, atol, _ = tolerance(dtype, reduced_terms(inputs))
    rtol += cancellation_rtol(oracle, inputs)
    if (why := _weight_total_overflows(oracle, inputs)):
        return Verdict("loss", True, why, compared=False, regime=Expect.DEGRADED.value)
    if expect.loss_regimes is not None:
        return _check_regimes("loss", out.loss, oracle.loss, oracle.loss_scale, rtol, atol,
                              torch.finfo(dtype).max, expect.loss_regimes.reshape(oracle.loss.shape),
                              expect.reason)
    if expect.loss not in (Expect.EXACT, Expect.DEPARTS):
        return _check_breaks("loss", out.loss, expect.loss, expect.reason)
    return _departs(_compare("loss", out.loss, oracle.loss, oracle.loss_scale, rtol, atol,
                             torch.finfo(dtype).max), expect.loss, expect.reason)


def check_grad(out: Outcome, oracle: OracleResult, inputs: Inputs, expect: Expectation) -> Verdict:
    """(b) the gradient w.r.t. the logits (upstream gradient ``inputs.grad_out``) matches."""
    if out.no_grad and not out.error:
        return Verdict("grad", True, out.no_grad + " (meta reports the shape)", compared=False)
    if (why := out.error and f"raised {out.error}") or out.grad is None:
        return Verdict("grad", False, why or "no gradient reached the logits")
    terms = reduced_terms(inputs) if inputs.case.reduction == "mean" else 1
    rtol, _, atol = tolerance(inputs.logits.dtype, terms)
    rtol += cancellation_rtol(oracle, inputs)
    case = inputs.case
    cond = _class_dim_scale(oracle, case)
    fmax = torch.finfo(inputs.logits.dtype).max
    if (why := _weight_total_overflows(oracle, inputs)):
        return Verdict("grad", True, why, compared=False, regime=Expect.DEGRADED.value)
    if expect.grad_regimes is not None:
        codes = rows_to_logits(expect.grad_regimes, case).expand_as(oracle.grad)
        return _check_regimes("grad", out.grad, oracle.grad, cond, rtol, atol, fmax, codes,
                              expect.reason)
    if expect.grad not in (Expect.EXACT, Expect.DEPARTS):
        return _check_breaks("grad", out.grad, expect.grad, expect.reason)
    return _departs(_compare("grad", out.grad, oracle.grad, cond, rtol, atol,
                             torch.finfo(inputs.logits.dtype).max), expect.grad, expect.reason)


def _class_dim_scale(oracle: OracleResult, case) -> torch.Tensor:
    """Per-row gradient scale × condition number, broadcast to the logits' shape."""
    return rows_to_logits(oracle.row_scale * oracle.condition, case)


def rows_to_logits(per_row: torch.Tensor, case) -> torch.Tensor:
    """A value per position ([positions], the oracle's row order) laid out like the
    logits, with a class dim of size 1 to broadcast."""
    if case.spec.elementwise:  # a position is one logit
        return per_row.reshape(case.logits_shape)
    if not case.batched:  # the one row of a [C] vector
        return per_row.reshape(1)
    shaped = per_row.reshape(case.n, *case.spatial, 1)
    return shaped.movedim(-1, 1) if case.spatial else shaped


def _check_regimes(prop: str, got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor,
                   rtol: float, atol: float, fmax: float, codes: torch.Tensor,
                   reason: str) -> Verdict:
    """Element by element: compare where theory says exact, require a non-finite value
    where it says the computation breaks, leave the degraded band alone."""
    exact, breaks = codes == REGIME_CODES[Expect.EXACT], codes == REGIME_CODES[Expect.BREAKS]
    verdict = _compare(prop, got, want, scale, rtol, atol, fmax, only=exact)
    got64 = _as64(got, want).reshape(want.shape)
    survived = breaks & torch.isfinite(got64)
    regime = (Expect.BREAKS if bool(breaks.any()) else
              Expect.DEGRADED if not bool(exact.all()) else Expect.EXACT)
    if regime is Expect.EXACT:
        return verdict
    detail = (f"{verdict.detail if bool(exact.any()) else 'nothing exact to compare'}; "
              f"{int(breaks.sum())} elements predicted to break ({reason})")
    if bool(survived.any()):
        idx = _first_index(survived)
        detail += f" but {int(survived.sum())} are finite, e.g. at {idx}"
    return Verdict(prop, verdict.ok and not bool(survived.any()), detail, verdict.max_abs,
                   verdict.max_rel, compared=bool(exact.any()), regime=regime.value,
                   of_bound=verdict.of_bound)


def _departs(verdict: Verdict, expect: Expect, reason: str) -> Verdict:
    """EXACT: the comparison as it is. DEPARTS: theory predicts an error beyond tolerance
    (e.g. BCELoss's clamp at -100), so the comparison must fail — asserting the known
    defect keeps its demonstration from silently disappearing."""
    if expect is Expect.EXACT:
        return verdict
    return Verdict(verdict.prop, not verdict.ok,
                   f"predicted departure ({reason}) "
                   + ("observed: " if not verdict.ok else "did not happen: ") + verdict.detail,
                   verdict.max_abs, verdict.max_rel, compared=False, regime=expect.value)


def _check_breaks(prop: str, value: torch.Tensor, expect: Expect, reason: str) -> Verdict:
    if expect is Expect.DEGRADED:
        return Verdict(prop, True, f"not compared: degraded regime predicted ({reason})",
                       compared=False, regime=expect.value)
    finite = bool(torch.isfinite(value).all())
    return Verdict(prop, not finite,
                   f"predicted breakdown ({reason}) "
                   + ("did not happen: output is finite" if finite else "observed"),
                   compared=False, regime=expect.value)


def _mean_numerator_overflows(oracle: OracleResult, inputs: Inputs,
                              fmax: float) -> bool | torch.Tensor:
    """A half-precision result whose partial sums exceed the dtype's range may come out inf
    even though it is representable: eager `F.cross_entropy` on CPU does exactly that
    (n2-c11-2-p0.5-f16-mean-z10000 gives inf for an exact 17620;
    n5-c11-8-p0.5-f16-mean-ls0.1-z100, whose unscaled smoothing sum is ~88000, gives inf for
    an exact 166.6). Under 'none', per element: a row's unscaled smoothing sum can overflow
    before ε/C scales it (n1-c5-p0.5-f16-none-ls0.1-z10000: inf for an exact 25461)."""
    if inputs.case.reduction == "none":
        return False if oracle.row_partials is None else oracle.row_partials > fmax
    return bool(oracle.weighted_sum.abs() > fmax)


def _binary_partials_overflow(oracle: OracleResult, inputs: Inputs, fmax: float):
    """BCEWithLogits forms x and π·log σ(x) per element before the weight scales them back
    (n3 f16 mean, π = 11, ω = 1/12, x ≈ -2e4: inf for an exact 1247), so in half
    precision an element may be inf where its weighted value is representable. A mask per
    element for 'none'; for a sum or mean, whether any element may."""
    from harness.problem.bce import binary_kwargs

    shape = inputs.logits.shape
    pos_weight = binary_kwargs(inputs)["pos_weight"]
    x = _as64(inputs.logits, oracle.logp).reshape(-1)
    y = _as64(inputs.target, oracle.logp).reshape(-1)
    pi = (torch.ones_like(x) if pos_weight is None
          else _as64(pos_weight, oracle.logp).broadcast_to(shape).reshape(-1))
    over = torch.maximum(x.abs(), (pi * y).abs() * -oracle.logp[:, 1]) > fmax
    return over.reshape(oracle.loss.shape) if inputs.case.reduction == "none" else bool(over.any())


def _pattern(tag: str, got: torch.Tensor, want: torch.Tensor, rtol: float, fmax: float,
             may_overflow: bool | torch.Tensor = False,
             only: torch.Tensor | None = None, any_nonfinite: bool = False) -> str | None:
    """The first element whose finiteness disagrees with the oracle, described; None if
    none does. ``any_nonfinite``: the oracle's NaNs stand for a division by zero, where
    ±inf is as right as NaN."""
    got, want = _as64(got, want).reshape(want.shape), want
    overflow = want.abs() > fmax * (1 + rtol)
    borderline = (want.abs() > fmax * (1 - rtol)) & ~overflow
    if may_overflow is not False:  # True, or a per-element mask
        borderline = borderline | (torch.isfinite(want) & ~overflow & may_overflow)
    expect_nan = torch.isnan(want)
    expect_inf = torch.isinf(want)
    bad_nan = expect_nan & (torch.isfinite(got) if any_nonfinite else ~torch.isnan(got))
    bad_inf = expect_inf & ~(torch.isinf(got) & (torch.sign(got) == torch.sign(want)))
    # An exact value beyond the dtype's range: any non-finite result (inf, or NaN from an
    # inf meeting 0 or -inf inside: n1-c2-6-p0.5-f16-sum-wrandom-ls1-z10000) is right.
    bad_inf |= overflow & torch.isfinite(got)
    expect_inf = expect_inf | overflow
    bad_finite = ~expect_nan & ~expect_inf & ~borderline & ~torch.isfinite(got)
    for name, bad in (("NaN", bad_nan), ("±inf", bad_inf), ("finite", bad_finite)):
        if only is not None:
            bad &= only
        if bool(bad.any()):
            idx = _first_index(bad)
            return (f"{tag}: oracle says {name} at index {idx} (oracle "
                    f"{float(want[tuple(idx)]):.6g}), got {float(got[tuple(idx)]):.6g} "
                    f"({int(bad.sum())} such elements)")
    return None


def check_nonfinite(out: Outcome, oracle: OracleResult, inputs: Inputs,
                    expect: Expectation) -> Verdict:
    """(c) finite where the oracle is finite; NaN/inf exactly where the oracle's are."""
    if (why := out.error and f"raised {out.error}") or out.loss is None:
        return Verdict("nonfinite", False, why or "returned nothing")
    problems = []
    # Infinity is demanded by the range of the dtype the contender returned (a float32
    # loss of half inputs holds 69580, which float16 cannot: that is `meta`'s finding), and
    # allowed wherever the input dtype's range overflows on the way.
    returned = out.loss.dtype if out.loss.is_floating_point() else inputs.logits.dtype
    rtol = tolerance(judged_dtype(out.loss, inputs))[0]
    fmax = torch.finfo(returned).max
    fmax_in = min(fmax, torch.finfo(inputs.logits.dtype).max)
    exact = REGIME_CODES[Expect.EXACT]
    comparable = out.loss.numel() == oracle.loss.numel()
    if comparable and (expect.loss is Expect.EXACT or expect.loss_regimes is not None):
        may_overflow = _mean_numerator_overflows(oracle, inputs, fmax_in)
        if inputs.case.spec.elementwise:
            may_overflow = _binary_partials_overflow(oracle, inputs, fmax_in) | may_overflow
        if fmax_in < fmax:
            may_overflow = may_overflow | (oracle.loss.abs() > fmax_in)
        only = (None if expect.loss_regimes is None
                else expect.loss_regimes.reshape(oracle.loss.shape) == exact)
        problems.append(_pattern("loss", out.loss, oracle.loss, rtol, fmax,
                                 may_overflow=may_overflow, only=only,
                                 any_nonfinite=oracle.division_by_zero))
    if (expect.grad is Expect.EXACT or expect.grad_regimes is not None) and out.grad is not None:
        only = (None if expect.grad_regimes is None else
                rows_to_logits(expect.grad_regimes, inputs.case).expand_as(oracle.grad) == exact)
        grad_dtype = out.grad.dtype if out.grad.is_floating_point() else inputs.logits.dtype
        problems.append(_pattern("grad", out.grad, oracle.grad, tolerance(grad_dtype)[0],
                                 torch.finfo(grad_dtype).max, only=only,
                                 any_nonfinite=oracle.division_by_zero))
    problems = [p for p in problems if p]
    return Verdict("nonfinite", not problems, "; ".join(problems) or "pattern matches")


def check_inputs(out: Outcome, oracle: OracleResult, inputs: Inputs, expect: Expectation) -> Verdict:
    """(d) the call left logits, target and weight bit-for-bit unchanged."""
    if out.modified_inputs:
        return Verdict("inputs", False, "modified its inputs: " + ", ".join(out.modified_inputs))
    return Verdict("inputs", True, "inputs unchanged")


def expected_meta(inputs: Inputs) -> tuple[torch.dtype, tuple[int, ...]]:
    """Output dtype and shape as `F.cross_entropy` defines them."""
    case = inputs.case
    shape = tuple(case.target_shape) if case.reduction == "none" else ()
    return inputs.logits.dtype, shape


def check_meta(out: Outcome, oracle: OracleResult, inputs: Inputs, expect: Expectation) -> Verdict:
    """(e) output dtype, shape and device follow `F.cross_entropy`."""
    if (why := out.error and f"raised {out.error}") or out.loss is None:
        return Verdict("meta", False, why or "returned nothing")
    dtype, shape = expected_meta(inputs)
    dtype = expect.output_dtype or dtype
    got = (out.loss.dtype, tuple(out.loss.shape), out.loss.device.type)
    want = (dtype, shape, inputs.logits.device.type)
    if got != want:
        return Verdict("meta", False, f"output (dtype, shape, device) {got}, expected {want}")
    if out.grad is not None and (out.grad.shape != inputs.logits.shape
                                 or out.grad.dtype != inputs.logits.dtype):
        return Verdict("meta", False, f"gradient {out.grad.dtype}{tuple(out.grad.shape)}, "
                                      f"expected {inputs.logits.dtype}{tuple(inputs.logits.shape)}")
    return Verdict("meta", True, f"{dtype} {shape}")


CHECKS = {
    "loss": check_loss,
    "grad": check_grad,
    "nonfinite": check_nonfinite,
    "inputs": check_inputs,
    "meta": check_meta,
}


def check_all(out: Outcome, oracle: OracleResult, inputs: Inputs,
              expect: Expectation = EXACT, props: tuple[str, ...] = PROPERTIES) -> dict[str, Verdict]:
    return {name: CHECKS[name](out, oracle, inputs, expect) for name in props}
