"""`ab`: sides (revisions in worktrees, directories), the block pairs and what drops
them, the verdict rows, the side files that report and compare read, the exit codes. No
timing is judged here: the statistics are proven in test_paired.py on synthetic pairs,
the timing itself by scripts/ab_demo.sh on real runs."""

from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness import verdict
from harness.analysis import ab_verdicts, paired, tables
from harness.analysis.load import load, validate
from harness.analysis.paired import PairedSettings
from harness.benchmark import ab, counts
from harness.benchmark.ab_record import side_document
from harness.cli import main, selection_of

ROOT = Path(__file__).resolve().parents[2]


# ---- sides ------------------------------------------------------------------------------
def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    (repo / "f.txt").write_text("one\n")
    subprocess.run(["git", "-C", str(repo), "add", "f.txt"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "one"], check=True)
    return repo


def test_a_revision_is_checked_out_into_a_worktree_that_is_removed_afterwards(tmp_path):
    repo = _repo(tmp_path)
    (repo / "f.txt").write_text("uncommitted\n")
    with ab.opened_side("BASE", "HEAD", None, repo) as side:
        assert side.commit and side.root != repo
        assert (side.root / "f.txt").read_text() == "one\n"  # the revision, not the working tree
        where = side.root
    assert not where.exists()
    listed = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True)
    assert str(where) not in listed.stdout


def test_the_working_tree_and_a_directory_are_taken_as_they_are(tmp_path):
    repo = _repo(tmp_path)
    with ab.opened_side("HEAD", None, "/some/python", repo) as side:
        assert side.root == repo and side.commit is None and side.python == "/some/python"
    with ab.opened_side("BASE", str(tmp_path), None, repo) as side:
        assert side.root == tmp_path.resolve()


def test_a_side_that_is_neither_says_so(tmp_path):
    with pytest.raises(ab.AbError, match="neither a directory nor a revision"), \
            ab.opened_side("BASE", "no-such-rev", None, _repo(tmp_path)):
        pass


def test_the_side_comes_first_on_the_path(tmp_path):
    side = ab.Side("BASE", "x", tmp_path, "python")
    parts = ab.side_env(side, Path("/caller"))["PYTHONPATH"].split(":")
    assert parts[:2] == [str(tmp_path), "/caller"]


@pytest.mark.parametrize(("args", "expr"), [
    ([], None), (["-k", "eager and fwd"], "eager and fwd"), (["-keager"], "eager"), (["-k=eager"], "eager")])
def test_selection_of_the_arguments_after_the_separator(args, expr):
    assert selection_of(args) == expr


def test_other_pytest_arguments_are_refused_with_the_reason():
    with pytest.raises(ab.AbError, match="only -k EXPR"):
        selection_of(["-x", "-k", "eager"])


def test_the_order_of_each_block_pair_is_drawn_afresh():
    rng = random.Random(0)
    orders = {tuple(rng.sample(ab.SIDES, 2)) for _ in range(40)}
    assert orders == {("BASE", "HEAD"), ("HEAD", "BASE")}


def test_rounds_per_block_follow_the_block_time():
    t = ab.Timing(block_time=0.01, min_rounds=3, max_rounds=40)
    assert t.rounds(0.001) == 10 and t.rounds(1.0) == 3 and t.rounds(1e-6) == 40


# ---- pairs ------------------------------------------------------------------------------
def _block(median: float, preempted: bool = False, k: int = 6) -> ab.Block:
    wall = [median] * k
    cpu = [median * (0.5 if preempted else 1.0)] * k
    return ab.Block(wall, cpu, [0] * k, [1, 1])


def test_a_pair_with_a_contaminated_block_is_dropped_and_counted():
    item = ab.Interleaved("x")
    item.blocks["BASE"] = [_block(1e-3), _block(1e-3, preempted=True), _block(1e-3)]
    item.blocks["HEAD"] = [_block(1.1e-3), _block(1.1e-3), _block(1.1e-3, preempted=True)]
    kept, dropped = item.pairs(threads=1, cores=2)
    assert dropped == 2 and np.allclose(kept, [math.log(1.1)])


def test_a_block_on_an_oversubscribed_machine_is_contaminated():
    busy = ab.Block([1e-3] * 6, [1e-3] * 6, [0] * 6, [4, 4])
    assert busy.stability(threads=1, cores=2).contaminated


# ---- verdicts ---------------------------------------------------------------------------
def _info(contender: str, mode: str = "fwd", ok: bool = True, error: str = "") -> dict:
    case = {"n": 256, "c": 1000}
    info = {"ok": ok, "case": case, "case_id": "n256-c1000-p0.01-f32-mean", "contender": contender,
            "family": "multiclass", "mode": mode, "dtype": "float32", "device": "cpu", "once": 1e-3,
            "bytes": 1024000}
    return info if ok else {**info, "error": error}


def _fake_run(ratios: dict[str, float], pairs: int = 30, sigma: float = 0.03,
              failures: dict[str, dict[str, str]] | None = None) -> ab.AbRun:
    rng = np.random.default_rng(0)
    results = {}
    for name, ratio in ratios.items():
        ident = f"n256-c1000-p0.01-f32-mean-{name}-fwd"
        item = ab.Interleaved(ident, rounds=6)
        failed = (failures or {}).get(name, {})
        for side in ab.SIDES:
            item.info[side] = _info(name, ok=side not in failed, error=failed.get(side, ""))
        if not failed:
            for _ in range(pairs):
                base = 1e-3 * math.exp(rng.normal(0, 0.1))  # the machine moves; both halves with it
                item.blocks["BASE"].append(_block(base))
                item.blocks["HEAD"].append(_block(base * ratio * math.exp(rng.normal(0, sigma))))
        results[ident] = item
    listed = {"threads": 1, "cores": 2, "torch": "2.13.0", "benchmarks": list(results),
              "machine_info": {"node": "vm", "cpu": {"brand_raw": "cpu"}}, "commit_info": {"id": "abc"}}
    sides = {s: ab.Side(s, s.lower(), Path("/tmp"), "python", None) for s in ab.SIDES}
    return ab.AbRun(sides, {s: dict(listed) for s in ab.SIDES}, results, {"BASE": [], "HEAD": []}, 0,
                    "2026-12-02T00:00:00+00:00", 12.0)


S = PairedSettings(0.05, 0.01)


def test_rows_put_changes_first_and_judge_each_benchmark_on_its_pairs():
    run = _fake_run({"eager": 1.0, "ext": 1.25, "module": 1.0})
    rows = ab_verdicts.judge_run(run, S)
    assert [(r["contender"], r["verdict"]) for r in rows] == [("ext", "slower"), ("eager", "same"),
                                                               ("module", "same")]
    assert rows[0]["ratio"] == pytest.approx(1.25, rel=0.03) and rows[0]["pairs"] == 30


def test_a_head_that_fails_its_check_is_broken_and_fails_the_gate_without_a_ratio():
    run = _fake_run({"eager": 1.0, "ext": 1.0}, failures={"ext": {"HEAD": "wrong against the oracle"}})
    rows = ab_verdicts.judge_run(run, S)
    assert rows[0]["verdict"] == "broken" and "oracle" in rows[0]["error"]
    assert ab_verdicts.failing(rows, None) == [rows[0]]


def test_fail_ratio_fails_only_a_slowdown_at_least_that_large():
    rows = ab_verdicts.judge_run(_fake_run({"eager": 1.0, "ext": 1.25}), S)
    assert ab_verdicts.failing(rows, 1.5) == [] and len(ab_verdicts.failing(rows, 1.2)) == 1
    assert ab_verdicts.failing(rows, None) == []


def test_every_pair_contaminated_is_unstable_and_leaves_nothing_to_judge():
    run = _fake_run({"eager": 1.0})
    item = next(iter(run.results.values()))
    item.blocks["HEAD"] = [_block(1e-3, preempted=True) for _ in item.blocks["HEAD"]]
    rows = ab_verdicts.judge_run(run, S)
    assert rows[0]["verdict"] == "unstable" and rows[0]["dropped"] == 30
    assert not ab_verdicts.judgeable(rows)


def test_the_verdict_document_and_its_tables(tmp_path):
    run = _fake_run({"eager": 1.0, "ext": 1.25})
    rows = ab_verdicts.judge_run(run, S)
    doc = json.loads(json.dumps(ab_verdicts.document(run, rows, S)))  # JSON all the way
    assert doc["counts"] == {"slower": 1, "same": 1} and doc["settings"]["grain"] == "block"
    text = tables.ab_table(doc)
    assert "slower" in text and "eager" not in text.split("summary:")[0].split("\n", 4)[-1]
    assert "1 slower, 1 same" in text
    assert max(len(line) for line in text.splitlines()[3:]) <= 120
    md = tables.ab_markdown(doc)
    assert md.startswith("### Paired benchmark comparison") and "<details>" in md


def test_each_side_is_a_run_that_report_and_compare_read(tmp_path):
    run = _fake_run({"eager": 1.0, "ext": 1.25}, failures={"module": {"HEAD": "RuntimeError: boom"}})
    run.results["n256-c1000-p0.01-f32-mean-module-fwd"] = ab.Interleaved(
        "n256-c1000-p0.01-f32-mean-module-fwd",
        info={"BASE": _info("module"), "HEAD": _info("module", ok=False, error="RuntimeError: boom")})
    docs = {}
    for side in ab.SIDES:
        docs[side] = side_document(run.sides[side], run.listed[side], run.results, run.started,
                                   {"size": "small", "device": "cpu"})
        validate(docs[side])
        (tmp_path / f"{side}.json").write_text(json.dumps(docs[side]))
    head = load([tmp_path / "HEAD.json"])
    timed = head[head["ok"].fillna(True).astype(bool)]
    assert set(timed["contender"]) == {"eager", "ext"}
    assert (timed["blocks"] == 30).all() and (timed["rounds"] == 180).all()
    assert docs["HEAD"]["xentbench"]["failures"][0]["error"] == "RuntimeError: boom"
    ext = timed[timed["contender"] == "ext"].iloc[0]
    base = load([tmp_path / "BASE.json"])
    assert ext["median"] / base[base["contender"] == "ext"].iloc[0]["median"] == pytest.approx(1.25, rel=0.1)


# ---- end to end: two directories holding one module, one contender wrong on HEAD -------
def _module(where: Path, wrong: str) -> Path:
    where.mkdir()
    (where / "abmod.py").write_text("import torch.nn.functional as F\n\n\ndef ce(input, target, **kw):\n"
                                    "    return F.cross_entropy(input, target, **kw)\n\n\n"
                                    f"def other(input, target, **kw):\n    return {wrong}\n")
    return where


def test_end_to_end_two_directories_time_judge_and_break_a_wrong_head(tmp_path, monkeypatch, capsys):
    """The one `ab` run with real workers (one session, two workers): `mine` is the same on
    both sides and is timed, judged and written; `other` is 1 % off on HEAD and is broken by
    its check against the oracle there, which fails the gate (exit 1)."""
    base = _module(tmp_path / "base", "F.cross_entropy(input, target, **kw)")
    head = _module(tmp_path / "head", "1.01 * F.cross_entropy(input, target, **kw)")
    monkeypatch.chdir(ROOT)
    # one session: the sessions' pooling is test_sessions_start_fresh_workers_and_pool_their_pairs
    code = main(["ab", str(base), str(head), "--seconds", "0.05", "--seed", "3", "--sessions", "1",
                 "--out", str(tmp_path / "out"), "--contender", "mine=abmod:ce",
                 "--contender", "other=abmod:other", "--only", "mine", "--only", "other",
                 "--", "-k", "n256-c1000 and not fwd_bwd"])
    out = capsys.readouterr()
    assert code == 1, out.out + out.err
    doc = json.loads((tmp_path / "out" / "ab.json").read_text())
    rows = {r["benchmark"].split("-")[-2]: r for r in doc["rows"]}
    assert rows["other"]["verdict"] == "broken", rows
    assert "oracle" in rows["other"]["error"] and "FAIL" in out.err
    # a verdict of timing is not asserted for mine (a busy CI machine may leave it unstable):
    # only that its pairs were made, judged, and written
    assert rows["mine"]["verdict"] != "broken", rows
    assert rows["mine"]["pairs"] + rows["mine"]["dropped"] >= ab.Timing.min_pairs
    assert doc["seed"] == 3 and doc["sides"]["HEAD"]["root"] == str(head)
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"ab.json", "base.json", "head.json",
                                                             "base-worker.log", "head-worker.log"}
    validate(json.loads((tmp_path / "out" / "head.json").read_text()))


def test_a_wrong_head_is_broken_and_exits_1(tmp_path, monkeypatch, capsys):
    """The command on fake workers: HEAD's check fails, the row is broken, exit 1."""
    base, head = FakeWorker(["c-ext-fwd"], 1e-3), FakeWorker(["c-ext-fwd"], 1e-3, fail=["c-ext-fwd"])
    _fake_workers(monkeypatch, base, head)
    (tmp_path / "b").mkdir()
    (tmp_path / "h").mkdir()
    code = main(["ab", str(tmp_path / "b"), str(tmp_path / "h"), "--seconds", "0.001", "--seed", "3",
                 "--sessions", "1", "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 1, out.out + out.err
    doc = json.loads((tmp_path / "out" / "ab.json").read_text())
    assert [r["verdict"] for r in doc["rows"]] == ["broken"] and doc["rows"][0]["error"] == "HEAD: boom"
    assert "FAIL: 1 benchmark(s): broken c-ext-fwd" in out.err
    assert doc["seed"] == 3 and doc["sides"]["HEAD"]["root"] == str(tmp_path / "h")
    # the shared default, and the method that judged, said as compare says its own
    assert doc["settings"]["threshold"] == verdict.DEFAULT_THRESHOLD
    assert f"judged by {verdict.PAIRED}" in out.out and "threshold 10%" in out.out


def test_no_benchmark_in_common_is_exit_2_with_one_line(tmp_path, monkeypatch, capsys):
    _fake_workers(monkeypatch, FakeWorker(["c-eager-fwd"], 1e-3), FakeWorker(["c-other-fwd"], 1e-3))
    (tmp_path / "b").mkdir()
    code = main(["ab", str(tmp_path / "b"), str(tmp_path / "b"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "no benchmark in common" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_selection_of_nothing_is_one_line_before_any_worker_starts(tmp_path, monkeypatch, capsys):
    """Seen: a -k matching nothing ran 21 s of workers, then printed an empty table."""
    def no_workers(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(ab, "workers", no_workers)
    monkeypatch.setattr(counts, "count_both", no_workers)
    # landmarks only: drawing the generated cases is most of this test's time, and beside the point
    code = main(["ab", str(tmp_path), str(tmp_path), "--instructions", "--out", str(tmp_path / "out"),
                 "--cases", "landmarks", "--", "-k", "n256-c1000 and no_such_contender"])
    err = capsys.readouterr().err
    assert code == 2 and "selects none of the" in err and "CASE-CONTENDER-MODE" in err, err
    assert len(err.strip().splitlines()) == 1, err
    # a --contender counts by its NAME, unimported (its module may be on a side's path only)
    ab.check_selection({"select": "n256-c1000 and mine", "cases": "landmarks",
                        "contender": ["mine=not_importable_here:ce"]})
    with pytest.raises(ab.AbError, match="not a pytest -k expression"):
        ab.check_selection({"select": "eager and (", "cases": "landmarks"})


def test_pair_maps_each_old_benchmark_to_the_new_contender_on_the_same_case_and_mode():
    names = ["c1-old-fwd", "c1-old-fwd_bwd", "c1-new-fwd", "c2-old-fwd", "c1-eager-fwd"]
    assert ab.paired_names(names, ("old", "new")) == {"c1-old-fwd": "c1-new-fwd"}
    same = ab.paired_names(names[:2], None)
    assert same == {"c1-old-fwd": "c1-old-fwd", "c1-old-fwd_bwd": "c1-old-fwd_bwd"}


def test_pair_needs_two_names_and_one_side(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit):
        main(["ab", "--pair", "same=same"])
    assert main(["ab", "HEAD", "HEAD", "--pair", "a=b", "--out", str(tmp_path)]) == 2
    assert "at most one side" in capsys.readouterr().err


# ---- instruction counts -----------------------------------------------------------------
def test_counts_read_callgrind_dumps_in_the_order_written(tmp_path):
    for i, n in ((1, 10), (2, 20), (10, 30)):
        dump = f"version: 1\ncmd: python\nevents: Ir\nsummary: {n}\ntotals: {n}\n"
        (tmp_path / f"cg.out.{i}").write_text(dump)
    (tmp_path / "cg.out").write_text("totals: 0\n")  # the process's own final dump
    assert [counts.total(p) for p in counts._dumps(tmp_path)] == [10, 20, 30]
    (tmp_path / "bad").write_text("nothing")
    with pytest.raises(ValueError, match="no totals"):
        counts.total(tmp_path / "bad")


def test_counts_say_why_they_cannot_run(monkeypatch):
    monkeypatch.setattr(counts.shutil, "which", lambda tool: None)
    assert "valgrind is not installed" in counts.unavailable()


def _instr_rows(ratios: dict[str, float], counted_ratio: dict[str, float]):
    run = _fake_run(ratios)
    rows = ab_verdicts.judge_run(run, S)
    counted = {"BASE": {}, "HEAD": {}}
    for r in rows:
        name = r["contender"]
        counted["BASE"][r["benchmark"]] = [1e6, 1.001e6, 0.999e6]
        counted["HEAD"][r["benchmark"]] = ([1e6 * counted_ratio[name]] * 3 if name in counted_ratio
                                           else "not counted: valgrind died")
    return ab_verdicts.with_instructions(rows, counted, S)


def test_instructions_agreeing_with_wall_time_say_so():
    rows = {r["contender"]: r for r in _instr_rows({"ext": 1.25, "eager": 1.0}, {"ext": 1.25, "eager": 1.0})}
    assert rows["ext"]["verdict"] == "slower" and rows["ext"]["by"] == "wall time + instructions"
    assert rows["ext"]["instr_ratio"] == pytest.approx(1.25)
    assert rows["eager"]["by"] == "wall time + instructions"


def test_instructions_decide_where_wall_time_could_not():
    run = _fake_run({"ext": 1.10}, pairs=6)  # too few pairs for the signed-rank test
    rows = ab_verdicts.judge_run(run, S)
    assert rows[0]["verdict"] == "too few" and rows[0]["note"] == "wall time: too few pairs (6 of 8 needed)"
    counted = {"BASE": {rows[0]["benchmark"]: [1e6] * 3}, "HEAD": {rows[0]["benchmark"]: [1.12e6] * 3}}
    (row,) = ab_verdicts.with_instructions(rows, counted, S)
    assert (row["verdict"], row["by"]) == ("slower", "instructions")


def test_counts_judge_a_benchmark_whose_every_pair_was_contaminated_and_the_gate_follows_them():
    """Seen: `slower instr 1.288×`, then "no pairs left to judge", exit 2: the count's
    verdict was thrown away because the gate read only wall time's ratio."""
    run = _fake_run({"ext": 1.0})
    (item,) = run.results.values()
    item.blocks["HEAD"] = [_block(1e-3, preempted=True) for _ in item.blocks["HEAD"]]
    rows = ab_verdicts.judge_run(run, S)
    counted = {"BASE": {item.ident: [1e6] * 3}, "HEAD": {item.ident: [1.2e6] * 3}}
    (row,) = ab_verdicts.with_instructions(rows, counted, S)
    assert (row["verdict"], row["by"], row["ratio"]) == ("slower", "instructions", None)
    assert row["note"] == "wall time: every pair contaminated (30 dropped)"
    assert ab_verdicts.judgeable([row])
    assert ab_verdicts.failing([row], 1.1) == [row] and ab_verdicts.failing([row], 1.3) == []
    assert "wall time: every pair contaminated" in tables.ab_table(ab_verdicts.document(run, [row], S))


def test_a_wall_time_change_without_more_instructions_is_kept_and_explained():
    rows = {r["contender"]: r for r in _instr_rows({"ext": 1.25}, {"ext": 1.0})}
    assert rows["ext"]["verdict"] == "slower" and rows["ext"]["by"] == "wall time"
    assert "memory" in rows["ext"]["instr_note"]


def test_a_side_not_counted_leaves_the_wall_time_verdict_and_the_reason():
    rows = {r["contender"]: r for r in _instr_rows({"ext": 1.25}, {})}
    assert rows["ext"]["verdict"] == "slower" and rows["ext"]["instr_ratio"] is None
    assert "valgrind died" in rows["ext"]["instr_note"]


# ---- the controller, with workers that answer from numbers ------------------------------
class FakeWorker:
    """Answers the worker protocol: ``benchmarks`` listed, blocks of ``k`` rounds around
    ``median`` (with a little noise), ``fail`` for prepare errors."""

    def __init__(self, benchmarks, median, fail=(), seed=0):
        self.benchmarks, self.median, self.fail = benchmarks, median, set(fail)
        self.rng, self.log, self.calls = np.random.default_rng(seed), "fake.log", []

    def call(self, **msg):
        self.calls.append(msg)
        if msg["op"] == "list":
            return {"ok": True, "benchmarks": self.benchmarks, "threads": 1, "cores": 2, "torch": "x"}
        if msg["op"] == "prepare":
            info = _info(msg["id"].split("-")[-2], mode=msg["id"].split("-")[-1])
            return {**info, "ok": False, "error": "boom"} if msg["id"] in self.fail else info
        k = msg["rounds"]
        wall = list(self.median * np.exp(self.rng.normal(0, 0.01, k)))
        return {"ok": True, "wall": wall, "cpu": wall, "switches": [0] * k, "runnable": [1, 1]}


def _fake_workers(monkeypatch, base, head, started: list | None = None) -> None:
    import contextlib

    @contextlib.contextmanager
    def fake_workers(sides, out_dir, caller_dir, shared=False):
        if started is not None:
            started.append(shared)
        yield {"BASE": base, "HEAD": base if shared else head}

    monkeypatch.setattr(ab, "workers", fake_workers)


def _run_with(monkeypatch, base, head, started: list | None = None, **kwargs):
    _fake_workers(monkeypatch, base, head, started)
    sides = {s: ab.Side(s, s, Path("/tmp"), "python") for s in ab.SIDES}
    kwargs.setdefault("sessions", 1)
    return ab.run_ab(sides, {}, ab.Timing(seconds=0.0, min_pairs=10), Path("/tmp"), 1, Path("/tmp"),
                     say=lambda _: None, **kwargs)


def test_the_controller_alternates_the_sides_and_keeps_only_common_benchmarks(monkeypatch):
    names = ["c-eager-fwd", "c-ext-fwd"]
    base, head = FakeWorker(names, 1e-3), FakeWorker([*names, "c-new-fwd"], 1.2e-3)
    run = _run_with(monkeypatch, base, head)
    assert list(run.results) == names and run.only_in["HEAD"] == ["c-new-fwd"]
    blocks = [m for m in base.calls if m["op"] == "block"]
    assert len(blocks) == 20 and {m["id"] for m in blocks} == set(names)
    rows = ab_verdicts.judge_run(run, S)
    assert {r["verdict"] for r in rows} == {"slower"}


def test_until_decided_adds_pairs_to_the_undecided_within_the_budget(monkeypatch):
    base, head = FakeWorker(["c-eager-fwd"], 1e-3), FakeWorker(["c-eager-fwd"], 1e-3)
    asked = []

    def still_undecided(run):
        asked.append(len(run.results["c-eager-fwd"].blocks["BASE"]))
        return ["c-eager-fwd"] if len(asked) < 3 else []

    run = _run_with(monkeypatch, base, head, undecided=still_undecided, budget=60.0)
    assert asked == [10, 20, 30] and len(run.results["c-eager-fwd"].blocks["HEAD"]) == 30


def test_a_pair_of_contenders_runs_in_one_worker(monkeypatch):
    one = FakeWorker(["c-old-fwd", "c-new-fwd", "c-eager-fwd"], 1e-3)
    run = _run_with(monkeypatch, one, None, pair=("old", "new"))
    (item,) = run.results.values()
    assert (item.ident, item.head_ident) == ("c-old-fwd", "c-new-fwd")
    assert {m["id"] for m in one.calls if m["op"] == "block"} == {"c-old-fwd", "c-new-fwd"}
    assert [m.get("keep") for m in one.calls if m["op"] == "prepare"] == [False, True]


def test_a_side_whose_check_fails_is_not_timed(monkeypatch):
    base, head = FakeWorker(["c-ext-fwd"], 1e-3), FakeWorker(["c-ext-fwd"], 1e-3, fail=["c-ext-fwd"])
    run = _run_with(monkeypatch, base, head)
    assert run.results["c-ext-fwd"].failed == {"HEAD": "boom"}
    assert not [m for m in base.calls if m["op"] == "block"]


def test_sessions_start_fresh_workers_and_pool_their_pairs(monkeypatch):
    base, head = FakeWorker(["c-eager-fwd"], 1e-3), FakeWorker(["c-eager-fwd"], 1.2e-3)
    started = []
    run = _run_with(monkeypatch, base, head, started=started, sessions=3)
    assert len(started) == 3 and run.sessions == 3
    item = run.results["c-eager-fwd"]
    assert len(item.blocks["BASE"]) == 30
    blocks = [m["rounds"] for m in base.calls if m["op"] == "block"]
    assert len(set(blocks)) == 1  # later sessions keep the first one's block size


def test_a_check_failing_only_in_a_later_session_fails_the_benchmark(monkeypatch):
    class Flaky(FakeWorker):
        def call(self, **msg):
            if msg["op"] == "prepare" and sum(m["op"] == "prepare" for m in self.calls) == 1:
                self.fail = {msg["id"]}
            return super().call(**msg)

    base, head = FakeWorker(["c-ext-fwd"], 1e-3), Flaky(["c-ext-fwd"], 1e-3)
    run = _run_with(monkeypatch, base, head, sessions=2)
    assert run.results["c-ext-fwd"].failed == {"HEAD": "boom"}
    assert ab_verdicts.judge_run(run, S)[0]["verdict"] == "broken"


class BusyWorker(FakeWorker):
    """A FakeWorker whose blocks are preempted (contaminated) while ``busy(n)`` holds for
    the n-th block it times."""

    def __init__(self, benchmarks, median, busy=lambda n: True):
        super().__init__(benchmarks, median, seed=1)  # not BASE's noise: tied ratios test another way
        self.busy, self.timed = busy, 0

    def call(self, **msg):
        reply = super().call(**msg)
        if msg["op"] == "block":
            self.timed += 1
            if self.busy(self.timed):
                reply["cpu"] = [w * 0.5 for w in reply["wall"]]
        return reply


@pytest.mark.parametrize(("busy", "verdict", "clean"), [
    (lambda n: n <= 11, "slower", 8),   # 10 contaminated pairs, then clean ones: topped up to 8
    (lambda n: n % 5, "too few", 4),    # 1 pair in 5 clean: 20 pairs leave 4 of the 8 needed
])
def test_pairs_are_added_up_to_the_fewest_the_test_needs_before_judging(monkeypatch, busy, verdict, clean):
    base, head = FakeWorker(["c-ext-fwd"], 1e-3), BusyWorker(["c-ext-fwd"], 1.2e-3, busy)
    _fake_workers(monkeypatch, base, head)
    sides = {s: ab.Side(s, s, Path("/tmp"), "python") for s in ab.SIDES}
    needed = paired.fewest_pairs(S.alpha)
    run = ab.run_ab(sides, {}, ab.Timing(seconds=5.0, min_pairs=10, max_pairs=10), Path("/tmp"), 1,
                    Path("/tmp"), say=lambda _: None, sessions=1, needed=needed)
    kept, dropped = run.results["c-ext-fwd"].pairs(run.threads, run.cores)
    assert len(kept) == clean and len(kept) + dropped <= 20
    (row,) = ab_verdicts.judge_run(run, S)
    assert row["verdict"] == verdict
    if verdict == "too few":
        assert f"too few pairs ({clean} of {needed} needed; 16 dropped" in row["note"]


@pytest.mark.parametrize(("instructions", "head_count", "code"), [
    (True, 1.2e6, 1),    # slower by the counts, 1.2x >= --fail-ratio 1.1: the gate fails
    (True, 1.0e6, 0),    # the same by the counts (an A/A beside busy loops): passes
    (False, None, 2),    # no counts: nothing could be judged, one line saying how to get a verdict
])
def test_with_every_pair_contaminated_the_exit_code_follows_the_counts(tmp_path, monkeypatch, capsys,
                                                                       instructions, head_count, code):
    _fake_workers(monkeypatch, BusyWorker(["c-ext-fwd"], 1e-3), BusyWorker(["c-ext-fwd"], 1e-3))
    monkeypatch.setattr(counts, "unavailable", lambda: None)
    monkeypatch.setattr(counts, "count_both", lambda sides, idents, *a, **k: {
        "BASE": {"c-ext-fwd": [1e6] * 3}, "HEAD": {"c-ext-fwd": [head_count] * 3}})
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path)  # the user's own directory: results go under it
    got = main(["ab", "b", "b", "--seconds", "0.001", "--sessions", "1", "--fail-ratio", "1.1",
                *(["--instructions"] if instructions else [])])
    out = capsys.readouterr()
    assert got == code, out.out + out.err
    (written,) = (tmp_path / "results" / "ab").glob("*/ab.json")
    (row,) = json.loads(written.read_text())["rows"]
    assert row["note"].startswith("wall time: every pair contaminated")
    assert "nan" not in out.out
    if code == 2:
        assert len(out.err.strip().splitlines()) == 1 and "--instructions" in out.err, out.err
        assert "quieter machine" in out.err and "--until-decided" in out.err
    else:
        assert row["by"] == "instructions"


def test_no_benchmark_in_common_starts_no_further_session(monkeypatch):
    """Nothing to time after the first listing: the other sessions' workers are not started
    (`ab` with nothing in common took three sessions of two workers, 26-39 s, to say so)."""
    base, head = FakeWorker(["c-eager-fwd"], 1e-3), FakeWorker(["c-other-fwd"], 1e-3)
    started = []
    run = _run_with(monkeypatch, base, head, started=started, sessions=3)
    assert len(started) == 1 and not run.results
    assert run.only_in == {"BASE": ["c-eager-fwd"], "HEAD": ["c-other-fwd"]}
