"""The command line: ``python -m harness {list,check,bench,ab,report,compare}`` (installed as
``xentbench``). One argparse tree; the options shared with pytest come from
`harness.options`. Each command parses, calls the library with values, prints, and returns
the exit code: 0 fine, 1 a verdict failed (a wrong contender, a failed benchmark, a
regression past the gate), 2 bad input, said in one line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness.kernels import interpret_without_cuda

interpret_without_cuda()  # before the imports below: torch._dynamo imports Triton

from harness import contenders as registry  # noqa: E402
from harness import options, verdict  # noqa: E402
from harness.analysis import ab_verdicts, tables  # noqa: E402
from harness.analysis import compare as comparing  # noqa: E402
from harness.analysis.load import ResultsError, load  # noqa: E402
from harness.analysis.paired import PairedSettings, fewest_pairs  # noqa: E402
from harness.analysis.report import run_summary, write_report  # noqa: E402
from harness.atomic import atomic_write_text  # noqa: E402
from harness.benchmark import ab, case_sets, counts  # noqa: E402
from harness.benchmark.ab_record import side_document  # noqa: E402
from harness.benchmark.runner import NoResults, default_output, run_benchmarks  # noqa: E402
from harness.contenders import ecosystem  # noqa: E402
from harness.equivalence.progress import Ticker  # noqa: E402
from harness.equivalence.properties import PROPERTIES  # noqa: E402
from harness.equivalence.runner import CALL_TIMEOUT_S, repro_command  # noqa: E402
from harness.equivalence.verdicts import check_contenders, defects_of, reached, summarise  # noqa: E402
from harness.problem import strategies  # noqa: E402
from harness.problem.case import ID_DOC, CaseError  # noqa: E402

COMPARE_HELP = comparing.__doc__


class OutputError(Exception):
    """An output that cannot be written (a file where its folder must be, a read-only
    folder, a full disk); the message is one line."""


@contextlib.contextmanager
def writing(dest: str | Path) -> Iterator[None]:
    """Around the writes of one output the user named: an `OSError` there becomes an
    `OutputError` naming that output (a full disk's error names no file of its own)."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(dest) else ""
        raise OutputError(f"cannot write {dest}{where}: {exc.strerror or exc}; give a path inside "
                          "a folder you can write") from None
REPORT_HELP = "tables.md, runs.csv and PNG plots from benchmark JSON files"


def _contenders(args: argparse.Namespace) -> list[registry.Contender]:
    if getattr(args, "ecosystem", False):  # other libraries' losses instead of the built-ins
        return (ecosystem.contenders() + registry.resolve("multiclass", args.contender, False)
                + registry.resolve("binary", args.binary_contender, False))
    return (registry.resolve("multiclass", args.contender)
            + registry.resolve("binary", args.binary_contender))


# ---- list, check ------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    print(tables.contender_table(_contenders(args)))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    device = options.resolve_device(args.device)
    chosen = options.only_chosen(_contenders(args), args.only)
    if args.ecosystem:
        print(tables.board_header(chosen, device) + "\n")
        chosen = [c for c in chosen if not c.unavailable(device)]
    results: list = []
    judges: dict = {}  # each contender's worker, kept from its cases to its defects
    with Ticker() as progress, closing_all(judges):
        try:
            check_contenders(chosen, args.case, args.cases, device, timeout=args.call_timeout,
                             progress=progress, into=results, seed=args.seed, judges=judges)
        except KeyboardInterrupt as exc:  # what finished, then the CLI's one line (exit 130)
            progress("interrupted")
            print(tables.verdict_table(summarise(results, PROPERTIES), PROPERTIES, device)
                  + "\n(interrupted: the table holds the cases that finished)")
            raise exc
        classes = _defects(args, chosen, results, device, progress, judges)
    print(tables.verdict_table(summarise(results, PROPERTIES), PROPERTIES, device))
    if not args.case:
        print(f"(generated cases drawn with --seed {args.seed}; what each contender's cases reached:)")
        for name, got in reached(chosen, results).items():
            print(f"  {name}: {got.line()}")
    failures = [r for r in results if r.failure is not None or (r.verdicts is not None and not r.ok)]
    by_name = {c.name: c for c in chosen}
    if args.case:  # the cases asked for, each
        for r in failures[:20]:
            print(f"\nFAIL {r.contender} on {r.case.id}")
            if r.failure is not None:
                print(f"  {r.failure.kind}: {r.failure.detail}")
            for v in (v for v in (r.verdicts or {}).values() if not v.ok):
                print(f"  {v.prop}: {v.detail}")
            print(f"  reproduce: {repro_command(by_name[r.contender], r.case)}")
    for name, found in classes.items():
        contender = by_name[name]
        print("\n" + tables.defect_report(name, found, lambda case, c=contender: repro_command(c, case)))
    if args.case:
        for r in results:
            if r.skipped:
                print(f"skip {r.contender}: {r.skipped}")
    return 1 if failures else 0


@contextlib.contextmanager
def closing_all(judges: dict) -> Iterator[None]:
    try:
        yield
    finally:
        for judge in judges.values():
            judge.close()


def _defects(args, chosen, results, device: str, progress, judges: dict) -> dict[str, list]:
    """Generated cases: every distinct defect of each failing contender, with its minimal
    case (explicit cases are reported one by one instead)."""
    if args.case:
        return {}
    failing = dict.fromkeys(r.contender for r in results
                            if r.failure is not None or (r.verdicts is not None and not r.ok))
    by_name = {c.name: c for c in chosen}
    return {name: defects_of(by_name[name], results, device, args.call_timeout, progress, judges)
            for name in failing}


# ---- bench --------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_output()
    device = options.resolve_device(args.device)  # no CUDA for --device cuda: one line, exit 2
    # Read here what pytest would refuse as a usage error (exit 4, after importing torch
    # anew): a case id or contender that cannot be read is one line and exit 2.
    args.cases = with_ids(args.cases, args.case)
    case_sets.selected(args.cases)
    options.only_chosen(_contenders(args), args.only)
    args.processes = args.processes or 1  # a quick look; pytest alone pools 3 on CPU
    flags = [*options.bench_flags(vars(args)), f"--device={args.device}",
             *options.contender_flags(args.contender, args.binary_contender, args.only,
                                     args.call_timeout),
             *([f"--shard={args.shard}"] if args.shard else []),
             *([f"--run-id={args.run_id}"] if args.run_id else []), *args.pytest_args]
    print(f"xentbench: bench, {args.size} preset on {device}: starting pytest (importing torch, "
          "collecting the cases)", flush=True)
    try:
        with writing(out):  # the JSON is written into a temporary file beside it, then renamed
            code = run_benchmarks(out, flags)
    except NoResults as stop:
        code = stop.args[0] if stop.args else 2
        print(f"bench: pytest exited {code}; {out} left as it was", file=sys.stderr)
        return code or 2
    if out.exists():
        try:
            print("\n" + run_summary(out, args.size, device))
        except ResultsError as exc:  # the run is saved; only its summary cannot be made
            print(f"\nno summary: {exc}")
    print(f"\nresults: {out}" + ("" if code == 0 else "  (some benchmarks failed: see above)"))
    return code


def with_ids(cases: str, ids: list[str]) -> str:
    """``--cases`` with the case ids given as arguments, as one ``--cases`` text: the ids
    instead of the default set (``all``), or beside the set ``--cases`` names."""
    if not ids:
        return cases
    return ",".join(ids if cases == "all" else [cases, *ids])


# ---- ab -------------------------------------------------------------------------------
AB_HELP = ab.__doc__.split("\n\n")[0]


def selection_of(pytest_args: list[str]) -> str | None:
    """The ``-k EXPR`` among the arguments after ``--`` (the only pytest argument `ab`'s
    workers understand: they select benchmarks as pytest would, by their ids)."""
    expr, rest, i = None, [], 0
    while i < len(pytest_args):
        arg = pytest_args[i]
        if arg == "-k" and i + 1 < len(pytest_args):
            expr, i = pytest_args[i + 1], i + 2
            continue
        if arg.startswith("-k"):
            expr = arg[2:].lstrip("=")
        else:
            rest.append(arg)
        i += 1
    if rest:
        raise ab.AbError(f"ab times blocks in its own workers, not under pytest: of the arguments after "
                           f"--, only -k EXPR is understood (not {' '.join(rest)})")
    return expr


def _pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not (sep and old and new) or old == new:
        raise argparse.ArgumentTypeError(f"--pair {text!r}: write OLD=NEW, two contender names")
    return old, new


def _ab_out(args: argparse.Namespace) -> Path:
    """``--out``, or results/ab/<time>-<machine>-<pid>/ under the working directory: the
    user's own repository, not this harness's checkout (as `bench`'s `default_output`)."""
    if args.out:
        return Path(args.out)
    return Path.cwd() / "results" / "ab" / default_output().stem


def _with_counts(run: ab.AbRun, rows: list[dict], selection: dict, out: Path, repo: Path,
                 settings: PairedSettings) -> tuple[list[dict], str]:
    """The rows with callgrind's instruction counts of both sides, and one line saying how
    they were counted (or why not)."""
    if why := counts.unavailable():
        print(f"xentbench ab: instructions not counted: {why}")
        return rows, f"not counted: {why}"
    idents = {label: {key: item.ident_of(label) for key, item in run.results.items() if not item.failed}
              for label in ab.SIDES}
    started = time.monotonic()
    counted = counts.count_both(run.sides, idents, selection, out, repo)
    took = time.monotonic() - started
    return (ab_verdicts.with_instructions(rows, counted, settings),
            f"callgrind, {len(idents['BASE'])} benchmarks, both sides at once, {took:.0f} s")


def cmd_ab(args: argparse.Namespace) -> int:
    device = options.resolve_device(args.device)
    case_sets.selected(args.cases)  # a bad set name or case id: one line, before any worktree
    settings = PairedSettings(args.threshold, args.alpha)
    selection = {"select": selection_of(args.pytest_args), "size": args.size, "cases": args.cases,
                 "threads": args.threads, "device": device, "contender": args.contender,
                 "binary_contender": args.binary_contender, "only": args.only}
    timing = ab.Timing(seconds=args.seconds, timeout=args.call_timeout or CALL_TIMEOUT_S)
    ab.check_selection(selection)  # a -k that keeps nothing: one line, before any worker
    out = _ab_out(args).resolve()  # the workers run in the sides' directories
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    repo = Path.cwd()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    budget = args.budget * 60 if args.until_decided else None
    if args.pair and args.head is not None:
        raise ab.AbError("--pair times two contenders of one side: give at most one side (BASE)")
    if args.pair is None and args.base is None:
        raise ab.AbError("give BASE (a git revision or a directory), or --pair OLD=NEW")
    head_spec = args.base if args.pair else args.head
    with ab.opened_side("BASE", args.base, args.base_python, repo) as base, \
            ab.opened_side("HEAD", head_spec, args.head_python, repo) as head:
        what = (f"{args.pair[0]} against {args.pair[1]} in one process of {base.describe()}" if args.pair
                else f"{base.describe()} against {head.describe()}")
        print(f"xentbench: ab {what}, block pairs on {device}; workers' logs in {out}", flush=True)
        run = ab.run_ab({"BASE": base, "HEAD": head}, selection, timing, out, seed, repo,
                        undecided=lambda r: ab_verdicts.undecided(r, settings), budget=budget,
                        pair=args.pair, sessions=args.sessions, needed=fewest_pairs(settings.alpha))
        rows = ab_verdicts.judge_run(run, settings)
        instructions = None  # not asked for
        if args.instructions:  # while the sides' worktrees exist
            rows, instructions = _with_counts(run, rows, selection, out, repo, settings)
    doc = ab_verdicts.document(run, rows, settings, instructions or "")
    with writing(out):
        for label in ab.SIDES:
            side = side_document(run.sides[label], run.listed[label], run.results, run.started, selection)
            atomic_write_text(out / f"{label.lower()}.json", json.dumps(side, indent=1))
        atomic_write_text(out / "ab.json", json.dumps(doc, indent=1))
    print("\n" + tables.ab_table(doc, everything=args.all))
    if args.markdown:
        with writing(args.markdown):
            _write_markdown(args.markdown, tables.ab_markdown(doc))
    print(f"\nresults: {out}/ab.json (verdicts), {out}/base.json and {out}/head.json (each side's rounds)")
    if not run.results:
        print("error: the two sides have no benchmark in common: nothing to compare", file=sys.stderr)
        return 2
    failing = ab_verdicts.failing(rows, args.fail_ratio)
    if failing:
        print(f"FAIL: {len(failing)} benchmark(s): "
              + ", ".join(f"{r['verdict']} {r['benchmark']}" for r in failing[:5]), file=sys.stderr)
        return 1
    if not ab_verdicts.judgeable(rows):  # by wall time or by counts: then the exit follows them
        print(f"error: {ab_verdicts.no_verdict(rows, instructions)}", file=sys.stderr)
        return 2
    return 0


# ---- report, compare ------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    with writing(args.out):
        written = write_report(args.runs, args.out, args.accuracy, plots=not args.no_plots)
    for path in written:
        print(path)
    return 0


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


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a significance level between 0 and 1, "
                                         "e.g. 0.01")
    return value


def cmd_compare(args: argparse.Namespace) -> int:
    gate = args.fail_on_regression or args.fail_ratio is not None
    base, new = load([args.base]), load([args.new])
    if gate and (lacking := comparing.missing_rounds(base, new)):
        side, name = lacking[0]
        raise ResultsError(f"{args.base if side == 'BASE' else args.new}: {len(lacking)} "
                           f"benchmark(s) without raw rounds to test (e.g. {name}), so the gate "
                           "cannot judge them: rerun with `python -m harness bench` (or pytest "
                           "--benchmark-save-data)")
    settings = comparing.Settings(args.threshold, args.alpha, args.allow_env_change)
    comparison = comparing.compare(base, new, settings)
    result, env = comparison.rows, comparison.env
    title = f"{args.base} -> {args.new}"
    context = (["environment changed: " + "; ".join(env)] if env else []) + comparing.header_lines(
        comparison, base, new)
    every = comparing.presentable(result)
    changed, counts = comparing.worth_a_look(every), comparing.status_counts(result)
    print(tables.compare_table(every if args.all else changed, counts, title, context,
                               settings.threshold))
    if args.markdown:
        with writing(args.markdown):
            _write_markdown(args.markdown, tables.compare_markdown(changed, every, counts, title, context,
                                                               settings.threshold))
    failing = comparing.regressions(result, args.fail_ratio)
    if gate and len(failing):
        print(f"FAIL: {len(failing)} significant regression(s)", file=sys.stderr)
        return 1
    return 0


def _write_markdown(path: str, text: str) -> None:
    """Atomic like every file the harness writes, except the CI summary, which GitHub
    owns and other steps append to."""
    if path == os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        atomic_write_text(path, text + "\n")


# ---- the parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="contenders with family and capabilities")
    options.add_contender_options(p.add_argument)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", help="check contenders against the oracle and print verdicts")
    p.add_argument("case", nargs="*", help="case ids to check (default: a fixed generated set)")
    p.add_argument("--cases", type=options.whole_number(1, "cases"), default=60,
                   help="generated cases per contender (compiled ones: at most 8)")
    p.add_argument("--seed", type=options.whole_number(0, "seed"), default=strategies.DEFAULT_SEED,
                   help="the seed the generated cases are drawn with (default "
                        f"{strategies.DEFAULT_SEED}): the same seed draws the same cases on any "
                        "commit that leaves the strategies alone")
    p.add_argument("--ecosystem", action="store_true",
                   help="check other libraries' cross-entropy and BCE losses (MONAI, kornia, timm, "
                        "smp, pytorch_toolbelt, torchvision) instead of the built-ins: the board "
                        "(pip install -e '.[ecosystem]')")
    options.add_device_option(p.add_argument)
    options.add_contender_options(p.add_argument)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="run the benchmark suite and save its JSON (the main job)",
                       epilog=f"Case ids and what each token means: {ID_DOC}. Anything after -- "
                              "goes to pytest, e.g. -- -k 'eager and fwd_bwd'.")
    p.add_argument("case", nargs="*", metavar="CASE_ID",
                   help="time every contender that can run it on these cases, e.g. "
                        "n8-c2-512x512-p0.05-bf16-mean-winverse_freq (instead of the default "
                        "cases; with --cases SET, besides that set)")
    options.add_bench_options(p.add_argument, prefix="")
    options.add_device_option(p.add_argument)
    p.add_argument("--out", default=None,
                   help="JSON path (default results/runs/<time>-<machine>-<pid>.json)")
    options.add_run_options(p.add_argument)
    options.add_contender_options(p.add_argument)
    # what follows `--` goes to pytest, split off before parsing (`main`): the case ids
    # before it are a list of positionals too
    p.set_defaults(func=cmd_bench, pytest_args=[])

    p = sub.add_parser("ab", help="time BASE and HEAD interleaved, block by block, and judge the pairs",
                       description=ab.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", metavar="BASE", nargs="?", default=None,
                   help="a git revision (checked out into a temporary worktree) or a directory "
                        "(with --pair: the one side, default the working tree)")
    p.add_argument("head", metavar="HEAD", nargs="?", default=None,
                   help="a git revision or a directory (default: the working tree)")
    p.add_argument("--pair", metavar="OLD=NEW", default=None, type=_pair,
                   help="two contenders of one side (e.g. two --contender specs) timed in one "
                        "process, OLD as BASE and NEW as HEAD, block by block")
    p.add_argument("--base-python", metavar="PY", default=None,
                   help="BASE's interpreter (e.g. a venv with other pinned versions; default this one)")
    p.add_argument("--head-python", metavar="PY", default=None, help="HEAD's interpreter")
    p.add_argument("--threshold", type=parse_threshold, default=verdict.DEFAULT_THRESHOLD,
                   help="smallest change that counts, and the band of `same` (default "
                        f"{verdict.DEFAULT_THRESHOLD * 100:.0f}%%, as compare)")
    p.add_argument("--alpha", type=_probability, default=0.01,
                   help="false-discovery rate over the benchmarks compared (default 0.01)")
    p.add_argument("--seconds", type=options.positive_seconds, default=ab.Timing.seconds, metavar="S",
                   help=f"seconds of block pairs per benchmark (default {ab.Timing.seconds:g})")
    p.add_argument("--sessions", type=options.whole_number(1, "sessions"), default=3, metavar="N",
                   help="time every benchmark in N sessions of fresh workers, each with 1/N of "
                        "--seconds (default 3): a process's own offset averages out")
    p.add_argument("--until-decided", action="store_true",
                   help="while any benchmark is undecided, give it more pairs (within --budget)")
    p.add_argument("--budget", type=float, default=10.0, metavar="MINUTES",
                   help="with --until-decided: stop adding pairs after this long (default 10)")
    p.add_argument("--fail-ratio", type=float, default=None, metavar="R",
                   help="exit 1 on a `slower` of R× or more (a HEAD that fails its check exits 1 always)")
    p.add_argument("--instructions", action="store_true",
                   help="also count each benchmark's instructions under callgrind (valgrind): a "
                        "deterministic second opinion, and the verdict where wall time cannot decide")
    p.add_argument("--seed", type=int, default=None, help="seed of the block order (default: random, "
                   "recorded in ab.json)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where ab.json, base.json, head.json and the workers' logs go "
                        "(default results/ab/<time>-<machine>-<pid>/)")
    p.add_argument("--markdown", metavar="FILE", help="also write the verdicts as markdown "
                   "(appended when FILE is $GITHUB_STEP_SUMMARY)")
    p.add_argument("--all", action="store_true", help="list `same` benchmarks too")
    options.add_bench_options(p.add_argument, prefix="", names=("size", "cases", "threads"))
    options.add_device_option(p.add_argument)
    options.add_contender_options(p.add_argument)
    # what follows `--` is split off before parsing (`main`): argparse gives an optional
    # positional (HEAD) and a list after it nothing to match once BASE is read
    p.set_defaults(func=cmd_ab, pytest_args=[])
    p.epilog = "after --: -k EXPR selects benchmarks by id, as in pytest"

    p = sub.add_parser("report", help=REPORT_HELP, description=REPORT_HELP)
    p.add_argument("runs", nargs="+", metavar="RUN.json",
                   help="pytest-benchmark JSON files (shards of one run are merged; a directory "
                        "stands for its *.json)")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the report")
    p.add_argument("--accuracy", action="append", default=[], metavar="FILE",
                   help="accuracy file(s) from the equivalence suites (repeatable; a directory "
                        "stands for its *.json)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="compare two benchmark runs: noise-aware, normalised by "
                       "the machine", description=COMPARE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="BASE run: a pytest-benchmark JSON, or a directory of its shards")
    p.add_argument("new", help="NEW run: a pytest-benchmark JSON, or a directory of its shards")
    p.add_argument("--threshold", type=parse_threshold, default=verdict.DEFAULT_THRESHOLD,
                   help="smallest normalised change that counts, and the band of `same` "
                        f"(default {verdict.DEFAULT_THRESHOLD * 100:.0f}%%, as ab)")
    p.add_argument("--alpha", type=_probability, default=comparing.ALPHA,
                   help="significance level (default 0.01)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when any benchmark is significantly slower beyond the threshold")
    p.add_argument("--fail-ratio", type=float, default=None, metavar="R",
                   help="exit 1 only on a significant normalised slowdown of R× or more (CI: 1.5)")
    p.add_argument("--allow-env-change", action="store_true",
                   help="judge ratios even when torch, device, hardware or threads differ")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as markdown "
                   "(appended when FILE is $GITHUB_STEP_SUMMARY)")
    p.add_argument("--all", action="store_true", help="list `same` benchmarks too")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    after: list[str] | None = None
    if argv[:1] in (["ab"], ["bench"]) and "--" in argv:
        at = argv.index("--")
        argv, after = argv[:at], argv[at + 1:]
    args = build_parser().parse_args(argv)
    if after is not None:
        args.pytest_args = after
    try:
        return args.func(args)
    except (CaseError, registry.ContenderError, options.DeviceError, options.UnknownContender,
            ResultsError, OutputError, ab.AbError, ab.WorkerDied) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        where = f" while {exc}" if str(exc) else ""
        print(f"interrupted: python -m harness {args.command} stopped{where}", file=sys.stderr)
        return 130
