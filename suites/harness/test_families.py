"""The family records (`harness.problem.families`) against the code they drive, and the
layout rules that keep them the only place a family is told apart: no module tests a
family's name, and the package's parts import each other without a cycle."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest
import torch

from harness import contenders as registry
from harness.cli import build_parser
from harness.problem.case import FAMILY_NAMES, Case
from harness.problem.families import FAMILIES, family
from harness.problem.inputs import make_inputs

PACKAGE = Path(__file__).resolve().parents[2] / "harness"
CASES = {"multiclass": Case(n=2, c=3, spatial=(4,), p=0.25, weights="balanced"),
         "binary": Case(n=2, c=1, spatial=(4,), p=0.25, weights="balanced", family="binary")}


def test_every_family_name_has_one_record():
    assert tuple(FAMILIES) == FAMILY_NAMES
    with pytest.raises(ValueError, match="use one of"):
        family("ternary")


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_the_reference_is_a_builtin_of_its_own_family(name):
    assert registry.get(FAMILIES[name].reference).family == name


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_the_cli_flag_is_an_option_of_the_commands(name):
    spec = FAMILIES[name]
    parser = build_parser()
    args = parser.parse_args(["list", spec.cli_flag, "x=m:f"])
    assert getattr(args, spec.option_dest) == ["x=m:f"]
    assert isinstance(parser, argparse.ArgumentParser)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_the_call_and_the_oracle_agree_with_torch(name):
    """The record's call options and oracle are the family's functional's: the reference
    contender called with `call_kwargs` matches the oracle's loss."""
    spec = FAMILIES[name]
    inputs = make_inputs(CASES[name].replace(dtype="f64"))
    assert (inputs.target.dtype == torch.int64) == spec.index_targets
    ref = registry.get(spec.reference)
    got = ref.fn(inputs.logits, inputs.target, **spec.call_kwargs(inputs))
    assert torch.allclose(got, spec.oracle(inputs).loss.to(got.dtype), rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_a_case_outside_the_family_is_refused_with_the_fix(name):
    spec = FAMILIES[name]
    bad_c = spec.fixed_c + 1 if spec.fixed_c is not None else spec.min_c - 1
    with pytest.raises(ValueError, match=f"c={spec.fixed_c}|c >= {spec.min_c}"):
        CASES[name].replace(c=bad_c)


_NAME_TEST = re.compile(r"""(family|\.name)\s*[!=]=\s*["'](multiclass|binary)["']""")


def test_no_module_but_the_record_tests_a_family_name():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
                 for path in PACKAGE.rglob("*.py") if path.name != "families.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if _NAME_TEST.search(line)]
    assert not offenders, "\n".join(offenders)


def _part(module: str) -> str | None:
    """harness.<part>.x -> part; top-level modules are their own part."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "harness" else None


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:  # module level only: an import inside a function is lazy by design
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_parts_of_the_package_import_each_other_without_a_cycle():
    """problem → contenders → equivalence → benchmark → analysis → cli / pytest_plugin:
    each part imports only parts before it (kernels and the top-level helpers are leaves)."""
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        src = _part(".".join(rel.parts))
        for module in _module_level_imports(path):
            dst = _part(module)
            if src in parts and dst in parts and dst != src:
                edges.setdefault(src, set()).add(dst)
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "import cycle: " + " -> ".join([*trail, node])
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*trail, node])
        state[node] = "done"
        order.append(node)

    for node in sorted(parts):
        visit(node, [])
