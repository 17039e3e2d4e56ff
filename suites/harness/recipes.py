"""The "Extending the harness" recipes of docs/contributing.md as edits to a copy of the
tree: each edit is the recipe's instruction, made where the recipe says, at an anchor that
must exist exactly once (a moved anchor fails `apply`, so the recipe and this file are
updated together). Not a test module: `test_recipes.py` applies them and follows each
addition through `list`, `check`, the suites and the report, and reads the recipes
(`recipe_text`) to see that each names the files its edits touch and the names it adds to."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("harness", "suites", "conftest.py", "pyproject.toml")
DOC = ROOT / "docs" / "contributing.md"  # where the recipes live


@dataclass(frozen=True)
class Edit:
    path: str
    anchor: str  # text that must occur exactly once
    text: str    # inserted right after the anchor (before it when ``before``)
    before: bool = False


# A contender: a function with the family's signature, registered in its family's module.
CONTENDER = (
    Edit("harness/contenders/multiclass.py", "", '''

def recipe_toy(input, target, **options):
    """The recipe's toy contender: F.cross_entropy under another name."""
    return F.cross_entropy(input, target, **options)


register(Contender("recipe_toy", "multiclass", recipe_toy, "the recipe's toy contender",
                   caps=Capabilities(soft_targets=False)))
'''),
)

# A property: check_<name>, its name in PROPERTIES, the function in CHECKS.
PROPERTY = (
    Edit("harness/equivalence/properties.py", 'PROPERTIES = ("loss", "grad", "nonfinite", "inputs", "meta"',
         ', "toyprop"'),
    Edit("harness/equivalence/properties.py", "CHECKS = {",
         '''def check_toyprop(out: Outcome, oracle: OracleResult, inputs: Inputs,
                  expect: Expectation) -> Verdict:
    """The recipe's toy property: the call raised nothing."""
    return Verdict("toyprop", not out.error, f"raised {out.error}" if out.error else "")


''', before=True),
    Edit("harness/equivalence/properties.py", "CHECKS = {", '''
    "toyprop": check_toyprop,'''),
)

# A report column: a BenchRecord field, its value where the record is built, a CASE_COLUMNS pair.
COLUMN = (
    Edit("harness/benchmark/record.py", "    accuracy: str | None = None\n",
         "    recipe_col: float | None = None           # the recipe's toy column\n"),
    Edit("harness/benchmark/fixture.py", "        threads=bench_threads", ", recipe_col=4.25"),
    Edit("harness/analysis/tables.py", '    ("compile", lambda r: fmt_seconds(r.compile_s)),\n',
         '    ("recipe col", lambda r: fmt_num(r.recipe_col)),\n'),
)

# A case field: the field and its id token, its values, one capability; it changes the
# tensors, so also where the inputs are built.
CASE_FIELD = (
    Edit("harness/problem/case.py",
         "    masked_target: bool = False  # one position's own target logit is -inf too\n",
         "    strided_target: bool = False  # the recipe's toy field: the target is a strided view\n"),
    Edit("harness/problem/case.py", '''        if self.masked_target:
            parts.append("mt")
''', '''        if self.strided_target:
            parts.append("ts")
'''),
    Edit("harness/problem/case.py", '''    "mt": {"masked_target": True},
''', '''    "ts": {"strided_target": True},
'''),
    Edit("harness/problem/strategies.py", '''    "layout": ("contiguous", "channels_last", "strided"),
''', '''    "strided_target": (False, True),
'''),
    Edit("harness/problem/capabilities.py", "    devices: frozenset[str] = _set(",
         '''    strided_target: bool = _flag("strided targets", lambda c: c.strided_target,
                                 {"strided_target": False}, feature="strided targets")
''', before=True),
    Edit("harness/problem/inputs.py",
         "    return Inputs(case, logits, target.to(device), weight, grad_out.to(device))\n",
         '''    if case.strided_target:
        target = _apply_layout(target, "strided")
''', before=True),
)

RECIPES = {"contender": CONTENDER, "property": PROPERTY, "column": COLUMN, "case field": CASE_FIELD}

# Each recipe's paragraph in DOC opens with its bold title, and names, besides the files its
# edits touch, the names the edits add to or register with.
TITLES = {"contender": "A contender.", "property": "A property.", "column": "A report column.",
          "case field": "A case field."}
NAMES = {
    "contender": ("register(Contender(", "Capabilities"),
    "property": ("check_<name>", "PROPERTIES", "CHECKS"),
    "column": ("BenchRecord", "CASE_COLUMNS"),
    "case field": ("Case.id", "_WORDS", "FIELD_VALUES", "Capabilities", "_flag", "make_inputs"),
}


def recipe_text(name: str, doc: Path = DOC) -> str:
    """The paragraph of ``doc`` that holds recipe ``name``: from its bold title to the next
    blank line."""
    text = doc.read_text()
    title = f"**{TITLES[name]}**"
    if text.count(title) != 1:
        raise AssertionError(f"recipe title {title} found {text.count(title)} times in {doc} (want 1)")
    start = text.index(title)
    end = text.find("\n\n", start)
    return text[start:] if end < 0 else text[start:end]


# Right on every case but those with a strided target, whose memory it reads as if it were
# contiguous (a kernel handed the data pointer: Liger's contiguity defect): what the toy
# field's capability must keep away from a contender that declares it lacks it.
CONTIGUOUS_ONLY = '''\
import torch.nn.functional as F


def cross_entropy(input, target, **options):
    """F.cross_entropy on the target's memory read as contiguous."""
    flat = target.as_strided((target.numel(),), (1,))
    return F.cross_entropy(input, flat.view(target.shape), **options)
'''


def apply(tree: Path, edits) -> None:
    for edit in edits:
        path = tree / edit.path
        text = path.read_text()
        if not edit.anchor:
            path.write_text(text + edit.text)
            continue
        count = text.count(edit.anchor)
        if count != 1:
            raise AssertionError(f"recipe anchor found {count} times in {edit.path} (want 1): "
                                 f"{edit.anchor!r}; update the recipe in docs/contributing.md and "
                                 "suites/harness/recipes.py")
        at = text.index(edit.anchor) + (0 if edit.before else len(edit.anchor))
        path.write_text(text[:at] + edit.text + text[at:])


def extended_tree(dest: Path) -> Path:
    """A copy of the tree with every recipe applied, and the toy field's planted loss."""
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    for edits in RECIPES.values():
        apply(dest, edits)
    (dest / "contiguous_only.py").write_text(CONTIGUOUS_ONLY)
    return dest
