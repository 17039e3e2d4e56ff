"""`harness.benchmark.pooling`: K processes' runs of one benchmark set pooled into one run, each
process's rounds becoming blocks (`python -m harness bench --processes K`)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import make_run, write_run

from harness.analysis import load
from harness.benchmark.pooling import PoolingError, pool


def _with_blocks(doc: dict, stable: bool = True, reason: str = "") -> dict:
    for b in doc["benchmarks"]:
        b["extra_info"].update(blocks=4, stable=stable, unstable_reason=reason)
    doc["xentbench"] = {"schema": 1, "threads": 1, "notes": [f"note {doc['datetime']}"],
                        "failures": [], "fidelity": {"ok": True, "reason": ""}}
    return doc


def test_pooled_rounds_blocks_and_statistics(tmp_path):
    docs = [_with_blocks(make_run(seed)) for seed in range(3)]
    pooled = pool(docs)
    first = pooled["benchmarks"][0]
    rounds = [d["benchmarks"][0]["stats"]["data"] for d in docs]
    assert first["stats"]["data"] == [x for r in rounds for x in r]
    assert first["stats"]["rounds"] == 36 and first["stats"]["median"] == pytest.approx(
        np.median(first["stats"]["data"]))
    assert first["extra_info"]["blocks"] == 12 and first["extra_info"]["processes"] == 3
    assert pooled["xentbench"]["processes"] == 3 and len(pooled["xentbench"]["notes"]) == 3
    df = load.load([write_run(tmp_path / "pooled.json", pooled)])
    assert (df["rounds"] == 36).all() and (df["blocks"] == 12).all()


def _with_evidence(doc: dict, rounds: int, preempted: int, runnable: float = 1.0) -> dict:
    for b in doc["benchmarks"]:
        b["extra_info"]["stability"] = {"rounds": rounds, "preempted_rounds": preempted,
                                        "cores": 2, "runnable_median": runnable}
    return doc


def test_pooled_stability_is_judged_on_every_process_rounds_together():
    """One preempted round in a process's five is 20 % (over the rule's 10 %); in the
    pooled fifteen it is 7 %: stable. Four of 24 is 17 %: unstable, said once."""
    calm = [_with_evidence(_with_blocks(make_run(k)), 5, 0) for k in (0, 1)]
    one = _with_evidence(_with_blocks(make_run(2), False, "preempted: 1 of 5 rounds"), 5, 1)
    assert pool([*calm, one])["benchmarks"][0]["extra_info"]["stable"] is True
    busy = _with_evidence(_with_blocks(make_run(2), False, "preempted: 4 of 12"), 12, 4)
    info = pool([_with_evidence(_with_blocks(make_run(0)), 12, 0), busy])["benchmarks"][0]["extra_info"]
    assert info["stable"] is False and info["unstable_reason"].startswith("preempted: 4 of 24 rounds")


def test_an_oversubscribed_process_makes_the_pooled_benchmark_unstable():
    docs = [_with_evidence(_with_blocks(make_run(0)), 12, 0),
            _with_evidence(_with_blocks(make_run(1)), 12, 0, runnable=3.0)]
    info = pool(docs)["benchmarks"][0]["extra_info"]
    assert info["stable"] is False
    assert "oversubscribed: 3 runnable tasks on 2 cores" in info["unstable_reason"]


def test_a_failed_fidelity_check_in_any_process_is_kept():
    docs = [_with_blocks(make_run(0)), _with_blocks(make_run(1))]
    docs[1]["xentbench"]["fidelity"] = {"ok": False, "reason": "the machine was busy"}
    assert pool(docs)["xentbench"]["fidelity"]["reason"] == "the machine was busy"


def test_different_benchmark_sets_are_refused():
    a, b = make_run(0), make_run(1)
    b["benchmarks"].pop()
    with pytest.raises(PoolingError, match="same benchmarks"):
        pool([a, b])


def test_a_benchmark_failed_in_an_extra_process_is_a_failure_of_the_run_and_not_timed():
    """A contender wrong in process 2 of 3 only (say, nondeterministic): the parent's record
    of it is removed and the failure kept, marked with its process; a failure the parent
    recorded itself is not repeated; a failed timer check of any process is the run's."""
    from types import SimpleNamespace

    from harness.pytest_plugin.processes import merge_outcome

    records = [SimpleNamespace(fullname=n) for n in ("t::a", "t::b", "t::c")]
    failure = {"name": "t::b", "contender": "mine", "case_id": "n2-c3", "mode": "fwd", "error": "loss: off"}
    docs = [("2 of 3", {"xentbench": {"failures": [failure, {**failure, "name": "t::x"}],
                                      "fidelity": {"ok": True}}}),
            ("3 of 3", {"xentbench": {"failures": [failure],
                                      "fidelity": {"ok": False, "reason": "busy"}}})]
    outcome = merge_outcome(records, docs, known_failures=frozenset({"t::x"}))
    assert [r.fullname for r in records] == ["t::a", "t::c"]
    assert outcome.failures == [{**failure, "process": "2 of 3", "error": "in process 2 of 3: loss: off"}]
    assert outcome.fidelity == {"ok": False, "reason": "busy", "process": "3 of 3"}
