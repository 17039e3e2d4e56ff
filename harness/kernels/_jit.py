"""The decorator every kernel here uses, after checking that it will work.

Importing a kernel module when `harness.kernels.mode()` is ``unavailable`` would decorate
kernels that cannot run (or, with a late ``TRITON_INTERPRET``, half-interpreted ones), so
it fails here with the reason instead.
"""

from __future__ import annotations

import contextlib

import triton

from harness.kernels import interpreted, unavailable_reason

if (_why := unavailable_reason()) is not None:
    raise ImportError(f"harness.kernels: {_why}")

jit = triton.jit


def launch_guard():
    """Silence numpy's floating-point warnings in the interpreter: masked-off lanes (padding
    rows, -inf padding classes) compute log(0) and -inf·0 there, as they do silently on a
    GPU, and their results are never stored."""
    if interpreted():
        import numpy as np

        return np.errstate(all="ignore")
    return contextlib.nullcontext()


def claim_stored_gradient(ctx, name: str) -> None:
    """The fused backward scales the gradient stored by the forward in place, so it may
    run once per forward: a second backward (retain_graph=True) is refused, not wrong."""
    if ctx.consumed:
        raise RuntimeError(f"{name} scales its stored gradient in place, so backward can run "
                           "once per forward (retain_graph=True is not supported)")
    ctx.consumed = True
