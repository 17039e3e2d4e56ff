"""No import circle anywhere in ``harness/``, module by module, in-function and
same-package imports included (issue 21): an import under ``if TYPE_CHECKING:`` is an
annotation, not an import, and is left out. A planted circle is found."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "harness"
# (importer, imported): in-function imports that close a circle on purpose, each with why.
# None today; the registry's `importlib.import_module` of its built-ins is not an import
# statement and is not read.
ALLOWED: dict[tuple[str, str], str] = {}


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m in known and m != name}


def import_circles(root: Path) -> list[list[str]]:
    """Every circle of imports among ``root``'s modules, each as the modules in order."""
    known = _modules(root)
    edges = {m: {t for t in _imports(m, p, known) if (m, t) not in ALLOWED} for m, p in known.items()}
    circles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == "done":
            return
        if state.get(node) == "open":
            circles.append([*trail[trail.index(node):], node])
            return
        state[node] = "open"
        for nxt in sorted(edges[node]):
            visit(nxt, [*trail, node])
        state[node] = "done"

    for node in sorted(known):
        visit(node, [])
    return circles


def test_no_import_circle_in_the_harness():
    circles = import_circles(PACKAGE)
    assert circles == [], "\n".join(" -> ".join(c) for c in circles)


def test_a_planted_circle_is_found_and_a_type_checking_import_is_not_one(tmp_path):
    pkg = tmp_path / "toy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from toy.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from toy import c\n")           # in a function
    (pkg / "c.py").write_text("from . import a\n")                              # relative
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from toy.e import E\n")
    (pkg / "e.py").write_text("import toy.d\n")
    assert import_circles(pkg) == [["toy.a", "toy.b", "toy.c", "toy.a"]]
