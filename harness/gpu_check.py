"""The GPU check: one command of about 6 minutes that brings back, from a 15-minute lease,
the versions, the fused kernels' correctness at their real tiles, the headline table
(``bench --cases headline``), a narrowed landmark bench and an A/A pair, each stage under
its own deadline and packed as it ends (`harness.stages`). ``scripts/gpu_check.sh OUT``
runs it; ``DEVICE=cpu`` runs the same plan at tiny sizes with the same deadlines, packing
and summary (the CI dry run, `suites/harness/test_gpu_check.py`).

    python -m harness.gpu_check OUT [--device cuda|cpu] [--work DIR] [--scale S]
    python -m harness.gpu_check env WORK      # the first stage alone: versions and clocks

Stage deadlines (seconds) are the plan's budget; ``--scale`` multiplies them (a test
shrinks them to prove that a stopped stage still leaves its files). docs/benchmarking.md,
'The GPU check', gives the expected time of each stage.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import machine, options
from harness.atomic import atomic_write_text
from harness.stages import ARCHIVE, SUMMARY, Stage, run_plan

ROOT = Path(__file__).resolve().parents[1]
COMMIT_FILE = ROOT / ".gpu-check" / "commit"  # written before the call: the copy has no .git
HEADLINE_RUN = "bench-headline.json"  # the table stage's run; also copied to OUT beside the archive
# Seconds per stage on CUDA: 6 minutes in all, leaving a rerun's room in a 15-minute lease.
DEADLINES = {"env": 20, "fused": 90, "table": 140, "landmarks": 60, "aa": 50}
PACKAGES = ("torch", "triton", "pytest", "pytest-benchmark", "hypothesis", "pandas", "numpy",
            "nvidia-ml-py", "liger-kernel", "pytest-xdist", "pytest-timeout")
# The landmark bench's contenders: the ones the mission compares, not all fifteen.
# (Compiled contenders are in the headline stage: their compiles would eat this stage's minute.)
LANDMARK_CONTENDERS = ("eager", "fused_triton", "liger", "bce_logits", "fused_triton_binary")
# The headline's contenders: what its table compares with (eager, compiled, Liger) and the
# harness's fused kernels, of both families
HEADLINE_CONTENDERS = ("eager", "compiled_eager", "fused_triton", "liger", "bce_logits",
                       "compiled_bce_logits", "fused_triton_binary")
# On CPU the dry run times only the seed's case with eager, given and per-call weights: the
# plumbing, in seconds (compiles on 2 cores would take the stage's deadline)
HEADLINE_CPU_SELECTION = "n2-c2-64x64 and eager and not compiled"
# The A/A pair: the seed's large case on CUDA (64 × 2 × 1024 × 1024, L2 flushed), the
# classification landmark on CPU.
AA_SELECTION = {"cuda": "n64-c2-1024x1024 and eager and not compiled and fwd_bwd",
                "cpu": "n256-c1000 and eager and not compiled and fwd_bwd"}


# ---- the first stage: versions, clocks, the commit ---------------------------------------
def versions() -> dict[str, str | None]:
    return machine.versions(PACKAGES)


def device_facts() -> dict:
    import torch

    facts: dict = {"cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    found = machine.gpu(torch)
    if found is not None:
        facts.update(name=found["name"], capability=found["capability"],
                     memory_gib=round(found["memory_bytes"] / 2**30, 1),
                     l2_bytes=found["l2_bytes"], sms=found["sms"])
    facts["clocks"] = _smi("clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,"
                           "clocks_throttle_reasons.active,power.draw,temperature.gpu")
    facts["driver"] = machine.driver()
    return facts


def _smi(query: str) -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv"],
                          capture_output=True, text=True, timeout=20)
    return done.stdout.strip() or done.stderr.strip() or None


def imports() -> dict[str, str]:
    """Whether each optional module the check uses imports here (Liger comes as a carried
    wheel: a broken install must show in the first seconds, not as a skipped row)."""
    out = {}
    for module in ("triton", "liger_kernel.ops.cross_entropy", "pynvml"):
        try:
            __import__(module)
            out[module] = "ok"
        except Exception as exc:
            out[module] = f"{type(exc).__name__}: {exc}"
    return out


def commit() -> str | None:
    try:
        return COMMIT_FILE.read_text().strip() or None
    except OSError:
        return None


def env_stage(work: Path) -> int:
    """Print and save (``env.json``) what the rest of the check runs on."""
    from harness.benchmark.gpu_state import gpu_state

    report = {"commit": commit(), "versions": versions(), "imports": imports(),
              "device": device_facts(), "gpu_state": gpu_state().as_dict()}
    atomic_write_text(work / "env.json", json.dumps(report, indent=1, default=str))
    for line in env_lines(work):
        print(line)
    old = report["versions"].get("pytest-benchmark")
    if old and tuple(int(p) for p in old.split(".")[:2]) < (5, 2):
        print(f"pytest-benchmark {old} < 5.2: carry its wheel (scripts/gpu_check.sh installs it)")
        return 1
    return 0


def env_lines(work: Path) -> list[str]:
    report = json.loads((work / "env.json").read_text())
    v, dev = report["versions"], report["device"]
    lines = [f"commit {report['commit'] or 'unknown (no .gpu-check/commit)'}",
             "  ".join(f"{k} {v[k] or '-'}" for k in ("python", "torch", "triton", "pytest",
                                                        "pytest-benchmark", "hypothesis")),
             "  ".join(f"{k} {v[k] or '-'}" for k in ("pandas", "numpy", "nvidia-ml-py",
                                                        "liger-kernel"))]
    if dev.get("name"):
        lines.append(f"{dev['name']} (sm {dev['capability']}, {dev['memory_gib']} GiB, "
                     f"L2 {dev.get('l2_bytes')} B, {dev.get('sms')} SMs), CUDA {dev['torch_cuda']}")
    else:
        lines.append("no CUDA device")
    if dev.get("clocks"):
        lines.append("clocks: " + " | ".join(dev["clocks"].splitlines()[1:]))
    lines += [f"import {m}: {s}" for m, s in report["imports"].items() if s != "ok"]
    return lines


# ---- the other stages' summaries ---------------------------------------------------------
def junit_lines(xml: Path) -> list[str]:
    """Counts and the first failures of a JUnit XML (pytest writes it on SIGINT too)."""
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    lines = [", ".join(f"{v} {k}" for k, v in counts.items())]
    for case in suite.iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None and len(lines) < 11:
            message = (bad.get("message") or "").splitlines()[:1]
            lines.append(f"FAILED {case.get('name')}: {message[0][:160] if message else ''}")
    return lines


def bench_lines(path: Path) -> list[str]:
    """One line per timed benchmark: median, share of the copy bandwidth, stability."""
    doc = json.loads(path.read_text())
    rows = []
    for b in doc.get("benchmarks", []):
        info, median = b.get("extra_info", {}), b["stats"]["median"]
        pct = info.get("peak_bw_pct")
        flags = [] if info.get("stable", True) else ["UNSTABLE"]
        flags += ["launch-bound"] if info.get("launch_bound") else []
        rows.append(f"{b['name'].split('[', 1)[-1].rstrip(']'):<60} {median * 1e3:9.3f} ms "
                    f"{'' if pct is None else f'{pct:5.1f} % of copy'} {' '.join(flags)}")
    return rows + _failure_lines(doc) or ["no benchmark timed"]


def ab_lines(folder: Path) -> list[str]:
    """The A/A pair's verdict per benchmark: identical code should read `same`."""
    doc = json.loads((folder / "ab.json").read_text())
    return [f"{r['benchmark']}: {r['verdict']} (ratio {r['ratio']:.3f}, 95 % "
            f"{r['low']:.3f}-{r['high']:.3f}, {r['pairs']} pairs, {r['dropped']} dropped, "
            f"by {r['by']})" if r.get("ratio") is not None else
            f"{r['benchmark']}: {r['verdict']} ({r.get('error') or 'no ratio'})"
            for r in doc.get("rows", [])] or ["no pair judged"]


def table_lines(path: Path) -> list[str]:
    """The headline run as the summary shows it: one line per benchmark, fastest first in
    each case and mode, with its share of the copy, speedups against eager, compiled and
    Liger, and its error as a share of the tolerance bound; then what was not timed."""
    from harness.analysis import report
    from harness.analysis.load import load

    view = report.headline_view(report.enrich(load([path])))
    rows = [_headline_line(r) for r in view.itertuples()]
    rows += report.headline_missing_lines(view) if len(view) else []
    return rows + _failure_lines(json.loads(path.read_text())) or ["no benchmark timed"]


def _failure_lines(doc: dict) -> list[str]:
    """A run's benchmarks that raised or failed their check (``xentbench.failures``)."""
    return [f"FAILED {f['contender']} {f['case_id']} {f['mode']}: {f['error'][:120]}"
            for f in (doc.get("xentbench") or {}).get("failures", [])]


def _headline_line(r) -> str:
    from harness.analysis.tables import fmt_num, fmt_speedup

    return (f"{r.headline + ' ' + r.mode:<34} {r.contender:<20} {r.median * 1e3:9.3f} ms "
            f"{fmt_num(r.peak_bw_pct)} % of copy  ×eager {fmt_speedup(r.x_eager)}  ×compiled "
            f"{fmt_speedup(r.x_compiled)}  ×Liger {fmt_speedup(r.x_liger)}  error/bound "
            f"{fmt_num(getattr(r, 'error_of_bound', None), least=2)}")


# ---- the plan ----------------------------------------------------------------------------
def plan(device: str, work: Path, scale: float = 1.0, python: str = sys.executable) -> list[Stage]:
    """The stages in order: what matters most, and is cheapest, first."""
    cuda = device == "cuda"
    d = {name: seconds * scale for name, seconds in DEADLINES.items()}
    only = [f"--only={name}" for name in LANDMARK_CONTENDERS]
    # the GPU-tile and vocabulary cases first: the stage's deadline may not reach the rest
    fused_tests = ["suites/harness/test_fused_gpu_tiles.py", "suites/harness/test_fused.py",
                   "suites/harness/test_bce.py"]
    return [
        Stage("env", [python, "-m", "harness.gpu_check", "env", str(work)], d["env"],
              lambda w: env_lines(w)),
        Stage("fused", [python, "-m", "pytest", *fused_tests, f"--device={device}", "-q",
                        "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
                        "--hypothesis-profile=ci", f"--junitxml={work / 'fused.xml'}",
                        *([] if cuda else ["-k", "gpu_tile_switch or depend_on_the_class"])],
              d["fused"], lambda w: junit_lines(w / "fused.xml")),
        Stage("table", [python, "-m", "harness", "bench", f"--device={device}",
                        f"--size={'full' if cuda else 'small'}", "--cases=headline", "--passes=1",
                        "--processes=1", f"--deadline={max(d['table'] - 20, 1):g}",
                        f"--out={work / HEADLINE_RUN}",
                        *(f"--only={name}" for name in HEADLINE_CONTENDERS), "--",
                        "--bench-round-time=0.2" if cuda else "--bench-round-time=0.02",
                        *([] if cuda else ["-k", HEADLINE_CPU_SELECTION])],
              d["table"], lambda w: table_lines(w / HEADLINE_RUN)),
        Stage("landmarks", [python, "-m", "harness", "bench", f"--device={device}",
                            f"--size={'full' if cuda else 'small'}", "--cases=landmarks",
                            "--passes=1", "--processes=1", f"--deadline={max(d['landmarks'] - 20, 1):g}",
                            f"--out={work / 'bench-landmarks.json'}", *only, "--",
                            "--bench-round-time=0.2" if cuda else "--bench-round-time=0.02",
                            *([] if cuda else ["-k", "n256-c1000"])],
              d["landmarks"], lambda w: bench_lines(w / "bench-landmarks.json")),
        Stage("aa", [python, "-m", "harness", "ab", str(ROOT), str(ROOT), f"--device={device}",
                     f"--size={'full' if cuda else 'small'}", "--cases=landmarks", "--sessions=2",
                     f"--seconds={max(d['aa'] - 30, 1) if cuda else 1:g}", "--all",
                     f"--out={work / 'aa'}", "--", "-k", AA_SELECTION[device]],
              # exit 2: no pair could be judged (a busy machine): a result, with its ab.json
              d["aa"], lambda w: ab_lines(w / "aa"), accept=(0, 2)),
    ]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["env"]:
        return env_stage(Path(argv[1]))
    ap = argparse.ArgumentParser(prog="python -m harness.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help=f"where {ARCHIVE} and {SUMMARY} go (nothing else)")
    options.add_device_option(ap.add_argument)
    ap.add_argument("--work", type=Path, default=None, help="the stages' own files (default: a "
                    "temporary folder; everything in it is packed into the archive)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every stage's deadline")
    args = ap.parse_args(argv)
    device = options.resolve_device(args.device).split(":")[0]
    work = args.work or Path(tempfile.mkdtemp(prefix="xentbench-gpu-check-"))
    title = f"xentbench GPU check on {device} (deadlines ×{args.scale:g}); work {work}"
    outcomes = run_plan(title, plan(device, work, args.scale), work, args.out,
                        also=(HEADLINE_RUN,))
    print((args.out / SUMMARY).read_text())
    return 0 if all(o.accepted for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
