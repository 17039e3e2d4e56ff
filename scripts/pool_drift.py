"""How much pooling processes shrinks run-to-run drift, from the idle runs a
`scripts/noise_demo.sh WORKDIR` left (WORKDIR/aa1.json ... aaN.json): the rounds of K
consecutive runs are pooled per benchmark, as `python -m harness bench --processes K`
would, and the spread (σ) of the benchmarks' log medians across the pooled runs is printed
after removing each pooled run's machine factor (its median over benchmarks).

Usage: python scripts/pool_drift.py WORKDIR [K ...]   (K defaults to 1 2 3)"""

import json
import sys
from pathlib import Path

import numpy as np


def main(workdir: str, ks: list[int]) -> None:
    files = sorted(Path(workdir).glob("aa*.json"), key=lambda p: int(p.stem[2:]))
    runs = [{b["name"]: b["stats"]["data"] for b in json.loads(f.read_text())["benchmarks"]
             if (b.get("stats") or {}).get("data")} for f in files]
    names = sorted(set.intersection(*(set(r) for r in runs)))
    for k in ks:
        groups = [range(i, i + k) for i in range(0, len(runs) - k + 1, k)]
        logs = np.array([[np.log(np.median(np.concatenate([runs[i][n] for i in g]))) for n in names]
                         for g in groups])
        logs -= logs.mean(axis=0)
        logs -= np.median(logs, axis=1, keepdims=True)
        print(f"{k} process(es) per run: {len(groups)} runs, σ of log medians {logs.std():.3f}")


if __name__ == "__main__":
    main(sys.argv[1], [int(k) for k in sys.argv[2:]] or [1, 2, 3])
