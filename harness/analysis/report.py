"""``python -m harness report RUN.json [...] --out DIR``: a run, or several runs from
several machines side by side, as ``tables.md``, ``runs.csv`` (+ Parquet with pyarrow)
and PNG plots.

This module derives the numbers (noise, speedups against the family's reference, winners,
the points to plot); the markdown text itself comes from `harness.analysis.tables`, the
page from `harness.analysis.html`, the figures from `harness.analysis.plots` and the CSV
and Parquet files from `harness.analysis.writers`, which compute nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis import stats, tables
from harness.analysis.html import html_page
from harness.analysis.load import load, runs_table
from harness.analysis.plots import (
    plot_accuracy,
    plot_bandwidth,
    plot_ranking,
    plot_speedup,
    plot_time_vs_size,
)
from harness.analysis.writers import write_csv, write_parquet
from harness.atomic import atomic_write_text
from harness.benchmark.case_sets import SIZES, headline, headline_names, landmark_names, landmarks
from harness.problem.families import FAMILIES, MULTICLASS


# ---- the reference every speedup is relative to ---------------------------------------
# Here, beside `enrich` and `speedup_points`, its only users: which contender a speedup is
# relative to is part of deriving speedups, not of loading files.
def reference_of(family) -> str:
    """The reference contender of a family (`Family.reference`; the multi-class one when
    the family is unknown, as in files from before the binary family)."""
    return FAMILIES.get(family, MULTICLASS).reference if isinstance(family, str) else MULTICLASS.reference


def is_reference(df: pd.DataFrame) -> pd.Series:
    """Rows whose contender is the reference of their own family: `eager` for multi-class
    cases, `bce_logits` (BCEWithLogitsLoss) for binary ones
    (test_each_family_has_its_own_reference)."""
    families = df["family"] if "family" in df else pd.Series(None, index=df.index, dtype=object)
    return df["contender"] == families.map(reference_of)


# ---- derived numbers -----------------------------------------------------------------
def enrich(df: pd.DataFrame) -> pd.DataFrame:
    """Add each median's noise, the speedup against the family's reference (`eager`,
    `bce_logits`) in the same run, case and
    mode, and the noise of the speedup and of GB/s (both inherit the medians')."""
    out = df.copy()
    out["median_noise"] = [stats.median_noise(i, r) for i, r in zip(out["iqr"], out["rounds"], strict=True)]
    ref = out[is_reference(out)][["run_id", "case_id", "mode", "median", "median_noise"]]
    ref = ref.rename(columns={"median": "ref_median", "median_noise": "ref_noise"})
    out = out.merge(ref.drop_duplicates(["run_id", "case_id", "mode"]), how="left",
                    on=["run_id", "case_id", "mode"])
    out["speedup"] = [stats.speedup(r, m) for r, m in zip(out["ref_median"], out["median"], strict=True)]
    rel = [stats.relative_noise((m, n)) for m, n in zip(out["median"], out["median_noise"], strict=True)]
    rel_ref = [stats.relative_noise((m, n)) for m, n in zip(out["ref_median"], out["ref_noise"], strict=True)]
    out["speedup_noise"] = out["speedup"] * np.hypot(rel, rel_ref)
    missing = out["gbps"].isna() & out["bytes"].notna() & (out["median"] > 0)
    out.loc[missing, "gbps"] = out.loc[missing, "bytes"] / out.loc[missing, "median"] / 1e9
    out["gbps_noise"] = out["gbps"] * np.asarray(rel, dtype=float)
    return out


def _is_case(df: pd.DataFrame) -> pd.Series:
    """Benchmarks of a case (not the timer self-check and the like)."""
    return df["size"].notna() if "size" in df else pd.Series(False, index=df.index)


def contender_order(view: pd.DataFrame, run_ids: list[str]) -> list[str]:
    """Contenders by median in the first run that timed them, fastest first; failed last."""
    key = {}
    for contender, sub in view.groupby("contender", sort=False):
        medians = [sub[sub["run_id"] == r]["median"].min() for r in run_ids]
        firsts = [(i, m) for i, m in enumerate(medians) if m == m]
        key[contender] = (firsts[0][0], firsts[0][1]) if firsts else (len(run_ids), math.inf)
    return sorted(key, key=lambda c: key[c])


def fastest_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per run, device, dtype, family and mode: the contender that wins the most cases
    (lowest median) among those not slower than the reference (geometric-mean speedup
    against it at least 1), its wins and that geometric mean. A tie in wins goes to the
    higher geometric mean; the reference itself (1.00×) is named when every contender that
    beat it somewhere is slower on the whole. ``most_wins`` (and its count) is the one the
    wins alone would name, for the table to say why it is not."""
    timed = df[_is_case(df) & df["median"].notna()].copy()
    timed["case_family"] = timed.get("case_family", timed["family"]).fillna(timed["family"])
    keys = ["run_id", "device", "dtype", "case_family", "mode"]
    rows = []
    for group, sub in timed.groupby(keys, sort=True, dropna=False):
        winners = sub.loc[sub.groupby("case_id")["median"].idxmin(), "contender"]
        wins = winners.value_counts()
        geomean = {c: stats.geometric_mean(sub[sub["contender"] == c]["speedup"])
                   for c in sub["contender"].unique()}
        # most wins; a tie goes to the higher geometric-mean speedup, not to the first name
        # (a 1-1 tie once crowned a contender 0.04x as fast as the reference)
        rank = {c: (wins.get(c, 0), _finite_or(g, -math.inf)) for c, g in geomean.items()}
        # a busy run once crowned logsoftmax_nll, 1 win of 2 at 0.990x the reference: a
        # contender slower than the reference on the whole is not the fastest
        allowed = [c for c in geomean if not geomean[c] < 1.0] or list(geomean)
        best, most = max(allowed, key=rank.__getitem__), max(geomean, key=rank.__getitem__)
        rows.append(dict(zip(keys, group, strict=True), fastest=str(best), wins=int(wins.get(best, 0)),
                         cases=int(sub["case_id"].nunique()), geomean_speedup=geomean[best],
                         most_wins=str(most), most_wins_count=int(wins.get(most, 0))))
    cols = [*keys, "fastest", "wins", "cases", "geomean_speedup", "most_wins", "most_wins_count"]
    out = pd.DataFrame(rows, columns=cols).rename(columns={"case_family": "family"})
    return out


# What each headline row is compared with besides the family's reference (eager, already
# `enrich`'s ``speedup``), by family: its static compiled form and Liger-Kernel (multi-class
# only: Liger has no BCE here)
HEADLINE_BASES: dict[str, dict[str, str]] = {
    "multiclass": {"x_compiled": "compiled_eager", "x_liger": "liger"},
    "binary": {"x_compiled": "compiled_bce_logits"},
}


def headline_view(df: pd.DataFrame) -> pd.DataFrame:
    """The headline cases' benchmarks (`harness.benchmark.case_sets.headline`, any preset)
    in the set's order, each mode's contenders fastest first, with the speedups against
    eager, compiled and Liger (``x_eager``, ``x_compiled``, ``x_liger``: their median over
    this one's, same run, case and mode; NaN where that contender has no time)."""
    names = headline_names()
    rows = df[_is_case(df) & df["case_id"].isin(names)].copy()
    if not len(rows):
        return rows
    rows["headline"] = rows["case_id"].map(names)
    keys = ["run_id", "case_id", "mode"]
    medians = rows.set_index([*keys, "contender"])["median"]
    medians = medians[~medians.index.duplicated()]
    rows["x_eager"] = rows["speedup"]
    for column in ("x_compiled", "x_liger"):
        rows[column] = [
            stats.speedup(medians.get((r.run_id, r.case_id, r.mode,
                                       HEADLINE_BASES.get(r.family, {}).get(column, "")), np.nan),
                          r.median)
            for r in rows.itertuples()]
    rows = with_model_bandwidth(rows)
    order = {case_id: i for i, case_id in enumerate(names)}
    rows["_order"] = rows["case_id"].map(order)
    rows["_median"] = rows["median"].fillna(math.inf)
    rows = rows.sort_values(["run_id", "_order", "mode", "_median"], kind="stable")
    return rows.drop(columns=["_order", "_median"])


def headline_missing(view: pd.DataFrame) -> dict[str, list[str]]:
    """Per run of ``view`` (`headline_view`), the headline cases of its preset that it has
    no benchmark of, by name, in the set's order: what a deadline (the GPU check's table
    stage) or a ``-k`` left out, so a short table does not pass for the whole set. The
    preset is the (size, device) whose set holds most of the run's cases."""
    from harness.problem.capabilities import DEVICES

    sets = [list(headline(size, device).items()) for size in SIZES for device in DEVICES]
    out = {}
    for run_id, rows in view.groupby("run_id", sort=False):
        have = set(rows["case_id"])
        chosen = max(sets, key=lambda named: sum(case.id in have for _, case in named))
        out[str(run_id)] = [name for name, case in chosen if case.id not in have]
    return out


def headline_missing_lines(view: pd.DataFrame) -> list[str]:
    """One line per run that lacks headline cases (`headline_missing`), none otherwise."""
    many = view["run_id"].nunique() > 1
    return [f"{f'run {run_id}: ' if many else ''}headline cases not in this run: "
            f"{', '.join(names)} (stopped by a deadline, or not selected)"
            for run_id, names in headline_missing(view).items() if names]


def with_model_bandwidth(rows: pd.DataFrame) -> pd.DataFrame:
    """Add the headline's bandwidth columns: ``copy_pct`` (GB/s by `min_bytes` as % of the
    run's measured copy ceiling, ``ceiling_copy_gbps``; a run without ceilings: the session's
    copy measure, ``peak_gbps``, the same number in a run with them), ``model_gbps`` (the
    contender's own traffic model, `harness.benchmark.traffic.model_bytes`, over the median)
    and ``model_copy_pct``, each with the noise GB/s has."""
    out = rows.copy()
    copy = out["ceiling_copy_gbps"].where(out["ceiling_copy_gbps"] > 0, out["peak_gbps"])
    copy = pd.to_numeric(copy, errors="coerce")
    rel = out["gbps_noise"] / out["gbps"]
    out["copy_pct"] = 100 * out["gbps"] / copy
    out["copy_pct_noise"] = out["copy_pct"] * rel
    out["model_gbps"] = out["model_bytes"] / out["median"].where(out["median"] > 0) / 1e9
    out["model_gbps_noise"] = out["model_gbps"] * rel
    out["model_copy_pct"] = 100 * out["model_gbps"] / copy
    out["model_copy_pct_noise"] = out["model_copy_pct"] * rel
    return out


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def with_peak_bw_noise(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``peak_bw_pct_noise``: the share of peak bandwidth inherits GB/s's noise."""
    noise = [stats.proportional_noise(p, g, n)
             for p, g, n in zip(df["peak_bw_pct"], df["gbps"], df["gbps_noise"], strict=True)]
    return df.assign(peak_bw_pct_noise=noise)


def accuracy_view(acc: pd.DataFrame) -> pd.DataFrame:
    """Loss and gradient errors side by side: one row per contender, dtype and band."""
    keys = ["contender", "dtype", "band"]
    if "limited" not in acc:
        acc = acc.assign(limited=0)
    if "max_of_bound" not in acc:
        acc = acc.assign(max_of_bound=math.nan)
    wide = acc.pivot_table(index=keys, columns="prop",
                           values=["max_abs", "max_rel", "cases", "failed", "limited", "max_of_bound"],
                           aggfunc={"max_abs": "max", "max_rel": "max", "cases": "max", "failed": "sum",
                                    "limited": "max", "max_of_bound": "max"},
                           sort=False)
    wide.columns = [f"{prop}_{stat}" for stat, prop in wide.columns]
    for col in ("loss_max_abs", "loss_max_rel", "grad_max_abs", "grad_max_rel", "loss_max_of_bound",
                "grad_max_of_bound"):
        if col not in wide:
            wide[col] = math.nan
    wide["cases"] = wide.filter(like="_cases").max(axis=1)
    wide["failed"] = wide.filter(like="_failed").sum(axis=1)
    for prop in ("loss", "grad"):
        limited = f"{prop}_limited"
        wide[limited] = wide[limited].fillna(0) if limited in wide else 0
        # Every case of the cell asserted a known limit: there is no error to show.
        if f"{prop}_cases" in wide:
            nothing = wide[f"{prop}_limited"] >= wide[f"{prop}_cases"]
            wide.loc[nothing, [f"{prop}_max_abs", f"{prop}_max_rel"]] = math.nan
    from harness.analysis.accuracy import BANDS

    order = {label: i for i, (_, label) in enumerate(BANDS)}
    return wide.reset_index().sort_values(
        keys, key=lambda s: s.map(order) if s.name == "band" else s).reset_index(drop=True)


# ---- tables.md -----------------------------------------------------------------------
def run_trust(df: pd.DataFrame) -> list[dict]:
    """Per run, what its numbers are worth: the timer fidelity check (ok, and why not), its
    timed benchmarks, the unstable ones' reasons and how many benchmarks failed their check."""
    out = []
    for r in runs_table(df).itertuples():
        run = df[(df["run_id"] == r.run_id) & (_is_case(df) | df["error"].notna())] if "error" in df \
            else df[(df["run_id"] == r.run_id) & _is_case(df)]
        errors = run["error"] if "error" in run else pd.Series(dtype=object)
        flagged = run[run["stable"].map(tables.is_false)] if "stable" in run else run.iloc[:0]
        out.append({"run_id": r.run_id, "machine": r.machine, "fidelity_ok": r.fidelity_ok,
                    "fidelity_reason": r.fidelity_reason, "timed": int(run["median"].notna().sum()),
                    "unstable_reasons": list(flagged["unstable_reason"]),
                    "failed": int(errors.map(lambda e: isinstance(e, str) and bool(e)).sum())})
    return out


def render_markdown(df: pd.DataFrame, accuracy: pd.DataFrame | None = None,
                    figures: list[str] | tuple[str, ...] = ()) -> str:
    """``tables.md``, in the order a reader needs it: what the runs' numbers are worth
    (timer fidelity, unstable benchmarks and why, once), the fastest contenders, each case
    ranked as a table, the ``figures`` (file names beside it), then the details (accuracy,
    runs, every unstable benchmark with its own reason, other benchmarks)."""
    runs = runs_table(df)
    run_ids = list(runs["run_id"])
    out = ["# xentbench report", "", "## What to believe", "", tables.trust_md(run_trust(df)), "",
           "Times are medians over rounds, printed to the digits their noise supports (a 95 % "
           "interval of the median from IQR and round count); `× ref` > 1 is faster than "
           "the family's reference — `eager` for multi-class cases, `bce_logits` for binary "
           "ones — on the same case and mode in the same run.", ""]
    cases = with_peak_bw_noise(df[_is_case(df)])
    if len(cases) and not cases["peak_mem_bytes"].notna().any():
        out += ["`peak mem` reads `-`: these runs recorded no peak memory (CPU runs from before "
                "it was measured on CPU, through torch's profiler, recorded none).", ""]
    headline = headline_view(cases)
    if len(headline):
        out += ["## Headline", "",
                "The headline cases (`bench --cases headline`): GB/s and % of the run's measured "
                "copy ceiling by `min_bytes` (the least a loss must move) and by the contender's "
                "own traffic model (`model`: the bytes it really moves, "
                "`harness.benchmark.traffic.model_bytes`; `-` where none is stated); speedups "
                "against eager, "
                "`torch.compile` and Liger-Kernel on the same case and mode (> 1 is faster); peak "
                "memory above the inputs; the check before timing's largest errors against the "
                "float64 oracle and the larger as a share of its tolerance bound (≤ 1 passes). "
                "`percall`: the weights are computed from the targets inside every call.", "",
                tables.headline_md(headline), "",
                *(line for text in headline_missing_lines(headline) for line in (text, ""))]
    summary = fastest_summary(df)
    if len(summary):
        out += ["## Fastest contender", "",
                "Per device, dtype, family and mode: the contender with the most cases won among "
                "those not slower than the reference on the geometric mean of their speedups; a "
                "tie goes to the higher geometric mean. The reference is named when no other "
                "contender is at least as fast on the whole; the note then names the one with the "
                "most wins.", "",
                tables.summary_md(summary), ""]
    out += ["## Rankings", ""]
    order = cases.sort_values(["family", "case_id", "mode"], kind="stable")[["case_id", "mode"]]
    for case_id, mode in order.drop_duplicates().itertuples(index=False):
        view = cases[(cases["case_id"] == case_id) & (cases["mode"] == mode)]
        ranked = contender_order(view, run_ids)
        view = view.set_index("contender").loc[ranked].reset_index()
        where = ", ".join(sorted({f"{d} {t}" for d, t in zip(view["device"], view["dtype"], strict=True)
                                  if isinstance(d, str)}))
        out += [f"### `{case_id}` · {mode}" + (f" · {where}" if where else ""), "",
                tables.case_md(view, run_ids), ""]
    if figures:
        out += ["## Figures", "", tables.figures_md(figures), ""]
    if accuracy is not None and len(accuracy):
        out += ["## Accuracy against the float64 oracle", "",
                "Largest error over the cases checked, per logit-scale band "
                "(rel: error / the tolerance's condition scale). 'known limit (loss/grad)': "
                "cases in a regime where theory predicts a breakdown or departure (softmax → log "
                "underflow, BCELoss's clamp), asserted as such instead of compared, so absent "
                "from the errors.", "",
                tables.accuracy_md(accuracy_view(accuracy)), ""]
    out += ["## Runs", "", tables.runs_md(runs), ""]
    unstable = df[df["stable"].map(tables.is_false)]
    if len(unstable):
        out += [f"## Unstable benchmarks, one by one ({len(unstable)})", "",
                "Each with its own reason (the summary at the top says what they share). Their rounds "
                "show contention (docs/benchmarking.md, 'Timing you can trust'); `compare` never calls "
                "them slower or faster.", "",
                tables.unstable_md(unstable), ""]
    other = df[~_is_case(df)]
    if len(other):
        rows = [[r.run_id, r.name, tables.fmt_time(r.median, r.median_noise)] for r in other.itertuples()]
        out += ["## Other benchmarks", "", tables.md_table(["run", "benchmark", "median"], rows), ""]
    return "\n".join(out)


# ---- the points the plots draw --------------------------------------------------------
def _unstable(df: pd.DataFrame) -> np.ndarray:
    if "stable" not in df:
        return np.zeros(len(df), dtype=bool)
    return df["stable"].map(tables.is_false).to_numpy(dtype=bool)


def time_vs_size_lines(df: pd.DataFrame) -> dict[str, dict[str, dict[str, dict[str, np.ndarray]]]]:
    """Per run, mode (sorted) and contender (sorted): problem sizes (bytes moved, else
    logits elements) in increasing order, the lowest median at each and whether that
    median was unstable."""
    out = {}
    cases = df[_is_case(df) & df["median"].notna()]
    for run_id, run in cases.groupby("run_id", sort=False):
        modes = out[str(run_id)] = {}
        for mode in sorted(run["mode"].dropna().unique()):
            sub = run[run["mode"] == mode].assign(x=lambda d: d["bytes"].fillna(d["size"]))
            lines = modes[mode] = {}
            for contender, pts in sub.groupby("contender"):
                best = pts.loc[pts.groupby("x")["median"].idxmin()].sort_values("x")
                lines[str(contender)] = {"x": best["x"].to_numpy(dtype=float),
                                         "median": best["median"].to_numpy(dtype=float),
                                         "unstable": _unstable(best)}
    return out


def speedup_points(df: pd.DataFrame) -> dict[str, dict]:
    """What `plot_speedup` draws: per run and dtype (key ``<run>-<dtype>``; an f16 case and
    an f32 one are not one population), its title and per mode (sorted) and contender
    other than the reference (sorted) each timed case's rarest-class share p, logits
    elements, speedup against its family's reference, the speedup's 95 % noise and whether
    the contender's median was unstable."""
    out = {}
    cases = df[_is_case(df) & df["speedup"].notna() & ~is_reference(df)]
    for (run_id, dtype), run in cases.groupby(["run_id", cases["dtype"].fillna("?")], sort=False):
        devices = ", ".join(sorted({str(d) for d in run["device"].dropna()})) or "?"
        modes = {}
        for mode in sorted(run["mode"].dropna().unique()):
            sub = run[run["mode"] == mode]
            modes[mode] = {str(contender): {col: pd.to_numeric(pts[col], errors="coerce").to_numpy()
                                            for col in ("case_p", "size")}
                                           | {"speedup": pts["speedup"].to_numpy(dtype=float),
                                              "noise": pts["speedup_noise"].to_numpy(dtype=float),
                                              "unstable": _unstable(pts)}
                           for contender, pts in sub.groupby("contender")}
        out[f"{run_id}-{dtype}"] = {"title": f"run {run_id} · {devices} · {dtype}", "modes": modes}
    return out


RANKED_CASES = 4  # cases ranked in a run that has no landmark: those most contenders timed


def run_titles(df: pd.DataFrame) -> dict[str, str]:
    """Per run: its id, device and the dtypes it timed, for figure titles."""
    out = {}
    for run_id, run in df[_is_case(df)].groupby("run_id", sort=False):
        devices = ", ".join(sorted({str(d) for d in run["device"].dropna()})) or "?"
        dtypes = "/".join(sorted({str(d) for d in run["dtype"].dropna()}))
        out[str(run_id)] = f"run {run_id} · {devices}" + (f" · {dtypes}" if dtypes else "")
    return out


def ranked_cases(run: pd.DataFrame) -> dict[str, str]:
    """The cases of one run to rank, id -> name: its landmarks in landmark order, else the
    `RANKED_CASES` cases the most contenders were timed on."""
    present = set(run["case_id"].dropna())
    found = {case_id: name for case_id, name in landmark_names().items() if case_id in present}
    if found:
        return found
    timed = run[_is_case(run) & run["median"].notna()]
    counts = timed.groupby("case_id", sort=False)["contender"].nunique()
    return {str(c): str(c) for c in counts.sort_values(ascending=False, kind="stable").index[:RANKED_CASES]}


def ranking_figures(df: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """What `plot_ranking` draws: per run and ranked case, per mode, every contender fastest
    first (failed and untimed last) with its median, 95 % noise, speedup and mark."""
    out = {}
    for run_id, run in df.groupby("run_id", sort=False):
        figures = out[str(run_id)] = {}
        for case_id, name in ranked_cases(run).items():
            sub = run[run["case_id"] == case_id]
            timed = sub[_is_case(sub)]
            where = " ".join(sorted({f"{d} {t}" for d, t in zip(timed["device"], timed["dtype"], strict=True)
                                     if isinstance(d, str)}))
            title = " · ".join(x for x in (name if name != case_id else "", case_id, where,
                                           f"run {run_id}") if x)
            modes = {mode: [_ranking_row(r) for r in rows.sort_values("median", na_position="last")
                            .itertuples()]
                     for mode, rows in sorted(sub.groupby("mode", sort=False), key=lambda kv: str(kv[0]))}
            figures[name] = {"title": title, "modes": modes}
    return out


def _ranking_row(r) -> dict:
    error = getattr(r, "error", None)
    mark = (f"failed: {error}" if isinstance(error, str) and error
            else "unstable" if tables.is_false(getattr(r, "stable", None)) else "")
    return {"contender": str(r.contender), "median": _float(r.median), "noise": _float(r.median_noise),
            "speedup": _float(r.speedup), "mark": mark}


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def bandwidth_runs(df: pd.DataFrame) -> dict[str, dict]:
    """What `plot_bandwidth` draws: per run (per run and device when a run has several,
    merged from CPU and CUDA shards), the measured copy peak of that device (GB/s, NaN
    without a probe) and per mode and contender the cases' bytes moved and achieved GB/s."""
    titles = run_titles(df)
    out = {}
    cases = df[_is_case(df) & df["gbps"].notna() & df["bytes"].notna()]
    for run_id, run in cases.groupby("run_id", sort=False):
        devices = run.groupby(run["device"].fillna("?"), sort=True)
        for device, sub in devices:
            key = str(run_id) if devices.ngroups == 1 else f"{run_id}-{device}"
            peak = pd.to_numeric(sub["peak_gbps"], errors="coerce").max()
            modes = {mode: {str(c): (pts["bytes"].to_numpy(dtype=float), pts["gbps"].to_numpy(dtype=float))
                            for c, pts in sub[sub["mode"] == mode].groupby("contender")}
                     for mode in sorted(sub["mode"].dropna().unique())}
            where = titles.get(str(run_id), f"run {run_id}") if devices.ngroups == 1 else \
                f"run {run_id} · {device}"
            peak_text = f"measured copy peak {peak:.3g} GB/s" if peak == peak else "no measured peak"
            out[key] = {"peak": float(peak) if peak == peak else math.nan, "modes": modes,
                        "title": f"{where}: achieved bandwidth against the {peak_text}"}
    return out


def accuracy_grid(view: pd.DataFrame) -> dict:
    """What `plot_accuracy` draws, from `accuracy_view`: contenders × (dtype, band) matrices
    of the largest relative loss and gradient errors, failed counts and known-limit cells."""
    from harness.analysis.accuracy import BANDS

    bands = [label for _, label in BANDS]
    present = view[["dtype", "band"]].drop_duplicates()
    cols = sorted(map(tuple, present.to_numpy()), key=lambda k: (str(k[0]), bands.index(k[1])
                                                                  if k[1] in bands else len(bands)))
    rows = sorted(view["contender"].unique())
    index = {k: j for j, k in enumerate(cols)}
    props = {}
    for prop in ("loss", "grad"):
        rel = np.full((len(rows), len(cols)), np.nan)
        failed = np.zeros_like(rel)
        limit = np.zeros(rel.shape, dtype=bool)
        checked = np.zeros(rel.shape, dtype=bool)  # NaN where checked: a NaN or inf error
        of_bound = np.full(rel.shape, np.nan)     # largest error / its tolerance bound
        for r in view.itertuples():
            i, j = rows.index(r.contender), index[(r.dtype, r.band)]
            rel[i, j] = getattr(r, f"{prop}_max_rel")
            failed[i, j] = _finite_or(_float(getattr(r, f"{prop}_failed", 0)), 0.0)
            cases = _float(getattr(r, f"{prop}_cases", math.nan))
            limit[i, j] = cases == cases and _float(getattr(r, f"{prop}_limited", 0)) >= cases > 0
            checked[i, j] = cases == cases and cases > 0
            of_bound[i, j] = _float(getattr(r, f"{prop}_max_of_bound", math.nan))
        props[prop] = {"rel": rel, "failed": failed, "limit": limit, "checked": checked,
                       "of_bound": of_bound}
    return {"rows": rows, "cols": [f"{d} {b}" for d, b in cols], "props": props,
            "title": "error against the float64 oracle by dtype and logit scale (std of the logits)"}


# ---- the command ---------------------------------------------------------------------
def run_summary(path: str | Path, size: str, device: str) -> str:
    """`tables.bench_summary` of the run saved at ``path``: per case and mode, the
    contenders ranked, speedups against the family reference, failures and unstable marks;
    landmarks by name."""
    df = enrich(load([path]))
    df = df[_is_case(df) | df["error"].notna()] if "error" in df else df[_is_case(df)]
    names = {case.id: name for name, case in landmarks(size, device).items()}
    named = df[df["case_id"].isin(names)]
    rest = df.loc[~df["case_id"].isin(names), "case_id"].nunique()
    shown = named if len(named) else df  # a run without landmarks (generated, ids) shows every case
    tail = (f"\n(and {rest} other cases: `python -m harness report` lists every one)"
            if len(named) and rest else "")
    return (f"summary of the {'landmark ' if len(named) else ''}cases (fastest first; × = speedup "
            "against the family's reference)\n" + tables.bench_summary(shown, names) + tail)


def draw_figures(df: pd.DataFrame, accuracy: pd.DataFrame | None, out: Path) -> list[Path]:
    """Every figure of the report: the ranked landmark cases first (what a person looks at
    first), then time against size, speedups, bandwidth and accuracy."""
    titles = run_titles(df)
    figures = plot_ranking(ranking_figures(df), out)
    figures += plot_time_vs_size(time_vs_size_lines(df), out, titles)
    figures += plot_speedup(speedup_points(df), out)
    figures += plot_bandwidth(bandwidth_runs(df), out)
    if accuracy is not None and len(accuracy):
        figures += plot_accuracy(accuracy_grid(accuracy_view(accuracy)), out)
    return figures


def write_report(paths: list[str], out: str | Path, accuracy_paths: list[str] | None = None,
                 plots: bool = True) -> list[Path]:
    """Everything `report` writes, each file atomically; returns the paths written."""
    out = Path(out)
    df = enrich(load(paths))
    accuracy = None
    if accuracy_paths:
        from harness.analysis.accuracy import load_accuracy

        accuracy = load_accuracy(accuracy_paths)
    figures = draw_figures(df, accuracy, out) if plots else []
    markdown = render_markdown(df, accuracy, [f.name for f in figures])
    written = [atomic_write_text(out / "tables.md", markdown + "\n"), write_csv(df, out / "runs.csv")]
    parquet = write_parquet(df, out / "runs.parquet")
    written += [parquet] if parquet else []
    written += figures
    written.append(atomic_write_text(out / "report.html",
                                     html_page(markdown, [(f.name, f.read_bytes()) for f in figures])))
    return written
