"""The speed table (`harness.benchmark.speed_table`) on CPU at its tiny sizes: every row
carries its columns, a contender that raises, returns NaN or answers wrong is recorded and
the table goes on, the deadline and interrupts stop between rows with the JSON on disk, the
float64 reference equals the harness's oracle, and the traffic models give their stated
multiples. Speed is never asserted."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from harness import kernels
from harness.benchmark import speed_table as st
from harness.problem import oracle, weights
from harness.problem.case import Case
from harness.problem.inputs import Inputs

TINY = st.tiny_cases()
SEED = next(c for c in TINY if c.label == "seed" and c.weights == "given" and c.dtype == "f32")
SEED_PER_CALL = next(c for c in TINY if c.label == "seed" and c.weights == "per_call")
BINARY = next(c for c in TINY if c.family == "binary" and c.weights == "given")
VOCAB_LS = next(c for c in TINY if c.label == "vocab" and c.label_smoothing)
ENTRY = {e.name: e for e in st.ENTRIES}
BUDGET = st.Budget(seconds=0.002, min_rounds=2, max_rounds=3, warmup_s=0.0)
SMALL_CEILING = 1 << 20


def fake_liger(x, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Liger's call shape on CPU: [P, C] rows only, returning (loss, z_loss) as it does."""
    assert x.dim() == 2, "Liger takes [BT, V] rows"
    return (F.cross_entropy(x, target, weight=weight, ignore_index=ignore_index,
                            label_smoothing=label_smoothing, reduction=reduction), None)


def _entry(name: str, loss_of) -> st.Entry:
    """A planted contender: ``loss_of(x, case, tensors)`` on a leaf copy of the logits."""
    def bind(case, t, device):
        return st._leaf_bound(t, lambda x: loss_of(x, case, t))
    return st.Entry(name, ("multiclass", "binary"), bind, "planted for a test")


def _eager_loss(x, case, t):
    return F.cross_entropy(x, t.target, **st._ce_kwargs(case, t, t.target, x.dtype))


def _run(tmp_path: Path, cases, entries, **kw) -> st.Table:
    return st.run_table(cases, "cpu", tmp_path / "table.json", entries=entries, budget=BUDGET,
                        ceiling_bytes=SMALL_CEILING, tiny=True, **kw)


def _on_disk(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "table.json").read_text())


def test_tiny_table_rows_have_their_fields(tmp_path, monkeypatch):
    monkeypatch.setattr(st, "COMPILE_BACKEND", "aot_eager")  # inductor on CPU: 4-19 s a compile
    monkeypatch.setattr(st, "load_liger", lambda: fake_liger)
    names = ["eager", "compiled", "liger", "liger_inplace"]
    if kernels.unavailable_reason() is None:
        names += ["fused_triton", "fused_triton_binary"]
    cases = [SEED_PER_CALL, BINARY, VOCAB_LS]
    table = _run(tmp_path, cases, [ENTRY[n] for n in names])
    data = _on_disk(tmp_path)
    assert data["ceilings"]["copy_gbps"] > 0 and data["ceilings"]["read_gbps"] > 0
    assert data["stopped"] is None and len(data["rows"]) == len(table.rows)
    planned = {(r.case, r.contender, r.mode) for r in table.rows}
    for case in cases:  # the binary case has no Liger and no multi-class kernel
        wanted = [n for n in names if case.family in ENTRY[n].families]
        assert {(case.id, n, m) for n in wanted for m in st.MODES} <= planned
    for row in data["rows"]:
        where = f"{row['contender']} {row['case']} {row['mode']}"
        assert row["status"] == "ok", where
        assert len(row["repeat_medians_s"]) == 2 and row["median_s"] > 0, where
        assert row["repeat_spread"] >= 0 and row["rounds"] >= BUDGET.min_rounds, where
        assert row["min_bytes"] > 0 and row["model_bytes"] > 0, where
        assert row["min_bytes_pct_copy"] > 0 and row["model_pct_copy"] > 0, where
        assert row["error_ok"] is True and row["loss_of_bound"] <= 1 and row["grad_of_bound"] <= 1, where
        assert math.isclose(row["speedup"]["eager"] * row["median_s"],
                            next(r["median_s"] for r in data["rows"] if r["case"] == row["case"]
                                 and r["mode"] == row["mode"] and r["contender"] == "eager")), where
        # CPU too: the allocations torch's CPU allocator reports to its profiler (timing)
        assert isinstance(row["peak_extra_bytes"], int) and row["peak_extra_bytes"] >= 0, where
        assert (row["compile_s"] is not None) == (row["contender"] == "compiled"
                                                  and row["mode"] == "fwd_bwd"), where


def test_liger_missing_is_skipped_with_its_reason(tmp_path, monkeypatch):
    def missing():
        raise st.Skip("liger-kernel not installed")
    monkeypatch.setattr(st, "load_liger", missing)
    table = _run(tmp_path, [SEED], [ENTRY["eager"], ENTRY["liger"]])
    liger_rows = [r for r in table.rows if r.contender == "liger"]
    assert [r.status for r in liger_rows] == ["skipped: liger-kernel not installed"] * 2
    assert all(r.status == "ok" for r in table.rows if r.contender == "eager")


def test_raising_and_nan_contenders_are_recorded_and_the_table_goes_on(tmp_path):
    def raises(x, case, t):
        raise RuntimeError("kernel exploded")

    def nan(x, case, t):
        return _eager_loss(x, case, t) * float("nan")

    entries = [_entry("raises", raises), _entry("nan", nan), ENTRY["eager"]]
    table = _run(tmp_path, [SEED, BINARY], entries)
    by = {(r.case, r.contender, r.mode): r for r in table.rows}
    for mode in st.MODES:
        assert by[(SEED.id, "raises", mode)].status == "failed: RuntimeError: kernel exploded"
        assert by[(SEED.id, "nan", mode)].status.startswith("failed: non-finite loss")
        assert by[(SEED.id, "nan", mode)].error_ok is False
        assert not by[(SEED.id, "nan", mode)].timed
        assert by[(SEED.id, "eager", mode)].status == "ok"
        assert by[(BINARY.id, "eager", mode)].status == "ok"  # the next case ran too


def test_error_check_fails_a_wrong_loss_and_a_wrong_gradient(tmp_path):
    def wrong_loss(x, case, t):
        return _eager_loss(x, case, t) * 1.01

    def wrong_grad(x, case, t):  # the right value, a gradient 2 % too large
        loss = _eager_loss(x, case, t)
        return loss + 0.02 * (loss - loss.detach())

    table = _run(tmp_path, [SEED], [_entry("wrong_loss", wrong_loss), _entry("wrong_grad", wrong_grad),
                                    ENTRY["eager"]])
    rows = {(r.contender, r.mode): r for r in table.rows}
    bad_loss, bad_grad = rows[("wrong_loss", "fwd_bwd")], rows[("wrong_grad", "fwd_bwd")]
    assert bad_loss.status == "error FAIL" and bad_loss.error_ok is False and bad_loss.loss_of_bound > 1
    assert bad_grad.status == "error FAIL" and bad_grad.loss_of_bound <= 1 < bad_grad.grad_of_bound
    assert bad_loss.timed  # a finite wrong answer is still timed, and marked
    assert rows[("eager", "fwd_bwd")].error_ok is True
    assert "FAIL" in st.render(table).splitlines()[1]


def test_deadline_stops_between_rows_and_lists_the_rest(tmp_path):
    def slow_bind(case, t, device):
        time.sleep(1.5)
        return st.bind_eager(case, t, device)

    slow = st.Entry("slow", ("multiclass",), slow_bind, "sleeps before binding")
    later = replace(ENTRY["eager"], name="eager_again")
    table = _run(tmp_path, [SEED, VOCAB_LS], [ENTRY["eager"], slow, later], deadline_s=1.0)
    data = _on_disk(tmp_path)
    assert data["stopped"] == "deadline"
    statuses = {(r["case"], r["contender"], r["mode"]): r["status"] for r in data["rows"]}
    assert statuses[(SEED.id, "eager", "fwd_bwd")] == "ok"
    assert statuses[(SEED.id, "eager", "fwd")] == "ok"
    rest = [s for k, s in statuses.items() if k[1] != "eager" or k[0] != SEED.id]
    assert rest and all(s == "not reached: deadline" for s in rest)
    assert len(table.rows) == 2 * 3 * 2


def test_json_is_written_after_every_row_and_kept_on_keyboard_interrupt(tmp_path):
    seen: list[int] = []

    def count_rows_on_disk(_msg: str) -> None:
        if (tmp_path / "table.json").exists():
            seen.append(sum(r["status"] == "ok" for r in _on_disk(tmp_path)["rows"]))

    def interrupt(x, case, t):
        raise KeyboardInterrupt

    entries = [ENTRY["eager"], replace(ENTRY["eager"], name="eager_again"), _entry("ctrl_c", interrupt)]
    table = _run(tmp_path, [SEED, BINARY], entries, progress=count_rows_on_disk)
    assert seen == [1, 2, 3, 4]  # read after each row: the file grew by one row each time
    data = _on_disk(tmp_path)
    assert data["stopped"].startswith("interrupted (KeyboardInterrupt")
    statuses = [r["status"] for r in data["rows"]]
    assert statuses[:4] == ["ok"] * 4
    assert statuses[4:] and all(s == "not reached: interrupted" for s in statuses[4:])
    assert table.stopped == data["stopped"] and table.stop_signal == signal.SIGINT


def test_sigint_mid_run_keeps_the_earlier_rows(tmp_path):
    def sigint(x, case, t):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler raises here
        return _eager_loss(x, case, t)

    _run(tmp_path, [SEED], [ENTRY["eager"], _entry("sigint", sigint)])
    data = _on_disk(tmp_path)
    statuses = [r["status"] for r in data["rows"]]
    assert statuses == ["ok", "ok", "not reached: interrupted", "not reached: interrupted"]


def test_cli_sigterm_writes_what_it_has_and_exits_nonzero(tmp_path):
    out = tmp_path / "cli.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "harness.benchmark.speed_table", "--device", "cpu",
                             "--tiny", "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and any(r["status"] == "ok" for r in json.loads(out.read_text())["rows"]):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        text = proc.communicate(timeout=60)[0].decode()
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, text[-2000:]
    data = json.loads(out.read_text())
    assert data["stopped"].startswith("interrupted (Interrupted")
    statuses = [r["status"] for r in data["rows"]]
    assert statuses[0] == "ok" and statuses[-1] == "not reached: interrupted"
    assert "contender" in text  # the rendered table is printed on the way out


def test_render_one_line_per_row(tmp_path):
    table = _run(tmp_path, [SEED], [ENTRY["eager"], _entry("raises", lambda *a: 1 / 0)])
    lines = st.render(table).splitlines()
    assert len(lines) == 1 + len(table.rows)
    assert all(len(line) <= 100 for line in lines)
    assert lines[1].split()[:3] == ["eager", SEED.id, "fwd_bwd"] and lines[1].endswith(" ok")
    assert "failed: ZeroDivisionError" in lines[3]


def _harness_case(case: st.TableCase, weights_scheme: str) -> Case:
    return replace(case.harness_case(), weights=weights_scheme)


@pytest.mark.parametrize("case, random_weights", [(SEED, False), (VOCAB_LS, False),
                                                  (replace(VOCAB_LS, dtype="f32"), True)],
                         ids=["seed", "vocab", "vocab-f32-weighted"])
def test_device_reference_matches_oracle(case, random_weights):
    t = st.make_tensors(case, "cpu")
    if random_weights:  # weights and smoothing together: both terms of the weighted mean
        t.weight = torch.rand(case.shape[1], dtype=torch.float64).to(case.torch_dtype) + 0.1
    ref = st.reference(case, t)
    inputs = Inputs(_harness_case(case, "random" if t.weight is not None else "none"), t.logits,
                    t.target, t.weight, torch.tensor(1.0, dtype=torch.float64))
    truth = oracle.multiclass(inputs)
    torch.testing.assert_close(ref.loss, truth.loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(ref.grad, truth.grad, rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(ref.loss_scale, truth.loss_scale, rtol=1e-12, atol=0)
    scale = (truth.row_scale * truth.condition).reshape(case.shape[0], *case.shape[2:])
    torch.testing.assert_close(ref.grad_scale.squeeze(1), scale, rtol=1e-12, atol=0)


def test_binary_reference_matches_oracle():
    t = st.make_tensors(BINARY, "cpu")
    ref = st.reference(BINARY, t)
    call = {"weight": t.weight, "pos_weight": t.pos_weight, "reduction": "mean"}
    inputs = Inputs(BINARY.harness_case(), t.logits, t.target, None,
                    torch.tensor(1.0, dtype=torch.float64), call=call)
    truth = oracle.binary(inputs)
    torch.testing.assert_close(ref.loss, truth.loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(ref.grad, truth.grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(ref.loss_scale, truth.loss_scale, rtol=1e-12, atol=0)
    torch.testing.assert_close(ref.grad_scale, (truth.row_scale * truth.condition).reshape(t.logits.shape),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("target, n_classes", [
    (torch.tensor([0, 1, 1, 0, 0, 0]), 2),
    (torch.tensor([[0, 4, 2], [2, 2, -100]]), 5),
    (torch.tensor([3, 3, 3, -100]), 4),  # one class present: uniform weights
    (torch.tensor([-100, -100]), 3),  # nothing but ignored targets
])
def test_per_call_weights_match_harness(target, n_classes):
    mine = weights.inverse_freq(st.class_counts_on_device(target, n_classes))
    theirs = weights.inverse_freq(weights.class_counts(target, n_classes, ignore_index=-100))
    torch.testing.assert_close(mine, theirs, rtol=1e-15, atol=0)


def test_per_call_pos_weight_is_the_harness_pos_weight_form():
    target = (torch.arange(40) % 7 == 0).float().reshape(2, 1, 4, 5)
    weight, pos_weight = st.per_call_pos_weight(target, torch.float32)
    counts = weights.class_counts(target, 2)
    w = weights.inverse_freq(counts)
    assert float(weight) == pytest.approx(float(w[0]), rel=1e-7)
    assert float(pos_weight) == pytest.approx(float(w[1] / w[0]), rel=1e-7)


def test_traffic_models_give_their_stated_multiples():
    p, b, t = 1000, 2, 8

    def sizes(c, **kw):
        base = {"smoothing": False, "per_call": False, "spatial": False}
        return st.Sizes(p=p, c=c, b=b, t=kw.pop("t", t), **{**base, **kw})

    pcb = p * 2 * b
    # the final gradient is written in the forward; loss.backward() moves nothing
    assert st.fused_bytes(sizes(2), "fwd_bwd") == st.fused_bytes(sizes(2), "fwd") == 2 * pcb + 2 * p * t
    big = sizes(st.FUSED_BLOCK_C + 1)
    assert st.fused_bytes(big, "fwd_bwd") == 3 * p * big.c * b + 2 * p * t
    assert st.liger_inplace_bytes(sizes(2), "fwd_bwd") == st.liger_inplace_bytes(sizes(2), "fwd") \
        == 3 * pcb + p * t
    assert st.liger_bytes(sizes(2, spatial=True), "fwd_bwd") == 9 * pcb + p * t
    assert st.liger_bytes(sizes(2), "fwd_bwd") == 5 * pcb + p * t
    assert st.eager_bytes(sizes(2), "fwd_bwd") == 6 * pcb + 2 * p * (b + t)
    assert st.eager_bytes(sizes(2, smoothing=True), "fwd_bwd") == 9 * pcb + 2 * p * (b + t)
    assert st.eager_bytes(sizes(2, per_call=True), "fwd_bwd") == 6 * pcb + 2 * p * (b + t) + 2 * p * t
    assert st.compiled_bytes(sizes(2), "fwd_bwd") == 3 * pcb + 2 * p * t + 8 * p
    binary = sizes(1, t=b)
    assert st.fused_bytes(binary, "fwd_bwd") == 2 * p * b + p * b
    assert st.fused_bytes(replace(binary, per_call=True), "fwd_bwd") == 2 * p * b + 2 * p * b
    assert st.eager_bytes(binary, "fwd_bwd") == 40 * p * b
    # the seed case's sizes as the table derives them
    seed = st.Sizes.of(st.full_cases()[0])
    assert (seed.p, seed.c, seed.b, seed.t, seed.spatial) == (64 * 1024 * 1024, 2, 4, 8, True)


def test_full_cases_are_the_missions():
    ids = [c.id for c in st.full_cases()]
    for want in ("seed-64x2x1024x1024-f32-wgiven", "seed-64x2x1024x1024-bf16-wcall",
                 "bin-64x1x1024x1024-bf16-wgiven", "vocab-4096x128256-bf16-ls0.1-ig0.05",
                 "vocab-4096x32000-bf16-ig0.05"):
        assert want in ids
    assert len(ids) == len(set(ids)) == 12 and max(map(len, ids)) <= 35  # render's column
    # the structure is the same at tiny sizes
    assert [(c.family, c.dtype, c.weights, c.label_smoothing) for c in st.tiny_cases()] == \
        [(c.family, c.dtype, c.weights, c.label_smoothing) for c in st.full_cases()]
