"""Per-call class weights (`Case.per_call`, token ``percall``): the case's inverse-frequency
weights computed from the targets inside every timed call, as the seed's training loop
does (``weight=inverse_freq(label)`` on each batch). The counting and the weights are part
of the step, so their cost is in the time of every contender alike; the tensors handed to
the contender are the ones `harness.problem.inputs.make_inputs` computed once (the oracle's),
bit for bit, which `check_same_weights` verifies before anything is timed.

The weights are computed without a host sync (no ``int()``, no ``bincount`` on the CPU,
no data-dependent shape): one comparison-sum per class (`Case.per_call` allows at most
`PER_CALL_MAX_CLASSES`), then `harness.problem.weights.inverse_freq`, itself sync-free.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.equivalence.properties import Verdict
from harness.equivalence.runner import call_args
from harness.problem.inputs import Inputs
from harness.problem.weights import binary_inverse_freq, inverse_freq

F64 = torch.float64


def class_counts_on_device(target: torch.Tensor, n_classes: int,
                           ignored_class: int | None = None) -> torch.Tensor:
    """float64 count of each class id on the targets' device. A negative ignore_index
    matches no class; an ``ignored_class`` in range counts 0, as
    `harness.problem.weights.class_counts` leaves its targets out."""
    zero = torch.zeros((), dtype=torch.int64, device=target.device)
    return torch.stack([zero if k == ignored_class else (target == k).sum()
                        for k in range(n_classes)]).to(F64)


def multiclass_weights(target: torch.Tensor, n_classes: int, ignored_class: int | None,
                       dtype: torch.dtype) -> torch.Tensor:
    """The batch's inverse-frequency class weights in ``dtype``, rounded once from float64
    as `make_inputs` rounds them."""
    return inverse_freq(class_counts_on_device(target, n_classes, ignored_class)).to(dtype)


def binary_weights(target: torch.Tensor, dtype: torch.dtype,
                   shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE's (weight, pos_weight) = ([w0], [w1 / w0]) as `harness.problem.bce.binary_kwargs`
    makes them: the class weights rounded to ``dtype`` first, their ratio divided in float64
    and rounded once. w0 is never 0 (inverse_freq gives a batch with one class uniform
    weights), so the pos_weight form always exists."""
    w = binary_inverse_freq((target > 0.5).sum(), target.numel()).to(dtype).to(F64)
    return w[:1].to(dtype).reshape(shape), (w[1:] / w[:1]).to(dtype).reshape(shape)


def call_kwargs(inputs: Inputs) -> Callable[[], dict]:
    """What each timed call is given besides the logits and targets: the family's keyword
    arguments, computed once, or for a per-call case recomputed with the weights from the
    targets at every call."""
    fixed = call_args(inputs)
    case = inputs.case
    if not case.per_call:
        return lambda: fixed
    target, dtype = inputs.target, inputs.logits.dtype
    if case.spec.elementwise:
        shape = () if inputs.logits.dim() == 0 else (1,)

        def binary() -> dict:
            weight, pos_weight = binary_weights(target, dtype, shape)
            return {**fixed, "weight": weight, "pos_weight": pos_weight}
        return binary

    n_classes, ignored = case.n_classes, case.ignored_class

    def multiclass() -> dict:
        return {**fixed, "weight": multiclass_weights(target, n_classes, ignored, dtype)}
    return multiclass


def check_same_weights(inputs: Inputs) -> Verdict:
    """Whether the per-call weights equal, bit for bit, the ones the oracle's truth was
    computed with: otherwise the step would time another problem than the one checked."""
    fixed, per_call = call_args(inputs), call_kwargs(inputs)()
    differ = [name for name in sorted({*fixed, *per_call})
              if not _same(fixed.get(name), per_call.get(name))]
    detail = (f"the weights computed in the call differ from the case's in {', '.join(differ)}"
              if differ else "")
    return Verdict("per_call_weights", not differ, detail)


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)
    return not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor) and a == b
