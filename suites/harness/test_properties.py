"""The tolerance rule is not vacuous: planted defects are caught by the property meant for
them, both on a hand-picked case and by a Hypothesis search over the contender's own
strategy, while eager `F.cross_entropy` passes the same checks on the same case.

Each defect is the kind of mistake a hand-written loss makes: dropping an argument,
normalising by the wrong number, hiding NaN, mutating inputs, returning the wrong dtype
or shape, or computing in a lower precision than promised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, find, settings

from harness import contenders as registry
from harness.contenders import Capabilities, Contender
from harness.equivalence.properties import PROPERTIES
from harness.equivalence.runner import verify
from harness.problem import strategies
from harness.problem.case import Case
from harness.problem.inputs import make_inputs

SEARCH = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                  phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))


# ---- planted defects, each with F.cross_entropy's signature ----------------------------
def ignores_weight(input, target, weight=None, ignore_index=-100, reduction="mean",
                   label_smoothing=0.0):
    return F.cross_entropy(input, target, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


def ignores_smoothing(input, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction)


def mean_by_count(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Weighted sum divided by the number of non-ignored targets, not their weight sum."""
    kw = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    if reduction != "mean":
        return F.cross_entropy(input, target, reduction=reduction, **kw)
    return F.cross_entropy(input, target, reduction="sum", **kw) / (target != ignore_index).sum()


def ignores_ignore_index(input, target, weight=None, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0):
    """Clamps padding labels into the class range instead of skipping them."""
    clamped = target.clamp(0, input.shape[1] - 1)
    return F.cross_entropy(input, clamped, weight=weight, reduction=reduction,
                           label_smoothing=label_smoothing)


def shifts_logits_in_place(input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    """Max-shifts the caller's logits in place: the loss is unchanged, the caller's data not."""
    input.data.sub_(input.data.amax(dim=1, keepdim=True))
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)


def returns_float32(input, target, weight=None, ignore_index=-100, reduction="mean",
                    label_smoothing=0.0):
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing).float()


def flattens_none(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    loss = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)
    return loss.reshape(-1) if reduction == "none" else loss


def zero_instead_of_nan(input, target, weight=None, ignore_index=-100, reduction="mean",
                        label_smoothing=0.0):
    loss = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)
    return torch.nan_to_num(loss, nan=0.0)


def computes_in_bf16(input, target, weight=None, ignore_index=-100, reduction="mean",
                     label_smoothing=0.0):
    low = None if weight is None else weight.to(torch.bfloat16)
    return F.cross_entropy(input.to(torch.bfloat16), target, weight=low, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing).to(input.dtype)


def off_by_1e4(input, target, weight=None, ignore_index=-100, reduction="mean",
               label_smoothing=0.0):
    """A relative error of 1e-4 in every loss: far beyond float32/float64 rounding."""
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing) * (1 + 1e-4)


def negatives_are_ignored(input, target, weight=None, ignore_index=-100, reduction="mean",
                          label_smoothing=0.0):
    """Treats every negative target as padding, and only those: an in-range ignore_index
    (class 0 as background) is counted as a class."""
    padded = torch.where(target < 0, torch.full_like(target, -100), target)
    return F.cross_entropy(input, padded, weight=weight, ignore_index=-100, reduction=reduction,
                           label_smoothing=label_smoothing)


def soft_mean_by_weights(input, target, weight=None, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0):
    """With probability targets, divides the weighted mean by the weights' total, as the
    class-index form does, instead of by the number of positions."""
    if not target.is_floating_point() or weight is None or reduction != "mean":
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    total = F.cross_entropy(input, target, weight=weight, reduction="sum",
                            label_smoothing=label_smoothing)
    shape = [1, -1] + [1] * (target.dim() - 2)
    return total / (target * weight.reshape(shape)).sum()


def drops_last_block(input, target, weight=None, ignore_index=-100, reduction="mean",
                     label_smoothing=0.0):
    """A blocked log-sum-exp that loses its last block of 64 classes when C > 64 (the
    fused-kernel bug class): those classes vanish from every row's softmax."""
    c = input.shape[1]
    if c <= 64:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    kept = (c - 1) // 64 * 64
    mask = torch.zeros(c, dtype=input.dtype, device=input.device)
    mask[kept:] = float("-inf")
    shape = [1, c] + [1] * (input.dim() - 2)
    masked = torch.where(mask.reshape(shape) == 0, input, mask.reshape(shape))
    # the target's own logit is still read: only the normaliser is wrong
    logz = torch.logsumexp(masked, dim=1, keepdim=True)
    logp = torch.maximum(input - logz, input.new_full((), -1e30))
    return F.nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)


def keeps_a_batch_of_one(input, target, weight=None, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0):
    """Handles an unbatched [C] input by adding a batch of one and never takes it away:
    its 'none' loss comes back shaped [1], not 0-d."""
    if input.dim() == 1:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)


def clamps_log_probabilities(input, target, weight=None, ignore_index=-100, reduction="mean",
                             label_smoothing=0.0):
    """Clamps log-probabilities at -100, as BCELoss does: a target whose logit is masked
    (-inf) costs 100 instead of inf, and its gradient vanishes."""
    logp = F.log_softmax(input, dim=1 if input.dim() > 1 else 0).clamp(min=-100)
    return F.nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)


ALL_CAPS = Capabilities()
NO_SMOOTHING = Capabilities(label_smoothing=False, soft_targets=False)
BATCHED_NO_SMOOTHING = Capabilities(label_smoothing=False, soft_targets=False, unbatched=False)


@dataclass(frozen=True)
class Defect:
    fn: Callable
    props: tuple[str, ...]   # a verdict failing in any of these counts as caught
    case_id: str             # a hand-picked case that must expose it
    caps: Capabilities = ALL_CAPS

    @property
    def contender(self) -> Contender:
        return Contender(self.fn.__name__, "multiclass", self.fn, self.fn.__doc__ or "defect",
                         caps=self.caps, source="planted defect")


F32_ONLY = Capabilities(dtypes=frozenset({"f32"}))
F32_F64 = Capabilities(dtypes=frozenset({"f32", "f64"}))
MEAN_ONLY = Capabilities(reductions=frozenset({"mean"}))
DEFECTS = [
    Defect(ignores_weight, ("loss",), "n8-c3-p0.2-f32-sum-wrandom"),
    Defect(ignores_smoothing, ("loss",), "n8-c5-p0.2-f32-mean-ls0.2"),
    Defect(mean_by_count, ("loss",), "n8-c3-p0.2-f64-mean-wrandom"),
    Defect(ignores_ignore_index, ("loss",), "n8-c3-p0.2-f32-sum-ig0.25"),
    Defect(shifts_logits_in_place, ("inputs",), "n4-c3-p0.5-f32-mean"),
    Defect(returns_float32, ("meta",), "n4-c3-p0.5-f64-mean"),
    Defect(flattens_none, ("meta",), "n2-c3-4x4-p0.5-f32-none"),
    Defect(zero_instead_of_nan, ("nonfinite",), "n4-c3-p0.5-f32-mean-ig1", caps=MEAN_ONLY),
    Defect(computes_in_bf16, ("loss", "grad"), "n8-c3-p0.5-f32-mean-z3", caps=F32_ONLY),
    Defect(off_by_1e4, ("loss",), "n4-c3-p0.5-f64-sum", caps=F32_F64),
    Defect(negatives_are_ignored, ("loss",), "n8-c3-p0.2-f32-sum-ig0.25-ii0"),
    Defect(soft_mean_by_weights, ("loss",), "n8-c3-p0.2-f64-mean-wrandom-soft"),
    Defect(drops_last_block, ("loss", "grad"), "n2-c65-p0.5-f32-mean", caps=BATCHED_NO_SMOOTHING),
    Defect(keeps_a_batch_of_one, ("meta",), "n1-c3-p0.5-f32-none-unbatched"),
    Defect(clamps_log_probabilities, ("loss", "grad", "nonfinite"), "n4-c5-p0.5-f32-sum-m0.5-mt",
           caps=NO_SMOOTHING),
]
IDS = [d.fn.__name__ for d in DEFECTS]


def caught(defect: Defect, case: Case) -> bool:
    verdicts = verify(defect.contender, case)
    return any(not verdicts[p].ok for p in defect.props)


def assert_eager_passes(case: Case) -> None:
    verdicts = verify(registry.get("eager"), case)
    bad = {p: v.detail for p, v in verdicts.items() if not v.ok}
    assert not bad, f"eager fails on {case.id}: {bad}"


# ---- tests -----------------------------------------------------------------------------
@pytest.mark.parametrize("defect", DEFECTS, ids=IDS)
def test_defect_caught_on_picked_case(defect: Defect) -> None:
    case = Case.from_id(defect.case_id)
    assert defect.contender.skip_reason(case) is None
    assert caught(defect, case), f"{defect.fn.__name__} passes on {case.id}"
    assert_eager_passes(case)


@pytest.mark.parametrize("defect", DEFECTS, ids=IDS)
def test_defect_found_by_search(defect: Defect) -> None:
    """Hypothesis finds (and shrinks) a counterexample in the defect's own strategy."""
    contender = defect.contender
    with strategies.without_local_constants():  # the same search whatever else is loaded
        case = find(strategies.for_contender(contender), lambda c: caught(defect, c), settings=SEARCH)
    assert contender.skip_reason(case) is None
    assert_eager_passes(case)


@pytest.mark.parametrize("defect", DEFECTS, ids=IDS)
def test_defect_is_silent_elsewhere(defect: Defect) -> None:
    """Only the targeted properties fail: each defect is caught for the right reason.
    (A defect that changes the loss also changes what depends on it, so this is asked
    only of the properties the defect cannot touch.)"""
    untouched = {"inputs": {"shifts_logits_in_place"}, "meta": {"returns_float32", "flattens_none",
                                                             "keeps_a_batch_of_one"}}
    verdicts = verify(defect.contender, Case.from_id(defect.case_id))
    for prop, culprits in untouched.items():
        if defect.fn.__name__ not in culprits:
            assert verdicts[prop].ok, f"{defect.fn.__name__}: {prop} fails: {verdicts[prop].detail}"


def test_a_dropped_last_block_shrinks_to_the_first_size_past_one_block() -> None:
    """Vocabulary-sized C is generated with the sizes that break blocked kernels: the
    search ends on C = 65, one class past a block of 64, a counterexample small enough
    to read."""
    defect = next(d for d in DEFECTS if d.fn is drops_last_block)
    with strategies.without_local_constants():
        case = find(strategies.for_contender(defect.contender), lambda c: caught(defect, c),
                    settings=SEARCH)
    assert case.c == 65, case.id


def test_count_normalisation_is_invisible_under_balanced_weights() -> None:
    """Why the picked case for `mean_by_count` uses random weights: 'balanced' weights
    satisfy Σ n_c·w_c = N, so the weight sum equals the count and the defect is exact."""
    case = Case.from_id("n8-c3-p0.2-f64-mean-wbalanced")
    assert not caught(DEFECTS[2], case)
    assert caught(DEFECTS[2], case.replace(weights="random"))


def test_failure_detail_names_the_error() -> None:
    verdict = verify(DEFECTS[0].contender, Case.from_id(DEFECTS[0].case_id))["loss"]
    assert not verdict.ok
    assert "oracle" in verdict.detail and "bound" in verdict.detail
    assert verdict.max_abs > 0


def test_eager_passes_every_property_on_a_fixed_draw() -> None:
    eager = registry.get("eager")
    for case in strategies.draw_cases(strategies.for_contender(eager), 25):
        verdicts = verify(eager, case)
        assert set(verdicts) == set(PROPERTIES)
        assert all(v.ok for v in verdicts.values()), (case.id, verdicts)


def test_raising_contender_fails_every_output_property() -> None:
    def broken(input, target, **kwargs):
        raise RuntimeError("kernel not implemented")

    verdicts = verify(Contender("broken", "multiclass", broken, "raises"), Case(n=2, c=3))
    for prop in ("loss", "grad", "nonfinite", "meta"):
        assert not verdicts[prop].ok
        assert "kernel not implemented" in verdicts[prop].detail


def _mixed_regime_case():
    """A 'none' case in which softmax→log breaks on some rows and is exact on others."""
    from harness.contenders import get
    from harness.equivalence.runner import solve

    limits = get("softmax_log_nll").limits
    for seed in range(200):
        case = Case(n=16, c=2, reduction="none", scale=100.0, seed=seed)
        inputs = make_inputs(case)
        regimes = limits(inputs, solve(inputs)).loss_regimes
        if bool((regimes == 0).any()) and bool((regimes == 2).any()):
            return case
    raise AssertionError("no seed below 200 mixes exact and breaking rows")


def test_rows_theory_calls_exact_are_still_compared_when_others_break():
    """Element-wise regimes: the breaking rows must be inf, and the exact rows must match;
    an error planted on the exact rows alone is caught."""
    from harness.contenders import get
    from harness.contenders.multiclass import softmax_log_nll

    case = _mixed_regime_case()
    honest = verify(get("softmax_log_nll"), case)
    assert honest["loss"].ok and honest["loss"].regime == "breaks" and honest["loss"].compared

    def nudged(input, target, **kwargs):
        out = softmax_log_nll(input, target, **kwargs)
        return torch.where(torch.isfinite(out), out * 1.001, out)

    planted = Contender("nudged", "multiclass", nudged, "test", caps=get("softmax_log_nll").caps,
                        limits=get("softmax_log_nll").limits)
    assert not verify(planted, case)["loss"].ok


@pytest.mark.parametrize("case_id", [
    # Found by the thorough profile: a row's unscaled smoothing sum overflows float16.
    "n1-c5-p0.5-f16-none-ls0.1-z10000",
    # Found by the thorough profile: the seed's weights [-65.5, 66.5] cancel to W = 7 and
    # eager sums W in bfloat16: its gradient is 16 % off, within the cancellation term.
    "n3-c2-2x3-p0.5-bf16-mean-wseed_inverse_freq-ig0.25",
    # Found by the thorough profile: the seed's weights [-300, 301] overflow a float16 W.
    "n2-c2-6x5x5-p0-f16-mean-wseed_inverse_freq-ig0.25",
    # Found by the thorough profile: an overflowing exact sum comes out NaN (0 · inf inside).
    "n1-c2-6-p0.5-f16-sum-wrandom-ls1-z10000",
])
def test_eager_low_precision_findings_are_within_the_documented_rules(case_id):
    verdicts = verify(registry.get("eager"), Case.from_id(case_id))
    assert all(v.ok for v in verdicts.values()), {k: v.detail for k, v in verdicts.items()}


def test_cancellation_term_is_zero_for_weights_of_one_sign():
    from harness.equivalence.properties import cancellation_rtol
    from harness.problem.oracle import multiclass

    inputs = make_inputs(Case(n=4, c=3, spatial=(5,), weights="balanced", dtype="bf16"))
    assert cancellation_rtol(multiclass(inputs), inputs) == 0.0
    seed = make_inputs(Case.from_id("n3-c2-2x3-p0.5-bf16-mean-wseed_inverse_freq-ig0.25"))
    assert cancellation_rtol(multiclass(seed), seed) > 0.1


# ---- each property judges only its own thing -------------------------------------------
HALF = Capabilities(dtypes=frozenset({"f16", "bf16"}))


def test_float32_for_half_inputs_fails_meta_only() -> None:
    """Judged in the input's precision and the returned dtype's range, a float32 result of
    half inputs is `meta`'s finding alone (it used to fail `loss` and `nonfinite` too:
    "oracle says ±inf (oracle 69579.8), got 69579.8")."""
    widened = Contender("widened", "multiclass", returns_float32, "test", caps=HALF)
    for case in strategies.draw_cases(strategies.for_contender(widened), 30):
        failing = {p for p, v in verify(widened, case).items() if not v.ok}
        assert failing == {"meta"}, (case.id, failing)


def keeps_a_column(input, target, weight=None, ignore_index=-100, reduction="mean",
                   label_smoothing=0.0):
    """smp's SoftCrossEntropyLoss shape: an [N, 1] 'none' loss for [N] targets."""
    loss = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)
    return loss.unsqueeze(1) if reduction == "none" else loss


def test_a_wrong_shape_is_meta_and_the_values_are_still_compared() -> None:
    column = Contender("column", "multiclass", keeps_a_column, "test")
    verdicts = verify(column, Case.from_id("n6-c4-p0.5-f32-none-wrandom-ig0.25"))
    assert not verdicts["meta"].ok and "(6, 1)" in verdicts["meta"].detail
    assert all(verdicts[p].ok and verdicts[p].compared for p in ("loss", "grad", "nonfinite"))
    verdicts = verify(column, Case.from_id("n6-c4-p0.5-f32-sum"))  # a 0-d sum: right
    assert all(v.ok for v in verdicts.values())

    def unreduced(input, target, **kwargs):  # returns 'none' whatever was asked
        return F.cross_entropy(input, target, **{**kwargs, "reduction": "none"})

    verdicts = verify(Contender("unreduced", "multiclass", unreduced, "test"),
                      Case.from_id("n6-c4-p0.5-f32-sum"))
    assert not verdicts["meta"].ok
    assert verdicts["loss"].ok and not verdicts["loss"].compared, verdicts["loss"].detail
    assert verdicts["grad"].ok  # a scalar upstream gradient broadcasts: the sum's gradient

    def always_mean(input, target, **kwargs):
        return F.cross_entropy(input, target, **{**kwargs, "reduction": "mean"})

    verdicts = verify(Contender("always_mean", "multiclass", always_mean, "test"),
                      Case.from_id("n6-c4-p0.5-f32-none"))
    assert not verdicts["meta"].ok
    assert not verdicts["grad"].compared and "cannot take the upstream gradient" in verdicts["grad"].detail


def test_a_contender_that_hangs_is_a_failure_within_the_timeout() -> None:
    import time

    def hangs(input, target, **kwargs):
        time.sleep(3600)

    started = time.monotonic()
    verdicts = verify(Contender("hangs", "multiclass", hangs, "test"),
                      Case.from_id("n2-c3-p0.5-f32-mean"), timeout=0.5)
    assert time.monotonic() - started < 10
    assert all(not v.ok and "CallTimeout" in v.detail
               for p, v in verdicts.items() if p != "inputs")


def test_an_interpreted_contender_is_called_once_per_case_for_its_five_properties(monkeypatch) -> None:
    """`verdict_of` keeps an interpreted contender's verdicts per case (its call is most of
    a property test's cost); each property still gets its own verdict from that call, and
    a contender that is not interpreted is called once per property."""
    from harness.equivalence import runner

    monkeypatch.setattr(runner, "_INTERPRETED_VERDICTS", {})  # this test's calls, not a rerun's
    calls = {"n": 0}

    def wrong_grad(input, target, weight=None, ignore_index=-100, reduction="mean",
                   label_smoothing=0.0):  # right loss, gradient doubled
        calls["n"] += 1
        loss = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
        return 2 * loss - loss.detach()

    case = Case.from_id("n2-c3-4-p0.5-f32-mean")
    interpreted = Contender("interp_wrong_grad", "multiclass", wrong_grad, "test",
                            why_untimed=lambda: "runs in an interpreter")
    got = {prop: runner.verdict_of(interpreted, case, "cpu", prop) for prop in PROPERTIES}
    assert calls["n"] == 1
    assert got["loss"].ok and not got["grad"].ok and got["grad"].prop == "grad"
    assert {prop: v.prop for prop, v in got.items()} == {p: p for p in PROPERTIES}
    plain = Contender("plain_wrong_grad", "multiclass", wrong_grad, "test")
    calls["n"] = 0
    assert not runner.verdict_of(plain, case, "cpu", "grad").ok
    assert runner.verdict_of(plain, case, "cpu", "loss").ok and calls["n"] == 2
    # another function under the same name and source is its own entry, not the first's verdicts
    right = Contender("interp_wrong_grad", "multiclass", F.cross_entropy, "test",
                      why_untimed=lambda: "runs in an interpreter")
    assert runner.verdict_of(right, case, "cpu", "grad").ok
