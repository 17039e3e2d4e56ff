"""Every distinct defect, not the first: failures of one contender grouped into classes
by the kind of case that triggers them, each class shrunk to its own minimal case.

A Hypothesis search stops at its first counterexample, so a second defect stays hidden
until the first is fixed (smp's mean bug behind its shape bug; Liger's contiguity bug
behind its float32 precision). Here the checked cases are split per failing property by
`FEATURES`, greedily: the feature, pair of features or triple of what a mean divides by
that singles the failures out best (`classify`) becomes a class ("loss fails whenever
reduction='sum' with every target ignored"), its cases are set aside, and so on; failures
that no feature explains form one last class. Each class is then shrunk by a search
restricted to its feature (`shrink`), so two independent defects end on two minimal cases.

The covering cases every check starts from (`harness.problem.coverage.covering`: every
declared pair, and every triple of what a mean divides by) are what makes this possible:
each combination a defect may need is among the cases checked, with the cases around it
that pass. Tests: ``suites/harness/test_defects.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import HypothesisException, NoSuchExample

from harness.contenders import Contender
from harness.equivalence import properties as checks
from harness.problem import coverage, strategies
from harness.problem.capabilities import feature_tests
from harness.problem.case import Case

Feature = Callable[[Case], bool]
# The kinds of case each capability names (`harness.problem.capabilities`: a new one
# appears here without an edit), those no capability governs, then every value of every
# dimension of the contract (`harness.problem.coverage`: "every target ignored", "two
# classes", "one sample"), so that a class is named by the combination that triggers it.
_NAMED: dict[str, Feature] = {
    **feature_tests(),
    "large logits (|x| >= 100)": lambda c: c.scale >= 100,
}
# what a hang or a crash is named by (`harness.equivalence.isolation.kind_of`): the
# capabilities' kinds of case, not each value of each dimension
KIND_FEATURES = _NAMED
_VALUES = coverage.features()
FEATURES: dict[str, Feature] = {**_NAMED, **{name: test for name, (_, test) in _VALUES.items()
                                             if name not in _NAMED}}
# which dimension a feature is a value (or a set of values) of: two values of one dimension
# never meet, triples are tried among the values of `coverage.TRIAD` only, and a class's
# trigger is named by the feature that holds for exactly the values that fail (`characterize`)
DIMENSION_OF: dict[str, str] = {
    **{name: dim for name, (dim, _) in _VALUES.items()},
    "class weights": "weights", "ignored targets": "ignored", "half precision": "dtype",
    "float64": "dtype", "spatial dims": "rank", "non-contiguous logits": "layout",
    "more than 64 classes": "C",
}
# What comes back (`meta`) has one more: a loss computed in float32 returns float32 for
# float64 and half inputs alike. Among the value features it only matched generated cases
# by chance (it split the planted two-defect loss into three classes).
META_FEATURES: dict[str, Feature] = {**FEATURES, "a dtype other than float32": lambda c: c.dtype != "f32"}


@dataclass(frozen=True)
class DefectClass:
    """One distinct failure: ``props`` fail on the checked cases with ``feature``
    (``failing`` of ``total`` such cases; "" for the failures no feature explains), and
    ``minimal`` is the smallest case found that shows it, with what failed there."""

    props: tuple[str, ...]
    feature: str
    failing: int
    total: int
    example: Case
    minimal: Case
    detail: str
    outcome: str = ""  # a call that gave no verdict: its headline ("hangs on ...")

    @property
    def headline(self) -> str:
        if self.outcome:
            return self.outcome
        what = ", ".join(self.props) + (" fail" if len(self.props) > 1 else " fails")
        if not self.feature:
            return f"{what} on {self.failing} other cases"
        if self.feature == EVERY:
            return f"{what} on every case checked ({self.failing})"
        how = "whenever" if self.failing == self.total else "on cases with"
        return f"{what} {how} {self.feature} ({self.failing} of {self.total} such cases checked)"


PRECISION = 0.8  # share of a feature's checked cases that must fail for it to name a class


def classify(failed: list[Case], passed: list[Case],
             features: dict[str, Feature] = FEATURES) -> list[tuple[str, list[Case]]]:
    """``failed`` cases split into (feature, cases), greedily: the feature or pair of
    ``features`` that covers the most remaining failures among those that cover two or
    more, whose remaining cases fail at least `PRECISION` of the time (a defect can be
    invisible on a few: a sum equals its mean when the weights total 1) and more often than
    the remaining cases without it do (a feature nearly every case has explains nothing:
    63 of MONAI's 66 generated cases were spatial, and its mean defect read "spatial
    dims"); what none covers is one last group with feature ''. (Weighted relative accuracy
    instead of coverage read MONAI better but split a planted 'sum' defect into "sum with
    spatial dims": not kept.)"""
    if failed and not passed:  # nothing passed: no kind of case to single out
        return [(EVERY, list(failed))]
    candidates = _candidates(features)
    left, groups = list(failed), []
    while left:
        best, best_cases = None, []
        for name, test in candidates:
            covered = [c for c in left if test(c)]
            if len(covered) < 2 or len(covered) <= len(best_cases):
                continue  # one case is an example, not a kind of case
            spared = sum(map(test, passed))
            if len(covered) == len(left) and spared == len(passed):
                continue  # every case left has it: it singles nothing out ("batched input")
            precision = len(covered) / (len(covered) + spared)
            outside = (len(left) - len(covered), len(passed) - spared)  # (failed, passed)
            if precision >= PRECISION and (not sum(outside) or precision > outside[0] / sum(outside)):
                best, best_cases = name, covered
        if best is None:
            groups.append(("", left))
            break
        groups.append((best, best_cases))
        left = [c for c in left if c not in best_cases]
    return groups


def _candidates(features: dict[str, Feature] = FEATURES) -> list[tuple[str, Feature]]:
    """Single features first, then pairs, then the triples of what a mean divides by
    (`coverage.TRIAD`): with equal coverage the simpler explanation wins."""
    singles = list(features.items())
    pairs = [(f"{a} with {b}", lambda c, fa=fa, fb=fb: fa(c) and fb(c))
             for (a, fa), (b, fb) in itertools.combinations(singles, 2) if _apart(a, b)]
    triad = [(n, f) for n, f in singles if DIMENSION_OF.get(n) in coverage.TRIAD]
    triples = [(f"{a} with {b} with {c}", lambda k, fa=fa, fb=fb, fc=fc: fa(k) and fb(k) and fc(k))
               for (a, fa), (b, fb), (c, fc) in itertools.combinations(triad, 3)
               if _apart(a, b) and _apart(a, c) and _apart(b, c)]
    return singles + pairs + triples


def _apart(a: str, b: str) -> bool:
    """Whether two features may hold together: not two values of one dimension."""
    return DIMENSION_OF.get(a) is None or DIMENSION_OF.get(a) != DIMENSION_OF.get(b)


SHRINK = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                  phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))


def shrink(contender: Contender, within: Feature, example: Case,
           fails: Callable[[Case], str | None]) -> tuple[Case, str]:
    """The smallest case ``within`` the class (its feature, and none of the features of
    the classes found before it) that ``fails`` (which returns what failed, None on a
    pass), or ``example`` when the search finds nothing smaller. A class whose example
    timed out is not searched: each try would cost the whole time limit."""
    detail = fails(example) or ""
    if "CallTimeout" in detail:
        return example, detail
    strategy = strategies.for_contender(contender).filter(within)
    try:
        case = find(strategy, lambda c: fails(c) is not None, settings=SHRINK)
    except (NoSuchExample, HypothesisException):  # nothing found: the example stands
        return example, detail
    return case, fails(case) or ""


EVERY = "any case"  # the class of a contender that fails everything


# Findings about what comes back (dtype, shape, device: `meta`) are grouped apart from
# findings about the values, each family with the features that may name its classes:
# MONAI's float32 output on float64 and half inputs otherwise joined its reduction defects
# into classes named by neither.
META_PROPERTIES = ("meta",)


def property_families(properties: tuple[str, ...] | None = None) -> tuple[tuple[tuple[str, ...], dict], ...]:
    """(properties, features) per family, derived from ``properties``: `meta` apart, every
    other property — a new one too, with no edit here — a finding about the values
    (`suites/harness/test_defects.py`)."""
    if properties is None:
        properties = checks.PROPERTIES  # read now: a property added since import is included
    values = tuple(p for p in properties if p not in META_PROPERTIES)
    metas = tuple(p for p in properties if p in META_PROPERTIES)
    return tuple((props, features) for props, features in ((values, FEATURES), (metas, META_FEATURES))
                 if props)



def distinct_defects(contender: Contender, results: list[tuple[Case, dict]],
                     fails: Callable[[Case, tuple[str, ...]], str | None]) -> list[DefectClass]:
    """The defect classes of ``contender`` from its checked ``results`` (case, verdicts
    by property), each shrunk: ``fails(case, props)`` re-checks one case on those
    properties and says what failed. One defect usually fails several value properties at
    once (a sum that returns the mean fails loss and gradient, and nonfinite where all
    targets are ignored), so cases are grouped by whether any of them fails, each class
    naming the properties that fail in it; `meta` is grouped on its own
    (`property_families`)."""
    out: list[DefectClass] = []
    present = list(results[0][1]) if results else []
    for family_props, features in property_families():
        props = tuple(p for p in family_props if p in present)
        if props:
            out += _classes(contender, results, props, features, fails)
    return out


def _classes(contender: Contender, results: list[tuple[Case, dict]], props: tuple[str, ...],
             features: dict[str, Feature],
             fails: Callable[[Case, tuple[str, ...]], str | None]) -> list[DefectClass]:
    failed = [c for c, v in results if not all(v[p].ok for p in props)]
    # a pass that compared nothing (an all-ignored mean is NaN: no loss to compare) is
    # no evidence that the defect spares that kind of case
    passed = [c for c, v in results if all(v[p].ok for p in props)
              and ("loss" not in props or v["loss"].compared)]
    verdicts = dict(results)
    out: list[tuple[DefectClass, frozenset | None]] = []
    earlier: list[Feature] = []
    named = dict(_candidates(features))
    for feature, cases in classify(failed, passed, features):
        test = named.get(feature, lambda c: True)  # '' and EVERY: no feature to name
        failing_props = tuple(p for p in props if any(not verdicts[c][p].ok for c in cases))
        total = sum(1 for c, _ in results if test(c)) if feature else len(cases)
        failing = sum(1 for c in failed if test(c)) if feature else len(cases)

        def within(c: Case, test=test, before=tuple(earlier)) -> bool:
            return test(c) and not any(f(c) for f in before)

        minimal, detail = shrink(contender, within, cases[0],
                                 lambda c, ps=failing_props: fails(c, ps))
        earlier.append(test)
        # isolated on the minimal case, else on the class's first checked case (a shrunk
        # case can be too small to show a value: with one position per class every class
        # weight is 1, and the trigger then names no checked case)
        for start in dict.fromkeys((minimal, cases[0])):
            trigger = characterize(contender, start, lambda c, ps=failing_props: fails(c, ps))
            if trigger is not None and any(trigger[1](c) for c in failed):
                feature, test = trigger
                total = sum(1 for c, _ in results if test(c))
                failing = sum(1 for c in failed if test(c))
                break
        found = DefectClass(failing_props, feature, failing, total, cases[0], minimal, detail)
        _add(out, found, frozenset(i for i, (c, _) in enumerate(results) if test(c)) if feature else None)
    return [d for d, _ in out]


def _add(out: list, found: DefectClass, cases: frozenset | None) -> None:
    """``found`` among the classes so far, each with the checked cases its trigger names:
    one the grouping had split off a class already found (its cases among that class's)
    is dropped, and one that names more of the same replaces it ("reduction='sum' with
    class weights" over "... with class weights 'random'")."""
    if cases:
        for i, (_, theirs) in enumerate(out):
            if theirs and cases <= theirs:
                return
            if theirs and theirs <= cases:
                out[i] = (found, cases)
                return
    out.append((found, cases))


SHRINKING = ("batch", "rank")  # dimensions whose other values have fewer positions


def characterize(contender: Contender, case: Case,
                 fails: Callable[[Case], str | None]) -> tuple[str, Feature] | None:
    """The values of ``case`` that its failure needs, one dimension at a time: ``case``
    with each other value the contender declares (`coverage.vary`). A dimension is part
    of the trigger when its plain value (the base case's: 'mean', no weights, float32…)
    passes where ``case``'s fails; a value that passes for its own reasons (a 1 % error
    inside bfloat16's tolerance, a weight of 0 on the class that goes wrong, an all-ignored
    mean with nothing to compare) does not make a dimension part of it. Each part is named
    by the feature that best matches the values that fail, the narrower of equals ("every
    target ignored", "class weights"). The trigger's words and its test
    ("reduction='sum' with every target ignored"), or None when no change makes it pass
    (a trigger outside the dimensions: large logits)."""
    declared = coverage.declared(contender)
    plain = coverage.plain_values(contender)
    parts: list[tuple[str, Feature]] = []
    for dim in coverage.DIMENSIONS:
        current = dim.value_of(case)
        variants = {current: case}
        for value in declared[dim.name]:
            if value != current and (other := coverage.vary(contender, case, dim.name, value)):
                variants[value] = other
        if len(variants) < 2:
            continue
        failing = {current} | {v for v, c in variants.items() if v != current and fails(c)}
        passing = set(variants) - failing
        # on the plain value: part of it when every other value (two at least) passes,
        # except where the others shrink the case (a batch of one, no spatial dims): a
        # 'sum' that returns the mean is right on one position
        needed = (plain[dim.name] in passing if current != plain[dim.name]
                  else dim.name not in SHRINKING and len(variants) > 2
                  and passing == set(variants) - {current})
        if needed:
            parts.append(_named(dim, current, failing, variants, plain[dim.name]))
    if not parts:
        return None
    return " with ".join(n for n, _ in parts), lambda c: all(test(c) for _, test in parts)


def _named(dim, current: str, failing: set[str], variants: dict[str, Case],
           plain: str) -> tuple[str, Feature]:
    """The feature of ``dim`` that holds on ``current`` (and not on the plain value, when
    that passes) and agrees best with the ``failing`` values among ``variants``; of equals,
    one value's words ("every target ignored" over "ignored targets" when 'some' could not
    be tried): the claim no wider than what was seen."""
    best, score = None, (-1.0, False)
    for name, test in FEATURES.items():
        if DIMENSION_OF.get(name) != dim.name:
            continue
        holds = {v for v, c in variants.items() if test(c)}
        if current not in holds or (plain != current and plain in holds and plain not in failing):
            continue
        agreement = (len(holds & failing) / len(holds | failing), name in _VALUES)
        if agreement > score:
            best, score = (name, test), agreement
    return best or (dim.words(current), lambda c, d=dim, v=current: d.value_of(c) == v)
