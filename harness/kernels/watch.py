"""Counting Triton interpreter launches: how the benchmark knows that a contender —
built-in or anyone's — ran a Triton kernel in the interpreter (numpy on the CPU), whose
time means nothing (an external kernel put ≈ 0.8 s a call into a table before this).

`watch` wraps the interpreter's grid launcher once, when the interpreter is on
(``TRITON_INTERPRET=1``, which `harness.kernels.interpret_without_cuda` sets on machines
without CUDA); `launches` is the running count. Test: ``suites/harness/test_fused.py``.
"""

from __future__ import annotations

from harness.kernels import env_interpret, triton_missing

_LAUNCHES = [0]
_MARK = "_xentbench_counted"


def watch() -> bool:
    """Start counting interpreter launches (idempotent); False when Triton is missing or
    its interpreter is off, where nothing can run interpreted."""
    if not env_interpret() or triton_missing():
        return False
    from triton.runtime import interpreter

    executor = interpreter.GridExecutor
    if getattr(executor.__call__, _MARK, False):
        return True
    original = executor.__call__

    def counted(self, *args, **kwargs):
        _LAUNCHES[0] += 1
        return original(self, *args, **kwargs)

    setattr(counted, _MARK, True)
    executor.__call__ = counted
    return True


def launches() -> int:
    """Interpreter launches seen since `watch` started counting."""
    return _LAUNCHES[0]
