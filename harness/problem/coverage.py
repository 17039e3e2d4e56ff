"""What kinds of case a run reached, per contender, and the cases that guarantee it: every
pair of the values a contender declares, and every triple of the values that decide a
mean's denominator (issues 23 and 28).

Real cross-entropy defects live where two options meet ('none' with ignored targets in
fused kernels, weights with smoothing and ignore_index in PyTorch itself, an all-ignored
'sum'), and a property test's random draw reaches a given pair by luck. Here:

* `DIMENSIONS`: family, spatial rank (0–3), batch (two or more, one, unbatched), dtype,
  reduction, weight scheme (the seed's, whose weights go negative, and ``onehot``, whose
  are zero, included), ignored share, smoothing, probability targets, masked logits,
  layout and the regime of C;
* `declared(contender)`: the values of each that the contender declares it handles (its
  family and `Capabilities`); `interactions(contender)`: the pairs of those values (of two
  dimensions) that some valid case holds, and the triples of `TRIAD` (reduction × weight
  scheme × ignored share × targets: what a mean divides by);
* `covering(contender)`: a covering array of them (`covertable`, with the contract's
  constraints: what `Case` validation and the contender's capabilities exclude), one small
  case per row; the equivalence suite runs them first
  (`harness.equivalence.runner.property_search`, as explicit examples) and `check` before
  its seeded draw, so a suite pass and a `check` pass reach the same combinations;
* `reach(contender, cases)`: what the cases reached of it, and what they missed as
  "dimension=value", "a=x × b=y" and "a=x × b=y × c=z"; the suite fails a property test that
  misses one, and `check` prints it;
* `FEATURES`: each dimension's values as kinds of case the defect report may name a class
  after ("every target ignored", "two classes").

A compiled contender is checked on its compile signatures (a compile per case would be a
minute each). Its guarantee is what does not change the compiled graph: the pairs of
`VALUE_DIMENSIONS` (weight scheme, ignored share, masked logits) on one weighted
signature's shapes; `reach` says what its signatures reached of the rest.
Tests: ``suites/harness/test_coverage.py``."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from covertable import make as covering_array

from harness.problem.case import Case, CaseError
from harness.problem.families import family
from harness.problem.weights import NEGATIVE_WEIGHT_SCHEMES, SCHEMES

MAX_RANK = 3  # the ranks the guarantee covers: a point, a sequence, an image, a volume


def _c_regime(c: int) -> str:
    if c == 2:
        return "2"
    if c <= 64:
        return "3-64"
    return "65-1024" if c <= 1024 else ">1024"


C_EXAMPLES = {"2": 2, "3-64": 5, "65-1024": 100, ">1024": 1025}
C_WORDS = {"2": "two classes", "3-64": "3 to 64 classes", "65-1024": "65 to 1024 classes",
           ">1024": "more than 1024 classes"}


def _ignored(case: Case) -> str:
    """By the targets ignored, not the share asked for (a quarter of one target is none)."""
    if not case.n_ignored:
        return "none"
    return "all" if case.n_ignored >= case.positions else "some"


def _masked(case: Case) -> str:
    """By the logits masked: half of one other logit (two classes) rounds to none."""
    others = round(case.masked * (case.n_classes - 1)) if case.masked else 0
    return "masked" if others or case.masked_target else "unmasked"


@dataclass(frozen=True)
class Dimension:
    """One way cases differ: ``value_of(case)``; ``values(contender)`` the values it
    declares; ``example(value)`` the fields that give the base case that value;
    ``words(value)`` the kind of case in the defect report's words."""

    name: str
    value_of: Callable[[Case], str]
    values: Callable[[object], tuple[str, ...]]
    example: Callable[[str], dict]
    words: Callable[[str], str]
    every: tuple[str, ...]  # every value a case may have


def _caps(contender):
    return contender.caps


def _fam(contender):
    return family(contender.family)


def _rank_values(c) -> tuple[str, ...]:
    return tuple(str(r) for r in sorted(_caps(c).spatial_dims) if r <= MAX_RANK)


def _rank_example(value: str) -> dict:
    return {"spatial": (2, 3, 4)[: int(value)] if value != "1" else (4,)}


def _batch(case: Case) -> str:
    if not case.batched:
        return "unbatched"
    return "one" if case.n == 1 else ("empty" if case.n == 0 else "many")


def _batch_values(c) -> tuple[str, ...]:
    unbatched = ("unbatched",) if _fam(c).unbatched and _caps(c).unbatched else ()
    return ("many", "one", *unbatched)


_BATCH_EXAMPLES = {"many": {"batched": True, "n": 2}, "one": {"batched": True, "n": 1},
                   "unbatched": {"batched": False, "n": 1, "spatial": ()}}
_BATCH_WORDS = {"many": "a batch of two or more", "one": "a batch of one",
                "unbatched": "unbatched input", "empty": "an empty batch"}


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


_DTYPE_WORDS = {"f32": "float32 inputs", "f64": "float64 inputs", "bf16": "bfloat16 inputs",
                "f16": "float16 inputs"}

DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("family", lambda k: k.family, lambda c: (c.family,), lambda v: {},
              lambda v: f"{v} cases", ()),
    Dimension("rank", lambda k: str(len(k.spatial)), _rank_values, _rank_example,
              lambda v: "no spatial dims" if v == "0" else f"{v}-D spatial inputs",
              ("0", "1", "2", "3")),
    # one sample, batched or not: where fused kernels and wrappers special-case the batch
    Dimension("batch", _batch, _batch_values, _BATCH_EXAMPLES.__getitem__, _BATCH_WORDS.__getitem__,
              ("many", "one", "unbatched")),
    Dimension("dtype", lambda k: k.dtype, lambda c: tuple(d for d in ("f32", "f64", "bf16", "f16")
                                                          if d in _caps(c).dtypes),
              lambda v: {"dtype": v}, _DTYPE_WORDS.get, tuple(_DTYPE_WORDS)),
    Dimension("reduction", lambda k: k.reduction,
              lambda c: tuple(r for r in ("mean", "sum", "none") if r in _caps(c).reductions),
              lambda v: {"reduction": v}, lambda v: f"reduction={v!r}", ("mean", "sum", "none")),
    Dimension("weights", lambda k: k.weights, _weight_values, lambda v: {"weights": v},
              lambda v: "no class weights" if v == "none" else f"class weights {v!r}", SCHEMES),
    Dimension("ignored", _ignored, _ignored_values,
              lambda v: {"ignore_frac": {"none": 0.0, "some": 0.25, "all": 1.0}[v]},
              lambda v: {"none": "no target ignored", "some": "some targets ignored",
                         "all": "every target ignored"}[v], ("none", "some", "all")),
    Dimension("smoothing", lambda k: ">0" if k.label_smoothing else "0", _smoothing_values,
              lambda v: {"label_smoothing": 0.1 if v == ">0" else 0.0},
              lambda v: "label smoothing" if v == ">0" else "no label smoothing", ("0", ">0")),
    Dimension("targets", lambda k: "soft" if k.soft else "hard", _soft_values,
              lambda v: {"soft": v == "soft"},
              lambda v: "probability targets" if v == "soft" else "class-index targets", ("hard", "soft")),
    Dimension("masked", _masked,
              _masked_values, lambda v: {"masked": 0.5 if v == "masked" else 0.0},
              lambda v: "masked logits" if v == "masked" else "no masked logits",
              ("unmasked", "masked")),
    Dimension("layout", lambda k: k.layout,
              lambda c: tuple(x for x in ("contiguous", "channels_last", "strided")
                              if x in _caps(c).layouts),
              lambda v: {"layout": v}, lambda v: f"{v} logits",
              ("contiguous", "channels_last", "strided")),
    Dimension("C", lambda k: _c_regime(k.n_classes), _c_values, lambda v: {"c": C_EXAMPLES[v]},
              C_WORDS.get, tuple(C_EXAMPLES)),
    # (a binary case's one logit channel is two classes: its base case reaches "2")
)
BY_NAME = {d.name: d for d in DIMENSIONS}
ORDER = {d.name: i for i, d in enumerate(DIMENSIONS)}
# What a mean divides by: the reduction, the targets' weights, which targets count (ignored)
# and whether they are probabilities (a soft mean divides by N, not by the weights). Every
# triple of these is covered, not only every pair.
TRIAD = ("reduction", "weights", "ignored", "targets")
# What does not change a compiled graph's shapes or guards: a compiled contender's pairs.
VALUE_DIMENSIONS = ("weights", "ignored", "masked")

Value = tuple[str, str]              # (dimension, value)
Interaction = tuple[Value, ...]      # one value, a pair or a triple, in `DIMENSIONS` order


def declared(contender) -> dict[str, tuple[str, ...]]:
    """Each dimension's values that ``contender`` declares it handles."""
    return {d.name: d.values(contender) for d in DIMENSIONS}


def _label(interaction: Interaction) -> str:
    return " × ".join(f"{name}={value}" for name, value in interaction)


# ---- the cases: one base case, each dimension's example fields, the contract's checks ----

def _base(contender) -> Case:
    fam = _fam(contender)
    dtype = "f32" if "f32" in _caps(contender).dtypes else sorted(_caps(contender).dtypes)[0]
    reduction = "mean" if "mean" in _caps(contender).reductions else sorted(_caps(contender).reductions)[0]
    return Case(n=2, c=fam.fixed_c or 3, spatial=(4,), p=0.5, dtype=dtype, reduction=reduction,
                family=contender.family, seed=1)


def _compiled_base(contender) -> Case | None:
    """A weighted compile signature's case (sizes >= 2: dynamo specialises 0 and 1), or
    an unweighted one when the contender takes no weights."""
    from harness.problem.strategies import usable_signatures  # strategies imports this module

    usable = usable_signatures(_caps(contender))
    if not usable:
        return None
    dtype, reduction, _, smoothing, rank, layout = max(usable, key=lambda s: s[2])
    fam = _fam(contender)
    return Case(n=2, c=fam.fixed_c or 3, spatial=(2,) * rank, p=0.5, dtype=dtype,
                reduction=reduction, label_smoothing=smoothing, layout=layout,
                family=contender.family, seed=1)


# what else a value may need: two classes (the seed's weights), no class dim (an unbatched
# binary logit), targets with two dims (the seed's weights again)
_FALLBACKS = ({}, {"c": 2}, {"channel_dim": False}, {"c": 2, "spatial": (3, 4)})


class _Builder:
    """Rows (dimension → value) made cases: the base case with each value's example
    fields, the first of `_FALLBACKS` under them that gives a valid case holding exactly
    those values that the contender handles; None when none does (the contract excludes
    the combination). Memoised: the covering array asks the same rows often."""

    def __init__(self, contender, base: Case) -> None:
        self.contender, self.base = contender, base
        self.made: dict[tuple, Case | None] = {}

    def __call__(self, row: dict[str, str]) -> Case | None:
        key = tuple(sorted(row.items()))
        if key not in self.made:
            self.made[key] = self._build(row)
        return self.made[key]

    def _build(self, row: dict[str, str]) -> Case | None:
        fields: dict = {}
        for name, value in row.items():  # a value the base case has needs no change
            if BY_NAME[name].value_of(self.base) != value:
                fields.update(BY_NAME[name].example(value))
        return _made(self.contender, self.base, fields, row)


def _made(contender, start: Case, fields: dict, want: dict[str, str]) -> Case | None:
    """``start`` with ``fields``, over the first of `_FALLBACKS` that gives a valid case
    with exactly the values ``want`` asks that ``contender`` handles; None if none does."""
    for extra in _FALLBACKS:
        try:
            case = start.replace(**{**extra, **fields})
        except CaseError:
            continue
        if all(BY_NAME[n].value_of(case) == v for n, v in want.items()) and not contender.case_gaps(case):
            return case
    return None


def plain_values(contender) -> dict[str, str]:
    """Each dimension's value in the contender's base case: 'mean', no weights, float32…"""
    base = _base(contender)
    return {d.name: d.value_of(base) for d in DIMENSIONS}


def vary(contender, case: Case, dimension: str, value: str) -> Case | None:
    """``case`` with one dimension set to ``value`` and every other dimension's value kept
    (what isolates the values a failure needs, one at a time:
    `harness.equivalence.defects.characterize`); None where the contract allows no such case."""
    want = {d.name: d.value_of(case) for d in DIMENSIONS}
    want[dimension] = value
    return _made(contender, case, BY_NAME[dimension].example(value), want)


def _key(contender) -> tuple:
    return (contender.family, contender.caps, contender.compiled is not None)


@dataclass(frozen=True)
class Plan:
    """A contender's guarantee: the ``interactions`` it declares (values, pairs, triples
    that some valid case holds) and the ``cases`` of a covering array that reach them all."""

    interactions: frozenset[Interaction]
    cases: tuple[Case, ...]

    def count(self, size: int) -> int:
        return sum(1 for i in self.interactions if len(i) == size)


def plan(contender) -> Plan:
    """``contender``'s declared interactions and its covering cases (memoised per family,
    capabilities and compiled-or-not: the array takes about a second)."""
    return _plan(_Handle(contender))


@dataclass(frozen=True)
class _Handle:
    """Hashable by what decides the plan; carries the contender for its `case_gaps`."""

    contender: object

    def __hash__(self) -> int:
        return hash(_key(self.contender))

    def __eq__(self, other) -> bool:
        return isinstance(other, _Handle) and _key(self.contender) == _key(other.contender)


@functools.lru_cache(maxsize=64)
def _plan(handle: _Handle) -> Plan:
    contender = handle.contender
    values = declared(contender)
    if contender.compiled is not None:
        base = _compiled_base(contender)
        if base is None:
            return Plan(frozenset(), ())
        values = _compiled_values({n: values[n] for n in VALUE_DIMENSIONS})
    else:
        base = _base(contender)
    build = _Builder(contender, base)
    interactions = _feasible(values, build)
    rows = _rows(values, interactions, build,
                 _plain_rows(values, interactions, base) + _unmasked_rows(values, interactions, build))
    cases = tuple(dict.fromkeys(c for c in map(build, rows) if c is not None))
    return Plan(interactions, cases)


def _compiled_values(values: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """A compiled contender's value dimensions, on one side of weights' None-versus-tensor
    guard (the other side is another graph): the schemes when it takes weights."""
    weights = values["weights"]
    if len(weights) > 1:
        weights = tuple(v for v in weights if v != "none")
    return {**values, "weights": weights}


def _feasible(values: dict[str, tuple[str, ...]], build: _Builder) -> frozenset[Interaction]:
    """Every declared value, pair of values of two dimensions, and triple of `TRIAD`'s, that
    a valid case holds (the contract's constraints, found by building the case)."""
    names = [n for n in values if values[n]]
    out: set[Interaction] = set()
    for size, among in ((1, names), (2, [n for n in names if len(values[n]) > 1]),
                        (3, [n for n in TRIAD if n in names and len(values[n]) > 1])):
        for dims in itertools.combinations(among, size):
            for combo in itertools.product(*(values[d] for d in dims)):
                row = dict(zip(dims, combo, strict=True))
                if build(row) is not None:
                    out.add(tuple(row.items()))
    return frozenset(out)


def _plain_rows(values: dict[str, tuple[str, ...]], interactions: frozenset[Interaction],
                base: Case) -> list[dict[str, str]]:
    """One row per declared value, every other dimension at the base case's value where
    the pair allows it: each value also in its plainest company. In a covering array alone
    every float16 row met other rare values (a vocabulary, smoothing, an odd weight) whose
    error bounds are wide, and a loss 1 % off in float16 passed them all."""
    plain = {n: BY_NAME[n].value_of(base) for n in values}
    rows = []
    for name, vals in values.items():
        for value in vals:
            if value == plain[name] or len(vals) < 2:
                continue
            row = {name: value}
            for other in values:
                pair = tuple(sorted(((name, value), (other, plain[other])),
                                    key=lambda nv: ORDER[nv[0]]))
                if other != name and (len(values[other]) < 2 or pair in interactions):
                    row[other] = plain[other]
            rows.append(row)
    return [{n: plain[n] for n in values}, *rows]


# Values that can hide any other value's defect: a weight of 0 on most classes, every
# target ignored (a loss of 0, or NaN with nothing to compare).
HIDING = {"weights": ("onehot",), "ignored": ("all",)}


def _unmasked_rows(values: dict[str, tuple[str, ...]], interactions: frozenset[Interaction],
                   build: _Builder) -> list[dict[str, str]]:
    """Every pair once more away from the `HIDING` values: in one covering array a pair
    (bfloat16 with more than 1024 classes) can meet only 'onehot' weights, which zero its
    loss, and a defect there is invisible."""
    clean = {n: tuple(v for v in vals if v not in HIDING.get(n, ())) or vals
             for n, vals in values.items()}
    names = [n for n in clean if clean[n]]
    constraints = _pair_constraints(clean, names, interactions)
    return covering_array({n: list(clean[n]) for n in names}, strength=2, constraints=constraints)


def _pair_constraints(values: dict[str, tuple[str, ...]], names: list[str],
                      interactions: frozenset[Interaction]) -> list[dict]:
    constraints = []
    for a, b in itertools.combinations(names, 2):
        bad = {(x, y) for x in values[a] for y in values[b]
               if len(values[a]) > 1 and len(values[b]) > 1 and ((a, x), (b, y)) not in interactions}
        if bad:
            constraints.append({"operator": "fn", "requires": [a, b],
                                "evaluate": lambda r, a=a, b=b, bad=bad: (r[a], r[b]) not in bad})
    return constraints


def _rows(values: dict[str, tuple[str, ...]], interactions: frozenset[Interaction],
          build: _Builder, presets: list[dict[str, str]]) -> list[dict[str, str]]:
    """A covering array over ``values`` that starts from the ``presets`` rows: strength 2,
    strength 3 on `TRIAD` (covertable's sub-model), constrained by the infeasible pairs
    and by the whole row's validity."""
    names = [n for n in values if values[n]]
    constraints = _pair_constraints(values, names, interactions)
    triad = [n for n in TRIAD if n in names and len(values[n]) > 1]
    sub_models = [{"fields": triad, "strength": 3}] if len(triad) > 2 else []
    factors = {n: list(values[n]) for n in names}
    rows = covering_array(factors, strength=2, constraints=constraints, sub_models=sub_models,
                          presets=presets)
    if all(build(r) is not None for r in rows):
        return rows
    # a row that the pairs allow and the contract does not (a three-way exclusion): again,
    # with the whole row checked (covertable's forward checking: seconds, not a second)
    whole = {"operator": "fn", "requires": names,
             "evaluate": lambda r: build({n: r[n] for n in names}) is not None}
    return covering_array(factors, strength=2, constraints=[*constraints, whole],
                          sub_models=sub_models, presets=presets)


def covering(contender) -> list[Case]:
    """The cases that reach every declared interaction of ``contender`` (`plan`)."""
    return list(plan(contender).cases)


# ---- what a run reached ----------------------------------------------------------------

def _interactions_of(case: Case, dims: Iterable[str]) -> set[Interaction]:
    row = [(d, BY_NAME[d].value_of(case)) for d in dims]
    out: set[Interaction] = set()
    for size in (1, 2, 3):
        out.update(itertools.combinations(row, size))
    return out


@dataclass(frozen=True)
class Reach:
    """What ``cases`` cases reached of a contender's declared interactions: ``pairs`` and
    ``triples`` declared, and the ``missing`` ones in words ("a=x × b=y")."""

    cases: int
    values: int
    pairs: int
    triples: int
    missing: tuple[str, ...]

    def fields(self) -> dict:
        """Plain data (a pytest user property crosses from an xdist worker as it is)."""
        return {"cases": self.cases, "values": self.values, "pairs": self.pairs,
                "triples": self.triples, "missing": list(self.missing)}

    def line(self) -> str:
        got = f"{self.pairs} pairs" + (f", {self.triples} triples of {' × '.join(TRIAD)}"
                                       if self.triples else "") + f", in {self.cases} cases"
        if not self.missing and not self.pairs:  # one dimension varies (compiled_bce_logits)
            return f"every declared value reached ({self.values} values, no pair declared, " \
                f"in {self.cases} cases)"
        if not self.missing:
            return f"every declared pair reached ({got})"
        return f"not reached ({len(self.missing)} of {self.values + self.pairs + self.triples}): " + \
            ", ".join(self.missing)


def reach(contender, cases: Iterable[Case]) -> Reach:
    """What ``cases`` reached of ``contender``'s `plan`."""
    cases = list(cases)
    declared_ = plan(contender).interactions
    dims = [d.name for d in DIMENSIONS]
    seen: set[Interaction] = set()
    for case in cases:
        seen |= _interactions_of(case, dims)
    order = {d: i for i, d in enumerate(dims)}
    missing = sorted(declared_ - seen, key=lambda i: (len(i), [order[d] for d, _ in i], i))
    return Reach(len(cases), sum(1 for i in declared_ if len(i) == 1),
                 sum(1 for i in declared_ if len(i) == 2), sum(1 for i in declared_ if len(i) == 3),
                 tuple(map(_label, missing)))


def not_reached(contender, cases) -> list[str]:
    """The declared values, pairs and triples none of ``cases`` holds, in words."""
    return list(reach(contender, cases).missing)


# ---- the defect report's kinds of case ---------------------------------------------------

def features() -> dict[str, tuple[str, Callable[[Case], bool]]]:
    """Each value of each dimension as a kind of case: words → (dimension, test)."""
    return {dim.words(value): (dim.name, lambda c, d=dim, v=value: d.value_of(c) == v)
            for dim in DIMENSIONS for value in dim.every}
