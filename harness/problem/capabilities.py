"""What a contender handles, declared once per capability, as PyTorch's OpInfo declares an
op: each field of the `Capabilities` record carries its `Capability` entry (what a case
asks of it, its words, its clause, what the strategies draw without it); `CAPABILITIES`
lists them in the fields' order.

Every module that asks what a contender can do reads the entries instead of restating them:

* `Capabilities.case_gaps` (what `Contender.skip_reason` says) and `Capabilities.gaps`;
* the one-line declaration ``@no-label-smoothing,dtypes=f32+f64``
  (`harness.contenders.declare`: its clauses are the entries' ``clause``);
* the strategies, which draw a governed case field only within the record
  (`Capabilities.allowed`, `Capabilities.off_fields`; `harness.problem.strategies`);
* the defect report's features (`feature_tests`; `harness.equivalence.defects`).

Adding a case field is: the field and its id token (`harness.problem.case`), its values
(`harness.problem.strategies.FIELD_VALUES`) and one field of `Capabilities`, declared with
`_flag`, `_set` or `_bound`; nothing else restates it
(``suites/harness/test_recipes.py`` adds a toy field that way and follows it through `list`,
`check`, the suites and the report). Tests: ``suites/harness/test_declare.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from harness.problem.case import DEFAULT_IGNORE_INDEX, DTYPES, LAYOUTS, MAX_SPATIAL_DIMS, REDUCTIONS, Case
from harness.problem.weights import NEGATIVE_WEIGHT_SCHEMES

SPATIAL_RANKS = tuple(range(MAX_SPATIAL_DIMS + 1))
DEVICES = ("cpu", "cuda")
Kind = Literal["flag", "set", "bound", "trait"]


def _needs_elementwise_weight(case: Case) -> bool:
    """Whether the case's call passes a per-element ``weight`` rather than pos_weight's
    form (`harness.problem.bce.binary_kwargs`): known only from the case's weights."""
    if case.weights == "none" or case.spec.index_targets:
        return False
    from harness.problem.inputs import make_inputs  # builds tensors: only for this question

    return case.spec.call_kwargs(make_inputs(case)).get("pos_weight") is None


@dataclass(frozen=True)
class Capability:
    """One thing a contender may handle: the `Capabilities` field ``name`` holds it.

    * ``flag``: handled or not. ``needs(case)`` says whether a case uses it; a case that
      does is a gap of a contender without it (``words`` names it); ``off`` is what the
      strategies draw instead (the case fields that leave it out). Clause ``no-<name>``.
    * ``set``: the values of ``needs(case)`` handled, out of ``values`` (``case_field`` is
      the case field the strategies draw from them); a gap reads ``words.format(value)``
      (a flag's ``words.format(case=case)``).
      Clause ``<clause>=A+B``.
    * ``bound``: a number a case must stay within: ``exceeds(needs(case), bound)``; the
      clause is ``clause.format(bound)``, a gap ``words.format(bound)`` and the
      contender's summary (`Capabilities.gaps`) ``summary.format(bound)``.
    * ``trait``: not a limit but a declared behaviour (``float32-output``); never a gap.

    ``features``: the kinds of case the defect report may name a failure class after
    (`harness.equivalence.defects`), in the order it tries them. ``after_draw``: only the
    drawn tensors tell it, so the strategies cannot honour it while drawing and
    `harness.problem.strategies.for_contender` filters it after the draw."""

    name: str
    kind: Kind
    words: str = ""
    needs: Callable[[Case], Any] | None = None
    off: dict[str, Any] = field(default_factory=dict)
    values: tuple = ()
    case_field: str | None = None
    clause: str = ""
    exceeds: Callable[[Any, Any], bool] | None = None
    features: dict[str, Callable[[Case], bool]] = field(default_factory=dict)
    after_draw: bool = False
    summary: str = ""
    number: type = float  # a bound's type: what its clause's number is read as

    def __post_init__(self) -> None:
        if self.kind == "flag" and not self.clause:
            object.__setattr__(self, "clause", "no-" + self.name.replace("_", "-"))

    def gap(self, case: Case, held: Any) -> str | None:
        """What of ``case`` a contender holding ``held`` for this capability cannot run, or
        None (devices are not a case field: `Capabilities.case_gaps` takes the device)."""
        if self.needs is None or self.kind == "trait":
            return None
        if self.kind == "flag":
            return None if held or not self.needs(case) else self.words.format(case=case)
        value = self.needs(case)
        if self.kind == "set":
            return None if value in held else self.words.format(value)
        return self.words.format(held) if held is not None and self.exceeds(value, held) else None


_KEY = "capability"  # where a Capabilities field keeps its entry's declaration


def _flag(words: str, needs: Callable[[Case], bool], off: dict, feature: str | None = None,
          after_draw: bool = False, feature_test: Callable[[Case], bool] | None = None) -> Any:
    """A flag; ``feature`` names its kind of case for the defect report, tested by
    ``feature_test`` (``needs`` when None)."""
    return field(default=True, metadata={_KEY: dict(
        kind="flag", words=words, needs=needs, off=off, after_draw=after_draw,
        features={feature: feature_test or needs} if feature else {})})


def _set(values: tuple, words: str, needs: Callable[[Case], Any] | None, *, clause: str,
         case_field: str | None = None, features: dict | None = None) -> Any:
    return field(default=frozenset(values), metadata={_KEY: dict(
        kind="set", values=values, words=words, needs=needs, clause=clause,
        case_field=case_field, features=features or {})})


def _bound(words: str, needs: Callable[[Case], Any], exceeds: Callable[[Any, Any], bool], *,
           clause: str, summary: str, number: type, features: dict | None = None) -> Any:
    return field(default=None, metadata={_KEY: dict(
        kind="bound", words=words, needs=needs, exceeds=exceeds, clause=clause,
        summary=summary, number=number, features=features or {})})


@dataclass(frozen=True)
class Capabilities:
    """What a contender handles (every field declares its `Capability` entry: what it
    means). Anything outside is never generated for it and skipped with a reason.
    Checked on construction: a set holds known values, a bound is above 0."""

    # The fields' order is the order of gaps in a skip reason and of features in the
    # defect search (its tie-break: the first of equally good features names the class).
    reductions: frozenset[str] = _set(
        REDUCTIONS, "reduction={}", lambda c: c.reduction, case_field="reduction",
        clause="reductions",
        features={f"reduction={r!r}": (lambda c, r=r: c.reduction == r) for r in REDUCTIONS})
    weights: bool = _flag("class weights", lambda c: c.weights != "none", {"weights": "none"},
                          feature="class weights")
    ignore_index: bool = _flag("ignore_index", lambda c: c.ignore_frac > 0,
                               {"ignore_frac": 0.0, "ignore_index": DEFAULT_IGNORE_INDEX},
                               feature="ignored targets", feature_test=lambda c: c.n_ignored > 0)
    label_smoothing: bool = _flag("label_smoothing", lambda c: c.label_smoothing > 0,
                                  {"label_smoothing": 0.0}, feature="label smoothing")
    # probability targets (multi-class) / BCE targets anywhere in [0, 1]
    soft_targets: bool = _flag("soft (probability) targets", lambda c: c.soft, {"soft": False},
                               feature="probability targets")
    dtypes: frozenset[str] = _set(
        tuple(DTYPES), "dtype {}", lambda c: c.dtype, case_field="dtype", clause="dtypes",
        features={"half precision": lambda c: c.dtype in ("f16", "bf16"),
                  "float64": lambda c: c.dtype == "f64"})
    spatial_dims: frozenset[int] = _set(
        SPATIAL_RANKS, "{}-D spatial inputs", lambda c: len(c.spatial), clause="spatial",
        features={"spatial dims": lambda c: len(c.spatial) > 0})
    # one sample: [C] logits with a 0-d target
    unbatched: bool = _flag("unbatched [C] inputs", lambda c: not c.batched, {"batched": True},
                            feature="unbatched input")
    # -inf logits, the target's own included
    masked_logits: bool = _flag("masked (-inf) logits", lambda c: bool(c.masked or c.masked_target),
                                {"masked": 0.0, "masked_target": False}, feature="masked logits")
    layouts: frozenset[str] = _set(
        tuple(LAYOUTS), "layout {}", lambda c: c.layout, case_field="layout", clause="layouts",
        features={"non-contiguous logits": lambda c: c.layout != "contiguous"})
    # the largest C it handles (None: any, vocabulary-sized)
    max_classes: int | None = _bound(
        "more than {} classes", lambda c: c.c, lambda c, bound: c > bound,
        clause="max-classes={}", summary="no more than {} classes", number=int,
        features={"more than 64 classes": lambda c: c.c > 64})
    # smoothing must stay below this (timm asserts smoothing < 1)
    label_smoothing_below: float | None = _bound(
        "label_smoothing >= {:g}", lambda c: c.label_smoothing, lambda s, bound: s >= bound,
        clause="label-smoothing<{:g}", summary="label_smoothing below {} only", number=float)
    # class weights below 0 (the seed's helper makes them)
    negative_weights: bool = _flag("negative class weights (scheme {case.weights})",
                                   lambda c: c.weights in NEGATIVE_WEIGHT_SCHEMES, {})
    # binary: a per-element weight, not only pos_weight's form (only the tensors tell)
    elementwise_weight: bool = _flag("a per-element weight", _needs_elementwise_weight, {},
                                     after_draw=True)
    devices: frozenset[str] = _set(DEVICES, "device {}", None, clause="devices")
    # returns float32 for half-precision inputs, by design (`meta` expects float32 there)
    float32_output: bool = field(default=False, metadata={_KEY: dict(kind="trait",
                                                                     clause="float32-output")})

    def __post_init__(self) -> None:
        problems = []
        for cap in CAPABILITIES:
            value = getattr(self, cap.name)
            if cap.kind == "set":
                value = frozenset(value)
                object.__setattr__(self, cap.name, value)
                if unknown := sorted(map(str, value - frozenset(cap.values))):
                    problems.append(f"{cap.name} holds {', '.join(unknown)}: use values from "
                                    f"{', '.join(map(str, cap.values))}")
            elif cap.kind == "bound" and value is not None and not value > 0:
                problems.append(f"{cap.name} must be above 0 (or None for no bound), got {value!r}")
            elif cap.kind in ("flag", "trait") and not isinstance(value, bool):
                problems.append(f"{cap.name} must be True or False, got {value!r}")
        if problems:
            raise ValueError("invalid Capabilities: " + "; ".join(problems))

    def handles(self, name: str) -> bool:
        """Whether a flag capability is held (a new flag's strategy asks this)."""
        return bool(getattr(self, name))

    def allowed(self, case_field: str, values) -> list:
        """``values`` of a case field the record governs that this contender handles, in
        their order (all of them for a field no set capability governs)."""
        governing = [c for c in of_kind("set") if c.case_field == case_field]
        return [v for v in values if all(v in getattr(self, c.name) for c in governing)]

    def off_fields(self) -> dict[str, Any]:
        """The case fields the strategies must leave at their plain value: those of every
        flag this contender lacks."""
        out: dict[str, Any] = {}
        for cap in of_kind("flag"):
            if not getattr(self, cap.name):
                out.update(cap.off)
        return out

    def case_gaps(self, case: Case, device: str | None = None) -> list[str]:
        """What of ``case`` (and ``device``, when given) lies outside, in words."""
        out = []
        for cap in CAPABILITIES:
            if cap.name == "devices":
                if device is not None and device.split(":")[0] not in self.devices:
                    out.append(f"device {device}")
            elif (why := cap.gap(case, getattr(self, cap.name))) is not None:
                out.append(why)
        return out

    def gaps(self) -> list[str]:
        """What is not handled, one phrase per capability (the skip the suites show)."""
        out = []
        for cap in CAPABILITIES:
            value = getattr(self, cap.name)
            if cap.kind == "flag" and not value:
                out.append(f"no {cap.name}")
            elif cap.kind == "set" and (missing := [str(v) for v in cap.values if v not in value]):
                out.append(f"no {cap.name} {','.join(sorted(missing))}")
            elif cap.kind == "bound" and value is not None:
                out.append(cap.summary.format(value))
        return out

    def describe(self, options: tuple[str, ...] = ("weights", "ignore_index", "label_smoothing")) -> str:
        """One line; only the flags that are call options of the contender's family
        (`Family.options`: binary cases have neither ignore_index nor label smoothing)."""
        spatial = "/".join(f"{d}-D" for d in sorted(self.spatial_dims))
        flags = [f for f in options if getattr(self, f)]
        return (f"{' '.join(flags) or '-'}; spatial {spatial}; "
                f"{','.join(d for d in DTYPES if d in self.dtypes)}; "
                f"{','.join(sorted(self.devices))}")


# One entry per field, read from the fields' declarations, in their order.
CAPABILITIES: tuple[Capability, ...] = tuple(
    Capability(name=f.name, **f.metadata[_KEY]) for f in fields(Capabilities))
BY_NAME: dict[str, Capability] = {c.name: c for c in CAPABILITIES}


def of_kind(kind: Kind) -> tuple[Capability, ...]:
    return tuple(c for c in CAPABILITIES if c.kind == kind)


def feature_tests() -> dict[str, Callable[[Case], bool]]:
    """Every kind of case the record names, in its order (the defect report's features)."""
    return {name: test for cap in CAPABILITIES for name, test in cap.features.items()}
