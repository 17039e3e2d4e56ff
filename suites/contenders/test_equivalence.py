"""Every multi-class contender against the float64 oracle on generated cases, one test per
property: (a) loss, (b) gradient, (c) non-finite pattern, (d) inputs untouched, (e) dtype
and shape.

A failure names the case id and prints a one-line reproduction; Hypothesis shrinks it to a
minimal counterexample first. Known limits (softmax → log underflow) are asserted where
theory predicts them, through the contender's ``limits``."""

from __future__ import annotations

import pytest

from harness.equivalence.properties import PROPERTIES
from harness.equivalence.runner import property_search
from harness.problem import strategies


@pytest.mark.parametrize("prop", PROPERTIES)
def test_multiclass_property(contender, prop, device, count_case, xent):
    if why := contender.unavailable(device):
        pytest.skip(why)
    property_search(contender, prop, device, count_case, xent.call_timeout)()


def test_capability_gaps_are_visible(contender, device):
    """The strategies honour a contender's declared capabilities while drawing (only
    `strategies.FILTERED_AFTER_DRAW` is left to the filter after the draw): 20 cases
    drawn for it fall in none of its gaps. Then the gaps are shown as a skip with their
    reason."""
    outside = strategies.drawn_in_gaps(contender)
    assert not outside, outside[:3]
    gaps = contender.caps.gaps()
    if why := contender.unavailable(device):
        gaps.insert(0, why)
    if gaps:
        pytest.skip(f"{contender.name}: not generated: {'; '.join(gaps)}")
