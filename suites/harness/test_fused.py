"""Direct tests of the fused Triton kernels on fixed, deliberately awkward cases (the
generic equivalence suites cover generated ones): class counts that are not powers of two,
the multi-block online-logsumexp path (forced by shrinking the tile), channels-last and
strided views, all-ignored batches, a zero weighted-mean denominator, fp64, broadcast BCE
weights, and the device-side inverse-frequency variant against `harness.problem.weights`.

On CPU they run in Triton's interpreter; without Triton (or without CUDA and the
interpreter) the whole module is skipped with the reason."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness import kernels
from harness.contenders import get
from harness.equivalence.runner import verify
from harness.kernels.layout import merge_dims
from harness.problem.case import Case
from harness.problem.inputs import Inputs
from harness.problem.oracle import multiclass
from harness.problem.weights import class_counts, inverse_freq

REASON = kernels.unavailable_reason()
needs_triton = pytest.mark.skipif(REASON is not None, reason=f"fused kernels: {REASON}")
DEVICE = "cuda" if kernels.mode() == "compiled" else "cpu"


def _assert_all_ok(contender_name: str, case: Case) -> None:
    verdicts = verify(get(contender_name), case, DEVICE)
    bad = {k: v.detail for k, v in verdicts.items() if not v.ok}
    assert not bad, f"{contender_name} on {case.id}: {bad}"


MULTICLASS_CASES = [
    Case(n=3, c=423, reduction="mean", weights="random", label_smoothing=0.1),
    Case(n=3, c=423, dtype="bf16", reduction="none", ignore_frac=0.34),
    Case(n=2, c=7, spatial=(5, 3), layout="channels_last", weights="balanced", ignore_frac=0.2),
    Case(n=2, c=3, spatial=(2, 3, 4), layout="channels_last", reduction="sum", dtype="f16"),
    Case(n=3, c=5, spatial=(6,), layout="strided", weights="random", label_smoothing=0.3),
    Case(n=4, c=9, ignore_frac=1.0, weights="random", label_smoothing=0.2),         # all ignored
    Case(n=4, c=3, p=0.0, weights="onehot", ignore_frac=0.25),                        # W = 0
    Case(n=4, c=3, p=0.0, weights="onehot", label_smoothing=0.5, ignore_frac=0.25),   # W = 0, ε
    Case(n=2, c=11, spatial=(3, 3), dtype="f64", weights="effective_number", label_smoothing=0.05),
    Case(n=5, c=2, scale=1e4, dtype="f16", reduction="none"),
    Case(n=1, c=2, spatial=(1, 1)),
]


@needs_triton
@pytest.mark.parametrize("case", MULTICLASS_CASES, ids=lambda c: c.id)
def test_fused_triton_fixed_cases(case):
    _assert_all_ok("fused_triton", case)


@needs_triton
@pytest.mark.parametrize("case", [
    Case(n=3, c=423, weights="random", label_smoothing=0.1, scale=30.0),
    Case(n=2, c=70, spatial=(3, 2), layout="channels_last", ignore_frac=0.5, reduction="none"),
    Case(n=2, c=65, p=0.0, weights="onehot", ignore_frac=0.5),
], ids=lambda c: c.id)
def test_multi_block_online_logsumexp(case, monkeypatch):
    """Classes split over several blocks (ragged last one): the online max/sum path."""
    from harness.kernels import layout

    monkeypatch.setattr(layout, "INTERP_MAX_BLOCK_C", 16)
    monkeypatch.setattr(layout, "GPU_MAX_BLOCK_C", 16)
    monkeypatch.setattr(layout, "INTERP_TILE", 64)
    _assert_all_ok("fused_triton", case)


@needs_triton
def test_weighted_mean_zero_pattern():
    """W = 0 under 'mean': NaN loss, NaN gradient on non-ignored rows, zero on ignored."""
    from harness.kernels.xent import cross_entropy

    x = torch.randn(4, 3, dtype=torch.float32, device=DEVICE, requires_grad=True)
    y = torch.tensor([0, -100, 1, -100], device=DEVICE)
    w = torch.tensor([0.0, 0.0, 1.0], device=DEVICE)
    loss = cross_entropy(x, y, weight=w)
    loss.backward()
    assert torch.isnan(loss)
    assert torch.isnan(x.grad[[0, 2]]).all() and (x.grad[[1, 3]] == 0).all()


@needs_triton
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("upstream", [1.0, -2.5])
def test_mean_and_sum_store_the_final_gradient_in_the_forward(reduction, upstream):
    """'mean' and 'sum' write the gradient for an upstream 1 in the forward ('mean': d / W,
    W from the targets' pre-pass); the backward scales it only when g is not 1 (decided on
    the device). Both against float64 autograd of `F.cross_entropy`."""
    from harness.kernels.xent import cross_entropy

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 8, -100, 3, 3, 5])
    w = torch.rand(9, generator=gen, dtype=torch.float64) + 0.5
    kw = dict(weight=w.to(DEVICE), reduction=reduction, label_smoothing=0.2)
    ref = x.clone().requires_grad_()
    F.cross_entropy(ref, y, weight=w, reduction=reduction, label_smoothing=0.2).backward()
    mine = x.to(DEVICE).requires_grad_()
    loss = cross_entropy(mine, y.to(DEVICE), **kw)
    torch.testing.assert_close(loss.grad_fn.d.cpu(), ref.grad, rtol=1e-12, atol=1e-14)
    loss.backward(torch.tensor(upstream, dtype=torch.float64, device=DEVICE))
    torch.testing.assert_close(mine.grad.cpu(), upstream * ref.grad, rtol=1e-12, atol=1e-14)


@needs_triton
def test_does_not_touch_logits_and_backward_once():
    from harness.kernels.xent import cross_entropy

    x = torch.randn(3, 5, device=DEVICE)
    before = x.clone()
    leaf = x.requires_grad_()
    loss = cross_entropy(leaf, torch.tensor([0, 4, 2], device=DEVICE), reduction="sum")
    loss.backward(retain_graph=True)
    assert torch.equal(x.detach(), before)
    with pytest.raises(RuntimeError, match="once"):
        loss.backward()


@needs_triton
def test_unbatched_input_and_bad_target():
    from harness.kernels.xent import cross_entropy

    x = torch.randn(6, device=DEVICE, dtype=torch.float64)
    got = cross_entropy(x, torch.tensor(4, device=DEVICE))
    torch.testing.assert_close(got, F.cross_entropy(x, torch.tensor(4, device=DEVICE)))
    # An out-of-range class id cannot be checked without a host sync: it gives NaN.
    bad = cross_entropy(torch.randn(2, 3, device=DEVICE), torch.tensor([0, 7], device=DEVICE),
                        reduction="none")
    assert not torch.isnan(bad[0]) and torch.isnan(bad[1])


@needs_triton
@pytest.mark.parametrize("case", [
    Case(n=3, c=1, spatial=(5, 7), family="binary", weights="random"),
    Case(n=2, c=1, spatial=(3, 4, 5), family="binary", channel_dim=False, reduction="none",
         dtype="f16", weights="onehot", p=0.2),
    Case(n=4, c=1, spatial=(6, 6), family="binary", layout="channels_last", reduction="sum",
         weights="balanced", p=0.05, scale=30.0),
    Case(n=3, c=1, spatial=(9,), family="binary", layout="strided", dtype="f64"),
], ids=lambda c: c.id)
def test_fused_triton_binary_fixed_cases(case):
    pytest.importorskip("harness.problem.bce", reason="binary family not in this checkout")
    _assert_all_ok("fused_triton_binary", case)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_binary_broadcast_weights_against_torch(dtype):
    """ω of shape [W] (stride-0 broadcast over N, H) and π of shape [H, 1], bool targets."""
    from harness.kernels.bce import binary_cross_entropy_with_logits

    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(3, 1, 4, 5, generator=gen, dtype=torch.float64) * 8).to(dtype)
    y = torch.rand(3, 1, 4, 5, generator=gen) < 0.3
    w = torch.rand(5, generator=gen, dtype=torch.float64).to(dtype)
    pw = (torch.rand(4, 1, generator=gen, dtype=torch.float64) * 5).to(dtype)
    g = torch.rand(3, 1, 4, 5, generator=gen, dtype=torch.float64)
    mine = x.clone().to(DEVICE).requires_grad_()
    got = binary_cross_entropy_with_logits(mine, y.to(DEVICE), weight=w.to(DEVICE),
                                           pos_weight=pw.to(DEVICE), reduction="none")
    got.backward(g.to(dtype).to(DEVICE))
    ref_x = x.double().requires_grad_()
    want = F.binary_cross_entropy_with_logits(ref_x, y.double(), weight=w.double(),
                                              pos_weight=pw.double(), reduction="none")
    want.backward(g.to(dtype).double())
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(got.cpu().double(), want.detach(), **tol)
    torch.testing.assert_close(mine.grad.cpu().double(), ref_x.grad, **tol)


def _inverse_freq_truth(x: torch.Tensor, y: torch.Tensor, normalize: str):
    """float64 loss and gradient from `harness.problem.weights.inverse_freq` and the oracles: BCE
    with ω_n = w_{y_n} (numel mean), or the multi-class oracle on the stacked 2-class form
    [0, z] (cross_entropy's weighted mean)."""
    w = inverse_freq(class_counts(y, 2)).to(x.dtype).double()
    x64, y64 = x.double(), y.double()
    if normalize == "numel":
        ref = x64.clone().requires_grad_()
        loss = F.binary_cross_entropy_with_logits(ref, y64, weight=torch.where(y64 > 0.5, w[1], w[0]))
        loss.backward()
        return loss.detach(), ref.grad
    stacked = torch.stack([torch.zeros_like(x64), x64], dim=1).squeeze(2)
    case = Case(n=x.shape[0], c=2, spatial=tuple(stacked.shape[2:]), weights="random",
                dtype="f64")
    truth = multiclass(Inputs(case, stacked, y.long().squeeze(1), w, torch.ones((), dtype=torch.float64)))
    return truth.loss, truth.grad[:, 1:2]


@needs_triton
@pytest.mark.parametrize("normalize", ["numel", "weights"])
@pytest.mark.parametrize("p", [0.05, 0.0, 1.0, 0.5])
def test_inverse_freq_matches_weights_and_oracle(normalize, p):
    """Counts on the device, weights as `harness.problem.weights.inverse_freq` (uniform when only
    one class is present), uint8 targets of shape [N, H, W] with [N, 1, H, W] logits."""
    from harness.kernels.bce import inverse_freq as fused_inverse_freq

    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 1, 6, 7, generator=gen)
    y = (torch.rand(2, 1, 6, 7, generator=gen) < p).to(torch.uint8)
    mine = x.clone().to(DEVICE).requires_grad_()
    loss = fused_inverse_freq(mine, y.squeeze(1).to(DEVICE), normalize=normalize)
    loss.backward()
    want_loss, want_grad = _inverse_freq_truth(x, y, normalize)
    torch.testing.assert_close(loss.cpu().double(), want_loss, rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(mine.grad.cpu().double(), want_grad.reshape(x.shape),
                               rtol=2e-5, atol=1e-8)


def test_merge_dims_collapses_usual_layouts():
    """Contiguous NCHW rows merge into (N, H·W); channels-last rows into one dim."""
    x = torch.empty(2, 3, 4, 5)
    sizes, (xs,) = merge_dims([2, 4, 5], [s for d, s in enumerate(x.stride()) if d != 1])
    assert sizes == [1, 1, 2, 20] and xs == [0, 0, 60, 1]
    cl = x.to(memory_format=torch.channels_last)
    sizes, (cs,) = merge_dims([2, 4, 5], [s for d, s in enumerate(cl.stride()) if d != 1])
    assert sizes == [1, 1, 1, 40] and cs == [0, 0, 0, 3]


def test_unavailable_reasons_are_actionable(monkeypatch):
    """Without Triton the contenders are skipped with the install hint."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "triton" else real(name, *a))
    assert kernels.triton_missing.__wrapped__() == kernels.INSTALL_HINT
    assert "pip install xentbench[triton]" in kernels.INSTALL_HINT


def _aot(*args: str):
    """``python -m harness.kernels.aot --arch 90 ARGS`` in a fresh process: no
    TRITON_INTERPRET there, so the kernels are decorated for compilation."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "harness.kernels.aot", "--arch", "90", *args],
                          cwd=Path(__file__).resolve().parents[2], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(kernels.triton_missing() is not None, reason=str(kernels.triton_missing()))
def test_one_variant_of_each_kernel_compiles_for_sm90_without_a_gpu():
    """The interpreter skips Triton's compiler front end: each kernel, in the variant that
    takes the most of its branches (`harness.kernels.aot.sample`), compiled to a cubin, so
    compiled-mode breakage shows in `make test` (every variant: the slow test below)."""
    from harness.kernels import aot

    kernels_ = {v.kernel for v in aot.variants()}
    assert sorted(v.kernel for v in aot.sample()) == sorted(kernels_)
    done = _aot("--sample", "--jobs", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    n = len(kernels_)
    assert f"{n} of {n} variants compiled" in done.stdout, done.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(kernels.triton_missing() is not None, reason=str(kernels.triton_missing()))
def test_kernels_compile_for_sm90_without_a_gpu():
    """Every variant of `harness.kernels.aot.variants` (every GPU tile, ~100
    specialisations) compiled to a cubin in a fresh process (minutes on 2 cores)."""
    from harness.kernels import aot

    done = _aot()
    assert done.returncode == 0, done.stdout + done.stderr
    n = len(aot.variants())
    assert f"{n} of {n} variants compiled" in done.stdout, done.stdout[-2000:]


def test_aot_variants_cover_every_gpu_tile_width_flag_and_index_mode():
    """The covering design of `harness.kernels.aot.variants`: every tile the GPU can pick
    for C = 1 .. 2**20 in every element width (forward) and once (backward); every flag
    combination at the class-block boundary; every index mode (flat or not, 32- or 64-bit)
    in every kernel; every flag combination the binary kernel launches."""
    from harness.kernels import aot, layout

    def params(kernel):
        return [dict(v.constexprs) | dict(v.pointers) | {"warps": v.num_warps}
                for v in aot.variants() if v.kernel == kernel]

    fwd, bwd = params("_xent_fwd"), params("_xent_bwd")
    tiles = layout.gpu_xent_tiles(1 << 20)
    assert len(tiles) == 14
    for t in tiles:
        at = [f for f in fwd if (f["BLOCK_R"], f["BLOCK_C"], f["SINGLE"]) == (t.block_r, t.block_c, t.single)]
        widths = {f["x_ptr"] for f in at}
        assert {"*fp32", "*fp64"} <= widths and widths & {"*bf16", "*fp16"}, t
        assert all(f["warps"] == t.num_warps for f in at)
        assert any((b["BLOCK_R"], b["BLOCK_C"]) == (t.block_r, t.block_c) for b in bwd), t
    assert {f["x_ptr"] for f in fwd} == {"*bf16", "*fp16", "*fp32", "*fp64"}
    for single in (True, False):
        flags = {(f["HAS_W"], f["HAS_LS"], f["REDUCE_NONE"], f["FINAL"]) for f in fwd
                 if f["BLOCK_C"] == layout.GPU_MAX_BLOCK_C and f["SINGLE"] == single}
        assert flags == {(w, ls, r == "none", r == "mean") for w in (True, False)
                         for ls in (True, False) for r in ("none", "sum", "mean")}, single
    modes = {(True, True), (True, False), (False, True), (False, False)}
    for kernel in ("_xent_fwd", "_xent_bwd", "_bce_fwd", "_count_pos", "_target_weight_sum"):
        assert {(p["FLAT"], p["IDX64"]) for p in params(kernel)} >= modes - (
            set() if kernel not in ("_count_pos",) else {(True, False)}), kernel
    assert {b["UNIT_SKIP"] for b in bwd} == {True, False}
    assert {(p["HAS_W"], p["ACC_T"]) for p in params("_target_weight_sum")} == {
        (w, acc) for w in (True, False) for acc in ("fp32", "fp64")}
    bce = params("_bce_fwd")
    reductions = {(True, False), (False, False), (False, True)}  # none, sum, mean (FINAL)
    assert {(b["HAS_W"], b["HAS_PW"], b["CLASS_W"], b["REDUCE_NONE"], b["FINAL"]) for b in bce} == {
        (w, pw, False, *r) for w in (True, False) for pw in (True, False) for r in reductions
    } | {(False, False, True, *r) for r in reductions}
    assert all(b["BLOCK"] == layout.GPU_BLOCK for b in bce)
    assert {b["y_ptr"] for b in bce} >= {"*u8", "*bf16", "*fp32"}


@needs_triton
def test_interpreter_launches_are_counted_whoever_registered_the_kernel():
    """The benchmark never times a contender that ran a Triton kernel in the interpreter
    (`harness.kernels.watch`), built-in or external: here a plain function around the
    fused kernel, as an external contender would be."""
    from harness.kernels import watch
    from harness.kernels.xent import cross_entropy

    if not kernels.interpreted():
        pytest.skip("the kernels run compiled here: nothing is interpreted")
    assert watch.watch() and watch.watch()  # idempotent
    before = watch.launches()
    x = torch.randn(4, 5)
    cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    assert watch.launches() > before
    before = watch.launches()
    F.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    assert watch.launches() == before
