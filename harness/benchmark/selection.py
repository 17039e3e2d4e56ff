"""Which benchmarks a run has, written once: every case × contender of the case's family ×
mode, named ``CASE-CONTENDER-MODE`` (the benchmark suite's test ids); why one is skipped;
and pytest's ``-k`` over those names. The plugin parametrises ``test_bench`` with it,
`harness.benchmark.fixture` skips with it, ``ab``'s workers list with it and ``ab``
counts the selection with it before any worker starts.

No harness import at the top: ``ab``'s worker loads this file from the controller's
checkout while ``harness`` on its ``sys.path`` is the side's, which may predate it
(`harness.benchmark.worker`); what it imports inside a function is the side's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

BENCH_TEST = "test_bench"  # the benchmark suite's test function, in test_bench.py


class Benchmark(NamedTuple):
    case: Any
    contender: Any  # a Contender, or only its name where it is not imported (ab's count)
    mode: str
    id: str         # the test id's parameter: CASE-CONTENDER-MODE


def bench_id(case_id: str, contender: str, mode: str) -> str:
    return f"{case_id}-{contender}-{mode}"


def _name(contender: Any) -> str:
    return contender if isinstance(contender, str) else contender.name


def benchmarks(cases: Iterable[Any], contenders: Mapping[str, Sequence[Any]], modes: Sequence[str],
               only: Iterable[str] = (), select: str | None = None) -> list[Benchmark]:
    """Every benchmark of ``cases`` × the contenders of each case's family (``contenders``:
    per family, objects with a ``name`` or plain names) × ``modes``, in the suite's order,
    that ``only`` (contender names; empty: all) and ``select`` (a ``-k`` expression) keep."""
    only, match = set(only), keyword_match(select)
    out = []
    for case in cases:
        for contender in contenders.get(case.family, ()):
            if only and _name(contender) not in only:
                continue
            for mode in modes:
                ident = bench_id(case.id, _name(contender), mode)
                if match(ident):
                    out.append(Benchmark(case, contender, mode, ident))
    return out


def keyword_match(select: str | None) -> Callable[[str], bool]:
    """Whether pytest's ``-k select`` keeps the benchmark named ``ident``, as pytest itself
    decides for ``test_bench[ident]`` in ``bench``: each word a case-insensitive substring
    of one of the test's names (its id, its module), with ``and``, ``or``, ``not`` and
    parentheses. Raises SyntaxError where pytest refuses the expression.

    Why pytest's private parser: pytest has no public one, and ``ab``'s ``-k`` must keep
    what ``bench``'s keeps, edge for edge, in whatever pytest the side has; a parser of our
    own would be a second grammar to keep equal to it. pytest is pinned (constraints.txt),
    and suites/harness/test_selection.py pins the behaviour, so an upgrade that moves or
    changes it fails there, not in a run."""
    if not select:
        return lambda ident: True
    from _pytest.mark.expression import Expression

    expression = Expression.compile(select)
    return lambda ident: expression.evaluate(_names_matcher(ident))


def _names_matcher(ident: str) -> Callable[..., bool]:
    """pytest's keyword matcher for the benchmark ``ident``: its test's name and module."""
    names = (f"{BENCH_TEST}[{ident}]".lower(), f"{BENCH_TEST}.py")

    def match(word: str, /, **kwargs: Any) -> bool:
        return any(word.lower() in name for name in names)
    return match


def skip_reason(contender: Any, case: Any, device: str) -> str | None:
    """Why ``contender`` is not timed on ``case`` here, in the order they are asked: outside
    its capabilities, a breakdown theory predicts, a contender that is never timed."""
    from harness.benchmark.step import predicted_breakdown  # ab's worker: the side's

    if reason := contender.skip_reason(case, device):
        return reason
    if reason := predicted_breakdown(contender, case, device):
        return reason
    if reason := contender.untimed_reason():
        return f"{contender.name}: {reason}"
    return None
