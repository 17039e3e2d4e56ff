"""A check that survives its contenders (`harness.equivalence.isolation`): contenders that
hang with SIGALRM blocked, die of SIGSEGV, abort on weighted cases or allocate without
bound (`untrusted.py`), checked by ``python -m harness check`` beside a correct one. Each
misdeed is one class with its signal and reproduction, the cases of its kind are not run
again, the other verdicts stand, and the command ends in time, talking all along."""

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


def test_an_allocation_without_bound_is_stopped_by_the_memory_limit():
    done, _ = check("--only", "greedy", "--contender", "greedy=untrusted:allocates_on_sum",
                    memory_gib=3)
    out = done.stdout
    assert done.returncode == 1, out
    assert "1. runs out of memory on reduction='sum' (1 case run, " in out, out
    assert "the worker's memory limit (3 GiB)" in out, out


def test_ctrl_c_prints_the_table_of_what_finished():
    env = clean_env(HERE)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "check", "--only", "eager",
                             "--cases", "2000"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    head = []
    for line in proc.stdout:  # interrupted once it is checking generated cases
        head.append(line)
        if "generated cases" in line:
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


@pytest.mark.skipif(os.environ.get("PYTEST_XDIST_WORKER") is None,
                    reason="the suites' containment is pytest-xdist's: run under -n")
def test_under_xdist_a_crashing_contender_is_a_failure_and_the_session_finishes():
    done = subprocess.run([sys.executable, "-m", "pytest", "suites/contenders/test_equivalence.py",
                           "-n", "2", "-p", "no:cacheprovider", "-q", "--contender",
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
