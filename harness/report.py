"""Presentation only: text tables of contenders and verdicts. Computes nothing."""

from __future__ import annotations


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, sep, *body])


def contender_table(contenders) -> str:
    rows = [[c.name, c.family, c.caps.describe(), c.source, c.description] for c in contenders]
    return _table(["contender", "family", "capabilities", "source", "what"], rows)


def verdict_table(results, properties, device: str) -> str:
    from harness.verdicts import tally

    rows = []
    for name, counts in tally(results).items():
        cases = counts["cases"]
        cells = [f"{counts[p]}/{cases}" for p in properties]
        verdict = "skip" if not cases else ("PASS" if all(counts[p] == cases for p in properties)
                                            else "FAIL")
        rows.append([name, str(cases), str(counts["skipped"]), *cells, verdict])
    title = f"equivalence against the float64 oracle on {device} (passed/checked per property)"
    return title + "\n" + _table(["contender", "cases", "skipped", *properties, "verdict"], rows)
