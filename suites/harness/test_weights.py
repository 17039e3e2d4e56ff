"""Properties of the class-weighting schemes (`harness.problem.weights`) over labels with imbalance
from exactly 0 to exactly 1, batch sizes 1–16 and 2 to 64 classes, binary and multi-class,
with and without ignored positions — and the seed helper's defects, asserted with their
minimal counterexamples so the demonstration cannot silently disappear."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from harness.problem import bce
from harness.problem.case import Case
from harness.problem.inputs import make_targets
from harness.problem.strategies import PROBABILITIES
from harness.problem.weights import EFFECTIVE_NUMBER_BETA, class_counts, compute, seed_inverse_freq

# The data-driven schemes that promise finite, non-negative weights on any batch.
SAFE = ("inverse_freq", "balanced", "sqrt_inv_freq", "median_freq", "effective_number")
# effective_number depends on absolute counts n_c (β^n_c), not on frequencies, so a batch
# and its duplicate (every n_c doubled) get different weights — by design, not a defect.
FREQUENCY_ONLY = tuple(s for s in SAFE if s != "effective_number")


@st.composite
def label_batches(draw, family: str | None = None, ignore: bool = True):
    """(target, n_classes, ignore_index). Class frequencies come from `Case`: the rarest
    class has share p exactly (0 and 1 included), the others a Zipf tail. Binary targets
    are 0/1 floats ([N,1,H,W] or [N,H,W]); multi-class ones int64 ids, sometimes with
    ignored positions (all of them, too)."""
    family = family or draw(st.sampled_from(["binary", "multiclass"]))
    n, h, w = draw(st.integers(1, 16)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    p, seed = draw(PROBABILITIES), draw(st.integers(0, 2**16))
    if family == "binary":
        case = Case(n=n, c=1, family="binary", spatial=(h, w), p=p, seed=seed,
                    channel_dim=draw(st.booleans()))
    else:
        c = draw(st.one_of(st.just(2), st.integers(3, 64)))
        frac = draw(st.sampled_from([0.0, 0.25, 1.0])) if ignore else 0.0
        case = Case(n=n, c=c, spatial=(h, w), p=p, seed=seed, ignore_frac=frac)
    target = make_targets(case, torch.Generator().manual_seed(seed))
    if family == "binary":
        return target.to(torch.float32), 2, None
    return target, case.c, (case.ignore_index if case.ignore_frac else None)


def _weights(scheme: str, batch) -> torch.Tensor:
    target, k, ignore = batch
    return compute(scheme, target, k, ignore)


@given(batch=label_batches(), scheme=st.sampled_from(SAFE))
def test_weights_are_finite_and_non_negative(batch, scheme):
    w = _weights(scheme, batch)
    assert w.shape == (batch[1],)
    assert bool(torch.isfinite(w).all()) and bool((w >= 0).all()), w.tolist()


@given(batch=label_batches(), scheme=st.sampled_from(FREQUENCY_ONLY))
def test_duplicating_the_batch_leaves_weights_unchanged(batch, scheme):
    target, k, ignore = batch
    doubled = (torch.cat([target, target]), k, ignore)
    torch.testing.assert_close(_weights(scheme, doubled), _weights(scheme, batch), rtol=1e-12, atol=0)


def test_effective_number_changes_when_the_batch_is_duplicated():
    """Why effective_number is left out of the duplication property: (1-β)/(1-β^n) sees
    absolute counts. One background and three foreground pixels, then twice that."""
    target = torch.tensor([[0, 1, 1, 1]])
    once = compute("effective_number", target, 2)
    twice = compute("effective_number", torch.cat([target, target]), 2)
    assert not torch.allclose(once, twice, rtol=1e-6, atol=0)
    beta = EFFECTIVE_NUMBER_BETA
    raw = torch.tensor([(1 - beta) / (1 - beta**1), (1 - beta) / (1 - beta**3)], dtype=torch.float64)
    torch.testing.assert_close(once, raw * 2 / raw.sum(), rtol=1e-12, atol=0)


def _relabel(batch, perm: list[int]):
    target, k, ignore = batch
    mapping = torch.tensor(perm)
    if target.is_floating_point():
        return mapping[target.long()].to(target.dtype), k, ignore
    valid = target != ignore if ignore is not None else torch.ones_like(target, dtype=torch.bool)
    safe = torch.where(valid, target, torch.zeros_like(target))
    return torch.where(valid, mapping[safe], target), k, ignore


@given(data=st.data(), scheme=st.sampled_from(SAFE))
def test_relabelling_classes_permutes_the_weights(data, scheme):
    batch = data.draw(label_batches())
    perm = data.draw(st.permutations(range(batch[1])))
    before, after = _weights(scheme, batch), _weights(scheme, _relabel(batch, perm))
    torch.testing.assert_close(after[torch.tensor(perm)], before, rtol=1e-12, atol=0)


@given(batch=label_batches())
def test_balanced_gives_every_present_class_the_same_total_weight(batch):
    target, k, ignore = batch
    counts = class_counts(target, k, ignore)
    w = compute("balanced", target, k, ignore)
    present = counts > 0
    assume(bool(present.any()))
    totals = (counts * w)[present]
    torch.testing.assert_close(totals, torch.full_like(totals, float(counts.sum()) / k),
                               rtol=1e-12, atol=0)


@given(batch=label_batches(), scheme=st.sampled_from(SAFE), dtype=st.sampled_from(
    [torch.float32, torch.float16, torch.bfloat16]))
def test_weighted_loss_is_finite_when_a_target_has_positive_weight(batch, scheme, dtype):
    """cross_entropy's weighted mean (multi-class) and BCE with the converted weights
    (binary) are finite whenever some target's weight is positive — and with these schemes
    some target always is, as soon as one position is not ignored."""
    target, k, ignore = batch
    w = _weights(scheme, batch).to(dtype)
    gen = torch.Generator().manual_seed(0)
    if target.is_floating_point():
        x = torch.randn(target.shape, generator=gen).to(dtype)
        y = target.to(dtype)
        form = bce.pos_weight_form(w, dtype)
        kw = ({"weight": bce.class_weight_of_targets(w, y)} if form is None
              else {"weight": form[0], "pos_weight": form[1]})
        loss = F.binary_cross_entropy_with_logits(x, y, **kw)
        assert bool(torch.isfinite(loss)), (w.tolist(), float(loss))
        return
    valid = target != (ignore if ignore is not None else -100)
    assume(bool(valid.any()))
    assert float(w[target[valid]].float().sum()) > 0
    x = torch.randn((target.shape[0], k, *target.shape[1:]), generator=gen).to(dtype)
    loss = F.cross_entropy(x, target, weight=w, ignore_index=ignore if ignore is not None else -100)
    assert bool(torch.isfinite(loss)), (w.tolist(), float(loss))


# ---- the seed helper's defects, asserted -------------------------------------------------
def test_seed_gives_a_negative_weight_for_two_foreground_images():
    """alpha = target.sum() / (H·W) sums over the batch but divides by one image: N = 2
    all-foreground 1x1 images give alpha = 2 and class-1 weight 1 - alpha = -1."""
    w = seed_inverse_freq(torch.ones(2, 1, 1, 1))
    assert w.tolist() == [2.0, -1.0]


def _all_binary_batches(max_numel: int):
    """Every 0/1 target [N, H, W] with N·H·W <= max_numel: small enough to enumerate, so
    'minimal' below is proven, not just what a shrinker happened to reach."""
    for n in range(1, max_numel + 1):
        for h in range(1, max_numel // n + 1):
            for w in range(1, max_numel // (n * h) + 1):
                for bits in range(2 ** (n * h * w)):
                    flat = [(bits >> i) & 1 for i in range(n * h * w)]
                    yield torch.tensor(flat, dtype=torch.float64).reshape(n, h, w)


def test_seed_negative_weight_minimal_counterexample_is_two_foreground_pixels():
    """Among all batches of up to 3 pixels, the smallest with a negative seed weight is the
    one above — two one-pixel images, both foreground — and it is the only one of size 2."""
    negative = [t for t in _all_binary_batches(3) if float(seed_inverse_freq(t).min()) < 0]
    smallest = min(t.numel() for t in negative)
    assert smallest == 2
    assert [t.shape for t in negative if t.numel() == 2] == [torch.Size([2, 1, 1])]
    assert float(next(t for t in negative if t.numel() == 2).sum()) == 2.0


def test_seed_all_background_gives_zero_target_weights_and_a_nan_mean():
    """alpha = 0: weights [0, 1]; every target is background, so every target weight is 0
    and the weighted mean is 0/0 = NaN (the sum is 0). Its pos_weight form 1/0 = inf
    makes BCE NaN too."""
    target = torch.zeros(1, 1, 1, 1)
    w = seed_inverse_freq(target)
    assert w.tolist() == [0.0, 1.0]
    rows = torch.tensor([[0.0, 0.3]], dtype=torch.float64)
    y = target.long().reshape(-1)
    assert bool(torch.isnan(F.cross_entropy(rows, y, weight=w)))
    assert float(F.cross_entropy(rows, y, weight=w, reduction="sum")) == 0.0
    bce = F.binary_cross_entropy_with_logits(torch.tensor([0.3]), torch.tensor([0.0]),
                                             weight=torch.tensor([0.0]),
                                             pos_weight=torch.tensor([1.0]) / torch.tensor([0.0]))
    assert bool(torch.isnan(bce))


def test_seed_nan_mean_minimal_counterexamples_are_every_single_pixel():
    """Exhaustively: every one-pixel batch already gives a NaN weighted mean — background
    (alpha = 0, w0 = 0) and foreground alike (alpha = 1, so w1 = 1 - alpha = 0) — and so
    does any single all-foreground image."""
    nan = [t for t in _all_binary_batches(1) if bool(torch.isnan(_seed_weighted_mean(t)))]
    assert sorted(float(t.sum()) for t in nan) == [0.0, 1.0]
    assert bool(torch.isnan(_seed_weighted_mean(torch.ones(1, 4, 4))))


def _seed_weighted_mean(target: torch.Tensor) -> torch.Tensor:
    w = seed_inverse_freq(target)
    y = target.round().long().reshape(-1)
    rows = torch.zeros(y.numel(), 2, dtype=torch.float64)
    return F.cross_entropy(rows, y, weight=w)


@pytest.mark.parametrize("scheme", SAFE)
def test_safe_schemes_survive_the_seeds_counterexamples(scheme):
    """The same two batches under every other scheme: positive, finite weights."""
    for target in (torch.ones(2, 1, 1, 1), torch.zeros(1, 1, 1, 1)):
        w = compute(scheme, target, 2)
        assert bool(torch.isfinite(w).all()) and bool((w > 0).all()), (scheme, w.tolist())
        assert not bool(torch.isnan(_weighted_mean(target, w)))


def _weighted_mean(target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    y = target.round().long().reshape(-1)
    return F.cross_entropy(torch.zeros(y.numel(), 2, dtype=torch.float64), y, weight=w)


def test_seed_breaks_batch_duplication():
    target = torch.tensor([[[[0.0, 1.0]]]])
    assert seed_inverse_freq(target).tolist() == [0.5, 0.5]
    assert seed_inverse_freq(torch.cat([target, target])).tolist() == [1.0, 0.0]
