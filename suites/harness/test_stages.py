"""The time-boxed stage runner (`harness.stages`): a stage past its deadline is stopped
cleanly (SIGINT first: pytest still writes its JUnit XML), every stage that ended is in the
archive and the summary however the run ends, and the output folder holds at most
`MAX_OUTPUT_FILES` files. Also ``--bench-deadline``, which lets a benchmark session stop by
itself with what it timed saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from harness import stages
from harness.stages import ARCHIVE, SUMMARY, Stage, run_plan, run_stage

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def _py(code: str) -> list[str]:
    return [PY, "-c", code]


def _archived(out: Path) -> dict[str, bytes]:
    with tarfile.open(out / ARCHIVE) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_a_stage_that_ends_by_itself_keeps_its_exit_code_and_log(tmp_path):
    outcome = run_stage(Stage("hello", _py("print('hi'); raise SystemExit(3)"), 30), tmp_path)
    assert (outcome.returncode, outcome.stopped_by, outcome.status) == (3, None, "exit 3")
    assert (tmp_path / "hello.log").read_text().strip() == "hi"


def test_a_stage_past_its_deadline_is_interrupted_and_may_clean_up(tmp_path):
    partial = tmp_path / "partial.json"
    code = ("import time, pathlib\n"
            "try:\n    time.sleep(60)\n"
            f"except KeyboardInterrupt:\n    pathlib.Path({str(partial)!r}).write_text('{{}}')\n"
            "    raise\n")
    start = time.monotonic()
    outcome = run_stage(Stage("slow", [PY, "-c", code], 1.0), tmp_path, grace_s=10)
    assert outcome.stopped_by == "SIGINT" and outcome.status == "deadline (SIGINT)"
    assert time.monotonic() - start < 10
    assert partial.read_text() == "{}"  # its KeyboardInterrupt handler ran: a clean stop


def test_a_stage_that_ignores_sigint_is_terminated_after_the_grace(tmp_path):
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)\n"
    outcome = run_stage(Stage("stubborn", _py(code), 0.5), tmp_path, grace_s=1.0)
    assert outcome.stopped_by == "SIGTERM"


def test_the_signal_reaches_the_stages_children_and_not_the_runner(tmp_path):
    # a shell whose child sleeps: the process group is signalled, so no sleeper is left
    marker = tmp_path / "child.pid"
    code = (f"import subprocess, sys; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(marker)!r}, 'w').write(str(p.pid)); p.wait()")
    outcome = run_stage(Stage("family", _py(code), 1.5), tmp_path, grace_s=5)
    assert outcome.stopped_by is not None
    pid = int(marker.read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_command_that_cannot_start_is_reported_not_raised(tmp_path):
    outcome = run_stage(Stage("ghost", ["/nonexistent/program"], 5), tmp_path)
    assert outcome.returncode is None and outcome.status.startswith("not run: FileNotFoundError")


def test_pytest_stopped_by_the_deadline_still_writes_its_junit_xml(tmp_path):
    tests = tmp_path / "test_slow.py"
    tests.write_text("import time\n\ndef test_quick():\n    pass\n\n"
                     "def test_slow():\n    time.sleep(60)\n")
    xml = tmp_path / "junit.xml"
    argv = [PY, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
            "-p", "no:randomly", f"--junitxml={xml}", f"--rootdir={tmp_path}"]
    # without the installed plugins (ours imports torch): the child is at its sleeping test
    # within a second, where with them it was still importing at its 8 s deadline on a loaded
    # machine (fresh-clone .ci/run, load 4-5 on 2 cores); junitxml is pytest's own
    quick = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    outcome = run_stage(Stage("pytest", argv, 4, env=quick), tmp_path, grace_s=20)
    assert outcome.stopped_by == "SIGINT"
    from harness.gpu_check import junit_lines

    assert 'name="test_quick"' in xml.read_text()
    assert junit_lines(xml)[0].endswith("0 failures, 0 errors, 0 skipped")


def test_every_finished_stage_is_packed_and_summarised_before_the_next_starts(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    # The second stage reads what the run published after the first: the archive and the
    # summary already hold stage one while stage two runs.
    peek = (f"import tarfile; names = tarfile.open({str(out / ARCHIVE)!r}).getnames(); "
            f"print(sorted(names)); print(open({str(out / SUMMARY)!r}).read())")
    plan = [Stage("one", _py("open('unused', 'w') if False else print('first')"), 30,
                  lambda w: ["said " + (w / "one.log").read_text().strip()]),
            Stage("two", _py(peek), 30),
            Stage("three", _py("import time; time.sleep(60)"), 0.5)]
    outcomes = run_plan("test plan", plan, work, out, grace_s=2, say=lambda _: None)
    seen = (work / "two.log").read_text()
    assert "one.log" in seen and "[one] ok" in seen and "said first" in seen
    assert "[three] not reached" in seen
    assert [o.status for o in outcomes][:2] == ["ok", "ok"]
    assert outcomes[2].stopped_by == "SIGINT"
    summary = (out / SUMMARY).read_text()
    assert "[three] deadline (SIGINT)" in summary and "not reached" not in summary
    assert {"one.log", "two.log", "three.log", SUMMARY} <= set(_archived(out))


def test_the_output_folder_holds_at_most_four_files(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    plan = [Stage(f"s{i}", _py(f"open('{work}/file{i}.json', 'w').write('{{}}')"), 30)
            for i in range(6)]
    run_plan("many", plan, work, out, also=("file1.json", "file2.json"), say=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == sorted([ARCHIVE, SUMMARY, "file1.json",
                                                            "file2.json"])
    assert len(list(out.iterdir())) <= stages.MAX_OUTPUT_FILES
    with pytest.raises(ValueError, match="at most 2 extra output files"):
        run_plan("too many", plan, work, out, also=("a", "b", "c"))


def test_a_summariser_that_fails_is_reported_in_the_summary(tmp_path):
    plan = [Stage("broken", _py("pass"), 30, lambda w: json.loads((w / "missing.json").read_text()))]
    outcomes = run_plan("t", plan, tmp_path / "w", tmp_path / "o", say=lambda _: None)
    assert outcomes[0].lines[0].startswith("(no summary: FileNotFoundError")


def test_a_killed_run_keeps_the_stages_that_ended(tmp_path):
    """The whole runner killed (SIGKILL, as a lease's end would) during its third stage:
    the archive and the summary hold the first two."""
    out = tmp_path / "out"
    script = (
        "import sys, time\nfrom pathlib import Path\nfrom harness.stages import Stage, run_plan\n"
        "py = sys.executable\n"
        f"plan = [Stage('a', [py, '-c', 'print(1)'], 30), Stage('b', [py, '-c', 'print(2)'], 30),\n"
        f"        Stage('c', [py, '-c', 'import time; time.sleep(120)'], 300)]\n"
        f"run_plan('killed', plan, Path({str(tmp_path / 'work')!r}), Path({str(out)!r}))\n")
    runner = subprocess.Popen([PY, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for line in runner.stdout:
        if line.startswith("stage c (deadline"):
            break
    runner.kill()
    runner.wait()
    assert {"a.log", "b.log"} <= set(_archived(out))
    summary = (out / SUMMARY).read_text()
    assert "[a] ok" in summary and "[b] ok" in summary and "[c] not reached" in summary


def test_bench_deadline_skips_what_was_not_started_and_saves_what_was_timed(tmp_path):
    out = tmp_path / "run.json"
    done = subprocess.run(
        [PY, "-m", "pytest", str(ROOT / "suites/contenders/test_bench.py"), "--benchmark-only",
         f"--benchmark-json={out}", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-k", "n256-c1000 and (eager or module) and not compiled", "--bench-passes=1",
         "--bench-processes=1", "--bench-round-time=0.02", "--bench-deadline=0.001", "-rs"],
        cwd=ROOT, env=stages.stage_env(), capture_output=True, text=True, timeout=300)
    # the session-scoped fixtures (copy bandwidth, fidelity) outlast the deadline: the first
    # test starts after it, so every benchmark is skipped with the reason, and the
    # session ends normally instead of being killed
    assert "deadline: not started within --bench-deadline" in done.stdout, done.stdout[-2000:]
    assert done.returncode == 0, done.stdout[-2000:]


def test_a_bench_deadline_not_reached_leaves_every_benchmark_timed(shared_bench_run):
    """With room for every test (the shared run's --bench-deadline=600), what was timed is
    in the JSON and nothing was skipped for the deadline."""
    run = shared_bench_run
    assert "--bench-deadline=600" in run.args
    assert sorted(b["extra_info"]["contender"] for b in run.doc["benchmarks"]) == ["eager", "module"]
    assert all(b["stats"]["data"] for b in run.doc["benchmarks"]), run.show()
    assert "not started within --bench-deadline" not in run.output, run.show()
