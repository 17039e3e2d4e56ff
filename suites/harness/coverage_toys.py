"""Losses wrong on one value of one dimension only, 1 % off (10 % in bfloat16, whose
tolerance is wider) (`test_coverage.py`): the
draw may miss such a value, the stratified cases must not. Not a test module: imported
through ``--contender``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _off(when, factor: float = 1.01):
    def loss(input, target, **options):
        out = F.cross_entropy(input, target, **options)
        return out * factor if when(input, target, options) else out

    loss.__doc__ = f"{100 * (factor - 1):.0f} % off when {when.__doc__}"
    return loss


def _volume(x, t, o):
    """the input is 3-D volumetric ([N, C, D, H, W])"""
    return x.dim() == 5


def _unbatched(x, t, o):
    """the input is one sample ([C])"""
    return x.dim() == 1


def _half(x, t, o):
    """the input is float16"""
    return x.dtype == torch.float16


def _bf16(x, t, o):
    """the input is bfloat16"""
    return x.dtype == torch.bfloat16


def _sum(x, t, o):
    """reduction='sum'"""
    return o.get("reduction") == "sum"


def _weighted(x, t, o):
    """class weights are given"""
    return o.get("weight") is not None


def _ignoring(x, t, o):
    """a target is ignored"""
    return not t.is_floating_point() and bool((t == o.get("ignore_index", -100)).any())


def _smoothing(x, t, o):
    """labels are smoothed"""
    return bool(o.get("label_smoothing"))


def _soft(x, t, o):
    """the targets are probabilities"""
    return t.is_floating_point()


def _masked(x, t, o):
    """a logit is -inf"""
    return bool(torch.isinf(x).any())


def _strided(x, t, o):
    """the logits are not contiguous in any layout"""
    return not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))


def _vocab(x, t, o):
    """there are more than 1024 classes"""
    return x.dim() > 1 and x.shape[1] > 1024


TOYS = {"volume": _volume, "unbatched": _unbatched, "half": _half, "bf16": _bf16, "sum": _sum,
        "weighted": _weighted, "ignoring": _ignoring, "smoothing": _smoothing, "soft": _soft,
        "masked": _masked, "strided": _strided, "vocab": _vocab}
# bfloat16 keeps 8 bits: its tolerance is past 1 %, so its toy is 10 % off
FACTORS = {"bf16": 1.1}
for _name, _when in TOYS.items():
    globals()[f"off_{_name}"] = _off(_when, FACTORS.get(_name, 1.01))


def bce_mean_over_weighted(input, target, weight=None, reduction="mean", pos_weight=None):
    """Binary cross-entropy whose mean divides by the positions with a non-zero weight, not
    by all of them: right unless some weights are zero (the seed's helper gives a class
    weight 0 when it is absent; ``onehot`` weighs the negatives 0)."""
    if reduction == "mean" and weight is not None:
        total = F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction="sum",
                                                   pos_weight=pos_weight)
        return total / (weight.expand_as(input) != 0).sum()
    return F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction=reduction,
                                              pos_weight=pos_weight)
