"""Losses exact with any one trigger alone and wrong where two (or three) declared values
meet, each after a public bug or a way fused kernels and wrappers break, and losses written
differently that are right everywhere (`test_combinations.py`). Not a test module:
imported through ``--contender`` / ``--binary-contender``, or called in process.

`PLANTED` names each planted loss's combination (the words its defect class must say)
and the property that must catch it first; `CORRECT` lists the right ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_IGNORE = -100
NEVER = -12345  # an ignore_index no target has


def _ignored(t: torch.Tensor, o: dict) -> torch.Tensor:
    if t.is_floating_point():
        return torch.zeros((), dtype=torch.bool)
    return t == o.get("ignore_index", DEFAULT_IGNORE)


def _reduction(o: dict) -> str:
    return o.get("reduction", "mean")


def _class_dim_last(x: torch.Tensor) -> bool:
    """Channels-last memory: the class dim's stride is 1, the tensor not contiguous."""
    return x.dim() >= 3 and x.stride(1) == 1 and not x.is_contiguous()


# ---- planted: exact on each trigger alone -----------------------------------------------

def none_leaks_ignored(input, target, **o):
    """'none' gives every ignored position the loss of class 0 instead of 0
    (Liger-Kernel#678's kind); 'mean' and 'sum' are right."""
    out = F.cross_entropy(input, target, **o)
    ignored = _ignored(target, o)
    if _reduction(o) != "none" or not bool(ignored.any()):
        return out
    leaked = F.cross_entropy(input, torch.where(ignored, torch.zeros_like(target), target),
                             **{**o, "ignore_index": NEVER})
    return torch.where(ignored, leaked, out)


def sum_of_nothing_is_nan(input, target, **o):
    """'sum' over targets that are all ignored is NaN instead of 0 (ultralytics#25096's kind)."""
    out = F.cross_entropy(input, target, **o)
    ignored = _ignored(target, o)
    if _reduction(o) == "sum" and ignored.dim() == target.dim() and bool(ignored.all()):
        return out * float("nan")
    return out


def mean_counts_ignored_weights(input, target, **o):
    """A weighted 'mean' with ignored targets divides by the weights of every position, the
    ignored ones weighed as class 0 (mmsegmentation#1409's kind, with weights)."""
    weight, ignored = o.get("weight"), _ignored(target, o)
    if _reduction(o) != "mean" or weight is None or not bool(ignored.any()):
        return F.cross_entropy(input, target, **o)
    total = F.cross_entropy(input, target, **{**o, "reduction": "sum"})
    return total / weight[torch.where(ignored, torch.zeros_like(target), target)].sum()


def smoothing_ignores_weights(input, target, **o):
    """Label smoothing's uniform term left unweighted when class weights are given
    (pytorch#104776's kind)."""
    eps, weight = o.get("label_smoothing", 0.0), o.get("weight")
    if not eps or weight is None or target.is_floating_point():
        return F.cross_entropy(input, target, **o)
    nll = F.cross_entropy(input, target, **{**o, "label_smoothing": 0.0})
    uniform = F.cross_entropy(input, target, **{**o, "weight": None, "label_smoothing": 1.0})
    return (1 - eps) * nll + eps * uniform


def smoothing_counts_ignored(input, target, **o):
    """Label smoothing's uniform term taken over the ignored positions too."""
    eps, ignored = o.get("label_smoothing", 0.0), _ignored(target, o)
    if not eps or not bool(ignored.any()):
        return F.cross_entropy(input, target, **o)
    nll = F.cross_entropy(input, target, **{**o, "label_smoothing": 0.0})
    everywhere = torch.where(ignored, torch.zeros_like(target), target)
    uniform = F.cross_entropy(input, everywhere, **{**o, "ignore_index": NEVER, "label_smoothing": 1.0})
    return (1 - eps) * nll + eps * uniform


def batch_of_one_none(input, target, **o):
    """A fast path for a batch of one (N == 1) that is 1 % off under 'none'."""
    out = F.cross_entropy(input, target, **o)
    if input.dim() > 1 and input.shape[0] == 1 and _reduction(o) == "none":
        return out * 1.01
    return out


def two_classes_drop_smoothing(input, target, **o):
    """A two-class fast path that forgets label smoothing."""
    classes = input.shape[0] if input.dim() == 1 else input.shape[1]
    if classes == 2 and o.get("label_smoothing", 0.0):
        return F.cross_entropy(input, target, **{**o, "label_smoothing": 0.0})
    return F.cross_entropy(input, target, **o)


def half_channels_last_read_as_contiguous(input, target, **o):
    """float16 channels-last logits read as if they were contiguous (a dtype-specialised
    kernel that takes the data pointer and assumes NCHW strides)."""
    if input.dtype == torch.float16 and _class_dim_last(input):
        strides, step = [], 1
        for size in reversed(input.shape):
            strides.insert(0, step)
            step *= size
        input = input.as_strided(input.shape, strides)
    return F.cross_entropy(input, target, **o)


def volume_sum_averages_depth(input, target, **o):
    """'sum' over volumes ([N, C, D, H, W]) divided by the depth D."""
    out = F.cross_entropy(input, target, **o)
    if input.dim() == 5 and _reduction(o) == "sum":
        return out / input.shape[2]
    return out


def vocabulary_in_bfloat16(input, target, **o):
    """More than 1024 classes in bfloat16: a chunked path that loses 10 % (bfloat16's
    tolerance is past 1 %)."""
    classes = input.shape[0] if input.dim() == 1 else input.shape[1]
    out = F.cross_entropy(input, target, **o)
    return out * 1.1 if classes > 1024 and input.dtype == torch.bfloat16 else out


def masked_weighted(input, target, **o):
    """Class weights with masked (-inf) logits: 1 % off (a masked kernel's weighting)."""
    out = F.cross_entropy(input, target, **o)
    if o.get("weight") is not None and bool(torch.isinf(input).any()):
        return out * 1.01
    return out


def soft_mean_over_weights(input, target, **o):
    """Probability targets under a weighted 'mean' divided by the class weights' sum, not
    by N (pytorch#107680: a soft mean divides by N, an index mean by the targets' weights)."""
    weight = o.get("weight")
    if not target.is_floating_point() or weight is None or _reduction(o) != "mean":
        return F.cross_entropy(input, target, **o)
    return F.cross_entropy(input, target, **{**o, "reduction": "sum"}) / weight.sum()


def bce_sum_pos_weight_twice(input, target, weight=None, reduction="mean", pos_weight=None):
    """Binary 'sum' that applies pos_weight twice."""
    if reduction == "sum" and pos_weight is not None:
        pos_weight = pos_weight * pos_weight
    return F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction=reduction,
                                              pos_weight=pos_weight)


def bce_one_logit_drops_weights(input, target, weight=None, reduction="mean", pos_weight=None):
    """One 0-d logit (an unbatched binary input) whose weight and pos_weight are dropped."""
    if input.dim() == 0:
        weight = pos_weight = None
    return F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction=reduction,
                                              pos_weight=pos_weight)


# name -> (family, the words the class's headline must hold, the property that catches it)
PLANTED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "none_leaks_ignored": ("multiclass", ("reduction='none'", "ignored"), "loss"),
    "sum_of_nothing_is_nan": ("multiclass", ("reduction='sum'", "every target ignored"), "nonfinite"),
    "mean_counts_ignored_weights": ("multiclass", ("reduction='mean'", "weights", "ignored"), "loss"),
    "smoothing_ignores_weights": ("multiclass", ("weights", "label smoothing"), "loss"),
    "smoothing_counts_ignored": ("multiclass", ("label smoothing", "ignored"), "loss"),
    "batch_of_one_none": ("multiclass", ("a batch of one", "reduction='none'"), "loss"),
    "two_classes_drop_smoothing": ("multiclass", ("two classes", "label smoothing"), "loss"),
    "half_channels_last_read_as_contiguous": ("multiclass", ("channels_last", "float16"), "loss"),
    "volume_sum_averages_depth": ("multiclass", ("3-D", "reduction='sum'"), "loss"),
    "vocabulary_in_bfloat16": ("multiclass", ("classes", "bfloat16"), "loss"),
    "masked_weighted": ("multiclass", ("masked", "weights"), "loss"),
    "soft_mean_over_weights": ("multiclass", ("reduction='mean'", "weights", "probability targets"), "loss"),
    "bce_sum_pos_weight_twice": ("binary", ("reduction='sum'", "weights"), "loss"),
    "bce_one_logit_drops_weights": ("binary", ("unbatched", "weights"), "loss"),
}


# ---- correct, written differently -------------------------------------------------------

def rows_class_last(input, target, **o):
    """Logits flattened to rows of C, class dim last, as fused wrappers call their
    kernels; the 'none' losses put back in the target's shape."""
    if input.dim() == 1:  # one sample: already one row
        return F.cross_entropy(input.unsqueeze(0), target.unsqueeze(0), **o).squeeze(0) \
            if _reduction(o) == "none" else F.cross_entropy(input.unsqueeze(0), target.unsqueeze(0), **o)
    classes = input.shape[1]
    rows = input.movedim(1, -1).reshape(-1, classes)
    if target.is_floating_point():
        out_shape = target.shape[:1] + target.shape[2:]
        flat = target.movedim(1, -1).reshape(-1, classes)
    else:
        out_shape = target.shape
        flat = target.reshape(-1)
    out = F.cross_entropy(rows, flat, **o)
    return out.reshape(out_shape) if _reduction(o) == "none" else out


def copied_contiguous(input, target, **o):
    """Inputs copied contiguous first (what a kernel that needs dense rows does)."""
    return F.cross_entropy(input.contiguous(), target.contiguous(), **o)


def bce_copied_contiguous(input, target, weight=None, reduction="mean", pos_weight=None):
    """Binary cross-entropy on contiguous copies, the weight made per-element first."""
    if weight is not None:
        weight = weight.expand(torch.broadcast_shapes(weight.shape, input.shape)).contiguous()
    return F.binary_cross_entropy_with_logits(input.contiguous(), target.contiguous(), weight=weight,
                                              reduction=reduction, pos_weight=pos_weight)


CORRECT: dict[str, str] = {"rows_class_last": "multiclass", "copied_contiguous": "multiclass",
                           "bce_copied_contiguous": "binary"}
