"""Host-side geometry: how a kernel walks the rows of strided tensors without copying.

A multi-class kernel sees logits ``[N, C, *S]`` as rows (the positions ``N × S``, in
row-major order, which is also the order of the target and of a ``'none'`` loss) times
classes. Each tensor the kernel touches gets one stride per row dim; adjacent row dims are
merged whenever every tensor allows it, so the usual layouts (contiguous NCHW, channels
last, plain [N, C]) reduce to one or two dims and the kernel's index arithmetic stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

ROW_DIMS = 4  # N plus at most three spatial dims (binary: channel dim of size 1 dropped)


def next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def merge_dims(sizes: Sequence[int], *strides: Sequence[int],
               ndims: int = ROW_DIMS) -> tuple[list[int], list[list[int]]]:
    """Collapse ``sizes`` (with one stride list per tensor) to exactly ``ndims`` dims.

    Size-1 dims are dropped, an outer dim is merged into its inner neighbour when
    ``stride_outer == stride_inner * size_inner`` holds for every tensor, and the result is
    padded in front with size-1, stride-0 dims. The linear row-major index over the
    returned sizes equals the one over ``sizes``, so a row's index is layout independent.
    """
    dims = [(s, [st[i] for st in strides]) for i, s in enumerate(sizes) if s != 1]
    merged: list[tuple[int, list[int]]] = []
    for size, strd in dims:
        if merged:
            o_size, o_strd = merged[-1]
            if all(o == i * size for o, i in zip(o_strd, strd, strict=True)):
                merged[-1] = (o_size * size, strd)
                continue
        merged.append((size, strd))
    if len(merged) > ndims:
        raise ValueError(f"{len(sizes)} row dims with sizes {tuple(sizes)} cannot be reduced "
                         f"to {ndims}; the kernels handle at most {ndims}")
    merged = [(1, [0] * len(strides))] * (ndims - len(merged)) + merged
    return [m[0] for m in merged], [[m[1][t] for m in merged] for t in range(len(strides))]


def row_strides(t, class_dim: int | None = 1) -> list[int]:
    """Strides of ``t``'s row dims (all dims but ``class_dim``)."""
    return [s for d, s in enumerate(t.stride()) if d != class_dim]


def tile(n_rows: int, n_cols: int, budget: int, max_cols: int) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_C): a power-of-two tile of about ``budget`` elements, as wide as the
    class dim allows (up to ``max_cols``) and no taller than the rows need."""
    block_c = min(next_pow2(n_cols), max_cols)
    block_r = max(1, min(budget // block_c, next_pow2(max(n_rows, 1))))
    return block_r, block_c
