"""The tidy frame (`harness.analysis.load.load`) as files: ``runs.csv`` and ``runs.parquet``.

Each file is written atomically (`harness.atomic`): a reader sees the old file or the new
one, never half. The raw rounds, a list per row, go out as JSON text in the ``data``
column, so that both formats hold plain columns; `read_csv` is this encoding's inverse
and lives here so that the encoding is written once
(test_csv_round_trip_keeps_raw_rounds).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.atomic import atomic_path, atomic_write_text


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """Lists (raw rounds) as JSON text, so that CSV and Parquet hold plain columns."""
    out = df.copy()
    out["data"] = [json.dumps(d) if isinstance(d, list) else None for d in out["data"]]
    return out


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """``runs.csv``: the tidy frame, raw rounds as JSON text in the ``data`` column."""
    return atomic_write_text(path, _flat(df).to_csv(index=False))


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path | None:
    """``runs.parquet`` when pyarrow is installed; None (and nothing written) otherwise."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    flat = _flat(df)
    for col in flat.columns:  # mixed-type object columns are not Parquet-able
        if flat[col].dtype == object:
            flat[col] = flat[col].map(lambda v: None if v is None else str(v))
    with atomic_path(path) as tmp:
        flat.to_parquet(tmp, index=False)
    return Path(path)


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read back a ``runs.csv`` with raw rounds as lists again."""
    df = pd.read_csv(path)
    df["data"] = [json.loads(d) if isinstance(d, str) else None for d in df["data"]]
    return df
