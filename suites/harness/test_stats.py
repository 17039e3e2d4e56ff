"""Pure statistics: the U test against scipy where available, intervals, noise digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import stats
from harness.rounding import round_sig

samples = st.lists(st.floats(0.1, 10.0, allow_nan=False), min_size=1, max_size=25)


def test_median_and_quartiles_ignore_nan():
    assert stats.median([3.0, 1.0, math.nan, 2.0]) == 2.0
    assert stats.quartiles([1, 2, 3, 4, 5]) == (2.0, 4.0)
    assert stats.iqr([1, 2, 3, 4, 5]) == 2.0
    assert math.isnan(stats.median([]))


def test_rankdata_averages_ties():
    assert stats.rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


@settings(max_examples=40, deadline=None)
@given(samples, samples)
def test_mann_whitney_matches_scipy(x, y):
    scipy_stats = pytest.importorskip("scipy.stats")
    ours = stats.mann_whitney_u(x, y)
    method = "exact" if ours.method == "exact" else "asymptotic"
    theirs = scipy_stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    assert ours.u == pytest.approx(theirs.statistic)
    assert ours.p == pytest.approx(theirs.pvalue, rel=1e-6, abs=1e-12)


def test_mann_whitney_known_values():
    # Fully separated samples of 5 and 5: p = 2 / C(10, 5).
    test = stats.mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert test.method == "exact" and test.u == 0 and test.p == pytest.approx(2 / 252)
    assert stats.mann_whitney_u([1, 2, 3], [1, 2, 3]).p == pytest.approx(1.0)
    big = np.arange(200.0)
    assert stats.mann_whitney_u(big, big + 100).p < 1e-10  # normal approximation
    assert math.isnan(stats.mann_whitney_u([], [1.0]).p)


def test_exact_distribution_sums_to_one_and_is_symmetric():
    dist = stats._u_distribution(6, 9)
    assert dist.sum() == pytest.approx(1.0) and np.allclose(dist, dist[::-1])


def test_bootstrap_ci_covers_the_median_and_is_reproducible():
    rng = np.random.default_rng(0)
    x = rng.lognormal(0, 0.1, 50)
    lo, hi = stats.bootstrap_ci(x)
    assert lo < np.median(x) < hi
    assert (lo, hi) == stats.bootstrap_ci(x)


def test_resampled_medians_hold_one_value_fixed_and_resample_blocks_first():
    rng = np.random.default_rng(1)
    assert (stats.resampled_medians(np.array([2.0]), rng, 50) == 2.0).all()
    blocks = np.concatenate([np.full(10, 1.0), np.full(10, 2.0)])
    medians = stats.resampled_medians(blocks, rng, 400, blocks=2)
    # a resample can draw the same block twice: both block medians appear, as they would
    # from runs whose inputs landed one way or the other
    assert {1.0, 2.0} <= set(np.round(medians, 6))


@pytest.mark.parametrize(("value", "noise", "digits"), [
    (1.23456, 0.012, 3), (1.23456, 0.3, 2), (123.4, 0.5, 4), (123.4, 5.0, 3), (0.000123456, 1e-7, 4),
    (5.0, 50.0, 1), (5.0, math.nan, 3), (5.0, 0.0, 3), (0.0, 1.0, 1),
])
def test_significant_digits_follow_the_noise(value, noise, digits):
    assert stats.significant_digits(value, noise) == digits


def test_round_to_noise():
    assert stats.round_to_noise(1.23456, 0.012) == 1.23
    assert stats.round_to_noise(1234.5, 40) == 1230
    assert round_sig(0.00123456, 2) == 0.0012


def test_median_noise_shrinks_with_rounds():
    assert stats.median_noise(1.0, 100) == pytest.approx(stats.median_noise(1.0, 25) / 2)
    assert math.isnan(stats.median_noise(1.0, 1))


def test_speedup_noise_and_geometric_mean():
    assert stats.speedup(2.0, 1.0) == 2.0
    assert math.isnan(stats.speedup(2.0, 0.0))
    assert stats.relative_noise((10.0, 1.0), (2.0, 0.0)) == pytest.approx(0.1)
    assert stats.geometric_mean([1.0, 4.0]) == pytest.approx(2.0)


def test_t_quantile_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (3, 5, 11, 30):
        for p in (0.9, 0.99, 0.998):
            assert stats.t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-5)
