"""A fast wrong answer is never timed, in any mode (`harness.benchmark.step.check_before_timing`):
on the weighted landmarks a loss that drops ``weight`` is rejected whether the benchmark
times ``fwd`` or ``fwd_bwd``. On the seed's landmark the logits do not depend on the
targets, so its forward alone is within tolerance of the weighted mean; a forward-only
check passed it and timed it in ``fwd`` (issue 28)."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

from harness.benchmark.case_sets import MODES, landmarks
from harness.benchmark.step import check_before_timing
from harness.contenders import Contender


def drops_weight(input, target, weight=None, **options):
    return F.cross_entropy(input, target, **options)


WEIGHTED = {name: case for name, case in landmarks("small", "cpu").items()
            if case.weights != "none" and case.family == "multiclass"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_a_loss_that_drops_the_weights_is_never_timed(name, mode):
    loss = Contender("drops_weight", "multiclass", drops_weight, "planted", source="test")
    verdicts = check_before_timing(loss, WEIGHTED[name], mode, "cpu")
    assert not all(v.ok for v in verdicts), [(v.prop, v.detail) for v in verdicts]


def test_the_right_loss_passes_the_same_check():
    right = Contender("eager", "multiclass", F.cross_entropy, "reference", source="test")
    verdicts = check_before_timing(right, WEIGHTED["seed_segmentation"], "fwd", "cpu")
    assert all(v.ok for v in verdicts), [(v.prop, v.detail) for v in verdicts]
