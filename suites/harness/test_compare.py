"""compare: machine-factor normalisation, noise-aware, unstable never judged, CI exit codes."""

from __future__ import annotations

import argparse
import copy
import json
import math

import numpy as np
import pytest
from fakes import CASES, make_run, scale_contender, write_run

from harness import verdict
from harness.analysis import ab_verdicts, compare, paired, stats
from harness.analysis.load import load
from harness.analysis.paired import PairedSettings
from harness.cli import main, parse_threshold


def _compare(tmp_path, base: dict, new: dict, **settings):
    b = load([write_run(tmp_path / "base.json", base)])
    n = load([write_run(tmp_path / "new.json", new)])
    return compare.compare_runs(b, n, compare.Settings(**settings))


def _statuses(result) -> dict:
    return result.groupby("status")["contender"].agg(lambda s: set(s)).to_dict()


def test_two_runs_of_the_same_code_show_no_change(tmp_path):
    result = _compare(tmp_path, make_run(0), make_run(1))
    assert set(result["status"]) == {"same"}


def test_exactly_the_contender_made_2x_slower_is_slower(tmp_path):
    result = _compare(tmp_path, make_run(0), scale_contender(make_run(1), "ext", 2.0))
    slower = result[result["status"] == "slower"]
    assert set(slower["contender"]) == {"ext"} and len(slower) == len(result[result["contender"] == "ext"])
    assert set(result[result["contender"] != "ext"]["status"]) == {"same"}
    assert slower["ratio"].between(1.8, 2.2).all() and (slower["p"] < 0.01).all()


def test_faster_is_reported_as_faster(tmp_path):
    result = _compare(tmp_path, make_run(0), scale_contender(make_run(1), "naive", 0.5))
    assert _statuses(result)["faster"] == {"naive"}


def test_a_uniformly_slower_machine_flags_nothing(tmp_path):
    result = _compare(tmp_path, make_run(0), make_run(1, machine=1.5))
    assert set(result["status"]) == {"same"}
    assert result["raw_ratio"].between(1.35, 1.65).all()


def test_a_slower_eager_is_slower_and_moves_no_one_else(tmp_path):
    """No contender is a reference any more: eager is judged like the others, and its
    change does not reach their ratios (it did when every ratio was divided by eager's)."""
    result = _compare(tmp_path, make_run(0), scale_contender(make_run(1), "eager", 2.0))
    assert _statuses(result) == {"slower": {"eager"}, "same": {"naive", "compiled", "ext"}}


def test_a_noisy_contender_does_not_move_everyone(tmp_path):
    """One contender's rounds are wide (40 %): its medians move between runs, the others'
    ratios do not follow them."""
    noisy = {"eager": 0.4}
    result = _compare(tmp_path, make_run(0, noise_of=noisy), make_run(1, noise_of=noisy))
    assert not {"slower", "faster"} & set(result["status"])
    assert set(result[result["contender"] != "eager"]["status"]) == {"same"}


def test_a_jittery_reference_no_longer_flags_its_case(tmp_path):
    """The A/A failure of the reference design: eager moved by 20 % on one case between two
    runs of identical code, which flagged every other contender of that case at p < 1e-4.
    With the machine factor only eager's own row can move, and it is within the drift."""
    base, new = make_run(0), make_run(1)
    case = CASES[1].id
    for b in new["benchmarks"]:
        if b["extra_info"]["contender"] == "eager" and b["extra_info"]["case_id"] == case:
            b["stats"]["median"] *= 1.2
            b["stats"]["data"] = [x * 1.2 for x in b["stats"]["data"]]
    result = _compare(tmp_path, base, new)
    others = result[(result["case_id"] == case) & (result["contender"] != "eager")]
    assert set(others["status"]) == {"same"}
    assert set(result[result["contender"] != "eager"]["status"]) == {"same"}


def test_noise_without_significance_is_undecided(tmp_path):
    base = make_run(0, rounds=6, noise=0.5)
    result = _compare(tmp_path, base, scale_contender(make_run(1, rounds=6, noise=0.5), "ext", 1.25))
    ext = result[result["contender"] == "ext"]
    assert "slower" not in set(ext["status"]) and "undecided" in set(ext["status"])


def test_few_rounds_use_the_bootstrap_interval(tmp_path):
    result = _compare(tmp_path, make_run(0, rounds=3), scale_contender(make_run(1, rounds=3), "ext", 2.0))
    ext = result[result["contender"] == "ext"]
    assert set(ext["test"]) == {"bootstrap CI"} and set(ext["status"]) == {"slower"}


def test_without_raw_rounds_nothing_is_called_significant(tmp_path):
    base, new = make_run(0, save_data=False), scale_contender(make_run(1, save_data=False), "ext", 2.0)
    result = _compare(tmp_path, base, new)
    assert set(result[result["contender"] == "ext"]["status"]) == {verdict.TOO_FEW}


def test_new_missing_and_failed_benchmarks(tmp_path):
    base, new = make_run(0), make_run(1)
    gone = new["benchmarks"].pop(3)["name"]
    extra = copy.deepcopy(new["benchmarks"][0])
    extra["name"] = extra["name"].replace("-eager-", "-liger-")
    extra["extra_info"]["contender"] = "liger"
    new["benchmarks"].append(extra)
    result = _compare(tmp_path, base, new).set_index("name")
    assert result.loc[gone, "status"] == "missing" and result.loc[extra["name"], "status"] == "new"


def test_a_benchmark_failed_in_both_runs_is_untimed_not_new(tmp_path):
    failure = {"name": "t::test_bench[x-liger-fwd]", "contender": "liger", "case_id": CASES[0].id,
               "mode": "fwd", "error": "OOM"}
    base, new = make_run(0), make_run(1)
    for doc in (base, new):
        doc["xentbench"] = {"schema": 1, "failures": [failure]}
    result = _compare(tmp_path, base, new).set_index("name")
    row = result.loc["test_bench[x-liger-fwd]"]
    assert row["status"] == "untimed" and row["note"] == "failed: OOM"


def test_environment_change_is_its_own_status(tmp_path):
    base, new = make_run(0), make_run(1, torch="2.14.0")
    result = _compare(tmp_path, base, new)
    assert set(result["status"]) == {"environment changed"}
    assert set(result["judged"]) == {"same"}
    allowed = _compare(tmp_path, base, new, allow_env_change=True)
    assert set(allowed["status"]) == {"same"}


def test_too_few_benchmarks_in_common_fall_back_to_raw_ratios(tmp_path):
    base, new = make_run(0, cases=CASES[:1], speed={"eager": 1.0}), make_run(1, cases=CASES[:1],
                                                                              speed={"eager": 1.0})
    result = _compare(tmp_path, base, new)
    assert result["note"].str.contains("not normalised").all()
    assert np.allclose(result["ratio"], result["raw_ratio"])


def test_decide_needs_threshold_and_significance():
    """compare's use of the shared decision: the ratio itself is the evidence of `same`."""
    lg = verdict.log_ratio
    assert verdict.decide(lg(1.5), True, 0.1) == "slower"
    assert verdict.decide(lg(1.5), False, 0.1) == "undecided"
    assert verdict.decide(lg(1.05), True, 0.1) == "same"
    assert verdict.decide(lg(0.8), True, 0.1) == "faster"
    # the drift floor is an input: within it a significant change is undecided, beyond it not
    assert verdict.decide(lg(1.5), True, 0.1, floor=(lg(1.6), 0.0)) == "undecided"
    assert verdict.decide(lg(1.5), True, 0.1, floor=(lg(1.4), lg(3.0))) == "slower"
    assert verdict.decide(lg(0.5), True, 0.1, floor=(0.0, lg(2.5))) == "undecided"


def test_compare_and_ab_share_the_words_and_the_default():
    """One vocabulary and one default: a status compare can give that ab cannot say (or
    the other way round) would split the gate's words again."""
    assert compare.Settings().threshold == PairedSettings().threshold == verdict.DEFAULT_THRESHOLD
    judgements = set(compare.STATUSES) - {"environment changed", "new", "missing", "untimed"}
    assert judgements <= set(ab_verdicts.ORDER) and set(paired.VERDICTS) <= set(ab_verdicts.ORDER)
    assert set(paired.VERDICTS) <= judgements


def test_a_change_beyond_the_threshold_on_two_rounds_is_too_few_as_in_ab(tmp_path):
    """Two rounds a side cannot be tested (`compare.MIN_BOOT_ROUNDS`): a 3× slowdown there
    reads ``too few`` (ab's word for too few pairs), listed as worth a look, never
    ``slower``; within the threshold the ratio alone still says ``same``."""
    base = make_run(0, rounds=2)
    new = scale_contender(make_run(1, rounds=2), "ext", 3.0)
    result = _compare(tmp_path, base, new)
    ext = result[result["contender"] == "ext"]
    assert set(ext["status"]) == {verdict.TOO_FEW} and set(ext["test"]) == {compare.NO_TEST}
    assert not any("drift" in str(note) for note in ext["note"])  # untested, not held back
    others = result[result["contender"] != "ext"]
    assert verdict.SLOWER not in set(others["status"]) and verdict.TOO_FEW not in set(others["status"])
    assert set(compare.worth_a_look(result)["contender"]) >= {"ext"}


def test_every_log_ratio_is_the_shared_one():
    """A ratio of 0, a negative one or a missing side reads NaN, never -inf or a crash."""
    assert verdict.log_ratio(2.0) == pytest.approx(math.log(2.0))
    got = verdict.log_ratio([2.0, 0.0, -1.0, math.nan, math.inf])
    assert got[0] == pytest.approx(math.log(2.0)) and np.isnan(got[1:]).all()


def test_the_output_says_which_method_judged(tmp_path, capsys):
    base = write_run(tmp_path / "b.json", make_run(0))
    new = write_run(tmp_path / "n.json", make_run(1))
    assert main(["compare", str(base), str(new)]) == 0
    out = capsys.readouterr().out
    assert verdict.UNPAIRED in out and "threshold 10%" in out


@pytest.mark.parametrize(("text", "value"), [("10%", 0.10), ("0.1", 0.10), ("25", 0.25), ("5.5%", 0.055)])
def test_threshold_parsing(text, value):
    assert parse_threshold(text) == pytest.approx(value)


def test_bad_threshold_is_a_usage_error():
    with pytest.raises(argparse.ArgumentTypeError):
        parse_threshold("fast")


def test_cli_exit_codes_and_markdown(tmp_path, capsys, monkeypatch):
    base = write_run(tmp_path / "base.json", make_run(0))
    same = write_run(tmp_path / "same.json", make_run(1))
    slow = write_run(tmp_path / "slow.json", scale_contender(make_run(1), "ext", 2.0))
    assert main(["compare", str(base), str(same), "--fail-on-regression"]) == 0
    md = tmp_path / "summary.md"
    assert main(["compare", str(base), str(slow), "--fail-on-regression", "--markdown", str(md)]) == 1
    assert main(["compare", str(base), str(slow)]) == 0  # reporting only
    assert main(["compare", str(base), str(slow), "--fail-ratio", "1.5"]) == 1
    assert main(["compare", str(base), str(slow), "--fail-ratio", "2.5"]) == 0
    out = capsys.readouterr().out
    assert "slower" in out and "ext" in out
    text = md.read_text()
    assert text.startswith("### Benchmark comparison") and "| slower | ext |" in text
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(md))
    main(["compare", str(base), str(same), "--markdown", str(md)])
    assert md.read_text().startswith(text)  # appended to the CI summary, not replaced


def test_two_runs_on_one_side_is_an_error(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    write_run(runs / "a.json", make_run(0))
    write_run(runs / "b.json", make_run(1))
    assert main(["compare", str(runs), str(runs / "a.json")]) == 2
    assert "BASE holds 2 runs" in capsys.readouterr().err


def test_sharded_new_run_compares_as_one(tmp_path):
    new = make_run(1)
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    for i in range(2):
        part = dict(new, benchmarks=new["benchmarks"][i::2])
        (shard_dir / f"s{i}.json").write_text(json.dumps(part))
    base = load([write_run(tmp_path / "base.json", make_run(0))])
    result = compare.compare_runs(base, load([shard_dir]))
    assert set(result["status"]) == {"same"}


def _drifted(doc: dict, spread: float) -> dict:
    """Every benchmark moved by its own run-to-run drift: log-factors at the evenly spaced
    quantiles of N(0, spread), so the drift is exactly as wide as stated."""
    from statistics import NormalDist

    doc = copy.deepcopy(doc)
    moved = doc["benchmarks"]
    quantiles = [NormalDist(0, spread).inv_cdf((i + 0.5) / len(moved)) for i in range(len(moved))]
    order = np.random.default_rng(3).permutation(len(moved))
    for b, k in zip(moved, order, strict=True):
        factor = float(np.exp(quantiles[k]))
        for key in ("min", "max", "mean", "median", "q1", "q3"):
            b["stats"][key] *= factor
        b["stats"]["data"] = [x * factor for x in b["stats"]["data"]]
    return doc


def test_changes_within_run_to_run_drift_are_undecided_not_slower(tmp_path):
    """Drift of ~6 % per benchmark between runs, the widest beyond the 10 % threshold:
    rounds call each 'significant', the drift floor does not; a 2x slowdown still stands
    out against it."""
    base = make_run(0)
    new = _drifted(make_run(1), spread=0.06)
    result = _compare(tmp_path, base, new)
    assert "slower" not in set(result["status"]) and "faster" not in set(result["status"])
    assert "undecided" in set(result["status"])
    # the floor held back changes the rounds called significant, and says so
    held = result[result["note"].str.contains("within run-to-run drift", regex=False)]
    assert len(held) and set(held["judged"]) == {"undecided"} and (held["p"] < 0.01).all()
    regressed = _compare(tmp_path, base, scale_contender(new, "ext", 2.0))
    assert set(regressed[regressed["status"] == "slower"]["contender"]) == {"ext"}


SIX = {"eager": 1.0, "naive": 1.7, "compiled": 0.6, "ext": 0.8, "module": 1.1, "scratch": 1.3}


def test_a_regression_of_a_third_of_the_benchmarks_is_not_explained_away(tmp_path):
    """A third of the benchmarks 1.6x slower widen the ratios' spread; the machine factor
    (a median) stays put and the capped floor still reports them (CI's --fail-ratio 1.5
    must fire)."""
    new = scale_contender(scale_contender(make_run(1, speed=SIX), "naive", 1.6), "ext", 1.6)
    result = _compare(tmp_path, make_run(0, speed=SIX), new)
    slower = result[result["status"] == "slower"]
    assert set(slower["contender"]) == {"naive", "ext"}
    assert len(compare.regressions(result, fail_ratio=1.5)) == len(slower)


def test_a_change_that_moves_half_the_benchmarks_moves_the_factor_and_says_so(tmp_path):
    """The median's breakdown point: with half the benchmarks 1.6x slower the machine factor
    itself moves, so the header must say that NEW is slower across the board."""
    base = load([write_run(tmp_path / "b.json", make_run(0, speed=SIX))])
    slow = make_run(1, speed=SIX)
    for name in ("naive", "ext", "module"):
        slow = scale_contender(slow, name, 1.6)
    new = load([write_run(tmp_path / "n.json", slow)])
    comparison = compare.compare(base, new)
    assert comparison.factor.value > 1.2
    assert any("across the board" in line for line in compare.header_lines(comparison, base, new))


def _mark_unstable(doc: dict, contender: str, reason: str = "preempted: 40 of 200 rounds") -> dict:
    doc = copy.deepcopy(doc)
    for b in doc["benchmarks"]:
        stable = b["extra_info"]["contender"] != contender
        b["extra_info"].update(stable=stable, unstable_reason="" if stable else reason)
    return doc


def test_an_unstable_benchmark_is_never_slower_and_never_fails_the_gate(tmp_path, capsys):
    """A 3x slowdown measured while a neighbour preempted the rounds: status 'unstable'
    with the reason, the judgement it would have had kept in `judged`."""
    new = _mark_unstable(scale_contender(make_run(1), "ext", 3.0), "ext")
    result = _compare(tmp_path, make_run(0), new)
    ext = result[result["contender"] == "ext"]
    assert set(ext["status"]) == {"unstable"} and set(ext["judged"]) == {"slower"}
    assert ext["note"].str.contains("NEW: preempted").all()
    assert set(result[result["contender"] != "ext"]["status"]) == {"same"}
    base, slow = write_run(tmp_path / "b.json", make_run(0)), write_run(tmp_path / "s.json", new)
    assert main(["compare", str(base), str(slow), "--fail-ratio", "1.5"]) == 0
    assert "unstable" in capsys.readouterr().out


def test_a_benchmark_that_is_only_wide_is_still_judged(tmp_path):
    """A wide spread alone is the benchmark's own variability, not contamination: a 3x
    slowdown of a benchmark recorded with only a spread reason is 'slower', with the
    spread in its note (never judging it let ext's 2.5x slowdown of the 256 x 32000
    fwd_bwd landmark pass in scripts/noise_demo.sh); with a contamination reason beside
    the spread it stays 'unstable'."""
    wide = "spread: IQR is 57% of the median (limit 50%)"
    new = _mark_unstable(scale_contender(make_run(1), "ext", 3.0), "ext", reason=wide)
    ext = _compare(tmp_path, make_run(0), new)
    ext = ext[ext["contender"] == "ext"]
    assert set(ext["status"]) == {"slower"} and ext["note"].str.contains("NEW: spread").all()
    both = _mark_unstable(scale_contender(make_run(1), "ext", 3.0), "ext",
                          reason=f"oversubscribed: 3 runnable tasks on 2 cores; {wide}")
    ext = _compare(tmp_path, make_run(0), both)
    assert set(ext[ext["contender"] == "ext"]["status"]) == {"unstable"}


def test_unstable_benchmarks_do_not_set_the_machine_factor(tmp_path):
    """Half the benchmarks slowed 3x by a neighbour, and flagged: the factor comes from the
    stable half and stays at 1."""
    new = make_run(1)
    for name in ("naive", "ext"):
        new = _mark_unstable(scale_contender(new, name, 3.0), name)
    for b in new["benchmarks"]:  # both flagged, not only the last one marked
        b["extra_info"]["stable"] = b["extra_info"]["contender"] not in ("naive", "ext")
    b_df = load([write_run(tmp_path / "b.json", make_run(0))])
    n_df = load([write_run(tmp_path / "n.json", new)])
    comparison = compare.compare(b_df, n_df)
    assert comparison.factor.value == pytest.approx(1, abs=0.05)
    assert comparison.factor.n == len(CASES) * 2 * 2


def test_a_gate_on_a_file_without_raw_rounds_is_a_usage_error(tmp_path, capsys):
    """An injected 3x slowdown must not pass silently as 'noisy: too few rounds'."""
    base = write_run(tmp_path / "b.json", make_run(0, save_data=False))
    slow = write_run(tmp_path / "s.json", scale_contender(make_run(1), "ext", 3.0))
    for flag in (["--fail-ratio", "1.5"], ["--fail-on-regression"]):
        assert main(["compare", str(base), str(slow), *flag]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "without raw rounds" in err[0] and "--benchmark-save-data" in err[0]
    assert main(["compare", str(base), str(slow)]) == 0  # a report without a gate still works


def test_a_different_thread_count_is_an_environment_change(tmp_path):
    base = make_run(0, stamp={"schema": 1, "threads": 1})
    new = make_run(1, stamp={"schema": 1, "threads": 2})
    result = _compare(tmp_path, base, new)
    assert set(result["status"]) == {"environment changed"}
    b = load([write_run(tmp_path / "b.json", base)])
    assert compare.environment_changes(b, load([write_run(tmp_path / "n.json", new)])) == [
        "threads: 1 -> 2"]


def test_a_failed_fidelity_check_is_in_the_header(tmp_path):
    stamp = {"schema": 1, "threads": 1,
             "fidelity": {"ok": False, "reason": "the process was off-CPU for 33% of the check"}}
    b = load([write_run(tmp_path / "b.json", make_run(0, stamp={"schema": 1, "threads": 1}))])
    n = load([write_run(tmp_path / "n.json", make_run(1, stamp=stamp))])
    lines = compare.header_lines(compare.compare(b, n), b, n)
    assert "NEW run unstable: timer fidelity failed (the process was off-CPU for 33% of the check)" in lines


def test_a_regressed_third_does_not_widen_its_own_drift_floor(tmp_path):
    """This VM's drift (12 % per benchmark between runs of identical code) and a contender
    made 2.5x slower on a sixth of the benchmarks: the floor for slowdowns comes from how
    far the others scatter towards faster, so the regression does not hide itself, and
    no other contender is flagged."""
    base = make_run(0, speed=SIX)
    new = scale_contender(_drifted(make_run(1, speed=SIX), spread=0.12), "ext", 2.5)
    comparison = compare.compare(load([write_run(tmp_path / "b.json", base)]),
                                 load([write_run(tmp_path / "n.json", new)]))
    rows = comparison.rows
    ext = rows[rows["contender"] == "ext"]
    assert (ext["status"] == "slower").mean() >= 0.9
    assert not rows[rows["contender"] != "ext"]["status"].isin(["slower", "faster"]).any()
    slower_floor, faster_floor = comparison.floor
    assert math.expm1(slower_floor) < 1.0 and faster_floor > slower_floor


def test_one_sided_scales_ignore_the_other_side():
    rng = np.random.default_rng(0)
    clean = rng.normal(0, 0.1, 40)
    below, above = stats.one_sided_scales(np.concatenate([clean, np.full(15, 0.9)]), 0.0)
    assert 0.07 < below < 0.13 and above > 1.5 * below


def test_a_change_within_the_machines_own_move_is_undecided_a_large_one_is_not(tmp_path):
    """NEW's machine is 25 % faster: a contender 1.2× off after normalising is within what
    unequal scaling leaves (measured in CI on identical code), a 2× slowdown is not."""
    base = make_run(0)
    for factor, status in ((1.2, "undecided"), (2.0, "slower")):
        new = scale_contender(make_run(1, machine=0.75), "naive", factor)
        result = _compare(tmp_path, base, new)
        assert set(result[result["contender"] == "naive"]["status"]) == {status}, result
        assert set(result[result["contender"] != "naive"]["status"]) <= {"same", "undecided"}
    same_machine = _compare(tmp_path, base, scale_contender(make_run(1), "naive", 1.2))
    assert set(same_machine[same_machine["contender"] == "naive"]["status"]) == {"slower"}
    # a machine 4x slower still shows a 2.5x regression: the move counts up to 2x only
    slow_day = _compare(tmp_path, base, scale_contender(make_run(1, machine=4.0), "naive", 2.5))
    assert set(slow_day[slow_day["contender"] == "naive"]["status"]) == {"slower"}


def test_cut_case_ids_never_read_alike_in_a_terminal_table():
    """The terminal tables of compare and ab cut long case ids; two ids whose cuts would be
    the same (the headline's given and per-call weights) stay whole, the others are cut."""
    from harness.analysis import tables

    given = "bin-n2-c1-64x64-p0.05-bf16-mean-winverse_freq"
    per_call = f"{given}-percall"
    other = "n2-c2-64x64-p0.05-bf16-mean-winverse_freq-ls0.1-ig0.05"
    short = tables.short_case_ids([given, per_call, other, given], 26)
    assert short[given] == given and short[per_call] == per_call
    assert short[other] == other[:25] + "…"
    rows = [{"case_id": case, "verdict": "same", "contender": "eager", "mode": "fwd", "low": 0.99,
             "high": 1.01, "ratio": 1.0, "pairs": 16} for case in (given, per_call)]
    assert [row[3] for row in tables._ab_rows(rows, tables.AB_CASE_WIDTH)] == [given, per_call]
