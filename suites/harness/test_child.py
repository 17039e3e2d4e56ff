"""`harness.child.Child`, the one way the harness manages a child process (check's contender
workers, ab's workers, the GPU check's stages): JSON lines under a deadline, the process
group killed on a hang, a death in words with the last lines of its log, a restart.
The process is the subject, so these start real (small) Python processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from harness.child import Child, ChildStopped, ended

PY = sys.executable
# echoes each request with "echo"; "sleep" hangs with a grandchild in its group; "die" says
# a last word on stderr and kills itself with the signal asked; "quit" ends it
SERVER = """
import json, os, signal, subprocess, sys, time
print("started", file=sys.stderr, flush=True)
for line in sys.stdin:
    msg = json.loads(line)
    if msg["op"] == "quit":
        sys.exit(0)
    if msg["op"] == "sleep":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(json.dumps({"grandchild": grandchild.pid}), file=sys.stderr, flush=True)
        time.sleep(60)
    if msg["op"] == "die":
        print("last words", file=sys.stderr, flush=True)
        os.kill(os.getpid(), msg["signal"])
    print(json.dumps({"echo": msg}), flush=True)
"""


def _server(tmp_path: Path) -> Child:
    child = Child([PY, "-c", SERVER], tmp_path / "child.log")
    child.start()
    return child


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_request_gets_its_reply_and_quit_ends_it(tmp_path):
    child = _server(tmp_path)
    assert child.request({"op": "hi", "n": 1}, deadline_s=30) == {"echo": {"op": "hi", "n": 1}}
    assert child.request({"op": "again"}) == {"echo": {"op": "again"}}
    started = time.monotonic()
    child.close({"op": "quit"}, wait_s=10)
    assert not child.running
    assert child.proc.returncode == 0  # it quit when asked: not killed after the wait
    assert time.monotonic() - started < 5


def test_a_hang_past_its_deadline_kills_the_whole_group(tmp_path):
    child = _server(tmp_path)
    child.request({"op": "warm"}, deadline_s=30)
    started = time.monotonic()
    with pytest.raises(ChildStopped) as stopped:
        child.request({"op": "sleep"}, deadline_s=2.0)
    assert stopped.value.hung and str(stopped.value) == "no answer within 2.0 s"
    assert time.monotonic() - started < 10
    grandchild = next(int(line.split(": ")[1].rstrip("}")) for line in
                      (tmp_path / "child.log").read_text().splitlines() if "grandchild" in line)
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)  # its group went with it


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT])
def test_a_death_is_said_with_its_signal_and_last_words_and_a_restart_goes_on(tmp_path, sig):
    child = _server(tmp_path)
    with pytest.raises(ChildStopped) as stopped:
        child.request({"op": "die", "signal": int(sig)}, deadline_s=30)
    assert not stopped.value.hung and stopped.value.code == -sig
    assert str(stopped.value) == f"killed by {sig.name}"
    assert stopped.value.tail == "started | last words"
    child.restart()
    assert child.request({"op": "hi"}, deadline_s=30) == {"echo": {"op": "hi"}}
    assert child.tail() == "started"  # this start's lines only; the log keeps both
    assert (tmp_path / "child.log").read_text().count("started") == 2
    child.close({"op": "quit"})


def test_ended_in_words():
    assert (ended(-signal.SIGKILL), ended(3), ended(0)) == (
        "killed by SIGKILL", "exited with code 3", "exited with code 0")


def test_wait_stops_with_sigint_first_then_harder(tmp_path):
    ignores = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
               "print('ready', flush=True); time.sleep(60)")
    child = Child([PY, "-c", ignores], tmp_path / "w.log", talk=False)
    child.start()
    deadline = time.monotonic() + 60
    while "ready" not in child.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # its handler is in place
    assert child.wait(0.1, grace_s=1.0) == "SIGTERM"
