"""The report's figures: fixed colours per contender, ranked landmark cases with their marks,
the accuracy grid, bandwidth against the measured peak. Each figure's points are derived in
`harness.analysis.report` and tested here as data; that the PNGs open is test_report's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fakes import CASES, make_run, write_run

from harness.analysis import plots, report
from harness.analysis.accuracy import AccuracyLog, load_accuracy
from harness.analysis.load import load
from harness.benchmark.case_sets import landmark_names, landmarks
from harness.contenders import builtins
from harness.equivalence.properties import Verdict
from harness.problem.case import Case


def test_every_builtin_has_its_own_colour_and_a_new_one_needs_no_slot():
    """The fixed slots are distinct; a built-in added later (here a toy name) takes a
    spare colour by its name, distinct from every other built-in's, with no table edit."""
    slots = list(plots.FIXED_COLOURS.values())
    assert len(set(slots)) == len(slots) and all(m in ("tab20", "tab20b") and 0 <= s < 20 for m, s in slots)
    names = [*(c.name for c in builtins()), "fused_newcomer"]
    colours = plots.palette(names)
    assert len(set(colours.values())) == len(names)
    assert colours["fused_newcomer"] == plots.palette(["fused_newcomer"])["fused_newcomer"]


def test_a_contenders_colour_does_not_depend_on_the_others_in_the_figure():
    alone = plots.palette(["eager"])["eager"]
    crowd = plots.palette(n for n in [*(c.name for c in builtins()), "mine", "theirs"])  # a generator
    assert crowd["eager"] == alone
    assert plots.palette(["mine"])["mine"] == plots.palette(["mine", "eager", "zzz"])["mine"]
    assert len(set(crowd.values())) == len(crowd)  # the extra names found free colours


def test_no_contender_is_drawn_in_the_colour_that_means_failure():
    """Red names a failed check (the ranking's ✗, the accuracy map's frames): no built-in
    and no contender of yours (a few hundred names) is drawn in red or a colour near it."""
    import matplotlib.colors

    reds = {plots._colour(slot) for slot in plots.REDS}
    assert matplotlib.colors.to_rgb(plots.FAILURE_COLOUR) in reds
    names = [*(c.name for c in builtins()), *(f"mine_{i}" for i in range(300))]
    assert not {n: c for n, c in plots.palette(names).items() if c in reds}


def _figure_axes():
    from matplotlib.figure import Figure

    return Figure().subplots()


def test_a_speedup_panel_shows_every_point_whole_and_its_legend_as_drawn():
    """p = 0 and the widest speedup and bar lie inside the axes (matplotlib's limits had cut
    the points at p = 0 in half); a contender whose every point is unstable has a hollow
    legend marker, one with a stable point a filled one; ticks read as speedups."""
    ax = _figure_axes()
    shaky = {"case_p": np.array([0.0, 1.0]), "size": np.array([1e3, 1e7]),
             "speedup": np.array([0.02, 40.0]), "noise": np.array([0.005, 10.0]),
             "unstable": np.array([True, True])}
    steady = {**shaky, "speedup": np.array([1.5, 2.0]), "unstable": np.array([False, True])}
    colours = plots.palette(["shaky", "steady"])
    plots._speedup_panel(ax, {"shaky": shaky, "steady": steady}, "case_p", colours)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < 0 and x1 > 1 and y0 < 0.015 and y1 > 50
    handles, labels = ax.get_legend_handles_labels()
    face = {label: tuple(h.get_facecolor()[0][:3]) for h, label in zip(handles, labels, strict=True)}
    assert face == {"shaky": (1.0, 1.0, 1.0), "steady": tuple(colours["steady"])}
    assert ax.yaxis.get_major_formatter()(2.0, 0) == "2.00×"
    size = _figure_axes()
    plots._speedup_panel(size, {"shaky": shaky}, "size", colours)
    assert size.get_xlim()[0] < 1e3 and size.get_xlim()[1] > 1e7


def test_one_speedup_figure_per_run_and_dtype(tmp_path):
    path = write_run(tmp_path / "r.json", make_run(cases=(CASES[1], CASES[4])))  # f32 and bf16
    figures = report.speedup_points(report.enrich(load([path])))
    assert sorted(figures) == ["r-bf16", "r-f32"] and figures["r-bf16"]["title"] == "run r · cpu · bf16"
    assert all(len(m["ext"]["speedup"]) == 1 for f in figures.values() for m in f["modes"].values())


def test_the_ranking_writes_speedups_as_every_table_does():
    """One speedup format (`tables.fmt_speedup`) in figures, tables and the terminal."""
    from harness.analysis import tables

    ax = _figure_axes()
    rows = [{"contender": c, "median": m, "noise": m / 20, "speedup": s, "mark": ""}
            for c, m, s in (("eager", 1e-3, 1.0), ("naive", 5e-3, 0.2))]
    plots._ranking_panel(ax, "fwd", rows, plots.palette(["eager", "naive"]))
    notes = [t.get_text().strip() for t in ax.texts]
    assert notes == ["1.00×", "0.20×"] == [tables.fmt_speedup(1.0), tables.fmt_speedup(0.2)]
    assert tables.fmt_speedup(1) == "1.00×" and tables.fmt_speedup(0.001) == "<0.01×"
    assert tables.fmt_speedup(123.456) == "123.46×" and tables.fmt_speedup(math.nan) == tables.DASH


def _landmark_run(tmp_path, **kw):
    case = landmarks("small", "cpu")["classification"]
    doc = make_run(cases=(case, CASES[0]), **kw)
    for b in doc["benchmarks"]:
        info = b["extra_info"]
        if (info["contender"], info["mode"], info["case_id"]) == ("naive", "fwd", case.id):
            info.update(stable=False, unstable_reason="preempted")
    doc["xentbench"] = {"schema": 1, "failures": [{"name": "t::test_bench[x-liger-fwd]", "contender": "liger",
                                                   "case_id": case.id, "mode": "fwd", "error": "OOM"}]}
    return case, write_run(tmp_path / "r.json", doc)


def test_ranking_shows_landmarks_by_name_fastest_first_with_marks(tmp_path):
    case, path = _landmark_run(tmp_path)
    figures = report.ranking_figures(report.enrich(load([path])))
    assert list(figures["r"]) == ["classification"]  # the landmark only, by its name
    spec = figures["r"]["classification"]
    assert "classification" in spec["title"] and case.id in spec["title"] and "cpu f32" in spec["title"]
    fwd = spec["modes"]["fwd"]
    assert [r["contender"] for r in fwd] == ["compiled", "ext", "eager", "naive", "liger"]
    assert fwd[-1]["mark"] == "failed: OOM" and math.isnan(fwd[-1]["median"])
    assert fwd[3]["mark"] == "unstable" and fwd[2]["speedup"] == 1.0
    assert all(0 < r["noise"] < r["median"] for r in fwd[:4])
    assert [r["mark"] for r in spec["modes"]["fwd_bwd"]] == [""] * 4


def test_a_run_without_landmarks_ranks_the_cases_most_contenders_were_timed_on(tmp_path):
    doc = make_run(cases=CASES[:2])
    doc["benchmarks"] = [b for b in doc["benchmarks"]  # CASES[0] loses a contender
                         if b["extra_info"]["case_id"] == CASES[1].id
                         or b["extra_info"]["contender"] != "ext"]
    figures = report.ranking_figures(report.enrich(load([write_run(tmp_path / "r.json", doc)])))
    assert list(figures["r"]) == [CASES[1].id, CASES[0].id]


def test_landmark_names_cover_every_preset_and_device():
    names = landmark_names()
    for size in ("small", "full"):
        for device in ("cpu", "cuda"):
            assert {c.id: n for n, c in landmarks(size, device).items()}.items() <= names.items()


def test_bandwidth_carries_the_runs_measured_peak(tmp_path):
    path = write_run(tmp_path / "r.json", make_run(cases=CASES[:2]))
    runs = report.bandwidth_runs(report.enrich(load([path])))
    run = runs["r"]
    assert run["peak"] == 20.0 and "measured copy peak 20 GB/s" in run["title"]
    x, y = run["modes"]["fwd"]["eager"]
    assert len(x) == 2 and np.all(y > 0)


def test_accuracy_grid_marks_failures_and_known_limits(tmp_path):
    log = AccuracyLog(device="cpu", torch="2.13.0")
    case = Case(64, 1000, scale=30.0)
    log.add("eager", case, [Verdict("loss", True, max_abs=1e-7, max_rel=2e-8),
                            Verdict("grad", True, max_abs=0.0, max_rel=0.0)])
    log.add("naive", case, [Verdict("loss", False, max_abs=0.5, max_rel=0.1)])
    log.add("naive", case.replace(dtype="f16", scale=0.5),
            [Verdict("loss", True, max_abs=0.0, max_rel=0.0, compared=False, regime="breakdown")])
    grid = report.accuracy_grid(report.accuracy_view(load_accuracy([log.write(tmp_path / "a.json")])))
    assert grid["rows"] == ["eager", "naive"] and grid["cols"] == ["f16 <=1", "f32 10-100"]
    loss = grid["props"]["loss"]
    assert loss["rel"][0, 1] == pytest.approx(2e-8) and np.isnan(loss["rel"][0, 0])
    assert loss["failed"][1, 1] == 1 and loss["limit"][1, 0] and not loss["limit"][1, 1]
    assert np.isnan(grid["props"]["grad"]["rel"][1, 1])  # never checked: grey, not 'exact'
    assert plots.plot_accuracy(grid, tmp_path)[0].name == "accuracy.png"


def test_time_and_speedup_points_carry_unstable_marks_and_noise(tmp_path):
    _, path = _landmark_run(tmp_path)
    df = report.enrich(load([path]))
    naive = report.time_vs_size_lines(df)["r"]["fwd"]["naive"]
    assert list(naive["unstable"]) == [False, True]  # CASES[0] is smaller than the landmark
    assert list(report.time_vs_size_lines(df)["r"]["fwd_bwd"]["naive"]["unstable"]) == [False, False]
    points = report.speedup_points(df)["r-f32"]["modes"]["fwd"]
    assert "eager" not in points  # the reference is the line at 1
    assert sorted(points["naive"]["unstable"]) == [False, True]
    assert np.all(points["ext"]["noise"] > 0) and not points["ext"]["unstable"].any()


def test_a_nan_error_is_the_worst_cell_not_an_unchecked_one(tmp_path):
    """The log keeps a NaN error as the worst; the grid says it was checked, so the heat
    map draws it at the top of the scale instead of grey."""
    log = AccuracyLog(device="cpu", torch="2.13.0")
    log.add("naive", Case(64, 1000, scale=30.0), [Verdict("loss", False, max_abs=math.nan, max_rel=math.nan)])
    grid = report.accuracy_grid(report.accuracy_view(load_accuracy([log.write(tmp_path / "a.json")])))
    loss = grid["props"]["loss"]
    assert np.isnan(loss["rel"][0, 0]) and loss["checked"][0, 0] and not loss["limit"][0, 0]
    assert not grid["props"]["grad"]["checked"][0, 0]
    assert plots.plot_accuracy(grid, tmp_path)[0].exists()


def test_a_run_on_two_devices_draws_each_against_its_own_peak(tmp_path):
    cpu = make_run(cases=CASES[:1])
    gpu = make_run(cases=CASES[:1], device="cuda")
    for b in gpu["benchmarks"]:  # as a CUDA shard of the same run would hold them
        b["extra_info"]["peak_gbps"] = 4000.0
        b["name"], b["fullname"] = b["name"] + "-cuda", b["fullname"] + "-cuda"
    doc = {**cpu, "benchmarks": cpu["benchmarks"] + gpu["benchmarks"]}
    runs = report.bandwidth_runs(report.enrich(load([write_run(tmp_path / "r.json", doc)])))
    assert {k: v["peak"] for k, v in runs.items()} == {"r-cpu": 20.0, "r-cuda": 4000.0}


def test_how_close_to_its_bound_an_error_came_is_kept_and_old_files_say_unknown(tmp_path):
    """The share of the tolerance bound reaches the grid (max over cases, NaN-free); a file
    written before it was recorded reads as unknown, not as 0."""
    import json

    log = AccuracyLog(device="cpu", torch="2.13.0")
    case = Case(64, 1000, scale=30.0)
    for share in (0.02, 0.4):
        log.add("eager", case, [Verdict("loss", True, max_abs=1e-7, max_rel=1e-8, of_bound=share)])
    path = log.write(tmp_path / "a.json")
    grid = report.accuracy_grid(report.accuracy_view(load_accuracy([path])))
    assert grid["props"]["loss"]["of_bound"][0, 0] == pytest.approx(0.4)
    old = json.loads(path.read_text())
    for e in old["entries"]:
        del e["max_of_bound"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    grid = report.accuracy_grid(report.accuracy_view(load_accuracy([tmp_path / "old.json"])))
    assert np.isnan(grid["props"]["loss"]["of_bound"][0, 0])
    assert plots.plot_accuracy(grid, tmp_path)[0].exists()


def test_a_comparison_says_what_share_of_its_bound_the_error_reached():
    import torch

    from harness.equivalence.properties import _compare

    want = torch.ones(4, dtype=torch.float64)
    got = want + torch.tensor([0.0, 1e-6, 5e-6, 0.0], dtype=torch.float64)
    verdict = _compare("loss", got, want, torch.ones(()), rtol=1e-5, atol=0.0, fmax=1e300)
    assert verdict.ok and verdict.of_bound == pytest.approx(0.5)
