"""What each contender's accuracy costs: the largest error against the float64 oracle per
contender × dtype × logit-scale band, recorded by the equivalence suites and rendered by
``harness report --accuracy``.

Pass/fail hides *how close* an implementation is; a hand-written softmax→log or a
low-precision reduction can pass at small logits and degrade at large ones. The log keeps
the worst case per cell (max over cases), which is also what merges correctly across
pytest-xdist workers: each worker writes its own file and the report takes the max.

File format (JSON, written atomically)::

    {"schema": "xentbench.accuracy", "version": 1, "device": "cpu", "torch": "2.13.0",
     "entries": [{"contender": "eager", "family": "multiclass", "dtype": "f32",
                  "band": "1-10", "prop": "loss", "max_abs": 1.2e-07, "max_rel": 3e-08,
                  "cases": 41, "failed": 0, "limited": 0, "max_of_bound": 0.004}, ...]}

``max_of_bound``: the largest error as a share of its tolerance bound (1 fails), absent
(null) in files written before it was recorded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.analysis.load import ResultsError, expand_paths
from harness.atomic import atomic_write_text

SCHEMA = "xentbench.accuracy"
VERSION = 1
PROPS = ("loss", "grad")  # the outputs whose errors are measured (check.Verdict max_abs/max_rel)
BANDS = ((1.0, "<=1"), (10.0, "1-10"), (100.0, "10-100"), (1e4, "100-1e4"), (math.inf, ">1e4"))
_KEY = ("contender", "family", "dtype", "band", "prop")


def scale_band(scale: float) -> str:
    """The band of a case's logit scale (`Case.scale`, the std of the logits)."""
    return next(label for upper, label in BANDS if scale <= upper)


@dataclass
class AccuracyLog:
    """Worst errors per (contender, family, dtype, band, prop); add verdicts, then write."""

    device: str = ""
    torch: str = ""
    cells: dict[tuple, dict] = field(default_factory=dict)

    def add(self, contender, case, verdicts: Iterable | Mapping) -> None:
        """Record one contender's verdicts on one case.

        ``contender``: a name or a `Contender`; ``case``: a `harness.problem.case.Case`;
        ``verdicts``: `harness.equivalence.properties.Verdict`s (a dict prop -> Verdict, as returned by
        `harness.equivalence.runner.verify`, or any iterable). Only loss and grad carry errors."""
        name = getattr(contender, "name", contender)
        items = verdicts.values() if isinstance(verdicts, Mapping) else verdicts
        for v in items:
            if v.prop not in PROPS:
                continue
            key = (str(name), case.family, case.dtype, scale_band(case.scale), v.prop)
            cell = self.cells.setdefault(key, _empty_cell())
            cell["cases"] += 1
            cell["failed"] += 0 if v.ok else 1
            # A known limit asserted (breakdown, departure, degraded): no error to record.
            cell["limited"] += 0 if getattr(v, "regime", "exact") == "exact" else 1
            if v.compared:
                cell["max_abs"] = _max(cell["max_abs"], v.max_abs)
                cell["max_rel"] = _max(cell["max_rel"], v.max_rel)
                cell["max_of_bound"] = _known_max(cell["max_of_bound"], getattr(v, "of_bound", math.nan))

    def update(self, other: AccuracyLog) -> None:
        """Merge another log (another worker, another file) into this one."""
        for key, theirs in other.cells.items():
            mine = self.cells.setdefault(key, _empty_cell())
            mine["max_abs"] = _max(mine["max_abs"], theirs["max_abs"])
            mine["max_rel"] = _max(mine["max_rel"], theirs["max_rel"])
            mine["max_of_bound"] = _known_max(mine["max_of_bound"], theirs.get("max_of_bound", math.nan))
            mine["cases"] += theirs["cases"]
            mine["failed"] += theirs["failed"]
            mine["limited"] += theirs.get("limited", 0)
        self.device = self.device or other.device
        self.torch = self.torch or other.torch

    def to_dict(self) -> dict:
        entries = [dict(zip(_KEY, key, strict=True), **_json_safe(cell))
                   for key, cell in sorted(self.cells.items())]
        return {"schema": SCHEMA, "version": VERSION, "device": self.device, "torch": self.torch,
                "entries": entries}

    def write(self, path: str | Path) -> Path:
        """Write atomically (an interrupted suite leaves the previous file or none)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, doc: object, where: str = "<data>") -> AccuracyLog:
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise ResultsError(f"{where}: not a xentbench accuracy file (schema {SCHEMA!r} expected)")
        if not isinstance(doc.get("version"), int) or doc["version"] > VERSION:
            raise ResultsError(f"{where}: accuracy schema version {doc.get('version')!r}, this "
                               f"harness reads up to {VERSION}")
        log = cls(str(doc.get("device", "")), str(doc.get("torch", "")))
        entries = doc.get("entries")
        if not isinstance(entries, list):
            raise ResultsError(f"{where}: 'entries' is not a list")
        for i, e in enumerate(entries):
            try:
                key = tuple(str(e[k]) for k in _KEY)
                cell = {"max_abs": _num(e["max_abs"]), "max_rel": _num(e["max_rel"]),
                        "cases": int(e["cases"]), "failed": int(e["failed"]),
                        "limited": int(e.get("limited", 0)),
                        # files written before it was recorded have none: unknown, not 0
                        "max_of_bound": _num(e.get("max_of_bound"))}
            except (KeyError, TypeError, ValueError) as exc:
                raise ResultsError(f"{where}: entry #{i} is malformed ({exc!r})") from None
            log.update(cls(cells={key: cell}))
        return log

    @classmethod
    def read(cls, path: str | Path) -> AccuracyLog:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ResultsError(f"{path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}: not valid JSON, truncated or corrupt ({exc})") from None
        return cls.from_dict(doc, str(path))

    def frame(self) -> pd.DataFrame:
        cols = [*_KEY, "max_abs", "max_rel", "cases", "failed", "limited", "max_of_bound"]
        return pd.DataFrame(self.to_dict()["entries"], columns=cols)


def load_accuracy(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Merge accuracy files (a directory stands for its ``*.json``) into one table."""
    log = AccuracyLog()
    for path in expand_paths(paths):
        log.update(AccuracyLog.read(path))
    df = log.frame()
    band_order = {label: i for i, (_, label) in enumerate(BANDS)}
    return df.sort_values(["contender", "dtype", "band", "prop"],
                          key=lambda s: s.map(band_order) if s.name == "band" else s,
                          kind="stable").reset_index(drop=True)


def _empty_cell() -> dict:
    return {"max_abs": 0.0, "max_rel": 0.0, "cases": 0, "failed": 0, "limited": 0,
            "max_of_bound": math.nan}


def _max(a: float, b: float) -> float:
    """Max where NaN wins: a NaN error is the worst error."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def _known_max(a: float, b: float) -> float:
    """Max over the values known: NaN is 'not recorded' here (a share of the bound is
    computed on finite errors only), and loses to any number."""
    return b if math.isnan(a) else a if math.isnan(b) else max(a, b)


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _json_safe(cell: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in cell.items()}
