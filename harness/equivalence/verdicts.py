"""The ``check`` command's verdicts: contenders run on cases, tallied per contender and
property (the command itself is `harness.cli`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.contenders import Contender
from harness.equivalence.defects import DefectClass, distinct_defects, option_grid
from harness.equivalence.properties import Verdict
from harness.equivalence.runner import CALL_TIMEOUT_S, verify
from harness.problem import strategies
from harness.problem.case import Case

COMPILED_CLI_CASES = 8


@dataclass(frozen=True)
class CaseVerdicts:
    contender: str
    case: Case
    verdicts: dict[str, Verdict] | None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdicts is not None and all(v.ok for v in self.verdicts.values())


def cases_for(contender: Contender, count: int) -> list[Case]:
    """What ``check`` runs a contender on: every combination of its declared options
    (`defects.option_grid`: what separates one defect from another), then ``count``
    generated cases. A compiled contender gets at most `COMPILED_CLI_CASES` generated
    cases and no grid (each new signature is a compile)."""
    if contender.compiled is not None:
        return strategies.draw_cases(strategies.for_contender(contender),
                                     min(count, COMPILED_CLI_CASES))
    drawn = strategies.draw_cases(strategies.for_contender(contender), count)
    grid = option_grid(contender)
    return grid + [c for c in drawn if c not in grid]


def defects_of(contender: Contender, results: list[CaseVerdicts], device: str,
               timeout: float | None = CALL_TIMEOUT_S) -> list[DefectClass]:
    """``contender``'s distinct defects (`defects.distinct_defects`) from its ``results``."""
    mine = [(r.case, r.verdicts) for r in results
            if r.contender == contender.name and r.verdicts is not None]

    def fails(case: Case, props: tuple[str, ...]) -> str | None:
        verdicts = verify(contender, case, device, props, timeout)
        bad = [f"{p}: {v.detail}" for p, v in verdicts.items() if not v.ok]
        return "; ".join(bad) or None

    return distinct_defects(contender, mine, fails)


def check_cases(contender: Contender, cases: list[Case], device: str,
                timeout: float | None = CALL_TIMEOUT_S) -> list[CaseVerdicts]:
    out = []
    for case in cases:
        reason = contender.skip_reason(case, device)
        if reason:
            out.append(CaseVerdicts(contender.name, case, None, reason))
        else:
            try:
                verdicts = verify(contender, case, device, timeout=timeout)
            except KeyboardInterrupt:  # say what was running (the CLI prints it, exit 130)
                raise KeyboardInterrupt(f"checking {contender.name} on case {case.id}") from None
            out.append(CaseVerdicts(contender.name, case, verdicts))
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


def check_contenders(contenders: list[Contender], case_ids: list[str], count: int,
                     device: str, timeout: float | None = CALL_TIMEOUT_S) -> list[CaseVerdicts]:
    """Every contender on the explicit ``case_ids``, or on ``count`` generated cases each
    (`cases_for`), on ``device``."""
    explicit = [Case.from_id(i) for i in case_ids]
    results: list[CaseVerdicts] = []
    for contender in contenders:
        results += check_cases(contender, explicit or cases_for(contender, count), device, timeout)
    return results


def tally(results: list[CaseVerdicts]) -> dict[str, Counter]:
    by_contender: dict[str, Counter] = {}
    for r in results:
        counts = by_contender.setdefault(r.contender, Counter())
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
