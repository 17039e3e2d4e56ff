"""The one selection of benchmarks (`harness.benchmark.selection`): the items and their ids
in the suite's order, ``--only``, the skip chain, and ``-k`` as pytest reads it (pinned
here, since it is pytest's private parser: an upgrade that moves or changes it fails
these tests, not an ``ab`` run)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import contenders as registry
from harness.benchmark import selection, worker
from harness.benchmark.case_sets import MODES, bench_cases
from harness.gpu_check import AA_SELECTION
from harness.problem.families import FAMILIES

A = SimpleNamespace(id="n8-c2-f32", family="multiclass")
B = SimpleNamespace(id="n8-p0.5-f16", family="binary")
NAMES = {"multiclass": ["eager", "compiled_eager"], "binary": ["bce_logits"]}


def _ids(select: str | None = None, only=()) -> list[str]:
    return [b.id for b in selection.benchmarks([A, B], NAMES, ("fwd", "fwd_bwd"), only, select)]


def test_every_case_contender_and_mode_in_the_suites_order():
    assert _ids() == ["n8-c2-f32-eager-fwd", "n8-c2-f32-eager-fwd_bwd",
                      "n8-c2-f32-compiled_eager-fwd", "n8-c2-f32-compiled_eager-fwd_bwd",
                      "n8-p0.5-f16-bce_logits-fwd", "n8-p0.5-f16-bce_logits-fwd_bwd"]
    assert _ids(only={"eager"}) == ["n8-c2-f32-eager-fwd", "n8-c2-f32-eager-fwd_bwd"]


@pytest.mark.parametrize(("select", "kept"), [
    ("eager", 4),                        # a substring: compiled_eager too
    ("EAGER and FWD_BWD", 2),            # case-insensitive, and
    ("eager and not compiled", 2),       # not
    ("bce or compiled", 4),              # or
    ("not (eager or bce)", 0),           # parentheses
    ("not eager and fwd or bce", 2),     # not binds tighter than and, and than or
    ("n8-c2-f32-eager-fwd", 2),          # a whole id is a substring of its own and of -fwd_bwd's
    ("test_bench.py", 6),                # the module's name is one of the test's names
    ("test_bench[n8-p0.5", 2),           # so is the test's, brackets and all
])
def test_k_keeps_what_pytest_keeps(select, kept):
    assert len(_ids(select)) == kept, _ids(select)


@pytest.mark.parametrize("select", ["eager and (", "and eager", "eager or", "(eager"])
def test_a_k_pytest_refuses_is_a_syntax_error(select):
    with pytest.raises(SyntaxError):
        selection.keyword_match(select)


def test_the_skip_chain_asks_capabilities_then_theory_then_the_contender():
    eager = next(c for c in registry.resolve("multiclass") if c.name == "eager")
    case = bench_cases("small", "cpu", "landmarks")[0]
    assert selection.skip_reason(eager, case, "cpu") is None
    untimed = dataclasses.replace(eager, why_untimed=lambda: "interpreted here")
    assert selection.skip_reason(untimed, case, "cpu") == "eager: interpreted here"
    outside = SimpleNamespace(name="x", skip_reason=lambda c, d: "no weights",
                              untimed_reason=lambda: "never asked")
    assert selection.skip_reason(outside, case, "cpu") == "no weights"


def test_abs_worker_loads_the_controllers_selection_beside_its_own_file(monkeypatch):
    """A side's harness (first on sys.path in the worker) may predate the module."""
    monkeypatch.delitem(sys.modules, "_xentbench_selection", raising=False)
    loaded = worker._selection()
    assert Path(loaded.__file__) == Path(worker.__file__).with_name("selection.py")
    assert loaded.benchmarks([A], NAMES, MODES, (), "eager and not compiled")


@pytest.mark.parametrize(("device", "size"), [("cpu", "small"), ("cuda", "full")])
def test_the_gpu_checks_aa_selection_keeps_one_benchmark(device, size):
    """gpu_check's A/A stage (``ab --cases=landmarks -k AA_SELECTION``) times one pair."""
    names = {f: [c.name for c in registry.resolve(f)] for f in FAMILIES}
    kept = selection.benchmarks(bench_cases(size, device, "landmarks"), names, MODES,
                                select=AA_SELECTION[device])
    assert [(b.contender, b.mode) for b in kept] == [("eager", "fwd_bwd")], kept
