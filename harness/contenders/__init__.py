"""The contender registry: name → implementation with declared capabilities.

A contender is data. The harness asks `Contender.skip_reason(case, device)` before it runs
one, so a case outside its capabilities is skipped with that reason, never silently.

Three sources, one shape:
* built-ins (`harness.contenders.multiclass`, `...compiled`, `...binary`, ...);
* ``--contender NAME=MODULE:ATTR`` / ``--binary-contender NAME=MODULE:ATTR`` at run time;
* the entry-point groups ``xentbench.contenders`` and ``xentbench.binary_contenders``.

An external ATTR may be a plain function with the family's signature (it is then assumed
to support everything, so every case checks it) or a ready `Contender`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from harness.problem.capabilities import Capabilities
from harness.problem.case import Case
from harness.problem.families import FAMILIES, family


class ContenderError(ValueError):
    """A contender that cannot be loaded or registered, with how to fix it."""


@dataclass(frozen=True)
class Contender:
    """A named implementation. ``fn`` has the family's signature: that of
    `F.cross_entropy` (multiclass) or `F.binary_cross_entropy_with_logits` (binary).

    ``limits(inputs, oracle)`` predicts, from theory, where the implementation breaks
    down on these inputs (see `harness.problem.expectations.Expectation`);
    ``compiled`` carries compile statistics for torch.compile contenders; ``why_unavailable``
    says why it cannot run here (e.g. missing Triton) or None; ``why_untimed`` says why it
    runs but must not be timed here (Triton's interpreter) or None."""

    name: str
    family: str
    fn: Callable[..., Any]
    description: str
    caps: Capabilities = field(default_factory=Capabilities)
    source: str = "builtin"
    limits: Callable[..., Any] | None = None
    compiled: Any = None
    why_unavailable: Callable[[], str | None] | None = None
    why_untimed: Callable[[], str | None] | None = None

    def untimed_reason(self) -> str | None:
        """Why timing this contender here would be meaningless (an interpreter), or None."""
        return self.why_untimed() if self.why_untimed is not None else None

    def unavailable(self, device: str = "cpu") -> str | None:
        """Why this contender cannot run at all here (missing package, device), or None."""
        if self.why_unavailable is not None and (why := self.why_unavailable()):
            return f"{self.name}: {why}"
        if device.split(":")[0] not in self.caps.devices:
            return f"{self.name} does not support device {device}"
        return None

    def skip_reason(self, case: Case, device: str = "cpu") -> str | None:
        """Why this contender cannot run this case here, or None when it can."""
        if why := self.unavailable(device):
            return why
        caps, cannot = self.caps, []
        if case.family != self.family:
            cannot.append(f"it is a {self.family} contender and this is a {case.family} case")
        if case.weights != "none" and not caps.weights:
            cannot.append("class weights")
        if case.ignore_frac and not caps.ignore_index:
            cannot.append("ignore_index")
        if case.label_smoothing and not caps.label_smoothing:
            cannot.append("label_smoothing")
        if case.soft and not caps.soft_targets:
            cannot.append("soft (probability) targets")
        if len(case.spatial) not in caps.spatial_dims:
            cannot.append(f"{len(case.spatial)}-D spatial inputs")
        if case.dtype not in caps.dtypes:
            cannot.append(f"dtype {case.dtype}")
        if device.split(":")[0] not in caps.devices:
            cannot.append(f"device {device}")
        if case.reduction not in caps.reductions:
            cannot.append(f"reduction={case.reduction}")
        if case.layout not in caps.layouts:
            cannot.append(f"layout {case.layout}")
        if caps.max_classes is not None and case.c > caps.max_classes:
            cannot.append(f"more than {caps.max_classes} classes")
        return f"{self.name} does not support " + ", ".join(cannot) if cannot else None

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


_BUILTINS: dict[str, Contender] = {}


def register(contender: Contender) -> Contender:
    """Add a built-in; a second contender under a taken name is an error."""
    if contender.family not in FAMILIES:
        raise ContenderError(f"{contender.name}: family must be one of {tuple(FAMILIES)}")
    if contender.name in _BUILTINS:
        raise ContenderError(f"a contender named {contender.name!r} is already registered")
    _BUILTINS[contender.name] = contender
    return contender


def _load_builtins() -> None:
    if _BUILTINS:
        return
    for module in ("multiclass", "compiled", "binary", "fused"):
        importlib.import_module(f"harness.contenders.{module}")


def builtins(family: str | None = None) -> list[Contender]:
    _load_builtins()
    return [c for c in _BUILTINS.values() if family in (None, c.family)]


def get(name: str) -> Contender:
    _load_builtins()
    try:
        return _BUILTINS[name]
    except KeyError:
        raise ContenderError(f"no built-in contender {name!r}; known: {sorted(_BUILTINS)}") from None


def parse_spec(spec: str, family: str = "multiclass") -> Contender:
    """Load ``NAME=MODULE:ATTR`` (ATTR may be dotted). MODULE is imported from the working
    directory or PYTHONPATH."""
    name, sep, target = spec.partition("=")
    module_name, colon, attr = target.partition(":")
    if not (sep and colon and name and module_name and attr):
        raise ContenderError(
            f"cannot read contender {spec!r}: write NAME=MODULE:ATTR, "
            "e.g. probe=torch.nn.functional:cross_entropy")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ContenderError(f"contender {name}: cannot import module {module_name!r} ({exc}); "
                             "is it on PYTHONPATH or in the working directory?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ContenderError(f"contender {name}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return as_contender(name, obj, family, source=f"external {target}")


def as_contender(name: str, obj: Any, family: str, source: str) -> Contender:
    if isinstance(obj, Contender):
        if obj.family != family:
            raise ContenderError(
                f"contender {name}: a {obj.family} contender given as {family} ({source}): "
                f"pass it with {FAMILIES[obj.family].cli_flag}")
        return replace(obj, name=name, source=source)
    if not callable(obj):
        raise ContenderError(f"contender {name}: {obj!r} is not callable")
    return Contender(name=name, family=family, fn=obj, source=source,
                     description=f"external {getattr(obj, '__qualname__', repr(obj))}")


def from_entry_points(name: str) -> list[Contender]:
    """Contenders installed under the family's entry-point group."""
    found = []
    for ep in entry_points(group=family(name).entry_point_group):
        found.append(as_contender(ep.name, ep.load(), name, source=f"entry point {ep.value}"))
    return found


def resolve(family: str, specs: list[str] = (), include_builtins: bool = True) -> list[Contender]:
    """Built-ins, entry points and ``--contender`` specs of one family; names must be unique."""
    chosen = builtins(family) if include_builtins else []
    chosen += from_entry_points(family)
    chosen += [parse_spec(s, family) for s in specs]
    seen: dict[str, str] = {}
    for c in chosen:
        if c.name in seen:
            raise ContenderError(f"two contenders are named {c.name!r} ({seen[c.name]} and "
                                 f"{c.source}); give the external one another NAME")
        seen[c.name] = c.source
    return chosen
