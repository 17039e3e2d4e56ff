"""The case model: ids that read back, tensors that are deterministic and exact.

`Case.from_id(case.id) == case` is what makes an id a reproduction handle; `make_inputs`
must give the same bits for the same seed and realise `case.class_counts()` exactly (not in
expectation), or a rare class could silently vanish from a case that claims to have it.
"""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.problem import strategies
from harness.problem.case import LAYOUTS, Case, CaseError, class_shares
from harness.problem.inputs import Inputs, make_inputs

FAST = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))
ANY_CASE = st.one_of(strategies.cases(), strategies.cases(family="binary"))


# ---- helpers ---------------------------------------------------------------------------
def bits(t: torch.Tensor | None) -> torch.Tensor | None:
    """Contiguous integer view, so equality is bit-for-bit (also for NaN and -0.0)."""
    if t is None:
        return None
    c = t.detach().contiguous()
    if c.is_floating_point():
        return c.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[c.element_size()])
    return c


def same_bits(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(bits(a), bits(b))


def realised_counts(inputs: Inputs) -> tuple[tuple[int, ...], int]:
    """(count of each class among non-ignored targets, count of ignored targets)."""
    case = inputs.case
    target = inputs.target
    if case.soft:  # the hard label dominates: 0.7 of the mass (harness.problem.inputs.soften)
        target = (target.argmax(1 if target.dim() > 1 else 0) if case.spec.index_targets
                  else target.round())
    flat = target.reshape(-1)
    if flat.is_floating_point():
        flat = flat.long()
    ignored = flat == case.ignore_index if case.family == "multiclass" else torch.zeros_like(
        flat, dtype=torch.bool)
    counts = torch.bincount(flat[~ignored], minlength=case.n_classes)
    return tuple(counts.tolist()), int(ignored.sum())


# ---- ids -------------------------------------------------------------------------------
@FAST
@given(case=ANY_CASE)
def test_generated_ids_read_back(case: Case) -> None:
    assert Case.from_id(case.id) == case
    assert Case.from_id(case.id).id == case.id
    assert eval(repr(case), {"Case": Case}) == case


@pytest.mark.parametrize("case", [
    Case(n=2, c=3, p=1e-6),
    Case(n=2, c=3, p=1e-300, label_smoothing=5e-324),
    Case(n=2, c=3, ignore_index=-1, ignore_frac=0.5),
    Case(n=2, c=3, ignore_index=-7, ignore_frac=1.0),
    Case(n=2, c=3, ignore_index=3),
    Case(n=2, c=3, scale=1e4),
    Case(n=2, c=3, scale=1.5e-5),
    Case(n=2, c=3, scale=1e20),
    Case(n=1, c=2, spatial=(7,)),
    Case(n=1, c=2, spatial=(2, 3, 4), layout="channels_last"),
    Case(n=0, c=2, reduction="none"),
    Case(n=3, c=1, family="binary", p=0.05),
    Case(n=3, c=1, family="binary", channel_dim=False, spatial=(4, 4), layout="strided"),
    Case(n=8, c=2, spatial=(512, 512), p=0.05, weights="inverse_freq", seed=2**40),
    Case(n=2, c=4, label_smoothing=1.0, dtype="bf16", reduction="sum", weights="random"),
    Case(n=1, c=5, batched=False, reduction="none", layout="strided"),
    Case(n=1, c=1, family="binary", channel_dim=False, batched=False, soft=True),
    Case(n=2, c=7, spatial=(3,), masked=0.5, masked_target=True, reduction="mean"),
    Case(n=2, c=7, masked=1e-05),
    Case(n=2, c=7, masked_target=True, ignore_index=0, ignore_frac=0.25),
], ids=lambda c: c.id)
def test_tricky_ids_read_back(case: Case) -> None:
    assert Case.from_id(case.id) == case


def test_id_format_is_readable() -> None:
    case = Case(n=8, c=2, spatial=(512, 512), p=0.05, weights="inverse_freq")
    assert case.id == "n8-c2-512x512-p0.05-f32-mean-winverse_freq"
    assert Case(n=4, c=3, p=1e-6, ignore_index=-1, ignore_frac=0.25).id == \
        "n4-c3-p1e-06-f32-mean-ig0.25-ii-1"
    assert Case(n=1, c=1, family="binary").id.startswith("bin-")
    assert Case(n=1, c=1, family="binary", channel_dim=False).id.startswith("bin1-")


def test_spatial_as_list_equals_tuple() -> None:
    assert Case(n=1, c=2, spatial=[3, 4]) == Case(n=1, c=2, spatial=(3, 4))
    assert Case.from_id(Case(n=1, c=2, spatial=[3, 4]).id) == Case(n=1, c=2, spatial=[3, 4])


# ---- invalid cases ---------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "says"), [
    ({"n": -1}, "batch n must be >= 0"),
    ({"c": 1}, "needs c >= 2"),
    ({"p": 1.5}, "must be in [0, 1]"),
    ({"p": float("nan")}, "must be in [0, 1]"),
    ({"dtype": "f8"}, "dtype must be one of"),
    ({"reduction": "avg"}, "reduction must be one of"),
    ({"label_smoothing": 1.5}, "label_smoothing must be in [0, 1]"),
    ({"ignore_frac": -0.1}, "ignore_frac must be in [0, 1]"),
    ({"c": 2, "p": 0.0, "ignore_index": 0}, "every target would be ignored"),
    ({"scale": 0.0}, "scale must be a positive finite number"),
    ({"scale": float("inf")}, "scale must be a positive finite number"),
    ({"layout": "weird"}, "layout must be one of"),
    ({"spatial": (4, 0)}, "spatial must hold 0 to 5 sizes >= 1"),
    ({"spatial": (2, 2, 2, 2, 2, 2)}, "spatial must hold 0 to 5 sizes >= 1"),
    ({"family": "binary"}, "use c=1"),
    ({"family": "binary", "c": 1, "label_smoothing": 0.1}, "set it to 0"),
    ({"family": "binary", "c": 1, "ignore_frac": 0.5}, "set ignore_frac to 0"),
    ({"family": "multilabel"}, "family must be"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"n": 2.5}, "n must be an int"),
    ({"weights": "bogus"}, "weights must be one of"),
    ({"c": 3, "spatial": (4,), "weights": "seed_inverse_freq"}, "use another scheme"),
    ({"weights": "seed_inverse_freq"}, "use another scheme"),
    ({"batched": False}, "set n=1 and spatial=()"),
    ({"n": 1, "spatial": (3,), "batched": False}, "set n=1 and spatial=()"),
    ({"n": 1, "batched": False, "layout": "channels_last"}, "no channels-last form"),
    ({"family": "binary", "c": 1, "n": 1, "batched": False}, "set channel_dim=False"),
    ({"family": "binary", "c": 1, "n": 1, "batched": False, "channel_dim": False,
      "layout": "strided"}, "use contiguous"),
    ({"masked": 1.0}, "must be in [0, 1)"),
    ({"masked": 0.5, "soft": True}, "set soft=False"),
    ({"masked_target": True, "ignore_frac": 1.0}, "needs a position whose target is not ignored"),
    ({"family": "binary", "c": 1, "masked": 0.5}, "no masked logits"),
])
def test_invalid_case_says_what_to_fix(fields: dict, says: str) -> None:
    with pytest.raises(CaseError, match="invalid case") as info:
        Case(**{"n": 2, "c": 2, **fields})
    assert says in str(info.value)


@pytest.mark.parametrize(("case_id", "says"), [
    ("n2-c3-qq-f32", "cannot read token 'qq'"),
    ("n2-cX-p0.5", "cannot read token 'cX'"),
    ("c3-p0.5-f32-mean", "lacks the n<batch> and c<classes>"),
    ("n2-c3-p7", "must be in [0, 1]"),
])
def test_bad_id_raises_case_error(case_id: str, says: str) -> None:
    with pytest.raises(CaseError) as info:
        Case.from_id(case_id)
    assert says in str(info.value)


@pytest.mark.parametrize(("case_id", "says"), [
    # a misspelt word would be read as a prefix and a value ('m' and 'aen'): named as the word
    ("n8-c2-p0.5-f32-maen", ["token 'maen' (did you mean 'mean'?)", "m<share> is the share"]),
    ("n2-c3-bf16-sun", ["token 'sun' (did you mean 'sum'?)"]),
    ("n2-c3-winverse_freqq", ["(did you mean 'winverse_freq'?)", "wbalanced, wsqrt_inv_freq"]),
    ("n2-c3-wfoo", ["token 'wfoo': w<scheme> is a class-weighting scheme: winverse_freq"]),
    ("n2-c3-512x51a", ["token '512x51a': <sizes> is the spatial sizes"]),
    ("n2-c3-pp", ["token 'pp': p<share> is the rarest class's share"]),
    ("n2-c3-f8", ["token 'f8': no such token; the tokens are bin|bin1 n<batch> c<classes>",
                  "f64|f32|bf16|f16 mean|sum|none"]),
])
def test_a_bad_token_is_named_with_what_it_takes_in_one_line(case_id: str, says: list[str]) -> None:
    with pytest.raises(CaseError) as info:
        Case.from_id(case_id)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"case id {case_id!r}: cannot read token")
    assert all(part in message for part in says), message
    assert message.endswith("(the tokens of an id: docs/correctness.md#case-ids)")


def test_every_token_has_a_row_in_the_documented_table() -> None:
    """docs/correctness.md's table of tokens, which `bench --help` and every error on an id
    point to, has each token the reader knows (a new field's token goes into both)."""
    from pathlib import Path

    from harness.problem.case import ID_DOC, token_forms

    doc, anchor = ID_DOC.split("#")
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    section = text.split("### Case ids", 1)[1].split("\n#", 1)[0]
    rows = {line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| `")}
    documented = {code for row in rows for code in re.findall(r"`([^`]+)`", row)}
    assert anchor == "case-ids"
    missing = [form for form in token_forms() for word in form.split("|") if word not in documented]
    assert not missing, (missing, sorted(documented))


# ---- class counts ----------------------------------------------------------------------
@FAST
@given(case=ANY_CASE)
def test_realised_counts_equal_the_case(case: Case) -> None:
    counts, ignored = realised_counts(make_inputs(case))
    assert counts == case.class_counts()
    assert ignored == case.n_ignored
    assert sum(counts) + ignored == case.positions
    total = case.positions - case.n_ignored
    shares = class_shares(case.n_classes, case.p)
    if (k := case.ignored_class) is not None:  # an in-range ignore_index: its class is left out
        assert counts[k] == 0
        kept = sum(s for i, s in enumerate(shares) if i != k)
        shares = [0.0 if i == k else s / kept for i, s in enumerate(shares)]
    for count, share in zip(counts, shares, strict=True):
        assert abs(count - share * total) <= 2  # apportioned, not sampled
    if case.p == 0:
        assert counts[-1] == 0
    elif total and case.ignored_class != case.c - 1:
        assert counts[-1] >= 1


@pytest.mark.parametrize(("case_id", "want"), [
    ("n4-c2-4x4-p0-f32-mean", (64, 0)),                       # p = 0: rare class absent
    ("n4-c5-4x4-p0-f32-mean", None),
    ("n4-c2-4x4-p1e-06-f32-mean", (63, 1)),                   # p = 1e-6: a single target
    ("n8-c7-3x3-p1e-06-f32-mean", None),
    ("n4-c2-4x4-p1-f32-mean", (0, 64)),                       # p = 1: only the rare class
    ("n4-c3-4x4-p0.5-f32-mean-ig1", (0, 0, 0)),               # everything ignored
    ("n4-c3-4x4-p0.5-f32-mean-ig0.25-ii-1", None),
    ("n4-c3-4x4-p0.5-f32-mean-ig0.25-ii0", (0, 12, 36)),      # class 0 ignored as background
    ("n4-c3-4x4-p0.5-f32-mean-ig0.25-ii255", None),           # a label outside the classes
    ("bin-n4-c1-4x4-p1e-06-f16-sum", (63, 1)),
    ("bin1-n2-c1-8-p0-f32-mean", (16, 0)),
])
def test_extreme_frequencies_are_exact(case_id: str, want: tuple[int, ...] | None) -> None:
    case = Case.from_id(case_id)
    counts, ignored = realised_counts(make_inputs(case))
    assert counts == case.class_counts()
    assert ignored == case.n_ignored
    if want is not None:
        assert counts == want
    if case.p == 1e-6:
        assert counts[-1] == 1
    if case.p == 0:
        assert counts[-1] == 0
    if case.ignore_frac == 1:
        assert ignored == case.positions


# ---- determinism -----------------------------------------------------------------------
def assert_same_inputs(a: Inputs, b: Inputs) -> None:
    for name in ("logits", "target", "weight", "grad_out"):
        assert same_bits(getattr(a, name), getattr(b, name)), f"{name} differs"


@FAST
@given(case=ANY_CASE)
def test_make_inputs_is_deterministic(case: Case) -> None:
    assert_same_inputs(make_inputs(case), make_inputs(Case.from_id(case.id)))


def test_seed_changes_the_tensors() -> None:
    a = make_inputs(Case(n=4, c=5, spatial=(3,), seed=1))
    b = make_inputs(Case(n=4, c=5, spatial=(3,), seed=2))
    assert not torch.equal(a.logits, b.logits)
    assert not torch.equal(a.target, b.target)


def test_tensor_dtypes_and_shapes() -> None:
    case = Case(n=3, c=4, spatial=(2, 5), dtype="bf16", weights="random", reduction="none")
    inputs = make_inputs(case)
    assert inputs.logits.dtype == torch.bfloat16 and inputs.logits.shape == (3, 4, 2, 5)
    assert inputs.target.dtype == torch.int64 and inputs.target.shape == (3, 2, 5)
    assert inputs.weight.dtype == torch.bfloat16 and inputs.weight.shape == (4,)
    assert inputs.grad_out.shape == (3, 2, 5)
    assert make_inputs(case.replace(reduction="mean")).grad_out.shape == ()


def test_large_scale_stays_finite_in_half_precision() -> None:
    inputs = make_inputs(Case(n=8, c=6, p=0.5, dtype="f16", scale=1e4))
    assert bool(torch.isfinite(inputs.logits).all())
    assert float(inputs.logits.abs().max()) > 1e4  # saturated/overflow regime is reached


# ---- layouts ---------------------------------------------------------------------------
def assert_layout(x: torch.Tensor, layout: str) -> None:
    if layout == "contiguous":
        assert x.is_contiguous()
    elif layout == "strided":
        assert x.numel() <= 1 or not x.is_contiguous()
    elif x.dim() == 2:
        assert x.shape[0] <= 1 or x.stride(0) == 1  # [N, C]: stored transposed
    else:
        assert x.shape[1] <= 1 or x.stride(1) == 1  # classes innermost
        if x.dim() == 4:
            assert x.is_contiguous(memory_format=torch.channels_last)
        if x.dim() == 5:
            assert x.is_contiguous(memory_format=torch.channels_last_3d)


@FAST
@given(case=ANY_CASE)
def test_layouts_hold_identical_values(case: Case) -> None:
    base = make_inputs(case.replace(layout="contiguous"))
    for layout in LAYOUTS:
        try:  # [N] binary logits have no channels-last form, a 0-d logit no other layout
            other = make_inputs(case.replace(layout=layout))
        except CaseError:
            continue
        assert_layout(other.logits, layout)
        assert_same_inputs(base, Inputs(base.case, other.logits.contiguous(), other.target,
                                        other.weight, other.grad_out))


@pytest.mark.parametrize("spatial", [(), (5,), (3, 4), (2, 3, 4)])
def test_each_layout_differs_in_memory(spatial: tuple[int, ...]) -> None:
    case = Case(n=3, c=4, spatial=spatial)
    strides = {layout: make_inputs(case.replace(layout=layout)).logits.stride()
               for layout in LAYOUTS}
    assert len(set(strides.values())) == 3, strides
    for layout in LAYOUTS:
        assert_layout(make_inputs(case.replace(layout=layout)).logits, layout)


# ---- unbatched and masked inputs -------------------------------------------------------
def test_unbatched_case_is_one_vector_and_a_scalar_target() -> None:
    case = Case.from_id("n1-c6-p0.5-f32-none-unbatched")
    inputs = make_inputs(case)
    assert not case.batched and case.positions == 1
    assert tuple(inputs.logits.shape) == (6,) and tuple(inputs.target.shape) == ()
    assert tuple(inputs.grad_out.shape) == ()  # the 'none' loss of one sample is 0-d


@pytest.mark.parametrize("case_id", [
    "n4-c9-3-p0.5-f32-sum-m0.5",
    "n3-c5-2x2-p0.2-f64-mean-ig0.25-ii0-m0.9-mt-cl",
    "n1-c4-p0.5-f32-none-unbatched-m0.9-mt",
    "n2-c2-p0.5-f32-mean-m0.9-mt",
])
def test_masks_spare_the_target_and_leave_a_finite_logit(case_id: str) -> None:
    """Every position has round(masked·(C-1)) of its other classes at -inf; with
    ``masked_target`` one position's own target is -inf too, and every row keeps a
    finite logit (an all -inf row has no softmax)."""
    case = Case.from_id(case_id)
    inputs = make_inputs(case)
    x = inputs.logits.reshape(1, case.c) if not case.batched else inputs.logits.movedim(1, -1)
    rows, y = x.reshape(-1, case.c), inputs.target.reshape(-1)
    masked = torch.isneginf(rows)
    assert not bool(torch.isnan(rows).any() or torch.isposinf(rows).any())
    assert bool((~masked).any(1).all()), "a row of -inf logits only"
    valid = (y != case.ignore_index) & (y >= 0) & (y < case.c)
    on_target = masked[valid.nonzero()[:, 0], y[valid]]
    assert int(on_target.sum()) == int(case.masked_target)
    others = masked.sum(1) - (masked.gather(1, y.clamp(0, case.c - 1)[:, None])[:, 0] & valid).long()
    k = round(case.masked * (case.c - 1))
    assert bool(((others == k) | (others == min(k, case.c - 2))).all())


def test_masking_leaves_unmasked_cases_unchanged() -> None:
    """The mask is drawn after every other tensor: the finite logits, targets and weights
    of a masked case are those of the same case unmasked."""
    plain = make_inputs(Case.from_id("n4-c6-3-p0.3-f32-mean-wrandom"))
    masked = make_inputs(Case.from_id("n4-c6-3-p0.3-f32-mean-wrandom-m0.5-mt"))
    keep = torch.isfinite(masked.logits)
    assert torch.equal(plain.logits[keep], masked.logits[keep])
    assert torch.equal(plain.target, masked.target) and torch.equal(plain.weight, masked.weight)
