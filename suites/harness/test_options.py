"""Options written once (`harness.options`) and used by both front ends: the command line
(`harness.cli`) and pytest (`harness.pytest_plugin`)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest
from bench_run import PASSES, PROCESSES

from harness import options
from harness.cli import build_parser

PACKAGE = Path(__file__).resolve().parents[2] / "harness"


def _bench_args(*argv: str) -> dict:
    return vars(build_parser().parse_args(["bench", *argv]))


def test_bench_forwards_only_what_differs_from_the_defaults():
    assert options.bench_flags(_bench_args()) == []
    flags = options.bench_flags(_bench_args("--size", "full", "--passes", "2", "--flush-l2", "off",
                                            "--threads", "0", "--cases", "landmarks",
                                            "--deadline", "30"))
    assert flags == ["--bench-size=full", "--bench-cases=landmarks", "--bench-threads=0",
                     "--bench-passes=2", "--bench-flush-l2=off", "--bench-deadline=30.0"]


@pytest.mark.parametrize(("choice", "device", "flushed"), [
    ("auto", "cuda", True), ("auto", "cuda:1", True), ("auto", "cpu", False),
    ("on", "cpu", True), ("off", "cuda", False)])
def test_the_l2_is_flushed_by_default_on_cuda_only(choice, device, flushed):
    assert options.flush_l2(choice, device) is flushed


def test_every_bench_option_exists_under_pytest_with_its_prefix(pytestconfig):
    for option in options.BENCH_OPTIONS:  # getoption raises ValueError for an unknown name
        pytestconfig.getoption(f"bench_{option.dest}")


@pytest.mark.parametrize(("argv", "message"), [(["--passes", "0"], "passes, 1 or more"),
                                               (["--threads", "-1"], "threads, 0 or more"),
                                               (["--size", "huge"], "invalid choice")])
def test_a_bad_value_is_refused_with_what_is_allowed(argv, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", *argv])
    assert message in capsys.readouterr().err


def test_a_device_this_machine_lacks_says_what_to_use():
    if options.resolve_device("auto") == "cuda":
        pytest.skip("this machine has a GPU")
    with pytest.raises(options.DeviceError, match="use --device cpu"):
        options.resolve_device("cuda")


@pytest.mark.parametrize("flag", ["--contender", "--binary-contender", "--device"])
def test_each_shared_option_is_defined_once(flag):
    pattern = re.compile(r"""add(?:_argument|option)?\(\s*["']""" + re.escape(flag) + r"""["']""")
    where = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
             if pattern.search(p.read_text())]
    assert where == ["harness/options.py"]


def test_whole_number_names_itself_in_argparse_errors():
    parse = options.whole_number(1, "passes")
    with pytest.raises(argparse.ArgumentTypeError, match="'x': give a whole number of passes"):
        parse("x")


def test_bench_passes_its_processes_to_pytest_and_one_by_default(monkeypatch, tmp_path):
    """`harness bench` is one process unless asked (a quick look); `--processes 3` reaches
    pytest as `--bench-processes=3`, whose plugin shares the round time among them
    (`test_pytest_pools_three_processes_on_cpu_by_default`); an explicit round time is
    passed as it is."""
    from harness import cli

    seen = {}

    def fake_run(out, flags):
        seen.update(flags=flags)
        return 0

    monkeypatch.setattr(cli, "run_benchmarks", fake_run)
    assert cli.main(["bench", "--device", "cpu", "--out", str(tmp_path / "r.json")]) == 0
    assert "--bench-processes=1" in seen["flags"]
    assert not any("round-time" in f for f in seen["flags"])
    cli.main(["bench", "--device", "cpu", "--processes", "3", "--out", str(tmp_path / "r.json")])
    assert "--bench-processes=3" in seen["flags"]
    cli.main(["bench", "--device", "cpu", "--processes", "3", "--round-time", "0.5",
              "--out", str(tmp_path / "r.json")])
    assert "--bench-round-time=0.5" in seen["flags"]


def test_pytest_pools_three_processes_on_cpu_by_default(monkeypatch):
    """Plain pytest times a benchmark in `VERDICT_PROCESSES` (3) processes on CPU, one on
    CUDA; `--bench-processes K` is K; one inside an extra process, under xdist and when
    nothing is timed (`processes.wanted`; the pooling itself: the shared run below)."""
    from types import SimpleNamespace

    from harness.benchmark.pooling import VERDICT_PROCESSES
    from harness.pytest_plugin import processes

    def config(given=None, disable=False, collect=False):
        values = {"bench_processes": given, "benchmark_disable": disable, "benchmark_skip": False}
        return SimpleNamespace(getoption=lambda name, default=None: values.get(name, default),
                               option=SimpleNamespace(collectonly=collect))

    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv(processes.PART_ENV, raising=False)
    assert VERDICT_PROCESSES == 3
    assert processes.wanted(config(), "cpu") == 3 and processes.wanted(config(), "cuda") == 1
    assert processes.wanted(config(1), "cpu") == 1 and processes.wanted(config(2), "cuda") == 2
    assert processes.wanted(config(disable=True), "cpu") == 1
    assert processes.wanted(config(collect=True), "cpu") == 1
    monkeypatch.setenv(processes.PART_ENV, "2")
    assert processes.wanted(config(3), "cpu") == 1  # an extra process never spawns more
    monkeypatch.delenv(processes.PART_ENV)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert processes.wanted(config(3), "cpu") == 1


def test_pooled_processes_save_one_record_holding_all_their_rounds(shared_bench_run):
    """The shared run (2 processes of 2 passes): one record per benchmark, its blocks and
    raw rounds those of both processes, each setup phase announced."""
    from harness.benchmark import passes
    from harness.benchmark.step import REPLICATES

    run = shared_bench_run
    eager = run.record("eager")
    assert eager["extra_info"]["processes"] == PROCESSES, run.show()
    per_process = PASSES * passes.blocks_per_pass(REPLICATES, PASSES)
    assert eager["extra_info"]["blocks"] == PROCESSES * per_process, eager["extra_info"]
    assert len(eager["stats"]["data"]) == eager["stats"]["rounds"]
    assert f"timing process 2 of {PROCESSES}" in run.output, run.show()
    # the setup phases say what they do (they were silent)
    assert "xentbench: measuring cpu copy bandwidth" in run.output, run.show()
    assert "xentbench: checking the timer" in run.output, run.show()
    assert f"pooled {PROCESSES} processes into 2 benchmarks" in run.output, run.show()


def test_check_names_the_known_contenders_on_a_typo(capsys):
    from harness import cli

    assert cli.main(["check", "--only", "eagre", "--cases", "1"]) == 2
    err = capsys.readouterr().err
    assert "--only eagre: no such contender; known: bce_logits," in err and " eager," in err


def test_compare_refuses_a_significance_level_outside_0_1(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["compare", "a.json", "b.json", "--alpha", "5"])
    assert stop.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_bench_children_can_import_from_the_callers_directory(monkeypatch, tmp_path):
    from harness.benchmark import runner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert runner._child_env()["PYTHONPATH"].split(os.pathsep)[:2] == [str(tmp_path), "/elsewhere"]


def test_a_run_is_saved_under_the_working_directory(tmp_path, monkeypatch):
    """A user's bench run goes to their own project's results/runs/, not the checkout of
    the harness that timed it (as ab's results do)."""
    from harness.benchmark import runner

    monkeypatch.chdir(tmp_path)
    assert runner.default_output().parent == tmp_path / "results" / "runs"


def test_run_files_of_two_processes_never_collide_and_temporaries_are_not_runs(tmp_path):
    from harness.analysis.load import expand_paths
    from harness.benchmark import runner

    assert runner.default_output().stem.endswith(f"-{os.getpid()}")
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / ".run.json.x1y2.json").write_text("")  # an atomic writer's temporary
    assert expand_paths([tmp_path]) == [tmp_path / "run.json"]


def test_a_contender_that_hangs_is_a_failure_and_check_completes(tmp_path, monkeypatch, capsys):
    """`--call-timeout`: a call past it is recorded as a failure with its case; the run
    goes on to the end (exit 1, not a hang)."""
    import time

    from harness import cli

    (tmp_path / "hangmod.py").write_text("import time\n\ndef ce(input, target, **kw):\n"
                                         "    time.sleep(3600)\n")
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    code = cli.main(["check", "n2-c3-p0.5-f32-mean", "n2-c3-p0.5-f32-sum", "--only", "hang",
                     "--contender", "hang=hangmod:ce", "--call-timeout", "0.2"])
    out = capsys.readouterr().out
    assert code == 1 and time.monotonic() - started < 30
    assert "FAIL hang on n2-c3-p0.5-f32-sum" in out and "hang: no answer within 0.2 s" in out


def test_bench_on_cuda_without_cuda_is_one_line_and_exit_2(tmp_path, capsys):
    import torch

    from harness import cli

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["bench", "--device", "cuda", "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --device cuda: torch.cuda.is_available() is False")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("command", [
    ["report", "RUN", "--out", "{blocker}/report"],
    ["compare", "RUN", "RUN", "--markdown", "{blocker}/compare.md"],
    ["bench", "--out", "{blocker}/run.json"],
])
def test_an_output_path_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, capsys, command):
    """A file standing where the output's folder must be (a typo, a stale file): one line
    that names the output, exit 2, no traceback. (Root ignores a read-only folder, which
    fails through the same handler as a PermissionError; so does a full disk.)"""
    from fakes import CASES, make_run, write_run

    from harness import cli

    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    run = write_run(tmp_path / "r.json", make_run(cases=CASES[:1]))
    argv = [str(run) if a == "RUN" else a.format(blocker=blocker) for a in command]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write ") and str(blocker) in err[0], err


def test_a_full_disk_names_the_output_in_one_line(monkeypatch, tmp_path, capsys):
    """ENOSPC while writing names no file of its own: the line names the output."""
    import errno

    from fakes import CASES, make_run, write_run

    from harness import cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "write_report", full)
    run = write_run(tmp_path / "r.json", make_run(cases=CASES[:1]))
    assert cli.main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write {tmp_path / 'rep'}: No space left on device; give a path "
                   "inside a folder you can write"]


# ---- cases by id: bench, ab and the pytest option ---------------------------------------
USER_CASE = "n8-c2-512x512-p0.05-bf16-mean-winverse_freq"


def test_bench_cases_reads_sets_and_ids_each_once_in_order():
    from harness.benchmark.case_sets import bench_cases, landmarks
    from harness.problem.case import Case

    mine = Case.from_id("n2-c3-p0.5-f32-sum")
    named = list(landmarks("small", "cpu").values())
    assert bench_cases("small", "cpu", f"{mine.id}, {USER_CASE},{mine.id}") == [mine, Case.from_id(USER_CASE)]
    assert bench_cases("small", "cpu", f"landmarks,{mine.id},{named[0].id}") == [*named, mine]


def test_bench_takes_case_ids_as_arguments_or_in_cases(monkeypatch, tmp_path):
    """`bench ID` times that case instead of the default set, `--cases SET ID` besides the
    set; both reach pytest as one --bench-cases; what follows -- is pytest's."""
    from harness import cli

    seen = []
    monkeypatch.setattr(cli, "run_benchmarks", lambda out, flags: seen.append(flags) or 0)
    out = ["--device", "cpu", "--out", str(tmp_path / "r.json")]
    assert cli.main(["bench", USER_CASE, "n2-c3-p0.5-f32-sum", *out, "--", "-k", "eager"]) == 0
    assert cli.main(["bench", "--cases", "landmarks", USER_CASE, *out]) == 0
    assert cli.main(["bench", "--cases", f"generated,{USER_CASE}", *out]) == 0
    cases = [[f for f in flags if f.startswith("--bench-cases")] for flags in seen]
    assert cases == [[f"--bench-cases={USER_CASE},n2-c3-p0.5-f32-sum"],
                     [f"--bench-cases=landmarks,{USER_CASE}"], [f"--bench-cases=generated,{USER_CASE}"]]
    assert seen[0][-2:] == ["-k", "eager"]


@pytest.mark.parametrize(("argv", "says"), [
    (["bench", "n8-c2-p0.5-f32-maen"], "error: case id 'n8-c2-p0.5-f32-maen': cannot read token 'maen' "
                                       "(did you mean 'mean'?): m<share> is"),
    (["bench", "--cases", "landmark"], "error: --cases 'landmark': not a case set (all, landmarks, "
                                       "generated, headline) nor a case id; did you mean 'landmarks'?"),
    (["bench", "--cases", "all,n2-c3-qq"], "error: case id 'n2-c3-qq': cannot read token 'qq': no such "
                                           "token; the tokens are bin|bin1 n<batch>"),
    (["ab", "HEAD", "--cases", "n2-c3-wfoo"], "error: case id 'n2-c3-wfoo': cannot read token 'wfoo': "
                                              "w<scheme> is a class-weighting scheme: winverse_freq"),
], ids=["bench-id", "bench-set", "bench-cases-id", "ab-cases-id"])
def test_a_bad_case_id_is_one_line_and_exit_2_before_anything_runs(argv, says, monkeypatch, tmp_path, capsys):
    """Before pytest starts (bench) or a worktree is made (ab): not pytest's 'file or
    directory not found' (exit 4) for `bench ID`, nor a conversion error on a typo."""
    from harness import cli
    from harness.benchmark import ab

    monkeypatch.setattr(cli, "run_benchmarks", lambda out, flags: pytest.fail("pytest was started"))
    monkeypatch.setattr(ab, "opened_side", lambda *a, **k: pytest.fail("a side was opened"))
    assert cli.main([*argv, "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(says), err


def test_pytest_refuses_a_bad_bench_case_as_a_usage_error(pytestconfig, monkeypatch):
    from harness.pytest_plugin import session

    monkeypatch.setattr(pytestconfig.option, "bench_cases", f"landmarks,{USER_CASE}")
    session.check_cases(pytestconfig)
    monkeypatch.setattr(pytestconfig.option, "bench_cases", "landmarks,n8-c2-p0.5-f32-maen")
    with pytest.raises(pytest.UsageError, match=r"^case id 'n8-c2-p0.5-f32-maen': cannot read token 'maen'"):
        session.check_cases(pytestconfig)
    monkeypatch.setattr(pytestconfig.option, "bench_cases", "generatd")
    with pytest.raises(pytest.UsageError, match=r"^--bench-cases 'generatd': not a case set .* 'generated'"):
        session.check_cases(pytestconfig)


def test_bench_refuses_a_contender_module_that_cannot_import_before_pytest_starts(monkeypatch, tmp_path,
                                                                                  capsys):
    """The user's module is imported here first: its syntax error is bench's one line and
    exit 2, not pytest's usage error (exit 4) and 'left as it was' for a file never made."""
    from harness import cli

    (tmp_path / "xb_bench_syntax.py").write_text("import torch\n\nx = = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "run_benchmarks", lambda out, flags: pytest.fail("pytest was started"))
    assert cli.main(["bench", USER_CASE, "--contender", "mine=xb_bench_syntax:fn", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == ("error: contender mine: xb_bench_syntax.py:3: SyntaxError: "
                                       "invalid syntax\n")
