"""Class-weighting schemes computed from a batch of targets.

Notation: ``n_c`` is the number of (non-ignored) targets of class ``c``, ``N = sum_c n_c``,
``K`` the number of classes, ``f_c = n_c / N``. Every scheme except `seed_inverse_freq`
returns finite, non-negative float64 weights for any batch, including an empty one, an
all-background one and one where classes are absent; each docstring says what an absent
class gets. Absent classes matter: they carry no targets, but label smoothing weights
every class's term.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

EFFECTIVE_NUMBER_BETA = 0.9999


def class_counts(target: torch.Tensor, n_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    """float64 count per class. Binary targets ([N,1,H,W] or [N,H,W] floats in {0,1}) and
    class-id targets ([N, *]) are both accepted; ``ignore_index`` positions are skipped."""
    flat = target.reshape(-1)
    if flat.is_floating_point():
        flat = flat.round().long()
    if ignore_index is not None:
        flat = flat[flat != ignore_index]
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= n_classes):
        raise ValueError(
            f"targets must be class ids in [0, {n_classes}); found values in "
            f"[{int(flat.min())}, {int(flat.max())}] — pass ignore_index for padding labels"
        )
    return torch.bincount(flat.cpu(), minlength=n_classes).to(torch.float64)


def _fill_absent(weights: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    present = counts > 0
    if not bool(present.any()):
        return torch.ones_like(weights)
    fill = weights[present].max()
    return torch.where(present, weights, fill)


def seed_inverse_freq(target: torch.Tensor) -> torch.Tensor:
    """The seed tutorial's helper, exactly as written there minus its ``.cuda()``.

    ``alpha = target.sum() / (H * W)`` — the sum runs over the whole batch but the
    denominator is one image, so alpha exceeds 1 for N > 1 (negative weight for class 1)
    and is 0 for an all-background batch (every target then has weight 0 and the weighted
    mean is 0/0 = NaN). Returns ``[alpha, 1 - alpha]``. Kept to demonstrate those defects.
    """
    den = target.sum()
    h, w = target.shape[-2:]
    alpha = den / (h * w)
    return torch.tensor([float(alpha), float(1 - alpha)], dtype=torch.float64)


def inverse_freq(counts: torch.Tensor) -> torch.Tensor:
    """The seed's intent, corrected: frequencies over all N·H·W positions.

    Binary (K = 2): ``[f_1, f_0]`` — each class is weighted by the other's frequency.
    K > 2: ``w_c = (1 - f_c) / (K - 1)``, the same rule generalised (weights sum to 1).
    A batch in which at most one class is present gets uniform weights (1 each): a single
    present class makes every weight cancel in the weighted mean, and the seed's formula
    would give that class weight 0 and a NaN loss.
    """
    # Without a host sync (no int() or if on a tensor), so that the same function serves a
    # loss that computes its weights on the device in every call (the headline's per-call
    # weights, the fused BCE kernel's): float64 counts give float64 weights on their device.
    k = counts.numel()
    freq = counts / counts.sum().clamp(min=1)
    w = freq.flip(0) if k == 2 else (1 - freq) / (k - 1)
    return torch.where((counts > 0).sum() <= 1, torch.ones_like(w), w)


def binary_inverse_freq(n_pos: torch.Tensor, numel: int | torch.Tensor) -> torch.Tensor:
    """`inverse_freq` of 0/1 targets from their device-side positive count, without a host
    sync: [w_0, w_1] = [f_1, f_0] in float64 on ``n_pos``'s device (the fused BCE kernel's
    and the per-call weights' rule, written once)."""
    return inverse_freq(torch.stack([numel - n_pos, n_pos]).to(torch.float64))


def balanced(counts: torch.Tensor) -> torch.Tensor:
    """scikit-learn's 'balanced': ``w_c = N / (K · n_c)``, so every present class carries
    the same total weight N / K. An absent class gets the largest present class's weight."""
    k = counts.numel()
    raw = counts.sum() / (k * counts.clamp(min=1))
    return _fill_absent(raw, counts)


def sqrt_inv_freq(counts: torch.Tensor) -> torch.Tensor:
    """``w_c = sqrt(N / (K · n_c))``: a softened `balanced`. Absent class: the largest
    present class's weight."""
    return _fill_absent(balanced(counts).sqrt(), counts)


def median_freq(target: torch.Tensor, n_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    """Median-frequency balancing (Eigen & Fergus, 2015): ``freq_c = n_c / (positions of
    the images in which c appears)``, ``w_c = median over present classes of freq / freq_c``.
    Absent class: the largest present class's weight."""
    if target.dim() == 0 or target.shape[0] == 0:
        return torch.ones(n_classes, dtype=torch.float64)
    per_image = torch.stack([class_counts(img, n_classes, ignore_index) for img in target])
    counts = per_image.sum(0)
    image_sizes = per_image.sum(1, keepdim=True)
    pixels_where_present = (image_sizes * (per_image > 0)).sum(0)
    present = counts > 0
    freq = torch.where(present, counts / pixels_where_present.clamp(min=1), torch.ones_like(counts))
    if not bool(present.any()):
        return torch.ones(n_classes, dtype=torch.float64)
    return _fill_absent(freq[present].median() / freq, counts)


def effective_number(counts: torch.Tensor, beta: float = EFFECTIVE_NUMBER_BETA) -> torch.Tensor:
    """Class-balanced weights (Cui et al., 2019): ``(1 - β) / (1 - β^n_c)``, scaled so the
    weights sum to K. An absent class is treated as n_c = 1 (the largest raw weight, 1)
    instead of dividing by zero. Depends on absolute counts, so unlike the frequency schemes
    it changes when the batch is duplicated."""
    n = counts.clamp(min=1)
    raw = (1 - beta) / (1 - beta**n) if beta > 0 else torch.ones_like(n)
    return raw * counts.numel() / raw.sum()


CountScheme = Callable[[torch.Tensor], torch.Tensor]
COUNT_SCHEMES: dict[str, CountScheme] = {
    "inverse_freq": inverse_freq,
    "balanced": balanced,
    "sqrt_inv_freq": sqrt_inv_freq,
    "effective_number": effective_number,
}
TARGET_SCHEMES = ("median_freq", "seed_inverse_freq")
SYNTHETIC_SCHEMES = ("random", "onehot")
SCHEMES: tuple[str, ...] = ("none", *COUNT_SCHEMES, *TARGET_SCHEMES, *SYNTHETIC_SCHEMES)
NEGATIVE_WEIGHT_SCHEMES = ("seed_inverse_freq",)  # the only ones that can give a weight < 0


def compute(scheme: str, target: torch.Tensor, n_classes: int,
            ignore_index: int | None = None) -> torch.Tensor:
    """Weights of a named data-driven scheme for this batch of targets."""
    if scheme in COUNT_SCHEMES:
        return COUNT_SCHEMES[scheme](class_counts(target, n_classes, ignore_index))
    if scheme == "median_freq":
        return median_freq(target, n_classes, ignore_index)
    if scheme == "seed_inverse_freq":
        if target.dim() < 2:
            raise ValueError("seed_inverse_freq needs targets with at least two dims [.., H, W]")
        return seed_inverse_freq(target.to(torch.float64))
    raise ValueError(f"unknown weighting scheme {scheme!r}; choose one of {SCHEMES}")


def class_weights(scheme: str, target: torch.Tensor, *, n_classes: int, ignore_index: int | None,
                  gen: torch.Generator) -> torch.Tensor | None:
    """The weight vector ``scheme`` gives ``target`` (``n_classes`` classes, positions equal
    to ``ignore_index`` left out; None when nothing is ignored), or None for ``"none"``.
    Besides the data-driven schemes: ``random`` draws each weight uniformly from [0.05, 5];
    ``onehot`` puts weight 1 on the rarest class and 0 elsewhere (so a batch without it has
    all target weights 0)."""
    k = n_classes
    if scheme == "none":
        return None
    if scheme == "random":
        return torch.rand(k, generator=gen, dtype=torch.float64) * 4.95 + 0.05
    if scheme == "onehot":
        w = torch.zeros(k, dtype=torch.float64)
        w[-1] = 1.0
        return w
    w = compute(scheme, target, k, ignore_index)
    if scheme != "seed_inverse_freq" and not bool(torch.isfinite(w).all()):
        raise AssertionError(f"scheme {scheme} produced non-finite weights {w.tolist()}")
    return w


def is_defined(scheme: str, *, n_classes: int, target_dims: int) -> bool:
    """Whether ``scheme`` can be computed at all for ``n_classes`` and targets of
    ``target_dims`` dimensions (the seed's helper needs two classes and [.., H, W])."""
    return not (scheme == "seed_inverse_freq" and (target_dims < 2 or n_classes != 2))


__all__ = [
    "NEGATIVE_WEIGHT_SCHEMES", "SCHEMES", "balanced", "class_counts", "class_weights", "compute",
    "effective_number", "inverse_freq", "is_defined", "median_freq", "seed_inverse_freq", "sqrt_inv_freq",
]
