"""Compile every kernel variant for a CUDA architecture on a machine without a GPU.

Triton's interpreter proves the kernels' arithmetic on CPU but skips the compiler front end
(constexpr branches, loop-carried types, dynamic ``if`` on a loaded scalar), where compiled
mode can fail on its own. Triton can lower to PTX and a cubin without a device, so this
runs the real compiler for each specialisation the contenders launch:

    python -m harness.kernels.aot [--arch 90]

It must run in a process where ``TRITON_INTERPRET`` is unset (the kernels are then
decorated for compilation); the test suite starts it as a subprocess.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys

SIZE_ARGS = ("n_rows", "numel")


def _force_compiled_mode() -> None:
    """Decorate for compilation even though no CUDA device is present."""
    import harness.kernels as kernels

    if kernels.env_interpret():
        raise SystemExit("unset TRITON_INTERPRET: the AOT check needs compiled kernels")
    kernels.unavailable_reason = lambda: None
    kernels.mode = lambda: "compiled"
    kernels.interpreted = lambda: False


def _signature(fn, pointers: dict[str, str], constexprs: dict) -> dict[str, str]:
    sig = {}
    for name in inspect.signature(fn.fn).parameters:
        if name in constexprs:
            sig[name] = "constexpr"
        else:
            sig[name] = pointers.get(name, "i64" if name in SIZE_ARGS else "i32")
    return sig


def variants():
    """(label, kernel, pointer types, constexprs) for each specialisation worth compiling."""
    import triton.language as tl

    from harness.kernels import bce, xent

    for acc, xt, at in ((tl.float32, "*bf16", "*fp32"), (tl.float64, "*fp64", "*fp64")):
        for single in (True, False):
            for ls, none in ((True, True), (False, False)):
                consts = dict(BLOCK_R=64 if single else 1, BLOCK_C=4 if single else 1024,
                              SINGLE=single, HAS_W=True, HAS_LS=ls, REDUCE_NONE=none, ACC_T=acc)
                ptrs = dict(x_ptr=xt, y_ptr="*i64", w_ptr=xt, coef_ptr=at, d_ptr=xt,
                            loss_ptr=xt, part_ptr=at)
                yield f"xent_fwd {xt[1:]} single={single} ls={ls} none={none}", \
                    xent._xent_fwd, ptrs, consts
    for mean, yt in ((True, "*i64"), (False, "*i64"), (True, "*bf16")):
        consts = dict(BLOCK_R=64, BLOCK_C=4 if yt == "*i64" else 1, MEAN=mean, ACC_T=tl.float32)
        yield f"xent_bwd mean={mean} y={yt[1:]}", xent._xent_bwd, \
            dict(d_ptr="*bf16", g_ptr="*bf16", y_ptr=yt, wsum_ptr="*fp32"), consts
    for has_w, has_pw, class_w in ((True, True, False), (False, False, True)):
        consts = dict(BLOCK=1024, HAS_W=has_w, HAS_PW=has_pw, CLASS_W=class_w,
                      REDUCE_NONE=False, ACC_T=tl.float32)
        ptrs = dict(x_ptr="*bf16", y_ptr="*u8", w_ptr="*bf16", pw_ptr="*bf16", cw_ptr="*fp32",
                    d_ptr="*bf16", loss_ptr="*bf16", part_ptr="*fp32")
        yield f"bce_fwd w={has_w} pw={has_pw} class_w={class_w}", bce._bce_fwd, ptrs, consts
    yield "count_pos", bce._count_pos, dict(y_ptr="*u8", part_ptr="*i64"), dict(BLOCK=1024)


def compile_all(arch: int = 90) -> list[tuple[str, str | None]]:
    """(label, error or None) per variant."""
    _force_compiled_mode()
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", arch, 32)
    results = []
    for label, fn, ptrs, consts in variants():
        src = ASTSource(fn=fn, signature=_signature(fn, ptrs, consts), constexprs=consts)
        try:
            triton.compile(src, target=target, options={"num_warps": 4})
            results.append((label, None))
        except Exception as exc:
            results.append((label, f"{type(exc).__name__}: {str(exc)[:2000]}"))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80, 90")
    args = ap.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    failed = 0
    for label, error in compile_all(args.arch):
        print(("FAIL " if error else "ok   ") + label + (f"\n     {error}" if error else ""))
        failed += error is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
