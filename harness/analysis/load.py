"""Benchmark results as data: pytest-benchmark JSON files in, one tidy DataFrame out.

One row per benchmark per run. A *run* is one invocation of the benchmark suite; when it
was sharded (issue 4: ``--shard I/K`` on several processes or machines) its shard files
are merged back into one run. Files are validated as they are read: a truncated, malformed
or foreign file raises `ResultsError` whose one-line message names the file and the
problem (the CLI prints it and exits 2) rather than a pandas traceback later.

Shards are recognised so: files that carry the same explicit run id (the
``machine_info["xentbench"]["run_id"]`` stamp, see `machine_info_stamp`), or, without a
stamp, the same commit, torch version and hardware, with disjoint benchmark names. Two
full runs of one commit overlap, so they stay two runs.

Loading only: the frame goes out as ``runs.csv`` / ``runs.parquet`` through
`harness.analysis.writers`, and which contender a speedup is relative to is
`harness.analysis.report`'s (`is_reference`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.benchmark import record
from harness.benchmark.record import SCHEMA_VERSION, STAMP_KEY, stamp_of

STAT_KEYS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "rounds",
             "iterations", "ops", "total")
# the benchmark record's fields (`harness.benchmark.record`), and a failure row's verdict
EXTRA_KEYS = (*(f for f in record.FIELDS if f != "case"), "ok", "error")
RUN_KEYS = ("run_id", "file", "machine", "node", "cpu", "gpu_name", "driver", "cuda",
            "commit", "dirty", "branch", "datetime", "schema", "run_threads", "fidelity_ok",
            "fidelity_reason")
_NAME = re.compile(r"^[^\[]*\[(?P<case>.+)-(?P<contender>[^-]+)-(?P<mode>fwd|fwd_bwd)\]$")


class ResultsError(ValueError):
    """A results file that cannot be used; the message is one line naming the file."""


# ---- reading and validating one file -------------------------------------------------
@dataclass
class RunFile:
    """One validated pytest-benchmark JSON file."""

    path: Path
    doc: dict
    names: frozenset[str] = field(default_factory=frozenset)

    @property
    def stamp(self) -> dict:
        return stamp_of(self.doc)

    def failure_rows(self) -> list[dict]:
        """Benchmarks that failed before timing (recorded by the plugin, not timed), shaped
        like pytest-benchmark entries without stats, minus any name that was timed after all."""
        out = []
        for fail in self.stamp.get("failures") or []:
            if not isinstance(fail, dict):
                continue
            name = str(fail.get("name", "")).rsplit("::", 1)[-1]
            if name in self.names:
                continue
            extra = {k: fail.get(k) for k in ("contender", "case_id", "mode", "error")}
            out.append({"name": name, "fullname": fail.get("name"), "group": fail.get("case_id"),
                        "extra_info": {**extra, "ok": False}, "stats": None})
        return out

    @property
    def merge_key(self) -> tuple:
        """Files with equal keys and disjoint benchmarks are shards of one run."""
        if self.stamp.get("run_id"):
            return ("id", str(self.stamp["run_id"]))
        commit = self.doc.get("commit_info") or {}
        torches = sorted({str((b.get("extra_info") or {}).get("torch", ""))
                          for b in self.doc["benchmarks"]})
        return ("auto", commit.get("id"), commit.get("dirty"), hardware(self.doc["machine_info"]),
                tuple(torches))


def _fail(path: Path | str, problem: str) -> ResultsError:
    return ResultsError(f"{path}: {' '.join(str(problem).split())}")


def read_file(path: str | Path) -> RunFile:
    """Read and validate one pytest-benchmark JSON file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read: {exc}") from None
    if not text.strip():
        raise _fail(path, "empty file (an interrupted run?)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON, truncated or corrupt ({exc})") from None
    validate(doc, path)
    return RunFile(path, doc, frozenset(b["name"] for b in doc["benchmarks"]))


def validate(doc: object, path: Path | str = "<data>") -> None:
    """Raise `ResultsError` unless ``doc`` looks like pytest-benchmark's JSON."""
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise _fail(path, "not a pytest-benchmark JSON file (no 'benchmarks' list at the top)")
    if not isinstance(doc.get("machine_info"), dict):
        raise _fail(path, "not a pytest-benchmark JSON file (no 'machine_info' object)")
    if not isinstance(doc.get("commit_info", {}), dict):
        raise _fail(path, "'commit_info' is not an object")
    if not isinstance(stamp_of(doc).get("failures") or [], list):
        raise _fail(path, f"'{STAMP_KEY}.failures' is not a list")
    stamp = stamp_of(doc)
    if isinstance(stamp.get("schema"), int) and stamp["schema"] > SCHEMA_VERSION:
        raise _fail(path, f"written with results schema {stamp['schema']}, this harness reads "
                          f"up to {SCHEMA_VERSION}: update xentbench")
    seen: set[str] = set()
    for i, bench in enumerate(doc["benchmarks"]):
        _validate_benchmark(bench, i, path)
        if bench["name"] in seen:
            raise _fail(path, f"benchmark {bench['name']!r} appears twice")
        seen.add(bench["name"])


def _validate_benchmark(bench: object, i: int, path: Path | str) -> None:
    if not isinstance(bench, dict) or not isinstance(bench.get("name"), str):
        raise _fail(path, f"benchmark #{i} has no 'name'")
    where = f"benchmark {bench['name']!r}"
    stats = bench.get("stats")
    if stats is not None and not isinstance(stats, dict):
        raise _fail(path, f"{where}: 'stats' is not an object")
    for key in ("median", "rounds"):
        value = (stats or {}).get(key)
        if value is not None and not _is_number(value):
            raise _fail(path, f"{where}: stats.{key} is not a number ({value!r})")
    data = (stats or {}).get("data")
    if data is not None and not (isinstance(data, list) and all(_is_number(x) for x in data)):
        raise _fail(path, f"{where}: stats.data is not a list of numbers")
    extra = bench.get("extra_info", {})
    if extra is not None and not isinstance(extra, dict):
        raise _fail(path, f"{where}: 'extra_info' is not an object")


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


# ---- machines ------------------------------------------------------------------------
def hardware(machine_info: dict) -> str:
    """What the machine *is* (CPU model, GPU model), not what it is called: CI runners
    get a new host name every run, and shards of one run land on different nodes."""
    gpu = machine_info.get("gpu_name") or ""
    return " / ".join(x for x in (_cpu_name(machine_info) or machine_info.get("machine", ""), gpu) if x)


def _cpu_name(machine_info: dict) -> str:
    """The CPU model as pytest-benchmark records it (a py-cpuinfo dict or a plain string)."""
    cpu = machine_info.get("cpu")
    return cpu.get("brand_raw", "") if isinstance(cpu, dict) else str(cpu or "")


# ---- grouping shards into runs -------------------------------------------------------
def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory stands for the ``*.json`` files in it (one run's shards),
    hidden ones left out: a writer's temporary (`harness.atomic.atomic_path`) is not a run."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.glob("*.json") if not f.name.startswith("."))
            if not found:
                raise _fail(p, "directory holds no .json files")
            out += found
        else:
            out.append(p)
    return out


def group_runs(files: Sequence[RunFile]) -> list[list[RunFile]]:
    """Put shards of one run together, keeping the files' order otherwise."""
    runs: list[list[RunFile]] = []
    for f in files:
        for run in runs:
            if run[0].merge_key == f.merge_key and not any(f.names & g.names for g in run):
                run.append(f)
                break
        else:
            if f.stamp.get("run_id") and any(r[0].merge_key == f.merge_key for r in runs):
                raise _fail(f.path, f"shares run id {f.stamp['run_id']!r} with another file "
                                    "but repeats some of its benchmarks")
            runs.append([f])
    return runs


def _run_ids(runs: list[list[RunFile]]) -> list[str]:
    ids: list[str] = []
    for run in runs:
        base = str(run[0].stamp.get("run_id") or run[0].path.stem)
        rid, k = base, 2
        while rid in ids:
            rid, k = f"{base}#{k}", k + 1
        ids.append(rid)
    return ids


# ---- rows ----------------------------------------------------------------------------
def _run_fields(run: list[RunFile], run_id: str) -> dict:
    infos = [f.doc["machine_info"] for f in run]
    commit = run[0].doc.get("commit_info") or {}
    nodes = list(dict.fromkeys(str(i.get("node", "")) for i in infos))
    hw = hardware(infos[0])
    return {
        "run_id": run_id,
        "file": ";".join(str(f.path) for f in run),
        "machine": f"{'+'.join(nodes)} ({hw})" if hw else "+".join(nodes),
        "node": "+".join(nodes),
        "cpu": _cpu_name(infos[0]),
        "gpu_name": infos[0].get("gpu_name"),
        "driver": infos[0].get("driver"),
        "cuda": infos[0].get("cuda"),
        "commit": commit.get("id"),
        "dirty": commit.get("dirty"),
        "branch": commit.get("branch"),
        # when the run started (the stamp), else when its first file was saved (older files)
        "datetime": min(str(f.stamp.get("started") or f.doc.get("datetime", "")) for f in run),
        "schema": run[0].stamp.get("schema", SCHEMA_VERSION),
        "run_threads": run[0].stamp.get("threads"),
        **_fidelity_fields(run),
        **_ceiling_fields(run),
        "_torch": infos[0].get("torch"),
        "_device": run[0].stamp.get("device"),
    }


# the run's copy and read ceilings (``xentbench.ceilings``, measured once per timing
# session: `harness.benchmark.timing.measure_ceilings`), a column of each of its rows
CEILING_KEYS = ("ceiling_copy_gbps", "ceiling_read_gbps")


def _ceiling_fields(run: list[RunFile]) -> dict:
    """The first shard's ceilings that has them; NaN for a run without (older, smoke)."""
    found = [f.stamp["ceilings"] for f in run if isinstance(f.stamp.get("ceilings"), dict)]
    first = found[0] if found else {}
    return {key: first.get(key.removeprefix("ceiling_")) for key in CEILING_KEYS}


def _fidelity_fields(run: list[RunFile]) -> dict:
    """The timer self-check of the run (`harness.benchmark.stability.Fidelity`): failed when any
    shard's failed; None when no shard ran it."""
    checks = [f.stamp.get("fidelity") for f in run if isinstance(f.stamp.get("fidelity"), dict)]
    if not checks:
        return {"fidelity_ok": None, "fidelity_reason": None}
    failed = [str(c.get("reason") or "failed") for c in checks if not c.get("ok", True)]
    return {"fidelity_ok": not failed, "fidelity_reason": "; ".join(failed) or None}


def _from_name(name: str) -> dict:
    m = _NAME.match(name)
    return m.groupdict() if m else {}


def _case_fields(extra: dict, case_id: str | None) -> dict:
    case = extra.get("case")
    if not isinstance(case, dict) and case_id:
        from harness.problem.case import Case, CaseError

        try:
            case = Case.from_id(case_id).fields()
        except CaseError:
            case = None
    if not isinstance(case, dict):
        return {}
    out = {f"case_{k}": (json.dumps(v) if isinstance(v, list | dict) else v)
           for k, v in case.items()}
    spatial = case.get("spatial") or []
    if "n" in case and "c" in case:
        out["positions"] = int(case["n"]) * math.prod(int(s) for s in spatial)
        out["size"] = out["positions"] * int(case["c"])  # logits elements
    return out


def benchmark_row(bench: dict, run: dict) -> dict:
    """One tidy row: run fields, identity, case fields, extra_info, stats, raw rounds."""
    extra = dict(bench.get("extra_info") or {})
    parsed = _from_name(bench["name"])
    stats = bench.get("stats") or {}
    row = {k: v for k, v in run.items() if not k.startswith("_")}
    row.update(name=bench["name"], fullname=bench.get("fullname", bench["name"]),
               group=bench.get("group"))
    row["case_id"] = extra.get("case_id") or parsed.get("case") or bench.get("group")
    row["contender"] = extra.get("contender") or parsed.get("contender")
    row["mode"] = extra.get("mode") or parsed.get("mode")
    row.update(_case_fields(extra, row["case_id"]))
    for key, value in extra.items():
        if key in ("case", "case_id", "contender", "mode"):
            continue
        col = key if key not in row or key in EXTRA_KEYS else f"extra_{key}"
        row[col] = json.dumps(value) if isinstance(value, list | dict) else value
    if row.get("family") is None:
        row["family"] = row.get("case_family")
    if row.get("dtype") is None:
        row["dtype"] = row.get("case_dtype")
    for key in ("torch", "device"):
        if row.get(key) is None:
            row[key] = run.get(f"_{key}")
    for key in STAT_KEYS:
        row[key] = stats.get(key)
    data = stats.get("data")
    row["data"] = [float(x) for x in data] if isinstance(data, list) else None
    if row.get("ok") is None:
        row["ok"] = row.get("error") is None and stats.get("median") is not None
    return row


COLUMNS = tuple(dict.fromkeys((*RUN_KEYS, "name", "fullname", "group", "case_id", "contender",
                                "mode", *EXTRA_KEYS, *STAT_KEYS, "data", "positions", "size", *CEILING_KEYS)))


def load(paths: Iterable[str | Path], merge_shards: bool = True) -> pd.DataFrame:
    """Read, validate and merge pytest-benchmark JSON files into one tidy DataFrame.

    Missing optional fields are NaN/None, so files from older or partial harnesses load;
    a bad file raises `ResultsError`."""
    files = [read_file(p) for p in expand_paths(paths)]
    if not files:
        raise ResultsError("no result files given")
    runs = group_runs(files) if merge_shards else [[f] for f in files]
    rows = []
    for run, run_id in zip(runs, _run_ids(runs), strict=True):
        fields = _run_fields(run, run_id)
        rows += [benchmark_row(b, fields) for f in run
                 for b in [*f.doc["benchmarks"], *f.failure_rows()]]
    return frame(rows)


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows to a DataFrame with every known column present (NaN where absent)."""
    df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = None
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[[*COLUMNS, *extra]]
    for col in (*record.NUMERIC, *STAT_KEYS, "positions", "size", *CEILING_KEYS):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df.reset_index(drop=True)


def runs_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: what it ran on and how many benchmarks it holds."""
    if df.empty:
        return pd.DataFrame(columns=[*RUN_KEYS, "torch", "devices", "benchmarks"])
    grouped = df.groupby("run_id", sort=False)
    out = grouped[list(RUN_KEYS[1:])].first()
    out["torch"] = grouped["torch"].agg(_join_unique)
    out["devices"] = grouped["device"].agg(_join_unique)
    out["benchmarks"] = grouped.size()
    return out.reset_index()


def _join_unique(values: pd.Series) -> str:
    return ",".join(str(v) for v in dict.fromkeys(values.dropna()))
