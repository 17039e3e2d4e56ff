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

PyTorch's contract when W = 0 under 'mean': the loss is NaN; ignored rows get a zero
gradient and non-ignored rows (whose weights are all 0) a NaN gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.cases import Inputs

F64 = torch.float64


@dataclass(frozen=True)
class OracleResult:
    """Exact loss and gradient, plus what the tolerance rule needs to know about the case.

    ``logp`` is [positions, C] with the class dim last; ``valid`` marks non-ignored
    positions; ``row_scale`` is |a_n| · ((1-ε)·w_{y_n} + (ε/C)·Σ w), the largest a row's
    gradient entries can be; ``condition`` is a row's condition number 1 + max|x| + log C;
    ``weighted_sum`` is Σ l_n, the numerator of the mean; ``loss_scale`` is the loss with
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


def _class_last(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1) if x.dim() > 2 else x


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    """Max-shifted log-softmax over the last dim, in the input's precision:
    ``(x - m) - log Σ exp(x - m)``. Subtracting the shifted logit and the (small) log-sum
    separately keeps a tiny log-probability exact; ``x - (m + lse)`` rounds ``m + lse`` at
    the scale of ``m`` and loses all relative precision when the target is the max logit."""
    m = x.max(dim=-1, keepdim=True).values
    shifted = x - m
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def multiclass(inputs: Inputs) -> OracleResult:
    """The float64 answer for a multi-class case (see module docstring)."""
    case = inputs.case
    x = _class_last(inputs.logits.detach().to("cpu", F64)).reshape(-1, case.c)
    y = inputs.target.detach().to("cpu").reshape(-1)
    w = (torch.ones(case.c, dtype=F64) if inputs.weight is None
         else inputs.weight.detach().to("cpu", F64))
    g = inputs.grad_out.detach().to("cpu", F64).reshape(-1)
    eps, n_cls = case.label_smoothing, case.c

    valid = y != case.ignore_index
    y_safe = torch.where(valid, y, torch.zeros_like(y))
    logp = log_softmax(x)
    target_logp = logp.gather(1, y_safe[:, None])[:, 0]
    w_y = torch.where(valid, w[y_safe], torch.zeros((), dtype=F64))
    smooth = torch.where(valid, -(logp * w).sum(1), torch.zeros((), dtype=F64))
    per_pos = (1 - eps) * w_y * -target_logp + (eps / n_cls) * smooth
    total_weight = w_y.sum()

    condition = 1 + x.abs().amax(1) + torch.log(torch.tensor(float(n_cls), dtype=F64))
    row_weight = (1 - eps) * w_y.abs() + (eps / n_cls) * w.abs().sum() * valid
    magnitude = row_weight * condition

    if case.reduction == "none":
        loss, loss_scale = per_pos.reshape(case.target_shape), magnitude.reshape(case.target_shape)
        row_factor = g
    elif case.reduction == "sum":
        loss, loss_scale = per_pos.sum(), magnitude.sum()
        row_factor = g.expand_as(per_pos)
    elif bool(total_weight == 0):
        loss, loss_scale = torch.tensor(float("nan"), dtype=F64), magnitude.sum()
        row_factor = torch.full_like(per_pos, float("nan"))
    else:
        loss, loss_scale = per_pos.sum() / total_weight, magnitude.sum() / total_weight.abs()
        row_factor = (g / total_weight).expand_as(per_pos)

    p = logp.exp()
    onehot = torch.nn.functional.one_hot(y_safe, n_cls).to(F64)
    d_row = (1 - eps) * w_y[:, None] * (p - onehot) + (eps / n_cls) * (p * w.sum() - w)
    grad = torch.where(valid[:, None], row_factor[:, None] * d_row, torch.zeros((), dtype=F64))
    row_scale = torch.where(valid, row_factor.abs() * row_weight, torch.zeros((), dtype=F64))

    grad = _restore_layout(grad, case)
    return OracleResult(loss, grad, logp, valid, target_logp, row_scale, condition, loss_scale,
                        per_pos.sum())


def _restore_layout(flat: torch.Tensor, case) -> torch.Tensor:
    """[positions, C] back to the logits' [N, C, *spatial]."""
    shaped = flat.reshape(case.n, *case.spatial, case.c)
    return shaped.movedim(-1, 1) if case.spatial else shaped
