"""The binary family's machinery: the BCE conversions of `harness.problem.bce`, both
families' strategies reaching every regime and scheme, and BCELoss-on-sigmoid's known
limits asserted where theory predicts them. The binary property suite itself is
``suites/contenders/test_equivalence.py`` (``test_binary_property``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.contenders import get
from harness.equivalence.runner import verify
from harness.problem import bce, strategies
from harness.problem.case import Case
from harness.problem.expectations import Expect
from harness.problem.inputs import make_inputs
from harness.problem.weights import SCHEMES


# ---- the conversions of harness.problem.bce ---------------------------------------------------
def _binary_batch(seed: int = 0, shape=(4, 1, 3, 5)):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 4
    y = (torch.rand(shape, generator=gen) < 0.3).to(torch.float64)
    return x, y


@pytest.mark.parametrize("w", [(0.25, 3.0), (2.0, 0.5), (1.0, 1.0), (-1.0, 2.0)])
def test_pos_weight_form_equals_elementwise_form(w):
    """ω = w0, π = w1/w0 and ω_n = w_{y_n} are the same loss under 'none' and 'sum'."""
    x, y = _binary_batch()
    cw = torch.tensor(w, dtype=torch.float64)
    omega, pi = bce.pos_weight_form(cw, torch.float64)
    elementwise = bce.class_weight_of_targets(cw, y)
    for reduction in ("none", "sum", "mean"):
        a = F.binary_cross_entropy_with_logits(x, y, weight=omega, pos_weight=pi, reduction=reduction)
        b = F.binary_cross_entropy_with_logits(x, y, weight=elementwise, reduction=reduction)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert bce.as_class_weights(omega, pi, torch.float64).tolist() == pytest.approx(list(w))


def test_pos_weight_form_needs_a_nonzero_negative_weight():
    """w0 = 0 has no pos_weight form: π = inf gives inf·0 = NaN on every negative target,
    so `binary_kwargs` falls back to the element-wise weight."""
    assert bce.pos_weight_form(torch.tensor([0.0, 1.0]), torch.float32) is None
    x, y = torch.tensor([1.0, -1.0]), torch.tensor([0.0, 1.0])
    naive = F.binary_cross_entropy_with_logits(x, y, weight=torch.tensor([0.0]),
                                               pos_weight=torch.tensor([float("inf")]),
                                               reduction="none")
    assert torch.isnan(naive[0])
    inputs = make_inputs(Case(n=3, c=1, family="binary", spatial=(2, 2), weights="onehot"))
    kw = bce.binary_kwargs(inputs)
    assert kw["pos_weight"] is None and kw["weight"].shape == inputs.target.shape
    assert torch.equal(kw["weight"], inputs.target)  # [0, 1][y] = y


def test_bce_mean_is_not_cross_entropys_weighted_mean():
    """BCE's mean divides by numel, cross_entropy's by Σ w_{y_n}: they differ by W / numel,
    and `ce_mean_to_bce_mean` / `bce_mean_to_ce_mean` convert exactly."""
    x, y = _binary_batch(1)
    w = torch.tensor([0.1, 5.0], dtype=torch.float64)
    rows = torch.stack([torch.zeros_like(x), x], -1).reshape(-1, 2)
    ce_mean = F.cross_entropy(rows, y.long().reshape(-1), weight=w)
    omega, pi = bce.pos_weight_form(w, torch.float64)
    bce_mean = F.binary_cross_entropy_with_logits(x, y, weight=omega, pos_weight=pi)
    total_w = bce.class_weight_of_targets(w, y).sum()
    assert float((ce_mean - bce_mean).abs()) > 0.1 * float(bce_mean)
    torch.testing.assert_close(bce.ce_mean_to_bce_mean(ce_mean, total_w, x.numel()), bce_mean,
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(bce.bce_mean_to_ce_mean(bce_mean, total_w, x.numel()), ce_mean,
                               rtol=1e-12, atol=0)


# ---- imbalance reaches every contender (issue 3, item 5) -----------------------------------
_REGIMES = {
    "p=0": lambda c: c.p == 0.0,
    "p=1": lambda c: c.p == 1.0,
    "extreme ratio": lambda c: 0.0 < c.p <= 1e-3,
}


# One fixed draw per strategy (`strategies.draw_cases`, seeded: the same cases in every
# run), every regime and scheme looked for in it. Each `find` (up to 3,000 examples, then a
# shrink) per predicate had cost 33 s for these tests; the draw costs 1-3 s per strategy.
DRAWN = 200


def _unreached(strategy, schemes) -> list[str]:
    """The regimes and weight schemes none of `DRAWN` drawn cases has."""
    drawn = strategies.draw_cases(strategy, DRAWN)
    wanted = {**_REGIMES, **{f"weights={s}": (lambda c, s=s: c.weights == s) for s in schemes}}
    return [name for name, holds in wanted.items() if not any(holds(c) for c in drawn)]


def _targets(binary_contender_or_family):
    if isinstance(binary_contender_or_family, str):
        return strategies.cases(family=binary_contender_or_family)
    return strategies.for_contender(binary_contender_or_family)


@pytest.mark.parametrize("family", ["binary", "multiclass"])
def test_strategy_reaches_every_regime_and_scheme(family):
    """Both families' strategies generate p = 0, p = 1, extreme ratios and every scheme."""
    missing = _unreached(_targets(family), SCHEMES)
    assert not missing, f"{family}: never generates {missing}"


def test_each_binary_contender_sees_every_regime_and_scheme(binary_contender):
    schemes = SCHEMES[1:] if binary_contender.caps.weights else ()
    missing = _unreached(_targets(binary_contender), schemes)
    assert not missing, f"{binary_contender.name}: never gets {missing}"


# ---- bce_sigmoid's limits are asserted, not just skipped ---------------------------------
@pytest.mark.parametrize(("case_id", "loss", "grad"), [
    ("bin1-n4-c1-8-p0.5-f32-none", Expect.EXACT, Expect.EXACT),
    ("bin1-n4-c1-8-p0.5-f32-none-z30", Expect.DEPARTS, Expect.DEPARTS),
    ("bin-n4-c1-8-p0.5-f32-mean-wbalanced-z30", Expect.DEPARTS, Expect.DEPARTS),
    ("bin1-n4-c1-8-p0.5-f64-none-z100", Expect.DEPARTS, Expect.DEPARTS),
    ("bin1-n4-c1-8-p0.5-f64-sum-z100", Expect.DEGRADED, Expect.DEPARTS),
    ("bin1-n4-c1-8-p0.5-f16-none-z30", Expect.DEPARTS, Expect.BREAKS),
    ("bin1-n4-c1-8-p0.5-bf16-none-z30", Expect.DEPARTS, Expect.DEGRADED),
])
def test_bce_sigmoid_breakdown_is_predicted_and_observed(case_id, loss, grad):
    """Theory's verdict for BCELoss(sigmoid(x)), and every property holding under it —
    a departure that did not happen would fail here."""
    contender, case = get("bce_sigmoid"), Case.from_id(case_id)
    from harness.equivalence.runner import solve

    inputs = make_inputs(case)
    expect = contender.limits(inputs, solve(inputs))
    assert (expect.loss, expect.grad) == (loss, grad), expect.reason
    verdicts = verify(contender, case)
    assert all(v.ok for v in verdicts.values()), {k: v.detail for k, v in verdicts.items()}


def test_bce_sigmoid_loss_is_exactly_100_where_sigmoid_saturates():
    case = Case.from_id("bin1-n4-c1-8-p0.5-f32-none-z30")
    inputs = make_inputs(case)
    loss = get("bce_sigmoid")(inputs.logits, inputs.target, **bce.binary_kwargs(inputs))
    saturated = ((inputs.logits > 17) & (inputs.target == 0)) | (
        (inputs.logits < -104) & (inputs.target == 1))
    assert bool(saturated.any())
    assert bool((loss[saturated] == 100).all())
