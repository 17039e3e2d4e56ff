r"""The exact answer: cross-entropy and its gradient in float64, written from the formulas.

Multi-class (class-index targets), for position n with target y_n, logits x_n·, class
weights w (ones when absent), smoothing ε, C classes, and v_n = [y_n != ignore_index]:

    logp_nc = x_nc - logsumexp_c(x_n·)            (max-shifted, in float64)
    l_n     = v_n · [ (1-ε)·w_{y_n}·(-logp_{n,y_n}) + (ε/C)·Σ_c w_c·(-logp_nc) ]
    W       = Σ_n v_n·w_{y_n}                      (the sum of the targets' weights)
    none: l_n        sum: Σ_n l_n        mean: Σ_n l_n / W   (NaN when W = 0)

Both terms of the mean are divided by W, so the class weights also weight the smoothing
term. The gradient is analytic, not autograd: with p = exp(logp), upstream gradient g and
row factor a_n (g_n for none, g for sum, g / W for mean),

    ∂/∂x_nk = a_n · v_n · [ (1-ε)·w_{y_n}·(p_nk - [k = y_n]) + (ε/C)·(p_nk·Σ_c w_c - w_k) ]

Masked logits (x = -inf: vocabulary padding, constrained decoding) have logp = -inf and
p = 0, and drop out of everything else exactly. A target whose own logit is -inf has the
loss +inf (NaN where its weight is 0: 0·inf, as `F.nll_loss` computes it); with label
smoothing every non-ignored row holding a masked class is +inf too. The gradient stays
finite (p - onehot). An unbatched case ([C] logits, 0-d target) is one row.

PyTorch's contract when W = 0 under 'mean': the loss is NaN; ignored rows get a zero
gradient and non-ignored rows (whose weights are all 0) a NaN gradient. When weights of
both signs cancel to W = 0 under a nonzero numerator (the seed's helper does this), the
value is a division by zero — ±inf or NaN by the sign of a zero — and the result says so
(``division_by_zero``): any non-finite value is then right.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.problem.inputs import Inputs
from harness.problem.layout import class_rows

F64 = torch.float64


@dataclass(frozen=True)
class OracleResult:
    """Exact loss and gradient, plus what the tolerance rule needs to know about the case.

    ``logp`` is [positions, C] with the class dim last; ``valid`` marks non-ignored
    positions; ``row_scale`` is |a_n| · ((1-ε)·w_{y_n} + (ε/C)·Σ w), the largest a row's
    gradient entries can be; ``condition`` is a row's condition number 1 + max|x| + log C;
    ``weighted_sum`` is the largest partial sum a reduction forms (Σ l_n, the nll and the
    unscaled smoothing sums); ``loss_scale`` is the loss with
    every -log p replaced by the condition number, reduced like the loss."""

    loss: torch.Tensor
    grad: torch.Tensor
    logp: torch.Tensor
    valid: torch.Tensor
    target_logp: torch.Tensor
    row_scale: torch.Tensor
    condition: torch.Tensor
    loss_scale: torch.Tensor
    weighted_sum: torch.Tensor
    division_by_zero: bool = False
    row_partials: torch.Tensor | None = None
    weight_condition: float = 1.0
    weight_abs_sum: float = 0.0


def oracle_device(inputs) -> torch.device:
    """Where the float64 answer is computed: on the inputs' GPU when they are on one (a
    134M-element case took longer on the host than every benchmark of it), else the CPU.
    Every tensor of an `OracleResult` is on this device."""
    device = inputs.logits.device
    return device if device.type == "cuda" else torch.device("cpu")


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    """Max-shifted log-softmax over the last dim, in the input's precision:
    ``(x - m) - log Σ exp(x - m)``. Subtracting the shifted logit and the (small) log-sum
    separately keeps a tiny log-probability exact; ``x - (m + lse)`` rounds ``m + lse`` at
    the scale of ``m`` and loses all relative precision when the target is the max logit."""
    m = x.max(dim=-1, keepdim=True).values
    shifted = x - m
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def _condition(x: torch.Tensor) -> torch.Tensor:
    """A row's condition number, 1 + max|x| + log C, over its finite logits: a masked
    (-inf) logit drops out of the softmax exactly and adds no rounding error."""
    finite = torch.where(torch.isinf(x), 0.0, x)
    return 1 + finite.abs().amax(1) + torch.log(torch.tensor(float(x.shape[1]), dtype=F64))


def multiclass(inputs: Inputs) -> OracleResult:
    """The float64 answer for a multi-class case (see module docstring)."""
    case = inputs.case
    if case.soft:
        return multiclass_probabilities(inputs)
    dev = oracle_device(inputs)
    x = class_rows(inputs.logits.detach().to(dev, F64))
    y = inputs.target.detach().to(dev).reshape(-1)
    w = (torch.ones(case.c, dtype=F64, device=dev) if inputs.weight is None
         else inputs.weight.detach().to(dev, F64))
    g = inputs.grad_out.detach().to(dev, F64).reshape(-1)
    eps, n_cls = case.label_smoothing, case.c

    valid = y != case.ignore_index
    y_safe = torch.where(valid, y, torch.zeros_like(y))
    logp = log_softmax(x)
    # 0 on ignored rows, which have no target: class 0 may be masked (-inf) there
    target_logp = torch.where(valid, logp.gather(1, y_safe[:, None])[:, 0], 0.0)
    w_y = torch.where(valid, w[y_safe], 0.0)
    smooth = torch.where(valid, -(logp * w).sum(1), 0.0)
    per_pos = (1 - eps) * w_y * -target_logp
    if eps:  # not 0·smooth: a masked class makes the smoothing sum inf (PyTorch skips it at ε = 0)
        per_pos = per_pos + (eps / n_cls) * smooth
    total_weight = w_y.sum()

    condition = _condition(x)
    row_weight = (1 - eps) * w_y.abs() + (eps / n_cls) * w.abs().sum() * valid
    magnitude = row_weight * condition

    loss, loss_scale, row_factor = _reduced(case, per_pos, magnitude, g, total_weight)
    # Weights of both signs (the seed's helper) can cancel to W = 0 under a nonzero
    # numerator: x / ±0 is ±inf, or NaN where terms meet, by the sign of a zero. The
    # numerator is the whole weighted sum, smoothing term included: one rule with and
    # without label smoothing (suites/harness/test_oracle.py).
    division_by_zero = (case.reduction == "mean" and bool(total_weight == 0)
                        and bool(per_pos.sum() != 0))

    p = logp.exp()
    onehot = torch.nn.functional.one_hot(y_safe, n_cls).to(F64)
    d_row = (1 - eps) * w_y[:, None] * (p - onehot) + (eps / n_cls) * (p * w.sum() - w)
    grad = torch.where(valid[:, None], row_factor[:, None] * d_row, 0.0)
    row_scale = torch.where(valid, row_factor.abs() * row_weight, 0.0)

    grad = _restore_layout(grad, case)
    # Eager sums the nll term and the unscaled smoothing term separately, in the input
    # dtype: either partial sum can overflow a half-precision dtype before ε/C and the
    # mean's 1/W bring the result back into range.
    partial = torch.stack([(w_y * -target_logp).sum().abs(), per_pos.sum().abs(),
                           smooth.sum().abs() if eps else torch.zeros((), dtype=F64, device=dev)]).max()
    # Per position, the same two terms before ε/C scales the second one back.
    row_partials = torch.maximum((w_y * target_logp).abs(), smooth.abs() if eps else per_pos.abs())
    # How much a weighted mean's denominator cancels: Σ|w_y| / |Σ w_y| (1 for weights of one
    # sign); an implementation summing W in the input precision loses that many digits.
    weight_condition = float(w_y.abs().sum() / total_weight.abs()) if bool(total_weight != 0) else 1.0
    return OracleResult(loss, grad, logp, valid, target_logp, row_scale, condition, loss_scale,
                        partial, division_by_zero, row_partials.reshape(case.target_shape),
                        weight_condition if case.reduction == "mean" else 1.0,
                        float(w_y.abs().sum()))


def _reduced(case, per_pos: torch.Tensor, magnitude: torch.Tensor, g: torch.Tensor,
             total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, loss scale, row factor a_n) under the case's reduction; 'mean' divides by
    ``total`` (the targets' weight sum, or the number of positions), NaN when it is 0."""
    if case.reduction == "none":
        return per_pos.reshape(case.target_shape), magnitude.reshape(case.target_shape), g
    if case.reduction == "sum":
        return per_pos.sum(), magnitude.sum(), g.expand_as(per_pos)
    if bool(total == 0):
        nan = torch.full((), float("nan"), dtype=F64, device=per_pos.device)
        return nan, magnitude.sum(), torch.full_like(per_pos, float("nan"))
    return per_pos.sum() / total, magnitude.sum() / total.abs(), (g / total).expand_as(per_pos)


def multiclass_probabilities(inputs: Inputs) -> OracleResult:
    r"""The float64 answer for probability targets t (shaped like the logits), as
    `F.cross_entropy` defines it: smoothing mixes into the probabilities, and the weighted
    mean divides by the number of positions P, not by any weight::

        t'_nc = (1-ε)·t_nc + ε/C
        l_n   = -Σ_c w_c·t'_nc·logp_nc
        none: l_n        sum: Σ_n l_n        mean: Σ_n l_n / P
        ∂/∂x_nk = a_n · [ p_nk·Σ_c w_c·t'_nc - w_k·t'_nk ]

    with a_n = g_n, g, g / P. Every position counts (no ignore_index); ``target_logp`` is
    the expected log-probability Σ_c t'_nc·logp_nc."""
    case = inputs.case
    dev = oracle_device(inputs)
    x = class_rows(inputs.logits.detach().to(dev, F64))
    t = class_rows(inputs.target.detach().to(dev, F64))
    w = (torch.ones(case.c, dtype=F64, device=dev) if inputs.weight is None
         else inputs.weight.detach().to(dev, F64))
    g = inputs.grad_out.detach().to(dev, F64).reshape(-1)
    eps, n_cls, positions = case.label_smoothing, case.c, x.shape[0]
    t = (1 - eps) * t + eps / n_cls
    logp = log_softmax(x)
    per_pos = -(w * t * logp).sum(1)
    wt = w * t
    condition = _condition(x)
    row_weight = wt.abs().sum(1)
    magnitude = row_weight * condition
    loss, loss_scale, row_factor = _reduced(case, per_pos, magnitude, g,
                                            torch.tensor(float(positions), dtype=F64))
    p = logp.exp()
    d_row = p * wt.sum(1, keepdim=True) - wt
    grad = _restore_layout(row_factor[:, None] * d_row, case)
    valid = torch.ones(positions, dtype=torch.bool, device=dev)
    return OracleResult(loss, grad, logp, valid, (t * logp).sum(1), row_factor.abs() * row_weight,
                        condition, loss_scale, per_pos.abs().sum(),
                        row_partials=per_pos.abs().reshape(case.target_shape),
                        weight_abs_sum=float(positions))


def _restore_layout(flat: torch.Tensor, case) -> torch.Tensor:
    """[positions, C] back to the logits' [N, C, *spatial] ([C] unbatched)."""
    if not case.batched:
        return flat.reshape(case.logits_shape)
    shaped = flat.reshape(case.n, *case.spatial, case.c)
    return shaped.movedim(-1, 1) if case.spatial else shaped


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x) without overflow or the e^-20 cut-off of `F.softplus`'s threshold:
    max(x, 0) + log1p(e^-|x|), exact to float64 rounding for every finite x."""
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


def binary(inputs: Inputs) -> OracleResult:
    r"""The float64 answer for a binary case, by the semantics of
    `F.binary_cross_entropy_with_logits` for the arguments `harness.problem.bce.binary_kwargs`
    passes (ω = weight, π = pos_weight, both broadcast to x, 1 where None; y ∈ {0, 1})::

        l_n     = ω_n · [ π_n·y_n·softplus(-x_n) + (1 - y_n)·softplus(x_n) ]
        none: l_n        sum: Σ_n l_n        mean: Σ_n l_n / numel   (NaN when numel = 0)
        ∂/∂x_n  = a_n · ω_n · [ (1 - y_n)·σ(x_n) - π_n·y_n·σ(-x_n) ]

    with a_n = g_n (none), g (sum), g / numel (mean). π = inf on a negative target gives
    inf·0 = NaN, as PyTorch does. Per element (the binary "row" is one logit):
    ``logp`` is [numel, 2] = [log(1-σ), log σ]; ``row_scale`` = |a_n|·m_n with
    m_n = |ω_n|·max(|π_n|·y_n + 1 - y_n, 1): the gradient's largest possible magnitude, but
    never below |a_n·ω_n|, because the factor 1 + (π - 1)·y is formed in the input dtype
    and so errs by eps·max(|π|, 1) — measured: bfloat16 BCEWithLogits with π = 0.05 has a
    gradient error of 6 % of its value; ``condition`` = 1 + |x_n| (softplus computed in
    precision eps errs by about eps·|x|); ``loss_scale`` is m_n·condition reduced like the
    loss; ``weighted_sum`` is Σ|l_n|, the largest partial sum a reduction can form."""
    from harness.problem.bce import binary_kwargs

    case = inputs.case
    kw = binary_kwargs(inputs)
    shape = inputs.logits.shape
    dev = oracle_device(inputs)
    x = inputs.logits.detach().to(dev, F64).reshape(-1)
    y = inputs.target.detach().to(dev, F64).reshape(-1)
    omega, pi = (torch.ones_like(x) if t is None else
                 t.detach().to(dev, F64).broadcast_to(shape).reshape(-1)
                 for t in (kw["weight"], kw["pos_weight"]))
    g = inputs.grad_out.detach().to(dev, F64).reshape(-1)
    numel = x.numel()

    neg_log_p1, neg_log_p0 = softplus(-x), softplus(x)
    per_pos = omega * (pi * y * neg_log_p1 + (1 - y) * neg_log_p0)
    magnitude = omega.abs() * (pi.abs() * y + (1 - y)).clamp(min=1)
    condition = 1 + x.abs()

    if case.reduction == "none":
        loss, loss_scale = per_pos.reshape(shape), (magnitude * condition).reshape(shape)
        row_factor = g
    elif case.reduction == "sum":
        loss, loss_scale = per_pos.sum(), (magnitude * condition).sum()
        row_factor = g.expand_as(x)
    else:
        nan = torch.full((), float("nan"), dtype=F64, device=dev)
        loss = per_pos.sum() / numel if numel else nan
        loss_scale = (magnitude * condition).sum() / max(numel, 1)
        row_factor = (g / max(numel, 1)).expand_as(x)

    d = omega * ((1 - y) * torch.sigmoid(x) - pi * y * torch.sigmoid(-x))
    grad = (row_factor * d).reshape(shape)
    logp = torch.stack([-neg_log_p0, -neg_log_p1], dim=1)
    target_logp = torch.where(y > 0.5, -neg_log_p1, -neg_log_p0)
    valid = torch.ones_like(x, dtype=torch.bool)
    return OracleResult(loss, grad, logp, valid, target_logp, row_factor.abs() * magnitude,
                        condition, loss_scale, per_pos.abs().sum())
