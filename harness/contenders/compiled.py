"""torch.compile contenders that prove, call by call, that compiled code ran.

Dynamo specialises on dtype, reduction, weight-or-None, ignore_index and label_smoothing;
each new combination compiles again, and past the recompile limit it silently runs eager.
So each `CompiledFunction` compiles through its own backend — inductor, wrapped — that
counts compilations and executions of compiled graphs. A call during which no compiled
graph ran is a fallback, and raises `CompileFallbackError` instead of returning an eager
result under a compiled name. Shapes are dynamic from the first compile, so new sizes do
not each trigger a compile; ``fullgraph=True`` turns a graph break into an error.
"""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from harness.contenders import Capabilities, Contender, register
from harness.contenders.multiclass import NLL_CAPS

# Each wrapped function is its own code object, so each has its own dynamo cache and limit.
# One process may check and benchmark a dozen compile signatures; past dynamo's default
# limit of 8 it would fall back to eager (which `CompiledFunction` reports as an error), so
# the harness raises the limit to this value — fallbacks are still detected, never hidden.
RECOMPILE_LIMIT = 64


class CompileFallbackError(RuntimeError):
    """torch.compile ran the function eagerly (recompile limit reached or guard failure)."""


@dataclass
class CompileStats:
    """Per-contender counters in this process: graphs compiled, compiled graphs executed.
    (Compile time is measured by the benchmarks, per signature and mode: harness.benchmark.step.)"""

    compiles: int = 0
    graph_runs: int = 0


def _no_duck_sizing():
    """Duck sizing assumes equal sizes stay equal (a 5x5 image guards H == W) and
    recompiles when they are not; turn it off where this torch has the switch."""
    config = getattr(getattr(torch.fx, "experimental", None), "_config", None)
    if config is not None and hasattr(config, "use_duck_shape"):
        return config.patch(use_duck_shape=False)
    return contextlib.nullcontext()


def _limit_name() -> str:
    config = torch._dynamo.config
    return "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"


def recompile_limit() -> int:
    return getattr(torch._dynamo.config, _limit_name())


def raise_recompile_limit(at_least: int = RECOMPILE_LIMIT) -> None:
    if recompile_limit() < at_least:
        setattr(torch._dynamo.config, _limit_name(), at_least)


def own_code(fn, suffix: str):
    """``fn`` as a new function with a code object of its own (named ``<name><suffix>``):
    dynamo keeps its cache and recompile count per code object, so this copy compiles apart
    from ``fn`` — inductor's on-disk caches still serve a graph it compiled before."""
    code = fn.__code__.replace(co_name=fn.__code__.co_name + suffix)
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


class CompiledFunction:
    """`torch.compile(fn, dynamic=..., fullgraph=True)` with fallback detection: dynamic
    shapes for the equivalence suites (one compile for many sizes), static ones (`static`)
    for the benchmarks."""

    def __init__(self, name: str, fn, smoothing: bool = True, dynamic: bool = True):
        self.name = name
        self.smoothing = smoothing
        self.stats = CompileStats()
        self._body = fn
        self._copies = 0
        self._dynamic = dynamic
        self._compiled = None  # made at the first call (`_graph`)

    def static(self) -> CompiledFunction:
        """A new `dynamic=False` copy on a code object of its own: it compiles once per
        shape it meets, each specialised and autotuned for that shape, and its compiles
        neither count against nor reset this one's. (With dynamic shapes, inductor tunes
        its kernels on the first shape and reuses them: the 4096 × 32000 landmark ran
        kernels tuned for 256 × 1000.) Each call makes a fresh copy, so that its first
        call's time is a compile, not a cache hit of dynamo's."""
        self._copies += 1
        return type(self)(self.name, own_code(self._body, f"_static{self._copies}"),
                          self.smoothing, dynamic=False)

    def _graph(self):
        """torch.compile's wrapper, made at the first call rather than at registration:
        making it imports torch._dynamo (about 1.4 s), which every process that reads the
        registry (each command, each check worker, each child pytest) paid, compiled
        contender called or not."""
        if self._compiled is None:
            raise_recompile_limit()
            self._compiled = torch.compile(self._body, backend=self._backend, dynamic=self._dynamic,
                                           fullgraph=True)
        return self._compiled

    def _backend(self, gm: torch.fx.GraphModule, example_inputs):
        from torch._inductor.compile_fx import compile_fx

        self.stats.compiles += 1
        compiled = compile_fx(gm, example_inputs)
        stats = self.stats

        def run(*args):
            stats.graph_runs += 1
            return compiled(*args)

        return run

    def __call__(self, input, target, weight=None, ignore_index=-100, reduction="mean",
                 label_smoothing=0.0):
        if label_smoothing and not self.smoothing:
            raise ValueError(f"{self.name} has no label_smoothing; got {label_smoothing}")
        return self.run((input, target, weight, ignore_index, reduction, label_smoothing))

    def run(self, args: tuple) -> torch.Tensor:
        """Call the compiled function on positional ``args``; raise `CompileFallbackError` if
        no compiled graph ran. Family-specific wrappers (the binary one) call this with their
        own argument list."""
        runs = self.stats.graph_runs
        with _no_duck_sizing():
            out = self._graph()(*args)
        if self.stats.graph_runs == runs:
            raise CompileFallbackError(
                f"{self.name}: torch.compile fell back to eager after {self.stats.compiles} "
                f"compiles (recompile limit {recompile_limit()}); not reporting an eager result "
                "under a compiled name — group cases by compile signature or raise the limit")
        return out


def _cross_entropy_body(input, target, weight, ignore_index, reduction, label_smoothing):
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)


def _logsoftmax_nll_body(input, target, weight, ignore_index, reduction, label_smoothing):
    return F.nll_loss(F.log_softmax(input, dim=1), target, weight=weight,
                      ignore_index=ignore_index, reduction=reduction)


def for_timing(contender: Contender) -> Contender:
    """The contender as a benchmark times it: a compiled one as a fresh static copy
    (`CompiledFunction.static`, its own counters), anything else as it is. The benchmark
    calls this once per case: one compile per case, timed apart (`harness.benchmark.step.compile_cost`)."""
    fn = contender.fn
    if not isinstance(fn, CompiledFunction):
        return contender
    static = fn.static()
    return replace(contender, fn=static, compiled=static.stats,
                   description=contender.description.replace("dynamic shapes", "static shapes"))


def _make(name: str, body, description: str, caps: Capabilities) -> Contender:
    fn = CompiledFunction(name, body, smoothing=caps.label_smoothing)
    return register(Contender(name, "multiclass", fn, description, caps=caps, compiled=fn.stats))


compiled_eager = _make("compiled_eager", _cross_entropy_body,
                       "torch.compile(F.cross_entropy), dynamic shapes", Capabilities())
compiled_logsoftmax_nll = _make("compiled_logsoftmax_nll", _logsoftmax_nll_body,
                                "torch.compile(log_softmax + nll_loss), dynamic shapes",
                                NLL_CAPS)
