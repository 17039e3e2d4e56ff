"""The σ of a pair's log ratio at each grain, from identical code (docs/benchmarking.md,
"Paired verdicts"): how far apart in time the two halves of a pair are decides how much of
the machine's own movement they share.

    python scripts/ab_grains.py AB_DIR [AB_DIR ...] [--processes RUN.json RUN.json ...]

AB_DIR: the output folders of A/A ``python -m harness ab`` runs (their base.json and
head.json hold every block's rounds in pair order). Grains: ``round`` (the i-th round of
the two blocks of a pair, milliseconds apart), ``block`` (the two blocks' medians: what
ab judges), ``10 blocks`` (medians over ten consecutive block pairs, about half a second),
and with ``--processes`` the files of back-to-back ``python -m harness bench --processes 1
--passes 1`` runs of one revision: ``process`` (adjacent runs' medians, 15-20 s apart).
σ is 1.4826 × the MAD of the log ratios per benchmark; printed: the median over benchmarks
and their range, and the pairs a 1.1× verdict needs at that σ ((41.7·σ)²).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.analysis.paired import pairs_needed, robust_sigma


def _blocks(doc: dict) -> dict[str, list[np.ndarray]]:
    out = {}
    for b in doc["benchmarks"]:
        data, blocks = np.asarray(b["stats"]["data"]), int(b["extra_info"]["blocks"])
        out[b["name"]] = np.split(data, blocks) if blocks and data.size % blocks == 0 else []
    return out


def ab_grains(folders: list[Path]) -> dict[str, list[float]]:
    sig: dict[str, list[float]] = {"round": [], "block": [], "10 blocks": []}
    for folder in folders:
        base, head = (_blocks(json.loads((folder / f"{s}.json").read_text())) for s in ("base", "head"))
        for name in base.keys() & head.keys():
            b, h = base[name], head[name]
            if not b or len(b) != len(h):
                continue
            rounds = np.concatenate([np.log(y / x) for x, y in zip(b, h, strict=True) if x.size == y.size])
            blocks = np.array([np.log(np.median(y) / np.median(x)) for x, y in zip(b, h, strict=True)])
            tens = [np.log(np.median(np.concatenate(h[i:i + 10])) / np.median(np.concatenate(b[i:i + 10])))
                    for i in range(0, len(b) - 9, 10)]
            sig["round"].append(robust_sigma(rounds))
            sig["block"].append(robust_sigma(blocks))
            if len(tens) >= 3:
                sig["10 blocks"].append(robust_sigma(tens))
    return sig


def process_grain(files: list[Path]) -> list[float]:
    medians: dict[str, list[float]] = {}
    for f in files:
        for b in json.loads(f.read_text())["benchmarks"]:
            medians.setdefault(b["name"], []).append(b["stats"]["median"])
    return [robust_sigma(np.diff(np.log(v))) for v in medians.values() if len(v) >= 4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--processes", nargs="*", type=Path, default=[])
    args = parser.parse_args()
    sig = ab_grains(args.folders) if args.folders else {}
    if args.processes:
        sig["process"] = process_grain(args.processes)
    print(f"{'grain':10s} {'σ median':>9s} {'range':>14s} {'n':>4s} {'pairs for 1.1x':>15s}")
    for grain, values in sig.items():
        v = np.asarray([x for x in values if np.isfinite(x)])
        if v.size:
            med = float(np.median(v))
            print(f"{grain:10s} {med:9.3f} {v.min():6.3f}-{v.max():.3f} {v.size:4d} {pairs_needed(med):15d}")


if __name__ == "__main__":
    main()
