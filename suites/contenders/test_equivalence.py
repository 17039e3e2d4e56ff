"""Every contender of both families against its family's float64 oracle on generated
cases, one test per property: (a) loss, (b) gradient, (c) non-finite pattern, (d) inputs
untouched, (e) dtype and shape. The body is one (`check_property`, `capability_gaps`); the
family decides the oracle, the call and the strategies (`harness.problem.families`), and
each family's contenders come through its own fixture (``contender``, ``binary_contender``),
so test ids stay ``test_multiclass_property[NAME-PROP]`` and ``test_binary_property[...]``.

A failure names the case id and prints a one-line reproduction; Hypothesis shrinks it to a
minimal counterexample first. Known limits (softmax → log underflow; BCELoss on sigmoid(x)
clamping log at -100) are asserted where theory predicts them, through the contender's
``limits``."""

from __future__ import annotations

import pytest

from harness.equivalence.properties import PROPERTIES
from harness.equivalence.runner import property_search
from harness.problem import strategies
from harness.pytest_plugin.session import REACH


def check_property(contender, prop: str, device: str, count_case, xent, record) -> None:
    if why := contender.unavailable(device):
        pytest.skip(why)
    property_search(contender, prop, device, count_case, xent.call_timeout, xent.seed,
                    on_coverage=lambda got: record(REACH, got.fields()))()


def capability_gaps(contender, device: str) -> None:
    """The strategies honour a contender's declared capabilities while drawing (only what
    the tensors tell is left to the filter after the draw): 20 cases drawn for it fall in
    none of its gaps. Then the gaps are shown as a skip with their reason."""
    outside = strategies.drawn_in_gaps(contender)
    assert not outside, outside[:3]
    gaps = contender.caps.gaps()
    if why := contender.unavailable(device):
        gaps.insert(0, why)
    if gaps:
        pytest.skip(f"{contender.name}: not generated: {'; '.join(gaps)}")


@pytest.mark.parametrize("prop", PROPERTIES)
def test_multiclass_property(contender, prop, device, count_case, xent, record_property):
    check_property(contender, prop, device, count_case, xent, record_property)


@pytest.mark.parametrize("prop", PROPERTIES)
def test_binary_property(binary_contender, prop, device, count_case, xent, record_property):
    check_property(binary_contender, prop, device, count_case, xent, record_property)


def test_capability_gaps_are_visible(contender, device):
    capability_gaps(contender, device)


def test_binary_capability_gaps_are_visible(binary_contender, device):
    capability_gaps(binary_contender, device)
