"""`report`'s headline table (`harness.analysis.report.headline_view`, `tables.headline_md`):
a run of `bench --cases headline` becomes one table of GB/s, % of the copy, speedups against
eager, compiled and Liger, peak memory and the errors against float64, in ``tables.md`` and
``report.html``."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from fakes import make_run, write_run

from harness.analysis import report
from harness.analysis.load import load
from harness.benchmark.case_sets import headline

CASES = headline("small", "cpu")
MULTICLASS = {"eager": 1.0, "compiled_eager": 0.5, "liger": 0.8, "fused_triton": 0.4}
BINARY = {"bce_logits": 1.0, "compiled_bce_logits": 0.5, "fused_triton_binary": 0.25}


# the run's measured ceilings, as the session writes them (`timing.measure_ceilings`)
CEILINGS = {"bytes": 32 << 20, "rounds": 5, "copy_gbps": 50.0, "read_gbps": 80.0}
MODEL_FACTOR = {"eager": 6, "fused_triton": 2}  # model_bytes = factor × min_bytes; others none


def _run(tmp_path, name: str, cases, speed: dict):
    doc = make_run(cases=tuple(cases), speed=speed, noise=0.001, modes=("fwd_bwd",),
                   stamp={"schema": 1, "ceilings": CEILINGS})
    for b in doc["benchmarks"]:
        info = b["extra_info"]
        factor = MODEL_FACTOR.get(info["contender"])
        info.update(loss_error=1.5e-7, grad_error=2.5e-9, error_of_bound=0.03,
                    model_bytes=factor * info["bytes"] if factor else None)
    return write_run(tmp_path / name, doc)


@pytest.fixture
def headline_run(tmp_path):
    multiclass = [c for c in CASES.values() if c.family == "multiclass"]
    binary = [c for c in CASES.values() if c.family == "binary"]
    df = load([_run(tmp_path, "m.json", multiclass, MULTICLASS)])
    binary_df = load([_run(tmp_path, "b.json", binary, BINARY)])
    binary_df["run_id"] = df["run_id"].iloc[0]  # one run, as one bench writes it
    return report.enrich(pd.concat([df, binary_df], ignore_index=True))


def test_speedups_are_against_eager_compiled_and_liger(headline_run) -> None:
    view = report.headline_view(headline_run)
    assert list(dict.fromkeys(view["headline"])) == list(CASES)  # the set's order
    fused = view[(view["contender"] == "fused_triton") & (view["headline"] == "seed_f32_per_call")].iloc[0]
    assert fused.x_eager == pytest.approx(1 / 0.4, rel=0.02)
    assert fused.x_compiled == pytest.approx(0.5 / 0.4, rel=0.02)
    assert fused.x_liger == pytest.approx(0.8 / 0.4, rel=0.02)
    binary = view[view["contender"] == "fused_triton_binary"].iloc[0]
    assert binary.x_eager == pytest.approx(4, rel=0.02) and binary.x_compiled == pytest.approx(2, rel=0.02)
    assert math.isnan(binary.x_liger)  # no Liger BCE
    first = view[view["headline"] == "seed_f32"]["contender"].tolist()
    assert first == ["fused_triton", "compiled_eager", "liger", "eager"]  # fastest first


def test_the_table_is_in_tables_md(headline_run) -> None:
    md = report.render_markdown(headline_run)
    section = md.split("## Headline", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines()
               if line.startswith("| seed_bf16_per_call") and "| fused_triton |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == f"seed_bf16_per_call `{CASES['seed_bf16_per_call'].id}`"
    assert cells[8:11] == ["2.50×", "1.25×", "2.00×"]
    assert cells[12:15] == ["1.5e-07", "2.5e-09", "0.03"]
    assert md.index("## Headline") < md.index("## Rankings")


def test_a_run_without_headline_cases_has_no_headline_section(tmp_path) -> None:
    doc = make_run(cases=(CASES["vocab_1000"].replace(n=8),), modes=("fwd",))
    df = report.enrich(load([write_run(tmp_path / "r.json", doc)]))
    assert "## Headline" not in report.render_markdown(df)


def test_the_record_keeps_the_checks_errors_against_the_oracle() -> None:
    """What the headline's error columns read: `fixture._errors` of the check before timing."""
    import torch.nn.functional as F

    from harness.benchmark.fixture import _errors
    from harness.benchmark.step import check_before_timing
    from harness.contenders import Contender

    eager = Contender("eager", "multiclass", F.cross_entropy, "reference", source="test")
    verdicts = check_before_timing(eager, CASES["seed_bf16_per_call"], "fwd_bwd", "cpu")
    errors = _errors(verdicts)
    by_prop = {v.prop: v for v in verdicts}
    assert errors["loss_error"] == by_prop["loss"].max_abs > 0  # bf16 is not exact
    assert errors["grad_error"] == by_prop["grad"].max_abs > 0
    assert errors["error_of_bound"] == max(by_prop["loss"].of_bound, by_prop["grad"].of_bound) <= 1


def test_gbps_and_percent_of_the_copy_by_min_bytes_and_by_the_model(headline_run) -> None:
    """The run's JSON carries the ceilings (``xentbench.ceilings``) and each record its
    ``model_bytes``: the table shows GB/s and % of the copy ceiling by both."""
    view = report.headline_view(headline_run)
    for contender, factor in MODEL_FACTOR.items():
        r = view[(view["contender"] == contender) & (view["headline"] == "seed_f32")].iloc[0]
        assert r.ceiling_copy_gbps == 50.0
        assert r.gbps == pytest.approx(r["bytes"] / r["median"] / 1e9)
        assert r.copy_pct == pytest.approx(100 * r.gbps / 50.0)
        assert r.model_gbps == pytest.approx(factor * r.gbps)
        assert r.model_copy_pct == pytest.approx(100 * factor * r.gbps / 50.0)
    md = report.render_markdown(headline_run)
    section = md.split("## Headline", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in section.splitlines() if line.startswith("| case"))
    names = [c.strip() for c in header.strip("|").split("|")]
    assert names[3:8] == ["median", "GB/s", "% copy", "model GB/s", "model % copy"]

    def cells(contender: str) -> list[str]:
        row = next(line for line in section.splitlines()
                   if line.startswith("| seed_f32 ") and f"| {contender} |" in line)
        return [c.strip() for c in row.strip("|").split("|")]

    eager = view[(view["contender"] == "eager") & (view["headline"] == "seed_f32")].iloc[0]
    got = cells("eager")
    assert float(got[5]) == pytest.approx(eager.copy_pct, rel=0.01)
    assert float(got[6]) == pytest.approx(6 * float(got[4]), rel=0.01)
    assert float(got[7]) == pytest.approx(6 * eager.copy_pct, rel=0.01)
    assert cells("liger")[6:8] == ["-", "-"]  # no model recorded for it in this run


def test_a_run_without_ceilings_falls_back_to_the_sessions_copy(tmp_path) -> None:
    doc = make_run(cases=(CASES["seed_f32"],), speed=MULTICLASS, modes=("fwd_bwd",))
    df = report.enrich(load([write_run(tmp_path / "old.json", doc)]))
    view = report.headline_view(df)
    assert view["ceiling_copy_gbps"].isna().all()
    assert list(view["copy_pct"]) == pytest.approx(list(view["peak_bw_pct"]))


@pytest.mark.parametrize(("size", "device"), [("full", "cuda"), ("small", "cpu")])
def test_each_kind_of_headline_case_comes_in_the_first_round(size, device):
    """A deadline cuts the case set from its end (the GPU check's table stage): the first
    four cases hold one of each kind (weights given, weights per call, the binary form,
    the vocabulary), so a cut after them leaves rounds, not kinds, out; the next round is
    bf16."""
    def kind(case) -> str:
        if case.family == "binary":
            return "binary"
        return "per_call" if case.per_call else "vocabulary" if case.c > 2 else "given"

    cases = list(headline(size, device).values())
    assert len(cases) == 12 and len({c.id for c in cases}) == 12
    assert sorted(kind(c) for c in cases[:4]) == ["binary", "given", "per_call", "vocabulary"]
    assert sorted(kind(c) for c in cases[4:8]) == ["binary", "given", "per_call", "vocabulary"]
    assert {c.dtype for c in cases[:3]} == {"f32"} and {c.dtype for c in cases[4:8]} == {"bf16"}


def test_a_table_cut_short_names_the_headline_cases_it_lacks(tmp_path, headline_run) -> None:
    """A deadline (the GPU check's table stage) or a ``-k`` leaves cases out: the report and
    the GPU check's summary name them in the set's order; a whole set names none."""
    from harness import gpu_check

    assert report.headline_missing_lines(report.headline_view(headline_run)) == []
    first = list(CASES.values())[:5]
    path = _run(tmp_path, "cut.json", [c for c in first if c.family == "multiclass"], MULTICLASS)
    df = report.enrich(load([path]))
    rest = [name for name, case in CASES.items()
            if case not in first or case.family != "multiclass"]
    line = f"headline cases not in this run: {', '.join(rest)} (stopped by a deadline, or not selected)"
    assert report.headline_missing_lines(report.headline_view(df)) == [line]
    assert line in report.render_markdown(df).split("## Headline", 1)[1].split("\n## ", 1)[0]
    assert gpu_check.table_lines(path)[-1] == line
