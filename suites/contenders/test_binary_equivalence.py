"""Every binary contender against the float64 binary oracle on generated cases, one test
per property: (a) loss, (b) gradient, (c) non-finite pattern, (d) inputs untouched,
(e) dtype and shape — the multi-class suite's pattern, with the semantics of
`F.binary_cross_entropy_with_logits` (see `harness.problem.bce`).

Known limits (BCELoss on sigmoid(x) clamps log at -100) are asserted where theory predicts
them, through the contender's ``limits``."""

from __future__ import annotations

import pytest

from harness.equivalence.properties import PROPERTIES
from harness.equivalence.runner import property_search
from harness.problem import strategies


@pytest.mark.parametrize("prop", PROPERTIES)
def test_binary_property(binary_contender, prop, device, count_case, xent):
    if why := binary_contender.unavailable(device):
        pytest.skip(why)
    property_search(binary_contender, prop, device, count_case, xent.call_timeout)()


def test_capability_gaps_are_visible(binary_contender, device):
    """The strategies honour a contender's declared capabilities while drawing (only
    `strategies.FILTERED_AFTER_DRAW` is left to the filter after the draw): 20 cases
    drawn for it fall in none of its gaps. Then the gaps are shown as a skip with their
    reason."""
    outside = strategies.drawn_in_gaps(binary_contender)
    assert not outside, outside[:3]
    gaps = binary_contender.caps.gaps()
    if why := binary_contender.unavailable(device):
        gaps.insert(0, why)
    if gaps:
        pytest.skip(f"{binary_contender.name}: not generated: {'; '.join(gaps)}")
