r"""Fused multi-class cross-entropy: one forward kernel writes the per-row loss (or its
partial sums) *and* the gradient; the backward kernel scales it only when it must.

For row n with target y, class weights w (ones when absent), smoothing ε, C classes and
lse = logsumexp_c x_nc (computed online over class blocks, in fp32 — fp64 for fp64 input):

    loss_n = (1-ε)·w_y·(lse - x_y) + (ε/C)·(Σ_c w_c · lse - Σ_c w_c x_c)
    d_nk   = p_nk·[(1-ε)·w_y + (ε/C)·Σ_c w_c] - [(1-ε)·w_y·[k=y] + (ε/C)·w_k],  p = e^{x-lse}

both zero on ignored rows. The forward stores the gradient in the logits' dtype in a
buffer of its own, never in the logits: for 'sum' d itself, for 'mean' d / W (W = Σ w_y
over non-ignored rows, from a pre-pass over the targets, `_target_weight_sum`, reduced
from per-program partials — deterministic, no atomics), which are the final gradients
for an upstream gradient of 1. When W = 0 the forward, branching on W read from device
memory (no host sync), writes NaN on non-ignored rows and 0 on ignored ones: PyTorch's
contract. For 'none' it stores d. The backward multiplies in place by the upstream
gradient: g_n per row ('none'), or a scalar g ('sum', 'mean'), skipped on the device
when g = 1 (the kernel reads g and stops: `loss.backward()` moves no gradient bytes).

Traffic per position (b = bytes of a logit, t = bytes of a target), C classes: forward
reads C·b + t, writes C·b (+ b for 'none'); 'mean''s pre-pass reads t (and w_y); the
backward reads and writes C·b in place unless g = 1 ('sum', 'mean'). With g = 1:
'mean' ≈ 2·C·b + 2·t, 'sum' ≈ 2·C·b + t; 'none' ≈ 4·C·b + t. When C > BLOCK_C the forward
reads the logits twice (two passes over class blocks), + C·b.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import triton
import triton.language as tl

from harness.kernels import gpu_tiles
from harness.kernels._jit import claim_stored_gradient, jit, launch_guard
from harness.kernels.layout import Tile, bce_block, is_flat, merge_dims, needs_int64, row_strides, xent_tile

ACC = {torch.float64: tl.float64}


# Sizes whose specialisation (== 1, divisible by 16) cannot help the generated code: the
# outer merged row sizes are only divided by, after the contiguity is lost. Not specialising
# them spares a compile per new pattern. n_rows, C, numel and the innermost size R3 stay
# specialised: their divisibility by 16 lets masked loads along the contiguous axis vectorise.
UNSPECIALISED = ["R1", "R2"]


@jit
def _row_index(rows, R1, R2, R3, FLAT: tl.constexpr):
    """A row's index over the 4 merged row dims, from its row-major index. Offsets are then
    i·strides per tensor: one helper call, since the interpreter pays per call. ``FLAT``:
    only the innermost merged dim is not 1 (contiguous [N, C], channels-last, a contiguous
    binary map), so the row index is the index, with no runtime division; the zeros fold
    away with their strides."""
    # one return: Triton types every return of a function, dead constexpr branches included
    if FLAT:
        i0 = tl.zeros_like(rows)
        i1 = i0
        i2 = i0
        i3 = rows
    else:
        i3 = rows % R3
        t = rows // R3
        i2 = t % R2
        t = t // R2
        i0 = t // R1
        i1 = t % R1
    return i0, i1, i2, i3


@jit
def _first_index(pid, BLOCK: tl.constexpr, IDX64: tl.constexpr):
    """The program's first row (or element) index: 64-bit only when `layout.needs_int64`
    said an offset may pass 2**31 - 1, else 32-bit (cheaper division and multiplication)."""
    return pid.to(tl.int64) * BLOCK if IDX64 else pid * BLOCK  # one return: see _row_index


@jit
def _wide(i, IDX64: tl.constexpr):
    """``i`` (an int32 arange) widened to 64 bits when offsets need them."""
    return i.to(tl.int64) if IDX64 else i


@jit(do_not_specialize=UNSPECIALISED)
def _target_weight_sum(y_ptr, w_ptr, part_ptr, n_rows, C, ignore_index, R1, R2, R3,
                       ys0, ys1, ys2, ys3, BLOCK: tl.constexpr, HAS_W: tl.constexpr,
                       ACC_T: tl.constexpr, FLAT: tl.constexpr, IDX64: tl.constexpr):
    """Per-program Σ w_y over non-ignored rows: 'mean''s W, from the targets alone (t bytes
    a row), so the forward can write the final gradient d / W. An out-of-range target adds
    0, as in the forward, which makes its row NaN anyway."""
    rows = _first_index(tl.program_id(0), BLOCK, IDX64) + tl.arange(0, BLOCK)
    rmask = rows < n_rows
    i0, i1, i2, i3 = _row_index(rows, R1, R2, R3, FLAT)
    y = tl.load(y_ptr + i0 * ys0 + i1 * ys1 + i2 * ys2 + i3 * ys3, mask=rmask,
                other=ignore_index).to(tl.int64)
    hit = rmask & (y != ignore_index) & (y >= 0) & (y < C)
    wy = tl.load(w_ptr + y, mask=hit, other=0.0) if HAS_W else tl.where(hit, 1.0, 0.0)
    tl.store(part_ptr + tl.program_id(0), tl.sum(wy.to(ACC_T), 0))


@jit
def _load_block(x_ptr, xrow, cols, xsc, rmask, w_ptr, C, HAS_W: tl.constexpr,
                ACC_T: tl.constexpr, IDX64: tl.constexpr):
    """One [rows, classes] block of logits (-inf outside) and the classes' weights."""
    cmask = cols < C
    mask = rmask[:, None] & cmask[None, :]
    x = tl.load(x_ptr + xrow[:, None] + _wide(cols, IDX64)[None, :] * xsc, mask=mask,
                other=float("-inf")).to(ACC_T)
    if HAS_W:
        w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(ACC_T)
    else:
        w = tl.where(cmask, 1.0, 0.0).to(ACC_T)
    return x, w, cmask


@jit(do_not_specialize=UNSPECIALISED)
def _xent_fwd(x_ptr, y_ptr, w_ptr, coef_ptr, d_ptr, loss_ptr, part_ptr, wsum_ptr,
              n_rows, C, ignore_index, R1, R2, R3,
              xs0, xs1, xs2, xs3, xsc, ds0, ds1, ds2, ds3, dsc, ys0, ys1, ys2, ys3,
              BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, SINGLE: tl.constexpr,
              HAS_W: tl.constexpr, HAS_LS: tl.constexpr, REDUCE_NONE: tl.constexpr,
              ACC_T: tl.constexpr, FLAT: tl.constexpr, IDX64: tl.constexpr,
              FINAL: tl.constexpr):
    pid = tl.program_id(0)
    rows = _first_index(pid, BLOCK_R, IDX64) + tl.arange(0, BLOCK_R)
    rmask = rows < n_rows
    i0, i1, i2, i3 = _row_index(rows, R1, R2, R3, FLAT)
    xrow = i0 * xs0 + i1 * xs1 + i2 * xs2 + i3 * xs3
    drow = i0 * ds0 + i1 * ds1 + i2 * ds2 + i3 * ds3
    yrow = i0 * ys0 + i1 * ys1 + i2 * ys2 + i3 * ys3
    y = tl.load(y_ptr + yrow, mask=rmask, other=ignore_index).to(tl.int64)
    valid = rmask & (y != ignore_index)
    bad = valid & ((y < 0) | (y >= C))  # out-of-range target: NaN, never a silent value
    keep = tl.load(coef_ptr).to(ACC_T)       # 1 - ε
    eps_c = tl.load(coef_ptr + 1).to(ACC_T)  # ε / C
    zero = tl.zeros([BLOCK_R], dtype=ACC_T)
    cols0 = tl.arange(0, BLOCK_C)

    if SINGLE:
        x, w, cmask = _load_block(x_ptr, xrow, cols0, xsc, rmask, w_ptr, C, HAS_W, ACC_T, IDX64)
        m = tl.max(x, 1)
        shift = tl.where(m > float("-inf"), m, 0.0)
        s = tl.sum(tl.exp(x - shift[:, None]), 1)
        hit = cols0[None, :] == y[:, None]
        xy = tl.sum(tl.where(hit, x, 0.0), 1)
        wy = tl.sum(tl.where(hit, w, 0.0), 1)
        sx = zero
        sw = zero
        if HAS_LS:
            sx = tl.sum(tl.where(cmask[None, :], x * w[None, :], 0.0), 1)
            sw = tl.sum(w, 0) + zero
    else:
        m = zero + float("-inf")
        s = zero
        xy = zero
        wy = zero
        sx = zero
        sw = zero
        for c0 in range(0, C, BLOCK_C):
            cols = c0 + cols0
            x, w, cmask = _load_block(x_ptr, xrow, cols, xsc, rmask, w_ptr, C, HAS_W, ACC_T, IDX64)
            m_new = tl.maximum(m, tl.max(x, 1))
            shift = tl.where(m_new > float("-inf"), m_new, 0.0)
            s = s * tl.exp(m - shift) + tl.sum(tl.exp(x - shift[:, None]), 1)
            m = m_new
            hit = cols[None, :] == y[:, None]
            xy += tl.sum(tl.where(hit, x, 0.0), 1)
            wy += tl.sum(tl.where(hit, w, 0.0), 1)
            if HAS_LS:
                sx += tl.sum(tl.where(cmask[None, :], x * w[None, :], 0.0), 1)
                sw += tl.sum(w, 0)

    lse = tl.where(m > float("-inf"), m, 0.0) + tl.log(s)
    wy = tl.where(valid, wy, 0.0)
    loss = keep * wy * (lse - xy)
    a = keep * wy
    if HAS_LS:
        loss += eps_c * (sw * lse - sx)
        a += eps_c * sw
    nan = zero + float("nan")
    loss = tl.where(valid, tl.where(bad, nan, loss), 0.0)
    a = tl.where(bad, nan, a)
    b_target = keep * wy
    eps_w = eps_c
    if FINAL:  # 'mean': d / W, final for an upstream gradient of 1; W = 0: NaN, 0 if ignored
        wsum = tl.load(wsum_ptr).to(ACC_T)
        scale = tl.where(wsum == 0, float("nan"), 1.0 / tl.where(wsum == 0, 1.0, wsum))
        a = a * scale
        b_target = b_target * scale
        eps_w = eps_c * scale

    if SINGLE:
        _store_grad(x, w, cols0, cmask, rmask, y, lse, a, b_target, eps_w, valid, d_ptr, drow,
                    dsc, HAS_LS, IDX64)
    else:
        for c0 in range(0, C, BLOCK_C):
            cols = c0 + cols0
            x, w, cmask = _load_block(x_ptr, xrow, cols, xsc, rmask, w_ptr, C, HAS_W, ACC_T, IDX64)
            _store_grad(x, w, cols, cmask, rmask, y, lse, a, b_target, eps_w, valid, d_ptr,
                        drow, dsc, HAS_LS, IDX64)

    if REDUCE_NONE:
        tl.store(loss_ptr + rows, loss, mask=rmask)
    tl.store(part_ptr + pid, tl.sum(loss, 0))
    tl.store(part_ptr + tl.num_programs(0) + pid, tl.sum(wy, 0))


@jit
def _store_grad(x, w, cols, cmask, rmask, y, lse, a, b_target, eps_c, valid, d_ptr, drow, dsc,
                HAS_LS: tl.constexpr, IDX64: tl.constexpr):
    """d = p·a - ((1-ε)·w_y·[k=y] + (ε/C)·w_k), zero on ignored rows and padding."""
    p = tl.exp(x - lse[:, None])
    hit = cols[None, :] == y[:, None]
    d = p * a[:, None] - tl.where(hit, b_target[:, None], 0.0)
    if HAS_LS:
        d -= eps_c * w[None, :]
    d = tl.where(valid[:, None], d, 0.0)
    tl.store(d_ptr + drow[:, None] + _wide(cols, IDX64)[None, :] * dsc, d,
             mask=rmask[:, None] & cmask[None, :])


@jit(do_not_specialize=UNSPECIALISED)
def _xent_bwd(d_ptr, g_ptr, n_rows, C, R1, R2, R3, ds0, ds1, ds2, ds3, dsc, gs0, gs1, gs2, gs3,
              BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ACC_T: tl.constexpr,
              FLAT: tl.constexpr, IDX64: tl.constexpr, UNIT_SKIP: tl.constexpr):
    """In place: d *= g_row ('none'). ``UNIT_SKIP`` ('mean' and 'sum', whose forward stored
    the final d for an upstream 1, W = 0's NaN pattern included): d *= g for a scalar g,
    and nothing at all when g = 1 — decided on the device from g, so no host sync, and d
    is neither read nor written."""
    rows = _first_index(tl.program_id(0), BLOCK_R, IDX64) + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    rmask = rows < n_rows
    mask = rmask[:, None] & (cols < C)[None, :]
    i0, i1, i2, i3 = _row_index(rows, R1, R2, R3, FLAT)
    drow = i0 * ds0 + i1 * ds1 + i2 * ds2 + i3 * ds3
    ptrs = d_ptr + drow[:, None] + _wide(cols, IDX64)[None, :] * dsc
    if UNIT_SKIP:
        g_all = tl.load(g_ptr).to(ACC_T)
        if g_all != 1.0:
            out = tl.load(ptrs, mask=mask, other=0.0).to(ACC_T) * g_all
            tl.store(ptrs, out, mask=mask)
    else:
        grow = i0 * gs0 + i1 * gs1 + i2 * gs2 + i3 * gs3
        g = tl.load(g_ptr + grow, mask=rmask, other=0.0).to(ACC_T)
        out = tl.load(ptrs, mask=mask, other=0.0).to(ACC_T) * g[:, None]
        tl.store(ptrs, out, mask=mask)


def _target_weight_total(y: torch.Tensor, weight: torch.Tensor | None, n_rows: int, n_cls: int,
                         ignore_index: int, acc: torch.dtype) -> torch.Tensor:
    """W = Σ w_y over non-ignored rows, a 0-dim device tensor (no host sync): a pre-pass
    over the targets (`_target_weight_sum`) and a sum of its per-program partials."""
    rows = list(y.shape) or [1]
    sizes, (ys,) = merge_dims(rows, list(y.stride()) or [1])
    block = bce_block(n_rows, gpu=gpu_tiles())
    grid = triton.cdiv(n_rows, block)
    parts = torch.empty(grid, dtype=acc, device=y.device)
    with launch_guard():
        _target_weight_sum[(grid,)](
            y, weight if weight is not None else parts, parts, n_rows, n_cls, ignore_index,
            sizes[1], sizes[2], sizes[3], *ys, BLOCK=block, HAS_W=weight is not None,
            ACC_T=ACC.get(acc, tl.float32), FLAT=is_flat(sizes),
            IDX64=needs_int64(sizes, (ys,), block), num_warps=4)
    return parts.sum()


def _acc(dtype: torch.dtype):
    """Accumulation dtype: fp32 for half/bf16/fp32, fp64 for fp64."""
    return ACC.get(dtype, tl.float32)


def _tile(n_rows: int, n_cls: int) -> Tile:
    """This launch's tile (`harness.kernels.layout.xent_tile`; GPU tiles when compiled or
    under `harness.kernels.at_gpu_tiles`)."""
    return xent_tile(n_rows, n_cls, gpu=gpu_tiles())


def _check_args(x: torch.Tensor, y: torch.Tensor, weight, label_smoothing: float,
                reduction: str) -> None:
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if label_smoothing > 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if y.is_floating_point():
        raise NotImplementedError("fused cross_entropy takes class-index targets only; "
                                  "probability targets are not supported")
    if x.dim() < 2 or tuple(y.shape) != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"expected logits [N, C, *S] and target [N, *S]; got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() - 2 > 3:
        raise ValueError("at most 3 spatial dims are supported")
    if weight is not None and tuple(weight.shape) != (x.shape[1],):
        raise ValueError(f"weight must have shape ({x.shape[1]},), got {tuple(weight.shape)}")


@lru_cache(maxsize=256)
def _coefficients(keep: float, eps_c: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    """[1-ε, ε/C] as a device tensor (float64 precision for float64 inputs; a Python float
    kernel argument would be fp32). Cached: `torch.tensor(..., device='cuda')` is a
    host-to-device copy that synchronises, and the forward must never wait on the GPU."""
    return torch.tensor([keep, eps_c], dtype=dtype, device=device)


class FusedCrossEntropy(torch.autograd.Function):
    """Forward: one kernel for loss and unscaled gradient. Backward: one in-place scaling
    kernel over the stored gradient (so it may run only once per forward)."""

    @staticmethod
    def forward(ctx, x, y, weight, ignore_index: int, reduction: str, label_smoothing: float):
        n_cls = x.shape[1]
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        eps = max(float(label_smoothing), 0.0)
        coef = _coefficients(1.0 - eps, eps / n_cls, acc, str(x.device))
        d = torch.empty_like(x)  # preserves dense layouts (channels-last stays channels-last)
        rows = [x.shape[0], *x.shape[2:]]
        n_rows = d.numel() // n_cls if n_cls else 0
        sizes, (xs, ds, ys) = merge_dims(rows, row_strides(x), row_strides(d), list(y.stride()))
        loss_rows = torch.empty(rows if reduction == "none" else (0,), dtype=x.dtype,
                                device=x.device)
        t = _tile(n_rows, n_cls)
        idx64 = needs_int64(sizes, (xs, ds, ys), t.block_r, n_cls, t.block_c,
                            (x.stride(1), d.stride(1), 0))
        grid = triton.cdiv(n_rows, t.block_r)
        parts = torch.zeros(2 * max(grid, 1), dtype=acc, device=x.device)
        w = weight.contiguous() if weight is not None else coef  # coef: a dummy pointer
        final = reduction == "mean"
        wsum = (_target_weight_total(y, w if weight is not None else None, n_rows, n_cls,
                                     ignore_index, acc) if final and n_rows else None)
        if n_rows:
            with launch_guard():
                _xent_fwd[(grid,)](
                    x, y, w, coef, d, loss_rows, parts, wsum if final else parts, n_rows, n_cls,
                    ignore_index,
                    sizes[1], sizes[2], sizes[3], *xs, x.stride(1), *ds, d.stride(1), *ys,
                    BLOCK_R=t.block_r, BLOCK_C=t.block_c, SINGLE=t.single,
                    HAS_W=weight is not None, HAS_LS=eps > 0, REDUCE_NONE=reduction == "none",
                    ACC_T=_acc(x.dtype), FLAT=is_flat(sizes), IDX64=idx64, FINAL=final,
                    num_warps=t.num_warps)
        if wsum is None:
            wsum = parts[parts.numel() // 2:].sum()
        if reduction == "none":
            loss = loss_rows
        elif reduction == "sum":
            loss = parts[:parts.numel() // 2].sum().to(x.dtype)
        else:
            total = parts[:parts.numel() // 2].sum()
            loss = torch.where(wsum == 0, torch.full_like(total, float("nan")),
                               total / wsum).to(x.dtype)
        ctx.d = d
        ctx.meta = (reduction, t, n_rows)
        ctx.consumed = False
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        claim_stored_gradient(ctx, "fused_triton")
        d = ctx.d
        reduction, t, n_rows = ctx.meta
        n_cls = d.shape[1]
        rows = [d.shape[0], *d.shape[2:]]
        # 'mean' and 'sum' stored the final d: only a scalar g != 1 scales it (UNIT_SKIP)
        g_rows = list(g.stride()) if reduction == "none" else [0] * len(rows)
        g = g.expand(rows) if reduction == "none" else g.reshape(())
        sizes, (ds, gs) = merge_dims(rows, row_strides(d), g_rows)
        idx64 = needs_int64(sizes, (ds, gs), t.block_r, n_cls, t.block_c, (d.stride(1), 0))
        if n_rows:
            grid = (triton.cdiv(n_rows, t.block_r), triton.cdiv(n_cls, t.block_c))
            with launch_guard():
                _xent_bwd[grid](
                    d, g, n_rows, n_cls, sizes[1], sizes[2], sizes[3], *ds, d.stride(1), *gs,
                    BLOCK_R=t.block_r, BLOCK_C=t.block_c, ACC_T=_acc(d.dtype),
                    FLAT=is_flat(sizes), IDX64=idx64, UNIT_SKIP=reduction != "none",
                    num_warps=t.num_warps)
        ctx.d = None
        return d, None, None, None, None, None


def cross_entropy(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """`F.cross_entropy` for class-index targets through the fused kernels. Accepts
    unbatched ``[C]`` logits with a scalar target, like PyTorch."""
    if input.dim() == 1:
        out = cross_entropy(input.unsqueeze(0), target.unsqueeze(0), weight, ignore_index,
                            reduction, label_smoothing)
        return out.squeeze(0) if reduction == "none" else out
    _check_args(input, target, weight, label_smoothing, reduction)
    return FusedCrossEntropy.apply(input, target, weight, int(ignore_index), reduction,
                                   float(label_smoothing))
