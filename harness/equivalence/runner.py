"""Calling a contender: forward, backward with the case's upstream gradient, and a
bit-for-bit check that the inputs survived. Failures are captured, not raised, so one bad
contender is recorded and reported without aborting the run."""

from __future__ import annotations

from collections.abc import Callable

import torch
from hypothesis import given, settings

from harness.contenders import Contender
from harness.equivalence.properties import PROPERTIES, Outcome, Verdict, check_all
from harness.problem import strategies
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


def evaluate(contender: Contender, inputs: Inputs, backward: bool = True,
             requires_grad: bool | None = None) -> Outcome:
    """Run one contender on one case and capture what it did. ``requires_grad`` (default:
    ``backward``) is whether the logits require grad — a training forward does even when
    no backward follows, and compiled or custom-autograd contenders take another path
    without it."""
    kwargs = call_args(inputs)
    named = {"logits": inputs.logits, "target": inputs.target, "grad_out": inputs.grad_out}
    named.update({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
    snapshots = {k: _bits(v) for k, v in named.items()}
    x = inputs.logits.detach().requires_grad_(backward if requires_grad is None else requires_grad)
    loss = grad = None
    error = None
    try:
        loss = contender(x, inputs.target, **kwargs)
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"returned {type(loss).__name__}, not a tensor")
        if backward:
            if not loss.requires_grad:
                raise RuntimeError("the loss does not require grad: it is detached from the logits")
            loss.backward(inputs.grad_out.to(loss.dtype).expand_as(loss))
            grad = x.grad
        loss = loss.detach()
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    modified = tuple(k for k, v in named.items() if not _same(snapshots[k], v))
    return Outcome(loss, grad, error, modified)


def solve(inputs: Inputs):
    """The oracle of the case's family."""

    return inputs.case.spec.oracle(inputs)


def verify(contender: Contender, case, device: str = "cpu",
           props: tuple[str, ...] = PROPERTIES) -> dict[str, Verdict]:
    """Build the case, run the contender, and judge the properties (all five by default)."""
    inputs = make_inputs(case, device)
    truth = solve(inputs)
    expect = contender.limits(inputs, truth) if contender.limits else EXACT
    return check_all(evaluate(contender, inputs), truth, inputs, expect, props)


def repro_command(contender: Contender, case) -> str:
    """One line that re-runs exactly this check."""
    flag = family(contender.family).cli_flag
    spec = (f" {flag} {contender.name}={contender.source.removeprefix('external ')}"
            if contender.source.startswith("external ") else "")
    return f"python -m harness check {case.id} --only {contender.name}{spec}"


def property_search(contender: Contender, prop: str, device: str,
                    on_case: Callable[[Contender, Case, dict[str, Verdict]], None]) -> Callable[[], None]:
    """A Hypothesis test of one property over the cases ``contender`` declares it handles
    (`strategies.cases`), against the oracle; call it to run the search. ``on_case`` sees
    every case checked. A failure names the case and prints the command that reproduces
    it. Used by both equivalence suites (``suites/contenders/``)."""
    budget = strategies.example_budget(compiled=contender.compiled is not None)
    chosen = settings(max_examples=budget) if budget else (lambda f: f)

    @chosen
    @given(case=strategies.for_contender(contender))
    def property_holds(case: Case) -> None:
        verdict = verify(contender, case, device, (prop,))[prop]
        on_case(contender, case, {prop: verdict})
        assert verdict.ok, (
            f"{contender.name}: property '{prop}' fails on case {case.id}\n  {verdict.detail}\n"
            f"  reproduce: {repro_command(contender, case)}")

    return property_holds
