"""Every kind of case a contender declares is reached by each property test and by
`check` (`harness.problem.coverage`), whatever the draw: a loss 1 % off on one value of
one dimension (`coverage_toys.py`: 3-D inputs, unbatched ones, half precision, 'sum',
weights, ignored targets, smoothing, probabilities, masked logits, strided logits, a
vocabulary-sized C), and a binary loss whose mean divides by the positions with a non-zero
weight, are caught by the suite under the ``ci`` profile and by ``check``."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import coverage_toys
import pytest
from coverage_toys import TOYS
from test_external import clean_env

from harness import contenders as registry
from harness.contenders import Contender
from harness.equivalence.properties import PROPERTIES
from harness.equivalence.verdicts import check_contenders, summarise
from harness.problem import coverage
from harness.problem.case import Case

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EAGER_COVERING = "fd4741432a5527bf"
SPECS = [f"--contender=off_{name}=coverage_toys:off_{name}" for name in TOYS] + [
    "--binary-contender=meanw=coverage_toys:bce_mean_over_weighted"]


@pytest.mark.parametrize("name", [c.name for c in registry.builtins()])
def test_the_covering_cases_reach_every_declared_pair(name):
    contender = registry.get(name)
    cases = coverage.covering(contender)
    assert coverage.reach(contender, cases).missing == ()
    assert all(not contender.case_gaps(c) for c in cases)
    assert len(cases) <= 140  # small: seconds per property test, not minutes


def test_the_covering_cases_are_pinned():
    """Deterministic (covertable's hash order, no Python hash): the same cases in every
    process. Pinned by their ids' digest; a change of the dimensions or the base case
    changes it on purpose."""
    ids = "\n".join(c.id for c in coverage.covering(registry.get("eager")))
    assert hashlib.sha256(ids.encode()).hexdigest()[:16] == EAGER_COVERING, ids[:400]


def test_what_a_set_of_cases_leaves_unreached_is_named():
    eager = registry.get("eager")
    missing = coverage.not_reached(eager, [Case.from_id("n2-c3-4-p0.5-f32-mean")])
    assert "rank=3" in missing and "batch=unbatched" in missing and "dtype=f16" in missing
    assert "weights=seed_inverse_freq" in missing and "C=>1024" in missing
    assert "rank=1" not in missing and "dtype=f32" not in missing
    assert "reduction=sum × ignored=all" in missing  # a pair
    assert "reduction=sum × weights=onehot × ignored=all" in missing  # a triple of the triad
    assert "rank=1 × dtype=f32" not in missing


def test_the_contract_decides_which_pairs_are_declared():
    """A pair no valid case holds is not asked for: one sample has no spatial dims,
    probability targets no ignored share, the seed's weights need two classes."""
    interactions = coverage.plan(registry.get("eager")).interactions
    assert (("rank", "2"), ("batch", "unbatched")) not in interactions
    assert (("ignored", "some"), ("targets", "soft")) not in interactions
    assert (("weights", "seed_inverse_freq"), ("C", "3-64")) not in interactions
    assert (("rank", "0"), ("batch", "unbatched")) in interactions
    assert (("reduction", "sum"), ("weights", "onehot"), ("ignored", "all")) in interactions


def test_a_declared_limit_narrows_what_must_be_reached():
    nll = registry.get("logsoftmax_nll")  # no smoothing, no probability targets, batched only
    declared = coverage.declared(nll)
    assert declared["smoothing"] == ("0",) and declared["targets"] == ("hard",)
    assert declared["batch"] == ("many", "one")
    assert not any(v == "unbatched" for i in coverage.plan(nll).interactions for _, v in i)


def test_a_compiled_contender_is_covered_on_one_graph():
    """What does not change the compiled graph's guards (weight scheme, ignored share,
    masked logits), every pair of it, on one weighted signature: one compile signature,
    three classes (two for the seed's weights, which need two)."""
    compiled = registry.get("compiled_eager")
    cases = coverage.covering(compiled)
    assert coverage.reach(compiled, cases).missing == ()
    shapes = {(c.dtype, c.reduction, c.label_smoothing, c.spatial, c.layout, c.n, c.weights != "none")
              for c in cases}
    assert len(shapes) == 1, shapes
    assert {c.c for c in cases} == {2, 3}
    assert {c.weights for c in cases} >= {"inverse_freq", "onehot", "seed_inverse_freq"}


def test_a_contender_with_one_varying_dimension_claims_values_not_pairs():
    """compiled_bce_logits varies only its weight scheme on its graph (BCE ignores no
    target and masks no logit): its line claims the values it reached, not '0 pairs'."""
    compiled = registry.get("compiled_bce_logits")
    got = coverage.reach(compiled, coverage.covering(compiled))
    assert got.pairs == 0 and got.missing == ()
    assert got.line().startswith(f"every declared value reached ({got.values} values, no pair")
    short = coverage.reach(compiled, coverage.covering(compiled)[:1])
    assert short.line().startswith("not reached (")


@pytest.mark.slow  # one pytest run of 13 contenders
def test_the_suite_catches_a_loss_wrong_on_one_value_of_each_dimension():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/contenders/test_equivalence.py", "-p",
         "no:cacheprovider", "-q", "-rf", *SPECS, "-k",
         "(test_multiclass_property and off_ and loss) or (test_binary_property and meanw and loss)"],
        cwd=ROOT, env=clean_env(HERE), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=600, check=False)
    out = done.stdout
    assert done.returncode == 1, out[-3000:]
    for name in TOYS:
        assert f"FAILED suites/contenders/test_equivalence.py::test_multiclass_property[off_{name}-loss]" \
            in out, (name, out[-3000:])
    assert "FAILED suites/contenders/test_equivalence.py::test_binary_property[meanw-loss]" in out
    assert f"{len(TOYS) + 1} failed" in out, out[-2000:]


@pytest.mark.parametrize("name", list(TOYS))
def test_the_covering_cases_alone_catch_a_loss_wrong_on_one_value(name):
    """``check``'s engine in process, covering cases only: every declared value is in them."""
    toy = Contender(name, "multiclass", getattr(coverage_toys, f"off_{name}"), "toy", source="test")
    assert summarise(check_contenders([toy], [], 0, "cpu"), PROPERTIES)[0].verdict == "FAIL"


@pytest.mark.slow  # two minutes: 14 contenders, each in its worker, each defect shrunk
def test_check_catches_a_loss_wrong_on_one_value_of_each_dimension():
    only = [f"--only=off_{name}" for name in TOYS] + ["--only=meanw"]
    done = subprocess.run([sys.executable, "-m", "harness", "check", "--cases", "3", *only, *SPECS],
                          cwd=ROOT, env=clean_env(HERE), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, timeout=600, check=False)
    out = done.stdout
    assert done.returncode == 1, out[-3000:]
    verdicts = {line.split()[0]: line.split()[-1] for line in out.splitlines()
                if line.startswith(("off_", "meanw"))}
    assert verdicts == {**{f"off_{name}": "FAIL" for name in TOYS}, "meanw": "FAIL"}, out[-3000:]
    assert "not reached" not in out, out[-3000:]
