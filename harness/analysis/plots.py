"""Presentation only: the report's PNG figures, drawn from data `harness.analysis.report`
prepares (which points, in which order). Computes nothing beyond what matplotlib needs.

Both plots take ``{run_id: {mode: {contender: points}}}`` (runs, modes and contenders in
the order to draw them) and write one PNG per run into ``out``, each file atomically.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.atomic import atomic_path


def _figure(ncols: int, nrows: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # object API: no pyplot state, Agg canvas

    fig = Figure(figsize=(5.5 * ncols, 4 * nrows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path


def palette(names) -> dict[str, tuple]:
    """One colour per contender, the same in every figure: the sorted names over a
    20-colour cycle (ten colours gave two contenders one blue)."""
    import matplotlib

    cycle = matplotlib.colormaps["tab20"].colors
    return {name: cycle[i % len(cycle)] for i, name in enumerate(sorted(set(names)))}


def _legend(fig, axes) -> None:
    """One legend for the figure, outside the panels, so that it covers no data."""
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
            labels[label] = label
    if handles:
        fig.legend(list(handles.values()), list(labels), loc="outside right upper",
                   fontsize="small")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def plot_time_vs_size(lines: dict[str, dict[str, dict[str, tuple]]], out: Path) -> list[Path]:
    """Median time against bytes moved, one line per contender, one panel per mode.
    ``points`` are (sizes, medians), in the order to join them."""
    paths = []
    colours = palette(c for modes in lines.values() for m in modes.values() for c in m)
    for run_id, modes in lines.items():
        fig, axes = _figure(len(modes))
        for ax, (mode, by_contender) in zip(axes[0], modes.items(), strict=True):
            for contender, (x, y) in by_contender.items():
                # points, not lines: neighbouring sizes are other cases (dtype, reduction, family)
                ax.scatter(x, y, s=14, color=colours[contender], label=contender)
            ax.set(xscale="log", yscale="log", title=f"{mode}: median time against size",
                   xlabel="problem size (bytes moved)", ylabel="median time (s)")
            ax.grid(True, which="both", alpha=0.3)
        fig.suptitle(f"run {run_id}", fontsize="small")
        _legend(fig, axes)
        paths.append(_save(fig, out / f"time_vs_size-{_slug(run_id)}.png"))
    return paths


def plot_speedup(points: dict[str, dict[str, dict[str, dict]]], out: Path) -> list[Path]:
    """Speedup against the family's reference contender across imbalance ratio p (top) and size
    (bottom), per mode.
    ``points`` are {'case_p': ..., 'size': ..., 'speedup': ...}, one entry per case."""
    paths = []
    colours = palette(c for modes in points.values() for m in modes.values() for c in m)
    for run_id, modes in points.items():
        fig, axes = _figure(len(modes), 2)
        for col, (mode, by_contender) in enumerate(modes.items()):
            for row, (xcol, label) in enumerate((("case_p", "rarest-class share p"),
                                                 ("size", "logits elements"))):
                ax = axes[row][col]
                for contender, pts in by_contender.items():
                    ax.scatter(pts[xcol], pts["speedup"], s=12, color=colours[contender],
                               label=contender)
                ax.axhline(1.0, color="grey", lw=0.8)
                ax.set(xscale="symlog" if row == 0 else "log", yscale="log", xlabel=label,
                       ylabel="speedup vs the family's reference",
                       title=f"{mode}: speedup against {label}")
                if row == 0:  # p spans 0 .. 1 with extremes such as 1e-6: linear near 0
                    ax.set_xscale("symlog", linthresh=1e-3)
                    ax.set_xlim(0, 1.1)
                ax.grid(True, which="both", alpha=0.3)
        fig.suptitle(f"run {run_id}: > 1 is faster than eager (multi-class) or bce_logits "
                     "(binary) on the same case", fontsize="small")
        _legend(fig, axes)
        paths.append(_save(fig, out / f"speedup-{_slug(run_id)}.png"))
    return paths
