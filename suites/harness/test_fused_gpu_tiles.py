"""The fused kernels at the tiles a GPU launch picks.

Triton's interpreter normally runs its own, bigger tiles (`harness.kernels.layout`), so the
GPU's class block of 4096 — one block up to C = 4096, the online-logsumexp loop above it —
would otherwise execute only on a GPU. `harness.kernels.at_gpu_tiles` makes the interpreter
launch exactly the GPU's tiles; the cases here straddle that block (C = 4095, 4096, 4097) in
bf16 and f16 with class weights, label smoothing and ignored positions, loss and gradient
checked against the float64 oracle (`harness.equivalence.runner.verify`).

The GPU-only cases (C up to 262,144 and one problem of more than 2**31 logits) skip on CPU
with the reason: the interpreter would take minutes on them, and the large one needs about
13 GB of device memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness import kernels
from harness.contenders import get
from harness.equivalence.properties import Outcome, check_all
from harness.equivalence.runner import verify
from harness.kernels import layout
from harness.problem.case import Case
from harness.problem.inputs import Inputs
from harness.problem.oracle import multiclass

REASON = kernels.unavailable_reason()
needs_triton = pytest.mark.skipif(REASON is not None, reason=f"fused kernels: {REASON}")
needs_gpu = pytest.mark.skipif(
    kernels.mode() != "compiled",
    reason="GPU only: class counts up to 262,144 and 2**31 logits need compiled kernels on "
           "CUDA (minutes in Triton's interpreter; the large case needs ~13 GB)")
DEVICE = "cuda" if kernels.mode() == "compiled" else "cpu"


def test_gpu_tile_switch_by_context_and_environment(monkeypatch):
    """`at_gpu_tiles` (nestable) and ``XENTBENCH_GPU_TILES=1`` turn the GPU's tiles on;
    outside them the interpreter keeps its own."""
    monkeypatch.delenv(kernels.GPU_TILES_ENV, raising=False)
    base = kernels.gpu_tiles()
    assert base == (kernels.mode() == "compiled")
    with kernels.at_gpu_tiles():
        with kernels.at_gpu_tiles():
            assert kernels.gpu_tiles()
        assert kernels.gpu_tiles()
    assert kernels.gpu_tiles() == base
    monkeypatch.setenv(kernels.GPU_TILES_ENV, "1")
    assert kernels.gpu_tiles()


def test_gpu_tiles_depend_on_the_class_count_alone():
    """The GPU tile is a function of C (a few rows do not shrink it), so the ahead-of-time
    compile over `gpu_xent_tiles()` covers every launch; the interpreter's own tile does
    shrink to the rows."""
    tiles = layout.gpu_xent_tiles(1 << 13)
    for n_cols in (1, 2, 3, 1000, 4095, 4096, 4097, 1 << 13):
        for n_rows in (1, 3, 1000, 1 << 20):
            assert layout.xent_tile(n_rows, n_cols, gpu=True) == layout.xent_tile(1, n_cols, gpu=True)
        assert layout.xent_tile(1, n_cols, gpu=True) in tiles
    assert all(t.block_r * t.block_c == layout.GPU_TILE for t in tiles)
    assert [t.block_c for t in tiles if not t.single] == [layout.GPU_MAX_BLOCK_C]
    assert layout.xent_tile(3, 4, gpu=False).block_r == 4  # interpreter: no taller than needed
    assert layout.bce_block(5, gpu=True) == layout.GPU_BLOCK and layout.bce_block(5, gpu=False) == 8


def _weighted(c: int, dtype: str, reduction: str, **kw) -> Case:
    return Case(n=kw.pop("n", 3), c=c, dtype=dtype, reduction=reduction, weights="random",
                label_smoothing=kw.pop("label_smoothing", 0.1), ignore_frac=0.34, **kw)


# p = 0.5 gives class C-1 half the targets: at C = 4097 the second block's only class, so
# the target's logit and weight are gathered across the block boundary.
BOUNDARY_CASES = [
    _weighted(4095, "bf16", "mean"),
    _weighted(4095, "f16", "none"),
    _weighted(4096, "bf16", "sum"),
    _weighted(4096, "f16", "mean", ignore_index=4095),  # the block's last class ignored
    _weighted(4097, "bf16", "none", ignore_index=4096),  # the second block's only class ignored
    _weighted(4097, "f16", "mean", label_smoothing=0.3),
    _weighted(4097, "bf16", "mean", n=1, spatial=(3,)),  # class stride 3: [N, C, S] rows
    _weighted(4097, "f32", "sum", label_smoothing=0.3),  # fp32: the tighter tolerance
]


@needs_triton
@pytest.mark.parametrize("case", BOUNDARY_CASES, ids=lambda c: c.id)
def test_fused_triton_at_gpu_tiles_around_the_class_block(case, monkeypatch):
    """Around the GPU's class block (4096): one block at C ≤ 4096, two (the second holding
    one class) at 4097. The launch's tile is recorded, so a switch that did nothing fails."""
    from harness.kernels import xent

    picked: list[layout.Tile] = []
    real = xent._tile
    monkeypatch.setattr(xent, "_tile", lambda n, c: picked.append(real(n, c)) or picked[-1])
    with kernels.at_gpu_tiles():
        verdicts = verify(get("fused_triton"), case, DEVICE)
    assert picked and all(t == layout.xent_tile(1, case.c, gpu=True) for t in picked)
    assert picked[0].block_c == layout.GPU_MAX_BLOCK_C and picked[0].single == (case.c <= 4096)
    bad = {k: v.detail for k, v in verdicts.items() if not v.ok}
    assert not bad, f"fused_triton on {case.id}: {bad}"


@needs_triton
@pytest.mark.parametrize("case", [
    Case(n=3, c=1, spatial=(37, 41), family="binary", dtype="bf16", weights="random"),
    Case(n=2, c=1, spatial=(45, 50), family="binary", dtype="f16", reduction="none",
         layout="channels_last", weights="balanced", p=0.1),
], ids=lambda c: c.id)
def test_fused_triton_binary_at_gpu_tiles(case):
    """The binary kernels at the GPU's 2048 elements per program, over several programs
    with a ragged last one."""
    with kernels.at_gpu_tiles():
        verdicts = verify(get("fused_triton_binary"), case, DEVICE)
    bad = {k: v.detail for k, v in verdicts.items() if not v.ok}
    assert not bad, f"fused_triton_binary on {case.id}: {bad}"


# ---- GPU only ------------------------------------------------------------------------------
GPU_CLASS_COUNTS = (4095, 4096, 4097, 32000, 128256, 262144)
GPU_CASES = [
    Case(n=8, c=c, dtype=dtype, reduction=("mean", "none", "sum")[i % 3], weights="random",
         label_smoothing=0.1, ignore_frac=0.25, ignore_index=(-100, c - 1)[i % 2])
    for i, (c, dtype) in enumerate((c, d) for c in GPU_CLASS_COUNTS for d in ("bf16", "f16"))
]


@needs_gpu
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: c.id)
def test_fused_triton_vocabulary_sizes_on_gpu(case):
    """Vocabulary-sized C (32,000 is Llama 2's, 128,256 Llama 3's, 262,144 Gemma 3's)
    through the compiled kernels, loss and gradient against the float64 oracle."""
    verdicts = verify(get("fused_triton"), case, DEVICE)
    bad = {k: v.detail for k, v in verdicts.items() if not v.ok}
    assert not bad, f"fused_triton on {case.id}: {bad}"


def _rows_as_case(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, g: torch.Tensor,
                  label_smoothing: float) -> Inputs:
    """Rows of a 'none' problem as a problem of their own: a row's loss and gradient
    depend on that row alone, so the float64 oracle of the sampled rows is exact for them."""
    case = Case(n=x.shape[0], c=x.shape[1], dtype="bf16", reduction="none", weights="random",
                label_smoothing=label_smoothing)
    return Inputs(case, x, y, w, g)


@needs_gpu
def test_more_than_2_31_logits_on_sampled_rows():
    """bf16 [8200, 262144] holds 2.15e9 logits, more than 2**31: offsets past 2**31 - 1
    must be 64-bit. Checked on sampled rows — the first, those around row 8192 where the
    offset crosses 2**31, the last, and random ones — against the float64 oracle for
    'none' (loss per row and gradient rows), and the 'mean' loss against a float64 sum
    over every row, on the device in chunks."""
    from harness.kernels.xent import cross_entropy

    n, c, eps = 8200, 262144, 0.1
    free, _ = torch.cuda.mem_get_info()
    if free < 24 * 2**30:
        pytest.skip(f"needs ~24 GB free on the device, {free / 2**30:.0f} GB free")
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.randn(n, c, device=DEVICE, dtype=torch.bfloat16, generator=gen)
    y = torch.randint(0, c, (n,), device=DEVICE, generator=gen)
    y[::7] = -100
    w = (torch.rand(c, device=DEVICE, generator=gen) * 4.95 + 0.05).to(torch.bfloat16)
    g = (torch.rand(n, device=DEVICE, generator=gen) * 2 - 1.25).to(torch.bfloat16)
    assert x.numel() > 2**31 and (n - 1) * c > 2**31 - 1
    picks = torch.tensor([0, 1, 8190, 8191, 8192, 8193, n - 2, n - 1], device=DEVICE)
    rows = torch.cat([picks, torch.randint(0, n, (8,), device=DEVICE, generator=gen)])

    leaf = x.requires_grad_()
    loss = cross_entropy(leaf, y, weight=w, reduction="none", label_smoothing=eps)
    loss.backward(g)
    inputs = _rows_as_case(x.detach()[rows], y[rows], w, g[rows], eps)
    out = Outcome(loss.detach()[rows], leaf.grad[rows], None)
    verdicts = check_all(out, multiclass(inputs), inputs, props=("loss", "grad", "nonfinite"))
    bad = {k: v.detail for k, v in verdicts.items() if not v.ok}
    assert not bad, f"sampled rows {rows.tolist()}: {bad}"
    leaf.grad = None
    del loss, out

    mean = cross_entropy(x.detach(), y, weight=w, label_smoothing=eps)
    total = torch.zeros((), dtype=torch.float64, device=DEVICE)
    for start in range(0, n, 512):
        chunk = slice(start, start + 512)
        total += F.cross_entropy(x.detach()[chunk].double(), y[chunk], weight=w.double(),
                                 reduction="sum", label_smoothing=eps)
    valid = y != -100
    want = total / w.double()[y[valid]].sum()
    # a bf16 result: half an ulp of rounding plus the fp32 partial sums' error
    torch.testing.assert_close(mean.double(), want, rtol=2**-8, atol=0)
