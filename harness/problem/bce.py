r"""The binary family's one source of truth: how class weights become the arguments of
`F.binary_cross_entropy_with_logits`, and how its normalisation converts to cross_entropy's.

**What BCE computes.** ``F.binary_cross_entropy_with_logits(x, y, weight=ω, pos_weight=π,
reduction=r)``, with ω and π broadcast to x's shape (1 where None), per element::

    l_n = ω_n · [ π_n · y_n · softplus(-x_n) + (1 - y_n) · softplus(x_n) ]
    none: l_n        sum: Σ_n l_n        mean: Σ_n l_n / numel     (numel = N·∏S; NaN if 0)

(``softplus(-x) = -log σ(x)``, ``softplus(x) = -log(1 - σ(x))``.) The mean divides by the
element count whatever ω and π are (pytorch#54843).

**What cross_entropy computes** with class weights ``w = [w0, w1]`` and class-index
targets: ``l_n = w_{y_n} · (-log p_{n,y_n})`` and its mean divides by ``W = Σ_n w_{y_n}``,
the sum of the targets' weights (a weighted mean; NaN when W = 0).

**Exact conversions** (0/1 targets; each has one function below):

=========================================  ================================================
class weights → BCE, element-wise          ω_n = w_{y_n}, π = None — always exact
class weights → BCE, pos_weight form       ω = w0, π = w1 / w0 — needs w0 ≠ 0 (w0 = 0 gives
                                           π = inf and inf·0 = NaN on every negative)
BCE → per-element weight                   ω_n · (π_n · y_n + 1 - y_n)
BCE (scalar ω, π) → class weights          w = [ω, ω·π]
cross_entropy's weighted mean → BCE mean   Σ l_n / numel = ce_mean · W / numel
BCE mean → cross_entropy's weighted mean   Σ l_n / W = bce_mean · numel / W
=========================================  ================================================

Both forms of the same class weights give the same ``none`` and ``sum``; the two means
differ by the factor ``W / numel``, which is 1 only when every target's weight is 1.

**What a binary case with class weights means.** The case's scheme yields ``[w0, w1]``
(negative, positive class; ``Inputs.weight``). Contenders never see that vector: they are
called with BCE's arguments from `binary_kwargs` — ω = [w0] and π = [w1 / w0] (shape [1],
the usual pos_weight idiom, so a contender that drops pos_weight is caught) when w0 ≠ 0
and w1 / w0 is finite in the case's dtype, and a per-element ω_n = w_{y_n} of the target's
shape otherwise (the 'onehot' scheme, seed_inverse_freq on an all-background batch). The
truth (`harness.problem.oracle.binary`) is BCE's semantics for exactly those arguments, so a binary
case's weighted ``mean`` divides by numel — it is *not* cross_entropy's weighted mean, and
the ``ce_two_class`` contender converts with `ce_sum_to_bce_mean`.
"""

from __future__ import annotations

import torch

from harness.problem.inputs import Inputs


def class_weight_of_targets(w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise ω_n = w_{y_n} for 0/1 targets: exact for every [w0, w1], zeros included."""
    w = w.to(device=target.device, dtype=target.dtype)
    return torch.where(target > 0.5, w[1], w[0])


def pos_weight_form(w: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(ω, π) = ([w0], [w1 / w0])`` in ``dtype``, or None when that form does not exist:
    w0 = 0 (π would be inf, and inf·0 is NaN on every negative target) or w1 / w0 outside
    the dtype's range. π is divided in float64 and rounded once."""
    w64 = w.detach().to(torch.float64)
    w0, w1 = float(w64[0]), float(w64[1])
    if w0 == 0:
        return None
    ratio = w1 / w0
    if not abs(ratio) < torch.finfo(dtype).max:
        return None
    device = w.device
    return (torch.tensor([w0], dtype=dtype, device=device),
            torch.tensor([ratio], dtype=dtype, device=device))


def as_elementwise_weight(target: torch.Tensor, weight: torch.Tensor | None,
                          pos_weight: torch.Tensor | None) -> torch.Tensor | None:
    """BCE's (ω, π) as one per-element weight ω_n·(π_n·y_n + 1 - y_n), for losses without a
    pos_weight (BCELoss, cross_entropy's 'none'). Exact for 0/1 targets only: for soft
    targets π scales only the positive term, which no single weight can express."""
    if pos_weight is None:
        return weight
    factor = pos_weight * target + (1 - target)
    return factor if weight is None else weight * factor


def as_class_weights(weight: torch.Tensor | None, pos_weight: torch.Tensor | None,
                     dtype: torch.dtype) -> torch.Tensor | None:
    """BCE's (ω, π) as cross_entropy's class weights [ω, ω·π] when both are single numbers
    (None when neither is given); None also when either varies per element, where no class
    weight vector can express them — use `as_elementwise_weight` then."""
    if weight is None and pos_weight is None:
        return None
    if any(t is not None and t.numel() != 1 for t in (weight, pos_weight)):
        return None
    ref = weight if weight is not None else pos_weight
    omega = weight.reshape(()) if weight is not None else torch.ones((), dtype=dtype, device=ref.device)
    pi = pos_weight.reshape(()) if pos_weight is not None else torch.ones((), dtype=dtype, device=ref.device)
    return torch.stack([omega, omega * pi]).to(dtype)


def ce_sum_to_bce_mean(total: torch.Tensor, numel: int) -> torch.Tensor:
    """BCE's mean from a sum of per-element losses: divide by the element count (0/0 = NaN
    for an empty input, as BCE gives)."""
    return total / numel if numel else total * float("nan")


def ce_mean_to_bce_mean(ce_mean: torch.Tensor, target_weight_sum: torch.Tensor,
                        numel: int) -> torch.Tensor:
    """cross_entropy's weighted mean Σ l / W → BCE's Σ l / numel. Undefined (NaN) when
    W = 0: the weighted mean has lost Σ l, which BCE's mean still reports."""
    return ce_mean * target_weight_sum / numel


def bce_mean_to_ce_mean(bce_mean: torch.Tensor, target_weight_sum: torch.Tensor,
                        numel: int) -> torch.Tensor:
    """BCE's Σ l / numel → cross_entropy's weighted mean Σ l / W (NaN or inf when W = 0)."""
    return bce_mean * numel / target_weight_sum


def binary_kwargs(inputs: Inputs) -> dict:
    """The keyword arguments a binary contender is called with, in the vocabulary (and with
    the semantics) of `F.binary_cross_entropy_with_logits`: weight=, pos_weight=, reduction=.
    Deterministic: the oracle calls it too and must see the same tensors. Inputs that carry
    their own call (PyTorch's samples) are called with it."""
    if inputs.call is not None:
        return dict(inputs.call)
    kw: dict = {"weight": None, "pos_weight": None, "reduction": inputs.case.reduction}
    if inputs.weight is None:
        return kw
    form = pos_weight_form(inputs.weight, inputs.logits.dtype)
    if form is not None:
        # [1] broadcasts over any logits but a 0-d one, whose loss it would make [1]
        shape = () if inputs.logits.dim() == 0 else (1,)
        kw["weight"], kw["pos_weight"] = (t.reshape(shape) for t in form)
    else:
        kw["weight"] = class_weight_of_targets(inputs.weight, inputs.target)
    return kw


__all__ = [
    "as_class_weights", "as_elementwise_weight", "bce_mean_to_ce_mean", "binary_kwargs",
    "ce_mean_to_bce_mean", "ce_sum_to_bce_mean", "class_weight_of_targets", "pos_weight_form",
]
