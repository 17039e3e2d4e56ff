"""``python -m harness bench``: the main job. Runs the benchmark suite under pytest,
writes ``results/runs/<timestamp>-<machine>.json`` atomically and prints the table."""

from __future__ import annotations

import datetime as dt
import platform
import re
import subprocess
import sys
from pathlib import Path

from harness.files import atomic_path
from harness.timing import DEFAULT_THREADS

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "results" / "runs"


def default_output() -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    machine = re.sub(r"[^A-Za-z0-9_.-]+", "_", platform.node() or "machine")
    return RUNS / f"{stamp}-{machine}.json"


def pytest_command(args, json_path: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_bench.py"),
           "--benchmark-only", f"--benchmark-json={json_path}", "--benchmark-save-data",
           "--benchmark-group-by=group", "--benchmark-sort=mean",
           "--benchmark-columns=min,median,iqr,rounds",
           f"--bench-size={args.size}", f"--device={args.device}", f"--bench-threads={args.threads}",
           "-q", "-p", "no:cacheprovider",
           "-W", "ignore::DeprecationWarning"]
    if args.shard:
        cmd.append(f"--shard={args.shard}")
    if args.run_id:
        cmd.append(f"--run-id={args.run_id}")
    if args.flush_l2:
        cmd.append("--bench-flush-l2")
    for spec in args.contender:
        cmd.append(f"--contender={spec}")
    for spec in args.binary_contender:
        cmd.append(f"--binary-contender={spec}")
    return cmd + list(args.pytest_args)


class _NoResults(Exception):
    """Raised inside the atomic block so a failed run never replaces an existing file."""


def _run_once(args, path: Path) -> int:
    code = subprocess.call(pytest_command(args, path), cwd=ROOT)
    # 0: all passed; 1: some benchmarks failed (recorded in the JSON). Anything else (usage
    # error, nothing collected, interrupted) publishes nothing.
    if code not in (0, 1) or not path.exists() or path.stat().st_size == 0:
        raise _NoResults(code)
    return code


def _run_pooled(args, path: Path) -> int:
    """``args.processes`` runs, each in its own pytest process, pooled into ``path``
    (`harness.pooling`). The per-process files live in a temporary directory, where no
    reader of results/runs can take them for runs."""
    import json
    import tempfile

    from harness.pooling import pool

    codes, docs = [], []
    with tempfile.TemporaryDirectory(prefix="xentbench-pool-") as tmpdir:
        for k in range(args.processes):
            part = Path(tmpdir) / f"process-{k + 1}.json"
            print(f"bench: process {k + 1} of {args.processes}", flush=True)
            codes.append(_run_once(args, part))
            docs.append(json.loads(part.read_text(encoding="utf-8")))
    path.write_text(json.dumps(pool(docs), indent=1), encoding="utf-8")
    return max(codes)


def cmd_bench(args) -> int:
    out = Path(args.out) if args.out else default_output()
    code = 2
    try:
        with atomic_path(out) as tmp:
            code = _run_pooled(args, tmp) if args.processes > 1 else _run_once(args, tmp)
    except _NoResults as stop:
        code = stop.args[0] if stop.args else code
        print(f"bench: pytest exited {code}; {out} left as it was", file=sys.stderr)
        return code or 2
    print(f"\nresults: {out}" + ("" if code == 0 else "  (some benchmarks failed: see above)"))
    return code


def register(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmark suite and save its JSON (the main job)")
    p.add_argument("--size", default="small", choices=("small", "full"),
                   help="size preset (small: a few minutes on a 2-core CPU)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                   help="intra-op threads on CPU (default 1: survives a busy neighbour; 0 = torch's default)")
    p.add_argument("--processes", type=int, default=1, metavar="K",
                   help="time everything in K pytest processes and pool their rounds: run-to-run "
                        "drift averages out like 1/sqrt(K) (default 1)")
    p.add_argument("--out", default=None, help="JSON path (default results/runs/<time>-<machine>.json)")
    p.add_argument("--shard", default=None, metavar="I/K", help="run shard I of K")
    p.add_argument("--run-id", default=None, help="id shared by all shards of one run "
                   "(default: $XENTBENCH_RUN_ID)")
    p.add_argument("--flush-l2", action="store_true", help="flush the device cache between rounds")
    p.add_argument("--contender", action="append", default=[], metavar="NAME=MODULE:ATTR")
    p.add_argument("--binary-contender", action="append", default=[], metavar="NAME=MODULE:ATTR")
    p.add_argument("pytest_args", nargs="*", help="passed to pytest after --")
    p.set_defaults(func=cmd_bench)
