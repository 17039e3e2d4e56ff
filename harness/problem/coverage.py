"""What kinds of case a run reached, per contender, along each dimension of the contract,
and the cases that guarantee it (issue 23).

The contract grew (soft targets, unbatched inputs, masked logits) while a property test
kept its example budget, so what one run covered came down to luck in the draw: a loss 1 %
off on 3-D inputs passed all five property tests of a ``ci`` run. Here:

* `DIMENSIONS`: family, spatial rank (0–3), batched or not, dtype, reduction, weight
  scheme (the seed's, whose weights go negative, and ``onehot``, whose are zero, included),
  ignored share, smoothing, probability targets, masked logits, layout and the regime of C;
* `declared(contender)`: the values of each that the contender declares it handles (its
  family and `Capabilities`);
* `stratified(contender)`: one small case per declared value, built from one base case;
  the equivalence suite runs them first (`harness.equivalence.runner.property_search`,
  as explicit examples) and `check` beside its option grid, so that every declared value
  is reached whatever the draw;
* `not_reached(contender, cases)`: the declared values no case had, as "dimension=value";
  the suite fails a property test that leaves one, and `check` prints them.

Compiled contenders are checked on their compile signatures only (a compile per case
would be a minute each); their guarantee is those signatures'. Tests:
``suites/harness/test_coverage.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.problem.case import Case, CaseError
from harness.problem.families import family
from harness.problem.weights import NEGATIVE_WEIGHT_SCHEMES, SCHEMES, is_defined

MAX_RANK = 3  # the ranks the guarantee covers: a point, a sequence, an image, a volume


def _c_regime(c: int) -> str:
    if c == 2:
        return "2"
    if c <= 64:
        return "3-64"
    return "65-1024" if c <= 1024 else ">1024"


C_EXAMPLES = {"2": 2, "3-64": 5, "65-1024": 100, ">1024": 1025}


def _ignored(case: Case) -> str:
    if not case.ignore_frac:
        return "none"
    return "all" if case.ignore_frac >= 1 else "some"


@dataclass(frozen=True)
class Dimension:
    """One way cases differ: ``value_of(case)``; ``values(contender)`` the values it
    declares; ``example(value)`` the fields that give the base case that value."""

    name: str
    value_of: Callable[[Case], str]
    values: Callable[[object], tuple[str, ...]]
    example: Callable[[str], dict]


def _caps(contender):
    return contender.caps


def _fam(contender):
    return family(contender.family)


def _rank_values(c) -> tuple[str, ...]:
    return tuple(str(r) for r in sorted(_caps(c).spatial_dims) if r <= MAX_RANK)


def _rank_example(value: str) -> dict:
    return {"spatial": (2, 3, 4)[: int(value)] if value != "1" else (4,)}


def _batched_values(c) -> tuple[str, ...]:
    return ("batched", "unbatched") if _fam(c).unbatched and _caps(c).unbatched else ("batched",)


def _batched_example(value: str) -> dict:
    return {} if value == "batched" else {"batched": False, "n": 1, "spatial": ()}


def _weight_values(c) -> tuple[str, ...]:
    caps = _caps(c)
    if not caps.weights:
        return ("none",)
    return tuple(s for s in SCHEMES if caps.negative_weights or s not in NEGATIVE_WEIGHT_SCHEMES)


def _ignored_values(c) -> tuple[str, ...]:
    return ("none", "some", "all") if _fam(c).ignore_index and _caps(c).ignore_index else ("none",)


def _smoothing_values(c) -> tuple[str, ...]:
    return ("0", ">0") if _fam(c).label_smoothing and _caps(c).label_smoothing else ("0",)


def _soft_values(c) -> tuple[str, ...]:
    return ("hard", "soft") if _caps(c).soft_targets else ("hard",)


def _masked_values(c) -> tuple[str, ...]:
    return ("unmasked", "masked") if _fam(c).masked_logits and _caps(c).masked_logits else ("unmasked",)


def _c_values(c) -> tuple[str, ...]:
    fam = _fam(c)
    if fam.fixed_c is not None:
        return (_c_regime(fam.fixed_c + 1),)  # the binary family's one channel: two classes
    limit = _caps(c).max_classes
    return tuple(r for r, n in C_EXAMPLES.items() if limit is None or n <= limit)


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("family", lambda k: k.family, lambda c: (c.family,), lambda v: {}),
    Dimension("rank", lambda k: str(len(k.spatial)), _rank_values, _rank_example),
    Dimension("batched", lambda k: "batched" if k.batched else "unbatched", _batched_values,
              _batched_example),
    Dimension("dtype", lambda k: k.dtype, lambda c: tuple(d for d in ("f32", "f64", "bf16", "f16")
                                                          if d in _caps(c).dtypes),
              lambda v: {"dtype": v}),
    Dimension("reduction", lambda k: k.reduction,
              lambda c: tuple(r for r in ("mean", "sum", "none") if r in _caps(c).reductions),
              lambda v: {"reduction": v}),
    Dimension("weights", lambda k: k.weights, _weight_values, lambda v: {"weights": v}),
    Dimension("ignored", _ignored, _ignored_values,
              lambda v: {"ignore_frac": {"none": 0.0, "some": 0.25, "all": 1.0}[v]}),
    Dimension("smoothing", lambda k: ">0" if k.label_smoothing else "0", _smoothing_values,
              lambda v: {"label_smoothing": 0.1 if v == ">0" else 0.0}),
    Dimension("targets", lambda k: "soft" if k.soft else "hard", _soft_values,
              lambda v: {"soft": v == "soft"}),
    Dimension("masked", lambda k: "masked" if k.masked or k.masked_target else "unmasked",
              _masked_values, lambda v: {"masked": 0.5 if v == "masked" else 0.0}),
    Dimension("layout", lambda k: k.layout,
              lambda c: tuple(x for x in ("contiguous", "channels_last", "strided")
                              if x in _caps(c).layouts),
              lambda v: {"layout": v}),
    Dimension("C", lambda k: _c_regime(k.n_classes), _c_values, lambda v: {"c": C_EXAMPLES[v]}),
    # (a binary case's one logit channel is two classes: its base case reaches "2")
)


def declared(contender) -> dict[str, tuple[str, ...]]:
    """Each dimension's values that ``contender`` declares it handles."""
    return {d.name: d.values(contender) for d in DIMENSIONS}


def reached(cases) -> dict[str, set[str]]:
    return {d.name: {d.value_of(c) for c in cases} for d in DIMENSIONS}


def not_reached(contender, cases) -> list[str]:
    """"dimension=value" for each declared value that none of ``cases`` has."""
    seen = reached(cases)
    return [f"{name}={v}" for name, values in declared(contender).items()
            for v in values if v not in seen[name]]


def _base(contender) -> Case:
    fam = _fam(contender)
    dtype = "f32" if "f32" in _caps(contender).dtypes else sorted(_caps(contender).dtypes)[0]
    reduction = "mean" if "mean" in _caps(contender).reductions else sorted(_caps(contender).reductions)[0]
    return Case(n=2, c=fam.fixed_c or 3, spatial=(4,), p=0.5, dtype=dtype, reduction=reduction,
                family=contender.family, seed=1)


def stratified(contender) -> list[Case]:
    """One small case per declared value of every dimension (the base case, two samples of
    four positions, with that one field changed), each one the contender handles; a value
    no such case can hold is left to the draw (and shows in `not_reached`)."""
    base = _base(contender)
    out = [base] if not contender.case_gaps(base) else []
    for dim in DIMENSIONS:
        for value in dim.values(contender):
            if any(dim.value_of(c) == value for c in out):
                continue
            case = _first_valid(contender, base, dim.example(value))
            if case is not None:
                out.append(case)
    return out


# what else a value may need: two classes (the seed's weights), no class dim (an unbatched
# binary logit), targets with two dims (the seed's weights again)
_FALLBACKS = ({}, {"c": 2}, {"channel_dim": False}, {"c": 2, "spatial": (3, 4)})


def _first_valid(contender, base: Case, fields: dict) -> Case | None:
    for extra in _FALLBACKS:
        try:
            case = base.replace(**{**extra, **fields})
        except CaseError:
            continue
        defined = case.weights == "none" or is_defined(case.weights, n_classes=case.n_classes,
                                                       target_dims=len(case.target_shape))
        if defined and not contender.case_gaps(case):
            return case
    return None
