"""Host-side geometry: how a kernel walks the rows of strided tensors without copying.

A multi-class kernel sees logits ``[N, C, *S]`` as rows (the positions ``N × S``, in
row-major order, which is also the order of the target and of a ``'none'`` loss) times
classes. Each tensor the kernel touches gets one stride per row dim; adjacent row dims are
merged whenever every tensor allows it, so the usual layouts (contiguous NCHW, channels
last, plain [N, C]) reduce to one or two dims and the kernel's index arithmetic stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


# Tile budgets (elements per program). On a GPU a program's cost is its tile: masked lanes
# move no memory, so the tile depends on C alone (few rows do not shrink it) and the set of
# tiles the GPU can pick is small enough to compile ahead of time, every one
# (`harness.kernels.aot`). The interpreter's cost is per program and per element of numpy
# work, so it gets one big tile, no taller than the rows need. Figures are first guesses.
GPU_TILE, GPU_MAX_BLOCK_C = 4096, 4096
INTERP_TILE, INTERP_MAX_BLOCK_C = 1 << 15, 1 << 13
GPU_BLOCK, INTERP_BLOCK = 2048, 1 << 15  # the binary kernel's elements per program


@dataclass(frozen=True)
class Tile:
    """One multi-class launch's tile: ``block_r`` rows by ``block_c`` classes, ``single``
    when one class block holds every class (no online-logsumexp loop), and the warps."""

    block_r: int
    block_c: int
    single: bool
    num_warps: int


def tile(n_rows: int, n_cols: int, budget: int, max_cols: int,
         shrink_rows: bool = True) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_C): a power-of-two tile of about ``budget`` elements, as wide as the
    class dim allows (up to ``max_cols``) and, with ``shrink_rows``, no taller than the
    rows need."""
    block_c = min(next_pow2(n_cols), max_cols)
    block_r = max(1, budget // block_c)
    if shrink_rows:
        block_r = max(1, min(block_r, next_pow2(max(n_rows, 1))))
    return block_r, block_c


def warps(block_r: int, block_c: int) -> int:
    return 8 if block_r * block_c >= 4096 else 4


def xent_tile(n_rows: int, n_cols: int, gpu: bool) -> Tile:
    """The multi-class kernels' tile: the GPU's (``gpu``: compiled, or the interpreter under
    `harness.kernels.at_gpu_tiles`) or the interpreter's own."""
    if gpu:
        block_r, block_c = tile(n_rows, n_cols, GPU_TILE, GPU_MAX_BLOCK_C, shrink_rows=False)
    else:
        block_r, block_c = tile(n_rows, n_cols, INTERP_TILE, INTERP_MAX_BLOCK_C)
    return Tile(block_r, block_c, n_cols <= block_c, warps(block_r, block_c))


def bce_block(numel: int, gpu: bool) -> int:
    """The binary kernels' elements per program (GPU: fixed; interpreter: no more than
    ``numel`` needs)."""
    if gpu:
        return GPU_BLOCK
    return max(1, min(INTERP_BLOCK, next_pow2(max(numel, 1))))


def gpu_xent_tiles(max_classes: int = 1 << 20) -> list[Tile]:
    """Every distinct tile `xent_tile` picks on the GPU for C = 1 .. ``max_classes`` (any
    row count: the GPU tile does not depend on it), in order of C. Enumerated by trying
    every C, so a policy change cannot leave a tile out of the ahead-of-time compile."""
    seen: dict[Tile, None] = {}
    for n_cols in range(1, max_classes + 1):
        seen.setdefault(xent_tile(1, n_cols, gpu=True))
    return list(seen)


INT32_MAX = 2**31 - 1


def is_flat(sizes: Sequence[int]) -> bool:
    """Whether the merged row sizes (`merge_dims`) have one dim that is not 1, the
    innermost: the kernels' ``FLAT`` path, which indexes rows with no division."""
    return all(s == 1 for s in sizes[:-1])


def needs_int64(sizes: Sequence[int], strides: Sequence[Sequence[int]], block_rows: int,
                n_cols: int = 1, block_cols: int = 1,
                col_strides: Sequence[int] = ()) -> bool:
    """Whether any offset a launch can form — padding lanes of the last program included —
    may pass 2**31 - 1, so the kernels must index in 64 bits (``IDX64``). A padded row's
    index runs up to ``block_rows`` past the last, which the outermost index (or the flat
    one) absorbs: at most ``block_rows`` times the largest row stride more than the last
    real row's offset. Class offsets run up to ``n_cols + block_cols - 1`` times the class
    stride. Conservative by design: int32 is only a speed-up (`suites/harness/test_fused_int_index.py`)."""
    n_rows = 1
    for s in sizes:
        n_rows *= s
    if n_rows + block_rows > INT32_MAX or n_cols + block_cols > INT32_MAX:
        return True
    cols = list(col_strides) or [0] * len(strides)
    for strd, col in zip(strides, cols, strict=True):
        reach = sum((s - 1) * abs(st) for s, st in zip(sizes, strd, strict=True))
        reach += block_rows * max((abs(st) for st in strd), default=0)
        reach += (n_cols + block_cols - 1) * abs(col)
        if reach > INT32_MAX:
            return True
    return False
