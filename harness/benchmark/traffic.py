"""The report's traffic model, `min_bytes`; GB/s and % of peak in reports use it.

The least a loss must move through memory, whatever it is
written in — logits read once, targets read once, the output written (one element per
position for reduction='none', negligible otherwise), the class-weight vector read; for
``fwd_bwd`` additionally the gradient written once (same size as the logits) and, for
'none', the upstream gradient read. A fused kernel can reach this; a chain of eager ops
moves several times more. GB/s = min_bytes / median time.

Beside it, each modelled contender's own traffic model (`model_bytes`): the bytes that
implementation really moves, kernel by kernel, as the headline speed table stated them
(issue 31); GB/s by the model = model_bytes / median. The models are stated for hard
targets and the reductions 'mean' and 'sum' (the headline cases); elsewhere, and for a
contender without a stated model, `model_bytes` is None.

The fused kernels' own check (`harness.kernels.microbench`) uses a different model,
`fused_bytes`, and says so."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.kernels.layout import GPU_MAX_BLOCK_C
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




# ---- each implementation's own traffic model -------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """P positions (elements, binary), C classes (1 for binary), b bytes per logit, t bytes
    per target (int64 ids; binary targets are like the logits), and the options that change
    what an implementation moves."""

    p: int
    c: int
    b: int
    t: int
    smoothing: bool
    per_call: bool
    spatial: bool  # [N, C, *S] with S non-empty: classes are not the innermost dim

    @classmethod
    def of(cls, case: Case) -> Sizes:
        b = torch.finfo(case.torch_dtype).bits // 8
        index = case.spec.index_targets  # int64 class ids, else 0/1 targets in the logits' dtype
        return cls(p=case.positions, c=case.c, b=b, t=8 if index else b,
                   smoothing=bool(case.label_smoothing), per_call=case.per_call,
                   spatial=bool(case.spatial))


# The fused kernel's class block on the GPU: above it the forward reads the logits twice
# (harness.kernels.layout imports no Triton)
FUSED_BLOCK_C = GPU_MAX_BLOCK_C


def eager_bytes(s: Sizes, mode: str) -> int:
    """F.cross_entropy as ATen runs it, kernel by kernel. Forward: log_softmax reads x and
    writes log p (2·PCb); nll_loss gathers one log p per position and reads the targets
    (P·(b + t)); label smoothing sums log p over the classes (+PCb). Backward: nll_loss's
    backward zero-fills a grad of log p (PCb) and scatters into it (P·(b + t));
    smoothing adds its term to it (+2·PCb); log_softmax's backward reads that and log p and
    writes the gradient (3·PCb). So fwd_bwd = 6·PCb + 2·P(b + t), 9·PCb with smoothing.
    Weights computed per call add C comparison-sums over the targets (C·P·t).

    Binary (BCE-with-logits, ATen's composite): forward about 10 elementwise kernels
    over E = P elements ≈ 21·E·b; backward ≈ 9 kernels ≈ 19·E·b; per-call weights one pass
    over the targets (+E·t). An estimate from the op sequence, not a profile."""
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
    """harness.kernels.xent for 'mean'/'sum' and ``loss.backward()`` (an upstream gradient
    of 1): the forward reads the logits and targets and writes the final gradient
    (2·PCb + Pt; the logits read twice when C > FUSED_BLOCK_C, +PCb), after a pre-pass over
    the targets that sums W for 'mean' (+Pt); the backward moves nothing. fwd = fwd_bwd ≈
    2·PCb + 2·Pt, 3·PCb + 2·Pt above one class block. Binary (harness.kernels.bce): the
    forward reads x and y and writes d, the backward moves nothing: 2·E·b + E·t; per-call
    weights add a pre-pass counting the positives (+E·t). Multi-class per-call weights come
    from the eager helper: C·P·t."""
    pcb = s.p * s.c * s.b
    if s.c == 1:
        return s.p * (2 * s.b + (2 if s.per_call else 1) * s.t)
    fwd = (3 if s.c > FUSED_BLOCK_C else 2) * pcb + 2 * s.p * s.t
    return fwd + (s.c * s.p * s.t if s.per_call else 0)


def liger_inplace_bytes(s: Sizes, mode: str) -> int:
    """Liger-Kernel's cross-entropy on [P, C] rows it may overwrite: its forward reads each
    row twice (online log-sum-exp, then the gradient) and writes the gradient into the
    input (3·PCb + Pt); with an upstream gradient of 1 its backward returns that buffer
    untouched. fwd = fwd_bwd = 3·PCb + Pt. Per-call weights: C·P·t (eager helper)."""
    per_call = s.c * s.p * s.t if s.per_call else 0
    return 3 * s.p * s.c * s.b + s.p * s.t + per_call


def liger_bytes(s: Sizes, mode: str) -> int:
    """The ``liger`` contender (`harness.contenders.fused.liger`): `liger_inplace_bytes`
    plus the clone (2·PCb) and, for spatial inputs, the class-last copy into rows (2·PCb)
    and, in the backward, the gradient copied back to the logits' layout (2·PCb). Seed case
    fwd_bwd: 9·PCb + Pt; vocabulary case (rows already): 5·PCb + Pt."""
    pcb = s.p * s.c * s.b
    extra = 2 * pcb + (2 * pcb if s.spatial else 0)
    if mode == "fwd_bwd" and s.spatial:
        extra += 2 * pcb
    return liger_inplace_bytes(s, mode) + extra


# contender name -> its stated model; the binary family's eager and compiled forms share
# the multi-class ones (each model has its binary branch). nn.CrossEntropyLoss calls
# F.cross_entropy, and F.cross_entropy is ATen's log_softmax then nll_loss: the same
# kernels as the eager model, eager or compiled.
TRAFFIC_MODELS: dict[str, Callable[[Sizes, str], int]] = {
    "eager": eager_bytes, "bce_logits": eager_bytes,
    "module": eager_bytes, "logsoftmax_nll": eager_bytes,
    "compiled_eager": compiled_bytes, "compiled_bce_logits": compiled_bytes,
    "compiled_logsoftmax_nll": compiled_bytes,
    "fused_triton": fused_bytes, "fused_triton_binary": fused_bytes, "liger": liger_bytes,
}


def model_bytes(contender: str, case: Case, mode: str) -> int | None:
    """The bytes ``contender`` moves on ``case`` by its own stated model (`TRAFFIC_MODELS`);
    None for a contender without one, soft targets or reduction 'none' (not modelled)."""
    model = TRAFFIC_MODELS.get(contender)
    if model is None or case.soft or case.reduction == "none":
        return None
    return model(Sizes.of(case), mode)
