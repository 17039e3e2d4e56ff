"""``python -m harness compare BASE NEW``: did a change make anything slower?

Benchmarks are matched by name. For each, the ratio NEW/BASE of medians is *normalised*
by the reference contender (`eager`) on the same case and mode in the same run, so a
machine that is uniformly slower (another CI runner, a hot laptop) cancels out. A change
is called faster or slower only when it passes both the threshold (default 10 %) and a
significance test on the raw rounds, each round divided by its run's reference median:
Mann-Whitney U at p < 0.01 when both sides have at least `MIN_U_ROUNDS` rounds, and in
any case a 99 % bootstrap interval of the ratio (resampling the reference's rounds too)
that excludes 1 (asv's rule, made aware of the reference's noise).
Beyond the threshold but not significant is ``noisy``, and so is a change within three
times the run-to-run drift of all benchmarks' ratios (`_apply_drift_floor`); an environment that differs
(torch version, device, hardware) makes the ratio meaningless, hence its own status
unless ``--allow-env-change``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness import stats
from harness.results import ResultsError, is_reference, load, reference_of, runs_table

ALPHA = 0.01
MIN_U_ROUNDS = 5      # fewer rounds cannot reach p < 0.01 in a two-sided U test
MIN_BOOT_ROUNDS = 3   # fewer than this on a side: no test at all, never significant
STATUSES = ("slower", "faster", "noisy", "environment changed", "new", "missing", "unchanged",
            "reference")


@dataclass(frozen=True)
class Settings:
    threshold: float = 0.10
    alpha: float = ALPHA
    allow_env_change: bool = False


def parse_threshold(text: str) -> float:
    """'10%' or '0.1' -> 0.10; a bare number above 1 is read as percent ('10' -> 0.10)."""
    raw = text.strip()
    try:
        value = float(raw.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold {text!r}: use a percentage such as 10%") from None
    if raw.endswith("%") or value > 1:
        value /= 100
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"threshold {text!r} out of range")
    return value


# ---- environment ---------------------------------------------------------------------
def environment_changes(base: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """What differs between the two runs that normalisation cannot cancel."""
    b, n = runs_table(base).iloc[0], runs_table(new).iloc[0]
    hw_b, hw_n = _hardware(b), _hardware(n)
    changes = []
    for label, old, now in (("torch", b["torch"], n["torch"]), ("device", b["devices"], n["devices"]),
                            ("machine", hw_b, hw_n)):
        if str(old or "") != str(now or ""):
            changes.append(f"{label}: {old or '?'} -> {now or '?'}")
    return changes


def _hardware(run: pd.Series) -> str:
    return " / ".join(str(x) for x in (run["cpu"], run["gpu_name"]) if isinstance(x, str) and x)


# ---- one benchmark -------------------------------------------------------------------
def _reference_medians(df: pd.DataFrame) -> dict[tuple, float]:
    ref = df[is_reference(df) & df["median"].notna()]
    return {(r.case_id, r.mode): r.median for r in ref.itertuples()}


def _reference_rounds(df: pd.DataFrame) -> dict[tuple, np.ndarray]:
    ref = df[is_reference(df)]
    return {(r.case_id, r.mode): _rounds(r.data, r.median) for r in ref.itertuples()}


def _rounds(data, median: float) -> np.ndarray:
    """The raw rounds, or the median alone when the run was saved without them."""
    if isinstance(data, list | np.ndarray) and len(data):
        return np.asarray(data, dtype=float)
    return np.array([median]) if not math.isnan(median) else np.array([])


def significance(base: np.ndarray, new: np.ndarray, base_ref: np.ndarray, new_ref: np.ndarray,
                 base_ref_median: float, new_ref_median: float,
                 alpha: float = ALPHA, with_ci: bool = True) -> tuple[float, tuple[float, float], bool, str]:
    """(p-value, 99 % CI of the normalised ratio, significant?, test used).

    ``with_ci=False`` skips the bootstrap (the costly part) for a change already inside
    the threshold, whose status does not depend on significance.

    Rounds are divided by their run's reference median before the U test, so what is
    tested is the normalised change, not the machine's speed. The U test takes the
    reference median as exact, so a reference whose median moved by noise would shift
    every contender "significantly"; the bootstrap interval, which resamples the
    reference too, must therefore also exclude 1."""
    ci = (stats.bootstrap_ratio_ci(base, base_ref, new, new_ref, confidence=1 - alpha, n_boot=1000)
          if with_ci else (math.nan, math.nan))
    ci_excludes_one = bool(ci[0] > 1 or ci[1] < 1)
    if min(base.size, new.size) >= MIN_U_ROUNDS:
        test = stats.mann_whitney_u(base / base_ref_median, new / new_ref_median)
        return test.p, ci, bool(test.p < alpha) and ci_excludes_one, f"U ({test.method})"
    if min(base.size, new.size) >= MIN_BOOT_ROUNDS:
        return math.nan, ci, ci_excludes_one, "bootstrap CI"
    return math.nan, ci, False, "too few rounds"


def decide(ratio: float, significant: bool, threshold: float) -> str:
    """Both tests must pass: beyond the threshold *and* significant."""
    if not math.isfinite(ratio):
        return "noisy"
    if ratio >= 1 + threshold:
        return "slower" if significant else "noisy"
    if ratio <= 1 / (1 + threshold):
        return "faster" if significant else "noisy"
    return "unchanged"


# ---- whole runs ----------------------------------------------------------------------
def _single_run(df: pd.DataFrame, what: str) -> pd.DataFrame:
    runs = df["run_id"].unique()
    if len(runs) != 1:
        raise ResultsError(f"{what} holds {len(runs)} runs ({', '.join(map(str, runs))}); "
                           "compare takes one run on each side (a directory of its shards is fine)")
    return df


def compare_runs(base: pd.DataFrame, new: pd.DataFrame, settings: Settings = Settings()) -> pd.DataFrame:
    """One row per benchmark name in either run, with status, normalised ratio, CI, p."""
    base, new = _single_run(base, "BASE"), _single_run(new, "NEW")
    env = environment_changes(base, new)
    refs = {"base": (_reference_medians(base), _reference_rounds(base)),
            "new": (_reference_medians(new), _reference_rounds(new))}
    b_idx, n_idx = base.set_index("name"), new.set_index("name")
    names = list(dict.fromkeys([*base["name"], *new["name"]]))
    rows = [_compare_one(name, b_idx, n_idx, refs, env, settings) for name in names]
    return _apply_drift_floor(pd.DataFrame(rows))


DRIFT_SIGMAS = 3.0
DRIFT_CAP = 0.25  # the floor never exceeds a 25 % change: larger changes are always judged


def _apply_drift_floor(result: pd.DataFrame) -> pd.DataFrame:
    """Rounds within one run cannot show how much a benchmark drifts from one run to the
    next (measured: two back-to-back runs of one commit on a busy 2-core machine moved one
    contender by 15 % with p < 1e-4). The spread of all normalised benchmarks' ratios
    between the two runs estimates that drift; a change within ``DRIFT_SIGMAS`` of it is
    ``noisy``, however significant its rounds are. A regression that hits many benchmarks
    widens the spread it is measured against, so the floor is capped at ``DRIFT_CAP``: a
    change beyond 25 % (CI fails at 1.5x) is never explained away as drift. With fewer than
    4 comparable benchmarks there is no estimate and no floor."""
    normalised = (result["status"] != "reference") & ~result["note"].astype(str).str.startswith(
        "not normalised")
    sigma = stats.drift_scale(result.loc[normalised, "ratio"]) if "ratio" in result else math.nan
    if not math.isfinite(sigma) or sigma == 0:
        return result
    floor = min(DRIFT_SIGMAS * sigma, math.log1p(DRIFT_CAP))
    within = (np.log(result["ratio"]).abs() <= floor) & result["judged"].isin(["slower", "faster"])
    drift = f"within run-to-run drift ({math.expm1(floor):.0%})"
    env_changed = result["status"] == "environment changed"
    result.loc[within, "judged"] = "noisy"
    result.loc[within & ~env_changed, "status"] = "noisy"
    result.loc[within, "note"] = np.where(env_changed[within], f"would be noisy: {drift}", drift)
    return result
    floor = DRIFT_SIGMAS * sigma
    for col in ("status", "judged"):
        inside = result[col].isin(["slower", "faster"]) & (np.log(result["ratio"]).abs() <= floor)
        result.loc[inside, col] = "noisy"
        if col == "judged":
            result.loc[inside, "note"] = (result.loc[inside, "note"].astype(str)
                                          + f" within run-to-run drift ({math.expm1(floor):.0%})").str.strip()
    return result


def _compare_one(name: str, b_idx: pd.DataFrame, n_idx: pd.DataFrame, refs: dict, env: list[str],
                 settings: Settings) -> dict:
    b = b_idx.loc[name] if name in b_idx.index else None
    n = n_idx.loc[name] if name in n_idx.index else None
    some = n if n is not None else b
    row = {"name": name, "case_id": some["case_id"], "contender": some["contender"],
           "mode": some["mode"], "base_median": math.nan, "new_median": math.nan,
           "raw_ratio": math.nan, "ratio": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p": math.nan, "test": "", "note": "", "judged": ""}
    timed = [x is not None and not math.isnan(x["median"]) for x in (b, n)]
    if not all(timed):
        row["status"] = row["judged"] = "new" if not timed[0] else "missing"
        failed = b if b is not None and not timed[0] else n
        if failed is not None and isinstance(failed.get("error"), str):
            row["note"] = f"failed: {failed['error']}"
        if timed[0]:
            row["base_median"] = b["median"]
        if timed[1]:
            row["new_median"] = n["median"]
        return row
    row.update(base_median=b["median"], new_median=n["median"], raw_ratio=n["median"] / b["median"])
    key = (some["case_id"], some["mode"])
    b_ref, n_ref = refs["base"][0].get(key), refs["new"][0].get(key)
    reference = reference_of(some.get("family"))
    if row["contender"] == reference:
        row.update(status="reference", judged="reference", ratio=1.0, note="normalises the others")
        return row
    if b_ref is None or n_ref is None:
        row["note"] = f"not normalised: no {reference} in {'BASE' if b_ref is None else 'NEW'}"
        b_ref = n_ref = 1.0
        b_rounds = n_rounds = np.array([1.0])
    else:
        b_rounds, n_rounds = refs["base"][1][key], refs["new"][1][key]
    row["ratio"] = stats.normalised_ratio(b["median"], b_ref, n["median"], n_ref)
    mine = _rounds(b["data"], b["median"]), _rounds(n["data"], n["median"])
    beyond = decide(row["ratio"], True, settings.threshold) != "unchanged"
    p, ci, significant, test = significance(*mine, b_rounds, n_rounds, b_ref, n_ref, settings.alpha,
                                            with_ci=beyond)
    row.update(p=p, ci_low=ci[0], ci_high=ci[1], test=test)
    row["judged"] = status = decide(row["ratio"], significant, settings.threshold)
    if env and not settings.allow_env_change:
        row["note"] = f"would be {status}"
        status = "environment changed"
    row["status"] = status
    return row


# ---- what the report shows ------------------------------------------------------------
def presentable(result: pd.DataFrame) -> pd.DataFrame:
    """``result`` as the report lists it: by status in `STATUSES` order, then by ratio,
    largest first; with ``ci_half``, the half-width of the ratio's interval (the noise that
    decides how many digits of the ratio and interval are printed)."""
    order = {s: i for i, s in enumerate(STATUSES)}
    ranked = result.assign(_o=result["status"].map(order)).sort_values(["_o", "ratio"],
                                                                       ascending=[True, False])
    ranked = ranked.drop(columns="_o")
    ranked["ci_half"] = [stats.half_width(lo, hi) for lo, hi in zip(ranked["ci_low"], ranked["ci_high"],
                                                                     strict=True)]
    return ranked


def worth_a_look(result: pd.DataFrame) -> pd.DataFrame:
    """Rows worth a look: not unchanged, also when the environment changed."""
    return result[~result["judged"].isin(["unchanged", "reference"])]


def status_counts(result: pd.DataFrame) -> dict[str, int]:
    """How many benchmarks have each status, most frequent first."""
    return {str(s): int(n) for s, n in result["status"].value_counts().items()}


def regressions(result: pd.DataFrame, fail_ratio: float | None = None) -> pd.DataFrame:
    """Rows that fail CI: significant slowdowns, at least ``fail_ratio`` when given."""
    slow = result[result["status"] == "slower"]
    if fail_ratio is not None:
        slow = slow[slow["ratio"] >= fail_ratio]
    return slow


# ---- command line --------------------------------------------------------------------
def register(sub) -> None:
    p = sub.add_parser("compare", help="compare two benchmark runs: noise-aware, normalised by eager",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="BASE run: a pytest-benchmark JSON, or a directory of its shards")
    p.add_argument("new", help="NEW run: a pytest-benchmark JSON, or a directory of its shards")
    p.add_argument("--threshold", type=parse_threshold, default=0.10,
                   help="smallest normalised change that counts (default 10%%)")
    p.add_argument("--alpha", type=float, default=ALPHA, help="significance level (default 0.01)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when any benchmark is significantly slower beyond the threshold")
    p.add_argument("--fail-ratio", type=float, default=None, metavar="R",
                   help="exit 1 only on a significant normalised slowdown of R× or more (CI: 1.5)")
    p.add_argument("--allow-env-change", action="store_true",
                   help="judge ratios even when torch, device or hardware differ")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as markdown "
                   "(appended when FILE is $GITHUB_STEP_SUMMARY)")
    p.add_argument("--all", action="store_true", help="list unchanged benchmarks too")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from harness import report

    try:
        base, new = load([args.base]), load([args.new])
        settings = Settings(args.threshold, args.alpha, args.allow_env_change)
        result = compare_runs(base, new, settings)
    except ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = environment_changes(base, new)
    title = f"{args.base} -> {args.new}"
    every = presentable(result)
    changed, counts = worth_a_look(every), status_counts(result)
    print(report.compare_table(every if args.all else changed, counts, title, env, settings.threshold))
    if args.markdown:
        _write_markdown(args.markdown, report.compare_markdown(changed, every, counts, title, env,
                                                               settings.threshold))
    failing = regressions(result, args.fail_ratio)
    if (args.fail_on_regression or args.fail_ratio is not None) and len(failing):
        print(f"FAIL: {len(failing)} significant regression(s)", file=sys.stderr)
        return 1
    return 0


def _write_markdown(path: str, text: str) -> None:
    """Atomic like every file the harness writes, except the CI summary, which GitHub
    owns and other steps append to."""
    from harness.files import atomic_write_text

    if path == os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        atomic_write_text(path, text + "\n")
