"""A check that survives its contenders (`harness.equivalence.isolation`): contenders that
hang with SIGALRM blocked, die of SIGSEGV, abort on weighted cases or allocate without
bound (`untrusted.py`), checked by ``python -m harness check`` beside a correct one. Each
misdeed is one failure with its signal and reproduction, the cases of its kind are not run
again, the other verdicts stand, and the command ends in time, talking all along.

The process is the subject here, so the containment tests start real processes, on a few
explicit cases (seconds each); how failures become classes is proven in process with a
stand-in judge. The full demonstration on generated cases is in the slow tier."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_external import clean_env

from harness.equivalence import isolation
from harness.equivalence.progress import Ticker
from harness.equivalence.properties import PROPERTIES
from harness.problem.case import Case

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STAMP = re.compile(r"^check: .* \[(\d+) s\]$")


def check(*args: str, memory_gib: float | None = None, timeout: float = 240):
    env = clean_env(HERE)
    if memory_gib is not None:
        env["XENTBENCH_WORKER_MEMORY"] = str(memory_gib)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness", "check", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)
    return done, time.monotonic() - started


def rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[-1] for line in out.splitlines()
            if line.split() and line.split()[-1] in ("PASS", "FAIL", "skip")}


UNTRUSTED = ("--contender", "hang=untrusted:hangs_on_sum", "--contender", "segv=untrusted:segfaults_on_sum",
             "--contender", "abort=untrusted:aborts_when_weighted")
# the first case comes back from every contender (the worker's first call, which gets the
# compile allowance, is not the one that hangs); then each misdeed, and a case of its kind
MEAN, SUM, WEIGHTED, SUM_WEIGHTED = ("n2-c3-p0.5-f32-mean", "n2-c3-p0.5-f32-sum",
                                     "n2-c3-p0.5-f32-mean-wbalanced", "n2-c3-p0.5-f32-sum-wbalanced")


def test_a_hang_a_segfault_and_an_abort_are_contained_and_the_run_goes_on():
    """Four explicit cases, each contender in its worker: the hang is killed past its
    limit, the crashes are named by their signal, a later case of the same kind is not run,
    eager's verdicts stand, and a progress line comes at least every 10 s."""
    done, took = check(MEAN, SUM, WEIGHTED, SUM_WEIGHTED, "--only", "eager", "--only", "hang",
                       "--only", "segv", "--only", "abort", *UNTRUSTED, timeout=180)
    out = done.stdout
    assert done.returncode == 1, out
    assert took < 180, took
    assert rows(out) == {"eager": "PASS", "hang": "FAIL", "segv": "FAIL", "abort": "FAIL"}, out
    assert re.search(rf"FAIL hang on {SUM}\n  hang: no answer within [\d.]+ s \(on case {SUM}; "
                     r"the worker was killed\)", out), out
    assert f"FAIL segv on {SUM}\n  crash: killed by SIGSEGV" in out, out
    assert f"FAIL abort on {WEIGHTED}\n  crash: killed by SIGABRT" in out, out
    for name, first in (("hang", SUM), ("segv", SUM), ("abort", WEIGHTED)):
        # the case of its kind after it is not run: the worker is not killed twice
        assert re.search(rf"FAIL {name} on {SUM_WEIGHTED}\n  not run: .*(hung|crashed) on case "
                         rf"{first}\n", out), out
        assert (f"reproduce: python -m harness check {first} --only {name} --contender "
                f"{name}=untrusted:") in out, out
    assert "FAIL eager" not in out and f"FAIL hang on {MEAN}" not in out, out
    stamps = [int(m.group(1)) for line in out.splitlines() if (m := STAMP.match(line))]
    assert stamps and all(b - a <= 10 for a, b in zip([0, *stamps], stamps, strict=False)), stamps


class _StandIn:
    """A judge for `verdicts.check_cases` that fails the cases ``fails`` says (a
    `isolation.Failure`) and judges the rest with eager in process: what the check makes
    of hangs and crashes, without a process to kill."""

    fresh = False

    def __init__(self, fails):
        from harness import contenders as registry

        self.fails, self.eager = fails, isolation.InProcess(registry.get("eager"), "cpu")

    def verdicts(self, case, props, limit):
        return self.fails(case) or self.eager.verdicts(case, props, limit)

    def close(self):
        pass


@pytest.mark.parametrize(("kind", "fails_on", "words"), [
    ("hang", "sum", "hangs on reduction='sum' (1 case run, 2 not run)"),
    ("crash", "sum", "crashes on reduction='sum' (1 case run, 2 not run)"),
    ("out of memory", "sum", "runs out of memory on reduction='sum' (1 case run, 2 not run)"),
    ("crash", "weights", "crashes on class weights"),
], ids=["hang", "segv", "oom", "abort"])
def test_a_hang_or_crash_is_one_class_and_the_cases_of_its_kind_are_not_run(kind, fails_on, words):
    from harness import contenders as registry
    from harness.analysis import tables
    from harness.equivalence import verdicts
    from harness.equivalence.runner import repro_command

    ids = ["n2-c3-p0.5-f32-mean", "n2-c3-p0.5-f32-none", "n2-c3-p0.5-f32-sum", "n2-c3-p0.5-f64-sum",
           "n3-c4-p0.2-f32-mean-wbalanced", "n2-c3-p0.5-f32-sum-wbalanced"]
    cases = [Case.from_id(i) for i in ids]

    def fails(case):
        hit = case.reduction == "sum" if fails_on == "sum" else case.weights != "none"
        return isolation.Failure(kind, "what it did") if hit else None

    contender = registry.parse_spec("mine=torch.nn.functional:cross_entropy")
    results = verdicts.check_cases(contender, cases, "cpu", judges={"mine": _StandIn(fails)})
    got = {r.case.id: (r.failure.kind if r.failure else "ok") for r in results}
    first = ids[2] if fails_on == "sum" else ids[4]
    later = {ids[3], ids[5]} if fails_on == "sum" else {ids[5]}
    assert got == {i: kind if i == first else "not run" if i in later else "ok" for i in ids}, got
    classes = verdicts.failure_classes(results)
    assert len(classes) == 1 and classes[0].minimal.id == first, classes
    report = tables.defect_report("mine", classes, lambda case: repro_command(contender, case))
    assert f"  1. {words}" in report, report
    assert ("1 not run)" if fails_on == "weights" else words) in report, report
    assert f"reproduce: python -m harness check {first} --only mine --contender mine=" in report, report
    tally = {t.contender: t for t in verdicts.summarise(results, PROPERTIES)}["mine"]
    assert tally.verdict == "FAIL" and tally.cases == len(ids), tally


@pytest.mark.slow  # the full demonstration: every contender on its generated cases (minutes)
def test_a_hang_a_segfault_and_an_abort_are_three_classes_and_the_run_goes_on():
    done, took = check("--only", "eager", "--only", "hang", "--only", "segv", "--only", "abort",
                       "--contender", "hang=untrusted:hangs_on_sum",
                       "--contender", "segv=untrusted:segfaults_on_sum",
                       "--contender", "abort=untrusted:aborts_when_weighted")
    out = done.stdout
    assert done.returncode == 1, out
    assert took < 240, took
    assert rows(out) == {"eager": "PASS", "hang": "FAIL", "segv": "FAIL", "abort": "FAIL"}, out
    assert "1. hangs on reduction='sum' (1 case run, " in out, out
    assert "the worker was killed" in out, out
    assert "1. crashes on reduction='sum' (1 case run, " in out and "killed by SIGSEGV" in out, out
    assert "1. crashes on class weights (1 case run, " in out and "killed by SIGABRT" in out, out
    for name in ("hang", "segv", "abort"):
        assert re.search(rf"reproduce: python -m harness check \S+ --only {name} --contender "
                         rf"{name}=untrusted:", out), out
    # never silent for more than 10 s: a progress line (to stderr, here merged) every 5 s
    stamps = [int(m.group(1)) for line in out.splitlines() if (m := STAMP.match(line))]
    assert stamps and all(b - a <= 10 for a, b in zip([0, *stamps], stamps, strict=False)), stamps


def test_an_allocation_without_bound_is_stopped_by_the_memory_limit(monkeypatch):
    """The worker's address-space limit ends the allocation and the worker says so (its
    judge, `isolation.Isolated`, called here: the worker is the process under test)."""
    from harness import contenders as registry

    monkeypatch.setenv("XENTBENCH_WORKER_MEMORY", "3")
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    judge = isolation.Isolated(registry.parse_spec("greedy=untrusted:allocates_on_sum"), "cpu")
    try:
        fine = judge.verdicts(Case.from_id(MEAN), PROPERTIES, limit=125.0)
        got = judge.verdicts(Case.from_id(SUM), PROPERTIES, limit=125.0)
    finally:
        judge.close()
    assert isinstance(fine, dict) and all(v.ok for v in fine.values()), fine
    assert isinstance(got, isolation.Failure) and got.kind == "out of memory", got
    assert "stopped by the worker's memory limit (3 GiB)" in got.detail, got


def test_ctrl_c_prints_the_table_of_what_finished():
    env = clean_env(HERE)
    # explicit cases, more than a minute of them: interrupted at the first progress line
    # (5 s in), while it checks them
    proc = subprocess.Popen([sys.executable, "-m", "harness", "check", "--only", "eager",
                             *["n64-c100-p0.1-f32-mean-wbalanced"] * 5000], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    head = []
    for line in proc.stdout:  # interrupted once it is checking cases
        head.append(line)
        if re.search(r"eager: .*case \d+ of 5000", line):
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    out = "".join(head) + rest
    assert proc.returncode == 130, out
    assert "(interrupted: the table holds the cases that finished)" in out, out
    assert re.search(r"^eager\s+\d+\s", out, re.M), out
    assert "interrupted: python -m harness check stopped while checking eager on case" in out, out


def test_the_call_limit_is_derived_from_the_reference_with_a_floor():
    case = Case.from_id("n4-c5-3-p0.3-f32-mean")
    assert isolation.call_limit(case, "cpu", first_compile=False, given=None) == isolation.FLOOR_S
    assert isolation.call_limit(case, "cpu", first_compile=True, given=None) == \
        isolation.FLOOR_S + isolation.COMPILE_ALLOWANCE_S
    assert isolation.call_limit(case, "cpu", first_compile=False, given=42.0) == 42.0


def test_the_kind_of_a_hang_is_what_no_completed_case_has():
    done = [Case.from_id("n4-c5-3-p0.3-f32-mean"), Case.from_id("n4-c5-3-p0.3-f32-none")]
    hung = Case.from_id("n4-c5-3-p0.3-f32-sum")
    kind = isolation.kind_of(hung, done)
    assert kind == ("reduction='sum'",)
    assert isolation.of_kind(Case.from_id("n2-c3-p0.5-f64-sum-wbalanced"), kind)
    assert not isolation.of_kind(Case.from_id("n2-c3-p0.5-f64-mean"), kind)
    assert isolation.kind_of(done[0], done) == ()  # nothing singles it out: nothing skipped


def test_only_the_users_code_is_isolated():
    from harness import contenders as registry

    assert not isolation.is_untrusted(registry.get("eager"))
    external = registry.parse_spec("x=torch.nn.functional:cross_entropy")
    assert isolation.is_untrusted(external)
    assert isinstance(isolation.judge_for(external, "cpu"), isolation.Isolated)


class _Log:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_the_ticker_talks_on_its_own_while_the_main_thread_is_blocked():
    log = _Log()
    with Ticker(stream=log, period=0.05) as tick:
        tick("eager: option grid, case 1 of 36")
        time.sleep(0.3)  # a blocked call: the thread still says what is running
    lines = [ln for ln in log.text.splitlines() if ln]
    assert len(lines) >= 3 and all(ln.startswith("check: eager: option grid") for ln in lines), lines


@pytest.mark.slow  # pytest-xdist's own crash handling, two torch workers (about 28 s)
@pytest.mark.skipif(os.environ.get("PYTEST_XDIST_WORKER") is None,
                    reason="the suites' containment is pytest-xdist's: run under -n")
def test_under_xdist_a_crashing_contender_is_a_failure_and_the_session_finishes():
    # one xdist worker: it crashes on the first test, and its replacement runs (and crashes
    # on) the second, so the session goes on after a crash (-n 2 only started one more torch)
    done = subprocess.run([sys.executable, "-m", "pytest", "suites/contenders/test_equivalence.py",
                           "-n", "1", "-p", "no:cacheprovider", "-q", "--contender",
                           "segv=untrusted:segfaults_on_sum", "-k", "segv and (loss or inputs)"],
                          cwd=ROOT, env=clean_env(HERE), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    out = done.stdout
    assert done.returncode == 1, out[-3000:]
    assert "crashed while running 'suites/contenders/test_equivalence.py::" \
        "test_multiclass_property[segv-" in out, out[-3000:]
    assert re.search(r"2 failed", out), out[-2000:]


def test_bench_checks_the_users_code_in_a_worker_first_and_times_the_rest(tmp_path):
    """A contender that aborts on weighted cases would end the benchmark process at its
    first call: its check runs in a worker first, the benchmark is recorded as a crash
    and never run here, and eager beside it is timed and saved."""
    out = tmp_path / "run.json"
    env = clean_env(HERE)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--size", "small", "--cases", "landmarks",
         "--passes", "1", "--round-time", "0.02", "--only", "abort", "--only", "eager",
         "--contender", "abort=untrusted:aborts_when_weighted", "--out", str(out), "--",
         "-k", "n8-c2-512x512 and fwd and not fwd_bwd"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300, check=False)
    assert "not timed: crash: killed by SIGABRT" in done.stdout, done.stdout[-3000:]
    doc = json.loads(out.read_text())
    assert [b["extra_info"]["contender"] for b in doc["benchmarks"]] == ["eager"]
    [failure] = doc["xentbench"]["failures"]
    assert failure["contender"] == "abort" and failure["error"] == "crash: killed by SIGABRT"


def test_a_ctrl_c_right_after_a_progress_line_still_names_the_case():
    """The progress line is printed before the call; a Ctrl-C that lands between them (a
    user reacting to the line, or the subprocess test above) still names the case."""
    from harness import contenders as registry
    from harness.equivalence import verdicts

    case = Case.from_id("n2-c3-p0.5-f32-mean")

    def progress(text: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:
        verdicts.check_cases(registry.get("eager"), [case], "cpu", progress=progress)
    assert str(stopped.value) == f"checking eager on case {case.id}"
