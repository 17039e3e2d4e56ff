"""The headline speed table: one script that times each contender on the mission's cases
against ceilings measured in the same process, checks each answer against float64 on the
same device, and writes its JSON after every row, so a kill keeps the rows already done.

    python -m harness.benchmark.speed_table --device cuda --out table.json [--deadline S] [--tiny]

Cases (`full_cases`; `tiny_cases` has the same structure at CPU sizes):

* the seed's case: inverse-frequency weighted cross-entropy on [64, 2, 1024, 1024] logits,
  f32 and bf16, 5 % foreground, with the weights given and with the weights computed per
  call from the targets (`per_call_class_weights`); the binary form [64, 1, 1024, 1024]
  with BCE's ``weight``/``pos_weight`` for the binary contenders, given and per call;
* the vocabulary case: [4096, 128256] and [4096, 32000] bf16, 5 % of the targets
  ignored (-100), mean, with and without label smoothing 0.1.

Contenders (`ENTRIES`): ``eager`` (F.cross_entropy / F.binary_cross_entropy_with_logits),
``compiled`` (torch.compile, dynamic=False, compiled once per case, compile time reported
apart), ``fused_triton`` / ``fused_triton_binary`` (the harness's kernels), ``liger``
(Liger-Kernel as a caller of [N, C, H, W] logits uses it: rows copied class-last and cloned,
because it writes its gradient into its input) and ``liger_inplace`` (the same kernel handed
[P, C] rows it may overwrite, prepared outside the timed call: the kernel's own cost). A
contender that is missing, or lacks an option, is skipped with the reason; one that raises,
runs out of memory or returns a non-finite loss is recorded in its row and the table goes on.

Per row (`SpeedRow`): the median of two repeats of timed calls (L2 flushed before each call
on CUDA, outside the CUDA events) and their spread; GB/s and % of the measured copy by the
harness's `min_bytes` and by the implementation's own traffic model (`TRAFFIC_MODELS`, each
stated there); speedups against eager, compiled and Liger on the same case and mode; peak
memory above what was live after setup; the errors of loss and gradient against float64 on
the device, judged by the harness's tolerance rule (`harness.problem.expectations.tolerance`
with the oracle's scales, `reference`).

The run stops cleanly between rows at ``--deadline`` seconds (the rest listed as
"not reached: deadline", exit 0) and on SIGINT/SIGTERM (what it has is written, the rest
listed, exit 128 + signal). Tests: ``suites/harness/test_speed_table.py``.
"""

from __future__ import annotations

from harness.kernels import interpret_without_cuda

interpret_without_cuda()  # before the imports below: torch._dynamo imports Triton

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from harness import kernels, options  # noqa: E402
from harness.atomic import atomic_write_text  # noqa: E402
from harness.benchmark.timing import (  # noqa: E402
    DEFAULT_THREADS,
    copy_samples,
    peak_extra_memory,
    synchronize,
    time_calls,
    warm_up,
)
from harness.benchmark.traffic import min_bytes  # noqa: E402
from harness.problem.case import DTYPES, Case  # noqa: E402
from harness.problem.expectations import tolerance  # noqa: E402
from harness.problem.families import FAMILIES  # noqa: E402
from harness.problem.layout import class_rows  # noqa: E402
from harness.problem.oracle import log_softmax, softplus  # noqa: E402
from harness.problem.weights import inverse_freq  # noqa: E402

F64 = torch.float64
IGNORE_INDEX = -100
SCHEMA = "xentbench-speed-table/1"
MODES = ("fwd_bwd", "fwd")
TOLERANCE_RULE = ("harness rule: |impl - f64| <= atol + rtol*scale per element, (rtol, atol) = "
                  "harness.problem.expectations.tolerance(dtype, positions), scales as "
                  "harness.problem.oracle defines them, computed on the device")


# ---- cases ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableCase:
    """One case of the table. ``weights``: "none", "given" (inverse frequency of the
    batch, computed once) or "per_call" (the same weights computed inside every timed
    call from the targets). Multi-class shapes are [N, C, *S]; binary ones [N, 1, *S]."""

    family: str
    shape: tuple[int, ...]
    dtype: str
    weights: str = "none"
    label_smoothing: float = 0.0
    ignore_frac: float = 0.0
    foreground: float = 0.05
    label: str = "seed"

    @property
    def id(self) -> str:
        parts = [self.label, "x".join(map(str, self.shape)), self.dtype]
        if self.weights != "none":  # short: the rendered table has 35 columns for the id
            parts.append({"given": "wgiven", "per_call": "wcall"}[self.weights])
        if self.label_smoothing:
            parts.append(f"ls{self.label_smoothing:g}")
        if self.ignore_frac:
            parts.append(f"ig{self.ignore_frac:g}")
        return "-".join(parts)

    @property
    def binary(self) -> bool:
        """One logit per position (BCE), as the family record says."""
        return FAMILIES[self.family].elementwise

    @property
    def n_classes(self) -> int:
        return 2 if self.binary else self.shape[1]

    @property
    def positions(self) -> int:
        return self.shape[0] * math.prod(self.shape[2:])

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def options(self) -> dict:
        return {"weights": self.weights, "label_smoothing": self.label_smoothing,
                "ignore_frac": self.ignore_frac, "ignore_index": IGNORE_INDEX,
                "reduction": "mean", "foreground": self.foreground}

    def harness_case(self) -> Case:
        """The harness `Case` of the same sizes and options, for `min_bytes`."""
        weights = "none" if self.weights == "none" else "inverse_freq"
        c = 1 if self.binary else self.shape[1]
        return Case(n=self.shape[0], c=c, spatial=self.shape[2:], p=self.foreground,
                    dtype=self.dtype, weights=weights, label_smoothing=self.label_smoothing,
                    ignore_frac=self.ignore_frac, family=self.family)


def _case_set(seed_shape: tuple[int, ...], binary_shape: tuple[int, ...],
              vocab_shapes: Sequence[tuple[int, int]]) -> list[TableCase]:
    """The table's cases, most important first, so a deadline cuts the least telling."""
    big, small = vocab_shapes
    seed = [TableCase("multiclass", seed_shape, d, w) for w in ("given", "per_call")
            for d in ("f32", "bf16")]
    vocab = [TableCase("multiclass", s, "bf16", "none", ls, 0.05, label="vocab")
             for s in (big, small) for ls in (0.0, 0.1)]
    binary = [TableCase("binary", binary_shape, d, w, label="bin")
              for w in ("given", "per_call") for d in ("f32", "bf16")]
    return seed[:2] + vocab[:2] + seed[2:] + binary + vocab[2:]


def full_cases() -> list[TableCase]:
    return _case_set((64, 2, 1024, 1024), (64, 1, 1024, 1024), ((4096, 128256), (4096, 32000)))


def tiny_cases() -> list[TableCase]:
    """The same structure at sizes Triton's interpreter and a 2-core CPU run in seconds."""
    return _case_set((2, 2, 16, 16), (2, 1, 16, 16), ((16, 1000), (16, 320)))


# ---- tensors ----------------------------------------------------------------------------
@dataclass
class CaseTensors:
    """A case's tensors on the device. ``weight`` is the class-weight vector (multi-class)
    or BCE's ``weight`` [w0] (binary, with ``pos_weight`` [w1/w0]); None without weights."""

    logits: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor | None
    pos_weight: torch.Tensor | None


def class_counts_on_device(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """float64 count of each class id, one comparison-sum per class: no host sync, no
    data-dependent shape (torch.compile traces it whole), and an ignored target
    (ignore_index < 0) matches no class. For the few classes of a segmentation case."""
    if n_classes > 64:
        raise ValueError(f"per-class counting is for a few classes, got {n_classes}")
    return torch.stack([(target == k).sum() for k in range(n_classes)]).to(F64)


def per_call_class_weights(target: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """The batch's inverse-frequency class weights in the logits' dtype, from its targets."""
    return inverse_freq(class_counts_on_device(target, n_classes)).to(dtype)


def per_call_pos_weight(target: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE's (weight, pos_weight) = ([w0], [w1 / w0]) of the batch's inverse-frequency
    weights from 0/1 float targets, π divided in float64 and rounded once (the harness's
    pos_weight form, `harness.problem.bce.pos_weight_form`). w0 is never 0: a batch
    without positives gets uniform weights."""
    n_pos = (target > 0.5).sum()
    counts = torch.stack([target.numel() - n_pos, n_pos]).to(F64)
    w = inverse_freq(counts)
    return w[:1].to(dtype), (w[1:] / w[:1]).to(dtype)


def make_tensors(case: TableCase, device: str, seed: int = 0) -> CaseTensors:
    """Logits ~ N(0, 1); seed cases: targets foreground (class 1) with probability
    ``foreground``; vocabulary cases: uniform class ids with ``ignore_frac`` set to -100.
    Drawn on the device: a CPU float64 draw of a 134M-element case takes longer than
    the whole row."""
    gen = torch.Generator(device=device).manual_seed(seed)
    dtype = case.torch_dtype
    logits = torch.randn(case.shape, generator=gen, device=device, dtype=torch.float32).to(dtype)
    if case.binary:
        target = (torch.rand(case.shape, generator=gen, device=device) < case.foreground).to(dtype)
        weight = pos_weight = None
        if case.weights != "none":
            weight, pos_weight = per_call_pos_weight(target, dtype)
        return CaseTensors(logits, target, weight, pos_weight)
    target_shape = (case.shape[0], *case.shape[2:])
    if case.label == "vocab":
        target = torch.randint(0, case.shape[1], target_shape, generator=gen, device=device)
    else:
        target = (torch.rand(target_shape, generator=gen, device=device) < case.foreground).long()
    if case.ignore_frac:
        drop = torch.rand(target_shape, generator=gen, device=device) < case.ignore_frac
        target = target.masked_fill(drop, IGNORE_INDEX)
    weight = None if case.weights == "none" else per_call_class_weights(target, case.n_classes, dtype)
    return CaseTensors(logits, target, weight, None)


# ---- the float64 reference on the device --------------------------------------------------
@dataclass
class Reference:
    """The exact loss and gradient (upstream gradient 1) in float64 on the device, and
    the harness's tolerance per element: |impl - exact| <= atol + rtol·scale."""

    loss: torch.Tensor
    grad: torch.Tensor
    loss_scale: torch.Tensor
    grad_scale: torch.Tensor  # broadcasts against grad
    loss_tol: tuple[float, float]  # (rtol, atol)
    grad_tol: tuple[float, float]


def reference(case: TableCase, t: CaseTensors) -> Reference:
    return (binary_reference if case.binary else multiclass_reference)(case, t)


def multiclass_reference(case: TableCase, t: CaseTensors) -> Reference:
    """`harness.problem.oracle.multiclass` for mean reduction and upstream gradient 1, on
    the device: loss Σ l_n / W, gradient (1/W)·[(1-ε)·w_y·(p - onehot) + (ε/C)(p·Σw - w)]
    on valid rows; loss scale Σ_n r_n·κ_n / |W| and gradient scale r_n·κ_n / |W| with
    r_n = (1-ε)|w_y| + (ε/C)Σ|w| and κ_n = 1 + max|x_n| + log C (the oracle's
    row_scale × condition). Test: test_device_reference_matches_oracle."""
    x = class_rows(t.logits.detach().to(F64))
    y = t.target.reshape(-1)
    n_cls, eps = x.shape[1], case.label_smoothing
    w = torch.ones(n_cls, dtype=F64, device=x.device) if t.weight is None else t.weight.to(F64)
    valid = y != IGNORE_INDEX
    y_safe = torch.where(valid, y, torch.zeros_like(y))
    zero = torch.zeros((), dtype=F64, device=x.device)
    condition = 1 + x.abs().amax(1) + math.log(n_cls)
    logp = log_softmax(x)
    del x
    w_y = torch.where(valid, w[y_safe], zero)
    per_pos = (1 - eps) * w_y * -logp.gather(1, y_safe[:, None])[:, 0]
    if eps:
        per_pos = per_pos + (eps / n_cls) * -(logp @ w)
    per_pos = torch.where(valid, per_pos, zero)
    total = w_y.sum()
    row_weight = (1 - eps) * w_y.abs() + (eps / n_cls) * w.abs().sum() * valid
    p = logp.exp_()
    grad = p * ((1 - eps) * w_y + (eps / n_cls) * w.sum())[:, None]
    del p, logp
    if eps:
        grad -= (eps / n_cls) * w
    grad.scatter_add_(1, y_safe[:, None], -((1 - eps) * w_y)[:, None])
    grad *= (valid / total)[:, None]
    grad_scale = row_weight * condition / total.abs()
    rtol, loss_atol, grad_atol = tolerance(case.torch_dtype, max(case.positions, 1))
    return Reference(per_pos.sum() / total, _rows_to_logits(grad, case.shape),
                     (row_weight * condition).sum() / total.abs(),
                     _rows_to_logits(grad_scale[:, None], (*case.shape[:1], 1, *case.shape[2:])),
                     (rtol, loss_atol), (rtol, grad_atol))


def _rows_to_logits(rows: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """[P, C] (class dim last) back to [N, C, *S]."""
    if len(shape) == 2:
        return rows
    return rows.reshape(shape[0], *shape[2:], shape[1]).movedim(-1, 1)


def binary_reference(case: TableCase, t: CaseTensors) -> Reference:
    """`harness.problem.oracle.binary` for mean reduction, upstream gradient 1, ω and π of
    shape [1]: l_n = ω[π·y·softplus(-x) + (1-y)·softplus(x)], mean over numel; gradient
    ω[(1-y)σ(x) - π·y·σ(-x)] / numel; scales m_n·(1 + |x_n|) (/ numel) with
    m_n = |ω|·max(|π|·y + 1 - y, 1)."""
    x = t.logits.detach().to(F64)
    y = t.target.to(F64)
    one = torch.ones((), dtype=F64, device=x.device)
    omega = one if t.weight is None else t.weight.to(F64).reshape(())
    pi = one if t.pos_weight is None else t.pos_weight.to(F64).reshape(())
    numel = max(x.numel(), 1)
    loss = (omega * (pi * y * softplus(-x) + (1 - y) * softplus(x))).sum() / numel
    grad = omega * ((1 - y) * torch.sigmoid(x) - pi * y * torch.sigmoid(-x)) / numel
    magnitude = omega.abs() * (pi.abs() * y + (1 - y)).clamp(min=1)
    scale = magnitude * (1 + x.abs())
    rtol, loss_atol, grad_atol = tolerance(case.torch_dtype, max(case.positions, 1))
    return Reference(loss, grad, scale.sum() / numel, scale / numel,
                     (rtol, loss_atol), (rtol, grad_atol))


@dataclass(frozen=True)
class ErrorCheck:
    """Largest |error| against float64 and the largest error as a share of its bound
    (≤ 1 passes; inf when the value is not finite or missing)."""

    loss_error: float
    loss_of_bound: float
    grad_error: float | None
    grad_of_bound: float | None

    @property
    def ok(self) -> bool:
        return self.loss_of_bound <= 1 and (self.grad_of_bound is None or self.grad_of_bound <= 1)


def _judge(got: torch.Tensor | None, want: torch.Tensor, scale: torch.Tensor,
           tol: tuple[float, float]) -> tuple[float, float]:
    if got is None or got.numel() != want.numel():
        return math.inf, math.inf
    got64 = got.detach().to(F64).reshape(want.shape)
    if not bool(torch.isfinite(got64).all()):
        return math.inf, math.inf
    err = (got64 - want).abs()
    rtol, atol = tol
    return float(err.max()), float((err / (atol + rtol * scale)).max())


def check_errors(loss: torch.Tensor, grad: torch.Tensor | None, ref: Reference) -> ErrorCheck:
    """Judge one call's loss and gradient against the reference. A gradient that did not
    reach the logits fails."""
    loss_err, loss_bound = _judge(loss, ref.loss, ref.loss_scale, ref.loss_tol)
    grad_err, grad_bound = _judge(grad, ref.grad, ref.grad_scale, ref.grad_tol)
    return ErrorCheck(loss_err, loss_bound, grad_err, grad_bound)


# ---- traffic models -----------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """P positions (elements, binary), C classes (1 for binary), b bytes per logit, t bytes
    per target, and the options that change what an implementation moves."""

    p: int
    c: int
    b: int
    t: int
    smoothing: bool
    per_call: bool
    spatial: bool  # [N, C, *S] with S non-empty: classes are not the innermost dim

    @classmethod
    def of(cls, case: TableCase) -> Sizes:
        b = torch.finfo(case.torch_dtype).bits // 8
        binary = case.binary
        return cls(p=case.positions, c=1 if binary else case.shape[1], b=b,
                   t=b if binary else 8, smoothing=bool(case.label_smoothing),
                   per_call=case.weights == "per_call", spatial=len(case.shape) > 2)


# The fused kernel's class block on the GPU (harness.kernels.xent.MAX_BLOCK_C_GPU): above it
# the forward reads the logits twice. Copied, not imported: importing xent imports Triton.
FUSED_BLOCK_C = 4096


def eager_bytes(s: Sizes, mode: str) -> int:
    """F.cross_entropy as ATen runs it, kernel by kernel. Forward: log_softmax reads x and
    writes log p (2·PCb); nll_loss gathers one log p per position and reads the targets
    (P·(b + t)); label smoothing sums log p over the classes (+PCb). Backward: nll_loss's
    backward zero-fills a grad of log p (PCb) and scatters into it (P·(b + t));
    smoothing adds its term to it (+2·PCb); log_softmax's backward reads that and log p and
    writes the gradient (3·PCb). So fwd_bwd = 6·PCb + 2·P(b + t), 9·PCb with smoothing.
    Weights computed per call add C comparison-sums over the targets (C·P·t).

    Binary (BCE-with-logits, ATen's composite): forward about 10 elementwise kernels
    over E = P elements — (pos_weight-1)·y+1, 1-y, ·x, log_sigmoid (value and buffer),
    products, difference, ·weight, mean — ≈ 21·E·b; backward ≈ 9 kernels ≈ 19·E·b; per-call
    weights one pass over the targets (+E·t). An estimate from the op sequence, not a
    profile."""
    pcb, per_call = s.p * s.c * s.b, s.c * s.p * s.t if s.per_call else 0
    if s.c == 1:
        fwd, bwd = 21 * s.p * s.b, 19 * s.p * s.b
        per_call = s.p * s.t if s.per_call else 0
    else:
        fwd = (3 if s.smoothing else 2) * pcb + s.p * (s.b + s.t)
        bwd = (6 if s.smoothing else 4) * pcb + s.p * (s.b + s.t)
    return fwd + per_call + (bwd if mode == "fwd_bwd" else 0)


def compiled_bytes(s: Sizes, mode: str) -> int:
    """Inductor at its best: the forward one fused reduction reading x and the targets
    once (PCb + Pt) and saving the log-sum-exp (4P); the backward one pointwise kernel
    reading x, the targets and the log-sum-exp and writing the gradient (2·PCb + Pt + 4P).
    fwd_bwd = 3·PCb + 2·Pt + 8P, smoothing included (its sum fuses into the reduction).
    Binary: forward reads x and y (E·(b + t)), backward reads them and writes the gradient
    (E·(2b + t)). Per-call weights: one fused pass over the targets (+P·t)."""
    pcb, per_call = s.p * s.c * s.b, s.p * s.t if s.per_call else 0
    if s.c == 1:
        fwd, bwd = s.p * (s.b + s.t), s.p * (2 * s.b + s.t)
    else:
        fwd, bwd = pcb + s.p * (s.t + 4), 2 * pcb + s.p * (s.t + 4)
    return fwd + per_call + (bwd if mode == "fwd_bwd" else 0)


def fused_bytes(s: Sizes, mode: str) -> int:
    """harness.kernels.xent as its docstring states, for the table's reductions ('mean',
    'sum') and ``loss.backward()`` (an upstream gradient of 1): the forward reads the
    logits and targets and writes the final gradient (2·PCb + Pt; the logits read twice
    when C > FUSED_BLOCK_C, +PCb), after a pre-pass over the targets that sums W for
    'mean' (+Pt); the backward reads g, finds 1 and moves nothing. fwd_bwd ≈ 2·PCb + 2·Pt,
    3·PCb + 2·Pt above one class block. Binary (harness.kernels.bce): the forward reads x
    and y and writes d (E·(2b + t)), the mean's normaliser is the element count, the
    backward moves nothing: 2·E·b + E·t; per-call inverse-frequency weights add a pre-pass
    counting the positives (+E·t). Multi-class per-call weights come from the eager
    helper: C·P·t. fwd alone runs the same kernels."""
    pcb = s.p * s.c * s.b
    if s.c == 1:
        return s.p * (2 * s.b + (2 if s.per_call else 1) * s.t)
    fwd = (3 if s.c > FUSED_BLOCK_C else 2) * pcb + 2 * s.p * s.t
    return fwd + (s.c * s.p * s.t if s.per_call else 0)


def liger_inplace_bytes(s: Sizes, mode: str) -> int:
    """Liger-Kernel's cross-entropy on [P, C] rows it may overwrite: its forward reads each
    row twice (online log-sum-exp, then the gradient) and writes the gradient into the
    input (3·PCb + Pt); with an upstream gradient of 1 its backward returns that buffer
    untouched (0). fwd = fwd_bwd = 3·PCb + Pt. Per-call weights: C·P·t (eager helper)."""
    per_call = s.c * s.p * s.t if s.per_call else 0
    return 3 * s.p * s.c * s.b + s.p * s.t + per_call


def liger_bytes(s: Sizes, mode: str) -> int:
    """`liger_inplace_bytes` plus what a caller holding [N, C, ...] logits pays: a clone,
    because Liger overwrites its input (2·PCb), and for spatial inputs the class-last
    copy into rows (2·PCb) and, in the backward, the gradient copied back to the logits'
    layout by autograd's accumulation (2·PCb). Seed case fwd_bwd: 9·PCb + Pt; vocabulary
    case (rows already): 5·PCb + Pt."""
    pcb = s.p * s.c * s.b
    extra = 2 * pcb + (2 * pcb if s.spatial else 0)
    if mode == "fwd_bwd" and s.spatial:
        extra += 2 * pcb
    return liger_inplace_bytes(s, mode) + extra


TRAFFIC_MODELS: dict[str, Callable[[Sizes, str], int]] = {
    "eager": eager_bytes, "compiled": compiled_bytes, "fused_triton": fused_bytes,
    "fused_triton_binary": fused_bytes, "liger": liger_bytes, "liger_inplace": liger_inplace_bytes,
}


def _model_summary(fn: Callable[[Sizes, str], int]) -> str:
    return " ".join((fn.__doc__ or "").split())


# ---- contenders -----------------------------------------------------------------------------
class Skip(Exception):
    """A contender that cannot run this case here; the message is the reason."""


@dataclass
class Bound:
    """One contender bound to one case's tensors: ``setup`` (untimed: clears the gradient,
    hands out fresh buffers), ``forward`` (the loss, the logits requiring grad as in
    training) and ``grad`` (the gradient after a backward, in the logits' layout)."""

    setup: Callable[[], None]
    forward: Callable[[], torch.Tensor]
    grad: Callable[[], torch.Tensor | None]
    compiled: StaticCompiled | None = None


def _leaf_bound(t: CaseTensors, loss_of: Callable[[torch.Tensor], torch.Tensor]) -> Bound:
    """The usual shape: a leaf copy of the logits whose .grad the backward fills."""
    x = t.logits.detach().requires_grad_(True)

    def setup() -> None:
        x.grad = None

    return Bound(setup, lambda: loss_of(x), lambda: x.grad)


def _ce_kwargs(case: TableCase, t: CaseTensors, target: torch.Tensor, dtype: torch.dtype) -> dict:
    """cross_entropy's options for one call; per-call weights are computed here, inside it."""
    weight = t.weight
    if case.weights == "per_call":
        weight = per_call_class_weights(target, case.n_classes, dtype)
    return {"weight": weight, "ignore_index": IGNORE_INDEX, "label_smoothing": case.label_smoothing,
            "reduction": "mean"}


def _bce_kwargs(case: TableCase, t: CaseTensors, dtype: torch.dtype) -> dict:
    weight, pos_weight = t.weight, t.pos_weight
    if case.weights == "per_call":
        weight, pos_weight = per_call_pos_weight(t.target, dtype)
    return {"weight": weight, "pos_weight": pos_weight, "reduction": "mean"}


def bind_eager(case: TableCase, t: CaseTensors, device: str) -> Bound:
    if case.binary:
        return _leaf_bound(t, lambda x: F.binary_cross_entropy_with_logits(
            x, t.target, **_bce_kwargs(case, t, x.dtype)))
    return _leaf_bound(t, lambda x: F.cross_entropy(x, t.target, **_ce_kwargs(case, t, t.target, x.dtype)))


class StaticCompiled:
    """torch.compile(fn, dynamic=False, fullgraph=True) through a counting inductor
    backend: a call during which no compiled graph ran fell back to eager and raises,
    instead of timing eager under a compiled name. One per case: compiled once for the
    case's shapes and options."""

    def __init__(self, fn: Callable[..., torch.Tensor], backend: str = "inductor"):
        from harness.contenders.compiled import raise_recompile_limit

        raise_recompile_limit()  # every case adds a cache entry to the same code objects
        self.compiles = self.graph_runs = 0
        self._inner = backend
        self._compiled = torch.compile(fn, backend=self._backend, dynamic=False, fullgraph=True)

    def _backend(self, gm: torch.fx.GraphModule, example_inputs):
        self.compiles += 1
        if self._inner == "inductor":
            from torch._inductor.compile_fx import compile_fx

            compiled = compile_fx(gm, example_inputs)
        else:
            from torch._dynamo.backends.registry import lookup_backend

            compiled = lookup_backend(self._inner)(gm, example_inputs)

        def run(*args):
            self.graph_runs += 1
            return compiled(*args)

        return run

    def __call__(self, *args) -> torch.Tensor:
        from harness.contenders.compiled import CompileFallbackError

        before = self.graph_runs
        out = self._compiled(*args)
        if self.graph_runs == before:
            raise CompileFallbackError(f"torch.compile ran eagerly after {self.compiles} compiles")
        return out


def _compiled_ce(x, target, weight, label_smoothing: float):
    return F.cross_entropy(x, target, weight=weight, ignore_index=IGNORE_INDEX,
                           label_smoothing=label_smoothing)


def _compiled_ce_per_call(x, target, n_classes: int):
    weight = per_call_class_weights(target, n_classes, x.dtype)
    return F.cross_entropy(x, target, weight=weight, ignore_index=IGNORE_INDEX)


def _compiled_bce(x, target, weight, pos_weight):
    return F.binary_cross_entropy_with_logits(x, target, weight=weight, pos_weight=pos_weight)


def _compiled_bce_per_call(x, target):
    weight, pos_weight = per_call_pos_weight(target, x.dtype)
    return F.binary_cross_entropy_with_logits(x, target, weight=weight, pos_weight=pos_weight)


COMPILE_BACKEND = "inductor"  # tests may swap in "aot_eager": inductor's CPU compile takes 4-19 s


def bind_compiled(case: TableCase, t: CaseTensors, device: str) -> Bound:
    """The whole call compiled, per-call weights included (they are part of the loss)."""
    binary, per_call = case.binary, case.weights == "per_call"
    if binary:
        fn = StaticCompiled(_compiled_bce_per_call if per_call else _compiled_bce, COMPILE_BACKEND)
        args = (t.target,) if per_call else (t.target, t.weight, t.pos_weight)
    else:
        fn = StaticCompiled(_compiled_ce_per_call if per_call else _compiled_ce, COMPILE_BACKEND)
        args = ((t.target, case.n_classes) if per_call
                else (t.target, t.weight, case.label_smoothing))
    bound = _leaf_bound(t, lambda x: fn(x, *args))
    bound.compiled = fn
    return bound


def _triton_skip(device: str) -> None:
    if why := kernels.unavailable_reason():
        raise Skip(why)
    if why := kernels.device_ok(device):
        raise Skip(why)


def bind_fused(case: TableCase, t: CaseTensors, device: str) -> Bound:
    _triton_skip(device)
    if case.binary:
        raise Skip("fused_triton is the multi-class kernel; the binary case has fused_triton_binary")
    from harness.contenders.fused import fused_triton

    return _leaf_bound(t, lambda x: fused_triton(x, t.target, **_ce_kwargs(case, t, t.target, x.dtype)))


def bind_fused_binary(case: TableCase, t: CaseTensors, device: str) -> Bound:
    """Given weights: the BCE kernel with weight/pos_weight; per call: its inverse-frequency
    variant, which counts the positives on the device (`harness.kernels.bce.inverse_freq`)."""
    _triton_skip(device)
    if not case.binary:
        raise Skip("fused_triton_binary is the binary kernel")
    if case.weights == "per_call":
        from harness.kernels.bce import inverse_freq as fused_inverse_freq

        return _leaf_bound(t, lambda x: fused_inverse_freq(x, t.target, normalize="numel"))
    from harness.contenders.fused import fused_triton_binary

    return _leaf_bound(t, lambda x: fused_triton_binary(x, t.target, weight=t.weight,
                                                        pos_weight=t.pos_weight))


def load_liger() -> Callable[..., object]:
    """Liger-Kernel's functional cross-entropy, or `Skip` with why not (tests replace this)."""
    from harness.contenders.fused import _liger_reason

    if why := _liger_reason():
        raise Skip(why)
    from liger_kernel.transformers.functional import liger_cross_entropy

    return liger_cross_entropy


def _liger_loss(out: object) -> torch.Tensor:
    """The loss of whatever this Liger release returns (a tensor, a tuple, an output object)."""
    out = getattr(out, "loss", out)
    return out[0] if isinstance(out, tuple) else out


def _liger_options(case: TableCase) -> None:
    if case.binary:
        raise Skip("Liger-Kernel has no binary cross-entropy")


def bind_liger(case: TableCase, t: CaseTensors, device: str) -> Bound:
    """As a caller of [N, C, *S] logits uses it: class-last rows (a copy for spatial
    inputs) cloned, since the kernel overwrites its input with the gradient."""
    _liger_options(case)
    liger_fn = load_liger()
    target = t.target.reshape(-1)
    return _leaf_bound(t, lambda x: _liger_loss(liger_fn(
        class_rows(x).clone(), target, **_ce_kwargs(case, t, target, x.dtype))))


def bind_liger_inplace(case: TableCase, t: CaseTensors, device: str) -> Bound:
    """The kernel alone: [P, C] rows prepared once, and a fresh copy it may overwrite
    handed out by the untimed setup of every call."""
    _liger_options(case)
    liger_fn = load_liger()
    rows = class_rows(t.logits.detach()).contiguous()
    target = t.target.reshape(-1)
    holder: dict[str, torch.Tensor] = {}

    def setup() -> None:
        holder["x"] = rows.clone().requires_grad_(True)

    def forward() -> torch.Tensor:
        x = holder["x"]
        return _liger_loss(liger_fn(x, target, **_ce_kwargs(case, t, target, x.dtype)))

    def grad() -> torch.Tensor | None:
        g = holder["x"].grad
        return None if g is None else _rows_to_logits(g, case.shape)

    setup()
    return Bound(setup, forward, grad)


@dataclass(frozen=True)
class Entry:
    """A contender of the table: how it binds to a case, and its traffic model."""

    name: str
    families: tuple[str, ...]
    bind: Callable[[TableCase, CaseTensors, str], Bound]
    description: str

    def traffic(self, case: TableCase, mode: str) -> int | None:
        model = TRAFFIC_MODELS.get(self.name)
        return None if model is None else model(Sizes.of(case), mode)


ENTRIES: tuple[Entry, ...] = (
    Entry("eager", ("multiclass", "binary"), bind_eager,
          "F.cross_entropy / F.binary_cross_entropy_with_logits"),
    Entry("compiled", ("multiclass", "binary"), bind_compiled,
          "torch.compile(dynamic=False, fullgraph=True), once per case"),
    Entry("fused_triton", ("multiclass",), bind_fused, "harness.kernels.xent"),
    Entry("fused_triton_binary", ("binary",), bind_fused_binary, "harness.kernels.bce"),
    Entry("liger", ("multiclass",), bind_liger, "Liger-Kernel on cloned class-last rows"),
    Entry("liger_inplace", ("multiclass",), bind_liger_inplace,
          "Liger-Kernel on rows it may overwrite (prepared untimed)"),
)
SPEEDUP_REFERENCES = ("eager", "compiled", "liger", "liger_inplace")


# ---- rows -------------------------------------------------------------------------------------
@dataclass
class SpeedRow:
    """One line of the table; its fields are the JSON's columns. Times in seconds,
    bandwidths in GB/s (10^9 bytes), memory in bytes; None where not measured. The error
    fields are those of the contender's one checking fwd_bwd call on the case, shared by
    its fwd row; ``compile_s`` is that first call's time less the timed median."""

    case: str
    family: str
    shape: list[int]
    dtype: str
    options: dict
    contender: str
    mode: str
    status: str = "not reached"  # "ok", "error FAIL", "skipped: …", "failed: …", "not reached: …"
    median_s: float | None = None
    repeat_medians_s: list[float] | None = None
    repeat_spread: float | None = None  # |m1 - m2| / min(m1, m2)
    rounds: int | None = None
    min_bytes: int | None = None
    min_bytes_gbps: float | None = None
    min_bytes_pct_copy: float | None = None
    model_bytes: int | None = None
    model_gbps: float | None = None
    model_pct_copy: float | None = None
    speedup: dict[str, float] = field(default_factory=dict)  # reference median / this median
    compile_s: float | None = None
    peak_extra_bytes: int | None = None
    loss_error: float | None = None
    loss_of_bound: float | None = None
    grad_error: float | None = None
    grad_of_bound: float | None = None
    error_ok: bool | None = None
    timing: str = ""
    note: str = ""

    @property
    def timed(self) -> bool:
        return self.median_s is not None


def planned_rows(cases: Iterable[TableCase], entries: Sequence[Entry]) -> list[SpeedRow]:
    return [SpeedRow(case.id, case.family, list(case.shape), case.dtype, case.options(), e.name, mode)
            for case in cases for e in entries if case.family in e.families for mode in MODES]


def fill_speedups(rows: Sequence[SpeedRow]) -> None:
    """Each timed row's speedup against each reference contender timed on the same case and
    mode (reference median / this median; > 1: this one is faster)."""
    medians = {(r.case, r.mode, r.contender): r.median_s for r in rows if r.timed}
    for r in rows:
        if r.timed:
            r.speedup = {ref: medians[(r.case, r.mode, ref)] / r.median_s for ref in SPEEDUP_REFERENCES
                         if (r.case, r.mode, ref) in medians and r.median_s > 0}


# ---- timing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """How long each timing may take: ``seconds`` of timed calls per repeat, clamped to
    [min_rounds, max_rounds]; ``warmup_s`` of untimed calls first (GPU clocks ramp up)."""

    seconds: float
    min_rounds: int
    max_rounds: int
    warmup_s: float


FULL_BUDGET = Budget(seconds=0.1, min_rounds=5, max_rounds=100, warmup_s=0.1)
TINY_BUDGET = Budget(seconds=0.01, min_rounds=3, max_rounds=10, warmup_s=0.0)


def _step(bound: Bound, mode: str) -> Callable[[], None]:
    if mode == "fwd":
        return lambda: bound.forward()
    return lambda: bound.forward().backward()


def time_step(bound: Bound, mode: str, device: str, budget: Budget) -> tuple[list[float], int, str]:
    """Two repeats of ``rounds`` timed calls (sized from the warm-up's time per call), the
    L2 flushed before each on CUDA: their medians, the rounds and the method."""
    fn = _step(bound, mode)
    calls, spent = warm_up(fn, bound.setup, device, budget.warmup_s, least=1)
    per_call = spent / calls
    rounds = int(min(max(budget.seconds / max(per_call, 1e-9), budget.min_rounds), budget.max_rounds))
    flush = device.startswith("cuda")
    medians, method = [], ""
    for _ in range(2):
        samples = time_calls(fn, device, rounds, warmup=1, setup=bound.setup, flush=flush)
        medians.append(statistics.median(samples.seconds))
        method = samples.method
    return medians, rounds, method + (", L2 flushed" if flush else "")


# ---- ceilings -------------------------------------------------------------------------------
def measure_ceilings(device: str, nbytes: int, rounds: int) -> dict:
    """Copy and read-only reduction bandwidth over ``nbytes``, each timed twice: GB/s of
    the better repeat (the ceiling), and both repeats."""
    copies = []
    for _ in range(2):
        moved, samples = copy_samples(device, nbytes, rounds)
        copies.append(moved / statistics.median(samples.seconds) / 1e9)
    x = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    reads = []
    for _ in range(2):
        samples = time_calls(lambda: x.sum(), device, rounds, warmup=2, flush=device.startswith("cuda"))
        reads.append(x.numel() * 4 / statistics.median(samples.seconds) / 1e9)
    return {"bytes": nbytes, "copy_gbps": max(copies), "copy_repeats_gbps": copies,
            "read_gbps": max(reads), "read_repeats_gbps": reads,
            "copy_model": "2 x bytes (read + write) / median", "read_model": "bytes / median of x.sum()"}


# ---- the run --------------------------------------------------------------------------------
class Interrupted(BaseException):
    """SIGTERM (or another signal) arrived: stop, write what is done."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


@dataclass
class Table:
    """The whole run: header, ceilings, rows; `write` is atomic."""

    out: Path | None
    device: str
    tiny: bool
    deadline_s: float | None
    rows: list[SpeedRow]
    ceilings: dict = field(default_factory=dict)
    stopped: str | None = None
    stop_signal: int | None = None  # the signal that stopped the run (SIGINT for Ctrl-C)
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    elapsed_s: float = 0.0
    compile_backend: str = COMPILE_BACKEND

    def as_json(self) -> dict:
        fill_speedups(self.rows)
        return {"schema": SCHEMA, "started": self.started, "elapsed_s": round(self.elapsed_s, 3),
                "device": _device_name(self.device), "versions": _versions(), "tiny": self.tiny,
                "deadline_s": self.deadline_s, "stopped": self.stopped,
                "interpreted": kernels.interpreted(), "compile_backend": self.compile_backend,
                "tolerance_rule": TOLERANCE_RULE,
                "traffic_models": {k: _model_summary(v) for k, v in TRAFFIC_MODELS.items()},
                "ceilings": self.ceilings, "rows": [asdict(r) for r in self.rows]}

    def write(self) -> None:
        if self.out is not None:
            atomic_write_text(self.out, json.dumps(self.as_json(), indent=1, allow_nan=True) + "\n")


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__}
    for pkg in ("triton", "liger-kernel"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    kind = "out of memory" if isinstance(exc, torch.cuda.OutOfMemoryError) else type(exc).__name__
    return f"{kind}: {text[0][:300] if text else ''}"


@dataclass
class ContenderResult:
    """What the first (checking) call of one contender on one case found."""

    bound: Bound | None
    status: str
    errors: ErrorCheck | None = None
    first_call_s: float | None = None


def _check_contender(entry: Entry, case: TableCase, tensors: CaseTensors, ref: Reference,
                     device: str) -> ContenderResult:
    """Bind, run one fwd_bwd (it compiles what is compiled) and judge it. A raise, an
    out-of-memory or a non-finite loss is a status, never an exception."""
    try:
        bound = entry.bind(case, tensors, device)
    except Skip as why:
        return ContenderResult(None, f"skipped: {why}")
    except Exception as exc:
        _free(device)
        return ContenderResult(None, f"failed: {_describe(exc)}")
    try:
        bound.setup()
        synchronize(device)
        start = time.perf_counter()
        loss = bound.forward()
        loss.backward()
        synchronize(device)
        first = time.perf_counter() - start
        errors = check_errors(loss.detach(), bound.grad(), ref)
    except Exception as exc:
        _free(device)
        return ContenderResult(None, f"failed: {_describe(exc)}")
    finally:
        bound.setup()  # drop the checked gradient before anything is timed
    if not math.isfinite(float(loss.detach().float())):
        return ContenderResult(None, f"failed: non-finite loss ({float(loss.detach().float())})", errors)
    return ContenderResult(bound, "ok" if errors.ok else "error FAIL", errors, first)


def _fill_errors(row: SpeedRow, errors: ErrorCheck | None) -> None:
    if errors is not None:
        row.loss_error, row.loss_of_bound = errors.loss_error, errors.loss_of_bound
        row.grad_error, row.grad_of_bound = errors.grad_error, errors.grad_of_bound
        row.error_ok = errors.ok


def _time_row(row: SpeedRow, entry: Entry, case: TableCase, checked: ContenderResult,
              device: str, budget: Budget, copy_gbps: float | None) -> None:
    """Time one (contender, mode) and fill its numbers; a failure is the row's status."""
    bound = checked.bound
    assert bound is not None
    try:
        medians, rounds, method = time_step(bound, row.mode, device, budget)
        bound.setup()
        peak = peak_extra_memory(_step(bound, row.mode), device)
        bound.setup()
    except Exception as exc:
        row.status = f"failed while timing: {_describe(exc)}"
        _free(device)
        return
    if bound.compiled is not None and bound.compiled.graph_runs == 0:
        row.status = "failed: no compiled graph ran"
        return
    row.repeat_medians_s, row.rounds, row.timing = medians, rounds, method
    row.median_s = statistics.mean(medians)
    row.repeat_spread = abs(medians[0] - medians[1]) / max(min(medians), 1e-12)
    row.peak_extra_bytes = peak
    if bound.compiled is not None and checked.first_call_s is not None and row.mode == "fwd_bwd":
        row.compile_s = max(checked.first_call_s - row.median_s, 0.0)
    row.min_bytes = min_bytes(case.harness_case(), row.mode)
    row.model_bytes = entry.traffic(case, row.mode)
    for prefix, nbytes in (("min_bytes", row.min_bytes), ("model", row.model_bytes)):
        if nbytes is not None:
            gbps = nbytes / row.median_s / 1e9
            setattr(row, f"{prefix}_gbps", gbps)
            setattr(row, f"{prefix}_pct_copy", 100 * gbps / copy_gbps if copy_gbps else None)
    if kernels.interpreted() and entry.name.startswith("fused"):
        row.note = "Triton interpreter: the time is not a speed"


class _Clock:
    def __init__(self, deadline_s: float | None):
        self.start, self.deadline_s = time.monotonic(), deadline_s

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return self.deadline_s is not None and self.elapsed() >= self.deadline_s


def run_table(cases: Sequence[TableCase], device: str, out: str | Path | None,
              entries: Sequence[Entry] = ENTRIES, budget: Budget = FULL_BUDGET,
              deadline_s: float | None = None, ceiling_bytes: int = 1 << 30, tiny: bool = False,
              progress: Callable[[str], None] | None = None) -> Table:
    """Run every (case, contender, mode) in order, writing the JSON after each row. Stops
    between rows once ``deadline_s`` has passed ("not reached: deadline"); a
    KeyboardInterrupt or `Interrupted` anywhere stops it too ("not reached: interrupted"),
    the row in progress included. Tests: test_speed_table.py."""
    clock = _Clock(deadline_s)
    table = Table(Path(out) if out is not None else None, device, tiny, deadline_s,
                  planned_rows(cases, entries), compile_backend=COMPILE_BACKEND)
    say = progress or (lambda _msg: None)
    try:
        say(f"ceilings: copy and read of {ceiling_bytes >> 20} MiB")
        table.ceilings = measure_ceilings(device, ceiling_bytes, 10 if not tiny else 3)
        table.write()
        _run_rows(table, cases, entries, device, budget, clock, say)
    except (KeyboardInterrupt, Interrupted) as stop:
        table.stopped = f"interrupted ({type(stop).__name__}: {stop})"
        table.stop_signal = int(getattr(stop, "signum", signal.SIGINT))
        _mark_unreached(table.rows, "interrupted")
    table.elapsed_s = clock.elapsed()
    table.write()
    return table


def _mark_unreached(rows: Sequence[SpeedRow], why: str) -> None:
    for r in rows:
        if r.status == "not reached" or r.status == "running":
            r.status = f"not reached: {why}"


def _run_rows(table: Table, cases: Sequence[TableCase], entries: Sequence[Entry], device: str,
              budget: Budget, clock: _Clock, say: Callable[[str], None]) -> None:
    rows = iter(table.rows)
    copy_gbps = table.ceilings.get("copy_gbps")
    for case in cases:
        case_entries = [e for e in entries if case.family in e.families]
        if not case_entries:
            continue
        if clock.expired():
            break
        try:
            tensors = make_tensors(case, device)
            ref = reference(case, tensors)
            setup_error = None
        except Exception as exc:
            tensors = ref = None
            setup_error = f"failed: case setup: {_describe(exc)}"
            _free(device)
        for entry in case_entries:
            if clock.expired():
                break
            checked = (ContenderResult(None, setup_error) if setup_error else
                       _check_contender(entry, case, tensors, ref, device))
            for _mode in MODES:
                row = next(rows)
                if clock.expired():
                    break
                row.status = "running"
                _fill_errors(row, checked.errors)
                if checked.bound is not None:
                    _time_row(row, entry, case, checked, device, budget, copy_gbps)
                if row.status == "running":
                    row.status = checked.status
                table.elapsed_s = clock.elapsed()
                table.write()
                say(f"{row.contender} {row.case} {row.mode}: {_short(row)}")
            del checked
            _free(device)
        del tensors, ref
        _free(device)
    if clock.expired():
        table.stopped = "deadline"
        _mark_unreached(table.rows, "deadline")


# ---- text -----------------------------------------------------------------------------------
def _short(row: SpeedRow) -> str:
    if not row.timed:
        return row.status
    return f"{row.median_s * 1e3:.3f} ms, {row.status}"


def render(table: Table | Sequence[SpeedRow], width: int = 100) -> str:
    """The table as short fixed-width text, one line per row: contender, case, mode, median
    ms, % of the copy by each model, speedup against eager, error ok/FAIL (or the status
    of a row that was not timed). Test: test_render_one_line_per_row."""
    rows = table.rows if isinstance(table, Table) else list(table)
    fill_speedups(rows)
    lines = [f"{'contender':<19} {'case':<35} {'mode':<7} {'ms':>8} {'%cpmin':>6} {'%cpmdl':>6} "
             f"{'xeager':>7} err"]
    for r in rows:
        head = f"{r.contender[:19]:<19} {r.case[:35]:<35} {r.mode:<7} "
        if not r.timed:
            lines.append((head + r.status)[:width])
            continue
        ok = "ok" if r.error_ok else "FAIL"
        lines.append(f"{head}{r.median_s * 1e3:>8.3f} {_pct(r.min_bytes_pct_copy)} "
                     f"{_pct(r.model_pct_copy)} {_ratio(r.speedup.get('eager'))} {ok}")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return f"{v:>6.1f}" if v is not None else f"{'-':>6}"


def _ratio(v: float | None) -> str:
    return f"{v:>6.2f}x" if v is not None else f"{'-':>7}"


# ---- command line ---------------------------------------------------------------------------
def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_device_option(ap.add_argument)
    ap.add_argument("--out", required=True, help="the JSON file, rewritten after every row")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds after which the run stops between rows")
    ap.add_argument("--tiny", action="store_true", help="small shapes of the same structure (CPU)")
    ap.add_argument("--compile-backend", default=None,
                    help="torch.compile backend of 'compiled' (default inductor; aot_eager for "
                         "--tiny on CPU, where each inductor compile takes 4-19 s)")
    args = ap.parse_args(argv)
    try:
        args.device = options.resolve_device(args.device)
    except options.DeviceError as exc:
        print(f"speed_table: {exc}", file=sys.stderr)
        return 2
    global COMPILE_BACKEND
    tiny_cpu = args.tiny and args.device == "cpu"
    COMPILE_BACKEND = args.compile_backend or ("aot_eager" if tiny_cpu else "inductor")
    if args.device == "cpu":
        torch.set_num_threads(DEFAULT_THREADS)  # OpenMP barriers on a shared CPU: timing.py
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        table = run_table(tiny_cases() if args.tiny else full_cases(), args.device, args.out,
                          budget=TINY_BUDGET if args.tiny else FULL_BUDGET, deadline_s=args.deadline,
                          ceiling_bytes=(16 << 20) if args.tiny else (1 << 30), tiny=args.tiny,
                          progress=lambda m: print(f"speed_table: {m}", file=sys.stderr, flush=True))
    finally:
        signal.signal(signal.SIGTERM, previous)
    c = table.ceilings
    if c:
        print(f"copy {c['copy_gbps']:.1f} GB/s, read {c['read_gbps']:.1f} GB/s "
              f"({c['bytes'] >> 20} MiB), device {_device_name(args.device)}")
    print(render(table))
    print(f"{args.out}: {sum(r.timed for r in table.rows)} of {len(table.rows)} rows timed in "
          f"{table.elapsed_s:.1f} s" + (f", stopped: {table.stopped}" if table.stopped else ""))
    return 128 + table.stop_signal if table.stop_signal is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
