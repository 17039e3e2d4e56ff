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
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from functools import cache

# Element types of the logits, by width: a tile's code differs between widths (vector
# sizes, registers), hardly between bf16 and f16 (one conversion), so the 2-byte pair
# shares a width and the two alternate across tiles. (logits, accumulator, ACC_T)
WIDTHS = (("half", "*fp32", "fp32"), ("*fp32", "*fp32", "fp32"), ("*fp64", "*fp64", "fp64"))
HALVES = ("*bf16", "*fp16")
# (FLAT, IDX64): every index mode meets every width through the flag combinations.
INDEX_MODES = ((False, True), (True, True), (False, False), (True, False))
SIZE_NAMES = ("n_rows", "numel", "C", "ignore_index", "R1", "R2", "R3")


@dataclass(frozen=True)
class Variant:
    """One specialisation to compile: kernel ``module.name`` with pointer types, constexprs
    and warps. ``launch_like``: the specialisations a typical CUDA launch gets (16-byte
    aligned pointers, unit class stride made a constant), else none (generic strides)."""

    label: str
    module: str
    kernel: str
    pointers: tuple[tuple[str, str], ...]
    constexprs: tuple[tuple[str, object], ...]
    num_warps: int
    launch_like: bool
    unit_strides: tuple[str, ...] = ()


def _elem(width: str, i: int) -> str:
    return HALVES[i % 2] if width == "half" else width


def _acc_t(name: str) -> str:
    """ACC_T by name ("fp32", "fp64"): variants travel to worker processes as plain data."""
    return name


def _constexpr(name: str, value):
    import triton.language as tl

    if name == "ACC_T":
        return {"fp32": tl.float32, "fp64": tl.float64}[value]
    return value


def _xent_fwd(tile, elem, acc, acc_t, flags, index, launch_like) -> Variant:
    """The forward; ``flags``: (HAS_W, HAS_LS, reduction), the reduction setting
    REDUCE_NONE ('none') or FINAL ('mean': the gradient divided by W in the forward)."""
    has_w, has_ls, reduction = flags
    flat, idx64 = index
    none = reduction == "none"
    consts = dict(BLOCK_R=tile.block_r, BLOCK_C=tile.block_c, SINGLE=tile.single, HAS_W=has_w,
                  HAS_LS=has_ls, REDUCE_NONE=none, ACC_T=acc_t, FLAT=flat, IDX64=idx64,
                  FINAL=reduction == "mean")
    ptrs = dict(x_ptr=elem, y_ptr="*i64", w_ptr=elem, coef_ptr=acc, d_ptr=elem, loss_ptr=elem,
                part_ptr=acc, wsum_ptr=acc)
    label = (f"xent_fwd {elem[1:]} {tile.block_r}x{tile.block_c} single={tile.single} "
             f"w={has_w} ls={has_ls} {reduction} flat={flat} int64={idx64}"
             + (" launch-like" if launch_like else ""))
    return Variant(label, "xent", "_xent_fwd", tuple(ptrs.items()), tuple(consts.items()),
                   tile.num_warps, launch_like, ("xsc", "dsc") if launch_like else ())


def _xent_bwd(block_r, block_c, elem, scalar_g, acc_t, index, warps, launch_like,
              what) -> Variant:
    """The backward: ``scalar_g`` ('mean', 'sum': UNIT_SKIP) or a gradient per row ('none')."""
    flat, idx64 = index
    consts = dict(BLOCK_R=block_r, BLOCK_C=block_c, ACC_T=acc_t, FLAT=flat, IDX64=idx64,
                  UNIT_SKIP=scalar_g)
    ptrs = dict(d_ptr=elem, g_ptr=elem)
    label = (f"xent_bwd ({what}) {elem[1:]} {block_r}x{block_c} scalar_g={scalar_g} flat={flat} "
             f"int64={idx64}" + (" launch-like" if launch_like else ""))
    return Variant(label, "xent", "_xent_bwd", tuple(ptrs.items()), tuple(consts.items()), warps,
                   launch_like, ("dsc",) if launch_like and what == "multi-class" else ())


@cache
def variants() -> tuple[Variant, ...]:
    """Every specialisation worth compiling, as a covering design (the full product of tiles,
    widths, flags and index modes is about 3,000 compiles, an hour on 2 cores):

    * every tile the GPU can pick (`layout.gpu_xent_tiles`, C = 1 .. 2**20) × every width
      (2-byte, fp32, fp64), the forward with every option on, launch-like (contiguous
      [N, C]: flat rows, 32-bit offsets, aligned pointers, unit class stride); the backward
      once per tile, the widths in rotation;
    * at the two tiles of the class-block boundary (one block of 4096; the multi-block
      loop), every flag combination of the forward, generic strides, widths and index
      modes (flat or not × 32- or 64-bit) in rotation; the backward in every index mode,
      with and without 'mean';
    * the binary kernels at their one GPU block: every flag combination they launch, widths,
      index modes and target types (uint8/bool, float) in rotation; the backward (the
      multi-class one with one class) and the positive count likewise.

    A width, a flag combination or an index mode that fails to compile shows up somewhere
    in the set; `suites/harness/test_fused.py` runs it and checks the coverage."""
    from harness.kernels import layout

    out: list[Variant] = []
    tiles = layout.gpu_xent_tiles(1 << 20)
    flag_sets = [(w, ls, r) for w in (True, False) for ls in (True, False)
                 for r in ("none", "sum", "mean")]
    for i, tile in enumerate(tiles):
        for width, acc, acc_name in WIDTHS:
            out.append(_xent_fwd(tile, _elem(width, i), acc, _acc_t(acc_name),
                                 (True, True, "mean"), (True, False), True))
        width, _, acc_name = WIDTHS[i % 3]  # the backward: one pass of a scaling, any width
        out.append(_xent_bwd(tile.block_r, tile.block_c, _elem(width, i // 3), True,
                             _acc_t(acc_name), (True, False), tile.num_warps, True,
                             "multi-class"))
    edge = [t for t in tiles if t.block_c == layout.GPU_MAX_BLOCK_C]
    for e, tile in enumerate(edge):
        for k, flags in enumerate(flag_sets):
            width, acc, acc_name = WIDTHS[(k + e) % 3]
            out.append(_xent_fwd(tile, _elem(width, k // 3), acc, _acc_t(acc_name), flags,
                                 INDEX_MODES[(k + e) % 4], False))
    tile = edge[0]
    for k, (mean, index) in enumerate((m, ix) for m in (True, False) for ix in INDEX_MODES):
        width, _, acc_name = WIDTHS[k % 3]
        out.append(_xent_bwd(tile.block_r, tile.block_c, _elem(width, k // 3), mean,
                             _acc_t(acc_name), index, tile.num_warps, False, "multi-class"))
    block = layout.bce_block(1, gpu=True)
    reductions = ("none", "sum", "mean")
    bce_flags = [(w, pw, False, r) for w in (True, False) for pw in (True, False)
                 for r in reductions] + [(False, False, True, r) for r in reductions]
    for k, (has_w, has_pw, class_w, reduction) in enumerate(bce_flags):
        width, acc, acc_name = WIDTHS[k % 3]
        elem = _elem(width, k // 2)  # both halves, with float targets and with uint8 ones
        y = "*u8" if class_w or k % 2 else elem  # uint8/bool or float targets
        flat, idx64 = INDEX_MODES[k % 4]
        consts = dict(BLOCK=block, HAS_W=has_w, HAS_PW=has_pw, CLASS_W=class_w,
                      REDUCE_NONE=reduction == "none", ACC_T=_acc_t(acc_name), FLAT=flat,
                      IDX64=idx64, FINAL=reduction == "mean")
        ptrs = dict(x_ptr=elem, y_ptr=y, w_ptr=elem, pw_ptr=elem, cw_ptr=acc, d_ptr=elem,
                    loss_ptr=elem, part_ptr=acc, norm_ptr=acc)
        out.append(Variant(f"bce_fwd {elem[1:]} y={y[1:]} w={has_w} pw={has_pw} "
                           f"class_w={class_w} {reduction} flat={flat} int64={idx64}",
                           "bce", "_bce_fwd", tuple(ptrs.items()), tuple(consts.items()), 4,
                           k % 3 == 0))
    for k, (mean, index) in enumerate(((True, INDEX_MODES[0]), (False, INDEX_MODES[1]),
                                       (True, INDEX_MODES[2]), (False, INDEX_MODES[3]))):
        width, _, acc_name = WIDTHS[k % 3]
        elem = _elem(width, k)
        out.append(_xent_bwd(block, 1, elem, mean, _acc_t(acc_name), index, 4, k % 2 == 0,
                             "binary"))
    for k, (has_w, (width, acc, acc_name)) in enumerate(
            (w, wd) for w in (True, False) for wd in WIDTHS):  # 'mean''s W pre-pass
        flat, idx64 = INDEX_MODES[k % 4]
        elem = _elem(width, k)
        out.append(Variant(f"target_weight_sum {elem[1:]} w={has_w} flat={flat} int64={idx64}",
                           "xent", "_target_weight_sum",
                           (("y_ptr", "*i64"), ("w_ptr", elem), ("part_ptr", acc)),
                           (("BLOCK", block), ("HAS_W", has_w), ("ACC_T", acc_name),
                            ("FLAT", flat), ("IDX64", idx64)), 4, k % 2 == 0))
    for k, y in enumerate(("*u8", "*bf16", "*fp32")):
        flat, idx64 = INDEX_MODES[k % 4]
        out.append(Variant(f"count_pos y={y[1:]} flat={flat} int64={idx64}", "bce", "_count_pos",
                           (("y_ptr", y), ("part_ptr", "*i64")),
                           (("BLOCK", block), ("FLAT", flat), ("IDX64", idx64)), 4, k % 2 == 0))
    unique: dict[str, Variant] = {}
    for v in out:  # the backward has no SINGLE: both 1x4096 tiles are one variant
        unique.setdefault(v.label, v)
    return tuple(unique.values())


def sample() -> tuple[Variant, ...]:
    """One variant per kernel, the one that takes the most of its branches: every boolean
    flag on, the multi-block loop (SINGLE off) rather than the single block (`make test`
    compiles these; `make test-slow` every variant)."""

    def branches(v: Variant) -> int:
        flags = dict(v.constexprs)
        return sum(bool(val) != (name == "SINGLE") for name, val in flags.items()
                   if isinstance(val, bool))

    chosen: dict[str, Variant] = {}
    for v in variants():
        if v.kernel not in chosen or branches(v) > branches(chosen[v.kernel]):
            chosen[v.kernel] = v
    return tuple(chosen.values())


def _force_compiled_mode() -> None:
    """Decorate for compilation even though no CUDA device is present."""
    import harness.kernels as kernels

    if kernels.env_interpret():
        raise SystemExit("unset TRITON_INTERPRET: the AOT check needs compiled kernels")
    kernels.unavailable_reason = lambda: None
    kernels.mode = lambda: "compiled"
    kernels.interpreted = lambda: False


def _source(v: Variant, backend):
    """The ASTSource of ``v``: ints typed i64 where the variant indexes in 64 bits (a
    launch past 2**31 passes such sizes), pointers aligned and unit strides constant when
    ``launch_like``."""
    import importlib

    from triton.compiler import ASTSource

    fn = getattr(importlib.import_module(f"harness.kernels.{v.module}"), v.kernel)
    consts = {k: _constexpr(k, val) for k, val in v.constexprs}
    pointers = dict(v.pointers)
    wide = consts.get("IDX64", False)
    sig, attrs = {}, {}
    for i, name in enumerate(inspect.signature(fn.fn).parameters):
        if name in consts:
            sig[name] = "constexpr"
        elif name in v.unit_strides:
            sig[name] = "constexpr"
            consts[name] = 1
        elif name in pointers:
            sig[name] = pointers[name]
            if v.launch_like:
                attrs[(i,)] = backend.parse_attr("D")
        else:
            sig[name] = "i64" if wide and name not in ("ignore_index",) else "i32"
    return ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)


def _compile_one(args: tuple[Variant, int]) -> tuple[str, str | None]:
    v, arch = args
    _force_compiled_mode()
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend

    target = GPUTarget("cuda", arch, 32)
    try:
        triton.compile(_source(v, make_backend(target)), target=target,
                       options={"num_warps": v.num_warps})
        return v.label, None
    except Exception as exc:
        return v.label, f"{type(exc).__name__}: {str(exc)[:2000]}"


def compile_all(arch: int = 90, jobs: int | None = None,
                which: tuple[Variant, ...] | None = None) -> list[tuple[str, str | None]]:
    """(label, error or None) per variant of ``which`` (default: every one), compiled by
    ``jobs`` worker processes (default: one per CPU) — each variant is independent, and a
    2-core CI machine halves the wait."""
    _force_compiled_mode()
    work = [(v, arch) for v in (variants() if which is None else which)]
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1:
        return [_compile_one(w) for w in work]
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's threads
    with ctx.Pool(jobs) as pool:
        return pool.map(_compile_one, work, chunksize=4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80, 90")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    ap.add_argument("--sample", action="store_true",
                    help="one variant per kernel, the one taking the most branches (sample())")
    args = ap.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    started = time.monotonic()
    which = sample() if args.sample else None
    # one process per variant at most: a spawned worker imports torch and Triton first
    jobs = min(args.jobs or os.cpu_count() or 1, len(which)) if which else args.jobs
    results = compile_all(args.arch, jobs, which)
    failed = 0
    for label, error in results:
        print(("FAIL " if error else "ok   ") + label + (f"\n     {error}" if error else ""))
        failed += error is not None
    from harness.kernels import layout

    print(f"{len(results) - failed} of {len(results)} variants compiled for sm_{args.arch} in "
          f"{time.monotonic() - started:.0f} s ({len(layout.gpu_xent_tiles(1 << 20))} multi-class "
          f"GPU tiles for C = 1 .. 2**20, binary block {layout.bce_block(1, gpu=True)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
