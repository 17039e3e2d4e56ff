"""The timed step of each mode, its replicated blocks, compile cost, and the one
correctness check made before timing (a fast wrong answer is never timed).

Modes: ``fwd`` is a training forward (the logits require grad, as in a training step);
``fwd_bwd`` adds ``loss.backward(upstream)``; ``x.grad`` is reset between rounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import torch

from harness.benchmark.per_call import call_kwargs, check_same_weights
from harness.benchmark.timing import EventRounds, flush_cache, synchronize
from harness.contenders import Contender
from harness.equivalence.properties import Verdict, check_grad, check_loss, check_nonfinite
from harness.equivalence.runner import CALL_TIMEOUT_S, evaluate, solve
from harness.problem.case import Case
from harness.problem.expectations import EXACT, Expect, Expectation
from harness.problem.inputs import Inputs, make_inputs


@lru_cache(maxsize=2)
def inputs_for(case: Case, device: str) -> Inputs:
    return make_inputs(case, device)


@lru_cache(maxsize=2)
def oracle_for(case: Case, device: str):
    return solve(inputs_for(case, device))


@dataclass(frozen=True)
class Step:
    """The timed function of one benchmark and its untimed per-round setup. On CUDA,
    ``events`` holds the CUDA-event times of the rounds (`harness.benchmark.timing.EventRounds`),
    the figure that replaces the wall clock."""

    run: Callable[[], object]
    setup: Callable[[], object]
    events: EventRounds | None = None


def make_step(contender: Contender, inputs: Inputs, mode: str, device: str,
              flush: bool | None = None, events: EventRounds | None = None) -> Step:
    """The benchmark's step; ``flush`` None is the default of `harness.options.flush_l2`
    (on for CUDA). On CUDA the timed function is a round of `EventRounds`, whose calls
    after the first clear the gradient on the host only (no flush, no synchronisation)."""
    x = inputs.logits.detach().requires_grad_(True)
    target, kwargs = inputs.target, call_kwargs(inputs)  # per-call weights: computed in the call
    upstream = inputs.grad_out
    flush = device.startswith("cuda") if flush is None else flush

    def clear() -> None:
        x.grad = None

    def setup() -> None:
        x.grad = None
        if flush:
            flush_cache(device)
        synchronize(device)

    def fwd() -> None:
        contender(x, target, **kwargs())

    def fwd_bwd() -> None:
        loss = contender(x, target, **kwargs())
        loss.backward(upstream.to(loss.dtype).expand_as(loss))

    compute = fwd if mode == "fwd" else fwd_bwd
    if device.startswith("cuda"):
        events = events or EventRounds()
        return Step(events.wrap(compute, between=clear), setup, events)
    return Step(compute, setup)


def clone_inputs(inputs: Inputs) -> Inputs:
    """A copy of ``inputs`` in new memory with the same strides (a strided view stays a
    strided view): what a replicate times instead of regenerating the case in float64 on
    the CPU (`make_inputs`), which took longer than the benchmark on a GPU."""

    def again(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        out = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=t.device)
        return out.copy_(t)

    return replace(inputs, logits=again(inputs.logits), target=again(inputs.target),
                   weight=again(inputs.weight), grad_out=again(inputs.grad_out))


REPLICATES = 4  # fresh copies of the inputs per benchmark (`Replicates`)


class Replicates:
    """One benchmark's rounds in ``blocks`` consecutive blocks, each on a fresh copy of the
    inputs; all copies stay allocated until the benchmark ends, so that each lands
    elsewhere in memory (a freed copy's memory would be handed to the next). Why: where a
    tensor lands moves a memory-bound loss by up to ±25 % (measured: the same
    2×4×32×64×64 fwd_bwd re-allocated eight times in one process, medians 5.2-8.7 ms), a
    shift that rounds on one allocation cannot show and that made two runs of identical
    code disagree at p < 1e-4. `harness.analysis.compare` resamples the blocks, so this variation
    widens the interval instead of faking a change.

    Every block gets its own copy, the first too: the copy the correctness check and the
    warmup used is cached per case and shared by every contender of it, so a bad landing
    of it moved all of a case's benchmarks together (seen: 6 of 6 benchmarks of one case
    1.4-1.9× slower in an A/A pair).

    ``setup`` and ``run`` are what pytest-benchmark's ``pedantic`` calls; the switch to a
    new copy, and one untimed call on it (first-touch page faults), happen in ``setup``."""

    def __init__(self, fresh: Callable[[], Step], first: Step, blocks: int, per_block: int,
                 warmup_rounds: int) -> None:
        self._fresh, self.step = fresh, first
        self._alive = [first]  # every copy stays allocated: a freed one's memory would be reused
        self.blocks, self.per_block, self._warmup = blocks, per_block, warmup_rounds
        self._calls = 0

    @property
    def rounds(self) -> int:
        return self.blocks * self.per_block

    def setup(self) -> None:
        timed = self._calls - self._warmup
        self._calls += 1
        if timed >= 0 and timed % self.per_block == 0:
            step = self._fresh()
            step.setup()
            step.run()
            self.step = step
            self._alive.append(step)
        self.step.setup()

    def run(self) -> None:
        self.step.run()


def replicated(contender: Contender, case: Case, mode: str, device: str, first: Step, rounds: int,
               flush: bool | None = None, warmup_rounds: int = 1, blocks: int | None = None) -> Replicates:
    """`Replicates` of ``first`` for about ``rounds`` rounds in ``blocks`` blocks (at least
    two rounds each); by default `REPLICATES` on CPU, one on CUDA, whose caching allocator
    hands a benchmark the same blocks every round anyway. With passes
    (`harness.benchmark.passes`), each pass times its share of the blocks."""
    if blocks is None:
        blocks = REPLICATES if device == "cpu" else 1
    per_block = max(2, math.ceil(rounds / blocks))

    def fresh() -> Step:
        return make_step(contender, clone_inputs(inputs_for(case, device)), mode, device, flush,
                         first.events)

    return Replicates(fresh, first, blocks, per_block, warmup_rounds)


def check_before_timing(contender: Contender, case: Case, mode: str, device: str,
                        timeout: float | None = CALL_TIMEOUT_S) -> list[Verdict]:
    """Run the contender once, forward and backward, and judge the loss, the non-finite
    pattern and the gradient, whatever ``mode`` times: a forward that is right only by
    chance is still a wrong loss (on the seed's landmark the logits do not depend on the
    targets, every class's mean loss is about the same, and a loss that drops ``weight``
    passed a forward-only check and was timed in ``fwd``; its gradient gives it away).
    A per-call case (`Case.per_call`) also checks that the weights the step computes in
    every call are the ones judged (`harness.benchmark.per_call.check_same_weights`).
    Untimed; a call past ``timeout`` seconds is a failure
    (`harness.equivalence.runner.time_limit`). ``mode`` is kept for the callers' record."""
    del mode  # every mode is judged alike
    inputs = inputs_for(case, device)
    truth = oracle_for(case, device)
    expect = expectation(contender, case, device)
    outcome = evaluate(contender, inputs, backward=True, requires_grad=True, timeout=timeout)
    verdicts = [check_loss(outcome, truth, inputs, expect),
                check_nonfinite(outcome, truth, inputs, expect), check_grad(outcome, truth, inputs, expect)]
    if case.per_call:  # the step computes the weights itself: they must be the ones judged
        verdicts.append(check_same_weights(inputs))
    return verdicts


def predicted_breakdown(contender: Contender, case: Case, device: str) -> str | None:
    """Why timing this contender here would time a known-wrong answer, or None. A
    degraded regime (accuracy unspecified, nothing predicted wrong) is still timed; its
    benchmark records ``accuracy: degraded``."""
    expect = expectation(contender, case, device)
    wrong = {Expect.BREAKS, Expect.DEPARTS}
    if expect.loss in wrong or expect.grad in wrong:
        return f"{contender.name} is predicted to break down on {case.id}: {expect.reason}"
    return None


_expectations: dict[tuple[str, Case, str], Expectation] = {}


def expectation(contender: Contender, case: Case, device: str) -> Expectation:
    """What theory predicts for this contender here; computed once per case (a
    contender's limits may scan every element of a full-size case)."""
    if contender.limits is None:
        return EXACT
    key = (contender.name, case, device)
    if key not in _expectations:
        _expectations[key] = contender.limits(inputs_for(case, device), oracle_for(case, device))
    return _expectations[key]


@dataclass(frozen=True)
class CompileCost:
    """Seconds of the first call of a benchmark's compiled copy (`harness.contenders.compiled.for_timing`),
    in this process: everything its mode compiles (a training forward's graphs — on torch
    2.13 AOT autograd compiles the backward then too — and for ``fwd_bwd`` the backward's)
    and one execution. ``warm_s`` is the same first call of a second fresh copy, whose
    graphs inductor serves from its on-disk caches: the cost of a process that compiled
    this before. No `torch._dynamo.reset()`: it would reset every compiled contender of
    the session (and did, until issue 20)."""

    cold_s: float
    warm_s: float | None
    what: str


def compile_cost(step: Step, mode: str, again: Callable[[], Step] | None = None,
                 compiled_before: bool = False) -> CompileCost:
    """Time the first call of ``step`` (a fresh compiled copy) and, when ``again`` is given,
    the first call of the step it makes (another fresh copy). ``compiled_before``: the copy
    already ran in another mode of the same case (its ``fwd``), so this measures what that
    left uncompiled — about one step's time on torch 2.13."""
    what = {"fwd": "forward graph", "fwd_bwd": "forward and backward graphs"}[mode]
    if compiled_before:
        what = "what fwd left uncompiled (torch 2.13 compiles the backward with the forward)"
    cold = _first_call_seconds(step)
    warm = _first_call_seconds(again()) if again is not None else None
    return CompileCost(cold, warm, what)


def _first_call_seconds(step: Step) -> float:
    step.setup()
    start = time.perf_counter()
    step.run()  # on CUDA a round of `EventRounds`, which ends by waiting for the device
    return time.perf_counter() - start
