"""Built-in multi-class contenders, each with the signature of `F.cross_entropy`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from harness.contenders import Capabilities, Contender, register
from harness.problem.expectations import REGIME_CODES, Expect, Expectation
from harness.problem.layout import class_last

# nll_loss takes class indices only, and has no label smoothing; log_softmax(x, dim=1), as
# written in the seed, has no dim 1 on an unbatched [C] vector
NLL_CAPS = Capabilities(label_smoothing=False, soft_targets=False, unbatched=False)


def _no_smoothing(name: str, label_smoothing: float) -> None:
    if label_smoothing:
        raise ValueError(f"{name} has no label_smoothing (nll_loss has none); got {label_smoothing}")


def eager(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)


def module(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    loss = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index,
                                     reduction=reduction, label_smoothing=label_smoothing)
    return loss(input, target)


def logsoftmax_nll(input, target, weight=None, ignore_index=-100, reduction="mean",
                   label_smoothing=0.0):
    _no_smoothing("logsoftmax_nll", label_smoothing)
    return F.nll_loss(F.log_softmax(input, dim=1), target, weight=weight,
                      ignore_index=ignore_index, reduction=reduction)


def softmax_log_nll(input, target, weight=None, ignore_index=-100, reduction="mean",
                    label_smoothing=0.0):
    _no_smoothing("softmax_log_nll", label_smoothing)
    return F.nll_loss(F.softmax(input, dim=1).log(), target, weight=weight,
                      ignore_index=ignore_index, reduction=reduction)


def scratch(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """logsumexp minus the target logit, in plain tensor ops. Half precision is computed in
    float32 and rounded once at the end, as careful hand-written losses do: a float16 sum
    of per-element losses overflows long before their mean does."""
    out_dtype = input.dtype
    x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
    x = class_last(x)
    n_classes = x.shape[-1]
    w = None if weight is None else weight.to(x.dtype)
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    lse = torch.logsumexp(x, dim=-1)
    nll = lse - x.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    w_y = torch.ones_like(nll) if w is None else w[safe]
    w_y = torch.where(valid, w_y, torch.zeros_like(w_y))
    per_pos = (1 - label_smoothing) * w_y * nll
    if label_smoothing:
        neg_logp = lse.unsqueeze(-1) - x
        smooth = neg_logp.sum(-1) if w is None else (neg_logp * w).sum(-1)
        per_pos = per_pos + (label_smoothing / n_classes) * smooth
    # Mask with where, not by the zero weight: 0 * NaN in backward would poison ignored rows.
    per_pos = torch.where(valid, per_pos, torch.zeros_like(per_pos))
    if reduction == "none":
        out = per_pos
    elif reduction == "sum":
        out = per_pos.sum()
    else:
        total = w_y.sum()
        # PyTorch defines a zero total weight as NaN even when the smoothing term is
        # positive; total / total is exactly 1 otherwise and NaN at 0, also in backward.
        out = per_pos.sum() / total * (total / total)
    return out.to(out_dtype)


# Where log(softmax(x)) gives up: softmax rounds to 0 below T0 (then log = -inf) and loses
# relative precision in the subnormal range below Tn = log(smallest normal).
_UNDERFLOW_LOG = {"f64": -745.13, "f32": -103.97, "bf16": -92.88, "f16": -17.33}
_SUBNORMAL_LOG = {k: math.log(torch.finfo(d).tiny) for k, d in
                  {"f64": torch.float64, "f32": torch.float32, "bf16": torch.bfloat16,
                   "f16": torch.float16}.items()}


def softmax_log_limits(inputs, oracle) -> Expectation:
    """Row by row: the loss breaks (inf) once the target's log-probability is below T0, the
    gradient (NaN) once any class's is, since log's backward divides by p = 0 — ignored rows
    included (0/0); between T0 and Tn a row is finite but imprecise. Rows are independent,
    so the gradient is judged per row under every reduction and the loss per element under
    'none'; a sum or mean breaks when any row does."""
    case = inputs.case
    t0, tn = _UNDERFLOW_LOG[case.dtype], _SUBNORMAL_LOG[case.dtype]
    margin = 1.0
    exact, degraded, breaks = (REGIME_CODES[e] for e in (Expect.EXACT, Expect.DEGRADED,
                                                           Expect.BREAKS))
    valid, target = oracle.valid, oracle.target_logp
    row_min = (oracle.logp.amin(1) if oracle.logp.numel()
               else torch.zeros(0, dtype=torch.float64, device=oracle.logp.device))

    loss_rows = torch.full_like(target, degraded, dtype=torch.int8)
    loss_rows[~valid | (target > tn + margin)] = exact
    loss_rows[valid & (target < t0 - margin)] = breaks
    grad_rows = torch.full_like(target, degraded, dtype=torch.int8)
    grad_rows[(row_min > t0 + margin) & (~valid | (target > tn + margin))] = exact
    grad_rows[row_min < t0 - margin] = breaks

    def worst(codes: torch.Tensor) -> Expect:
        top = int(codes.max()) if codes.numel() else exact
        return next(e for e, c in REGIME_CODES.items() if c == top)

    target_min = float(target[valid].min()) if bool(valid.any()) else 0.0
    any_min = float(row_min.min()) if row_min.numel() else 0.0
    return Expectation(
        worst(loss_rows), worst(grad_rows),
        f"min target log p {target_min:.4g}, min log p {any_min:.4g}; "
        f"{case.dtype} softmax underflows below {t0}",
        loss_regimes=loss_rows if case.reduction == "none" else None,
        grad_regimes=grad_rows)


register(Contender("eager", "multiclass", eager, "F.cross_entropy"))
register(Contender("module", "multiclass", module, "nn.CrossEntropyLoss(...)(input, target)"))
register(Contender("logsoftmax_nll", "multiclass", logsoftmax_nll,
                   "F.nll_loss(F.log_softmax(x, 1)) — the seed's LogSoftmax + NLLLoss",
                   caps=NLL_CAPS))
register(Contender("softmax_log_nll", "multiclass", softmax_log_nll,
                   "F.nll_loss(F.softmax(x, 1).log()) — hand-written, underflows",
                   caps=NLL_CAPS, limits=softmax_log_limits))
register(Contender("scratch", "multiclass", scratch,
                   "logsumexp minus the target logit, plain tensor ops",
                   caps=Capabilities(soft_targets=False)))
