"""The command-line equivalence check: run contenders on cases and tabulate verdicts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness import strategies
from harness.cases import Case
from harness.check import PROPERTIES, Verdict
from harness.contenders import Contender
from harness.execute import repro_command, resolve_device, verify

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
    if contender.compiled is not None:
        count = min(count, COMPILED_CLI_CASES)
    return strategies.draw_cases(strategies.cases(contender), count)


def check_cases(contender: Contender, cases: list[Case], device: str) -> list[CaseVerdicts]:
    out = []
    for case in cases:
        reason = contender.skip_reason(case, device)
        if reason:
            out.append(CaseVerdicts(contender.name, case, None, reason))
        else:
            out.append(CaseVerdicts(contender.name, case, verify(contender, case, device)))
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


def run_check(args, contenders: list[Contender]) -> int:
    from harness.report import verdict_table

    device = resolve_device(args.device)
    chosen = [c for c in contenders if not args.only or c.name in args.only]
    explicit = [Case.from_id(i) for i in args.case]
    results: list[CaseVerdicts] = []
    for contender in chosen:
        cases = explicit or cases_for(contender, args.cases)
        results += check_cases(contender, cases, device)
    print(verdict_table(summarise(results, PROPERTIES), PROPERTIES, device))
    failures = [r for r in results if r.verdicts is not None and not r.ok]
    for r in failures[:20]:
        contender = next(c for c in chosen if c.name == r.contender)
        bad = [v for v in r.verdicts.values() if not v.ok]
        print(f"\nFAIL {r.contender} on {r.case.id}")
        for v in bad:
            print(f"  {v.prop}: {v.detail}")
        print(f"  reproduce: {repro_command(contender, r.case)}")
    if explicit:
        for r in results:
            if r.skipped:
                print(f"skip {r.contender}: {r.skipped}")
    return 1 if failures else 0


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
