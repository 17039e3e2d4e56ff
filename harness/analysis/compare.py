"""``python -m harness compare BASE NEW``: did a change make anything slower?

Benchmarks are matched by name. Each one's raw ratio NEW/BASE of medians is divided by the
*machine factor* (`machine_factor`): a median over contenders of each contender's median
raw ratio, over the benchmarks stable in both runs. A machine that is uniformly slower
(another CI runner, a hot laptop) cancels out, no single benchmark's jitter reaches the
others' ratios, and a contender that really changed does not drag the factor. (Dividing by
one reference contender's median, as this module did before, imported that contender's
run-to-run jitter into every row of its case: ±20 % on one case flagged identical code.)
The factor's own uncertainty is carried into every benchmark's interval.

A change is called faster or slower only when it passes the threshold (default 10 %,
`verdict.DEFAULT_THRESHOLD`, shared with ``ab``), a significance test on the raw rounds —
Mann-Whitney U at p < 0.01 on BASE's rounds times the factor against NEW's, when both sides
have at least `MIN_U_ROUNDS` rounds, and in any case a 99 % bootstrap interval of the
normalised ratio that excludes 1 (blocks of rounds on fresh inputs resampled first, then
rounds, and the factor drawn from its uncertainty) — and the run-to-run drift floor
(`drift_floor`), all inputs to the decision ``ab`` makes too
(`harness.verdict.decide`, its words). Within the threshold is ``same``; beyond it
but short of the test or the floor, ``undecided``; beyond it with fewer than
`MIN_BOOT_ROUNDS` rounds on a side, ``too few`` (no test can run: ``ab``'s word for too few
pairs). A benchmark that either run recorded as
contaminated (preempted, oversubscribed, quantised: `harness.benchmark.stability`) is
``unstable``, never slower or faster; one that is only wide (its spread) is judged like the
others, on intervals that its spread widens, with the spread in its note: never judging it
let a 2.5× slowdown of the widest landmark pass (measured: ext twice as slow, 78 of 88
comparisons flagged, every miss that landmark marked unstable for its idle spread). An
environment that differs (torch version, device, hardware, intra-op threads) makes the ratio
meaningless, hence its own status unless ``--allow-env-change``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness import verdict
from harness.analysis import stats
from harness.analysis.load import ResultsError, runs_table
from harness.benchmark import stability

ALPHA = 0.01
MIN_U_ROUNDS = 5      # fewer rounds cannot reach p < 0.01 in a two-sided U test
MIN_BOOT_ROUNDS = 3   # fewer than this on a side: no test at all, never significant
MIN_FACTOR_BENCHMARKS = 4  # fewer stable benchmarks in common: raw ratios, not normalised
N_BOOT = 1000
STATUSES = (verdict.SLOWER, verdict.FASTER, verdict.UNSTABLE, verdict.TOO_FEW, verdict.UNDECIDED,
            "environment changed",
            "new", "missing", "untimed", verdict.SAME)  # untimed: failed (or was not timed) in both runs
METHOD = verdict.UNPAIRED  # what judged, said in the output beside `ab`'s paired method


@dataclass(frozen=True)
class Settings:
    threshold: float = verdict.DEFAULT_THRESHOLD
    alpha: float = ALPHA
    allow_env_change: bool = False


# ---- environment ---------------------------------------------------------------------
def environment_changes(base: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """What differs between the two runs that normalisation cannot cancel."""
    b, n = runs_table(base).iloc[0], runs_table(new).iloc[0]
    changes = []
    for label, old, now in (("torch", b["torch"], n["torch"]), ("device", b["devices"], n["devices"]),
                            ("machine", _hardware(b), _hardware(n)),
                            ("threads", _threads(b), _threads(n))):
        if str(old or "") != str(now or ""):
            changes.append(f"{label}: {old or '?'} -> {now or '?'}")
    return changes


def _hardware(run: pd.Series) -> str:
    return " / ".join(str(x) for x in (run["cpu"], run["gpu_name"]) if isinstance(x, str) and x)


def _threads(run: pd.Series) -> str:
    """Intra-op threads of a CPU run ('' on other devices, where they time nothing)."""
    threads = run.get("run_threads")
    if "cpu" not in str(run["devices"]).split(",") or threads is None:
        return ""
    try:
        return str(int(threads))
    except (TypeError, ValueError):  # None or NaN: a file from before threads were recorded
        return ""


# ---- one benchmark -------------------------------------------------------------------
def _rounds(data, median: float) -> np.ndarray:
    """The raw rounds, or the median alone when the run was saved without them."""
    if isinstance(data, list | np.ndarray) and len(data):
        return np.asarray(data, dtype=float)
    return np.array([median]) if not math.isnan(median) else np.array([])


def stability_of(row: pd.Series) -> stability.Stability:
    """What the run recorded (``stable``, ``unstable_reason``); for files from before that
    record, the rules that need only the raw rounds (quantised, spread)."""
    recorded = row.get("stable")
    if isinstance(recorded, bool | np.bool_):
        reason = row.get("unstable_reason")
        reasons = tuple(reason.split("; ")) if isinstance(reason, str) and reason else ()
        return stability.Stability(bool(recorded), reasons)
    data = row.get("data")
    return stability.judge(data) if isinstance(data, list) and data else stability.Stability(True)


def _blocks(row: pd.Series) -> int:
    try:
        return max(1, int(row.get("blocks")))
    except (TypeError, ValueError):  # None or NaN: one block (files from before replicates)
        return 1


@dataclass(frozen=True)
class MachineFactor:
    """How much slower NEW's machine is than BASE's across the board (`machine_factor`),
    from the ``n`` benchmarks stable in both runs, with ``samples``, draws from its
    uncertainty (all ones when not estimated)."""

    value: float
    samples: np.ndarray
    n: int

    @property
    def estimated(self) -> bool:
        return self.n >= MIN_FACTOR_BENCHMARKS

    def interval(self, confidence: float = 0.99) -> tuple[float, float]:
        tail = (1 - confidence) / 2 * 100
        lo, hi = np.percentile(self.samples, [tail, 100 - tail])
        return float(lo), float(hi)


def machine_factor(raw_ratios: np.ndarray, groups: list[str] | None = None, seed: int = 0) -> MachineFactor:
    """`MachineFactor` from the raw ratios of the benchmarks stable in both runs; 1 (no
    normalisation) with fewer than `MIN_FACTOR_BENCHMARKS` of them.

    The centre is a median of medians: each contender's median log-ratio (``groups``
    names the contender of each ratio), then the median over contenders, when there are
    at least three. A change usually moves one contender everywhere, or one case for every
    contender; either way the median over contenders stays on the untouched ones, where
    the plain median of all ratios is dragged by a third of them towards the change
    (measured: 1.27 against 1.0 with one of three contenders made 2.5× slower, which
    hid it). With fewer contenders, the median of all ratios."""
    logs = verdict.log_ratio(np.asarray(raw_ratios, dtype=float))
    keep = np.isfinite(logs)
    r = logs[keep]
    if r.size < MIN_FACTOR_BENCHMARKS:
        return MachineFactor(1.0, np.ones(N_BOOT), int(r.size))
    labels = np.asarray(groups if groups is not None else ["all"] * keep.size)[keep]
    per_group = [float(np.median(r[labels == g])) for g in dict.fromkeys(labels)]
    center = float(np.median(per_group)) if len(per_group) >= 3 else float(np.median(r))
    scales = [x for x in stats.one_sided_scales(r, center) if math.isfinite(x)]
    spread = min(scales) if scales else math.nan
    # The centre's standard error as a median's, from the spread of the side that no
    # change inflated (a bootstrap would jump between the clusters a change creates).
    se = 1.2533 * spread / math.sqrt(r.size) if math.isfinite(spread) else 0.0
    draws = np.random.default_rng(seed).normal(center, se, N_BOOT)
    return MachineFactor(float(np.exp(center)), np.exp(draws), int(r.size))


NO_TEST = "too few rounds"  # `significance`'s test when a side has under MIN_BOOT_ROUNDS


def significance(base: np.ndarray, new: np.ndarray, factor: MachineFactor, alpha: float = ALPHA,
                 with_ci: bool = True, seed: int = 0,
                 blocks: tuple[int, int] = (1, 1)) -> tuple[float, tuple[float, float], bool, str]:
    """(p-value, 99 % CI of the normalised ratio, significant?, test used).

    ``with_ci=False`` skips the bootstrap for a change already inside the threshold,
    whose status does not depend on significance. The U test takes the factor as exact;
    the bootstrap interval resamples both sides' rounds and pairs them with draws of the
    factor (`MachineFactor.samples`), so an uncertain factor widens it, and it too must
    exclude 1. Rounds taken in
    ``blocks`` (BASE, NEW) on fresh copies of the inputs (`harness.benchmark.step.Replicates`) are
    resampled block first, then round within block: how much the median moves with where
    the inputs land is part of the interval, as it is part of the next run."""
    ci = (math.nan, math.nan)
    if with_ci and base.size and new.size:
        rng = np.random.default_rng(seed)
        b = stats.resampled_medians(base, rng, N_BOOT, blocks[0])
        n = stats.resampled_medians(new, rng, N_BOOT, blocks[1])
        ratios = n / b / factor.samples[rng.permutation(factor.samples.size)]
        ratios = ratios[np.isfinite(ratios)]
        if ratios.size:
            tail = alpha / 2 * 100
            lo, hi = np.percentile(ratios, [tail, 100 - tail])
            ci = (float(lo), float(hi))
    ci_excludes_one = bool(ci[0] > 1 or ci[1] < 1)
    if min(base.size, new.size) >= MIN_U_ROUNDS:
        test = stats.mann_whitney_u(base * factor.value, new)
        return test.p, ci, bool(test.p < alpha) and ci_excludes_one, f"U ({test.method})"
    if min(base.size, new.size) >= MIN_BOOT_ROUNDS:
        return math.nan, ci, ci_excludes_one, "bootstrap CI"
    return math.nan, ci, False, NO_TEST


# ---- whole runs ----------------------------------------------------------------------
def _single_run(df: pd.DataFrame, what: str) -> pd.DataFrame:
    runs = df["run_id"].unique()
    if len(runs) != 1:
        raise ResultsError(f"{what} holds {len(runs)} runs ({', '.join(map(str, runs))}); "
                           "compare takes one run on each side (a directory of its shards is fine)")
    return df


@dataclass(frozen=True)
class Comparison:
    """One row per benchmark name in either run (``rows``), the machine factor they were
    normalised by, and what changed in the environment."""

    rows: pd.DataFrame
    factor: MachineFactor
    env: list[str]
    floor: tuple[float, float] = (math.nan, math.nan)  # `drift_floor`: (slower, faster) log-ratios


def compare(base: pd.DataFrame, new: pd.DataFrame, settings: Settings = Settings()) -> Comparison:
    """Match, normalise and judge every benchmark (module docstring)."""
    base, new = _single_run(base, "BASE"), _single_run(new, "NEW")
    env = environment_changes(base, new)
    b_idx, n_idx = base.set_index("name"), new.set_index("name")
    names = list(dict.fromkeys([*base["name"], *new["name"]]))
    matched = [_match(name, b_idx, n_idx) for name in names]
    stable = [m for m in matched if m["_both"] and m["_stable"]]
    factor = machine_factor(np.asarray([m["raw_ratio"] for m in stable], dtype=float),
                            groups=[str(m["contender"]) for m in stable])
    for m in matched:
        m["ratio"] = m["raw_ratio"] / factor.value
    # the floor comes from the normalised ratios alone, so it is known before any judgement
    # and enters each one as an input (`verdict.decide`)
    normalised = [m["ratio"] for m in stable] if factor.estimated else []
    floor = with_machine_move(drift_floor(pd.Series(normalised, dtype=float)), factor)
    rows = pd.DataFrame([_judge(m, factor, env, settings, floor) for m in matched])
    return Comparison(rows.drop(columns=["_both", "_stable", "_judged", "_base", "_new"]), factor,
                      env, floor)


def compare_runs(base: pd.DataFrame, new: pd.DataFrame, settings: Settings = Settings()) -> pd.DataFrame:
    """`compare`'s rows alone."""
    return compare(base, new, settings).rows


def _match(name: str, b_idx: pd.DataFrame, n_idx: pd.DataFrame) -> dict:
    b = b_idx.loc[name] if name in b_idx.index else None
    n = n_idx.loc[name] if name in n_idx.index else None
    some = n if n is not None else b
    row = {"name": name, "case_id": some["case_id"], "contender": some["contender"],
           "mode": some["mode"], "base_median": math.nan, "new_median": math.nan,
           "raw_ratio": math.nan, "ratio": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p": math.nan, "test": "", "note": "", "judged": "", "status": "",
           "_both": False, "_stable": False, "_judged": False, "_base": b, "_new": n}
    timed = [x is not None and not math.isnan(x["median"]) for x in (b, n)]
    if timed[0]:
        row["base_median"] = b["median"]
    if timed[1]:
        row["new_median"] = n["median"]
    if not all(timed):
        row["status"] = row["judged"] = ("untimed" if not any(timed) else
                                         "new" if not timed[0] else "missing")
        failed = n if n is not None and not timed[1] else b  # the newer error when both failed
        if failed is not None and isinstance(failed.get("error"), str):
            row["note"] = f"failed: {failed['error']}"
        return row
    verdicts = {"BASE": stability_of(b), "NEW": stability_of(n)}
    row.update(raw_ratio=n["median"] / b["median"], _both=True,
               _stable=all(v.stable for v in verdicts.values()),
               _judged=not any(v.contaminated for v in verdicts.values()))
    row["note"] = "; ".join(f"{side}: {v.reason}" for side, v in verdicts.items() if not v.stable)
    return row


def _judge(row: dict, factor: MachineFactor, env: list[str], settings: Settings,
           floor: tuple[float, float]) -> dict:
    if not row["_both"]:
        return row
    b, n = row["_base"], row["_new"]
    if not factor.estimated:
        row["note"] = "; ".join(x for x in (row["note"], f"not normalised: {factor.n} stable "
                                            "benchmarks in common") if x)
    mine = _rounds(b["data"], b["median"]), _rounds(n["data"], n["median"])
    log_r = verdict.log_ratio(row["ratio"])
    beyond = verdict.decide(log_r, True, settings.threshold) != verdict.SAME
    p, ci, significant, test = significance(*mine, factor, settings.alpha, with_ci=beyond,
                                            blocks=(_blocks(b), _blocks(n)))
    row.update(p=p, ci_low=ci[0], ci_high=ci[1], test=test)
    # `same` on the ratio itself (interval None): an interval of one run's rounds cannot
    # bound the next run's drift, and compare has never claimed more than the ratio
    status = verdict.decide(log_r, significant, settings.threshold, floor=floor)
    if status != verdict.decide(log_r, significant, settings.threshold):  # the floor held it back
        drift = floor[0] if log_r > 0 else floor[1]
        row["note"] = _join_note(row["note"], f"within run-to-run drift ({_pct(drift)})")
    if status == verdict.UNDECIDED and test == NO_TEST:  # beyond the threshold, untestable
        status = verdict.TOO_FEW
    row["judged"] = status
    if not row["_judged"]:  # contaminated: a wide spread alone is judged on its intervals
        status = "unstable"
    if env and not settings.allow_env_change:
        row["note"] = "; ".join(x for x in (f"would be {status}", row["note"]) if x)
        status = "environment changed"
    row["status"] = status
    return row


FAMILY_ALPHA = 0.10  # chance that identical code shows any change beyond the drift floor


def drift_floor(ratios: pd.Series) -> tuple[float, float]:
    """(slower, faster): the log-ratios within which a change is put down to run-to-run
    drift. Each is the spread of the normalised ``ratios`` of the benchmarks stable in both
    runs, measured on the other side of 1 (`stats.one_sided_scales`: a slowdown is judged
    against how far the other benchmarks scatter towards faster, so a regression does not
    widen its own floor), times a Student t quantile that holds the chance of any false
    change among the n benchmarks at `FAMILY_ALPHA` (Bonferroni: 1 − α/(2n)), with the
    degrees of freedom of that side's count. NaN where a side has fewer than 3 values.

    Rounds within one run cannot show how much a benchmark drifts from one run to the
    next: on this project's 2-core VM identical code moves by 12-14 % per benchmark (1σ,
    after the machine factor), sometimes a whole case at once, and each run's rounds still
    call those moves significant at p < 1e-4. Measured on 26 A/A pairs of real runs
    (`scripts/noise_demo.sh`): a floor capped at 25 % flagged 8 of 10 pairs; a fixed three
    sigmas 4 of 10; this rule 1 of 10, 1 of 6 and 1 of 10."""
    logs = verdict.log_ratio(np.asarray(ratios, dtype=float))
    logs = logs[np.isfinite(logs)]
    below, above = stats.one_sided_scales(logs, 0.0)
    n = max(logs.size, 1)
    quantile = 1 - FAMILY_ALPHA / (2 * n)
    k_below = stats.t_quantile(quantile, max(int((logs < 0).sum()) - 1, 2))
    k_above = stats.t_quantile(quantile, max(int((logs > 0).sum()) - 1, 2))
    return k_below * below, k_above * above


MACHINE_MOVE_CAP = math.log(2.0)  # a 2x change is never put down to the machine's move


def machine_move(factor: MachineFactor) -> float:
    """How far the machine moved between the runs, |log factor| (0 when not estimated),
    at most `MACHINE_MOVE_CAP`: on a day the VM is 3x slower, a 2x regression must still
    show."""
    move = abs(verdict.log_ratio(factor.value)) if factor.estimated and factor.value > 0 else 0.0
    return min(move, MACHINE_MOVE_CAP)


def with_machine_move(floor: tuple[float, float], factor: MachineFactor) -> tuple[float, float]:
    """Each side of the drift ``floor`` raised to at least `machine_move`: when the whole
    machine got faster or slower, benchmarks do not all move alike (compute-bound and
    memory-bound ones scale differently), so one factor leaves residuals that grow with the
    move. Measured on identical code (CI at commit 1334f17): the machine factor was 0.753
    and `softmax_log_nll` fwd_bwd, normalised, read 1.19× "slower" against a 15 % floor;
    four of the ten benchmarks were 1.1–1.2× off. A change smaller than the machine's own
    move is not told from it; a 2× regression still is."""
    move = machine_move(factor)
    return tuple(move if not math.isfinite(f) else max(f, move) for f in floor)  # type: ignore[return-value]


def _pct(log_ratio: float) -> str:
    return f"{math.expm1(log_ratio):.0%}" if math.isfinite(log_ratio) else "?"


def _join_note(note: str, extra: str) -> str:
    return "; ".join(x for x in (str(note or ""), extra) if x)


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


CHANGES = (verdict.SLOWER, verdict.FASTER, verdict.UNSTABLE, verdict.TOO_FEW, verdict.UNDECIDED,
           "environment changed")


def worth_a_look(result: pd.DataFrame) -> pd.DataFrame:
    """Rows worth a look: a judged change, an unstable, too-few or undecided benchmark, or one whose
    environment changed and would not be the same. Benchmarks only one run has (``new``,
    ``missing``) are counted, not listed: a full run against a small baseline has a hundred
    of them (``--all`` lists them)."""
    changed = result["status"].isin(CHANGES) & (result["judged"] != verdict.SAME)
    return result[changed | result["status"].isin(CHANGES[:5])]


def status_counts(result: pd.DataFrame) -> dict[str, int]:
    """How many benchmarks have each status, most frequent first."""
    return {str(s): int(n) for s, n in result["status"].value_counts().items()}


def regressions(result: pd.DataFrame, fail_ratio: float | None = None) -> pd.DataFrame:
    """Rows that fail CI: significant slowdowns, at least ``fail_ratio`` when given."""
    slow = result[result["status"] == verdict.SLOWER]
    if fail_ratio is not None:
        slow = slow[slow["ratio"] >= fail_ratio]
    return slow


def missing_rounds(base: pd.DataFrame, new: pd.DataFrame) -> list[tuple[str, str]]:
    """(side, benchmark) for every benchmark timed in both runs whose raw rounds are absent
    or too few to test (`MIN_BOOT_ROUNDS`): a gate cannot judge it."""
    common = set(base.loc[base["median"].notna(), "name"]) & set(new.loc[new["median"].notna(), "name"])
    out = []
    for side, df in (("BASE", base), ("NEW", new)):
        for name, data in zip(df["name"], df["data"], strict=True):
            if name in common and not (isinstance(data, list) and len(data) >= MIN_BOOT_ROUNDS):
                out.append((side, name))
    return out


def header_lines(comparison: Comparison, base: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """What the reader must know before the rows: the machine factor, and a run whose
    timer self-check failed."""
    f = comparison.factor
    if f.estimated:
        lo, hi = f.interval()
        lines = [f"machine factor NEW/BASE {f.value:.3f} (99% CI {lo:.3f}–{hi:.3f}) from the "
                 f"{f.n} benchmarks stable in both runs; every ratio is divided by it"]
        if not 0.8 <= f.value <= 1.25:
            lines.append(f"NEW is {f.value:.2f}× BASE across the board: a different machine, or a "
                         "change that moves everything (see the raw ratios)")
    else:
        lines = [f"ratios not normalised: only {f.n} benchmarks stable in both runs (need "
                 f"{MIN_FACTOR_BENCHMARKS})"]
    slower, faster = comparison.floor
    if math.isfinite(slower) or math.isfinite(faster):
        lines.append(f"run-to-run drift (how far the other benchmarks scatter): slowdowns within "
                     f"{_pct(slower)} and speedups within {_pct(faster)} are undecided (too few where "
                     "rounds are lacking)")
    move = machine_move(comparison.factor)
    if move > 0 and move in (slower, faster):
        lines.append(f"the machine itself moved by {_pct(move)} between the runs: benchmarks do "
                     "not all scale alike, so changes within that are undecided too")
    for side, df in (("BASE", base), ("NEW", new)):
        run = runs_table(df).iloc[0]
        if isinstance(run.get("fidelity_ok"), bool | np.bool_) and not run["fidelity_ok"]:
            lines.append(f"{side} run unstable: timer fidelity failed ({run['fidelity_reason']})")
    return lines


# ---- command line --------------------------------------------------------------------
