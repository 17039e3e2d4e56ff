"""The fused kernels' index modes: 32-bit offsets where every offset fits
(`harness.kernels.layout.needs_int64` decides at launch), and the flat path without
runtime division when only the innermost merged row dim is not 1 (`layout.is_flat`).

The host-side rules are checked on their own; under the interpreter each kernel then runs
a case in every mode it can be forced into, and the results must be bit-for-bit the same
as in the mode the launch picked (an index's width and form change no arithmetic), and
correct against the float64 oracle. The 64-bit path on a real > 2**31 problem is
`test_fused_gpu_tiles.py::test_more_than_2_31_logits_on_sampled_rows` (GPU only)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from harness import kernels
from harness.contenders import get
from harness.equivalence.runner import evaluate, verify
from harness.kernels import layout
from harness.problem.case import Case
from harness.problem.inputs import make_inputs

REASON = kernels.unavailable_reason()
needs_triton = pytest.mark.skipif(REASON is not None, reason=f"fused kernels: {REASON}")
DEVICE = "cuda" if kernels.mode() == "compiled" else "cpu"
LIMIT = layout.INT32_MAX


def test_needs_int64_at_the_2_31_boundary():
    """[N, C] rows: 64-bit exactly when the last row's reach passes 2**31 - 1, padding lanes
    (a row block past the last row, a class block past C) counted."""
    c, block_c = 262144, 4096
    def flat(n):
        return [1, 1, 1, n], [[0, 0, 0, c]]
    assert not layout.needs_int64(*flat(4096), 1, c, block_c, (1,))
    assert layout.needs_int64(*flat(8200), 1, c, block_c, (1,))  # the GPU smoke test's shape
    # the largest n that fits: (n - 1)·C + C (a padding row) + C + 4095 <= 2**31 - 1
    fits = (LIMIT - c - (c + block_c - 1)) // c + 1
    assert not layout.needs_int64(*flat(fits), 1, c, block_c, (1,))
    assert layout.needs_int64(*flat(fits + 1), 1, c, block_c, (1,))
    # a flat binary map: the last program's padding lanes alone pass the limit
    n = LIMIT - 100
    assert layout.needs_int64([1, 1, 1, n], [[0, 0, 0, 1]], 2048)
    assert not layout.needs_int64([1, 1, 1, n - 2048], [[0, 0, 0, 1]], 2048)
    # NCHW: the class stride is H·W, so C classes reach C·H·W
    assert layout.needs_int64([1, 1, 2, 1 << 20], [[0, 0, 3000 << 20, 1]], 1024, 3000, 4096,
                              (1 << 20,))
    # stride 0 (a broadcast weight) reaches nothing
    assert not layout.needs_int64([1, 1, 1 << 20, 1 << 10], [[0, 0, 0, 1]], 2048)
    assert layout.needs_int64([1, 1, 1, LIMIT], [[0, 0, 0, 0]], 1)  # the row count itself


def test_is_flat_only_when_the_inner_dim_alone_is_not_1():
    x = torch.empty(4, 5, 6, 7)
    sizes, _ = layout.merge_dims([4, 6, 7], layout.row_strides(x))
    assert sizes == [1, 1, 4, 42] and not layout.is_flat(sizes)  # NCHW: N and H·W
    cl = x.to(memory_format=torch.channels_last)
    sizes, _ = layout.merge_dims([4, 6, 7], layout.row_strides(cl))
    assert layout.is_flat(sizes)  # channels-last rows merge into one
    assert layout.is_flat(layout.merge_dims([9], [5])[0])  # [N, C]


def _bits(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().contiguous()
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


def _run(name: str, case: Case):
    """The call's loss and gradient bits, after the oracle accepted them."""
    verdicts = verify(get(name), case, DEVICE)
    assert all(v.ok for v in verdicts.values()), {k: v.detail for k, v in verdicts.items()}
    outcome = evaluate(get(name), make_inputs(case, DEVICE))
    assert outcome.error is None, outcome.error
    return _bits(outcome.loss), _bits(outcome.grad)


def _same_bits(got, want) -> bool:
    """Bit-for-bit in the interpreter. Compiled, a mode may change the register layout the
    compiler picks (vectorised or not), hence a reduction's order: the oracle judges there."""
    if kernels.mode() == "compiled":
        return True
    return all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


MODE_CASES = [
    ("fused_triton", Case(n=5, c=37, dtype="bf16", weights="random", label_smoothing=0.1,
                          ignore_frac=0.2)),                                        # flat rows
    ("fused_triton", Case(n=2, c=6, spatial=(3, 5), weights="random", ignore_frac=0.3,
                          reduction="none")),                                       # NCHW: 2 dims
    ("fused_triton", Case(n=2, c=4097, dtype="f16", label_smoothing=0.2, reduction="sum")),
    ("fused_triton_binary", Case(n=3, c=1, spatial=(9, 11), family="binary", dtype="f16",
                                 reduction="none")),                                # flat
    ("fused_triton_binary", Case(n=2, c=1, spatial=(5, 7), family="binary", weights="random",
                                 layout="strided")),                                # 4 dims
]


@needs_triton
@pytest.mark.parametrize(("name", "case"), MODE_CASES, ids=lambda v: getattr(v, "id", v))
@pytest.mark.parametrize("gpu_tiles", [False, True], ids=["interp-tiles", "gpu-tiles"])
def test_every_index_mode_gives_the_same_bits(name, case, gpu_tiles, monkeypatch):
    """Forced to 64-bit offsets, and (when flat) off the flat path, each kernel passes the
    oracle and, in the interpreter, gives the bits of the mode the launch picked."""
    from harness.kernels import bce, xent

    picked = {"int64": [], "flat": []}
    real_int64, real_flat = layout.needs_int64, layout.is_flat

    def spy_int64(*a, **k):
        picked["int64"].append(real_int64(*a, **k))
        return picked["int64"][-1]

    def spy_flat(sizes):
        picked["flat"].append(real_flat(sizes))
        return picked["flat"][-1]

    context = kernels.at_gpu_tiles if gpu_tiles else contextlib.nullcontext
    for module in (xent, bce):
        monkeypatch.setattr(module, "needs_int64", spy_int64)
        monkeypatch.setattr(module, "is_flat", spy_flat)
    with context():
        want = _run(name, case)
    assert picked["int64"] and not any(picked["int64"])  # small: 32-bit was picked
    flat = any(picked["flat"])
    for module in (xent, bce):
        monkeypatch.setattr(module, "needs_int64", lambda *a, **k: True)
    with context():
        got = _run(name, case)
    assert _same_bits(got, want), "64-bit offsets differ"
    if flat:
        for module in (xent, bce):
            monkeypatch.setattr(module, "is_flat", lambda sizes: False)
        with context():
            got = _run(name, case)
        assert _same_bits(got, want), "the general path differs"

