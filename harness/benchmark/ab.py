"""``python -m harness ab BASE [HEAD]``: time two sides interleaved, block by block.

A side is a git revision (checked out into a worktree that is removed afterwards) or a
directory, each run by its own Python interpreter if asked (a side with other pinned
dependencies). Each side gets one long-lived worker process (`harness.benchmark.worker`)
that imports the side's own harness and contenders. For every selected benchmark both
workers check it against the oracle, warm it up and time one call; then the controller
alternates them: a block of rounds on BASE, a block on HEAD, in an order drawn afresh for
every block pair (randomised multiple interleaved trials, Abedi & Brecht 2017), each block
on a freshly allocated copy of the inputs. The two blocks of a pair are milliseconds apart
and see the same machine; `harness.analysis.paired` judges the pairs.

Why blocks and not processes: on this project's 2-core VM the machine's speed moves
within seconds, in steps that shift every benchmark timed during them (measured: one
process of identical code had its first six benchmarks 30 % slower than the next
process, its last four unmoved), so adjacent *processes* of the two sides, 18 s apart,
scatter σ 0.17-0.31 in log ratio: about 100 pairs for a 1.1× verdict. docs/benchmarking.md,
"Paired verdicts", has the σ of each grain.

Where a side runs: its directory is the working directory and comes first on
``PYTHONPATH``, so a side that is a checkout of this harness times its own harness and
contenders, and a side that is a library's checkout times that library's modules (named
by ``--contender NAME=MODULE:ATTR``) with the installed harness.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import verdict
from harness.benchmark import stability
from harness.child import Child, ChildStopped, ended

SIDES = ("BASE", "HEAD")
WORKER = Path(__file__).with_name("worker.py")
# `python -c` puts the working directory (the side) first on sys.path, a script path would
# put this folder there instead
BOOT = "import runpy, sys; path = sys.argv[1]; sys.argv = [path]; runpy.run_path(path, run_name='__main__')"


class AbError(ValueError):
    """What `ab` cannot do as asked (a side that is not a directory nor a revision, a
    worker that cannot list its benchmarks, pytest arguments it does not understand); the
    message is one line."""


@dataclass(frozen=True)
class Side:
    label: str        # BASE or HEAD
    spec: str         # as the user wrote it
    root: Path        # where its worker runs
    python: str       # its interpreter
    commit: str | None = None  # the revision, when the side is one

    def describe(self) -> str:
        return f"{self.label} {self.spec}" + (f" ({self.commit[:10]})" if self.commit else "")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def resolve_commit(repo: Path, spec: str) -> str | None:
    """The full hash ``spec`` names in ``repo``, or None where it names no commit."""
    found = _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None


@contextlib.contextmanager
def opened_side(label: str, spec: str | None, python: str | None, repo: Path) -> Iterator[Side]:
    """The side ``spec`` names: None is the working tree (``repo``); an existing directory
    is taken as it is; anything else must be a revision of ``repo``, checked out detached
    into a temporary worktree that is removed on the way out (also on Ctrl-C)."""
    interpreter = python or sys.executable
    if spec is None or Path(spec).is_dir():
        root = Path(spec).resolve() if spec else repo
        yield Side(label, spec or "working tree", root, interpreter, None)
        return
    commit = resolve_commit(repo, spec)
    if commit is None:
        raise AbError(f"{label} {spec!r} is neither a directory nor a revision of {repo}: give a "
                        "commit, branch or tag that git rev-parse knows, or a directory")
    where = Path(tempfile.mkdtemp(prefix=f"xentbench-ab-{label.lower()}-"))
    added = _git(repo, "worktree", "add", "--detach", "--force", str(where), commit)
    if added.returncode != 0:
        lines = added.stderr.strip().splitlines() or ["git worktree add failed"]
        raise AbError(f"cannot check out {spec} into a worktree: {lines[-1]}")
    try:
        yield Side(label, spec, where, interpreter, commit)
    finally:
        _git(repo, "worktree", "remove", "--force", str(where))
        _git(repo, "worktree", "prune")


def side_env(side: Side, caller_dir: Path) -> dict[str, str]:
    """The side's directory first on ``PYTHONPATH``, then the caller's (their own modules
    named by ``--contender``), then whatever was there."""
    env = dict(os.environ)
    parts = [str(side.root), str(caller_dir), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return env


class WorkerDied(RuntimeError):
    """A side's worker stopped answering (it crashed or was killed)."""


class WorkerProcess:
    """One side's worker (a `Child`): JSON lines in, JSON lines out, its stderr in ``log``.
    It stays in the caller's process group: a Ctrl-C, or the GPU check's SIGINT to the
    stage that runs `ab`, reaches it too."""

    def __init__(self, side: Side, log: Path, caller_dir: Path, prefix: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        """``prefix``: what runs the interpreter (valgrind, for `harness.benchmark.counts`);
        ``env``: variables set on top of the side's environment."""
        self.side, self.log = side, log
        self.child = Child([*prefix, side.python, "-c", BOOT, str(WORKER)], log, cwd=side.root,
                           env={**side_env(side, caller_dir), **(env or {})}, own_group=False)
        self._listing: dict | None = None  # the selection a restarted worker is given again
        self.child.start()

    @property
    def pid(self) -> int:
        return self.child.pid

    def restart(self) -> None:
        """A fresh worker after one died (a contender that crashed it): the run goes on."""
        self.child.restart()
        if self._listing is not None:
            self.call(**self._listing)

    def call(self, deadline_s: float | None = None, **msg: object) -> dict:
        """Send ``msg`` and read the reply; past ``deadline_s`` seconds (a contender stuck
        in native code, where the worker's own alarm cannot reach) the worker is killed."""
        try:
            reply = self.child.request(msg, deadline_s)
        except ChildStopped as stopped:
            how = f"no answer within {deadline_s:.0f} s, killed" if stopped.hung else ended(stopped.code)
            raise WorkerDied(f"{self.side.label}'s worker stopped ({how}) during {msg.get('op')}"
                             f"{' ' + str(msg['id']) if 'id' in msg else ''}: see {self.log}") from None
        if msg.get("op") == "list":
            self._listing = dict(msg)
        return reply

    def close(self) -> None:
        self.child.close({"op": "quit"}, wait_s=10)


@contextlib.contextmanager
def workers(sides: dict[str, Side], out_dir: Path, caller_dir: Path,
            shared: bool = False) -> Iterator[dict[str, WorkerProcess]]:
    """A worker per side, or with ``shared`` one worker (BASE's side) for both halves."""
    started: dict[str, WorkerProcess] = {}
    try:
        for label in (("BASE",) if shared else SIDES):
            started[label] = WorkerProcess(sides[label], out_dir / f"{label.lower()}-worker.log", caller_dir)
        if shared:
            started["HEAD"] = started["BASE"]
        yield started
    finally:
        for w in dict.fromkeys(started.values()):
            w.close()


def paired_names(names: list[str], pair: tuple[str, str] | None) -> dict[str, str]:
    """BASE's benchmark -> HEAD's: the same benchmark on both sides, or with ``pair``
    (OLD, NEW) each of OLD's benchmarks -> NEW's on the same case and mode."""
    if pair is None:
        return {n: n for n in names}
    old, new = pair
    known, out = set(names), {}
    for n in names:
        for mode in ("fwd", "fwd_bwd"):
            if n.endswith(f"-{old}-{mode}"):
                head = n[: -len(f"-{old}-{mode}")] + f"-{new}-{mode}"
                if head in known:
                    out[n] = head
    return out


@dataclass(frozen=True)
class Timing:
    """How long each benchmark is interleaved. A block is ``block_time`` seconds of rounds
    on one side (``min_rounds``-``max_rounds`` rounds); each benchmark gets at least
    ``min_pairs`` block pairs and then more until ``seconds`` have passed."""

    seconds: float = 8.0
    block_time: float = 0.015
    min_rounds: int = 3
    max_rounds: int = 40
    min_pairs: int = 16
    max_pairs: int = 2000
    timeout: float | None = None  # of the check's call (the worker's SIGALRM)

    def rounds(self, once: float) -> int:
        return int(min(max(round(self.block_time / max(once, 1e-7)), self.min_rounds), self.max_rounds))


@dataclass
class Block:
    wall: list[float]
    cpu: list[float]
    switches: list[int]
    runnable: list[int]

    @property
    def median(self) -> float:
        return float(np.median(self.wall)) if self.wall else math.nan

    def stability(self, threads: int, cores: int) -> stability.Stability:
        """The harness's rules on this block's rounds (one runnable count at each end of
        the block stands for its rounds)."""
        runnable = tuple(r for r in self.runnable if r >= 0)
        per_round = tuple(runnable[i * len(runnable) // len(self.wall)] for i in range(len(self.wall))) \
            if runnable else ()
        evidence = stability.Evidence(wall=tuple(self.wall), cpu=tuple(self.cpu),
                                      switches=tuple(self.switches), runnable=per_round,
                                      threads=threads, cores=cores)
        return stability.judge(self.wall, evidence)


@dataclass
class Interleaved:
    """One benchmark timed on both sides: each side's blocks, in pair order, or why it
    was not timed on a side."""

    ident: str
    info: dict[str, dict] = field(default_factory=dict)     # prepare's reply per side
    blocks: dict[str, list[Block]] = field(default_factory=lambda: {s: [] for s in SIDES})
    rounds: int = 0
    seconds: float = 0.0
    head_ident: str | None = None  # `ab --pair`: HEAD's half is another contender's benchmark

    def ident_of(self, label: str) -> str:
        return self.head_ident if label == "HEAD" and self.head_ident else self.ident

    @property
    def failed(self) -> dict[str, str]:
        return {s: r.get("error", "?") for s, r in self.info.items() if not r.get("ok")}

    def pairs(self, threads: int, cores: int) -> tuple[np.ndarray, int]:
        """The log ratios log(HEAD / BASE) of the clean block pairs, and how many pairs
        were dropped because a block of either side was contaminated."""
        kept, dropped = [], 0
        for b, h in zip(self.blocks["BASE"], self.blocks["HEAD"], strict=True):
            if not clean(b, h, threads, cores):
                dropped += 1
            elif b.median > 0 and h.median > 0:
                kept.append(verdict.log_ratio(h.median / b.median))
        return np.asarray(kept), dropped


def clean(base: Block, head: Block, threads: int, cores: int) -> bool:
    """Whether a block pair is judged: neither block contaminated."""
    return not (base.stability(threads, cores).contaminated or head.stability(threads, cores).contaminated)


PREPARE_MARGIN_S = 120.0  # past the call's own limit: importing, building inputs, a compile


@dataclass(frozen=True)
class Wanted:
    """Stop once ``pairs`` clean block pairs are in (`clean`, on a machine of ``threads``
    and ``cores``) instead of after `Timing.min_pairs` pairs: the top-up to the fewest
    pairs the test can judge."""

    pairs: int
    threads: int
    cores: int


def interleave(ident: str, running: dict[str, WorkerProcess], timing: Timing, rng: random.Random,
               seconds: float | None = None, head_ident: str | None = None,
               rounds: int | None = None, wanted: Wanted | None = None) -> Interleaved:
    """Check, warm up and then time ``ident`` on both sides in alternating blocks of
    ``rounds`` rounds (default: `Timing.rounds` of the slower side's one call), at least
    `Timing.min_pairs` pairs and then until ``seconds`` have passed; with ``wanted``, until
    that many clean pairs are in or ``seconds`` have passed. With ``head_ident``
    (`ab --pair`), HEAD's half is that benchmark, usually in the same worker."""
    out = Interleaved(ident, head_ident=head_ident)
    idents = {"BASE": ident, "HEAD": out.ident_of("HEAD")}
    shared = running["BASE"] is running["HEAD"]
    for label in SIDES:
        try:  # the check's call: a contender that hangs or crashes fails, the run goes on
            out.info[label] = running[label].call(
                op="prepare", id=idents[label], timeout=timing.timeout,
                keep=shared and label == "HEAD", deadline_s=(timing.timeout or 300.0) + PREPARE_MARGIN_S)
        except WorkerDied as died:
            out.info[label] = {"ok": False, "error": f"crashed: {died}"}
            running[label].restart()
            if shared:
                break
    if out.failed:
        return out
    out.rounds = rounds or timing.rounds(max(out.info[s]["once"] for s in SIDES))
    budget = timing.seconds if seconds is None else seconds
    start = time.monotonic()
    got = 0  # clean pairs, counted as they come (judging every block again each time is quadratic)

    def more() -> bool:
        done = len(out.blocks["BASE"])
        in_time = time.monotonic() - start < budget
        if done >= timing.max_pairs:
            return False
        if wanted:
            return got < wanted.pairs and in_time
        return done < timing.min_pairs or in_time

    while more():
        for label in rng.sample(SIDES, 2):
            reply = running[label].call(op="block", id=idents[label], rounds=out.rounds)
            if not reply.get("ok"):
                out.info[label] = {"ok": False, "error": reply.get("error", "?")}
                return out
            out.blocks[label].append(Block(reply["wall"], reply["cpu"], reply["switches"], reply["runnable"]))
        if wanted:
            got += clean(out.blocks["BASE"][-1], out.blocks["HEAD"][-1], wanted.threads, wanted.cores)
    out.seconds = time.monotonic() - start
    return out


def merge(first: Interleaved, more: Interleaved) -> Interleaved:
    """``first`` with ``more``'s block pairs appended (another session, or a second go at
    an undecided one). A side that failed in ``more`` fails the benchmark: a contender whose
    answer depends on the process is wrong."""
    if more.failed:
        first.info.update({s: more.info[s] for s in more.failed})
        return first
    for s in SIDES:
        first.blocks[s].extend(more.blocks[s])
    first.seconds += more.seconds
    return first


@dataclass
class AbRun:
    """What an `ab` run did: the sides, what each worker listed, every benchmark both
    sides have, interleaved, and the benchmarks only one side has."""

    sides: dict[str, Side]
    listed: dict[str, dict]
    results: dict[str, Interleaved]
    only_in: dict[str, list[str]]
    seed: int
    started: str
    seconds: float = 0.0
    sessions: int = 1

    @property
    def threads(self) -> int:
        return int(self.listed["HEAD"].get("threads") or 1)

    @property
    def cores(self) -> int:
        return int(self.listed["HEAD"].get("cores") or 1)

    def pairs(self) -> dict[str, tuple[np.ndarray, int]]:
        return {ident: item.pairs(self.threads, self.cores) for ident, item in self.results.items()
                if not item.failed}


def check_selection(selection: dict) -> None:
    """Refuse a ``-k`` (or ``--only``) that keeps no benchmark, before any worker starts
    (seen: 21 s of workers, then an empty table and "σ nan"). Counted by the workers' own
    rule (`harness.benchmark.selection.benchmarks`) over this harness's cases and contender
    names; a ``--contender`` spec counts by its NAME, unimported, since its module may be
    importable only from a side's directory."""
    from harness import contenders as registry
    from harness.benchmark.case_sets import MODES, bench_cases
    from harness.benchmark.selection import benchmarks
    from harness.problem.families import FAMILIES

    select, only = selection.get("select"), set(selection.get("only") or [])
    if not select and not only:
        return
    specs = {"multiclass": selection.get("contender") or [],
             "binary": selection.get("binary_contender") or []}
    names = {f: [c.name for c in registry.resolve(f)] + [s.partition("=")[0] for s in specs.get(f, [])]
             for f in FAMILIES}
    size, which = selection.get("size", "small"), selection.get("cases", "all")
    cases = bench_cases(size, selection.get("device", "cpu"), which)
    try:
        kept = benchmarks(cases, names, MODES, only, select)
    except SyntaxError as exc:  # what pytest's expression parser raises
        raise AbError(f"-k {select!r} is not a pytest -k expression ({exc.msg}): write e.g. "
                      "-k \"n256-c1000 and eager\"") from None
    if kept:
        return
    every = benchmarks(cases, names, MODES)
    what = [f"-k {select!r}"] if select else []
    if only:
        what.append(f"--only {','.join(sorted(only))}")
    example = every[0].id if every else "CASE-CONTENDER-MODE"
    raise AbError(f"{' and '.join(what)} selects none of the {len(every)} benchmarks of --size {size} "
                  f"--cases {which} (ids read CASE-CONTENDER-MODE, e.g. {example}; `python -m harness "
                  "list` names the contenders): widen the selection")


def timing_core() -> int | None:
    """The core both workers are pinned to: the last one this process may use (the first
    is where the system's own interrupts and daemons tend to land). None where the platform
    cannot pin."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def run_ab(sides: dict[str, Side], selection: dict, timing: Timing, out_dir: Path, seed: int,
           caller_dir: Path, undecided: Callable[[AbRun], list[str]] | None = None,
           budget: float | None = None, say: Callable[[str], None] = print,
           pair: tuple[str, str] | None = None, sessions: int = 3, needed: int = 0) -> AbRun:
    """Interleave every benchmark both sides select (``selection``: the worker's ``list``
    message) in ``sessions`` sessions, each with fresh workers and 1/``sessions`` of
    `Timing.seconds` per benchmark, their pairs pooled. Why sessions: a worker process has
    an offset of its own that lasts its life (measured on identical code: one benchmark
    of twelve 1.050× in one A/A comparison of twenty, another 0.945× beside a slowed
    contender); fresh processes average it. With ``undecided`` and a ``budget`` in
    seconds, the last session goes back to the benchmarks it names, a further
    `Timing.seconds` each, while the budget lasts. With ``pair`` (OLD, NEW), one worker
    times both contenders, OLD as BASE and NEW as HEAD, block by block. ``needed``: the
    clean pairs a benchmark must have to be judged at all; the last session adds pairs to
    those short of it first (`_up_to`), before anything is judged."""
    import datetime as dt

    rng = random.Random(seed)
    started = dt.datetime.now(dt.timezone.utc).isoformat()
    clock = time.monotonic()
    run: AbRun | None = None
    matched: dict[str, str] = {}
    for session in range(1, sessions + 1):
        with workers(sides, out_dir, caller_dir, shared=pair is not None) as running:
            listed = {label: running[label].call(op="list", cpu=timing_core(), **selection)
                      for label in (("BASE",) if pair else SIDES)}
            listed.setdefault("HEAD", listed["BASE"])
            for label, reply in listed.items():
                if not reply.get("ok"):
                    raise AbError(f"{sides[label].describe()} cannot list its benchmarks: "
                                  f"{reply.get('error')} (see {running[label].log})")
            if run is None:
                names = {label: listed[label]["benchmarks"] for label in SIDES}
                matched = paired_names([n for n in names["BASE"] if pair or n in set(names["HEAD"])], pair)
                only = {} if pair else {s: [n for n in names[s] if n not in matched] for s in SIDES}
                run = AbRun(sides, listed, {}, {"BASE": [], "HEAD": [], **only}, seed, started,
                            sessions=sessions)
                if pair and not matched:
                    raise AbError(f"--pair {pair[0]}={pair[1]}: no case and mode has both contenders "
                                  "(name both with --contender, and select cases both can run)")
            if not matched:  # nothing in common: no further session can time anything
                break
            _session(run, matched, running, timing, rng, timing.seconds / sessions,
                     f"session {session}/{sessions}" if sessions > 1 else "", say, pair is not None)
            if session == sessions:
                _up_to(needed, run, running, timing, rng, say)
                _until_decided(run, running, timing, rng, undecided, budget, clock, say)
    assert run is not None
    run.seconds = time.monotonic() - clock
    return run


def _session(run: AbRun, matched: dict[str, str], running: dict[str, WorkerProcess], timing: Timing,
             rng: random.Random, seconds: float, label: str, say: Callable[[str], None], pair: bool) -> None:
    """One session's pass over the benchmarks: new pairs for every one not failed yet."""
    for k, ident in enumerate(matched, 1):
        if ident in run.results and run.results[ident].failed:
            continue
        known = run.results.get(ident)  # later sessions keep the first one's block size
        item = interleave(ident, running, timing, rng, seconds=seconds,
                          head_ident=matched[ident] if pair else None, rounds=known.rounds if known else None)
        run.results[ident] = merge(run.results[ident], item) if ident in run.results else item
        failed = "; ".join(f"{s} {e}" for s, e in item.failed.items())
        state = (f"not timed: {failed}" if failed else
                 f"{len(item.blocks['BASE'])} block pairs of {item.rounds} rounds, {item.seconds:.0f} s")
        say(f"xentbench ab: {label + ' ' if label else ''}{k}/{len(matched)} {ident}: {state}")


def _up_to(needed: int, run: AbRun, running: dict[str, WorkerProcess], timing: Timing, rng: random.Random,
           say: Callable[[str], None]) -> None:
    """More pairs for every benchmark with fewer than ``needed`` clean ones, until it has
    them or a further `Timing.seconds` has passed (contaminated pairs are dropped, so a
    busy spell can leave a benchmark short of what its test needs to reach alpha: seen,
    3 pairs judged, p 0.25 the least they could give). What is still short is judged
    ``too few``."""
    for ident, item in run.results.items():
        if item.failed:
            continue
        have = len(item.pairs(run.threads, run.cores)[0])
        if have >= needed:
            continue
        wanted = Wanted(needed - have, run.threads, run.cores)
        more = interleave(ident, running, timing, rng, head_ident=item.head_ident, rounds=item.rounds,
                          wanted=wanted)
        merge(item, more)
        got = len(item.pairs(run.threads, run.cores)[0])
        say(f"xentbench ab: {ident}: {have} clean pairs of the {needed} a verdict needs; "
            f"{len(more.blocks['BASE'])} more pairs in {more.seconds:.0f} s, {got} clean now")


def _until_decided(run: AbRun, running: dict[str, WorkerProcess], timing: Timing, rng: random.Random,
                   undecided: Callable[[AbRun], list[str]] | None, budget: float | None, clock: float,
                   say: Callable[[str], None]) -> None:
    """More pairs for what ``undecided`` names, a further `Timing.seconds` each, within ``budget``."""
    while undecided is not None and budget is not None:
        again = undecided(run)
        per = timing.seconds + 1.0  # the check and warm-up again, on both sides
        if not again or time.monotonic() - clock + per * len(again) > budget:
            if again:
                say(f"xentbench ab: {len(again)} undecided; the budget leaves no time for more pairs")
            break
        say(f"xentbench ab: {len(again)} undecided, adding pairs: {', '.join(again)}")
        for ident in again:
            item = run.results[ident]
            more = interleave(ident, running, timing, rng, head_ident=item.head_ident, rounds=item.rounds)
            merge(item, more)
