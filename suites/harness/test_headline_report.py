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


def _run(tmp_path, name: str, cases, speed: dict):
    doc = make_run(cases=tuple(cases), speed=speed, noise=0.001, modes=("fwd_bwd",))
    for b in doc["benchmarks"]:
        b["extra_info"].update(loss_error=1.5e-7, grad_error=2.5e-9, error_of_bound=0.03)
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
    assert cells[6:9] == ["2.50×", "1.25×", "2.00×"]
    assert cells[10:13] == ["1.5e-07", "2.5e-09", "0.03"]
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
