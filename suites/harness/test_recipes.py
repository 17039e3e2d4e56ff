"""The four "Extending the harness" recipes of docs/contributing.md, followed literally: a
copy of the tree gets a toy contender, property, report column and case field exactly where
the recipes say (`recipes.py` holds the edits), and each addition is then found where a user
looks for it: `list`, `check`, the equivalence suite and the report. Each of those tests is
one or two subprocesses in that copy (the copy's ``harness`` comes first on PYTHONPATH); the
first test reads the recipes themselves, in process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from recipes import DOC, NAMES, RECIPES, extended_tree, recipe_text
from test_external import clean_env

PLAIN = "plain=contiguous_only:cross_entropy@no-soft-targets"
DECLARED = "declared=contiguous_only:cross_entropy@no-soft-targets,no-strided-target"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return extended_tree(tmp_path_factory.mktemp("extended"))


# The recipes' edits followed in a copied tree, one or two subprocesses each (8-15 s each,
# 50 s in all): the slow tier. `make test` keeps the in-process test that reads the recipes.
SLOW = pytest.mark.slow


def run(tree: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=tree, env=clean_env(tree),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)


@pytest.mark.parametrize("name", list(RECIPES))
def test_each_recipe_names_the_files_and_names_its_edits_touch(name: str) -> None:
    """The recipes as docs/contributing.md writes them: each paragraph names every file its
    edits in `recipes.py` touch (by path, or by file name where the recipe says
    `<family>.py`) and the names it adds to, so a recipe that moves or stops saying where to
    edit fails here, and the edits below follow what the page says."""
    text = recipe_text(name)
    for edit in RECIPES[name]:
        assert edit.path in text or f"`{Path(edit.path).name}`" in text, (DOC, name, edit.path, text)
    missing = [n for n in NAMES[name] if n not in text]
    assert not missing, (DOC, name, missing, text)


@SLOW
def test_the_toy_contender_and_the_toy_field_are_listed(tree: Path) -> None:
    listed = run(tree, "-m", "harness", "list")
    assert listed.returncode == 0, listed.stdout
    assert "recipe_toy" in listed.stdout and "the recipe's toy contender" in listed.stdout
    # the clause list a misspelt declaration prints holds the new field's clause
    misspelt = run(tree, "-m", "harness", "check", "--contender",
                   "x=torch.nn.functional:cross_entropy@no-strided")
    assert misspelt.returncode != 0 and "no-strided-target" in misspelt.stdout, misspelt.stdout


@SLOW
def test_check_runs_the_toy_property_and_keeps_the_toy_field_from_who_declares_it(tree: Path) -> None:
    """The toy property is a column of every contender; the loss that reads its target as
    contiguous fails on the toy field's cases only (one defect class, named after the
    field), and the same loss declared without the field passes: its capability entry
    alone kept those cases away."""
    checked = run(tree, "-m", "harness", "check", "--only", "recipe_toy", "--only", "plain",
                  "--only", "declared", "--contender", PLAIN, "--contender", DECLARED)
    out = checked.stdout
    assert checked.returncode == 1, out
    header = next(line for line in out.splitlines() if line.startswith("contender"))
    assert header.split()[-3:] == ["toyprop", "limits", "verdict"], header
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines()
            if line.split() and line.split()[0] in ("recipe_toy", "plain", "declared")}
    assert rows == {"recipe_toy": "PASS", "plain": "FAIL", "declared": "PASS"}, out
    assert "FAIL plain: 1 distinct defect" in out, out
    assert "on cases with strided targets" in out or "whenever strided targets" in out, out
    assert "-ts --only plain" in out, out  # the minimal case carries the field's id token


@SLOW
def test_the_suite_holds_the_toy_property_and_the_toy_field(tree: Path) -> None:
    suite = run(tree, "-m", "pytest", "suites/contenders/test_equivalence.py", "-p",
                "no:cacheprovider", "-q", "-rf", "--hypothesis-profile", "dev",
                "-k", "(recipe_toy or declared or plain) and (toyprop or loss)",
                "--contender", PLAIN, "--contender", DECLARED)
    out = suite.stdout
    assert suite.returncode == 1, out
    assert "1 failed, 5 passed" in out, out
    assert "FAILED suites/contenders/test_equivalence.py::test_multiclass_property[plain-loss]" in out, out
    assert "-ts" in out  # the shrunk counterexample is a strided-target case


@SLOW
def test_the_toy_column_reaches_the_report(tree: Path, tmp_path: Path) -> None:
    data = tmp_path / "run.json"
    bench = run(tree, "-m", "harness", "bench", "--size", "small", "--cases", "landmarks",
                "--only", "recipe_toy", "--passes", "1", "--round-time", "0.02", "--out",
                str(data), "--", "-k", "n256-c1000 and fwd and not fwd_bwd")
    assert bench.returncode == 0, bench.stdout
    report = run(tree, "-m", "harness", "report", str(data), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stdout
    tables = (tmp_path / "report" / "tables.md").read_text()
    header = next(line for line in tables.splitlines() if "recipe col" in line)
    row = next(line for line in tables.splitlines()[tables.splitlines().index(header):]
               if line.startswith("| recipe_toy"))
    assert row.split("|")[header.split("|").index(" recipe col ")].strip() == "4.25", (header, row)
