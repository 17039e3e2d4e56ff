"""Which tests are xentbench's. The plugin is loaded into every pytest session of an
environment where xentbench is installed (the ``pytest11`` entry point), so each of its
actions — the Hypothesis profile, raw rounds in the JSON, passes, extra processes, the
stamp, Triton's interpreter — is taken only for xentbench's own suites, as pytest-benchmark
only touches tests that use its fixture (`suites/harness/test_foreign.py`).

A run is xentbench's when a path it was given lies in xentbench's suites (the checkout's
``suites/``, or the ``suites`` package an installed wheel ships beside ``harness``), or
when it was given no path and its root is the checkout. An item is xentbench's when it
lives there or uses one of the fixtures only xentbench provides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

SUITES = Path(__file__).resolve().parents[2] / "suites"
CHECKOUT = SUITES.parent
# Fixtures only this plugin provides (``device`` is too common a name to tell by)
OWN_FIXTURES = frozenset({"bench_item", "xent", "count_case", "bench_pass", "bench_options",
                          "binary_contender"})
OWN_RUN = pytest.StashKey[bool]()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
    except (OSError, ValueError):
        return False
    return True


def targets_own_suites(args: Sequence[str], rootpath: Path) -> bool:
    """Whether the command line ``args`` run xentbench's suites (module docstring)."""
    paths = [a.split("::", 1)[0] for a in args if not a.startswith("-")]
    existing = [Path(p) for p in paths if p and Path(p).exists()]
    if not existing:
        return _inside(Path(rootpath), CHECKOUT) and SUITES.is_dir()
    return any(_inside(p, SUITES) or p.resolve() == CHECKOUT for p in existing)


def is_own_item(item: pytest.Item) -> bool:
    path = Path(str(getattr(item, "path", "")))
    return _inside(path, SUITES) or bool(OWN_FIXTURES & set(getattr(item, "fixturenames", ())))
