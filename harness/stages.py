"""A time-boxed run in stages that cannot come back empty: each stage is a command under its
own deadline, stopped *cleanly* when it runs out (SIGINT first, so pytest writes its JUnit
XML and a script its partial JSON; SIGTERM, then SIGKILL, only if it does not stop), and
after every stage the whole work folder is packed again into one archive and a summary is
rewritten beside it. A kill of the whole run at any moment therefore loses only the stage
it interrupted (`suites/harness/test_stages.py`).

Why this shape: the GPU machine returns at most 8 files from its output folder and nothing
else, its lease is 15 minutes in all, and pytest-benchmark and pytest write their files only
when a session ends. So stages write into a private work folder, and the output folder only
ever holds `ARCHIVE`, `SUMMARY` and what a plan names in ``also`` (`scripts/gpu_check.sh`).
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.atomic import atomic_path, atomic_write_text
from harness.child import Child

ARCHIVE = "gpu-check.tgz"
SUMMARY = "summary.txt"
MAX_OUTPUT_FILES = 4  # ARCHIVE, SUMMARY and at most two copies named by a plan
GRACE_S = 20.0        # after SIGINT: pytest's teardown and file writing take seconds


@dataclass(frozen=True)
class Stage:
    """One command of a plan. ``deadline_s`` bounds its wall time; ``summarise`` turns the
    work folder into the lines the summary shows for it (read after it ended, however it
    ended); ``env`` is added to the run's environment."""

    name: str
    argv: Sequence[str]
    deadline_s: float
    summarise: Callable[[Path], list[str]] | None = None
    env: dict[str, str] = field(default_factory=dict)
    accept: tuple[int, ...] = (0,)  # exit codes that are a result, not a failure


@dataclass
class Outcome:
    """How a stage ended: its exit code (None when it never started), whether the deadline
    stopped it and by which signal, and its wall time."""

    name: str
    returncode: int | None
    seconds: float
    stopped_by: str | None = None
    error: str | None = None
    lines: list[str] = field(default_factory=list)
    accepted: bool = False  # it ended by itself with an exit code its stage accepts

    @property
    def status(self) -> str:
        if self.error:
            return f"not run: {self.error}"
        if self.stopped_by:
            return f"deadline ({self.stopped_by})"
        return "ok" if self.returncode == 0 else f"exit {self.returncode}"


def run_stage(stage: Stage, work: Path, grace_s: float = GRACE_S) -> Outcome:
    """Run ``stage`` with its output in ``work/<name>.log``; at its deadline send SIGINT to
    its process group, then SIGTERM and SIGKILL ``grace_s`` apart while it has not stopped.
    The stage runs in a session of its own (a `Child`), so a signal reaches every process
    it started and none reaches this runner."""
    start = time.monotonic()
    try:
        child = Child(list(stage.argv), work / f"{stage.name}.log", env={**stage_env(), **stage.env},
                      talk=False)
        child.start()
    except OSError as exc:
        return Outcome(stage.name, None, 0.0, error=f"{type(exc).__name__}: {exc}")
    stopped_by = child.wait(stage.deadline_s - (time.monotonic() - start), grace_s)
    code = child.proc.returncode if child.proc is not None else None
    return Outcome(stage.name, code, time.monotonic() - start, stopped_by,
                   accepted=stopped_by is None and code in stage.accept)


def stage_env() -> dict[str, str]:
    """This process's environment for a stage, less an outer pytest's variables (a stage
    started from a test under xdist would otherwise inherit ``PYTEST_XDIST_WORKER``, and
    pytest-benchmark would disable itself), output unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pack(work: Path, archive: Path) -> None:
    """Every file under ``work`` into a gzip'd tar at ``archive``, atomically (a reader
    never sees half an archive, and a kill mid-write leaves the previous one)."""
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(p for p in work.rglob("*") if p.is_file()):
            tar.add(path, arcname=str(path.relative_to(work)))


def summary_text(title: str, outcomes: Sequence[Outcome], pending: Sequence[Stage]) -> str:
    """The summary file: one line per stage (status, seconds, deadline), its own lines
    indented under it, then the stages not yet run."""
    out = io.StringIO()
    out.write(f"{title}\n")
    for o in outcomes:
        out.write(f"[{o.name}] {o.status}, {o.seconds:.0f} s\n")
        for line in o.lines:
            out.write(f"  {line}\n")
    for stage in pending:
        out.write(f"[{stage.name}] not reached (deadline {stage.deadline_s:g} s)\n")
    return out.getvalue()


def run_plan(title: str, stages: Sequence[Stage], work: Path, out: Path,
             also: Sequence[str] = (), grace_s: float = GRACE_S,
             say: Callable[[str], None] = print) -> list[Outcome]:
    """Run ``stages`` in order; after each, pack ``work`` into ``out/ARCHIVE``, copy the
    work files named in ``also`` (at most two) into ``out``, and rewrite ``out/SUMMARY``."""
    if len(also) > MAX_OUTPUT_FILES - 2:
        raise ValueError(f"at most {MAX_OUTPUT_FILES - 2} extra output files; got {list(also)}")
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    for i, stage in enumerate(stages):
        say(f"stage {stage.name} (deadline {stage.deadline_s:g} s)")
        outcome = run_stage(stage, work, grace_s)
        if stage.summarise is not None:
            outcome.lines = _summarised(stage, work)
        outcomes.append(outcome)
        say(f"stage {stage.name}: {outcome.status}, {outcome.seconds:.0f} s")
        publish(title, outcomes, stages[i + 1:], work, out, also)
    return outcomes


def _summarised(stage: Stage, work: Path) -> list[str]:
    """The stage's summary lines; a summariser that fails says so instead of ending the run."""
    try:
        return stage.summarise(work)
    except Exception as exc:  # a missing or half-written file of a stopped stage
        return [f"(no summary: {type(exc).__name__}: {exc})"]


def publish(title: str, outcomes: Sequence[Outcome], pending: Sequence[Stage], work: Path,
            out: Path, also: Sequence[str] = ()) -> None:
    """Write the summary into ``work`` too (so the archive holds it), pack, and copy."""
    text = summary_text(title, outcomes, pending)
    atomic_write_text(work / SUMMARY, text)
    pack(work, out / ARCHIVE)
    for name in also:
        src = work / name
        if src.is_file():
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(src.read_bytes())
    atomic_write_text(out / SUMMARY, text)
