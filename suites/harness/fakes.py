"""Fake pytest-benchmark runs for the harness's own tests: `make_run` builds a run of
known speeds (per contender, with optional slowdowns and a machine factor) in the JSON the
plugin writes, `scale_contender` slows one contender, `write_run` saves one. Not a test
module: imported by the analysis tests."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np

from harness.problem.case import Case

CASES = (Case(8, 2, (64, 64), p=0.05, weights="balanced"), Case(256, 1000), Case(64, 1000, p=0.001),
         Case(2, 4, (16, 32, 32)), Case(32, 32000, dtype="bf16"))
SPEED = {"eager": 1.0, "naive": 1.7, "compiled": 0.6, "ext": 0.8}  # time factor per contender


def _bytes(case: Case, mode: str) -> int:
    elem = 2 if case.dtype == "bf16" else 4
    return case.n * case.c * math.prod(case.spatial) * elem * (1 if mode == "fwd" else 2)


def make_run(seed: int = 0, *, speed: dict | None = None, slow: dict | None = None, machine: float = 1.0,
             rounds: int = 12, noise: float = 0.03, node: str = "vm", cpu: str = "AMD EPYC",
             torch: str = "2.13.0", device: str = "cpu", commit: str = "abc123", save_data: bool = True,
             cases=CASES, modes=("fwd", "fwd_bwd"), stamp: dict | None = None,
             noise_of: dict | None = None) -> dict:
    """A pytest-benchmark JSON document: every contender × case × mode, with raw rounds drawn
    log-normal around bytes / (5 GB/s) × contender factor × machine factor × slow[contender]."""
    rng = np.random.default_rng(seed)
    speed, slow = speed or SPEED, slow or {}
    benchmarks = []
    for case in cases:
        for contender, factor in speed.items():
            for mode in modes:
                nbytes = _bytes(case, mode)
                centre = nbytes / 5e9 * factor * machine * slow.get(contender, 1.0)
                sigma = (noise_of or {}).get(contender, noise)
                data = centre * np.exp(rng.normal(0, sigma, rounds))
                benchmarks.append(_entry(case, contender, mode, data, nbytes, device, torch, save_data))
    doc = {"machine_info": {"node": node, "machine": "x86_64", "cpu": {"brand_raw": cpu, "count": 2},
                            "torch": torch},
           "commit_info": {"id": commit, "dirty": False, "branch": "main"},
           "benchmarks": benchmarks, "datetime": f"2026-05-12T10:00:{seed % 60:02d}", "version": "5.3.0"}
    if stamp is not None:
        doc["xentbench"] = stamp
    return doc


def _entry(case: Case, contender: str, mode: str, data: np.ndarray, nbytes: int, device: str,
           torch: str, save_data: bool) -> dict:
    q1, q3 = np.percentile(data, [25, 75])
    med = float(np.median(data))
    stats = {"min": float(data.min()), "max": float(data.max()), "mean": float(data.mean()),
             "stddev": float(data.std(ddof=1)), "median": med, "iqr": float(q3 - q1), "q1": float(q1),
             "q3": float(q3), "rounds": int(data.size), "iterations": 1, "ops": 1 / float(data.mean()),
             "total": float(data.sum())}
    if save_data:
        stats["data"] = [float(x) for x in data]
    gbps = nbytes / med / 1e9
    return {"group": f"{case.id} {mode}", "name": f"test_bench[{case.id}-{contender}-{mode}]",
            "fullname": f"suites/contenders/test_bench.py::test_bench[{case.id}-{contender}-{mode}]",
            "params": {}, "options": {"timer": "perf_counter"},
            "extra_info": {"contender": contender, "family": case.family, "case": case.fields(),
                           "case_id": case.id, "mode": mode, "device": device, "dtype": case.dtype,
                           "bytes": nbytes, "gbps": gbps, "peak_gbps": 20.0, "peak_bw_pct": 5 * gbps,
                           "peak_mem_bytes": nbytes * 2 if device == "cpu" else None,
                           "compile_s": 3.2 if contender == "compiled" else None, "torch": torch},
            "stats": stats}


def scale_contender(doc: dict, contender: str, factor: float) -> dict:
    """A copy of ``doc`` with one contender's rounds (and stats) multiplied by ``factor``."""
    doc = copy.deepcopy(doc)
    for b in doc["benchmarks"]:
        if b["extra_info"]["contender"] == contender:
            s = b["stats"]
            for k in ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "total"):
                s[k] *= factor
            s["data"] = [x * factor for x in s.get("data", [])]
    return doc


def write_run(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


# ---- tests ---------------------------------------------------------------------------


def two_defects(input, target, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
    """A loss with two independent defects: MONAI's FocalLoss(gamma=0) returned the mean
    for reduction='sum'; smp's SoftCrossEntropyLoss counts ignored positions in its mean.
    (Self-contained, so that its source can be written out as a module.)"""
    import torch.nn.functional as F

    kw = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    if reduction == "sum":
        return F.cross_entropy(input, target, reduction="mean", **kw)
    if reduction == "mean":
        return F.cross_entropy(input, target, reduction="sum", **kw) / target.numel()
    return F.cross_entropy(input, target, reduction=reduction, **kw)
