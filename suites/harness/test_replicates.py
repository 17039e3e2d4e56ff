"""`harness.benchmark.step.Replicates`: a benchmark's rounds in blocks on fresh copies of its inputs,
and the compare side that resamples those blocks (`harness.analysis.compare.significance`)."""

from __future__ import annotations

import numpy as np

from harness.analysis import compare
from harness.benchmark.step import Replicates, Step, replicated


def _counting(fresh_log: list[int], runs: list[int], k: int) -> Step:
    return Step(run=lambda: runs.append(k), setup=lambda: None)


def _pedantic(reps: Replicates, warmup_rounds: int = 1) -> None:
    """What pytest-benchmark's pedantic does with setup and the timed function."""
    for _ in range(warmup_rounds + reps.rounds):
        reps.setup()
        reps.run()


def test_each_block_runs_on_its_own_copy_and_every_copy_stays_alive():
    made, runs = [], []

    def fresh() -> Step:
        made.append(len(made) + 1)
        return _counting(made, runs, made[-1])

    reps = Replicates(fresh, _counting(made, runs, 0), blocks=4, per_block=3, warmup_rounds=1)
    _pedantic(reps)
    # copy 0 (the cached one) serves the warmup only; each block's own copy runs once
    # untimed (first-touch page faults), then its block
    assert runs == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]
    assert len(reps._alive) == 5


def test_replicated_uses_four_blocks_on_cpu_and_at_least_two_rounds_each():
    step = Step(run=lambda: None, setup=lambda: None)
    reps = replicated(None, None, "fwd", "cpu", step, rounds=5)
    assert (reps.blocks, reps.per_block, reps.rounds) == (4, 2, 8)


def test_block_resampling_widens_the_interval_when_blocks_disagree():
    """Two runs of identical code whose copies landed differently: blocks at 1.0 and
    1.3 ms. Resampling rounds alone calls the difference certain; resampling blocks does
    not, because the next run's copies could land either way."""
    rng = np.random.default_rng(0)
    base = np.concatenate([rng.normal(m, 0.01, 20) for m in (1.0, 1.0, 1.0, 1.3)])
    new = np.concatenate([rng.normal(m, 0.01, 20) for m in (1.3, 1.3, 1.0, 1.3)])
    factor = compare.machine_factor(np.ones(8))
    _, flat, _, _ = compare.significance(base, new, factor)
    _, blocked, _, _ = compare.significance(base, new, factor, blocks=(4, 4))
    assert flat[0] > 1  # rounds alone: significant
    assert blocked[0] <= 1 <= blocked[1]
