"""Fused Triton kernels for cross-entropy (multi-class and 1-channel binary).

Importing this package never imports Triton: the registry must load on machines without
it. Triton chooses between compiling and interpreting a function when it is *decorated* —
its own standard library (``tl.zeros``, ``tl.sum``'s combine function, ...) at
``import triton`` — so ``TRITON_INTERPRET=1`` only works when set before the first
``import triton`` of the process (``import torch._dynamo`` already imports it). The pytest
plugin sets it early on machines without CUDA; setting it afterwards is detected here and
reported as a reason, never run half-interpreted.

Execution modes (see `mode`):

* ``"compiled"`` — CUDA is available and the interpreter is off: real GPU kernels.
* ``"interpreter"`` — ``TRITON_INTERPRET=1`` took effect: the same kernel source runs in
  Triton's numpy interpreter on CPU tensors. It exists so CI proves the kernels correct;
  it is orders of magnitude slower and must never be timed (`interpreted()` says so).

Tiles (`gpu_tiles`): compiled kernels use the GPU's tile budgets; the interpreter uses its
own (bigger tiles, fewer programs), unless ``XENTBENCH_GPU_TILES=1`` is set or the launch
runs inside `at_gpu_tiles()` — then it executes exactly the tile configurations a GPU
launch would pick (`suites/harness/test_fused_gpu_tiles.py`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from functools import cache

INSTALL_HINT = "triton not installed; pip install xentbench[triton]"
GPU_TILES_ENV = "XENTBENCH_GPU_TILES"
_TRUE = ("1", "true", "yes", "on")
_gpu_tiles_depth = 0  # how many `at_gpu_tiles` blocks are open


@cache
def triton_missing() -> str | None:
    """Why Triton cannot be used here, or None."""
    if importlib.util.find_spec("triton") is None:
        return INSTALL_HINT
    try:
        import triton  # noqa: F401
    except Exception as exc:  # a broken install must skip, not crash the registry
        return f"triton fails to import ({type(exc).__name__}: {exc}); pip install xentbench[triton]"
    return None


def interpret_without_cuda() -> None:
    """Turn Triton's interpreter on for this process when there is no CUDA device, so the
    fused contenders can be checked on CPU. Must run before anything imports Triton; a
    process that already imported it, or an explicit TRITON_INTERPRET, is left alone."""
    import sys

    if "triton" in sys.modules or "TRITON_INTERPRET" in os.environ:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


def env_interpret() -> bool:
    """Whether the user asked for Triton's interpreter explicitly."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def _interpreter_took_effect() -> bool:
    """Whether Triton's standard library was decorated in interpreter mode."""
    try:
        import triton.language.standard as std
        from triton.runtime.interpreter import InterpretedFunction
    except Exception:
        return env_interpret()
    return isinstance(getattr(std, "zeros", None), InterpretedFunction)


@cache
def mode() -> str:
    """``compiled``, ``interpreter`` or ``unavailable``; fixed for the process because the
    kernels are decorated once, on first use."""
    import torch

    if triton_missing():
        return "unavailable"
    if env_interpret():
        return "interpreter" if _interpreter_took_effect() else "unavailable"
    return "compiled" if torch.cuda.is_available() else "unavailable"


def unavailable_reason() -> str | None:
    """Why the fused kernels cannot run in this process, or None. Cheap after the first
    call; the first call imports Triton when it is installed."""
    if why := triton_missing():
        return why
    if mode() != "unavailable":
        return None
    if env_interpret():
        return ("TRITON_INTERPRET=1 was set after triton was imported, so Triton's standard "
                "library is compiled, not interpreted; set it before anything imports triton "
                "or torch._dynamo")
    return ("no CUDA device, and Triton's interpreter is off: set TRITON_INTERPRET=1 before "
            "triton is imported (the xentbench pytest plugin does this on CPU machines)")


def expected_devices() -> frozenset[str]:
    """Where the kernels will run, judged without importing Triton (for capabilities)."""
    import torch

    if env_interpret() or not torch.cuda.is_available():
        return frozenset({"cpu"})
    return frozenset({"cuda"})


def interpreted() -> bool:
    """True when the kernels run in Triton's interpreter: correct, but not to be timed."""
    return mode() == "interpreter"


def gpu_tiles() -> bool:
    """Whether kernel launches pick the GPU's tiles: always when compiled; in the
    interpreter when ``XENTBENCH_GPU_TILES`` is set true or inside `at_gpu_tiles()`. Read
    at each launch, so a test can switch it per call."""
    if _gpu_tiles_depth or os.environ.get(GPU_TILES_ENV, "0").lower() in _TRUE:
        return True
    return mode() == "compiled"


@contextlib.contextmanager
def at_gpu_tiles() -> Iterator[None]:
    """Launches inside the block use the GPU's tile budgets even in the interpreter, so
    CI executes the tile configurations (class block 4096, multi-block loop above it)
    that otherwise only run on a GPU."""
    global _gpu_tiles_depth
    _gpu_tiles_depth += 1
    try:
        yield
    finally:
        _gpu_tiles_depth -= 1


def device_ok(device: str) -> str | None:
    """Why tensors on ``device`` cannot go through the kernels in this process, or None."""
    kind = device.split(":")[0]
    if mode() == "compiled" and kind != "cuda":
        return f"compiled Triton kernels need CUDA tensors, got {device}"
    if mode() == "interpreter" and kind != "cpu":
        return f"Triton's interpreter runs on CPU tensors, got {device}"
    return None


__all__ = ["GPU_TILES_ENV", "INSTALL_HINT", "at_gpu_tiles", "device_ok", "env_interpret",
           "expected_devices", "gpu_tiles", "interpreted", "mode", "triton_missing",
           "unavailable_reason"]
