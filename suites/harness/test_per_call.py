"""The headline case set (`harness.benchmark.case_sets.headline`) and its per-call weights
(`Case.per_call`, token ``percall``, `harness.benchmark.per_call`): the weights are computed
from the targets inside every timed call, and they are the weights the oracle judged, bit
for bit, or the benchmark is not timed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.benchmark import per_call
from harness.benchmark.case_sets import bench_cases, headline
from harness.benchmark.step import check_before_timing, inputs_for, make_step
from harness.contenders import Contender
from harness.problem.case import Case, CaseError

CPU = headline("small", "cpu")
PER_CALL = sorted(name for name, case in CPU.items() if case.per_call)


def test_percall_is_a_token_of_the_id() -> None:
    case = Case.from_id("n2-c2-8x8-p0.05-bf16-mean-winverse_freq-percall")
    assert case.per_call and case.weights == "inverse_freq"
    assert Case.from_id(case.id) == case and case.id.endswith("-percall")
    assert "percall" not in case.replace(per_call=False).id


@pytest.mark.parametrize("case_id, says", [
    ("n2-c2-8x8-p0.05-f32-mean-wbalanced-percall", "set weights='inverse_freq'"),
    ("n2-c2-8x8-p0.05-f32-mean-percall", "set weights='inverse_freq'"),
    ("n2-c65-8x8-p0.05-f32-mean-winverse_freq-percall", "at most 64 classes"),
])
def test_per_call_weights_that_cannot_be_computed_on_the_device_are_refused(case_id, says) -> None:
    with pytest.raises(CaseError, match=says):
        Case.from_id(case_id)


def test_the_headline_set_has_the_seed_its_binary_form_and_the_vocabulary_cases() -> None:
    cases = bench_cases("small", "cpu", "headline")
    assert cases == list(CPU.values())
    seed = [c for c in cases if c.weights == "inverse_freq"]
    assert {(c.family, c.dtype, c.per_call) for c in seed} == {
        (f, d, pc) for f in ("multiclass", "binary") for d in ("f32", "bf16") for pc in (False, True)}
    vocab = [c for c in cases if c.weights == "none"]
    assert {c.label_smoothing for c in vocab} == {0.0, 0.1}
    assert all(c.dtype == "bf16" and c.ignore_frac == 0.05 and c.c >= 1000 for c in vocab)
    # CPU sizes on the CPU, the mission's sizes on a GPU
    assert max(c.positions * c.c for c in cases) < 1 << 19
    gpu = headline("full", "cuda")
    assert gpu["seed_f32"].logits_shape == (64, 2, 1024, 1024)
    assert gpu["seed_bce_bf16_per_call"].logits_shape == (64, 1, 1024, 1024)
    assert {c.logits_shape for c in gpu.values() if c.weights == "none"} == {(4096, 128256), (4096, 32000)}


@pytest.mark.parametrize("name", PER_CALL)
def test_the_weights_computed_in_the_call_are_the_cases_bit_for_bit(name) -> None:
    verdict = per_call.check_same_weights(inputs_for(CPU[name], "cpu"))
    assert verdict.ok, verdict.detail


def test_weights_from_another_formula_are_caught(monkeypatch) -> None:
    # balanced weights differ from inverse_freq's: the step would time another problem
    def balanced(counts):
        return counts.sum() / (2 * counts.clamp(min=1))

    monkeypatch.setattr(per_call, "inverse_freq", balanced)
    monkeypatch.setattr(per_call, "binary_inverse_freq", lambda n_pos, numel: balanced(
        torch.stack([numel - n_pos, n_pos]).to(torch.float64)))
    for name in ("seed_f32_per_call", "seed_bce_bf16_per_call"):
        verdict = per_call.check_same_weights(inputs_for(CPU[name], "cpu"))
        assert not verdict.ok and "weight" in verdict.detail


def test_check_before_timing_judges_the_per_call_weights(monkeypatch) -> None:
    eager = Contender("eager", "multiclass", F.cross_entropy, "reference", source="test")
    case = CPU["seed_bf16_per_call"]
    assert all(v.ok for v in check_before_timing(eager, case, "fwd", "cpu"))
    monkeypatch.setattr(per_call, "inverse_freq", lambda counts: torch.ones_like(counts))
    wrong = [v.prop for v in check_before_timing(eager, case, "fwd", "cpu") if not v.ok]
    assert wrong == ["per_call_weights"]


@pytest.mark.parametrize("name, fresh", [("seed_f32_per_call", True), ("seed_f32", False),
                                         ("seed_bce_f32_per_call", True)])
def test_the_step_computes_the_weights_in_every_call(name, fresh) -> None:
    seen: list[torch.Tensor] = []
    case = CPU[name]
    reference = F.binary_cross_entropy_with_logits if case.spec.elementwise else F.cross_entropy

    def recording(input, target, weight=None, **options):
        seen.append(weight)
        return reference(input, target, weight=weight, **options)

    step = make_step(Contender("rec", case.family, recording, "records", source="test"),
                     inputs_for(case, "cpu"), "fwd_bwd", "cpu")
    for _ in range(2):
        step.setup()
        step.run()
    assert torch.equal(seen[0], seen[1])
    assert (seen[0] is not seen[1]) == fresh  # a new tensor per call: computed in it
