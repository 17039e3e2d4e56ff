"""PyTorch's own sample inputs for the losses xentbench checks, as the harness's `Inputs`:
a conformance test of the oracle and the built-in contenders on tensors nobody here chose
(``suites/harness/test_conformance.py``).

The samples come from ``torch.testing._internal``: the OpInfo sample functions of
``nn.functional.cross_entropy``, ``nn.functional.nll_loss`` and
``nn.functional.binary_cross_entropy_with_logits`` (`common_methods_invocations`) and the
ModuleInfo inputs of ``nn.CrossEntropyLoss``, ``nn.NLLLoss`` and ``nn.BCEWithLogitsLoss``
(`common_modules`). Those modules are internal to torch and need ``expecttest``; when they
cannot be imported or have moved, `torch_samples` raises `SamplesUnavailable` with the
reason, and the test skips saying it.

Each sample becomes a `Case` that describes it (shape, classes, options: what the
properties need to know) and `Inputs` holding the sample's own tensors, cast to float64.
What PyTorch returns for it is the ``reference``: the functional or module itself, except
for ``nll_loss``, whose inputs are read as logits and compared through ``log_softmax``
(the oracle computes cross-entropy; ``nll_loss`` of log-probabilities is the same loss).
``nn.NLLLoss``'s inputs already are log-probabilities, which ``log_softmax`` leaves as they
are: the loss is the module's own, and the gradient the one cross-entropy has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.problem.case import Case, CaseError
from harness.problem.inputs import Inputs

F64 = torch.float64
FUNCTIONALS = ("nn.functional.cross_entropy", "nn.functional.nll_loss",
               "nn.functional.binary_cross_entropy_with_logits")
MODULES = ("CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss")
_BINARY = {"nn.functional.binary_cross_entropy_with_logits", "BCEWithLogitsLoss"}
_NLL = {"nn.functional.nll_loss", "NLLLoss"}


class SamplesUnavailable(RuntimeError):
    """torch's internal test modules cannot be imported here, or no longer hold the
    sample functions this module reads; the message says which and why."""


@dataclass(frozen=True)
class Sample:
    """One of PyTorch's samples: where it comes from (``source``, e.g.
    ``nn.functional.cross_entropy #7``), the harness's view of it (``inputs``, None when it
    cannot be expressed, with ``why_not``), and PyTorch's own loss and gradient for it."""

    source: str
    inputs: Inputs | None
    reference: Callable[[torch.Tensor], torch.Tensor] | None
    why_not: str = ""

    @property
    def family(self) -> str | None:
        return self.inputs.case.family if self.inputs is not None else None


def torch_samples(seed: int = 0) -> list[Sample]:
    """Every sample of `FUNCTIONALS` and `MODULES` on CPU in float64, drawn with
    ``seed`` (the sample functions draw from the global generator)."""
    op_db, module_db = _databases()
    torch.manual_seed(seed)
    out: list[Sample] = []
    for name in FUNCTIONALS:
        info = _one(op_db, lambda op, name=name: op.name == name, name)
        for k, s in enumerate(info.sample_inputs("cpu", F64, requires_grad=False)):
            out.append(_functional_sample(name, f"{name} #{k}", s.input, s.args[0], dict(s.kwargs)))
    for name in MODULES:
        info = _one(module_db, lambda m, name=name: m.module_cls.__name__ == name, name)
        for k, mi in enumerate(info.module_inputs_func(info, device="cpu", dtype=F64,
                                                        requires_grad=False, training=True)):
            fwd, ctor = mi.forward_input, mi.constructor_input
            out.append(_module_sample(info.module_cls, f"nn.{name} #{k} {mi.desc}".rstrip(),
                                      fwd.args[0], fwd.args[1], tuple(ctor.args), dict(ctor.kwargs)))
    return out


def _databases():
    try:
        from torch.testing._internal.common_methods_invocations import op_db
        from torch.testing._internal.common_modules import module_db
    except Exception as exc:  # ImportError (expecttest missing) or anything the move broke
        raise SamplesUnavailable(f"torch.testing._internal cannot be imported "
                                 f"({type(exc).__name__}: {exc}); install the dev extra "
                                 "(pip install -e '.[dev]', which pins expecttest)") from None
    return op_db, module_db


def _one(db, match, name: str):
    found = [x for x in db if match(x)]
    if not found:
        raise SamplesUnavailable(f"torch.testing._internal has no entry for {name}: the internal "
                                 "API moved; update harness/equivalence/samples.py")
    return found[0]


def _functional_sample(name: str, source: str, x: torch.Tensor, target: torch.Tensor,
                       kwargs: dict) -> Sample:
    kw = _as64(kwargs)
    if name in _BINARY:
        def bce(xx: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(xx, _f64(target), **kw)

        return _binary(source, x, target, kwargs, bce)
    if name in _NLL:  # read as logits: nll_loss of their log-probabilities is cross-entropy
        def nll(xx: torch.Tensor) -> torch.Tensor:
            return F.nll_loss(F.log_softmax(xx, dim=1 if xx.dim() > 1 else 0), target, **kw)

        return _multiclass(source, x, target, kwargs, nll)

    def ce(xx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(xx, _target64(target), **kw)

    return _multiclass(source, x, target, kwargs, ce)


def _module_sample(cls, source: str, x: torch.Tensor, target: torch.Tensor, args: tuple,
                   kwargs: dict) -> Sample:
    if args:
        return Sample(source, None, None, f"positional constructor arguments {args}")

    def ref(xx, kw=kwargs, t=target):
        if cls.__name__ in _NLL:  # its inputs are log-probabilities: read as logits, as above
            xx = F.log_softmax(xx, dim=1 if xx.dim() > 1 else 0)
        return cls(**_as64(kw))(xx, _target64(t))

    if cls.__name__ in _BINARY:
        return _binary(source, x, target, kwargs, ref)
    return _multiclass(source, x, target, kwargs, ref)


def _multiclass(source: str, x: torch.Tensor, target: torch.Tensor, kwargs: dict,
                reference) -> Sample:
    x, weight = _f64(x), kwargs.get("weight")
    soft = target.is_floating_point()
    batched = x.dim() > 1
    try:
        case = Case(n=x.shape[0] if batched else 1, c=x.shape[1] if batched else x.shape[0],
                    spatial=tuple(x.shape[2:]), dtype="f64",
                    reduction=kwargs.get("reduction", "mean"),
                    weights="random" if weight is not None else "none",
                    label_smoothing=float(kwargs.get("label_smoothing", 0.0)),
                    ignore_index=int(kwargs.get("ignore_index", -100)), soft=soft, batched=batched)
    except CaseError as exc:
        return Sample(source, None, None, str(exc))
    inputs = Inputs(case, x, _target64(target), None if weight is None else _f64(weight),
                    _upstream(case))
    return Sample(source, inputs, reference)


def _binary(source: str, x: torch.Tensor, target: torch.Tensor, kwargs: dict, reference) -> Sample:
    x, target = _f64(x), _f64(target)
    soft = bool(((target != 0) & (target != 1)).any())
    batched = x.dim() > 0
    try:
        case = Case(n=x.shape[0] if batched else 1, c=1, spatial=tuple(x.shape[1:]), dtype="f64",
                    family="binary", channel_dim=False, batched=batched,
                    reduction=kwargs.get("reduction", "mean"),
                    weights="random" if any(kwargs.get(k) is not None
                                            for k in ("weight", "pos_weight")) else "none",
                    soft=soft)
    except CaseError as exc:
        return Sample(source, None, None, str(exc))
    call = {"weight": kwargs.get("weight"), "pos_weight": kwargs.get("pos_weight"),
            "reduction": case.reduction}
    inputs = Inputs(case, x, target, None, _upstream(case), call=_as64(call))
    return Sample(source, inputs, reference)


def _upstream(case: Case) -> torch.Tensor:
    """The upstream gradient: values in [-1.25, 0.75), seeded by the case, as generated
    cases have, so that a 'none' gradient is not all ones."""
    gen = torch.Generator().manual_seed(case.seed)
    shape = case.target_shape if case.reduction == "none" else ()
    return torch.rand(shape, generator=gen, dtype=F64) * 2 - 1.25


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(F64)


def _target64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(F64) if t.is_floating_point() else t.detach()


def _as64(kwargs: dict) -> dict:
    return {k: _f64(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}


def iter_covered(samples: list[Sample]) -> Iterator[Sample]:
    """The samples the harness can express."""
    return (s for s in samples if s.inputs is not None)
