"""Every distinct defect, not the first: failures of one contender grouped into classes
by the kind of case that triggers them, each class shrunk to its own minimal case.

A Hypothesis search stops at its first counterexample, so a second defect stays hidden
until the first is fixed (smp's mean bug behind its shape bug; Liger's contiguity bug
behind its float32 precision). Here the checked cases are split per failing property by
`FEATURES`, greedily: the feature (or pair of features) that singles the failures out
best (`classify`) becomes a class ("loss fails whenever reduction='sum'"), its cases are
set aside, and so on; failures that no feature explains form one last class.
Each class is then shrunk by a search restricted to its feature (`shrink`), so two
independent defects end on two minimal cases.

`option_grid` is the fixed set that makes this possible: every combination of the options
a contender declares (weights, ignored targets, smoothing, probability targets) under each
reduction it declares, at least once each. Tests: ``suites/harness/test_defects.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import HypothesisException, NoSuchExample

from harness.contenders import Contender
from harness.equivalence import properties as checks
from harness.problem import strategies
from harness.problem.capabilities import feature_tests
from harness.problem.case import Case, CaseError
from harness.problem.families import family

Feature = Callable[[Case], bool]
# The kinds of case each capability names (`harness.problem.capabilities`: a new one
# appears here without an edit), then those no capability governs.
FEATURES: dict[str, Feature] = {
    **feature_tests(),
    "large logits (|x| >= 100)": lambda c: c.scale >= 100,
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


def option_grid(contender: Contender) -> list[Case]:
    """Every combination of the call options ``contender`` declares, under every reduction
    it declares: a small base case (4 × 5 classes × 3 positions, float32 or the first
    dtype it takes) with class weights on or off, a quarter of targets ignored or none,
    smoothing 0.1 or 0, class probabilities or indices — where the family has the option."""
    caps, spec = contender.caps, family(contender.family)
    dtype = "f32" if "f32" in caps.dtypes else sorted(caps.dtypes)[0]
    rank = 1 if 1 in caps.spatial_dims else min(caps.spatial_dims)
    axes = {
        "weights": ["none", "random"] if caps.weights else ["none"],
        "ignore_frac": [0.0, 0.25] if caps.ignore_index and spec.ignore_index else [0.0],
        "label_smoothing": [0.0, 0.1] if caps.label_smoothing and spec.label_smoothing else [0.0],
        "soft": [False, True] if caps.soft_targets else [False],
        "reduction": [r for r in ("mean", "sum", "none") if r in caps.reductions],
    }
    base = dict(n=4, c=spec.fixed_c or 5, spatial=(3,) * rank, p=0.3, dtype=dtype,
                family=contender.family, layout="contiguous")
    grid = []
    for values in itertools.product(*axes.values()):
        fields = dict(zip(axes, values, strict=True))
        try:
            case = Case(**base, **fields)
        except CaseError:  # e.g. probability targets with ignored ones
            continue
        if not contender.case_gaps(case):
            grid.append(case)
    return grid


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
    """Single features first, then pairs: with equal coverage the simpler explanation wins."""
    singles = list(features.items())
    pairs = [(f"{a} with {b}", lambda c, fa=fa, fb=fb: fa(c) and fb(c))
             for (a, fa), (b, fb) in itertools.combinations(singles, 2)]
    return singles + pairs


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
    out: list[DefectClass] = []
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
        out.append(DefectClass(failing_props, feature, failing, total, cases[0], minimal, detail))
        earlier.append(test)
    return out
