"""Presentation only: the report's PNG figures, drawn from data `harness.analysis.report`
prepares (which points, in which order). Computes nothing beyond what matplotlib needs.

Each plot takes its figures as ``{key: ... {mode: {contender: points}}}`` (figures, modes
and contenders in the order to draw them) and writes one PNG per key into ``out``, each
file atomically. Speedups are written by `harness.analysis.tables.fmt_speedup`, as in
every table.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.analysis.tables import fmt_speedup
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


# Built-in contenders keep one colour each (a colormap and a slot), whatever else a run holds,
# so a contender has the same colour in every figure of every report; a contender of yours
# takes a free colour from a hash of its name. Two forms of one computation share a hue,
# dark and light: eager/module, log_softmax+nll/softmax→log, the two compiled multi-class ones.
# The slots the built-ins had when figures were first committed (so committed figures and
# new ones agree), but for the compiled pair, which sat on tab20's reds until red came to
# mean a failed check; a built-in added later needs no entry: it takes a spare colour by name.
FIXED_COLOURS = {
    "eager": ("tab20", 0), "module": ("tab20", 1), "logsoftmax_nll": ("tab20", 2),
    "softmax_log_nll": ("tab20", 3), "scratch": ("tab20", 4),
    "compiled_eager": ("tab20b", 0), "compiled_logsoftmax_nll": ("tab20b", 2),
    "fused_triton": ("tab20", 8), "liger": ("tab20", 10), "bce_logits": ("tab20", 12),
    "bce_sigmoid": ("tab20", 14), "ce_two_class": ("tab20", 16), "compiled_bce_logits": ("tab20", 18),
    "fused_triton_binary": ("tab20", 9),
}
# Red says "failed its check" (the ranking's ✗ names, the accuracy map's frames): no
# contender is drawn in it or in a colour near it, tab20's two reds and tab20b's four.
FAILURE_COLOUR = "tab:red"
REDS = (("tab20", 6), ("tab20", 7), *(("tab20b", i) for i in range(12, 16)))
_GREY = ("tab20", 15)  # tab20's light grey vanishes against the grid and the page


def _colour(slot: tuple[str, int]) -> tuple:
    import matplotlib

    return matplotlib.colormaps[slot[0]].colors[slot[1]]


def palette(names) -> dict[str, tuple]:
    """One colour per contender, the same in every figure and every run: built-ins from
    `FIXED_COLOURS`; any other name from a hash of the name over the colours no built-in
    uses and that are neither red (`REDS`) nor tab20's light grey (tab20, tab20b and tab20c:
    46 in all), taking the next free one when two collide within one figure (past 46 names
    colours repeat)."""
    import zlib

    names = set(names)  # any iterable, a generator included, read once
    used = {*FIXED_COLOURS.values(), *REDS, _GREY}
    spare = [_colour((cmap, i)) for cmap in ("tab20", "tab20b", "tab20c") for i in range(20)
             if (cmap, i) not in used]
    colours = {n: _colour(FIXED_COLOURS[n]) for n in names if n in FIXED_COLOURS}
    taken: set[int] = set()
    for name in sorted(names - set(colours)):
        start = zlib.crc32(name.encode()) % len(spare)
        slot = next((k % len(spare) for k in range(start, start + len(spare))
                     if k % len(spare) not in taken), start)
        taken.add(slot)
        colours[name] = spare[slot]
    return colours


def _legend(fig, axes) -> None:
    """One legend for the figure, outside the panels, so that it covers no data."""
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
            labels[label] = label
    if handles:
        fig.legend(list(handles.values()), list(labels), loc="outside right center",
                   fontsize="small")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def plot_time_vs_size(lines: dict[str, dict[str, dict[str, tuple]]], out: Path,
                      titles: dict[str, str] | None = None) -> list[Path]:
    """Median time against bytes moved, one colour per contender, one panel per mode.
    ``lines`` holds per contender {"x": sizes, "median": ..., "unstable": bools};
    ``titles`` says each run's device and dtypes."""
    paths = []
    colours = palette(c for modes in lines.values() for m in modes.values() for c in m)
    for run_id, modes in lines.items():
        if not modes:  # cases without a mode (a foreign JSON): nothing to draw
            continue
        fig, axes = _figure(len(modes))
        for ax, (mode, by_contender) in zip(axes[0], modes.items(), strict=True):
            for contender, pts in by_contender.items():
                # points, not lines: neighbouring sizes are other cases (dtype, reduction, family)
                _points(ax, pts["x"], pts["median"], pts["unstable"], colours[contender], contender)
            ax.set(xscale="log", yscale="log", title=f"{mode}: median time against size (hollow: unstable)",
                   xlabel="problem size (bytes moved)", ylabel="median time (s)")
            ax.grid(True, which="both", alpha=0.3)
        fig.suptitle((titles or {}).get(run_id, f"run {run_id}"), fontsize="medium")
        _legend(fig, axes)
        paths.append(_save(fig, out / f"time_vs_size-{_slug(run_id)}.png"))
    return paths


def _points(ax, x, y, unstable, colour, label: str) -> None:
    """Stable points filled, unstable ones hollow: same colour, one legend entry, drawn as
    the contender's first points are (hollow when every point is unstable)."""
    unstable = np.asarray(unstable, dtype=bool)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if (~unstable).any():
        ax.scatter(x[~unstable], y[~unstable], s=14, color=colour, label=label)
        label = None
    if unstable.any():
        ax.scatter(x[unstable], y[unstable], s=14, facecolors="white", edgecolors=colour, label=label)


def plot_speedup(figures: dict[str, dict], out: Path) -> list[Path]:
    """Speedup against the family's reference contender across imbalance ratio p (top) and size
    (bottom), per mode, one figure per run and dtype (an f16 case and an f32 one are not
    one population). ``figures`` is {key: {"title": str, "modes": {mode: {contender:
    {'case_p', 'size', 'speedup', 'noise', 'unstable'}}}}}, one entry per case."""
    paths = []
    colours = palette(c for fig in figures.values() for m in fig["modes"].values() for c in m)
    for key, spec in figures.items():
        modes = spec["modes"]
        if not modes:
            continue
        fig, axes = _figure(len(modes), 2)
        for col, (mode, by_contender) in enumerate(modes.items()):
            for row, (xcol, label) in enumerate((("case_p", "rarest-class share p"),
                                                 ("size", "logits elements"))):
                _speedup_panel(axes[row][col], by_contender, xcol, colours)
                axes[row][col].set_title(f"{mode}: speedup against {label}\n(bar: 95 % interval; "
                                         "hollow: unstable)")
                axes[row][col].set_xlabel(label)
        fig.suptitle(f"{spec['title']}: > 1 is faster than eager (multi-class) or bce_logits "
                     "(binary) on the same case", fontsize="medium")
        _legend(fig, axes)
        paths.append(_save(fig, out / f"speedup-{_slug(key)}.png"))
    return paths


P_LINEAR = 1e-3  # the p axis is linear below this (p = 0 exists), logarithmic above


def _speedup_panel(ax, by_contender: dict[str, dict], xcol: str, colours: dict) -> None:
    """One panel: each contender's speedups (and 95 % bars) against ``xcol``, the reference
    as the line at 1, the axes wide enough for every point and bar: matplotlib's own limits
    cut the points at p = 0 in half."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    xs, ys = [], [1.0]
    for contender, pts in by_contender.items():
        x, y = np.asarray(pts[xcol], dtype=float), np.asarray(pts["speedup"], dtype=float)
        noise = np.nan_to_num(np.asarray(pts["noise"], dtype=float))
        ax.errorbar(x, y, yerr=noise, fmt="none", ecolor=colours[contender], alpha=0.5, lw=1)
        _points(ax, x, y, pts["unstable"], colours[contender], contender)
        xs += list(x[np.isfinite(x)])
        ys += [v for v in (*y, *(y + noise), *(y - noise)) if np.isfinite(v) and v > 0]
    ax.axhline(1.0, color="grey", lw=0.8)
    if xcol == "case_p":  # p spans 0 .. 1 with extremes such as 1e-6: linear near 0
        ax.set_xscale("symlog", linthresh=P_LINEAR)
        ax.set_xlim(-P_LINEAR / 2, max([1.0, *xs]) * 2)
    else:
        ax.set_xscale("log")
        if xs and min(xs) > 0:
            ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    ax.set_yscale("log")
    ax.set_ylim(min(ys) / 1.3, max(ys) * 1.3)
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_speedup(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("speedup vs the family's reference")
    ax.grid(True, which="both", alpha=0.3)


def plot_ranking(figures: dict[str, dict[str, dict]], out: Path) -> list[Path]:
    """Per run and ranked case: the contenders fastest first, one panel per mode, each median
    with its 95 % interval and its speedup against the family's reference written beside it;
    an unstable median is drawn hollow, a contender that failed its check is named in red
    where its point would be. ``figures`` is {run_id: {case name: {"title": str, "modes":
    {mode: [{"contender", "median", "noise", "speedup", "mark"}, ...]}}}}, rows fastest first."""
    paths = []
    colours = palette(row["contender"] for cases in figures.values() for fig in cases.values()
                      for rows in fig["modes"].values() for row in rows)
    for run_id, cases in figures.items():
        for name, spec in cases.items():
            modes = spec["modes"]
            if not modes:
                continue
            tallest = max((len(rows) for rows in modes.values()), default=1)
            fig, axes = _figure(len(modes))
            fig.set_size_inches(5.5 * len(modes), 0.38 * tallest + 1.9)
            for ax, (mode, rows) in zip(axes[0], modes.items(), strict=True):
                _ranking_panel(ax, mode, rows, colours)
            fig.suptitle(spec["title"] + "\nfastest first; ×: speedup against the family's "
                         "reference on this case; hollow: unstable; red ✗: failed its check",
                         fontsize="medium")
            paths.append(_save(fig, out / f"ranking-{_slug(name)}-{_slug(run_id)}.png"))
    return paths


def _ranking_panel(ax, mode: str, rows: list[dict], colours: dict) -> None:
    timed = [r for r in rows if np.isfinite(r["median"])]
    low = min((r["median"] - _finite(r["noise"]) for r in timed), default=1e-6)
    high = max((r["median"] + _finite(r["noise"]) for r in timed), default=1e-3)
    low = low if low > 0 else min(r["median"] for r in timed) / 2 if timed else 1e-6
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ms = 1e3  # drawn in milliseconds: plain tick labels instead of 10^-3 powers
    for y, r in enumerate(rows):
        if not np.isfinite(r["median"]):  # no time: written from the panel's left edge
            ax.text(0.01, y, _wrap(f"✗ {r['mark'] or 'not timed'}"), color=FAILURE_COLOUR, va="center",
                    fontsize="small", transform=ax.get_yaxis_transform())
            continue
        hollow = r["mark"] == "unstable"
        ax.errorbar(r["median"] * ms, y, xerr=_finite(r["noise"]) * ms, fmt="o", capsize=3,
                    color=colours[r["contender"]], mfc="white" if hollow else colours[r["contender"]])
        note = f"  {fmt_speedup(r['speedup'])}" if np.isfinite(r["speedup"]) else ""
        note += "  unstable" if hollow else ""
        ax.text((r["median"] + _finite(r["noise"])) * ms, y, note, va="center", fontsize="small")
    ax.set_yticks(range(len(rows)), [r["contender"] for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # fastest on top
    ax.set_xscale("log")
    ax.set_xlim(low * ms / 1.5, high * ms * 4)  # room for the speedup written right of each point
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(title=mode, xlabel="median (ms); bar: its 95 % interval")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    if not timed:  # every contender failed: no time axis to show
        ax.set_xticks([], minor=True)
        ax.set_xticks([])
        ax.grid(False)
        ax.set_xlabel("nothing timed: every contender failed its check")


def _wrap(text: str, width: int = 60, lines: int = 2) -> str:
    """A failure's message in at most ``lines`` lines of ``width``, cut with '…'."""
    import textwrap

    wrapped = textwrap.wrap(text, width) or [""]
    return "\n".join(wrapped[:lines]) + ("…" if len(wrapped) > lines else "")


def _finite(x) -> float:
    return float(x) if x is not None and np.isfinite(x) else 0.0


def plot_bandwidth(runs: dict[str, dict], out: Path) -> list[Path]:
    """Achieved bandwidth (bytes the traffic model says a case must move / median) against
    problem size, per mode, with the run's measured copy bandwidth as the ceiling line.
    ``runs`` is {key: {"title": str, "peak": GB/s or nan, "modes": {mode: {contender:
    (bytes, gbps)}}}}, one figure per key (a run, or a run's device when it has several)."""
    paths = []
    colours = palette(c for run in runs.values() for m in run["modes"].values() for c in m)
    for key, run in runs.items():
        if not run["modes"]:
            continue
        fig, axes = _figure(len(run["modes"]))
        for ax, (mode, by_contender) in zip(axes[0], run["modes"].items(), strict=True):
            for contender, (x, y) in by_contender.items():
                ax.scatter(x, y, s=14, color=colours[contender], label=contender)
            if np.isfinite(run["peak"]):
                ax.axhline(run["peak"], color="black", ls="--", lw=1)
                ax.text(0.01, run["peak"], f"measured copy peak {run['peak']:.3g} GB/s",
                        transform=ax.get_yaxis_transform(), va="bottom", fontsize="small")
            ax.set(xscale="log", yscale="log", title=f"{mode}: achieved bandwidth",
                   xlabel="problem size (bytes moved)", ylabel="GB/s (bytes moved / median)")
            ax.grid(True, which="both", alpha=0.3)
        fig.suptitle(run["title"], fontsize="medium")
        _legend(fig, axes)
        paths.append(_save(fig, out / f"bandwidth-{_slug(key)}.png"))
    return paths


FLOOR = 1e-17  # relative errors at or below this are drawn as exact (float64 round-off is ~1e-16)
NEAR_BOUND = 0.1  # an error past this share of its tolerance bound is framed: close to failing


def plot_accuracy(grid: dict, out: Path) -> list[Path]:
    """The accuracy table as two heat maps (loss, gradient): contenders down, dtype × logit
    scale band across, colour = log10 of the largest relative error against the float64
    oracle. A cell whose every case asserted a known limit reads 'limit'; a NaN or infinite
    error (the log keeps it as the worst) is drawn at the top of the scale as 'NaN'; a cell
    with a failed case is framed in red with its count, one whose error passed but reached
    `NEAR_BOUND` of its tolerance bound in orange (how close to failing); grey: no case
    checked. ``grid`` is {"rows": [...], "cols": [...], "title": str, "props": {prop:
    {"rel", "failed", "limit", "checked", "of_bound": 2-d arrays}}}."""
    import matplotlib

    rows, cols = grid["rows"], grid["cols"]
    fig, axes = _figure(1, len(grid["props"]))
    fig.set_size_inches(max(8.0, 0.55 * len(cols) + 3), (0.3 * len(rows) + 1.8) * len(grid["props"]))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    image = None
    for ax, (prop, cells) in zip(axes[:, 0], grid["props"].items(), strict=True):
        rel = cells["rel"]
        broken = cells.get("checked", np.isfinite(rel)) & ~cells["limit"] & ~np.isfinite(rel)
        with np.errstate(divide="ignore", invalid="ignore"):  # NaN (not checked) stays NaN
            logs = np.log10(np.where(rel > FLOOR, rel, np.where(np.isnan(rel), np.nan, FLOOR)))
        logs = np.where(broken, 0.0, logs)  # a NaN or inf error is the worst there is
        image = ax.imshow(np.ma.masked_invalid(logs), cmap=cmap, vmin=-17, vmax=0, aspect="auto")
        for (i, j), value in np.ndenumerate(rel):
            failed = cells["failed"][i, j]
            text = ("limit" if cells["limit"][i, j] else "NaN" if broken[i, j]
                    else "" if not np.isfinite(value) else "exact" if value <= FLOOR
                    else f"{logs[i, j]:.0f}")
            ink = FAILURE_COLOUR if failed else "white" if logs[i, j] < -8 else "black"  # on dark cells
            ax.text(j, i, text + (f" ✗{failed:.0f}" if failed else ""), ha="center", va="center",
                    fontsize="x-small", color=ink)
            near = cells.get("of_bound", np.full(rel.shape, np.nan))[i, j] >= NEAR_BOUND
            if failed or near:  # red: a case failed; orange: passed within 10× of its bound
                ax.add_patch(matplotlib.patches.Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False,
                                                          ec=FAILURE_COLOUR if failed else "tab:orange",
                                                          lw=2))
        ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize="small")
        ax.set_yticks(range(len(rows)), rows, fontsize="small")
        ax.set_title(f"{prop}: log10 of the largest relative error (exact: at or below 1e-17; grey: "
                     "not checked; limit: known breakdown asserted;\norange frame: an error above "
                     f"{NEAR_BOUND:g} of its tolerance bound; red: a failed case)", fontsize="medium")
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="log10 relative error", shrink=0.8)
    fig.suptitle(grid["title"], fontsize="medium")
    return [_save(fig, out / "accuracy.png")]
