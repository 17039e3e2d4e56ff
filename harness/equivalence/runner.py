"""Calling a contender: forward, backward with the case's upstream gradient, and a
bit-for-bit check that the inputs survived. Failures are captured, not raised, so one bad
contender is recorded and reported without aborting the run."""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from hypothesis import example, given, settings
from hypothesis import seed as hypothesis_seed

from harness.contenders import Contender
from harness.equivalence.properties import PROPERTIES, Outcome, Verdict, check_all
from harness.problem import coverage, strategies
from harness.problem.case import Case
from harness.problem.expectations import EXACT
from harness.problem.families import family
from harness.problem.inputs import Inputs, make_inputs


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A copy that compares bit-for-bit (NaN == NaN) through an integer view."""
    c = t.detach().clone()
    if c.is_floating_point():
        ints = {8: torch.int64, 4: torch.int32, 2: torch.int16}[c.element_size()]
        return c.contiguous().view(ints)
    return c


def _same(before: torch.Tensor, after: torch.Tensor) -> bool:
    return before.shape == _bits(after).shape and bool(torch.equal(before, _bits(after)))


def call_args(inputs: Inputs) -> dict:
    """Keyword arguments for the contender's family."""
    return inputs.case.spec.call_kwargs(inputs)


# Seconds one call (forward and backward) may take before it is recorded as a failure. A
# first compiled call compiles (about a minute on a 2-core CPU), hence the margin.
CALL_TIMEOUT_S = 300.0


class CallTimeout(Exception):
    """A contender call that ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise `CallTimeout` in the block after ``seconds`` (SIGALRM; the main thread of a
    Unix process only — elsewhere no limit). Python code and sleeps are interrupted; a
    kernel stuck inside one C call is interrupted when it returns to Python."""
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise CallTimeout(f"no answer within {seconds:g} s (the call was stopped)")

    outer, _ = signal.getitimer(signal.ITIMER_REAL)  # an enclosing limit keeps its deadline
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def evaluate(contender: Contender, inputs: Inputs, backward: bool = True,
             requires_grad: bool | None = None, timeout: float | None = CALL_TIMEOUT_S) -> Outcome:
    """Run one contender on one case and capture what it did. ``requires_grad`` (default:
    ``backward``) is whether the logits require grad — a training forward does even when
    no backward follows, and compiled or custom-autograd contenders take another path
    without it. A call past ``timeout`` seconds is recorded as an error (`time_limit`)."""
    kwargs = call_args(inputs)
    named = {"logits": inputs.logits, "target": inputs.target, "grad_out": inputs.grad_out}
    named.update({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
    snapshots = {k: _bits(v) for k, v in named.items()}
    x = inputs.logits.detach().requires_grad_(backward if requires_grad is None else requires_grad)
    loss = grad = None
    error = None
    no_grad = ""
    try:
        with time_limit(timeout):
            loss, grad, no_grad = _call(contender, x, inputs, kwargs, backward)
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    modified = tuple(k for k, v in named.items() if not _same(snapshots[k], v))
    return Outcome(loss, grad, error, modified, no_grad)


def _call(contender: Contender, x: torch.Tensor, inputs: Inputs, kwargs: dict,
          backward: bool) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(loss, gradient, why no gradient was taken): the contender's forward and backward."""
    grad, no_grad = None, ""
    loss = contender(x, inputs.target, **kwargs)
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"returned {type(loss).__name__}, not a tensor")
    if backward:
        if not loss.requires_grad:
            raise RuntimeError("the loss does not require grad: it is detached from the logits")
        upstream = _upstream_like(inputs.grad_out, loss)
        if upstream is None:
            no_grad = (f"no gradient compared: the output's shape {tuple(loss.shape)} cannot "
                       f"take the upstream gradient of shape {tuple(inputs.grad_out.shape)}")
        else:
            loss.backward(upstream)
            grad = x.grad
    return loss.detach(), grad, no_grad


def _upstream_like(grad_out: torch.Tensor, loss: torch.Tensor) -> torch.Tensor | None:
    """The case's upstream gradient in the shape and dtype the contender returned: as it
    is, broadcast, or reshaped when only the shape is wrong (a [N, 1] 'none' loss still
    gets its gradient checked, and `meta` reports the shape); None when the element
    counts differ."""
    g = grad_out.to(loss.dtype)
    if g.shape == loss.shape:
        return g
    # a scalar upstream over a non-scalar loss would judge a shape bug as a value bug
    return g.reshape(loss.shape) if g.numel() == loss.numel() else None


def solve(inputs: Inputs):
    """The oracle of the case's family."""

    return inputs.case.spec.oracle(inputs)


def verify(contender: Contender, case, device: str = "cpu", props: tuple[str, ...] = PROPERTIES,
           timeout: float | None = CALL_TIMEOUT_S) -> dict[str, Verdict]:
    """Build the case, run the contender, and judge the properties (all five by default)."""
    return judge(contender, make_inputs(case, device), props, timeout)


def judge(contender: Contender, inputs: Inputs, props: tuple[str, ...] = PROPERTIES,
          timeout: float | None = CALL_TIMEOUT_S) -> dict[str, Verdict]:
    """Run the contender on ``inputs`` and judge the properties against the oracle: what
    `verify` does once the tensors exist (PyTorch's samples bring their own)."""
    truth = solve(inputs)
    return judge_outcome(contender, inputs, truth, evaluate(contender, inputs, timeout=timeout), props)


def judge_outcome(contender: Contender, inputs: Inputs, truth, outcome: Outcome,
                  props: tuple[str, ...] = PROPERTIES) -> dict[str, Verdict]:
    """The properties of what one call did (``outcome``), against the oracle's ``truth``
    and what theory expects of this contender on ``inputs``."""
    expect = contender.limits(inputs, truth) if contender.limits else EXACT
    if contender.caps.float32_output and inputs.logits.dtype in (torch.float16, torch.bfloat16):
        expect = replace(expect, output_dtype=torch.float32)
    return check_all(outcome, truth, inputs, expect, props)


def repro_command(contender: Contender, case) -> str:
    """One line that re-runs exactly this check."""
    flag = family(contender.family).cli_flag
    spec = (f" {flag} {shlex.quote(contender.name + '=' + contender.source.removeprefix('external '))}"
            if contender.source.startswith("external ") else "")
    if contender.source.startswith("ecosystem "):
        spec = " --ecosystem"
    return f"python -m harness check {case.id} --only {contender.name}{spec}"


# An interpreted contender's verdicts on a case, all five properties from its one call,
# kept for the process: the call (Triton's interpreter) is most of a property test's cost,
# and the suite's five property tests of one contender run one after another, mostly in
# the same xdist worker, on the same cases (covering cases, then the same seeded draw).
# Verdicts only (no tensors), so the memory is small whatever the run.
_INTERPRETED_VERDICTS: dict[tuple, dict[str, Verdict]] = {}


def verdict_of(contender: Contender, case: Case, device: str, prop: str,
               timeout: float | None = CALL_TIMEOUT_S) -> Verdict:
    """``prop`` on ``case``: for an interpreted contender from one call judged on every
    property, kept per process (`_INTERPRETED_VERDICTS`); for the others one call."""
    if contender.untimed_reason() is None:
        return verify(contender, case, device, (prop,), timeout)[prop]
    key = (contender.name, contender.source, contender.fn, case.id, device, timeout)
    if key not in _INTERPRETED_VERDICTS:
        _INTERPRETED_VERDICTS[key] = verify(contender, case, device, PROPERTIES, timeout)
    return _INTERPRETED_VERDICTS[key][prop]


def property_search(contender: Contender, prop: str, device: str,
                    on_case: Callable[[Contender, Case, dict[str, Verdict]], None],
                    timeout: float | None = CALL_TIMEOUT_S, seed: int | None = None,
                    on_coverage: Callable[[coverage.Reach], None] | None = None) -> Callable[[], None]:
    """A Hypothesis test of one property over the cases ``contender`` declares it handles
    (`strategies.cases`), against the oracle; call it to run the search. ``on_case`` sees
    every case checked. A failure names the case and prints the command that reproduces
    it. ``seed`` (``--hypothesis-seed``) draws from that seed instead of the test's own
    (under the ``ci`` profile, derandomized).

    The search starts with the contender's covering cases (`coverage.covering`: every
    declared pair, and every triple of what a mean divides by, as explicit examples), then
    the profile's random draws; the test fails when a declared value, pair or triple was
    not reached (`coverage.reach`, told to ``on_coverage``). Used by the equivalence suite
    (``suites/contenders/test_equivalence.py``)."""
    budget = strategies.example_budget(compiled=contender.compiled is not None,
                                       interpreted=contender.untimed_reason() is not None)
    chosen = settings(max_examples=budget) if budget else (lambda f: f)
    seeded = hypothesis_seed(seed) if seed is not None else (lambda f: f)  # over derandomize
    fixed = coverage.covering(contender)
    seen: list[Case] = []

    def with_examples(test):
        for case in reversed(fixed):  # decorators apply bottom-up: run in `fixed`'s order
            test = example(case=case)(test)
        return test

    @seeded
    @chosen
    @with_examples
    @given(case=strategies.for_contender(contender))
    def property_holds(case: Case) -> None:
        try:
            verdict = verdict_of(contender, case, device, prop, timeout)
        except KeyboardInterrupt:  # pytest's summary then names the case that was running
            raise KeyboardInterrupt(f"checking {contender.name} on case {case.id}") from None
        on_case(contender, case, {prop: verdict})
        seen.append(case)
        assert verdict.ok, (
            f"{contender.name}: property '{prop}' fails on case {case.id}\n  {verdict.detail}\n"
            f"  reproduce: {repro_command(contender, case)}")

    def search() -> None:  # the draw must not depend on which modules are loaded
        with strategies.without_local_constants():
            property_holds()
        reached = coverage.reach(contender, seen)
        if on_coverage is not None:
            on_coverage(reached)
        assert not reached.missing, (
            f"{contender.name}: property '{prop}' never reached {', '.join(reached.missing)}: "
            "a declared combination went unchecked (harness.problem.coverage)")

    return search
