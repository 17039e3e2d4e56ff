"""The timed step of each mode, its replicated blocks, compile cost, and the one
correctness check made before timing (a fast wrong answer is never timed).

Modes: ``fwd`` is a training forward (the logits require grad, as in a training step);
``fwd_bwd`` adds ``loss.backward(upstream)``; ``x.grad`` is reset between rounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch

from harness.benchmark.timing import EventRounds, flush_cache, synchronize
from harness.contenders import Contender
from harness.equivalence.properties import Verdict, check_grad, check_loss, check_nonfinite
from harness.equivalence.runner import CALL_TIMEOUT_S, call_args, evaluate, solve
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
              flush: bool = False, events: EventRounds | None = None) -> Step:
    x = inputs.logits.detach().requires_grad_(True)
    target, kwargs = inputs.target, call_args(inputs)
    upstream = inputs.grad_out

    def setup() -> None:
        x.grad = None
        if flush:
            flush_cache(device)
        synchronize(device)

    def fwd() -> None:
        contender(x, target, **kwargs)

    def fwd_bwd() -> None:
        loss = contender(x, target, **kwargs)
        loss.backward(upstream.to(loss.dtype).expand_as(loss))

    compute = fwd if mode == "fwd" else fwd_bwd
    if device.startswith("cuda"):
        events = events or EventRounds()
        return Step(events.wrap(compute), setup, events)
    return Step(compute, setup)


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
               flush: bool = False, warmup_rounds: int = 1, blocks: int | None = None) -> Replicates:
    """`Replicates` of ``first`` for about ``rounds`` rounds in ``blocks`` blocks (at least
    two rounds each); by default `REPLICATES` on CPU, one on CUDA, whose caching allocator
    hands a benchmark the same blocks every round anyway. With passes
    (`harness.benchmark.passes`), each pass times its share of the blocks."""
    if blocks is None:
        blocks = REPLICATES if device == "cpu" else 1
    per_block = max(2, math.ceil(rounds / blocks))

    def fresh() -> Step:
        return make_step(contender, make_inputs(case, device), mode, device, flush, first.events)

    return Replicates(fresh, first, blocks, per_block, warmup_rounds)


def check_before_timing(contender: Contender, case: Case, mode: str, device: str,
                        timeout: float | None = CALL_TIMEOUT_S) -> list[Verdict]:
    """Run the timed function's computation once and judge what it returns: loss and
    non-finite pattern, plus the gradient in ``fwd_bwd``. Untimed; a call past ``timeout``
    seconds is a failure (`harness.equivalence.runner.time_limit`)."""
    inputs = inputs_for(case, device)
    truth = oracle_for(case, device)
    expect = expectation(contender, case, device)
    outcome = evaluate(contender, inputs, backward=mode == "fwd_bwd", requires_grad=True,
                       timeout=timeout)
    verdicts = [check_loss(outcome, truth, inputs, expect), check_nonfinite(outcome, truth, inputs, expect)]
    if mode == "fwd_bwd":
        verdicts.append(check_grad(outcome, truth, inputs, expect))
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


def compile_key(case: Case) -> str:
    """The case's compile signature (the values dynamo guards on, as
    `harness.problem.strategies.COMPILE_SIGNATURES` lists them; channels-last inputs also
    specialise C, which the strategies hold fixed)."""
    return (f"{case.family}-{case.dtype}-{case.reduction}-{case.weights != 'none'}-"
            f"{case.label_smoothing}-{case.ignore_index}-{len(case.spatial)}-{case.layout}")


@dataclass(frozen=True)
class CompileCost:
    """Seconds of the first call of one compile signature in one mode, in this process.

    ``cold_s`` includes whatever that call compiled and one execution: for ``fwd`` the
    graphs of a training forward (on torch 2.13 AOT autograd compiles the backward then
    too); for ``fwd_bwd`` only what ``fwd`` left uncompiled when ``fwd`` ran first — about
    one step's time on 2.13 (``what`` says which). ``warm_s`` is the same call after
    torch._dynamo.reset(), served from inductor's on-disk caches — measured only when the
    cold call compiled a dynamo graph, so a reset never runs for nothing."""

    cold_s: float
    warm_s: float | None
    what: str


_compile_costs: dict[tuple[str, str, str], CompileCost] = {}


def compile_cost(contender: Contender, step: Step, key: str, mode: str) -> CompileCost | None:
    """Measure a compiled contender's compile cost once per signature and mode (None for a
    contender that is not compiled)."""
    counters = contender.compiled
    if counters is None:
        return None
    if (contender.name, key, mode) in _compile_costs:
        return _compile_costs[(contender.name, key, mode)]
    forward_done = mode == "fwd_bwd" and (contender.name, key, "fwd") in _compile_costs
    what = {"fwd": "forward graph", "fwd_bwd": "forward and backward graphs"}[mode]
    if forward_done:
        what = "what fwd left uncompiled (torch 2.13 compiles the backward with the forward)"
    before = counters.compiles
    cold = _first_call_seconds(step)
    warm = None
    if counters.compiles > before:
        torch._dynamo.reset()
        warm = _first_call_seconds(step)
    cost = CompileCost(cold, warm, what)
    _compile_costs[(contender.name, key, mode)] = cost
    return cost


def _first_call_seconds(step: Step) -> float:
    step.setup()
    start = time.perf_counter()
    step.run()
    return time.perf_counter() - start
