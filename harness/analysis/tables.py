"""Presentation only: the text and markdown tables, and the number formats of their cells.

Terminal tables (contenders, verdicts, the run summary, the ecosystem board, defects,
`compare` and `ab`) and the markdown of ``tables.md`` and of CI summaries. They show what
other modules derived (`harness.analysis.report`, `harness.analysis.compare`,
`harness.analysis.ab_verdicts`): this module only orders, cuts and formats, each number to
the digits its noise supports (test_numbers_printed_to_the_digits_their_noise_supports).
The HTML page that holds these tables is `harness.analysis.html`.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from harness import verdict
from harness.analysis.stats import significant_digits
from harness.benchmark.stability import SPREAD, shared_reasons
from harness.problem.families import family
from harness.rounding import round_sig


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, sep, *body])


def contender_table(contenders) -> str:
    rows = [[c.name, c.family, c.caps.describe(family(c.family).options), c.source, c.description]
            for c in contenders]
    return _table(["contender", "family", "capabilities", "source", "what"], rows)


def verdict_table(tallies, properties, device: str) -> str:
    """``tallies`` from `harness.equivalence.verdicts.summarise`: one per contender, verdict decided."""
    rows = [[t.contender, str(t.cases), str(t.skipped), *[f"{t.passed[p]}/{t.cases}" for p in properties],
             str(t.limits), t.verdict] for t in tallies]
    title = (f"equivalence against the float64 oracle on {device} (passed/checked per property; "
             "limits: cases where theory predicts a breakdown or departure, asserted instead of "
             "compared)")
    return title + "\n" + _table(["contender", "cases", "skipped", *properties, "limits", "verdict"],
                                 rows)


SUMMARY_WIDTH = 100


def bench_summary(df, names: dict[str, str]) -> str:
    """What a person reads first after a run, within `SUMMARY_WIDTH` columns: why its
    unstable benchmarks are unstable, said once (`unstable_line`), then per case (named
    when it is a landmark: ``names`` maps case ids to names) and mode, the contenders
    fastest first with their median (to its noise digits), speedup against the family's
    reference, and a mark for failed or unstable ones. ``df`` is
    `harness.analysis.report.enrich`'s frame of one run."""
    lines = []
    flagged = df[df["stable"].map(is_false)] if "stable" in df else df.iloc[:0]
    if len(flagged):
        timed = int(df["median"].notna().sum())
        lines += textwrap.wrap(unstable_line(flagged["unstable_reason"], timed), SUMMARY_WIDTH,
                               subsequent_indent="  ")
    for (case_id, mode), sub in df.groupby(["case_id", "mode"], sort=False):
        # a case that is no landmark is a generated one or the user's (bench CASE_ID): its id
        title = f"{names[case_id]}: {case_id} {mode}" if case_id in names else f"{case_id} {mode}"
        lines.append(title if len(title) <= SUMMARY_WIDTH else title[:SUMMARY_WIDTH - 1] + "…")
        ranked = sub.sort_values("median", na_position="last")
        for r in ranked.itertuples():
            mark = ""
            if isinstance(getattr(r, "error", None), str) and r.error:
                mark = f"not timed: {r.error}"
            elif is_false(getattr(r, "stable", None)):
                mark = "unstable"  # why: the line above the cases, once
            speed = fmt_speedup(r.speedup)
            row = f"  {r.contender!s:<26} {fmt_time(r.median, r.median_noise):>9} {speed:>8}  {mark}"
            lines.append(row.rstrip() if len(row) <= SUMMARY_WIDTH else row[:SUMMARY_WIDTH - 1] + "…")
    return "\n".join(lines)


def unstable_line(reasons, timed: int) -> str:
    """How many of ``timed`` benchmarks are unstable and why, each shared reason once
    (`harness.benchmark.stability.shared_reasons`): "unstable (72 of 72): oversubscribed:
    4 runnable tasks on 2 cores"; with several, each with its count of benchmarks."""
    reasons = [str(r) if isinstance(r, str) else "" for r in reasons]
    shared = shared_reasons(reasons)
    if len(shared) == 1 and shared[0][1] == len(reasons):
        why = shared[0][0]
    else:
        why = "; ".join(f"{text} ({n})" for text, n in shared) or "no reason recorded"
    return f"unstable ({len(reasons)} of {max(timed, len(reasons))}): {why}"


def board_header(contenders, device: str) -> str:
    """The ecosystem board's first table: each library loss, its version, the call that
    should equal cross-entropy / BCE, and whether it can run here (and why not)."""
    rows = []
    for c in contenders:
        _, package, version = ([*c.source.split(" ", 2), "", ""][:3]
                               if c.source.startswith("ecosystem ") else ("", c.source, ""))
        why = c.unavailable(device)
        rows.append([c.name, package, version, c.family, c.description.split(": ", 1)[-1],
                     "checked" if not why else f"skipped: {why.split(': ', 1)[-1]}"])
    return ("the ecosystem board: each library's loss at the setting that should equal "
            "F.cross_entropy / F.binary_cross_entropy_with_logits\n"
            + _table(["name", "package", "version", "family", "call", "here"], rows))


def defect_report(contender: str, classes, repro) -> str:
    """``classes`` (`harness.equivalence.defects.DefectClass`) as lines a person reads:
    each distinct defect, its minimal case, what failed there, and ``repro(case)``."""
    lines = [f"FAIL {contender}: {len(classes)} distinct defect{'s' if len(classes) != 1 else ''}"]
    for k, d in enumerate(classes, 1):
        lines += [f"  {k}. {d.headline}",
                  f"     minimal case {d.minimal.id}: {d.detail}",
                  f"     reproduce: {repro(d.minimal)}"]
    return "\n".join(lines)


# ---- numbers printed to the digits their noise supports --------------------------------
DASH = "-"
_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def _finite(x) -> bool:
    try:
        return x is not None and x == x and abs(float(x)) != float("inf")
    except (TypeError, ValueError):
        return False


def fmt_num(value, noise=float("nan"), default_digits: int = 3, least: int = 1) -> str:
    """``value`` to the significant digits its ``noise`` (same unit) supports, and at
    least ``least``."""
    if not _finite(value):
        return DASH
    digits = max(least, significant_digits(float(value), float(noise) if _finite(noise)
                                           else float("nan"), default_digits))
    if abs(value) >= 10 ** (digits - 1):  # no decimals: round the integer part, no exponent
        return f"{round_sig(float(value), digits):.0f}"
    return f"{float(value):#.{digits}g}".rstrip(".")  # '#': keep trailing zeros that are known


def fmt_time(seconds, noise=float("nan")) -> str:
    if not _finite(seconds):
        return DASH
    scale, unit = next(((s, u) for s, u in _TIME_UNITS if abs(seconds) >= s), _TIME_UNITS[-1])
    # two digits at least: a noisy 35.6 ms rounded to one digit read "40 ms" above a
    # precise "36 ms" in a list sorted by median
    return f"{fmt_num(seconds / scale, noise / scale if _finite(noise) else noise, least=2)} {unit}"


def fmt_ratio(value, noise=float("nan")) -> str:
    return DASH if not _finite(value) else f"{fmt_num(value, noise)}×"


SPEEDUP_DECIMALS = 2


def fmt_speedup(value) -> str:
    """A speedup against the family's reference, the one format of every figure, table and
    terminal line: "1.23×", always `SPEEDUP_DECIMALS` decimals (the reference reads
    "1.00×"), "<0.01×" below what they can show."""
    if not _finite(value):
        return DASH
    smallest = 10 ** -SPEEDUP_DECIMALS
    if 0 < value < smallest / 2:
        return f"<{smallest:.{SPEEDUP_DECIMALS}f}×"
    return f"{value:.{SPEEDUP_DECIMALS}f}×"


def fmt_bytes(n) -> str:
    if not _finite(n):
        return DASH
    for scale, unit in ((2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if abs(n) >= scale:
            value = n / scale  # 1000 to 1023 of a unit: '.3g' alone read "1e+03 KiB"
            return f"{value:.3g} {unit}" if abs(value) < 1000 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


def fmt_seconds(x) -> str:
    return DASH if not _finite(x) else f"{x:.3g} s"


def fmt_p(p) -> str:
    if not _finite(p):
        return DASH
    return "<1e-4" if p < 1e-4 else f"{p:.2g}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table (pipes in cells escaped)."""
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


# ---- compare ---------------------------------------------------------------------------
_COMPARE_HEADER = ["status", "contender", "case", "mode", "ratio", "99% CI", "p", "test",
                   "raw ratio", "base", "new", "note"]


def _compare_rows(rows) -> list[list[str]]:
    """``rows`` from `harness.analysis.compare.presentable`, in its order; ``ci_half`` sets the digits."""
    out = []
    for r in rows.itertuples():
        ci = (f"{fmt_num(r.ci_low, r.ci_half)}–{fmt_num(r.ci_high, r.ci_half)}" if _finite(r.ci_low)
              else DASH)
        out.append([r.status, str(r.contender), str(r.case_id), str(r.mode),
                    fmt_ratio(r.ratio, r.ci_half), ci, fmt_p(r.p), r.test or DASH,
                    fmt_ratio(r.raw_ratio), fmt_time(r.base_median), fmt_time(r.new_median),
                    r.note or ""])
    return out


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _compare_intro(title: str, context: list[str], threshold: float) -> list[str]:
    return [f"compare {title}",
            f"judged by {verdict.UNPAIRED}: ratio = NEW/BASE of medians divided by the machine "
            f"factor; threshold {threshold:.0%}, significance by Mann-Whitney U or bootstrap CI; "
            "unstable benchmarks are never judged",
            *context]


_TERMINAL_HEADER = ["status", "contender", "case", "mode", "ratio", "99% CI", "p", "base", "new",
                    "note"]
CASE_WIDTH = 44  # longer case ids are cut in the terminal table (the markdown keeps them)


def short_case_ids(ids: Iterable[str], width: int) -> dict[str, str]:
    """Each case id cut to ``width`` characters with '…', for a terminal table; ids whose
    cuts would read alike stay whole (a case with weights given and the same case with
    ``-percall`` differ only in their last token)."""
    ids = list(dict.fromkeys(ids))
    cut = {i: i if len(i) <= width else i[:width - 1] + "…" for i in ids}
    shared = Counter(cut.values())
    return {i: c if shared[c] == 1 else i for i, c in cut.items()}


def compare_table(shown, counts: dict[str, int], title: str, context: list[str], threshold: float) -> str:
    """Terminal table of the ``shown`` rows (`harness.analysis.compare.presentable`) and ``counts``,
    the number of benchmarks per status: changes first, within 120 columns unless two case
    ids would cut alike (`short_case_ids`) — the test, the raw ratio and the note of each
    row go below the table as numbered notes."""
    lines = _compare_intro(title, context, threshold)
    if len(shown):
        rows, notes = [], []
        table = _compare_rows(shown)
        short = short_case_ids((full[2] for full in table), CASE_WIDTH)
        for full in table:
            status, contender, case, mode, ratio, ci, p, test, raw, base, new, note = full
            detail = "; ".join(x for x in (note, f"raw ratio {raw}" if raw != DASH else "",
                                           test if test != DASH else "") if x)
            mark = ""
            if detail and status not in (verdict.SAME, "new"):
                notes.append(textwrap.fill(f"[{len(notes) + 1}] {contender} {case} {mode}: {detail}",
                                           width=120, subsequent_indent="    "))
                mark = f"[{len(notes)}]"
            rows.append([status, contender, short[case], mode, ratio, ci, p, base, new, mark])
        lines.append(_table(_TERMINAL_HEADER, rows))
        lines += notes
    lines.append(f"summary: {_counts(counts)}")
    return "\n".join(lines)


def compare_markdown(changed, every, counts: dict[str, int], title: str, context: list[str],
                     threshold: float) -> str:
    """Markdown for a CI summary: ``counts``, the ``changed`` rows, then ``every`` row in a
    fold (rows as from `harness.analysis.compare.presentable`)."""
    intro = _compare_intro(title, context, threshold)
    out = [f"### Benchmark comparison: {intro[0].removeprefix('compare ')}", ""]
    for line in intro[1:]:
        out += [line, ""]
    out += [f"**{_counts(counts)}**", ""]
    if len(changed):
        out += [md_table(_COMPARE_HEADER, _compare_rows(changed)), ""]
    out += ["<details><summary>all benchmarks</summary>", "",
            md_table(_COMPARE_HEADER, _compare_rows(every)), "", "</details>"]
    return "\n".join(out)


# ---- ab ------------------------------------------------------------------------------
_AB_HEADER = ["verdict", "by", "contender", "case", "mode", "HEAD/BASE", "95% CI", "p (BH)", "pairs", "σ",
              "instr"]
_BY = {"wall time": "wall", "instructions": "instr", "wall time + instructions": "both", "the check": "check"}
AB_CASE_WIDTH = 26


def _ab_rows(rows: list[dict], width: int | None = None) -> list[list[str]]:
    """``rows`` from `harness.analysis.ab_verdicts.judge_run`; ``width`` cuts long case ids."""
    out = []
    short = short_case_ids((str(r["case_id"]) for r in rows), width) if width else {}
    for r in rows:
        bounded = _finite(r.get("low")) and _finite(r.get("high"))
        half = (r["high"] - r["low"]) / 2 if bounded else float("nan")
        ci = f"{fmt_num(r['low'], half)}–{fmt_num(r['high'], half)}" if _finite(r.get("low")) else DASH
        case = short.get(str(r["case_id"]), str(r["case_id"]))
        pairs = f"{r['pairs']}" + (f" (−{r['dropped']})" if r.get("dropped") else "")
        out.append([r["verdict"], _BY.get(r.get("by") or "", DASH), str(r["contender"]), case, str(r["mode"]),
                    fmt_ratio(r.get("ratio"), half), ci, fmt_p(r.get("p_adjusted")), pairs,
                    f"{r['sigma']:.3f}" if _finite(r.get("sigma")) else DASH,
                    f"{r['instr_ratio']:.3f}×" if _finite(r.get("instr_ratio")) else DASH])
    return out


def _ab_intro(doc: dict) -> list[str]:
    sides, st = doc["sides"], doc["settings"]
    name = {k: v["spec"] + (f" ({v['commit'][:10]})" if v.get("commit") else "") for k, v in sides.items()}
    return [f"ab {name['BASE']} -> {name['HEAD']}",
            f"judged by {verdict.PAIRED}: a block of rounds on each side, milliseconds apart, "
            f"in a random order; ratio = "
            f"median over pairs of HEAD/BASE; Wilcoxon signed-rank, Benjamini-Hochberg at "
            f"{st['alpha']:g}; threshold {st['threshold']:.0%}; verdicts by {doc['gave_verdict']}",
            *([f"instructions: {doc['instructions']}"] if doc.get("instructions") else []),
            _ab_sigma_line(doc)]


def _ab_sigma_line(doc: dict) -> str:
    if not _finite(doc["sigma_median"]):  # every pair dropped: nothing to estimate it from
        return f"no clean pairs to estimate a pair's σ from; {doc['seconds']:.0f} s"
    return (f"median σ of a pair's log ratio {doc['sigma_median']:.3f}: a 1.1× change needs about "
            f"{doc['pairs_for_1.1x']} pairs; {doc['seconds']:.0f} s")


def _ab_counts(doc: dict) -> str:
    only = "".join(f", {len(v)} only in {k}" for k, v in doc["only_in"].items() if v)
    return _counts(doc["counts"]) + only


def ab_table(doc: dict, everything: bool = False) -> str:
    """Terminal table of an `ab` verdict document: changes first, `same` rows only with
    ``everything``, errors as numbered notes."""
    rows = doc["rows"] if everything else [r for r in doc["rows"] if r["verdict"] != verdict.SAME]
    lines = _ab_intro(doc)
    if rows:
        lines.append(_table(_AB_HEADER, _ab_rows(rows, AB_CASE_WIDTH)))
        for r in rows:
            disagree = r.get("instr_note") if "memory" in str(r.get("instr_note")) else None
            said = "; ".join(x for x in (r.get("error"), r.get("note"), disagree) if x)
            if said:
                head = f"[{r['verdict']}] {r['contender']} {r['case_id']} {r['mode']}"
                lines.append(textwrap.fill(f"{head}: {said}", width=120, subsequent_indent="    "))
    lines.append(f"summary: {_ab_counts(doc)}")
    return "\n".join(lines)


def ab_markdown(doc: dict) -> str:
    """Markdown for a CI summary: the counts, the changed rows, every row in a fold."""
    intro = _ab_intro(doc)
    changed = [r for r in doc["rows"] if r["verdict"] != verdict.SAME]
    out = [f"### Paired benchmark comparison: {intro[0].removeprefix('ab ')}", "", *intro[1:], "",
           f"**{_ab_counts(doc)}**", ""]
    if changed:
        out += [md_table(_AB_HEADER, _ab_rows(changed)), ""]
    out += ["<details><summary>all benchmarks</summary>", "", md_table(_AB_HEADER, _ab_rows(doc["rows"])),
            "", "</details>"]
    return "\n".join(out)


# ---- report.md -------------------------------------------------------------------------
def runs_md(runs) -> str:
    rows = [[r.run_id, r.machine, str(r.commit or DASH)[:12], r.torch or DASH, r.devices or DASH,
             _threads_cell(r.run_threads), _fidelity_cell(r.fidelity_ok, r.fidelity_reason),
             str(r.datetime)[:19], str(r.benchmarks), r.file] for r in runs.itertuples()]
    return md_table(["run", "machine", "commit", "torch", "device", "threads", "timer fidelity",
                     "started", "benchmarks", "files"], rows)


def _threads_cell(threads) -> str:
    return str(int(threads)) if _finite(threads) else DASH


def is_false(value) -> bool:
    """A recorded False (Python's or numpy's), not a missing value."""
    return value is False or (type(value).__name__ == "bool_" and not value)


def _fidelity_cell(ok, reason) -> str:
    if is_false(ok):
        return f"FAILED: {reason}"
    return "ok" if ok is True or type(ok).__name__ == "bool_" else DASH


def unstable_md(rows) -> str:
    """Benchmarks whose timing the run itself distrusts (`harness.benchmark.stability`), with why."""
    return md_table(["run", "benchmark", "median", "why"],
                    [[r.run_id, r.name, fmt_time(r.median), str(r.unstable_reason)]
                     for r in rows.itertuples()])


def _median_cell(r) -> str:
    return fmt_time(r.median, r.median_noise) + (" (unstable)" if is_false(getattr(r, "stable", None))
                                                 else "")


# The per-case table's columns: (header, cell of one contender's row). A new column is one
# pair here (and, when it is a new number, one field of harness.benchmark.record).
CASE_COLUMNS: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("median", _median_cell),
    ("× ref", lambda r: fmt_speedup(r.speedup)),
    ("GB/s", lambda r: fmt_num(r.gbps, r.gbps_noise)),  # min_bytes / median (benchmark.traffic)
    ("% peak", lambda r: fmt_num(r.peak_bw_pct, r.peak_bw_pct_noise, 2)),
    ("peak mem", lambda r: fmt_bytes(r.peak_mem_bytes)),
    ("compile", lambda r: fmt_seconds(r.compile_s)),
)


def case_md(view, run_ids: list[str]) -> str:
    """One case and mode: contenders as rows (in ``view``'s order), runs side by side, the
    `CASE_COLUMNS` of each run.

    ``view`` has one row per contender and run with median/median_noise, speedup/
    speedup_noise, gbps/gbps_noise, peak_bw_pct/peak_bw_pct_noise, peak_mem_bytes, compile_s,
    ok, error."""
    multi = len(run_ids) > 1
    header = ["contender"] + [f"{name} [{r}]" if multi else name
                              for r in run_ids for name, _ in CASE_COLUMNS]
    rows = []
    for contender, sub in view.groupby("contender", sort=False):
        cells = [str(contender)]
        by_run = {r.run_id: r for r in sub.itertuples()}
        for rid in run_ids:
            cells += _case_cells(by_run.get(rid))
        rows.append(cells)
    return md_table(header, rows)


def _case_cells(r) -> list[str]:
    width = len(CASE_COLUMNS)
    if r is None:
        return [DASH] * width
    if not r.ok or not _finite(r.median):
        return [f"failed: {r.error}" if isinstance(r.error, str) else "not timed"] + [DASH] * (width - 1)
    return [cell(r) for _, cell in CASE_COLUMNS]


def summary_md(summary) -> str:
    """Fastest contender per run, device, dtype, family and mode; where the contender with
    the most wins is not it (slower than the reference on the whole), a note says so."""
    rows = [[r.run_id, str(r.device), str(r.dtype), str(r.family), str(r.mode), str(r.fastest),
             f"{r.wins}/{r.cases}", fmt_speedup(r.geomean_speedup),
             "" if r.most_wins == r.fastest else
             f"most wins: {r.most_wins} ({r.most_wins_count}/{r.cases}), slower on the whole"]
            for r in summary.itertuples()]
    return md_table(["run", "device", "dtype", "family", "mode", "fastest", "wins",
                     "geomean × ref", "note"], rows)


def trust_md(trust: list[dict]) -> str:
    """What each run's numbers are worth, as a list (``trust`` from
    `harness.analysis.report.run_trust`): per run its timer fidelity check, how many of
    its benchmarks are unstable and why (each shared reason once), how many failed."""
    lines = []
    for t in trust:
        run = f"**run {t['run_id']}**"
        fidelity = ("timer fidelity **FAILED**: " + str(t["fidelity_reason"] or "see its check")
                    if is_false(t["fidelity_ok"]) else "timer fidelity ok" if t["fidelity_ok"] is not None
                    else "timer fidelity not checked")
        lines.append(f"- {run} ({t['machine']}): {fidelity}.")
        if t["unstable_reasons"]:
            lines.append(f"- {run}: {unstable_line(t['unstable_reasons'], t['timed'])}. "
                         + _what_unstable_means(t["unstable_reasons"]))
        elif t["timed"]:
            lines.append(f"- {run}: all {t['timed']} timed benchmarks stable.")
        if t["failed"]:
            one = t["failed"] == 1
            lines.append(f"- {run}: {t['failed']} benchmark{'' if one else 's'} failed "
                         f"{'its' if one else 'their'} check and {'was' if one else 'were'} not timed "
                         "(named in the rankings).")
    return "\n".join(lines)


def _what_unstable_means(reasons) -> str:
    """Contention (preempted, oversubscribed, quantised) makes a median wrong; a wide spread
    alone is the benchmark's own variability, which `compare` still judges on its intervals
    (`harness.benchmark.stability.Stability.contaminated`)."""
    parts = [p for r in reasons if isinstance(r, str) for p in r.split("; ") if p]
    if parts and all(p.startswith(SPREAD) for p in parts):
        return ("Their rounds are widely spread, the benchmarks' own variability rather than "
                "contention: their medians are marked (unstable) below and their intervals are wide.")
    return ("Their medians are marked (unstable) below: they may be wrong, and a difference "
            "between them is no evidence; rerun on a quiet machine.")


# What each figure shows, by its file's prefix (the report's figure section, tables.md and
# report.html alike).
FIGURE_CAPTIONS = {
    "ranking": "one case (a landmark, by name): contenders fastest first, 95 % intervals, speedups, marks",
    "time_vs_size": "median time against bytes moved, every timed case",
    "speedup": "speedup against the family's reference, by imbalance and by size, one dtype",
    "bandwidth": "achieved bandwidth against the measured copy peak",
    "accuracy": "error against the float64 oracle by dtype and logit scale",
}


def figures_md(names) -> str:
    """The figures as markdown images, one paragraph each (alt text: the file and what it shows)."""
    out = []
    for name in names:
        caption = FIGURE_CAPTIONS.get(name.split("-", 1)[0].removesuffix(".png"), "")
        out.append(f"![{name}{' — ' + caption if caption else ''}]({name})")
    return "\n\n".join(out)


def accuracy_md(acc) -> str:
    """Largest error against the float64 oracle per contender × dtype × logit-scale band
    (``acc`` from `harness.analysis.report.accuracy_view`: loss and grad columns side by side).
    'known limit' counts, for the loss and the gradient, the cases where theory predicted
    a breakdown or departure, asserted instead of compared: their errors are not shown."""
    def e(x) -> str:
        return f"{x:.2g}" if _finite(x) else DASH
    rows = [[r.contender, r.dtype, r.band, e(r.loss_max_abs), e(r.loss_max_rel), e(r.grad_max_abs),
             e(r.grad_max_rel), str(int(r.cases)), f"{int(r.loss_limited)}/{int(r.grad_limited)}",
             str(int(r.failed))]
            for r in acc.itertuples()]
    return md_table(["contender", "dtype", "logit scale", "loss abs", "loss rel", "grad abs",
                     "grad rel", "cases", "known limit (loss/grad)", "failed"], rows)


# The headline table's columns after the case, mode and contender: (header, cell of one
# row of `harness.analysis.report.headline_view`).
HEADLINE_COLUMNS: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("median", _median_cell),
    ("GB/s", lambda r: fmt_num(r.gbps, r.gbps_noise)),  # min_bytes / median (benchmark.traffic)
    ("% copy", lambda r: fmt_num(r.copy_pct, r.copy_pct_noise, 2)),  # of the run's ceiling
    ("model GB/s", lambda r: fmt_num(r.model_gbps, r.model_gbps_noise)),  # traffic.model_bytes
    ("model % copy", lambda r: fmt_num(r.model_copy_pct, r.model_copy_pct_noise, 2)),
    ("× eager", lambda r: fmt_speedup(r.x_eager)),
    ("× compiled", lambda r: fmt_speedup(r.x_compiled)),
    ("× Liger", lambda r: fmt_speedup(r.x_liger)),
    ("peak mem", lambda r: fmt_bytes(r.peak_mem_bytes)),
    ("loss err", lambda r: _error_cell(r.loss_error)),
    ("grad err", lambda r: _error_cell(r.grad_error)),
    ("of bound", lambda r: f"{r.error_of_bound:.2g}" if _finite(r.error_of_bound) else DASH),
)


def _error_cell(x) -> str:
    return f"{x:.1e}" if _finite(x) else DASH


def headline_md(view) -> str:
    """The headline table: one row per case, mode and contender of ``view`` (in its order),
    a failed or untimed benchmark as its reason."""
    header = ["case", "mode", "contender", *(name for name, _ in HEADLINE_COLUMNS)]
    rows = []
    for r in view.itertuples():
        head = [f"{r.headline} `{r.case_id}`", str(r.mode), str(r.contender)]
        rows.append(head + _headline_cells(r))
    return md_table(header, rows)


def _headline_cells(r) -> list[str]:
    width = len(HEADLINE_COLUMNS)
    if not r.ok or not _finite(r.median):
        return [f"failed: {r.error}" if isinstance(r.error, str) else "not timed"] + [DASH] * (width - 1)
    return [cell(r) for _, cell in HEADLINE_COLUMNS]
