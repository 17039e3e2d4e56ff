"""The verdicts of an `ab` run (`harness.benchmark.ab.AbRun`): one row per benchmark both
sides have, judged on its pairs (`harness.analysis.paired`), the changes first; the
verdict document written beside the two sides' JSON; and what fails the gate.

Row verdicts, the words ``compare`` says too (`harness.verdict`): ``slower``,
``faster``, ``undecided``, ``same``, ``too few`` (fewer clean
pairs than the test needs to reach alpha: `harness.analysis.paired`), ``unstable`` (every
pair had a contaminated block: nothing left to judge), and ``broken`` (HEAD failed its
check or raised where BASE passed: a correctness regression, never timed) or ``failed``
(both sides failed; BASE alone failing is ``fixed``). Where wall time gave no verdict
(``too few``, ``unstable``, ``undecided``), instruction counts may (`with_instructions`);
the row's ``note`` then still says what wall time lacked."""

from __future__ import annotations

import math

from harness import verdict
from harness.analysis.paired import PairedSettings, fewest_pairs, judge_all, pairs_needed
from harness.benchmark.ab import SIDES, AbRun

SCHEMA = 1
ORDER = ("broken", "slower", "faster", "unstable", "too few", "undecided", "fixed", "failed", "same")
VERDICTS = (verdict.SLOWER, verdict.FASTER, verdict.SAME, verdict.UNDECIDED)  # by wall time or counts
NO_WALL_VERDICT = (verdict.UNDECIDED, verdict.TOO_FEW, verdict.UNSTABLE)  # where a count may decide


def _identity(run: AbRun, ident: str) -> dict:
    """Contender, case and mode of a row; a pair of two contenders (`ab --pair`) reads
    ``OLD→NEW``."""
    infos = [run.results[ident].info.get(label) or {} for label in SIDES]
    known = [i for i in infos if i.get("contender")]
    if not known:
        return {"contender": "?", "case_id": ident, "mode": "?"}
    names = list(dict.fromkeys(i["contender"] for i in known))
    return {"contender": "→".join(names), "case_id": known[0]["case_id"], "mode": known[0]["mode"]}


def _failure_row(run: AbRun, ident: str) -> dict:
    failed = run.results[ident].failed
    said = "failed" if len(failed) == 2 else ("broken" if "HEAD" in failed else "fixed")
    return {"benchmark": ident, **_identity(run, ident), "verdict": said, "by": "the check",
            "pairs": 0, "dropped": 0, "note": None,
            "ratio": None, "low": None, "high": None, "p": None, "p_adjusted": None, "sigma": None,
            "error": "; ".join(f"{s}: {e}" for s, e in failed.items())}


def judge_run(run: AbRun, settings: PairedSettings) -> list[dict]:
    """Every benchmark's row, changes first (`ORDER`), then by name."""
    pairs = run.pairs()
    judged = {j.name: j for j in judge_all(pairs, settings, seed=run.seed)}
    rows = []
    for ident in run.results:
        if ident not in judged:
            rows.append(_failure_row(run, ident))
            continue
        j = judged[ident]
        row = {"benchmark": ident, **_identity(run, ident), **j.as_dict(), "error": None,
               "note": _wall_note(j.pairs, j.dropped, fewest_pairs(settings.alpha))}
        row.pop("name")
        if j.pairs == 0 and j.dropped:
            row["verdict"] = "unstable"
        row["by"] = "wall time" if row["verdict"] in WALL_DECIDED else None
        rows.append(row)
    return sorted(rows, key=lambda r: (ORDER.index(r["verdict"]), r["benchmark"]))


WALL_DECIDED = (*verdict.CHANGED, verdict.SAME)  # verdicts wall time reached by itself


def _wall_note(pairs: int, dropped: int, needed: int) -> str | None:
    """What wall time lacked for a verdict, or None where it had enough pairs."""
    if pairs >= needed:
        return None
    if pairs == 0 and dropped:
        return f"wall time: every pair contaminated ({dropped} dropped)"
    also = f"; {dropped} dropped as contaminated" if dropped else ""
    return f"wall time: too few pairs ({pairs} of {needed} needed{also})"


def with_instructions(rows: list[dict], counted: dict[str, dict[str, list[float] | str]],
                      settings: PairedSettings) -> list[dict]:
    """Each row with its instruction counts (`harness.benchmark.counts`): per side the
    median over repeats, their ratio HEAD/BASE and what it says against the threshold.
    The row's verdict stays wall time's where wall time decided; where it did not
    (``undecided``, ``unstable``), a decisive count gives it, and ``by`` says which."""
    for r in rows:
        r["by"] = "wall time" if r["verdict"] in WALL_DECIDED else None
        sides = [counted.get(label, {}).get(r["benchmark"]) for label in SIDES]
        if not all(isinstance(s, list) and s for s in sides):
            why = next((s for s in sides if isinstance(s, str)), None)
            r.update(instr_ratio=None, instr_verdict=None, instr_note=why)
            continue
        base, head = (sorted(s)[len(s) // 2] for s in sides)
        ratio = head / base
        # counts do not vary from run to run: the ratio itself is significant and is the
        # interval (`verdict.decide` with none)
        says = verdict.decide(verdict.log_ratio(ratio), True, settings.threshold)
        spread = max((max(s) - min(s)) / min(s) for s in sides)
        r.update(instr_base=base, instr_head=head, instr_ratio=ratio, instr_verdict=says,
                 instr_note=f"repeats within {spread:.2%}")
        if r["verdict"] in NO_WALL_VERDICT:
            r["verdict"], r["by"] = says, "instructions"
        elif r["verdict"] == says:
            r["by"] = "wall time + instructions"
        elif r["verdict"] in ("slower", "faster", "same"):
            r["instr_note"] += f"; instructions say {says}: the difference is in memory, not in work"
    return sorted(rows, key=lambda r: (ORDER.index(r["verdict"]), r["benchmark"]))


def undecided(run: AbRun, settings: PairedSettings) -> list[str]:
    """The benchmarks more pairs could still decide (`--until-decided`): undecided ones,
    and those with too few clean pairs (a busy spell may pass)."""
    return [r["benchmark"] for r in judge_run(run, settings) if r["verdict"] in NO_WALL_VERDICT]


def counts(rows: list[dict]) -> dict[str, int]:
    out = {v: 0 for v in ORDER}
    for r in rows:
        out[r["verdict"]] += 1
    return {k: v for k, v in out.items() if v}


def judgeable(rows: list[dict]) -> bool:
    """Whether any benchmark was judged, by wall time or by its instruction counts."""
    return any(r["verdict"] in VERDICTS for r in rows)


def decided_ratio(row: dict) -> float | None:
    """HEAD/BASE as measured by whatever gave the row its verdict: the count ratio where
    the counts decided (wall time's ratio there rests on too few pairs, or none)."""
    return row.get("instr_ratio") if row.get("by") == "instructions" else row.get("ratio")


def failing(rows: list[dict], fail_ratio: float | None) -> list[dict]:
    """What fails the gate: a ``broken`` benchmark always; a ``slower`` one of at least
    ``fail_ratio``× (`decided_ratio`) when a ratio is given."""
    out = [r for r in rows if r["verdict"] == "broken"]
    if fail_ratio is not None:
        out += [r for r in rows if r["verdict"] == "slower" and (decided_ratio(r) or 0) >= fail_ratio]
    return out


def no_verdict(rows: list[dict], instructions: str | None) -> str:
    """The one line for a run in which no benchmark was judged: what wall time lacked,
    and how to get a verdict (``instructions``: how the counts went, None when not asked)."""
    dropped, kept = sum(r["dropped"] for r in rows), sum(r["pairs"] for r in rows)
    lacked = (f"every block pair was contaminated ({dropped} of {dropped} dropped: a busy machine)"
              if dropped and not kept else
              f"too few clean pairs for the test ({kept} kept, {dropped} dropped as contaminated)"
              if kept or dropped else "nothing was timed")
    if instructions is None:
        how = ("for a verdict, add --instructions (callgrind's counts do not depend on load), "
               "rerun on a quieter machine, or add --until-decided --budget MINUTES (more pairs "
               "while the budget lasts)")
    else:
        why = next((r["instr_note"] for r in rows if r.get("instr_note") and r.get("instr_ratio") is None),
                   instructions)
        how = (f"the instruction counts gave none either ({why}); rerun on a quieter machine, or "
               "add --until-decided --budget MINUTES")
    return f"no benchmark could be judged: {lacked}; {how}"


def grain_sigma(rows: list[dict]) -> float:
    """The median over benchmarks of the block pairs' robust σ: what decides how many pairs
    a verdict needs (`harness.analysis.paired.pairs_needed`)."""
    sig = sorted(r["sigma"] for r in rows if r.get("sigma") is not None and math.isfinite(r["sigma"]))
    return sig[len(sig) // 2] if sig else math.nan


def document(run: AbRun, rows: list[dict], settings: PairedSettings, instructions: str = "") -> dict:
    """The verdict file (``ab.json``): the sides, the settings, the order's seed, every row."""
    sigma = grain_sigma(rows)
    return {
        "schema": SCHEMA, "started": run.started, "seconds": round(run.seconds, 1), "seed": run.seed,
        "sides": {label: {"spec": run.sides[label].spec, "commit": run.sides[label].commit,
                          "root": str(run.sides[label].root), "python": run.sides[label].python,
                          "torch": run.listed[label].get("torch")} for label in SIDES},
        "settings": {"threshold": settings.threshold, "alpha": settings.alpha,
                     "confidence": settings.confidence, "grain": "block", "sessions": run.sessions,
                     "fewest_pairs": fewest_pairs(settings.alpha),
                     "threads": run.threads, "cores": run.cores},
        "sigma_median": sigma, "pairs_for_1.1x": pairs_needed(sigma),
        "only_in": run.only_in, "counts": counts(rows), "rows": rows, "instructions": instructions,
        "gave_verdict": ("wall time; instructions where wall time could not decide"
                         if any(r.get("instr_ratio") for r in rows) else "wall time"),
    }
