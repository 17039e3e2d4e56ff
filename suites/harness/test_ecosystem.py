"""The ecosystem board (`harness.contenders.ecosystem`): every entry is a well-formed
contender of its family with the capabilities its documentation promises; a library that
cannot be imported is listed with the reason and never run; and each difference the board
reports is verified here by an independent float64 computation (skipped where the library
is not installed: ``pip install -e '.[ecosystem]'``)."""

from __future__ import annotations

import inspect

import pytest

from harness.analysis import tables
from harness.contenders import ecosystem
from harness.contenders.declare import parse_caps
from harness.problem.families import FAMILIES


def test_every_entry_is_a_contender_of_its_family() -> None:
    names = [e.name for e in ecosystem.ENTRIES]
    assert len(names) == len(set(names))
    for entry in ecosystem.ENTRIES:
        assert entry.family in FAMILIES
        parse_caps(entry.caps)  # raises on a bad clause
        params = list(inspect.signature(entry.adapter).parameters)
        assert params[:2] == ["input", "target"], entry.name
        want = ("weight", "ignore_index", "reduction", "label_smoothing") if \
            FAMILIES[entry.family].index_targets else ("weight", "pos_weight", "reduction")
        assert set(want) <= set(params), entry.name


def test_a_library_that_cannot_be_imported_is_listed_with_the_reason() -> None:
    missing = ecosystem.Entry("nowhere_ce", "no-such-package-xb", "no_such_module_xb",
                              "multiclass", "Loss()", "", lambda input, target, **kw: None)
    contender = missing.contender()
    assert "no-such-package-xb cannot be imported (ModuleNotFoundError" in contender.unavailable()
    header = tables.board_header([contender], "cpu")
    assert "nowhere_ce" in header and "skipped: no-such-package-xb cannot be imported" in header
    assert "not installed" in header


# ---- every difference on the board, verified by an independent float64 computation ------
def _ce_terms(x, y, w=None):
    """Per-position cross-entropy -w_y·log softmax(x)_y in float64, written out here (not
    F.cross_entropy): logsumexp over the class dim minus the target's logit."""
    import torch

    x = x.to(torch.float64)
    lse = torch.logsumexp(x, dim=1)
    picked = x.gather(1, y.unsqueeze(1)).squeeze(1)
    weights = torch.ones(x.shape[1], dtype=torch.float64) if w is None else w.to(torch.float64)
    return weights[y] * (lse - picked)


def _inputs(spatial=(), seed=0, c=3):
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((4, c, *spatial), generator=gen, dtype=torch.float64)
    y = torch.randint(0, c, (4, *spatial), generator=gen)
    return x, y


def test_monai_focal_mean_also_averages_over_the_classes() -> None:
    """MONAI FocalLoss(gamma=0, use_softmax=True) 'mean' is Σ w_y·l / (N·C·S): the cross
    entropy's mean divided by C, and not normalised by the targets' weights — its loss map
    keeps a class dim and 'mean' averages it too."""
    losses = pytest.importorskip("monai.losses")
    import torch

    for spatial in ((), (5,)):
        x, y = _inputs(spatial)
        w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        got = losses.FocalLoss(to_onehot_y=True, gamma=0.0, use_softmax=True, weight=w)(x, y.unsqueeze(1))
        terms = _ce_terms(x, y, w)
        assert float(got) == pytest.approx(float(terms.sum()) / (x.numel()), rel=1e-6)
        assert float(got) != pytest.approx(float(terms.sum() / w[y].sum()), rel=1e-3)


def test_monai_focal_sum_is_the_mean_without_spatial_dims_and_divides_by_them_with() -> None:
    """'sum' first averages over the spatial dims, then sums N and C: for [N, C] logits
    (no spatial dim to average) that is the full mean, so 'sum' returns the mean; with
    spatial dims it is Σ l / S."""
    losses = pytest.importorskip("monai.losses")

    x, y = _inputs(())
    got = losses.FocalLoss(to_onehot_y=True, gamma=0.0, use_softmax=True, reduction="sum")(x, y.unsqueeze(1))
    assert float(got) == pytest.approx(float(_ce_terms(x, y).sum()) / x.numel(), rel=1e-6)
    x, y = _inputs((5,))
    got = losses.FocalLoss(to_onehot_y=True, gamma=0.0, use_softmax=True, reduction="sum")(x, y.unsqueeze(1))
    assert float(got) == pytest.approx(float(_ce_terms(x, y).sum()) / 5, rel=1e-6)


def test_monai_returns_float32_whatever_the_input_dtype() -> None:
    """Both MONAI losses compute in float32 (FocalLoss casts with .float()): float64 and
    half inputs come back as float32 — `meta`'s finding; DiceCELoss's values are right."""
    losses = pytest.importorskip("monai.losses")
    import torch

    x, y = _inputs(())
    assert losses.FocalLoss(to_onehot_y=True, gamma=0.0, use_softmax=True)(x, y.unsqueeze(1)).dtype \
        == torch.float32
    half = losses.DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=0.0)(x.bfloat16(), y.unsqueeze(1))
    assert half.dtype == torch.float32
    exact = losses.DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=0.0)(x, y.unsqueeze(1))
    assert float(exact) == pytest.approx(float(_ce_terms(x, y).mean()), rel=1e-6)


def test_kornia_focal_mean_is_the_cross_entropy_mean_divided_by_c() -> None:
    """kornia's focal_loss(gamma=0, alpha=None) keeps a per-class map; 'mean' averages over
    N·C·S (its docstring says so: the mean cross entropy divided by C); 'sum' is exact."""
    losses = pytest.importorskip("kornia.losses")

    for spatial in ((), (5,)):
        x, y = _inputs(spatial)
        mean = losses.focal_loss(x, y, alpha=None, gamma=0.0, reduction="mean")
        total = losses.focal_loss(x, y, alpha=None, gamma=0.0, reduction="sum")
        terms = _ce_terms(x, y)
        assert float(mean) == pytest.approx(float(terms.sum()) / x.numel(), rel=1e-6)
        assert float(total) == pytest.approx(float(terms.sum()), rel=1e-6)
