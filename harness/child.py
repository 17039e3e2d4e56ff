"""One child process, managed one way: `check`'s contender workers
(`harness.equivalence.isolation`), `ab`'s timing workers (`harness.benchmark.ab`) and the
GPU check's stages (`harness.stages`) are each a `Child`.

A `Child` starts a command with its environment and working directory, its stderr (and,
for a command that is not talked to, its stdout) in a log file; it talks JSON lines over
pipes, one request and one reply, the reply awaited under a deadline; it is stopped by a
signal sent to its process group (its own group, so that whatever it started goes too and
none of it reaches the caller), or by a sequence of signals with a grace between them; it
says how it ended ("killed by SIGSEGV", "exited with code 3") and quotes the last lines it
wrote; and it can be started again after it died, its log going on in the same file.

Why not `pebble` or `loky`, which time out calls and replace crashed workers: both run a
pickled Python function in a `multiprocessing` worker of this interpreter. Here a child is
a command: `ab` runs each side with its own interpreter and, for instruction counts,
under valgrind, importing the side's own harness, not this one; a stage is pytest or a
script stopped with SIGINT first so that it writes its files; and a contender's worker
must be its own process group with its stderr kept for the crash report. What is shared
is Popen, a select loop and killpg, which a dependency would not shorten.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

POLL_S = 1.0  # how often a wait for a reply also checks whether the child died
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)  # a clean stop first


class ChildStopped(RuntimeError):
    """No reply came: the child died (``code``, its exit status: negative for a signal), or
    it did not answer within ``deadline_s`` and was killed (``hung``). ``tail``: the last
    lines it wrote to its log."""

    def __init__(self, code: int | None, tail: str, deadline_s: float | None = None) -> None:
        self.code, self.tail, self.deadline_s = code, tail, deadline_s
        self.hung = deadline_s is not None
        super().__init__(f"no answer within {deadline_s:.1f} s" if self.hung else ended(code))


def ended(code: int | None) -> str:
    """How a process ended, in words: 'killed by SIGSEGV', 'exited with code 3'."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Child:
    """One child process running ``argv``; see the module's docstring.

    ``talk``: its stdin and stdout are pipes for JSON lines (else it keeps this process's
    stdin and writes its stdout to the log too). ``own_group``: it starts a session of its
    own, and a stop signals its whole process group; without, only the process itself
    (`ab`'s workers stay in the caller's group, so that a Ctrl-C or the GPU check's SIGINT
    to the stage's group reaches them as it reaches `ab`)."""

    def __init__(self, argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, talk: bool = True, own_group: bool = True) -> None:
        self.argv, self.log, self.env, self.cwd = list(argv), log, env, cwd
        self.talk, self.own_group = talk, own_group
        self.proc: subprocess.Popen | None = None
        self._buffer = b""     # what was read past the last whole line
        self._log_from = 0     # where this start's lines begin in the log
        log.write_bytes(b"")   # a log per child, empty at first; restarts append to it

    # ---- its life ----------------------------------------------------------------------
    def start(self) -> None:
        """Start (again): raises OSError when the command cannot be run."""
        self._close_pipes()
        self._buffer, self._log_from = b"", self.log.stat().st_size
        pipe = subprocess.PIPE if self.talk else None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=pipe,
                stdout=pipe if self.talk else log, stderr=log, bufsize=0,
                start_new_session=self.own_group)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int | None:
        """SIGKILL and reap it; its exit status. With ``own_group`` the group is
        killed even after the child ended (what it started may linger; the kernel does not
        reuse a pid that is still a live group's id); without, a process already reaped is
        not signalled (its pid may be another process's by now)."""
        if self.proc is None:
            return None
        if self.own_group or self.proc.poll() is None:
            self.signal(signal.SIGKILL)
        return self.proc.wait()

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` (to the group, with ``own_group``); False when it is already gone."""
        assert self.proc is not None
        try:
            if self.own_group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        except ProcessLookupError:
            return False
        return True

    def restart(self) -> None:
        """A fresh process after this one died or hung (killed first if still running)."""
        self.kill()
        self.start()

    def wait(self, deadline_s: float, grace_s: float, signals: Sequence[signal.Signals] = STOP_SIGNALS,
             ) -> str | None:
        """Wait for it to end by itself within ``deadline_s`` seconds: None. Past that, each
        of ``signals`` in turn with ``grace_s`` seconds to end after it: the name of the
        one it ended after."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout=max(deadline_s, 0))
            return None
        except subprocess.TimeoutExpired:
            pass
        for sig in signals:
            if not self.signal(sig):
                break
            try:
                self.proc.wait(timeout=grace_s)
                return sig.name
            except subprocess.TimeoutExpired:
                continue
        self.proc.wait()
        return signals[-1].name

    def close(self, quit_msg: dict | None = None, wait_s: float = 5.0) -> None:
        """Ask it to quit (``quit_msg``), give it ``wait_s`` seconds, then kill it."""
        if self.running and quit_msg is not None:
            with contextlib.suppress(OSError, ValueError):
                self.send(quit_msg)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait_s)  # type: ignore[union-attr]
        self.kill()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    # ---- talking -----------------------------------------------------------------------
    def send(self, msg: dict) -> None:
        """One JSON line to its stdin; raises BrokenPipeError (OSError) when it is gone."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, msg: dict, deadline_s: float | None = None) -> dict:
        """Send ``msg``, return its reply; raises `ChildStopped` (see `receive`)."""
        try:
            self.send(msg)
        except OSError:
            self._raise_died()
        return self.receive(deadline_s)

    def receive(self, deadline_s: float | None = None) -> dict:
        """Its next JSON line. Past ``deadline_s`` seconds (a call stuck in native code,
        where the child's own alarm cannot reach) it is killed; that, or its death, raises
        `ChildStopped`. Checks for a death every `POLL_S`: a grandchild holding the pipe
        open would otherwise hide it."""
        assert self.proc is not None and self.proc.stdout is not None
        end = None if deadline_s is None else time.monotonic() + deadline_s
        while b"\n" not in self._buffer:
            left = POLL_S if end is None else end - time.monotonic()
            if left <= 0:
                self.kill()
                raise ChildStopped(self.proc.returncode, self.tail(), deadline_s)
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, POLL_S))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    self._raise_died()
                self._buffer += chunk
            elif self.proc.poll() is not None:
                self._raise_died()
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _raise_died(self) -> None:
        assert self.proc is not None
        raise ChildStopped(self.proc.wait(), self.tail())

    # ---- its log -----------------------------------------------------------------------
    def tail(self, lines: int = 6, chars: int = 600) -> str:
        """The last ``lines`` non-blank lines this start wrote to its log, joined by ' | ',
        at most ``chars`` characters."""
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as f:
            f.seek(self._log_from)
            text = f.read().decode(errors="replace")
        kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return " | ".join(kept[-lines:])[-chars:]
