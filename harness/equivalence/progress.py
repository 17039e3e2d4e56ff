"""What a long ``check`` is doing, said at least every `PERIOD_S` seconds: on a terminal one
line rewritten in place, in a log (CI) a plain line per tick. A thread prints, so a call
that blocks the main thread (a contender, a worker's pipe) does not silence it."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

PERIOD_S = 5.0  # at most this long without a word (the promise is 10 s)


class Ticker:
    """``ticker(text)`` sets what is running; the thread says it with the time spent."""

    def __init__(self, stream: TextIO | None = None, period: float = PERIOD_S, prefix: str = "check"):
        self.stream = stream or sys.stderr
        self.period, self.prefix = period, prefix
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.state = "starting"
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="xentbench-progress", daemon=True)
        self._width = 0

    def __call__(self, text: str) -> None:
        with self._lock:
            self.state = text
        if self.tty:
            self._say()

    def _line(self) -> str:
        return f"{self.prefix}: {self.state} [{time.monotonic() - self.started:.0f} s]"

    def _say(self) -> None:
        with self._lock:
            line = self._line()
            if self.tty:
                pad = max(self._width - len(line), 0)
                self.stream.write("\r" + line + " " * pad)
                self._width = len(line)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._say()

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
