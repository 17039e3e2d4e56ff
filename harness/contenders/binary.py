"""Built-in binary contenders, each with the signature and semantics of
`F.binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None,
reduction='mean')` — see `harness.problem.bce` for what those arguments mean and how they
convert to other formulations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.contenders import Capabilities, Contender, register
from harness.contenders.compiled import CompiledFunction
from harness.problem.bce import as_class_weights, as_elementwise_weight, ce_sum_to_bce_mean
from harness.problem.expectations import Expect, Expectation, tolerance


def bce_logits(input, target, weight=None, pos_weight=None, reduction="mean"):
    """nn.BCEWithLogitsLoss: the reference formulation."""
    loss = torch.nn.BCEWithLogitsLoss(weight=weight, pos_weight=pos_weight, reduction=reduction)
    return loss(input, target)


def bce_sigmoid(input, target, weight=None, pos_weight=None, reduction="mean"):
    """nn.BCELoss on sigmoid(x), as the seed writes it. BCELoss has no pos_weight, so π is
    folded into a per-element weight (exact for 0/1 targets)."""
    elementwise = as_elementwise_weight(target, weight, pos_weight)
    if elementwise is not None:
        elementwise = elementwise.broadcast_to(input.shape)
    loss = torch.nn.BCELoss(weight=elementwise, reduction=reduction)
    return loss(torch.sigmoid(input), target)


def ce_two_class(input, target, weight=None, pos_weight=None, reduction="mean"):
    """F.cross_entropy on the logits stacked as [0, z] (one row of two classes per element):
    log-softmax of [0, z] is [log(1-σ(z)), log σ(z)]. Single-number (ω, π) become class
    weights [ω, ω·π]; per-element ones multiply the unweighted 'none' losses. Either way
    the mean is BCE's — sum / numel — not cross_entropy's weighted mean (`harness.problem.bce`).
    The rows are flattened to [numel, 2]: cross_entropy over a class dim 1 of a 5-D input
    is some 50x slower on CPU (28 ms against 0.5 ms for 512 elements, measured)."""
    stacked = torch.stack([torch.zeros_like(input), input], dim=-1).reshape(-1, 2)
    classes = target.round().long().reshape(-1)
    class_w = as_class_weights(weight, pos_weight, input.dtype)
    if class_w is not None or (weight is None and pos_weight is None):
        per = F.cross_entropy(stacked, classes, weight=class_w, reduction="none")
        per = per.reshape(input.shape)
    else:
        per = F.cross_entropy(stacked, classes, reduction="none").reshape(input.shape)
        per = per * as_elementwise_weight(target, weight, pos_weight)
    if reduction == "none":
        return per
    total = per.sum()
    return total if reduction == "sum" else ce_sum_to_bce_mean(total, input.numel())


# ---- bce_sigmoid's known limits --------------------------------------------------------
# Theory, confirmed by measurement on CPU (torch 2.13). sigmoid rounds to exactly 1 from
# SATURATES (1 + e^-x rounds to 1 in float32/64; the float32 result rounds to 1 in half
# precision), and to 0 below -UNDERFLOWS; BCELoss then clamps log(0) to -100, so the loss
# is exactly 100·w while the truth is about |x|. Before saturation log(1 - σ̂) from a
# rounded σ̂ already errs by about (eps/2)·e^x, beyond the harness tolerance from
# LOSS_EXACT on. Backward divides by max(σ(1-σ), 1e-12): where σ(1-σ) < 1e-12 (|x| > 27.6)
# the gradient shrinks towards 0; in float16 the 1e-12 rounds to 0, so a saturated σ gives
# 0/0 = NaN, and a positive target with σ < 1/65504 (x < -11.09) gives -inf.
SATURATES = {"f64": 36.74, "f32": 16.64, "bf16": 6.25, "f16": 8.32}
UNDERFLOWS = {"f64": 745.0, "f32": 88.7, "bf16": 88.7, "f16": 17.33}
LOSS_EXACT = {"f64": 5.0, "f32": 5.0, "bf16": 3.0, "f16": 3.0}
# Where log σ(x) of a positive target stops being accurate: σ subnormal (or log < -100).
LOSS_EXACT_NEG = {"f64": 99.0, "f32": 87.0, "bf16": 87.0, "f16": 9.0}
GRAD_CLAMP = 27.63  # σ(1-σ) = 1e-12
F16_NEG_INF = 11.09  # float16: 1/σ(x) > 65504
MARGIN = 0.5


def _band(u: torch.Tensor, exact_to: float, breaks_from: float,
          margin: float = MARGIN) -> tuple[torch.Tensor, torch.Tensor]:
    """(uncertain, broken) masks for a coordinate u that is fine up to exact_to and surely
    broken above breaks_from + margin."""
    broken = u > breaks_from + margin
    return (u > exact_to) & ~broken, broken


def _loss_bands(x, y, dtype: str):
    pos, neg = y > 0.5, y <= 0.5
    unc0, brk0 = _band(torch.where(neg, x, -torch.inf), LOSS_EXACT[dtype], SATURATES[dtype])
    limit = min(UNDERFLOWS[dtype], 100.0)
    unc1, brk1 = _band(torch.where(pos, -x, -torch.inf), LOSS_EXACT_NEG[dtype], limit)
    near_100 = (x.abs() - 100).abs() < 1  # clamped 100 is then about right
    return (unc0 | unc1 | ((brk0 | brk1) & near_100)), (brk0 | brk1) & ~near_100


def _grad_bands(x, y, dtype: str):
    pos, neg = y > 0.5, y <= 0.5
    if dtype == "f16":
        unc_hi, brk_hi = _band(x, SATURATES["f16"] - 0.7, SATURATES["f16"], margin=0.05)
        unc_lo, brk_lo = _band(-x, UNDERFLOWS["f16"] - 1.0, UNDERFLOWS["f16"])
        unc_p, brk_p = _band(torch.where(pos, -x, -torch.inf), 9.0, F16_NEG_INF)
        return unc_hi | unc_lo | unc_p, brk_hi | brk_lo | brk_p
    sat = min(SATURATES[dtype], GRAD_CLAMP)
    unc0, brk0 = _band(torch.where(neg, x, -torch.inf), sat - 0.7, sat)
    unc1, brk1 = _band(torch.where(pos, -x, -torch.inf), GRAD_CLAMP - 0.7, GRAD_CLAMP)
    # Where the true gradient is itself ~1e-12 (σ on a negative, 1-σ on a positive), the
    # clamp's error is ~1e-12 too: beyond float64's tolerance for a few units of |x|.
    tiny = torch.where(neg, -x, x)
    unc_tiny = (tiny > GRAD_CLAMP - 0.7) & (tiny < GRAD_CLAMP + 4) & (dtype == "f64")
    return unc0 | unc1 | unc_tiny, brk0 | brk1


def _bound(scale: torch.Tensor, dtype: torch.dtype, terms: int) -> torch.Tensor:

    rtol, atol, _ = tolerance(dtype, terms)
    return atol + rtol * scale


def _loss_expect(x, y, eff_w, oracle, case) -> Expect:
    """EXACT when no weighted element is inexact; DEPARTS when the clamped elements'
    predicted error (100·w against w·softplus) clearly exceeds the tolerance plus anything
    the uncertain elements could add; DEGRADED otherwise."""
    from harness.problem.oracle import softplus

    uncertain, broken = _loss_bands(x, y, case.dtype)
    live = eff_w != 0
    uncertain, broken = uncertain & live, broken & live
    if not bool((uncertain | broken).any()):
        return Expect.EXACT
    fmax = torch.finfo(case.torch_dtype).max
    if not bool(broken.any()) or bool((oracle.loss.abs() > fmax).all()):
        return Expect.DEGRADED  # nothing to compare: the exact loss overflows the dtype
    true = torch.where(y > 0.5, softplus(-x), softplus(x))
    err = eff_w * (100 - true)
    worst_other = (eff_w.abs() * (100 + x.abs()))[uncertain]
    if case.reduction == "none":
        bound = _bound(oracle.loss_scale.reshape(-1), case.torch_dtype, 1)
        visible = broken & (oracle.loss.reshape(-1).abs() <= fmax)
        return Expect.DEPARTS if bool((err.abs() > 10 * bound)[visible].any()) else Expect.DEGRADED
    factor = 1.0 if case.reduction == "sum" else 1.0 / max(x.numel(), 1)
    predicted = factor * err[broken].sum().abs()
    others = factor * worst_other.sum()
    bound = _bound(oracle.loss_scale, case.torch_dtype, max(case.positions, 1))
    return Expect.DEPARTS if bool(predicted > 2 * others + 10 * bound) else Expect.DEGRADED


def _grad_expect(x, y, true_size, oracle, case) -> Expect:
    """Half precision: BREAKS (NaN/-inf) where σ saturates. Otherwise DEPARTS when a
    vanishing-gradient element's true gradient (``true_size``, |a_n·ω_n·(π_n·y_n + 1 - y_n)|,
    of which at least half is lost) clearly exceeds its tolerance; DEGRADED in the bands
    around the thresholds."""
    uncertain, broken = _grad_bands(x, y, case.dtype)
    if not bool((uncertain | broken).any()):
        return Expect.EXACT
    if case.dtype == "f16":
        return Expect.BREAKS if bool(broken.any()) else Expect.DEGRADED
    scale = oracle.row_scale * oracle.condition
    terms = max(case.positions, 1) if case.reduction == "mean" else 1
    bound = _bound(scale, case.torch_dtype, terms)
    departs = broken & (0.5 * true_size > 10 * bound)
    return Expect.DEPARTS if bool(departs.any()) else Expect.DEGRADED


def bce_sigmoid_limits(inputs, oracle) -> Expectation:
    """Where BCELoss(sigmoid(x)) is predicted to depart from BCEWithLogits (see the table
    above): per element, from the case's logits, targets and effective weights."""
    from harness.problem.bce import binary_kwargs
    from harness.problem.oracle import oracle_device

    case = inputs.case
    kw = binary_kwargs(inputs)
    # In float64 where the oracle it is compared with was computed
    dev = oracle_device(inputs)
    x = inputs.logits.detach().to(dev, torch.float64).reshape(-1)
    y = inputs.target.detach().to(dev, torch.float64).reshape(-1)
    eff = as_elementwise_weight(y.reshape(inputs.logits.shape),
                                *(None if t is None else t.to(dev, torch.float64)
                                  for t in (kw["weight"], kw["pos_weight"])))
    eff_w = torch.ones_like(x) if eff is None else eff.broadcast_to(inputs.logits.shape).reshape(-1)
    g = inputs.grad_out.detach().to(dev, torch.float64).reshape(-1)
    a = g / max(x.numel(), 1) if case.reduction == "mean" else g
    loss = _loss_expect(x, y, eff_w, oracle, case)
    grad = _grad_expect(x, y, (a * eff_w).abs(), oracle, case)
    big = float(x.abs().max()) if x.numel() else 0.0
    return Expectation(loss, grad, f"{case.dtype} sigmoid saturates at |x| ≈ {SATURATES[case.dtype]}"
                                   f", BCELoss clamps log at -100; max |x| {big:.4g}")


class CompiledBinary(CompiledFunction):
    """`CompiledFunction` with BCE's signature: dynamo specialises on dtype, rank,
    contiguity, reduction, and weight / pos_weight being None or a tensor (and their shape
    being [1] or the input's) — the binary compile signature."""

    def __call__(self, input, target, weight=None, pos_weight=None, reduction="mean"):
        return self.run((input, target, weight, pos_weight, reduction))


def _bce_logits_body(input, target, weight, pos_weight, reduction):
    return F.binary_cross_entropy_with_logits(input, target, weight=weight, pos_weight=pos_weight,
                                              reduction=reduction)


register(Contender("bce_logits", "binary", bce_logits, "nn.BCEWithLogitsLoss"))
register(Contender("bce_sigmoid", "binary", bce_sigmoid,
                   "nn.BCELoss on sigmoid(x), as in the seed — clamps log at -100",
                   limits=bce_sigmoid_limits,
                   # its limits model 0/1 targets: which one log term the clamp cuts
                   caps=Capabilities(soft_targets=False)))
register(Contender("ce_two_class", "binary", ce_two_class,
                   "F.cross_entropy on [0, z] with converted weights and normalisation",
                   caps=Capabilities(soft_targets=False)))
_compiled = CompiledBinary("compiled_bce_logits", _bce_logits_body)
register(Contender("compiled_bce_logits", "binary", _compiled,
                   "torch.compile(F.binary_cross_entropy_with_logits), dynamic shapes",
                   compiled=_compiled.stats))
