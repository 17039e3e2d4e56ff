"""Each contender's own traffic model (`harness.benchmark.traffic.model_bytes`, issue 31),
checked on small cases against numbers worked out by hand from the models' docstrings, and
carried by the benchmark record beside `min_bytes`."""

from __future__ import annotations

import pytest

from harness.benchmark.fixture import traffic_fields
from harness.benchmark.record import BenchRecord
from harness.benchmark.traffic import min_bytes, model_bytes
from harness.problem.case import Case

# P = 8 positions, C = 3 classes, f32 (b = 4), int64 ids (t = 8): PCb = 96; spatial
SEED = Case(n=2, c=3, spatial=(4,))
# P = 4 rows, C = 5, bf16 (b = 2), t = 8: PCb = 40; rows already, label smoothing
VOCAB = Case(n=4, c=5, dtype="bf16", label_smoothing=0.1)
# E = 8 elements, f32 (b = 4), targets like the logits (t = 4)
BINARY = Case(n=2, c=1, spatial=(4,), family="binary")
# P = 8, C = 2, f32, weights counted from the targets in every call (C·P·t = 128)
PER_CALL = Case(n=2, c=2, spatial=(4,), weights="inverse_freq", per_call=True)


@pytest.mark.parametrize(("name", "problem", "mode", "expected"), [
    ("eager", SEED, "fwd", 2 * 96 + 8 * (4 + 8)),                     # 288
    ("eager", SEED, "fwd_bwd", 6 * 96 + 2 * 8 * (4 + 8)),             # 768
    ("eager", VOCAB, "fwd_bwd", 9 * 40 + 2 * 4 * (2 + 8)),            # 440: smoothing
    ("eager", PER_CALL, "fwd", 2 * 64 + 8 * (4 + 8) + 2 * 8 * 8),     # 352
    ("module", SEED, "fwd_bwd", 768),                                 # F.cross_entropy's kernels
    ("logsoftmax_nll", SEED, "fwd", 288),                             # the same kernels
    ("compiled_eager", SEED, "fwd_bwd", 3 * 96 + 2 * 8 * 8 + 8 * 8),  # 480
    ("compiled_logsoftmax_nll", SEED, "fwd_bwd", 480),                # the same fused pair
    ("fused_triton", SEED, "fwd_bwd", 2 * 96 + 2 * 8 * 8),            # 320
    ("fused_triton", SEED, "fwd", 320),                               # the same kernels
    ("liger", SEED, "fwd_bwd", 9 * 96 + 8 * 8),                       # 928: clone, class-last, back
    ("liger", SEED, "fwd", 3 * 96 + 8 * 8 + 4 * 96),                  # 736
    ("liger", VOCAB, "fwd_bwd", 5 * 40 + 4 * 8),                      # 232: rows, clone only
    ("bce_logits", BINARY, "fwd_bwd", (21 + 19) * 8 * 4),             # 1280
    ("compiled_bce_logits", BINARY, "fwd_bwd", 8 * (4 + 4) + 8 * (2 * 4 + 4)),  # 160
    ("fused_triton_binary", BINARY, "fwd_bwd", 8 * (2 * 4 + 4)),      # 96
])
def test_each_model_moves_the_hand_computed_bytes(name, problem, mode, expected) -> None:
    assert model_bytes(name, problem, mode) == expected


def test_no_model_is_stated_for_the_others_or_outside_the_models_scope() -> None:
    assert model_bytes("scratch", SEED, "fwd_bwd") is None        # no stated model
    assert model_bytes("eager", SEED.replace(reduction="none"), "fwd") is None
    assert model_bytes("eager", SEED.replace(soft=True), "fwd") is None


def test_the_record_carries_the_model_beside_min_bytes() -> None:
    fields = traffic_fields("liger", SEED, "fwd_bwd")
    assert fields == {"bytes": min_bytes(SEED, "fwd_bwd"), "model_bytes": 928}
    record = BenchRecord(contender="liger", family="multiclass", case_id=SEED.id, mode="fwd_bwd",
                         device="cpu", dtype="f32", case=SEED.fields(), peak_gbps=10.0,
                         peak_mem_bytes=None, **fields)
    assert record.as_extra()["model_bytes"] == 928
    assert traffic_fields("scratch", SEED, "fwd")["model_bytes"] is None


def test_the_ceilings_are_cheap_on_cpu() -> None:
    """What a timing session keeps in ``xentbench.ceilings``: its own copy figure and the
    read GB/s of a CPU-sized buffer, measured in milliseconds."""
    import time

    from harness.benchmark.timing import CEILING_BYTES, measure_ceilings

    start = time.perf_counter()
    c = measure_ceilings("cpu", copy_gbps=12.5)  # the session's copy (peak_gbps), not again
    assert time.perf_counter() - start < 0.5
    assert c["bytes"] == CEILING_BYTES["cpu"] and c["copy_gbps"] == 12.5 and c["read_gbps"] > 0
