"""Every distinct defect, not the first (`harness.equivalence.defects`): one `check` run
reports two independent defects of one contender as two classes, each with its own
minimal case, and the fixed case set covers every combination of declared options."""

from __future__ import annotations

import torch.nn.functional as F
from fakes import two_defects

from harness.contenders import Capabilities, Contender
from harness.equivalence.defects import META_FEATURES, classify
from harness.equivalence.verdicts import check_contenders, defects_of
from harness.problem import coverage
from harness.problem.case import Case

NO_WEIGHTS = Capabilities(weights=False, soft_targets=False, masked_logits=False)
TWO = Contender("two", "multiclass", two_defects, "planted", caps=NO_WEIGHTS, source="test")


def test_two_independent_defects_are_two_classes_each_with_its_minimal_case() -> None:
    results = check_contenders([TWO], [], 40, "cpu")
    classes = defects_of(TWO, results, "cpu")
    assert len(classes) == 2, [d.headline for d in classes]
    assert all("loss" in d.props and "grad" in d.props for d in classes)
    features = {d.feature for d in classes}
    assert "reduction='sum'" in features, [d.headline for d in classes]
    ignored = [d for d in classes if "ignored targets" in d.feature]
    assert ignored, [d.headline for d in classes]
    sums = next(d for d in classes if d.feature == "reduction='sum'")
    assert sums.minimal.reduction == "sum"
    assert ignored[0].minimal.reduction == "mean" and ignored[0].minimal.n_ignored > 0
    # minimal: the shrunk cases are no larger than the first failing case of their class
    for d in (sums, ignored[0]):
        assert d.minimal.positions * d.minimal.c <= d.example.positions * d.example.c


def test_the_covering_cases_hold_every_combination_of_the_declared_options() -> None:
    """What separates one defect from another is among the cases every check starts from
    (`coverage.covering`): each reduction with each weight scheme and ignored share, and
    each pair of options; a narrower declaration narrows them."""
    full = Contender("all", "multiclass", F.cross_entropy, "test")
    cases = coverage.covering(full)
    triples = {(c.reduction, c.weights, coverage.BY_NAME["ignored"].value_of(c)) for c in cases}
    assert len(triples) == 3 * 9 * 3  # every scheme, 'seed_inverse_freq' and 'onehot' too
    options = {(c.weights != "none", c.ignore_frac > 0, c.label_smoothing > 0, c.soft) for c in cases}
    for a, b in ((0, 2), (1, 2), (0, 3), (2, 3)):
        assert {(o[a], o[b]) for o in options} == {(x, y) for x in (False, True) for y in (False, True)}
    narrow = Contender("narrow", "multiclass", F.cross_entropy, "test",
                       caps=Capabilities(label_smoothing=False, reductions=frozenset({"sum"})))
    assert {(c.label_smoothing, c.reduction) for c in coverage.covering(narrow)} == {(0.0, "sum")}
    binary = Contender("b", "binary", F.binary_cross_entropy_with_logits, "test")
    assert {c.family for c in coverage.covering(binary)} == {"binary"}


def test_a_feature_that_a_passing_case_shares_rarely_still_names_the_class() -> None:
    """A sum equals the mean when the targets' weights total 1: one passing 'sum' case
    must not hide 'loss fails on reduction=sum'."""
    failing = [Case(n=4, c=3, reduction="sum", seed=s) for s in range(9)]
    passing = [Case(n=1, c=3, reduction="sum"), *(Case(n=4, c=3, seed=s) for s in range(5))]
    assert classify(failing, passing)[0] == ("reduction='sum'", failing)


def test_a_feature_nearly_every_case_has_does_not_name_a_class() -> None:
    """Spatial cases fail no more often than the rest: 'reduction=mean' (every mean case
    fails) names the class, although 'spatial dims' covers more failures. (63 of MONAI's 66
    generated cases were spatial; its mean defect was reported as a 'spatial dims' class.)"""
    mean_spatial = [Case(n=4, c=3, spatial=(2,), seed=s) for s in range(8)]
    mean_flat = [Case(n=4, c=3, seed=s) for s in range(2)]
    sum_spatial = [Case(n=4, c=3, spatial=(2,), reduction="sum", seed=s) for s in range(6)]
    groups = classify(mean_spatial + mean_flat + sum_spatial[:4], sum_spatial[4:])
    assert groups == [("reduction='mean'", mean_spatial + mean_flat), ("", sum_spatial[:4])]


def test_a_float32_result_for_every_other_dtype_is_one_meta_class() -> None:
    failed = [Case(n=4, c=3, dtype=d, seed=s) for d in ("f64", "f16", "bf16") for s in range(3)]
    passed = [Case(n=4, c=3, seed=s) for s in range(4)]
    assert classify(failed, passed, META_FEATURES) == [("a dtype other than float32", failed)]


def test_a_new_property_joins_the_value_findings_without_an_edit_here(monkeypatch) -> None:
    """The README's recipe adds a property to `PROPERTIES` and its check; the defect report
    then groups it with loss, gradient, non-finite and inputs, and `meta` stays apart."""
    from harness.equivalence import properties
    from harness.equivalence.defects import FEATURES, property_families

    monkeypatch.setattr(properties, "PROPERTIES", (*properties.PROPERTIES, "calibration"))
    families = property_families()
    assert families == ((("loss", "grad", "nonfinite", "inputs", "calibration"), FEATURES),
                        (("meta",), META_FEATURES))
    assert property_families(("loss",)) == ((("loss",), FEATURES),)


def test_with_defects_the_summary_lists_each_defect_of_a_contender_whose_property_failed() -> None:
    """The suites' ``--defects``, in process: a failed property test's report names its
    contender (`XentSession.pytest_runtest_logreport`), and the summary's section lists
    that contender's every distinct defect with a reproduction; a contender whose tests
    passed is not searched. (The same through a pytest subprocess: test_external, slow.)"""
    from types import SimpleNamespace

    from harness.pytest_plugin import summary
    from harness.pytest_plugin.session import XentSession

    xent = XentSession(call_timeout=30)
    for nodeid, failed in (("test_equivalence.py::test_multiclass_property[two-loss]", True),
                           ("test_equivalence.py::test_multiclass_property[eager-loss]", False)):
        xent.pytest_runtest_logreport(SimpleNamespace(when="call", failed=failed, nodeid=nodeid,
                                                      user_properties=[]))
    assert xent.failed_contenders == {"two"}

    class Terminal:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def section(self, title, **kwargs):
            self.lines.append(f"== {title}")

        def write_line(self, line, **kwargs):
            self.lines.append(line)

    eager = Contender("eager", "multiclass", F.cross_entropy, "reference", caps=NO_WEIGHTS)
    terminal = Terminal()
    summary.defects(terminal, xent, [eager, TWO], "cpu")
    text = "\n".join(terminal.lines)
    assert "FAIL two: 2 distinct defects" in text, text
    assert "reduction='sum'" in text and "ignored targets" in text, text
    assert "python -m harness check " in text and "--only two" in text, text
    assert "eager" not in text, text
