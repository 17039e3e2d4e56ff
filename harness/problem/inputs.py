"""The tensors a `Case` stands for: logits, targets drawn with the case's exact class
counts, per-class weights and the upstream gradient, on a device and in a memory layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from harness.problem.weights import class_weights

if TYPE_CHECKING:  # annotations only: case.py reaches this module through families.py
    from harness.problem.case import Case


# ---- tensors --------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """The tensors of one case. ``target`` is int64 class ids (multi-class) or 0/1 floats
    of the logits' dtype (binary), probabilities for a soft case; ``weight`` is the
    per-class weight vector or None."""

    case: Case
    logits: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor | None
    grad_out: torch.Tensor
    # The call's own keyword arguments, for tensors that no case generated (PyTorch's
    # sample inputs, `harness.equivalence.samples`); None: derived from the case
    call: dict | None = None

    def kwargs(self) -> dict:
        """Keyword arguments in `F.cross_entropy`'s vocabulary."""
        c = self.case
        return {
            "weight": self.weight,
            "ignore_index": c.ignore_index,
            "reduction": c.reduction,
            "label_smoothing": c.label_smoothing,
        }


def make_targets(case: Case, gen: torch.Generator) -> torch.Tensor:
    """Class ids laid out at random positions with exactly `case.class_counts()` of each."""
    counts = case.class_counts()
    flat = torch.cat([
        torch.full((case.n_ignored,), case.ignore_index, dtype=torch.int64),
        *(torch.full((k,), cls, dtype=torch.int64) for cls, k in enumerate(counts)),
    ])
    flat = flat[torch.randperm(flat.numel(), generator=gen)]
    return flat.reshape(case.target_shape)


def _apply_layout(base: torch.Tensor, layout: str) -> torch.Tensor:
    """Same values, different memory. 'channels_last' keeps dim 1 (classes) innermost for
    inputs with spatial dims; an [N, C] input already has it innermost, so there it is
    stored transposed (dim 0 innermost) to still differ from contiguous. 'strided' is a
    non-contiguous view taken every other element of a wider buffer."""
    if layout == "contiguous" or base.dim() == 0:
        return base.contiguous()
    if layout == "channels_last":
        if base.dim() < 3:
            return base.t().contiguous().t() if base.dim() == 2 else base.contiguous()
        return base.movedim(1, -1).contiguous().movedim(-1, 1)
    wide = torch.zeros((*base.shape[:-1], base.shape[-1] * 2), dtype=base.dtype, device=base.device)
    wide[..., ::2] = base
    return wide[..., ::2]


def make_inputs(case: Case, device: str | torch.device = "cpu") -> Inputs:
    """Build the case's tensors deterministically from its seed (CPU generator, then moved)."""

    gen = torch.Generator().manual_seed(case.seed)
    dtype = case.torch_dtype
    target = make_targets(case, gen)
    raw = torch.randn(case.logits_shape, generator=gen, dtype=torch.float64) * case.scale
    limit = torch.finfo(dtype).max / 2
    logits = raw.clamp(-limit, limit).to(dtype)
    weight = class_weights(case.weights, target, n_classes=case.n_classes,
                           ignore_index=case.ignore_index if case.spec.ignore_index else None,
                           gen=gen)
    if weight is not None:
        weight = weight.to(dtype=dtype, device=device)
    out_shape = () if case.reduction != "none" else case.target_shape
    grad_out = (torch.rand(out_shape, generator=gen, dtype=torch.float64) * 2 - 1.25).to(dtype)
    if case.masked or case.masked_target:
        logits = logits.masked_fill(logit_mask(case, target, gen), float("-inf"))
    logits = _apply_layout(logits, case.layout).to(device)
    if case.soft:
        target = soften(case, target, gen).to(dtype)
    elif not case.spec.index_targets:  # 0/1 targets in the logits' dtype
        target = target.to(dtype)
    return Inputs(case, logits, target.to(device), weight, grad_out.to(device))


def logit_mask(case: Case, target: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Where the logits are -inf, shaped like them: at every position, ``round(masked·(C-1))``
    classes other than its target, drawn at random (vocabulary padding, constrained
    decoding); with ``masked_target``, also the target's own logit at the first position
    whose target is not ignored, where one other class stays finite (a row of -inf only
    has no softmax). Drawn after every other tensor, so unmasked cases of the same seed
    are unchanged."""
    y = target.reshape(-1)
    rows, n_cls = y.numel(), case.c
    valid = (y != case.ignore_index) & (y >= 0) & (y < n_cls)
    keep = torch.rand((rows, n_cls), generator=gen, dtype=torch.float64)
    keep[valid, y[valid]] = 2.0  # ranks last: never among the masked others
    rank = keep.argsort(dim=1).argsort(dim=1)
    masked = torch.full((rows, 1), round(case.masked * (n_cls - 1)))
    if case.masked_target:
        first = int(torch.nonzero(valid)[0])
        masked[first] = min(int(masked[first]), n_cls - 2)
    mask = rank < masked
    if case.masked_target:
        mask[first, y[first]] = True
    if not case.batched:
        return mask.reshape(case.logits_shape)
    return mask.reshape(case.n, *case.spatial, n_cls).movedim(-1, 1)


SOFT_MIX = 0.3  # share of a soft target that is noise; the rest is the hard label


def soften(case: Case, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Soft targets from the case's hard labels, in float64: for index targets, class
    probabilities shaped like the logits (class dim 1), ``(1 - m)·onehot(y) + m·u`` with
    ``u`` a random distribution over the classes per position; for 0/1 targets, values in
    [0, 1], ``(1 - m)·y + m·u`` with ``u`` uniform. ``m`` = `SOFT_MIX`: the hard label
    still dominates, so the class counts (and ``p``) keep their meaning. Drawn after every
    other tensor, so hard cases of the same seed are unchanged."""
    if not case.spec.index_targets:
        noise = torch.rand(labels.shape, generator=gen, dtype=torch.float64)
        return (1 - SOFT_MIX) * labels.to(torch.float64) + SOFT_MIX * noise
    onehot = torch.nn.functional.one_hot(labels, case.c).to(torch.float64)
    noise = torch.softmax(torch.randn(onehot.shape, generator=gen, dtype=torch.float64), dim=-1)
    probs = (1 - SOFT_MIX) * onehot + SOFT_MIX * noise
    return probs.movedim(-1, 1) if probs.dim() > 1 else probs
