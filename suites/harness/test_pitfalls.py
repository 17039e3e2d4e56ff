"""The seed's pitfalls as executable facts, each with the actual numbers (torch on CPU),
and the binary oracle checked against `F.binary_cross_entropy_with_logits` in float64.

Sources are in ../shared/notes/facts.md; the pytorch issue numbers are quoted per test."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from harness.problem import oracle
from harness.problem.bce import binary_kwargs
from harness.problem.case import Case
from harness.problem.inputs import make_inputs

SCORES = torch.tensor([[1.0, 2.0, 3.0]])
LSE = math.log(math.exp(1) + math.exp(2) + math.exp(3))  # 3.4076059644...


@pytest.mark.parametrize("target", [0, 1, 2])
def test_cross_entropy_is_log_softmax_plus_nll(target):
    """CrossEntropyLoss == LogSoftmax + NLLLoss: 2.4076, 1.4076, 0.4076 for [[1, 2, 3]]."""
    y = torch.tensor([target])
    ce = F.cross_entropy(SCORES, y)
    assert float(ce) == pytest.approx(LSE - (target + 1), rel=1e-6)
    assert torch.equal(ce, F.nll_loss(F.log_softmax(SCORES, dim=1), y))


@pytest.mark.parametrize(("target", "expected"), [(0, -1.0), (1, -2.0), (2, -3.0)])
def test_nll_loss_on_raw_scores_just_negates_the_picked_value(target, expected):
    """NLLLoss expects log-probabilities; on raw scores it returns -x[target] — the seed's
    [[1, 2, 3]] gives -1, -2, -3, 'losses' that go down as the score goes up, unbounded."""
    assert float(F.nll_loss(SCORES, torch.tensor([target]))) == expected


def _bce_pair(x: float, dtype=torch.float32):
    """(BCELoss(sigmoid) loss, grad) and (BCEWithLogits loss, grad) on one negative target."""
    out = []
    for fn in (lambda z, t: F.binary_cross_entropy(torch.sigmoid(z), t),
               F.binary_cross_entropy_with_logits):
        z = torch.tensor([x], dtype=dtype, requires_grad=True)
        loss = fn(z, torch.zeros(1, dtype=dtype))
        loss.backward()
        out.append((float(loss.detach()), float(z.grad)))
    return out


@pytest.mark.parametrize("x", [17.0, 20.0, 50.0])
def test_bce_on_sigmoid_clamps_at_100_in_float32(x):
    """pytorch#103316: float32 sigmoid(x) rounds to exactly 1 from x ≈ 16.64, log(1 - 1)
    = -inf is clamped to -100: the loss is exactly 100 (truth ≈ x) and the gradient 0
    (truth ≈ 1). BCEWithLogits stays exact."""
    (clamped, grad), (exact, exact_grad) = _bce_pair(x)
    assert clamped == 100.0 and grad == 0.0
    assert exact == pytest.approx(x, rel=1e-6) and exact_grad == pytest.approx(1.0, rel=1e-6)


def test_bce_on_sigmoid_is_already_off_before_it_saturates():
    """At x = 16 sigmoid is not yet 1, but 1 - σ̂ has only a few bits left: 15.9424
    instead of 16.0000 — a 0.36 % error where BCEWithLogits is exact."""
    (loss, _), (exact, _) = _bce_pair(16.0)
    assert loss == pytest.approx(15.942385, abs=1e-5) and exact == 16.0


@pytest.mark.parametrize(("dtype", "below", "saturated"), [
    (torch.float32, 16.63, 16.64),
    (torch.float16, 7.6, 8.3203125),
    (torch.bfloat16, 5.5, 6.25),
])
def test_where_sigmoid_saturates_per_dtype(dtype, below, saturated):
    """The thresholds `bce_sigmoid`'s limits use: σ(x) == 1 exactly from about 16.64
    (float32), 8.32 (float16), 6.25 (bfloat16); the clamp at -100 follows there."""
    assert float(torch.sigmoid(torch.tensor(below, dtype=dtype))) < 1.0
    assert float(torch.sigmoid(torch.tensor(saturated, dtype=dtype))) == 1.0
    (loss, _), _ = _bce_pair(saturated + 0.5, dtype)
    assert loss == 100.0


def test_pos_weight_inf_with_a_negative_target_is_nan():
    """A per-batch neg/pos ratio on a batch without positives is inf; inf·0 = NaN on the
    negatives, inf on the positives."""
    loss = F.binary_cross_entropy_with_logits(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0]),
                                              pos_weight=torch.tensor([math.inf]), reduction="none")
    assert math.isnan(float(loss[0])) and float(loss[1]) == math.inf


def test_weighted_mean_with_all_target_weights_zero_is_nan_while_sum_is_zero():
    """The mean divides by Σ w[y_n] = 0: 0/0 = NaN. 'sum' gives 0, 'none' zeros."""
    w = torch.tensor([0.0, 1.0, 1.0])
    y = torch.tensor([0, 0])
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    assert math.isnan(float(F.cross_entropy(x, y, weight=w)))
    assert float(F.cross_entropy(x, y, weight=w, reduction="sum")) == 0.0
    assert F.cross_entropy(x, y, weight=w, reduction="none").tolist() == [0.0, 0.0]


def test_softmax_without_dim_warns_and_normalises_over_dim_0_for_3d():
    """(B, T, C) logits without dim= are normalised over the batch, with a warning."""
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 7
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        implicit = F.softmax(x)
    assert any("Implicit dimension choice" in str(w.message) for w in caught)
    assert torch.equal(implicit, F.softmax(x, dim=0))
    assert torch.allclose(implicit.sum(0), torch.ones(3, 4))
    assert not torch.allclose(implicit.sum(-1), torch.ones(2, 3))


def test_label_smoothing_with_class_weights_weights_the_smoothing_term():
    """pytorch#104776: loss = (1-ε)·w_y·nll/W + (ε/C)·Σ_c w_c·(-log p_c)/W. For [[1, 2, 3]],
    target 0, w = [1, 2, 3], ε = 0.3 that is 2.32989; with an unweighted smoothing term it
    would be 2.10761."""
    w, y, eps = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0]), 0.3
    got = float(F.cross_entropy(SCORES, y, weight=w, label_smoothing=eps))
    neg_logp = [LSE - 1, LSE - 2, LSE - 3]
    smooth = sum(wc * v for wc, v in zip(w.tolist(), neg_logp, strict=True))
    weighted = (1 - eps) * neg_logp[0] + eps / 3 * smooth
    unweighted = (1 - eps) * neg_logp[0] + eps / 3 * sum(neg_logp)
    assert got == pytest.approx(weighted, rel=1e-6)
    assert got == pytest.approx(2.3298876, rel=1e-6)
    assert unweighted == pytest.approx(2.1076060, rel=1e-6)


@pytest.mark.parametrize("k", [1e-3, 7.0, 1e4])
def test_scaling_the_weight_vector_leaves_the_weighted_mean_unchanged(k):
    """Σ k·w_y·l / Σ k·w_y: the mean cancels k; the sum scales by it."""
    x = torch.tensor([[0.1, 2.0, -1.0], [1.5, 0.3, 0.0], [-2.0, 1.0, 4.0]], dtype=torch.float64)
    y, w = torch.tensor([0, 2, 1]), torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(F.cross_entropy(x, y, weight=k * w), F.cross_entropy(x, y, weight=w),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(F.cross_entropy(x, y, weight=k * w, reduction="sum"),
                               k * F.cross_entropy(x, y, weight=w, reduction="sum"),
                               rtol=1e-12, atol=0)


def test_one_class_batch_makes_class_weights_cancel():
    """pytorch#50528: with every target of one class (e.g. batch size 1) the weighted mean
    equals the unweighted one — the weights have no effect at all."""
    x, y = torch.tensor([[0.3, -1.2, 2.0]]), torch.tensor([1])
    assert torch.equal(F.cross_entropy(x, y, weight=torch.tensor([1.0, 50.0, 1.0])),
                       F.cross_entropy(x, y))


def test_bce_mean_divides_by_numel_not_by_the_weights():
    """pytorch#54843: BCEWithLogits' mean is Σ l / numel whatever weight and pos_weight
    are; cross_entropy's weighted mean would divide by Σ w_y instead."""
    x, y = torch.tensor([0.2, -0.4, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    pw = torch.tensor([5.0])
    none = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")
    mean = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw)
    assert float(mean) == pytest.approx(float(none.sum()) / 4, rel=1e-6)
    assert float(mean) != pytest.approx(float(none.sum()) / (5 + 1 + 1 + 5), rel=1e-3)


# ---- the binary oracle against F.binary_cross_entropy_with_logits in float64 --------------
ORACLE_CASES = [
    f"{prefix}-n{n}-c1-{shape}-p{p}-f64-{red}{w}{z}"
    for prefix, n, shape, p in [("bin", 3, "4x5", 0.3), ("bin1", 8, "16", 0.05), ("bin1", 5, "3x2x2", 1)]
    for red in ("mean", "sum", "none")
    for w in ("", "-wbalanced", "-wonehot", "-wrandom", "-wseed_inverse_freq")
    for z in ("", "-z30")
]


def _torch_reference(inputs):
    x = inputs.logits.detach().clone().requires_grad_()
    loss = F.binary_cross_entropy_with_logits(x, inputs.target, **binary_kwargs(inputs))
    loss.backward(inputs.grad_out.expand_as(loss))
    return loss.detach(), x.grad


@pytest.mark.parametrize("case_id", ORACLE_CASES)
def test_binary_oracle_matches_bce_with_logits_in_float64(case_id):
    """Relative 1e-12 of each element's condition scale. For unit-scale logits that is
    plain relative 1e-12; for |x| ~ 30 it is needed: torch computes a negative target's loss
    as x - log σ(x), which cancels to about eps·|x| absolute where the true value is ~e^x
    (measured: relative error 1.3 % at x = -30), while the oracle's softplus is exact."""
    inputs = make_inputs(Case.from_id(case_id))
    truth = oracle.binary(inputs)
    loss, grad = _torch_reference(inputs)
    assert torch.isfinite(truth.loss).all()
    assert bool(((loss - truth.loss).abs() <= 1e-12 * truth.loss_scale).all())
    grad_scale = (truth.row_scale * truth.condition).reshape(grad.shape)
    assert bool(((grad - truth.grad).abs() <= 1e-12 * grad_scale).all())
    if "z30" not in case_id:
        torch.testing.assert_close(loss, truth.loss, rtol=1e-12, atol=1e-300)


def test_binary_oracle_nan_where_pos_weight_is_inf_on_a_negative():
    """The oracle follows PyTorch's inf·0 = NaN (π = inf only arises from w0 = 0, which
    `binary_kwargs` avoids; checked here on the formula directly)."""
    x = torch.tensor([0.5, -0.5], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0], dtype=torch.float64)
    pi = torch.tensor([math.inf], dtype=torch.float64)
    per = pi * y * oracle.softplus(-x) + (1 - y) * oracle.softplus(x)
    ref = F.binary_cross_entropy_with_logits(x, y, pos_weight=pi, reduction="none")
    assert torch.isnan(per[0]) and torch.isnan(ref[0]) and per[1] == ref[1] == math.inf


def test_an_in_range_ignore_index_drops_rows_but_keeps_the_class_in_every_softmax():
    """ignore_index=0 (class 0 as background): rows whose target is 0 leave the loss and
    the mean's count, but class 0's logit stays in every other row's softmax. For
    [[1, 2, 3], [1, 2, 3]] with targets [0, 2]: the loss is that of the second row alone,
    LSE - 3 = 0.4076; dropping class 0's column as well would give log(e^2 + e^3) - 3 =
    0.3133."""
    x = SCORES.repeat(2, 1)
    y = torch.tensor([0, 2])
    loss = F.cross_entropy(x, y, ignore_index=0)
    assert float(loss) == pytest.approx(LSE - 3, rel=1e-6)
    wrong = math.log(math.exp(2) + math.exp(3)) - 3
    assert wrong == pytest.approx(0.3133, abs=1e-4) and float(loss) != pytest.approx(wrong, rel=1e-3)
    g = torch.autograd.grad(F.cross_entropy(x.requires_grad_(), y, ignore_index=0), x)[0]
    assert torch.equal(g[0], torch.zeros(3))  # the ignored row has no gradient
    assert float(g[1, 0]) > 0  # class 0 still takes probability in the kept row


def test_an_ignore_index_of_255_outside_the_classes_is_plain_padding():
    """The Pascal VOC / Cityscapes convention: 255 marks unlabelled pixels; with C = 3 it
    is no class, and the loss is the mean over the labelled positions."""
    x = SCORES.repeat(3, 1)
    y = torch.tensor([255, 1, 2])
    assert float(F.cross_entropy(x, y, ignore_index=255)) == pytest.approx(
        ((LSE - 2) + (LSE - 3)) / 2, rel=1e-6)
