r"""Fused binary cross-entropy with logits for 1-channel logits ([N, 1, *S] or [N, *S]).

Semantics of `F.binary_cross_entropy_with_logits` (see `harness.problem.bce`): with ω = weight
and π = pos_weight broadcast to x (1 where None),

    l_n = ω_n·[π_n·y_n·softplus(-x_n) + (1 - y_n)·softplus(x_n)]
    d_n = ω_n·[(1 - y_n)·σ(x_n) - π_n·y_n·σ(-x_n)]              (∂l_n/∂x_n)
    none: l_n    sum: Σ l_n    mean: Σ l_n / numel

One forward kernel writes l (or per-program partial sums) and the gradient — for 'mean'
d / normaliser, the final gradient for an upstream 1 — and the backward is the multi-class
scaling kernel with one class, which does nothing when a scalar upstream g is 1.
Broadcast ω and π are read through stride-0 views, never materialised. ``softplus`` and σ
are built from e = exp(-|x|) alone (log1p via log(1+e)·e/((1+e)-1), exact for e ≤ 1):
libdevice's log1p is unavailable in the interpreter.

`inverse_freq` adds the seed's per-batch weights computed on the device: a pre-pass counts
positives (1 byte per pixel for uint8 targets), [w0, w1] = `harness.problem.weights.inverse_freq` of
those counts is formed with tensor ops (no host sync), and the main kernel weights each
element by w_{y_n}. Traffic per pixel (b = logit bytes, t = target bytes): pre-pass t,
forward b + t + b (write d), backward 2b only when g != 1 — for bf16 logits, uint8
targets and `loss.backward()` 6 bytes, vs 2·(2·b) + 8 = 16 for 2-class `cross_entropy`
with int64 targets done the same way.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from harness.kernels import gpu_tiles
from harness.kernels._jit import claim_stored_gradient, jit, launch_guard
from harness.kernels.layout import bce_block, is_flat, merge_dims, needs_int64
from harness.kernels.xent import UNSPECIALISED, _acc, _first_index, _row_index, _xent_bwd
from harness.problem.weights import binary_inverse_freq


@jit(do_not_specialize=UNSPECIALISED)
def _bce_fwd(x_ptr, y_ptr, w_ptr, pw_ptr, cw_ptr, d_ptr, loss_ptr, part_ptr, norm_ptr, numel,
             R1, R2, R3,
             xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3, ws0, ws1, ws2, ws3, ps0, ps1, ps2, ps3,
             ds0, ds1, ds2, ds3, BLOCK: tl.constexpr, HAS_W: tl.constexpr,
             HAS_PW: tl.constexpr, CLASS_W: tl.constexpr, REDUCE_NONE: tl.constexpr,
             ACC_T: tl.constexpr, FLAT: tl.constexpr, IDX64: tl.constexpr,
             FINAL: tl.constexpr):
    pid = tl.program_id(0)
    idx = _first_index(pid, BLOCK, IDX64) + tl.arange(0, BLOCK)
    mask = idx < numel
    i0, i1, i2, i3 = _row_index(idx, R1, R2, R3, FLAT)
    x = tl.load(x_ptr + i0 * xs0 + i1 * xs1 + i2 * xs2 + i3 * xs3, mask=mask,
                other=0.0).to(ACC_T)
    y = tl.load(y_ptr + i0 * ys0 + i1 * ys1 + i2 * ys2 + i3 * ys3, mask=mask,
                other=0).to(ACC_T)
    omega = tl.full([BLOCK], 1.0, ACC_T)
    if HAS_W:
        omega = tl.load(w_ptr + i0 * ws0 + i1 * ws1 + i2 * ws2 + i3 * ws3, mask=mask,
                        other=0.0).to(ACC_T)
    if CLASS_W:
        omega *= tl.where(y > 0.5, tl.load(cw_ptr + 1).to(ACC_T), tl.load(cw_ptr).to(ACC_T))
    e = tl.exp(-tl.abs(x))
    u = 1.0 + e  # log1p(e) for 0 <= e <= 1, exact: log(u)·e/(u-1), no libdevice
    l1p = tl.where(u == 1.0, e, tl.log(u) * (e / (u - 1.0)))
    inv = 1.0 / (1.0 + e)
    sig = tl.where(x >= 0, inv, e * inv)      # σ(x)
    sig_neg = tl.where(x >= 0, e * inv, inv)  # σ(-x)
    pos_term = y * (tl.maximum(-x, 0.0) + l1p)
    pos_grad = y * sig_neg
    if HAS_PW:
        pi = tl.load(pw_ptr + i0 * ps0 + i1 * ps1 + i2 * ps2 + i3 * ps3, mask=mask,
                     other=1.0).to(ACC_T)
        pos_term = pi * pos_term
        pos_grad = pi * pos_grad
    loss = omega * (pos_term + (1.0 - y) * (tl.maximum(x, 0.0) + l1p))
    d = omega * ((1.0 - y) * sig - pos_grad)
    if FINAL:  # 'mean': the final gradient for an upstream 1, d / normaliser
        norm = tl.load(norm_ptr).to(ACC_T)
        d = d * tl.where(norm == 0, float("nan"), 1.0 / tl.where(norm == 0, 1.0, norm))
    tl.store(d_ptr + i0 * ds0 + i1 * ds1 + i2 * ds2 + i3 * ds3, d, mask=mask)
    loss = tl.where(mask, loss, 0.0)
    if REDUCE_NONE:
        tl.store(loss_ptr + idx, loss, mask=mask)
    tl.store(part_ptr + pid, tl.sum(loss, 0))


@jit(do_not_specialize=UNSPECIALISED)
def _count_pos(y_ptr, part_ptr, numel, R1, R2, R3, ys0, ys1, ys2, ys3, BLOCK: tl.constexpr,
               FLAT: tl.constexpr, IDX64: tl.constexpr):
    """Per-program count of positive targets (y > 0.5)."""
    pid = tl.program_id(0)
    idx = _first_index(pid, BLOCK, IDX64) + tl.arange(0, BLOCK)
    mask = idx < numel
    i0, i1, i2, i3 = _row_index(idx, R1, R2, R3, FLAT)
    y = tl.load(y_ptr + i0 * ys0 + i1 * ys1 + i2 * ys2 + i3 * ys3, mask=mask, other=0)
    tl.store(part_ptr + pid, tl.sum((y.to(tl.float32) > 0.5).to(tl.int64), 0))


def _block(numel: int) -> int:
    """Elements per program (`harness.kernels.layout.bce_block`)."""
    return bce_block(numel, gpu=gpu_tiles())


def _as_loadable(t: torch.Tensor) -> torch.Tensor:
    """bool targets as uint8 (a free view): Triton's i1 pointers are awkward to load."""
    return t.view(torch.uint8) if t.dtype == torch.bool else t


def _broadcast(t: torch.Tensor | None, shape: torch.Size, name: str) -> torch.Tensor | None:
    if t is None:
        return None
    try:
        return t.expand(shape)  # stride-0 view: broadcast ω / π cost no memory or traffic
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast to the input's "
                         f"{tuple(shape)}") from None


class FusedBCEWithLogits(torch.autograd.Function):
    """Forward: one kernel for loss and unscaled gradient; backward: in-place scaling."""

    @staticmethod
    def forward(ctx, x, y, weight, pos_weight, class_weight, reduction: str,
                normaliser: torch.Tensor | None):
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        numel = x.numel()
        d = torch.empty_like(x)
        w = _broadcast(weight, x.shape, "weight")
        pw = _broadcast(pos_weight, x.shape, "pos_weight")
        y = _as_loadable(y)
        dummy = x
        tensors = [x, y, w if w is not None else dummy, pw if pw is not None else dummy, d]
        sizes, strides = merge_dims(list(x.shape), *(list(t.stride()) for t in tensors))
        block = _block(numel)
        grid = triton.cdiv(numel, block)
        parts = torch.zeros(max(grid, 1), dtype=acc, device=x.device)
        loss_el = torch.empty(x.shape if reduction == "none" else (0,), dtype=x.dtype,
                              device=x.device)
        cw = class_weight if class_weight is not None else parts
        if normaliser is None:
            normaliser = torch.full((), float(numel), dtype=acc, device=x.device)  # no H2D copy
        if numel:
            with launch_guard():
                _bce_fwd[(grid,)](
                    x, y, tensors[2], tensors[3], cw, d, loss_el, parts, normaliser, numel,
                    sizes[1], sizes[2], sizes[3], *(s for st in strides for s in st),
                    BLOCK=block, HAS_W=w is not None, HAS_PW=pw is not None,
                    CLASS_W=class_weight is not None, REDUCE_NONE=reduction == "none",
                    ACC_T=_acc(x.dtype), FLAT=is_flat(sizes),
                    IDX64=needs_int64(sizes, strides, block), FINAL=reduction == "mean",
                    num_warps=4)
        if reduction == "none":
            loss = loss_el
        elif reduction == "sum":
            loss = parts.sum().to(x.dtype)
        else:
            loss = (parts.sum() / normaliser).to(x.dtype)  # 0/0 = NaN for an empty input
        ctx.d, ctx.reduction, ctx.consumed = d, reduction, False
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        claim_stored_gradient(ctx, "fused_triton_binary")
        d = ctx.d
        shape = list(d.shape)
        g = g.expand(shape) if ctx.reduction == "none" else g.reshape(()).expand(shape)
        sizes, (ds, gs) = merge_dims(shape, list(d.stride()), list(g.stride()))
        numel = d.numel()
        block = _block(numel)
        if numel:
            with launch_guard():
                _xent_bwd[(triton.cdiv(numel, block), 1)](
                    d, g, numel, 1, sizes[1], sizes[2], sizes[3], *ds, 0, *gs,
                    BLOCK_R=block, BLOCK_C=1, ACC_T=_acc(d.dtype), FLAT=is_flat(sizes),
                    IDX64=needs_int64(sizes, (ds, gs), block),
                    UNIT_SKIP=ctx.reduction != "none", num_warps=4)
        ctx.d = None
        return d, None, None, None, None, None, None


def _check(x: torch.Tensor, y: torch.Tensor, reduction: str) -> None:
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"Target size ({tuple(y.shape)}) must be the same as input size "
                         f"({tuple(x.shape)})")
    if sum(s != 1 for s in x.shape) > 4:
        raise ValueError("at most 4 non-singleton dims are supported")


def binary_cross_entropy_with_logits(input: torch.Tensor, target: torch.Tensor,
                                     weight: torch.Tensor | None = None,
                                     pos_weight: torch.Tensor | None = None,
                                     reduction: str = "mean") -> torch.Tensor:
    """`F.binary_cross_entropy_with_logits` through the fused kernels (float or uint8/bool
    0/1 targets of the input's shape)."""
    _check(input, target, reduction)
    return FusedBCEWithLogits.apply(input, target, weight, pos_weight, None, reduction, None)


def count_positives(target: torch.Tensor) -> torch.Tensor:
    """Number of targets > 0.5, as a 0-dim int64 tensor on the target's device (no sync)."""
    y = _as_loadable(target)
    numel = y.numel()
    block = _block(numel)
    grid = max(triton.cdiv(numel, block), 1)
    parts = torch.zeros(grid, dtype=torch.int64, device=y.device)
    sizes, (ys,) = merge_dims(list(y.shape), list(y.stride()))
    if numel:
        with launch_guard():
            _count_pos[(grid,)](y, parts, numel, sizes[1], sizes[2], sizes[3], *ys, BLOCK=block,
                                FLAT=is_flat(sizes), IDX64=needs_int64(sizes, (ys,), block))
    return parts.sum()


def inverse_freq(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                 normalize: str = "numel") -> torch.Tensor:
    """Binary cross-entropy on 1-channel logits with the batch's inverse-frequency class
    weights [w0, w1] = `harness.problem.weights.inverse_freq(counts)` computed on the device, each
    element weighted by w_{y_n}. ``target``: 0/1 values (uint8, bool or float) of the
    logits' shape, or of [N, *S] for [N, 1, *S] logits.

    ``normalize`` picks the mean: ``"numel"`` is BCE's (Σ l / numel); ``"weights"`` is
    cross_entropy's weighted mean Σ l / Σ w_{y_n} — what 2-class `F.cross_entropy` with
    these weights gives, so the two formulations can be benchmarked against each other.
    """
    if normalize not in ("numel", "weights"):
        raise ValueError(f"normalize must be 'numel' or 'weights', got {normalize!r}")
    if target.dim() == logits.dim() - 1 and logits.dim() >= 2 and logits.shape[1] == 1:
        target = target.unsqueeze(1)
    _check(logits, target, reduction)
    numel = logits.numel()
    n_pos = count_positives(target)
    w = binary_inverse_freq(n_pos, numel)
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    cw = w.to(logits.dtype).to(acc)  # weights rounded to the input dtype, as a caller's would be
    normaliser = None
    if normalize == "weights":  # Σ_n w_{y_n} = n0·w0 + n1·w1: no pass over the data
        c64 = cw.to(torch.float64)
        normaliser = ((numel - n_pos) * c64[0] + n_pos * c64[1]).to(acc)
    return FusedBCEWithLogits.apply(logits, target, None, None, cw, reduction, normaliser)
