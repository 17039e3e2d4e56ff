"""Every kind of case a contender declares is reached by each property test and by
`check` (`harness.problem.coverage`), whatever the draw: a loss 1 % off on one value of
one dimension (`coverage_toys.py`: 3-D inputs, unbatched ones, half precision, 'sum',
weights, ignored targets, smoothing, probabilities, masked logits, strided logits, a
vocabulary-sized C), and a binary loss whose mean divides by the positions with a non-zero
weight, are caught by the suite under the ``ci`` profile and by ``check``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from coverage_toys import TOYS
from test_external import clean_env

from harness import contenders as registry
from harness.problem import coverage
from harness.problem.case import Case

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SPECS = [f"--contender=off_{name}=coverage_toys:off_{name}" for name in TOYS] + [
    "--binary-contender=meanw=coverage_toys:bce_mean_over_weighted"]


@pytest.mark.parametrize("name", [c.name for c in registry.builtins()])
def test_the_stratified_cases_reach_every_declared_value(name):
    contender = registry.get(name)
    cases = coverage.stratified(contender)
    assert coverage.not_reached(contender, cases) == []
    assert all(not contender.case_gaps(c) for c in cases)


def test_what_a_set_of_cases_leaves_unreached_is_named():
    eager = registry.get("eager")
    missing = coverage.not_reached(eager, [Case.from_id("n2-c3-4-p0.5-f32-mean")])
    assert "rank=3" in missing and "batched=unbatched" in missing and "dtype=f16" in missing
    assert "weights=seed_inverse_freq" in missing and "C=>1024" in missing
    assert "rank=1" not in missing and "dtype=f32" not in missing


def test_a_declared_limit_narrows_what_must_be_reached():
    nll = registry.get("logsoftmax_nll")  # no smoothing, no probability targets, batched only
    declared = coverage.declared(nll)
    assert declared["smoothing"] == ("0",) and declared["targets"] == ("hard",)
    assert declared["batched"] == ("batched",)


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
