"""report: tables.md, runs.csv and PNG plots that open; runs side by side; accuracy table."""

from __future__ import annotations

import math

import matplotlib.image
import pandas as pd
import pytest
from fakes import CASES, make_run, write_run

from harness.analysis import report, tables
from harness.analysis.accuracy import AccuracyLog, load_accuracy, scale_band
from harness.analysis.load import ResultsError, load
from harness.analysis.writers import read_csv
from harness.cli import main
from harness.equivalence.properties import Verdict
from harness.problem.case import Case

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def two_machines(tmp_path):
    small = CASES[:3]
    a = write_run(tmp_path / "vm.json", make_run(0, cases=small))
    b = write_run(tmp_path / "ci.json", make_run(1, cases=small, machine=1.5, node="ci", cpu="Intel Xeon"))
    return a, b


def _accuracy_file(path):
    log = AccuracyLog(device="cpu", torch="2.13.0")
    case = Case(64, 1000, scale=30.0)
    log.add("eager", case, {"loss": Verdict("loss", True, max_abs=1e-7, max_rel=2e-8),
                            "grad": Verdict("grad", True, max_abs=3e-9, max_rel=1e-9),
                            "meta": Verdict("meta", True)})
    log.add("naive", case, [Verdict("loss", False, max_abs=0.5, max_rel=0.1)])
    log.add("naive", case.replace(seed=1), [Verdict("loss", True, max_abs=0.2, max_rel=0.3)])
    return log.write(path)


def test_report_writes_markdown_csv_and_pngs_that_open(tmp_path, two_machines, capsys):
    out = tmp_path / "report"
    acc = _accuracy_file(tmp_path / "acc.json")
    assert main(["report", *map(str, two_machines), "--out", str(out), "--accuracy", str(acc)]) == 0
    md = (out / "tables.md").read_text()
    for text in ("## Runs", "## Fastest contender", "## Accuracy", "## Rankings", CASES[0].id,
                 "median [vm]", "median [ci]", "vm (AMD EPYC)", "ci (Intel Xeon)",
                 "| naive | f32 | 10-100 | 0.5 | 0.3 | - |"):
        assert text in md
    csv = read_csv(out / "runs.csv")
    assert len(csv) == 2 * 3 * 4 * 2 and isinstance(csv["data"].iloc[0], list)
    pngs = sorted(out.glob("*.png"))
    ranked = {f"ranking-{c.id}-{run}.png" for c in CASES[:3] for run in ("vm", "ci")}  # no landmark
    assert {p.name for p in pngs} == {*ranked, "accuracy.png", *(f"{kind}-{run}.png" for run in ("vm", "ci")
                                      for kind in ("time_vs_size", "speedup", "bandwidth"))} - {
        "speedup-vm.png", "speedup-ci.png"} | {"speedup-vm-f32.png", "speedup-ci-f32.png"}  # one per dtype
    for png in pngs:
        assert png.read_bytes()[:8] == PNG and matplotlib.image.imread(png).ndim == 3
    assert str(out / "tables.md") in capsys.readouterr().out
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_contenders_sorted_by_median_with_speedups(two_machines):
    df = report.enrich(load([two_machines[0]]))
    view = df[(df["case_id"] == CASES[1].id) & (df["mode"] == "fwd")]
    assert report.contender_order(view, ["vm"]) == ["compiled", "ext", "eager", "naive"]
    eager = view[view["contender"] == "eager"].iloc[0]
    naive = view[view["contender"] == "naive"].iloc[0]
    assert eager["speedup"] == 1.0 and naive["speedup"] == pytest.approx(1 / 1.7, rel=0.1)


def test_summary_names_the_fastest_per_device_dtype_family(two_machines):
    summary = report.fastest_summary(report.enrich(load(list(two_machines))))
    assert set(summary["fastest"]) == {"compiled"} and (summary["wins"] == summary["cases"]).all()
    assert summary["geomean_speedup"].between(1.5, 1.8).all()


def test_failed_contender_shows_its_error(tmp_path):
    doc = make_run(cases=CASES[:1])
    doc["xentbench"] = {"schema": 1, "failures": [{"name": "t::test_bench[x-liger-fwd]", "contender": "liger",
                                                   "case_id": CASES[0].id, "mode": "fwd", "error": "OOM"}]}
    md = report.render_markdown(report.enrich(load([write_run(tmp_path / "r.json", doc)])))
    assert "| liger | failed: OOM |" in md


def test_report_without_raw_rounds_or_optional_keys(tmp_path):
    doc = make_run(cases=CASES[:1], save_data=False)
    for b in doc["benchmarks"]:
        for key in ("gbps", "peak_gbps", "peak_bw_pct", "peak_mem_bytes", "compile_s"):
            b["extra_info"].pop(key)
    written = report.write_report([write_run(tmp_path / "r.json", doc)], tmp_path / "out", plots=False)
    assert [p.name for p in written] == ["tables.md", "runs.csv", "report.html"]


def test_numbers_printed_to_the_digits_their_noise_supports():
    assert tables.fmt_time(1.23456e-3, 2e-6) == "1.235 ms"
    assert tables.fmt_time(1.23456e-3, 1e-4) == "1.2 ms"
    assert tables.fmt_time(1.23456e-3) == "1.23 ms"
    assert tables.fmt_ratio(2.0, 0.05) == "2.00×"
    assert tables.fmt_num(math.nan) == tables.DASH
    assert tables.fmt_bytes(3 * 2 ** 20) == "3 MiB"
    # times keep two digits, so a noisy median never reads above a smaller precise one
    assert tables.fmt_time(35.6e-3, 10e-3) == "36 ms" and tables.fmt_time(36.2e-3, 1e-4) == "36.2 ms"


def test_accuracy_log_round_trip_and_merge(tmp_path):
    a = _accuracy_file(tmp_path / "w0.json")
    log = AccuracyLog(device="cpu")
    log.add("naive", Case(64, 1000, scale=30.0, seed=2), [Verdict("loss", True, max_abs=0.9, max_rel=0.05)])
    log.write(tmp_path / "w1.json")
    acc = load_accuracy([tmp_path])
    naive = acc[(acc["contender"] == "naive") & (acc["prop"] == "loss")].iloc[0]
    assert naive["max_abs"] == 0.9 and naive["max_rel"] == 0.3
    assert naive["cases"] == 3 and naive["failed"] == 1
    assert AccuracyLog.read(a).to_dict()["schema"] == "xentbench.accuracy"


def test_bad_accuracy_file_is_a_one_line_error(tmp_path, two_machines, capsys):
    bad = tmp_path / "acc.json"
    bad.write_text('{"schema": "something else"}')
    with pytest.raises(ResultsError, match="not a xentbench accuracy file"):
        load_accuracy([bad])
    assert main(["report", str(two_machines[0]), "--out", str(tmp_path / "o"), "--accuracy", str(bad)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize(("scale", "band"), [(0.5, "<=1"), (1.0, "<=1"), (30.0, "10-100"), (1e6, ">1e4")])
def test_scale_bands(scale, band):
    assert scale_band(scale) == band


def test_asserted_known_limits_are_counted_not_reported_as_errors(tmp_path):
    """A predicted breakdown carries no error: the cell counts it and shows no error."""
    log = AccuracyLog(device="cpu")
    case = Case(4, 8, scale=1000.0)
    broke = Verdict("grad", True, "predicted breakdown (...) observed", compared=False, regime="breaks")
    log.add("softmax_log_nll", case, [broke, Verdict("loss", True, max_abs=1e-3, max_rel=1e-6)])
    log.write(tmp_path / "acc.json")
    view = report.accuracy_view(load_accuracy([tmp_path / "acc.json"]))
    row = view.iloc[0]
    assert (row["loss_limited"], row["grad_limited"], row["cases"]) == (0, 1, 1)
    assert math.isnan(row["grad_max_abs"]) and row["loss_max_abs"] == 1e-3
    table = tables.accuracy_md(view).splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    cells = dict(zip(header, (c.strip() for c in table[2].strip("|").split("|")), strict=True))
    assert cells["known limit (loss/grad)"] == "0/1" and cells["grad abs"] == tables.DASH


def test_the_run_summary_ranks_contenders_within_100_columns(tmp_path):
    """What `python -m harness bench` prints last: per case and mode the contenders fastest
    first, with speedups against the family reference and failures marked."""
    doc = make_run(cases=CASES[:2])
    doc["xentbench"] = {"schema": 1, "failures": [{"name": "t::test_bench[x-liger-fwd]", "contender": "liger",
                                                   "case_id": CASES[0].id, "mode": "fwd", "error": "OOM"}]}
    text = report.run_summary(write_run(tmp_path / "r.json", doc), "small", "cpu")
    lines = text.splitlines()
    assert max(map(len, lines)) <= tables.SUMMARY_WIDTH
    block = lines[lines.index(next(ln for ln in lines if CASES[0].id in ln and ln.endswith(" fwd"))):]
    timed = [ln for ln in block[1:] if ln.startswith("  ")][:3]
    medians = [ln.split()[1:3] for ln in timed]
    assert timed and all("×" in ln for ln in timed), block[:6]
    assert any("liger" in ln and "not timed: OOM" in ln for ln in lines), text
    assert medians  # fastest first is checked through the speedups: non-increasing
    speeds = [float(ln.split()[-1].rstrip("×")) for ln in timed]
    assert speeds == sorted(speeds, reverse=True)


def test_report_html_holds_every_figure_and_the_tables(tmp_path, two_machines):
    """report.html is self-contained: every figure the report drew is inline (its PNG bytes,
    base64), nothing is fetched from beside it, and it holds the tables of tables.md as
    HTML tables. (That a browser shows them: test_browser.py.)"""
    import base64
    import re

    written = report.write_report([str(p) for p in two_machines], tmp_path / "rep")
    page = (tmp_path / "rep" / "report.html").read_text()
    pngs = [p for p in written if p.suffix == ".png"]
    inline = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', page)
    assert sorted(alt for _, alt in inline) == sorted(p.name for p in pngs)
    assert all(base64.b64decode(data) == (tmp_path / "rep" / alt).read_bytes() for data, alt in inline)
    assert not re.findall(r'src="(?!data:)', page)
    md = (tmp_path / "rep" / "tables.md").read_text()
    tables_in_md = sum(1 for a, b in zip(["", *md.splitlines()], md.splitlines(), strict=False)
                       if b.startswith("|") and not a.startswith("|"))
    assert page.count("<table>") == tables_in_md > 0


def test_a_tie_in_wins_goes_to_the_higher_geometric_mean_speedup():
    """One case each: the contender that is 0.04× as fast as the reference elsewhere is not
    crowned because its name sorts first."""
    rows = []
    for case, medians in (("c1", {"eager": 1.0, "aaa": 0.9, "zzz": 1.1}),
                          ("c2", {"eager": 1.0, "aaa": 25.0, "zzz": 0.8})):
        for contender, median in medians.items():
            rows.append(dict(run_id="r", device="cpu", dtype="f32", family="multiclass",
                             mode="fwd", case_id=case, contender=contender, median=median,
                             speedup=1.0 / median, size=100))
    summary = report.fastest_summary(pd.DataFrame(rows))
    assert list(summary["fastest"]) == ["zzz"] and list(summary["wins"]) == [1]


def test_each_family_has_its_own_reference():
    """eager normalises multi-class benchmarks, bce_logits binary ones."""
    df = pd.DataFrame({"contender": ["eager", "bce_logits", "eager", "bce_logits", "scratch"],
                       "family": ["multiclass", "binary", "binary", "multiclass", None]})
    assert report.is_reference(df).tolist() == [True, True, False, False, False]
    assert report.reference_of("binary") == "bce_logits" and report.reference_of(None) == "eager"


BUSY = ("oversubscribed: 4 runnable tasks on 2 cores in {}% of rounds, a neighbour shares the cores "
        "and caches")


def _busy_run(tmp_path, cases=CASES[:2]):
    """A run on a busy machine, as a 2-core VM beside two busy loops records it: the timer
    check failed, every benchmark oversubscribed (the share of rounds differs), one failure."""
    doc = make_run(cases=cases)
    for i, b in enumerate(doc["benchmarks"]):
        b["extra_info"].update(stable=False, unstable_reason=BUSY.format(90 + i % 7))
    doc["xentbench"] = {"schema": 1, "fidelity": {"ok": False, "reason": "the machine was busy: 3 runnable "
                                                  "tasks on 2 cores"},
                        "failures": [{"name": "t::test_bench[x-liger-fwd]", "contender": "liger",
                                      "case_id": cases[0].id, "mode": "fwd", "error": "OOM"}]}
    return write_run(tmp_path / "busy.json", doc)


def test_report_html_leads_with_what_to_believe_then_rankings_then_figures(tmp_path):
    """The page opens with the run's trust (timer fidelity, how many benchmarks are unstable
    and why, the shared reason once), then the fastest contenders and each case ranked as a
    table, and only then the figures; its markdown is rendered: no literal backtick
    anywhere, headings included."""
    from harness.analysis.html import html_page

    df = report.enrich(load([_busy_run(tmp_path)]))
    names = ["ranking-x.png", "speedup-r-f32.png"]
    page = html_page(report.render_markdown(df, figures=names), [(n, PNG + n.encode()) for n in names])
    assert "`" not in page
    trust = page.index("<h2>What to believe</h2>")
    said = page.index("unstable (16 of 16): oversubscribed: 4 runnable tasks on 2 cores.")
    positions = [page.index(x) for x in ("timer fidelity <strong>FAILED</strong>: the machine was busy",
                                         "<h2>Fastest contender</h2>", "<h2>Rankings</h2>",
                                         f"<h3><code>{CASES[1].id}</code> · fwd_bwd · cpu f32</h3>",
                                         "<figure>", "<h2>Runs</h2>")]
    assert trust < positions[0] < said < positions[1] and positions == sorted(positions)
    assert page[:page.index("<figure>")].count("oversubscribed") == 1  # said once before the figures
    assert "<td>liger</td><td>failed: OOM</td>" in page


def test_a_spread_alone_is_not_called_contention():
    """Benchmarks unstable only by their spread (their own variability: compare still judges
    them) are not told to be rerun on a quiet machine; contention is."""
    trust = {"run_id": "r", "machine": "vm", "fidelity_ok": True, "fidelity_reason": None, "timed": 9,
             "failed": 0, "unstable_reasons": ["spread: IQR is 83% of the median (limit 50%)"]}
    wide = tables.trust_md([trust])
    busy = tables.trust_md([{**trust, "unstable_reasons": [BUSY.format(93)]}])
    assert "unstable (1 of 9): spread" in wide and "own variability" in wide and "quiet" not in wide
    assert "rerun on a quiet machine" in busy


def test_the_fastest_is_never_slower_than_the_reference():
    """'aaa' wins two cases of three but is slower than eager on the geometric mean of its
    speedups (0.95×): the reference is named, with its own win; a tie in wins still goes to
    the higher geometric mean."""
    rows = []
    for case, medians in (("c1", {"eager": 1.0, "aaa": 0.95, "zzz": 1.2}),
                          ("c2", {"eager": 1.0, "aaa": 0.95, "zzz": 1.2}),
                          ("c3", {"eager": 1.0, "aaa": 1.3, "zzz": 1.2})):
        for contender, median in medians.items():
            rows.append(dict(run_id="r", device="cpu", dtype="f32", family="multiclass", mode="fwd",
                             case_id=case, contender=contender, median=median, speedup=1.0 / median,
                             size=100))
    summary = report.fastest_summary(pd.DataFrame(rows)).iloc[0]
    assert (summary["fastest"], summary["wins"], summary["geomean_speedup"]) == ("eager", 1, 1.0)
    assert tables.summary_md(report.fastest_summary(pd.DataFrame(rows))).splitlines()[-1].endswith(
        "| eager | 1/3 | 1.00× | most wins: aaa (2/3), slower on the whole |")


def test_the_run_summary_says_a_shared_unstable_reason_once(tmp_path):
    """Every benchmark oversubscribed: one line says so and why, each row only 'unstable'
    (the terminal had ended 72 rows with the same cut-off reason)."""
    text = report.run_summary(_busy_run(tmp_path), "small", "cpu")
    lines = text.splitlines()
    assert "unstable (16 of 16): oversubscribed: 4 runnable tasks on 2 cores" in text
    assert text.count("oversubscribed") == 1 and not [ln for ln in lines if ln.endswith("…")]
    rows = [ln for ln in lines if ln.startswith("  ") and "×" in ln]
    assert len(rows) == 16 and all(ln.endswith("unstable") for ln in rows)


def test_the_terminal_warning_says_a_shared_unstable_reason_once():
    """The plugin's end-of-run warning: one line with the count and the shared reason, no
    line per benchmark when every one is unstable; their names when only some are."""
    from types import SimpleNamespace

    from harness.pytest_plugin import summary
    from harness.pytest_plugin.session import XentSession

    class Terminal:
        def __init__(self, timed: int):
            bench = SimpleNamespace(stats=object(), extra_info={"contender": "eager"})
            self.config = SimpleNamespace(_benchmarksession=SimpleNamespace(benchmarks=[bench] * timed))
            self.lines: list[str] = []

        def section(self, *args, **kwargs):
            pass

        def write_line(self, line, **kwargs):
            self.lines.append(line)

    xent = XentSession()
    xent.unstable[:] = [(f"test_bench[c-eager-{i}]", BUSY.format(90 + i)) for i in range(3)]
    every, some = Terminal(3), Terminal(5)
    summary.unstable(every, xent)
    summary.unstable(some, xent)
    assert every.lines[0] == "unstable (3 of 3): oversubscribed: 4 runnable tasks on 2 cores"
    assert len(every.lines) == 2 and every.lines[1].startswith("WARNING: 3 benchmark(s) unstable")
    assert some.lines[0].startswith("unstable (3 of 5)") and some.lines[1:4] == [
        f"  test_bench[c-eager-{i}]" for i in range(3)]
