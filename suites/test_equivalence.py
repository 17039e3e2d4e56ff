"""Every contender against the float64 oracle on generated cases, one test per property:
(a) loss, (b) gradient, (c) non-finite pattern, (d) inputs untouched, (e) dtype and shape.

A failure names the case id and prints a one-line reproduction; Hypothesis shrinks it to a
minimal counterexample first. Known limits (softmax → log underflow) are asserted where
theory predicts them, through the contender's ``limits``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from harness import strategies
from harness.check import PROPERTIES
from harness.execute import repro_command, verify
from harness.pytest_plugin import example_budget


def _check_property(contender, prop: str, device: str, count_case, family: str) -> None:
    budget = example_budget(contender)
    chosen = settings(max_examples=budget) if budget else (lambda f: f)

    @chosen
    @given(case=strategies.cases(contender))
    def property_holds(case):
        verdict = verify(contender, case, device)[prop]
        count_case()
        assert verdict.ok, (
            f"{contender.name}: property '{prop}' fails on case {case.id}\n  {verdict.detail}\n"
            f"  reproduce: {repro_command(contender, case)}")

    property_holds()


@pytest.mark.parametrize("prop", PROPERTIES)
def test_multiclass_property(contender, prop, device, count_case):
    _check_property(contender, prop, device, count_case, "multiclass")


def test_capability_gaps_are_visible(contender):
    """Cases outside a contender's declared capabilities are never generated for it;
    this test makes the gap visible as a skip with its reason."""
    gaps = contender.caps.gaps()
    if gaps:
        pytest.skip(f"{contender.name}: not generated: {'; '.join(gaps)}")
