"""Where the class dimension is. PyTorch's losses take logits as [N, C, d1, ...] (classes
second); a hand-written reduction, the oracle and losses that read 2-D inputs (Liger-Kernel,
timm) want the classes last."""

from __future__ import annotations

import torch


def class_last(x: torch.Tensor) -> torch.Tensor:
    """[N, C, d1, ...] -> [N, d1, ..., C] (a view); [N, C] and [C] unchanged."""
    return x.movedim(1, -1) if x.dim() > 2 else x


def class_rows(x: torch.Tensor) -> torch.Tensor:
    """One row per position: [N, C, d1, ...] -> [N·d1·…, C] (a copy: the classes are
    strided in memory), [N, C] unchanged, an unbatched [C] -> [1, C]."""
    return class_last(x).reshape(-1, x.shape[1 if x.dim() > 1 else 0])
