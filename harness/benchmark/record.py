"""The benchmark record and the run's stamp: what every timed benchmark keeps in pytest-benchmark's
``extra_info``, declared once. The benchmark procedure writes it
(`harness.benchmark.fixture`, run by ``suites/contenders/test_bench.py``), the loader reads
its fields as columns (`harness.analysis.load`), and the fake runs of the harness's tests
build it too, so a new column is one field here.

Fields typed ``float`` or ``int`` become numeric columns; ``case`` (the case's fields)
is expanded into ``case_*`` columns; dict-valued fields are stored as JSON text."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass


@dataclass
class BenchRecord:
    # identity: the Case id, contender and mode are also the benchmark's name
    contender: str
    family: str
    case_id: str
    mode: str                                 # fwd | fwd_bwd
    device: str
    dtype: str
    case: dict                                # Case.fields(), expanded to case_* columns
    # traffic (`harness.benchmark.traffic.min_bytes`) and memory
    bytes: int
    peak_gbps: float                          # the device's measured copy bandwidth
    peak_mem_bytes: int | None
    gbps: float | None = None                 # bytes / median
    peak_bw_pct: float | None = None          # gbps as % of peak_gbps
    model_bytes: int | None = None            # the contender's own traffic model (traffic.model_bytes)
    # compile cost (torch.compile contenders)
    compile_s: float | None = None
    compile_warm_s: float | None = None
    compile_what: str | None = None
    # correctness: what the contender declares on this case (exact or degraded), and the
    # check before timing's largest errors against the float64 oracle
    accuracy: str | None = None
    loss_error: float | None = None           # max |loss - oracle|
    grad_error: float | None = None           # max |grad - oracle| over the elements
    error_of_bound: float | None = None       # the larger error as a share of its bound (<= 1 passes)
    # how it was timed, and whether the timing can be trusted (`harness.benchmark.stability`)
    torch: str | None = None
    threads: int | None = None
    timing_method: str | None = None          # perf_counter | cuda-events
    wall_median: float | None = None          # CUDA: the wall clock's median beside the events'
    # how CUDA rounds were timed (docs/benchmarking.md, 'CUDA timing')
    l2_flushed: bool | None = None            # a buffer past the device cache zeroed per round
    warmup_s: float | None = None             # seconds of calls right before the rounds
    warmup_calls: int | None = None
    calls_per_event: int | None = None        # back-to-back calls per CUDA event pair
    host_median: float | None = None          # the host's enqueue time per call
    launch_bound: bool | None = None          # host enqueue ≥ 0.8 × event time: timed the launches
    gpu_state: dict | None = None             # NVML before and after (`harness.benchmark.gpu_state`)
    blocks: int | None = None                 # blocks of rounds on fresh input copies
    passes: int | None = None                 # passes over the selection that timed them
    processes: int | None = None              # processes pooled (`bench --processes`)
    stable: bool | None = None
    unstable_reason: str | None = None
    stability: dict | None = None             # the evidence (`stability.Evidence.summary`)

    def as_extra(self) -> dict:
        """Every field (None where not known yet), for ``benchmark.extra_info.update``."""
        return dataclasses.asdict(self)


# ---- the run's stamp: the harness's own block of a results file ------------------------
SCHEMA_VERSION = 1          # of the stamp below and of every results file the harness writes
STAMP_KEY = "xentbench"     # doc[STAMP_KEY] (or machine_info[STAMP_KEY]): schema, run id, shard


def machine_info_stamp(run_id: str | None = None, shard: str | None = None) -> dict:
    """The least the benchmark plugin puts under ``output_json["xentbench"]`` (or
    ``machine_info["xentbench"]``): the schema version, and for sharded runs a run id shared
    by all shards (e.g. from ``$XENTBENCH_RUN_ID``) so that they merge reliably. The plugin
    may add ``device``, ``shard``, ``failures`` (benchmarks not timed), ``notes`` and, in a
    timing run, ``ceilings`` (`harness.benchmark.timing.measure_ceilings`)."""
    stamp: dict = {"schema": SCHEMA_VERSION}
    if run_id:
        stamp["run_id"] = run_id
    if shard:
        stamp["shard"] = shard
    return stamp


def stamp_of(doc: dict) -> dict:
    """The harness's own block of a results file: top level first, then machine_info."""
    for holder in (doc, doc.get("machine_info") or {}):
        stamp = holder.get(STAMP_KEY)
        if isinstance(stamp, dict):
            return stamp
    return {}


# ---- the record's fields as columns ----------------------------------------------------
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BenchRecord))


def _numeric(name: str) -> bool:
    hint = typing.get_type_hints(BenchRecord)[name]
    args = set(typing.get_args(hint)) or {hint}
    return bool(args & {int, float}) and bool not in args


NUMERIC: tuple[str, ...] = tuple(name for name in FIELDS if _numeric(name))


def unknown_keys(extra: dict) -> list[str]:
    """Keys of ``extra`` that are not record fields: a writer that forgot to declare one."""
    return [k for k in extra if k not in FIELDS]
