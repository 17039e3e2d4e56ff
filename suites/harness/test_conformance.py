"""Conformance with PyTorch's own sample inputs (`harness.equivalence.samples`): every
sample that torch's internal test databases ship for cross_entropy, nll_loss and
BCE-with-logits, functional and module, is expressed as the harness's inputs; the float64
oracle equals PyTorch on each (loss and gradient), and every built-in eager contender
passes the five properties on each sample it declares it handles.

Compiled contenders are left to the signature cases (`strategies.signature_cases`): each
sample's shape would be a new compile, minutes on this 2-core CPU for no new semantics.
"""

from __future__ import annotations

import pytest
import torch

from harness import contenders as registry
from harness.equivalence.runner import judge, solve
from harness.equivalence.samples import Sample, SamplesUnavailable, torch_samples

try:
    SAMPLES, UNAVAILABLE = torch_samples(), ""
except SamplesUnavailable as exc:
    SAMPLES, UNAVAILABLE = [], str(exc)

needs_samples = pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE)
# The samples xentbench cannot express, each with its reason (README, "PyTorch's samples").
LEFT_OUT: dict[str, str] = {}
EAGER = [c for c in registry.builtins() if c.compiled is None]


def _id(sample: Sample) -> str:
    return sample.source.replace(" ", "-")


@needs_samples
def test_every_sample_is_expressed_or_listed_with_its_reason() -> None:
    missing = {s.source: s.why_not for s in SAMPLES if s.inputs is None}
    assert missing == LEFT_OUT, f"samples not expressed: {missing}"
    covered = len(SAMPLES) - len(missing)
    assert covered >= 150, f"only {covered} of PyTorch's samples: did the databases shrink?"


@needs_samples
@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.inputs is not None], ids=_id)
def test_oracle_equals_pytorch_on_its_sample(sample: Sample) -> None:
    inputs = sample.inputs
    x = inputs.logits.detach().clone().requires_grad_(True)
    want = sample.reference(x)
    want.backward(inputs.grad_out.expand_as(want))
    truth = solve(inputs)
    assert tuple(truth.loss.shape) == tuple(want.shape), sample.source
    torch.testing.assert_close(truth.loss, want.detach(), rtol=1e-10, atol=1e-10, equal_nan=True,
                               msg=lambda m: f"loss of {sample.source}: {m}")
    torch.testing.assert_close(truth.grad, x.grad, rtol=1e-10, atol=1e-10, equal_nan=True,
                               msg=lambda m: f"gradient of {sample.source}: {m}")


@needs_samples
@pytest.mark.parametrize("builtin", EAGER, ids=lambda c: c.name)
def test_builtin_contender_passes_every_sample_it_handles(builtin) -> None:
    contender = builtin
    mine = [s for s in SAMPLES if s.inputs is not None and s.family == contender.family]
    if contender.unavailable():
        pytest.skip(contender.unavailable())
    failures, judged = [], 0
    for sample in mine:
        if contender.skip_reason(sample.inputs.case) is not None:
            continue
        judged += 1
        verdicts = judge(contender, sample.inputs)
        failures += [f"{sample.source} ({sample.inputs.case.id}): {p}: {v.detail}"
                     for p, v in verdicts.items() if not v.ok]
    assert judged, f"{contender.name} declares none of PyTorch's samples"
    assert not failures, "\n".join(failures)
