"""The report's traffic model, `min_bytes`; GB/s and % of peak in reports use it.

The least a loss must move through memory, whatever it is
written in — logits read once, targets read once, the output written (one element per
position for reduction='none', negligible otherwise), the class-weight vector read; for
``fwd_bwd`` additionally the gradient written once (same size as the logits) and, for
'none', the upstream gradient read. A fused kernel can reach this; a chain of eager ops
moves several times more. GB/s = min_bytes / median time.

The fused kernels' own check (`harness.kernels.microbench`) uses a different model,
`fused_bytes`, and says so."""

from __future__ import annotations

import math

import torch

from harness.problem.case import Case


def min_bytes(case: Case, mode: str) -> int:
    """Least bytes moved (module docstring)."""
    elem = torch.finfo(case.torch_dtype).bits // 8
    positions = case.positions
    logits = math.prod(case.logits_shape) * elem
    hard_ids = case.spec.index_targets and not case.soft
    target = positions * 8 if hard_ids else logits  # int64 ids, or probabilities like logits
    per_weight = logits if case.spec.elementwise else case.c * elem
    weights = per_weight if case.weights != "none" else 0
    out = positions * elem if case.reduction == "none" else elem
    total = logits + target + weights + out
    if mode == "fwd_bwd":
        total += logits + (out if case.reduction == "none" else 0)
    return total


