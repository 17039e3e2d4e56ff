"""The float64 oracle against `F.cross_entropy` in float64, and against the seed's numbers.

Agreement is asked to 1e-12 *relative*: for the loss, relative to the sum of the magnitudes
of the terms it reduces (Σ|l_n|, divided by |W| for the mean, elementwise |l_n| for
'none'), so a sum whose terms cancel is judged by the size of its terms; for the gradient,
relative to the entry itself plus its row's largest possible entry (``row_scale``). Both
implementations round differently (summation order, fused ops), so bitwise equality is
not the claim; 1e-12 is ~4500 ulp, far below any tolerance the suites use.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings

from harness.equivalence.properties import rows_to_logits
from harness.problem import strategies
from harness.problem.case import Case
from harness.problem.inputs import Inputs, make_inputs
from harness.problem.oracle import OracleResult, log_softmax, multiclass

F64 = torch.float64
RTOL = 1e-12
FAST = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))

F64_CASES = strategies.cases().map(lambda c: c.replace(dtype="f64"))


# ---- helpers ---------------------------------------------------------------------------
def torch_loss_and_grad(inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """`F.cross_entropy` forward and autograd backward with the case's upstream gradient."""
    x = inputs.logits.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(x, inputs.target, **inputs.kwargs())
    loss.backward(inputs.grad_out.to(loss.dtype).expand_as(loss))
    return loss.detach(), x.grad


def loss_magnitude(inputs: Inputs) -> torch.Tensor:
    """Σ|l_n| reduced like the loss: the scale a relative loss error is measured against."""
    case = inputs.case
    per_pos = multiclass(as_none(inputs)).loss.abs()
    if case.reduction == "none":
        return per_pos
    total = per_pos.sum()
    if case.reduction == "sum":
        return total
    return total / target_weight_sum(inputs).abs()


def as_none(inputs: Inputs) -> Inputs:
    """The same tensors under reduction='none' (upstream gradient of ones)."""
    case = inputs.case.replace(reduction="none")
    return Inputs(case, inputs.logits, inputs.target, inputs.weight,
                  torch.ones(case.target_shape, dtype=inputs.logits.dtype))


def target_weight_sum(inputs: Inputs) -> torch.Tensor:
    """W = Σ over non-ignored targets of w[y_n]; with probability targets the mean divides
    by the number of positions instead."""
    if inputs.case.soft:
        return torch.tensor(float(inputs.case.positions), dtype=F64)
    y = inputs.target.reshape(-1)
    y = y[y != inputs.case.ignore_index]
    w = torch.ones(inputs.case.c, dtype=F64) if inputs.weight is None else inputs.weight.to(F64)
    return w[y].sum()


def row_scale_like_logits(oracle: OracleResult, case: Case) -> torch.Tensor:
    """The oracle's per-row gradient scale, broadcast to the logits' [N, C, *spatial]."""
    return rows_to_logits(oracle.row_scale, case)


def assert_same_nonfinite(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert torch.equal(torch.isnan(got), torch.isnan(want)), f"{what}: NaN pattern differs"
    assert torch.equal(torch.isposinf(got), torch.isposinf(want)), f"{what}: +inf pattern differs"
    assert torch.equal(torch.isneginf(got), torch.isneginf(want)), f"{what}: -inf pattern differs"


def assert_rel_close(got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor, what: str) -> None:
    got, want = got.to(F64).reshape(want.shape), want.to(F64)
    assert_same_nonfinite(got, want, what)
    scale = scale.to(F64).expand_as(want)
    mask = torch.isfinite(want)
    err = (got - want).abs()[mask]
    bound = RTOL * (want.abs()[mask] + scale[mask])
    if err.numel():
        worst = int((err - bound).argmax())
        assert bool((err <= bound).all()), (
            f"{what}: |error| {float(err[worst]):.3g} > {float(bound[worst]):.3g} "
            f"(oracle {float(want[mask][worst]):.17g}, torch {float(got[mask][worst]):.17g})")


def assert_oracle_matches_torch(case: Case) -> None:
    assert case.dtype == "f64"
    inputs = make_inputs(case)
    oracle = multiclass(inputs)
    loss, grad = torch_loss_and_grad(inputs)
    assert loss.dtype == oracle.loss.dtype == F64
    assert tuple(loss.shape) == tuple(oracle.loss.shape)
    assert_rel_close(loss, oracle.loss, loss_magnitude(inputs), f"loss of {case.id}")
    assert grad.shape == oracle.grad.shape
    assert_rel_close(grad, oracle.grad, row_scale_like_logits(oracle, case), f"grad of {case.id}")


def hand_inputs(logits: list[list[float]], target: list[int], reduction: str = "none",
                weight: list[float] | None = None) -> Inputs:
    """Inputs built by hand (no generated counts), as in the seed's examples."""
    x = torch.tensor(logits, dtype=F64)
    case = Case(n=x.shape[0], c=x.shape[1], dtype="f64", reduction=reduction)
    grad_shape = (x.shape[0],) if reduction == "none" else ()
    return Inputs(case, x, torch.tensor(target), None if weight is None else torch.tensor(weight, dtype=F64),
                  torch.ones(grad_shape, dtype=F64))


# ---- against F.cross_entropy on generated cases ----------------------------------------
@FAST
@given(case=F64_CASES)
def test_oracle_equals_torch_on_generated_f64_cases(case: Case) -> None:
    assert_oracle_matches_torch(case)


@pytest.mark.parametrize("case_id", [
    # target is the largest logit at scale 1e4: loss ~1e-300..1e-5, must stay relatively exact
    # (the oracle's old `x - (m + lse)` lost 7 digits here; the shrunk counterexample was
    # n2-c2-p0.5-f64-none-z10-s1: oracle 1.02104351e-08, torch 1.02104368e-08)
    "n2-c2-p0.5-f64-none-z10-s1",
    "n2-c2-6x2x2-p0.5-f64-none-wbalanced-z8-cl-s1709",
    "n5-c2-1-p0.01-f64-none-z10-nc-s537",
    "n4-c3-p0.5-f64-none-z10000",
    "n4-c5-3-p0.5-f64-mean-z10000-s3",
    # tiny logits, long tail, absent rarest class, single rare target
    "n8-c40-p0-f64-sum-wbalanced-z0.001",
    "n8-c7-4-p1e-06-f64-mean-wrandom-ls0.1",
    # seed_inverse_freq: negative weights, cancelling sums
    "n8-c2-4x4-p0.5-f64-mean-wseed_inverse_freq-s2",
    "n8-c2-4x4-p0.5-f64-sum-wseed_inverse_freq-ls0.2-s2",
    # smoothing 1 (target term vanishes), everything else on
    "n3-c4-2x2x2-p0.2-f64-mean-weffective_number-ls1-ig0.25-ii-1-z30-nc-s9",
    # unbatched: [C] logits, 0-d target (and a 0-d 'none' loss)
    "n1-c5-p0.5-f64-none-unbatched",
    "n1-c5-p0.5-f64-mean-wrandom-ls0.2-unbatched-nc",
    "n1-c5-p0.5-f64-sum-unbatched-soft",
    # masked (-inf) logits: finite loss; +inf on a masked target (NaN under weight 0);
    # +inf with smoothing; rank 5; an ignored class 0 that is masked
    "n4-c6-3-p0.3-f64-mean-wrandom-m0.5",
    "n4-c6-3-p0.3-f64-none-wrandom-m0.5-mt",
    "n4-c6-p0.3-f64-none-ls0.1-m0.5",
    "n6-c3-p0-f64-sum-wonehot-m0.5-mt",
    "n6-c3-2-p0-f64-none-wonehot-ls0.2-m0.5-mt",
    "n2-c4-2x1x2x1x2-p0.5-f64-mean-ig0.25-ii0-m0.9-mt",
    "n1-c7-p0.5-f64-none-unbatched-m0.9-mt",
])
def test_oracle_equals_torch_on_hard_cases(case_id: str) -> None:
    assert_oracle_matches_torch(Case.from_id(case_id))


# ---- NaN patterns ----------------------------------------------------------------------
@pytest.mark.parametrize("case_id", [
    "n4-c3-p0.5-f64-mean-ig1",                      # all ignored: W = 0
    "n4-c3-2x2-p0.5-f64-mean-ls0.1-ig1-ii-1",       # all ignored, with smoothing
    "n6-c3-p0-f64-mean-wonehot",                    # rarest class absent, onehot: W = 0
    "n6-c3-3-p0-f64-mean-wonehot-ls0.2-ig0.25",     # W = 0 with ignored and smoothed rows
])
def test_zero_total_weight_mean_is_nan_like_torch(case_id: str) -> None:
    case = Case.from_id(case_id)
    inputs = make_inputs(case)
    oracle = multiclass(inputs)
    assert float(target_weight_sum(inputs)) == 0.0
    assert math.isnan(float(oracle.loss))
    # ignored rows get zero gradient, rows with weight 0 a NaN one (PyTorch's contract)
    valid = oracle.valid.reshape(case.n, *case.spatial)
    grad_rows = oracle.grad.movedim(1, -1) if case.spatial else oracle.grad
    assert bool((grad_rows[~valid] == 0).all())
    assert bool(torch.isnan(grad_rows[valid]).all())
    assert_oracle_matches_torch(case)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_all_ignored_sum_and_none_are_zero(reduction: str) -> None:
    case = Case(n=4, c=3, spatial=(2,), dtype="f64", reduction=reduction, ignore_frac=1.0)
    oracle = multiclass(make_inputs(case))
    assert bool((oracle.loss == 0).all())
    assert bool((oracle.grad == 0).all())
    assert_oracle_matches_torch(case)


# ---- the seed's printed numbers --------------------------------------------------------
SCORES = [[1.0, 2.0, 3.0]]


def test_seed_softmax_and_log_softmax() -> None:
    logp = log_softmax(torch.tensor(SCORES, dtype=F64))
    assert logp.dtype == F64
    assert [round(v, 4) for v in logp.exp()[0].tolist()] == [0.0900, 0.2447, 0.6652]
    assert [round(v, 4) for v in logp[0].tolist()] == [-2.4076, -1.4076, -0.4076]
    assert math.isclose(float(logp.exp().sum()), 1.0, rel_tol=1e-15)


def test_seed_nll_on_raw_scores_just_negates_the_picked_score() -> None:
    scores = torch.tensor(SCORES * 3, dtype=F64)
    picked = F.nll_loss(scores, torch.tensor([0, 1, 2]), reduction="none")
    assert picked.tolist() == [-1.0, -2.0, -3.0]
    # cross-entropy is that same pick applied to log_softmax: the oracle's loss per target
    oracle = multiclass(hand_inputs(SCORES * 3, [0, 1, 2]))
    assert torch.equal(oracle.loss, F.nll_loss(log_softmax(scores), torch.tensor([0, 1, 2]),
                                               reduction="none"))


def test_seed_cross_entropy_of_123_with_target_2() -> None:
    oracle = multiclass(hand_inputs(SCORES, [2], reduction="mean"))
    assert round(float(oracle.loss), 4) == 0.4076
    assert math.isclose(float(oracle.loss), math.log(1 + math.exp(-1) + math.exp(-2)), rel_tol=1e-15)
    # gradient of the mean with upstream 1: softmax minus the one-hot target
    softmax = [math.exp(v) for v in log_softmax(torch.tensor(SCORES, dtype=F64))[0].tolist()]
    expected = [softmax[0], softmax[1], softmax[2] - 1]
    assert oracle.grad[0].tolist() == pytest.approx(expected, rel=1e-14)


def test_weighted_mean_divides_by_target_weight_sum() -> None:
    """Hand check of the normalisation: w = [1, 2, 3], targets 0 and 2 → W = 4, not 2."""
    inputs = hand_inputs(SCORES * 2, [0, 2], reduction="mean", weight=[1.0, 2.0, 3.0])
    logp = log_softmax(torch.tensor(SCORES, dtype=F64))[0]
    want = (1 * -float(logp[0]) + 3 * -float(logp[2])) / 4
    assert math.isclose(float(multiclass(inputs).loss), want, rel_tol=1e-14)


def test_weights_cancelling_to_zero_total_are_a_division_by_zero():
    """The seed's helper on 3x1x1 images gives weights [4, -3]; with 3 negatives and 4
    positives the total weight is exactly 0 under a nonzero numerator: eager returns -inf
    (not the NaN of 0/0), and the oracle says any non-finite value is right there.
    Found by the dev profile: n5-c2-3x1x1-p0.5-bf16-mean-wseed_inverse_freq-ig0.44."""
    from harness.contenders import get
    from harness.equivalence.runner import verify

    case = Case.from_id("n5-c2-3x1x1-p0.5-bf16-mean-wseed_inverse_freq-ig0.44")
    inputs = make_inputs(case)
    truth = multiclass(inputs)
    assert truth.division_by_zero and bool(torch.isnan(truth.loss))
    eager = F.cross_entropy(inputs.logits, inputs.target, weight=inputs.weight)
    assert bool(torch.isinf(eager))
    assert verify(get("eager"), case)["nonfinite"].ok


def test_a_zero_total_weight_is_judged_by_one_rule_with_or_without_smoothing():
    """W = 0 under 'mean' (weights [1, 0], the one target of class 1): without smoothing
    the numerator is 0 too, and 0/0 is NaN; with smoothing the other class's term makes it
    nonzero, a division by zero where inf is as right as NaN (a correct implementation
    that divides once returns inf, which this case used to fail). One rule: the numerator
    decides, whatever produced it."""
    from harness.problem.oracle import multiclass

    plain = multiclass(make_inputs(Case.from_id("n1-c2-1-p0.5-f32-mean-wseed_inverse_freq")))
    smoothed = multiclass(make_inputs(Case.from_id("n1-c2-1-p0.5-f32-mean-wseed_inverse_freq-ls0.1")))
    assert bool(plain.loss.isnan()) and not plain.division_by_zero
    assert bool(smoothed.loss.isnan()) and smoothed.division_by_zero
