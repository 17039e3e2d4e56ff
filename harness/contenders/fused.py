"""Fused Triton contenders (``pip install xentbench[triton]``) and the external ``liger``.

Registered on every machine so the board always lists them; ``available()`` says why one
cannot run here (Triton missing, no CUDA and no interpreter, liger-kernel missing). The
kernel modules are imported on first call, never at registration: importing them decorates
the kernels, which must happen after the interpreter choice is settled.

Under Triton's interpreter (CPU) the kernels are proved correct by the equivalence suites;
the interpreter is not a speed and `harness.kernels.interpreted()` tells benchmarks so.
"""

from __future__ import annotations

import importlib.util
from functools import cache

import torch

from harness import kernels
from harness.contenders import Capabilities, Contender, register
from harness.problem.layout import class_rows


def fused_triton(input, target, weight=None, ignore_index=-100, reduction="mean",
                 label_smoothing=0.0):
    """`F.cross_entropy` through one Triton kernel for loss and gradient."""
    from harness.kernels.xent import cross_entropy

    _check_device(input)
    return cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                         reduction=reduction, label_smoothing=label_smoothing)


def fused_triton_binary(input, target, weight=None, pos_weight=None, reduction="mean"):
    """`F.binary_cross_entropy_with_logits` through one Triton kernel for loss and gradient."""
    from harness.kernels.bce import binary_cross_entropy_with_logits

    _check_device(input)
    return binary_cross_entropy_with_logits(input, target, weight=weight, pos_weight=pos_weight,
                                            reduction=reduction)


def _check_device(t: torch.Tensor) -> None:
    if why := kernels.device_ok(str(t.device)):
        raise RuntimeError(why)


def _triton_reason() -> str | None:
    return kernels.unavailable_reason()


@cache
def _liger_reason() -> str | None:
    if importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel not installed (pip install liger-kernel)"
    if not torch.cuda.is_available():
        return "liger-kernel runs on CUDA only and no CUDA device is available"
    if kernels.env_interpret():
        return "liger-kernel is not run under TRITON_INTERPRET=1"
    try:
        from liger_kernel.transformers.functional import liger_cross_entropy  # noqa: F401
    except Exception as exc:
        return f"liger-kernel fails to import ({type(exc).__name__}: {exc})"
    return None


def liger(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Liger-Kernel's cross-entropy on a clone of the logits: its kernel writes the gradient
    into the logits buffer, which would corrupt the caller's tensor (and fail the harness's
    inputs-unchanged check) — the clone is part of its real cost. Liger takes 2-D [BT, V]
    logits, so spatial inputs are moved class-last first (a copy it cannot avoid)."""
    from liger_kernel.transformers.functional import liger_cross_entropy

    x = class_rows(input)
    y = target.reshape(-1)
    loss = liger_cross_entropy(x.clone(), y, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    loss = getattr(loss, "loss", loss)  # newer releases return a CrossEntropyOutput
    loss = loss[0] if isinstance(loss, tuple) else loss
    if reduction == "none":
        loss = loss.reshape(target.shape)
    return loss


# Triton's interpreter runs a block of classes in numpy: C up to 4,096 (64 blocks of 64)
# keeps a property's examples within the CI budget; compiled kernels take any C.
INTERPRETED_MAX_CLASSES = 4096
FUSED_CAPS = Capabilities(devices=kernels.expected_devices(), soft_targets=False,
                          spatial_dims=frozenset({0, 1, 2, 3}),  # the kernels' layout helpers
                          max_classes=INTERPRETED_MAX_CLASSES if kernels.env_interpret()
                          or not torch.cuda.is_available() else None)


def _interpreter_reason() -> str | None:
    return ("Triton interpreter (no CUDA): checked for correctness, never timed"
            if kernels.interpreted() else None)

register(Contender(
    "fused_triton", "multiclass", fused_triton,
    "one Triton kernel: online logsumexp + loss + gradient in the forward, stride-aware "
    "[N, C, *S]; backward scales the stored gradient in place",
    caps=FUSED_CAPS, why_unavailable=_triton_reason, why_untimed=_interpreter_reason))
register(Contender(
    "fused_triton_binary", "binary", fused_triton_binary,
    "one Triton kernel for BCE-with-logits loss + gradient on 1-channel logits; broadcast "
    "weight/pos_weight read through stride-0 views",
    caps=FUSED_CAPS, why_unavailable=_triton_reason, why_untimed=_interpreter_reason))
register(Contender(
    "liger", "multiclass", liger,
    "Liger-Kernel cross_entropy (CUDA; logits cloned because it overwrites them)",
    caps=Capabilities(devices=frozenset({"cuda"}), soft_targets=False, unbatched=False),
    why_unavailable=_liger_reason))
