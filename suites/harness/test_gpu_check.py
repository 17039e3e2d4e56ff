"""The GPU check's plumbing on CPU (issue 20): ``DEVICE=cpu scripts/gpu_check.sh OUT`` runs
every stage of the plan at tiny sizes with the real deadlines, packing and summary, and
under deadlines cut short it still leaves the archive and the summary holding every stage
that finished. The GPU run itself is the same script on the lent machine."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from harness import gpu_check
from harness.stages import ARCHIVE, MAX_OUTPUT_FILES, SUMMARY, stage_env

ROOT = Path(__file__).resolve().parents[2]


def _check(out: Path, scale: float) -> subprocess.CompletedProcess[str]:
    env = {**stage_env(), "DEVICE": "cpu", "SCALE": str(scale), "PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def _members(out: Path) -> set[str]:
    with tarfile.open(out / ARCHIVE) as tar:
        return set(tar.getnames())


@pytest.mark.slow  # every stage to its end: over a minute on 2 cores, more under load
def test_the_dry_run_passes_every_stage_and_returns_three_files(tmp_path):
    done = _check(tmp_path, 1.0)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ARCHIVE, SUMMARY,
                                                                 gpu_check.HEADLINE_RUN])
    summary = (tmp_path / SUMMARY).read_text()
    for stage in ("env", "fused", "table", "landmarks"):
        assert f"[{stage}] ok" in summary, summary
    # the A/A pair is judged, or says that the machine was too busy to judge it (exit 2:
    # every block pair contaminated, as when the rest of the suite runs beside it)
    assert "[aa] ok" in summary or "[aa] exit 2" in summary, summary
    assert {"env.json", "fused.xml", gpu_check.HEADLINE_RUN, "bench-landmarks.json",
            "aa/ab.json", SUMMARY} <= _members(tmp_path)
    # the output ends with the summary, so the device's output tail holds the table
    assert done.stdout.rstrip().endswith(summary.rstrip().splitlines()[-1])
    assert "torch 2." in summary and "n256-c1000-p0.01-f32-mean-eager-fwd_bwd: " in summary
    assert "seed_f32_per_call fwd_bwd" in summary  # the headline table's stage


@pytest.mark.slow  # about 30 s of waiting on deadlines; the runner's part is test_stages'
def test_deadlines_cut_short_still_leave_every_finished_stage(tmp_path):
    """The real plan's commands under cut deadlines (about 30 s, so in the slow tier: the
    runner's own deadline, packing and SIGINT handling are proven with small commands in
    test_stages, in `make test`): every deadline × 0.1, so that the first
    stages end by themselves (on an idle machine: env, fused, and the table stopping at its
    own --deadline) and the last ones are stopped by theirs. No stage may fail: each ends
    ok or at its deadline (the A/A pair may also find the machine too busy: exit 2)."""
    done = _check(tmp_path, 0.1)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert ARCHIVE in files and SUMMARY in files and len(files) <= MAX_OUTPUT_FILES
    summary = (tmp_path / SUMMARY).read_text()
    lines = [line for line in summary.splitlines() if line.startswith("[")]
    assert [line.split("]")[0][1:] for line in lines] == list(gpu_check.DEADLINES), summary
    assert not any("not reached" in line for line in lines)  # every stage ran, stopped or not
    for line in lines:
        status = line.split("] ", 1)[1]
        assert status.startswith(("ok,", "deadline (")) or (
            line.startswith("[aa]") and status.startswith("exit 2,")), summary
    assert done.stdout.rstrip().endswith(summary.rstrip().splitlines()[-1])
    members = _members(tmp_path)
    assert {f"{stage}.log" for stage in gpu_check.DEADLINES} <= members
    if "[env] ok" in summary:
        assert "env.json" in members
    assert done.returncode in (0, 1)


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_the_plan_fits_its_budget_and_puts_the_cheap_and_telling_first(device, tmp_path):
    stages = gpu_check.plan(device, tmp_path)
    assert [s.name for s in stages] == ["env", "fused", "table", "landmarks", "aa"]
    assert sum(s.deadline_s for s in stages) <= 6 * 60
    fused = next(s for s in stages if s.name == "fused")
    tests = [a for a in fused.argv if a.startswith("suites/")]
    assert tests[0] == "suites/harness/test_fused_gpu_tiles.py"


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_the_table_stage_is_bench_of_the_headline_cases(device, tmp_path):
    """The table is `bench --cases headline` (issue 31): its run comes back beside the archive."""
    table = next(s for s in gpu_check.plan(device, tmp_path) if s.name == "table")
    assert table.argv[1:4] == ["-m", "harness", "bench"] and "--cases=headline" in table.argv
    assert f"--out={tmp_path / gpu_check.HEADLINE_RUN}" in table.argv
    assert ("--size=full" in table.argv) == (device == "cuda")
    assert {"--only=compiled_eager", "--only=liger", "--only=fused_triton"} <= set(table.argv)


def test_the_summary_shows_the_headline_table(tmp_path):
    from fakes import make_run, write_run

    from harness.benchmark.case_sets import headline

    cases = [c for name, c in headline("small", "cpu").items() if name.startswith("seed_f32")]
    doc = make_run(cases=tuple(cases), speed={"eager": 1.0, "compiled_eager": 2.0, "liger": 0.5},
                   modes=("fwd_bwd",), noise=0.001)
    lines = gpu_check.table_lines(write_run(tmp_path / gpu_check.HEADLINE_RUN, doc))
    liger = next(line for line in lines if line.startswith("seed_f32_per_call fwd_bwd")
                 and " liger " in line)
    assert "×eager 2.00×" in liger and "×compiled 4.00×" in liger and "×Liger 1.00×" in liger
