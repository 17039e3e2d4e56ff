"""The ``check`` command's verdicts: contenders run on cases, tallied per contender and
property (the command itself is `harness.cli`). Each contender is called through its judge
(`harness.equivalence.isolation`): in a watched worker when it is the user's code, each
call under a limit derived from the reference's time on the case."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.contenders import Contender
from harness.equivalence.defects import DefectClass, distinct_defects
from harness.equivalence.isolation import Failure, Progress, call_limit, judge_for, kind_of, of_kind
from harness.equivalence.properties import PROPERTIES, Verdict
from harness.problem import coverage, strategies
from harness.problem.case import Case

COMPILED_CLI_CASES = 8
MAX_FIRST_FAILURES = 3  # failures before any case came back: the contender is not called again
OUTCOME_WORDS = {"hang": "hangs", "crash": "crashes", "out of memory": "runs out of memory"}
_PAST = {"hang": "hung", "crash": "crashed", "out of memory": "ran out of memory"}


@dataclass(frozen=True)
class CaseVerdicts:
    """One contender on one case: its verdicts, or why there are none — ``skipped`` (outside
    its capabilities) or ``failure`` (it hung, crashed, ran out of memory, or was not run
    because a case of the same kind did: `isolation.Failure`; ``failure_kind`` is that kind,
    `isolation.kind_of`)."""

    contender: str
    case: Case
    verdicts: dict[str, Verdict] | None
    skipped: str | None = None
    failure: Failure | None = None
    failure_kind: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdicts is not None and all(v.ok for v in self.verdicts.values())


def cases_for(contender: Contender, count: int, seed: int = strategies.DEFAULT_SEED) -> list[Case]:
    """What ``check`` runs a contender on: its covering cases (`coverage.covering`: every
    declared pair, and every triple of what a mean divides by — the cases the equivalence
    suite starts from), then ``count`` generated cases drawn with ``seed``. A compiled
    contender draws at most `COMPILED_CLI_CASES` (each new signature is a compile)."""
    fixed = coverage.covering(contender)
    if contender.compiled is not None:
        count = min(count, COMPILED_CLI_CASES)
    drawn = strategies.draw_cases(strategies.for_contender(contender), count, seed) if count else []
    return fixed + [c for c in drawn if c not in fixed]


def check_contenders(contenders: list[Contender], case_ids: list[str], count: int,
                     device: str, timeout: float | None = None, progress: Progress | None = None,
                     into: list[CaseVerdicts] | None = None,
                     seed: int = strategies.DEFAULT_SEED, judges: dict | None = None) -> list[CaseVerdicts]:
    """Every contender on the explicit ``case_ids``, or on ``count`` generated cases each
    drawn with ``seed`` (`cases_for`), on ``device``; ``timeout`` replaces the derived call limit
    (`isolation.call_limit`). Results are appended to ``into`` as they come (what an
    interrupted run prints); ``progress`` hears what is running. ``judges`` (name → judge)
    keeps each contender's worker for `defects_of`; the caller closes them."""
    explicit = [Case.from_id(i) for i in case_ids]
    results = into if into is not None else []
    for contender in contenders:
        if progress:
            progress(f"{contender.name}: drawing its cases")
        cases = explicit or cases_for(contender, count, seed)
        grid = 0 if explicit else len(coverage.covering(contender))
        check_cases(contender, cases, device, timeout, progress, into=results, grid=grid,
                    judges=judges)
    return results


def check_cases(contender: Contender, cases: list[Case], device: str,
                timeout: float | None = None, progress: Progress | None = None,
                into: list[CaseVerdicts] | None = None, grid: int = 0,
                judges: dict | None = None) -> list[CaseVerdicts]:
    """``contender`` on ``cases`` (the first ``grid`` of them its covering cases) through its
    judge (`isolation.judge_for`), each call under its limit. After a hang or a crash, the
    cases of the same kind (`isolation.kind_of`) are not called; after
    `MAX_FIRST_FAILURES` with no case back, none is."""
    out = into if into is not None else []
    judge = _judge(contender, device, judges)
    completed: list[Case] = []
    stopped: list[tuple[tuple[str, ...], Case, str]] = []  # (kind, first case, what it did)
    signatures: set = set()
    case = None
    try:
        for i, case in enumerate(cases):
            if progress:
                progress(f"{contender.name}: {_phase(i, grid, len(cases))} ({case.id})")
            if reason := contender.skip_reason(case, device):
                out.append(CaseVerdicts(contender.name, case, None, reason))
                continue
            if why := _not_run(case, stopped, completed):
                out.append(CaseVerdicts(contender.name, case, None, failure=Failure("not run", why)))
                continue
            limit = call_limit(case, device, given=timeout,
                               first_compile=_first_compile(contender, case, signatures, judge))
            got = judge.verdicts(case, PROPERTIES, limit)
            if isinstance(got, Failure):
                kind = kind_of(case, completed)
                stopped.append((kind, case, got.kind))
                out.append(CaseVerdicts(contender.name, case, None, failure=got, failure_kind=kind))
            else:
                completed.append(case)
                out.append(CaseVerdicts(contender.name, case, got))
    except KeyboardInterrupt:
        # say what was running wherever in its turn it lands (the CLI prints it, exit 130):
        # a user presses it after reading a progress line, printed before the call
        if case is None:
            raise
        raise KeyboardInterrupt(f"checking {contender.name} on case {case.id}") from None
    finally:
        if judges is None:
            judge.close()
    return out


def _judge(contender: Contender, device: str, judges: dict | None):
    if judges is None:
        return judge_for(contender, device)
    if contender.name not in judges:
        judges[contender.name] = judge_for(contender, device)
    return judges[contender.name]


def _phase(i: int, grid: int, total: int) -> str:
    if grid == 0:  # the cases the user named
        return f"case {i + 1} of {total}"
    if i < grid:
        return f"covering cases, case {i + 1} of {grid}"
    return f"generated cases, case {i + 1 - grid} of {total - grid}"


def _not_run(case: Case, stopped, completed: list[Case]) -> str | None:
    """Why ``case`` is not called: a case of its kind hung or crashed, or the contender
    failed `MAX_FIRST_FAILURES` times before any case came back."""
    for kind, first, what in stopped:
        if of_kind(case, kind):
            return f"not run: {_PAST[what]} on case {first.id}"
    if not completed and len(stopped) >= MAX_FIRST_FAILURES:
        what, first = _PAST[stopped[0][2]], stopped[0][1]
        return f"not run: {what} on its first {len(stopped)} cases, on case {first.id}"
    return None


def _first_compile(contender: Contender, case: Case, signatures: set, judge) -> bool:
    """Whether this call may compile: a compiled contender's first call per compile
    signature, or an isolated contender's first call (imports, lazy initialisation, a JIT)."""
    if getattr(judge, "fresh", False):
        return True
    if contender.compiled is None:
        return False
    signature = (case.dtype, case.reduction, case.weights != "none", bool(case.label_smoothing),
                 len(case.spatial), case.layout, case.soft, case.batched)
    if signature in signatures:
        return False
    signatures.add(signature)
    return True


def defects_of(contender: Contender, results: list[CaseVerdicts], device: str,
               timeout: float | None = None, progress: Progress | None = None,
               judges: dict | None = None) -> list[DefectClass]:
    """``contender``'s distinct defects: first what hung, crashed or ran out of memory, one
    class per kind (never called again), then the value defects of the cases that came
    back (`defects.distinct_defects`), shrunk through the same judge. A shrink candidate of
    a kind that hung or crashed is not called: it counts as passing."""
    mine = [r for r in results if r.contender == contender.name]
    kinds = [r.failure_kind for r in mine if r.failure is not None and r.failure_kind]
    came_back = [r.case for r in mine if r.verdicts is not None]
    judge = _judge(contender, device, judges)
    tried = [0]

    def fails(case: Case, props: tuple[str, ...]) -> str | None:
        if any(of_kind(case, k) for k in kinds):
            return None
        tried[0] += 1
        if progress:
            progress(f"{contender.name}: shrinking its defects, candidate {tried[0]} ({case.id})")
        limit = call_limit(case, device, first_compile=bool(getattr(judge, "fresh", False)),
                           given=timeout)
        got = judge.verdicts(case, props, limit)
        if isinstance(got, Failure):  # a new kind that hangs or crashes: not called again
            kinds.append(kind_of(case, came_back) or (case.id,))
            return None
        bad = [f"{p}: {v.detail}" for p, v in got.items() if not v.ok]
        return "; ".join(bad) or None

    try:
        checked = [(r.case, r.verdicts) for r in mine if r.verdicts is not None]
        return failure_classes(mine) + distinct_defects(contender, checked, fails)
    finally:
        if judges is None:
            judge.close()


def failure_classes(results: list[CaseVerdicts]) -> list[DefectClass]:
    """One class per case that hung, crashed or ran out of memory, with the cases of its
    kind then not run: "hangs on reduction='sum' (1 case run, 30 not run)"."""
    out = []
    for r in results:
        if r.failure is None or r.failure.kind == "not run":
            continue
        skipped = sum(1 for o in results if o.failure is not None and o.failure.kind == "not run"
                      and f"on case {r.case.id}" in o.failure.detail)
        kind = " with ".join(r.failure_kind) or f"case {r.case.id}"
        out.append(DefectClass(
            props=(), feature=kind, failing=1 + skipped, total=1 + skipped, example=r.case,
            minimal=r.case, detail=r.failure.detail,
            outcome=f"{OUTCOME_WORDS[r.failure.kind]} on {kind} (1 case run, {skipped} not run)"))
    return out


@dataclass(frozen=True)
class ContenderTally:
    """One contender's line of the verdict table."""
    contender: str
    cases: int                  # cases checked
    skipped: int
    passed: dict[str, int]      # cases passed, per property
    verdict: str                # 'PASS', 'FAIL', or 'skip' when no case was checked
    limits: int = 0             # cases in a predicted breakdown/degraded regime (asserted)


def reached(contenders: list[Contender], results: list[CaseVerdicts]) -> dict[str, coverage.Reach]:
    """Per contender checked, what its checked cases reached of its declared values,
    pairs and triples (`coverage.reach`)."""
    out = {}
    for contender in contenders:
        checked = [r.case for r in results if r.contender == contender.name and (
            r.verdicts is not None or (r.failure is not None and r.failure.kind != "not run"))]
        if checked:
            out[contender.name] = coverage.reach(contender, checked)
    return out


def tally(results: list[CaseVerdicts]) -> dict[str, Counter]:
    by_contender: dict[str, Counter] = {}
    for r in results:
        counts = by_contender.setdefault(r.contender, Counter())
        if r.failure is not None:  # hung, crashed, or not run after one that did: it fails
            counts["cases"] += 1
            continue
        if r.verdicts is None:
            counts["skipped"] += 1
            continue
        counts["cases"] += 1
        for prop, v in r.verdicts.items():
            counts[prop] += v.ok
        counts["limits"] += any(v.regime != "exact" for v in r.verdicts.values())
    return by_contender


def summarise(results: list[CaseVerdicts], properties) -> list[ContenderTally]:
    """Per contender, in the order first checked: counts and the verdict, PASS when every
    checked case passed every property in ``properties``."""
    out = []
    for name, counts in tally(results).items():
        cases = counts["cases"]
        verdict = "skip" if not cases else ("PASS" if all(counts[p] == cases for p in properties)
                                            else "FAIL")
        out.append(ContenderTally(name, cases, counts["skipped"], {p: counts[p] for p in properties},
                                  verdict, counts["limits"]))
    return out
