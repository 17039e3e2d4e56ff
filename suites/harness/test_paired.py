"""The paired statistics of `ab` on synthetic pairs: the signed-rank test and the
Benjamini–Hochberg adjustment against scipy, the verdict rule, its false-alarm rate on
identical sides and its power on a 10 % slowdown."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis import paired

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("n", [1, 5, 12, 30])
def test_signed_rank_matches_scipy_exact(n):
    rng = np.random.default_rng(n)
    d = rng.normal(0.05, 0.1, n)
    ours = paired.signed_rank(d)
    theirs = scipy_stats.wilcoxon(d, method="exact")
    assert ours.method == "exact" and ours.n == n
    assert math.isclose(ours.p, theirs.pvalue, rel_tol=1e-9)


def test_signed_rank_matches_scipy_approx_with_ties_and_zeros():
    d = np.array([0.1, -0.1, 0.2, 0.2, 0.0, 0.3, -0.05, 0.1, 0.4, 0.2, 0.0, 0.15] * 3)
    ours = paired.signed_rank(d)
    theirs = scipy_stats.wilcoxon(d, zero_method="wilcox", correction=True, method="approx")
    assert ours.method == "normal" and ours.n == 30
    assert math.isclose(ours.p, theirs.pvalue, rel_tol=1e-9)


def test_signed_rank_of_nothing_is_no_evidence():
    assert paired.signed_rank([]).p == 1.0
    assert paired.signed_rank([0.0, 0.0]).n == 0


def test_null_distribution_is_a_symmetric_probability():
    dist = paired._w_distribution(10)
    assert math.isclose(dist.sum(), 1.0) and np.allclose(dist, dist[::-1])


def test_eight_pairs_are_the_fewest_that_reach_one_percent():
    assert paired.smallest_p(7) > 0.01 > paired.smallest_p(8)
    assert paired.signed_rank(np.linspace(0.1, 0.8, 8)).p == pytest.approx(paired.smallest_p(8))


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.001, 1e-4])
def test_the_fewest_pairs_are_those_whose_least_exact_p_reaches_alpha(alpha):
    def least(n: int) -> float:  # scipy's exact p of n pairs all of one sign
        return scipy_stats.wilcoxon(np.arange(1, n + 1) / 10, method="exact").pvalue

    m = paired.fewest_pairs(alpha)
    assert least(m) <= alpha < least(m - 1)


def test_no_verdict_on_fewer_pairs_than_the_test_needs():
    """3 pairs once read `undecided 1.37× (1.36–1.39), p 0.25`, and 3 steady pairs near 1
    read `same`: below `fewest_pairs` no outcome is significant, so neither is said."""
    m = paired.fewest_pairs(S.alpha)
    slow = np.log(1.37) + np.linspace(0, 0.01, m)
    steady = np.linspace(-0.001, 0.001, 3)
    judged = {j.name: j for j in paired.judge_all({"few": (slow[:-1], 2), "steady": (steady, 0),
                                                   "enough": (slow, 0)}, S)}
    for name in ("few", "steady"):
        j = judged[name]
        assert j.verdict == "too few" and math.isnan(j.p_adjusted) and math.isnan(j.low), j
    assert judged["enough"].verdict == "slower"
    # an untestable benchmark adds no test to the adjustment: `enough` is adjusted alone
    assert judged["enough"].p_adjusted == pytest.approx(judged["enough"].p)


def test_benjamini_hochberg_matches_scipy_and_keeps_nan():
    p = np.array([0.001, 0.04, 0.03, 0.2, np.nan, 0.0005, 0.9])
    ours = paired.benjamini_hochberg(p)
    theirs = scipy_stats.false_discovery_control(p[np.isfinite(p)])
    assert np.isnan(ours[4])
    assert np.allclose(ours[np.isfinite(p)], theirs)


S = paired.PairedSettings(threshold=0.05, alpha=0.01)


@pytest.mark.parametrize(("median", "interval", "p", "verdict"), [
    (math.log(1.10), (math.log(1.07), math.log(1.13)), 1e-5, "slower"),
    (math.log(0.90), (math.log(0.87), math.log(0.93)), 1e-5, "faster"),
    (math.log(1.02), (math.log(1.01), math.log(1.03)), 1e-5, "same"),        # real but small: same
    (math.log(1.10), (math.log(0.95), math.log(1.25)), 0.2, "undecided"),    # too few pairs
    (math.log(1.03), (math.log(1.00), math.log(1.08)), 1e-5, "undecided"),   # small, not bounded
    (math.nan, (math.nan, math.nan), math.nan, "undecided"),
])
def test_decide(median, interval, p, verdict):
    assert paired.decide(median, interval, p, S) == verdict


def test_settings_say_what_is_wrong():
    with pytest.raises(ValueError, match="fraction"):
        paired.PairedSettings(threshold=5)


def test_log_ratios_need_one_of_each_and_drop_missing_sides():
    with pytest.raises(ValueError, match="one of each"):
        paired.log_ratios([1.0, 2.0], [1.0])
    assert paired.log_ratios([1.0, np.nan, 2.0], [2.0, 1.0, 0.0]).tolist() == [math.log(2.0)]


def test_pairs_needed_follows_the_sample_size_formula():
    # the (41.7·σ)² for 1.1× at 1 % one-sided and 95 % power
    assert paired.pairs_needed(0.1) == math.ceil((41.66 * 0.1) ** 2)
    assert paired.pairs_needed(0.0) == 0


def _comparisons(shift: dict[int, float], trials: int, pairs: int = 40, sigma: float = 0.08,
                 benchmarks: int = 10) -> list[list[str]]:
    rng = np.random.default_rng(7)
    out = []
    for _ in range(trials):
        data = {f"b{i}": (rng.normal(math.log(shift.get(i, 1.0)), sigma, pairs), 0)
                for i in range(benchmarks)}
        out.append([j.verdict for j in paired.judge_all(data, S)])
    return out


def test_identical_sides_give_almost_no_false_change():
    """200 comparisons of 10 benchmarks of identical code (σ 0.08, 40 pairs): at most 1 %
    of the comparisons show any slower or faster row; with σ 0.04 (fwd's block pairs here)
    nearly every row can say `same`, with σ 0.08 (fwd_bwd's) most."""
    runs = _comparisons({}, 200)
    flagged = sum(any(v in ("slower", "faster") for v in run) for run in runs)
    assert flagged <= 2
    assert np.mean([v == "same" for run in runs for v in run]) > 0.6
    steady = _comparisons({}, 50, sigma=0.04)
    assert np.mean([v == "same" for run in steady for v in run]) > 0.95


def test_a_ten_percent_slowdown_is_found_and_nothing_else():
    runs = _comparisons({0: 1.10, 1: 1.10}, 100)
    hits = sum(run[i] == "slower" for run in runs for i in (0, 1))
    others = sum(v in ("slower", "faster") for run in runs for v in run[2:])
    assert hits >= 0.95 * 200 and others <= 2


def test_a_heavy_tail_of_wild_pairs_does_not_move_the_verdict():
    """Medians and ranks: a tenth of the pairs 1.5-2× off either way leaves identical code
    `same`."""
    rng = np.random.default_rng(3)
    d = rng.normal(0, 0.03, 60)
    d[::10] = rng.choice([-1, 1], 6) * rng.uniform(0.4, 0.7, 6)
    (j,) = paired.judge_all({"b": (d, 0)}, S)
    assert j.verdict == "same" and abs(math.log(j.ratio)) < 0.02


def test_the_interval_and_the_verdict_are_the_same_every_time():
    d = np.random.default_rng(1).normal(0.02, 0.05, 30)
    assert paired.judge_all({"b": (d, 2)}, S) == paired.judge_all({"b": (d, 2)}, S)
