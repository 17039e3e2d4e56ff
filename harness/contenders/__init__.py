"""The contender registry: name → implementation with declared capabilities.

A contender is data. The harness asks `Contender.skip_reason(case, device)` before it runs
one, so a case outside its capabilities is skipped with that reason, never silently.

Three sources, one shape:
* built-ins (`harness.contenders.multiclass`, `...compiled`, `...binary`, ...);
* ``--contender NAME=MODULE:ATTR`` / ``--binary-contender NAME=MODULE:ATTR`` at run time;
* the entry-point groups ``xentbench.contenders`` and ``xentbench.binary_contenders``.

An external ATTR may be a plain function with the family's signature (it is then assumed
to support everything, so every case checks it, unless it says otherwise: ``@clauses`` after
the spec, or an ``xentbench_caps`` attribute, `harness.contenders.declare`), an nn.Module
loss class (``MODULE:Class(k=v)``; its constructor decides what it handles) or a ready
`Contender`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from harness.contenders import declare
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
        cannot = self.case_gaps(case, device)
        return f"{self.name} does not support " + ", ".join(cannot) if cannot else None

    def case_gaps(self, case: Case, device: str | None = None) -> list[str]:
        """What of ``case`` lies outside the declared capabilities (and ``device``, when
        given), in words; empty when the contender handles it (`Capabilities.case_gaps`
        reads each capability's entry)."""
        cannot = [] if case.family == self.family else [
            f"it is a {self.family} contender and this is a {case.family} case"]
        return cannot + self.caps.case_gaps(case, device)

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
    # every module, always (a no-op once imported): one of them imported on its own — the
    # pytest session imports `compiled` — registers only its contenders
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
    """Load ``NAME=MODULE:ATTR[(k=v, ...)][@clauses]`` (ATTR may be dotted;
    `harness.contenders.declare` has the syntax). MODULE is imported from the working
    directory or PYTHONPATH."""
    name, sep, target = spec.partition("=")
    try:
        module_name, attr, ctor_kwargs, caps_text = declare.split_target(target)
    except declare.DeclarationError as exc:
        raise ContenderError(f"contender {name}: {exc}") from None
    if not (sep and ":" in target and name and module_name and attr):
        raise ContenderError(
            f"cannot read contender {spec!r}: write NAME=MODULE:ATTR, "
            "e.g. probe=torch.nn.functional:cross_entropy (declare what it lacks after '@', e.g. "
            "@no-label-smoothing)")
    obj: Any = import_module(name, module_name)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ContenderError(f"contender {name}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return as_contender(name, obj, family, source=f"external {target}", caps_text=caps_text,
                        ctor_kwargs=ctor_kwargs)


def import_module(name: str, module_name: str) -> Any:
    """Import the module of contender ``name`` from the working directory or PYTHONPATH.
    Whatever its import raises is the user's to fix (exit 2, not a traceback and the exit
    1 of a wrong loss): a `ContenderError` in one line with the file and line it raised at."""
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise ContenderError(f"contender {name}: cannot import module {module_name!r} ({exc}); "
                                 "is it on PYTHONPATH or in the working directory?") from None
        # found, but an import in it (or in a module it imports) is not installed: the
        # deepest line is that import
        raise ContenderError(f"contender {name}: {_raised_at(exc)}: imports {exc.name}, which "
                             "is not installed in this Python") from None
    except SyntaxError as exc:  # the frame is the import machinery's: the error knows the line
        raise ContenderError(f"contender {name}: {_shown(exc.filename)}:{exc.lineno}: "
                             f"{type(exc).__name__}: {exc.msg}") from None
    except Exception as exc:  # raised by the module's own code as it ran
        first = next((line for line in str(exc).splitlines() if line.strip()), "")  # one line
        what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        raise ContenderError(f"contender {name}: {_raised_at(exc, _origin(module_name))}: {what}") from None


def _raised_at(exc: BaseException, own: str | None = None) -> str:
    """FILE:LINE where ``exc`` was raised, past the import machinery: the deepest line, or
    with ``own`` (the named module's file) that file's last line on the way down (its
    line that called what raised, say in torch)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    frame = ([f for f in frames if f.filename == own] or frames or [None])[-1]
    return f"{_shown(frame.filename)}:{frame.lineno}" if frame else "?"


def _origin(module_name: str) -> str | None:
    """The file of ``module_name`` (a failed import leaves it out of sys.modules)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):  # its package failed to import: no file to name
        return None
    return spec.origin if spec is not None else None


def _shown(filename: str | None) -> str:
    """``filename`` relative to the working directory when it lies inside it."""
    if not filename:
        return "?"
    path = Path(filename)
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return filename


def as_contender(name: str, obj: Any, family: str, source: str, caps_text: str = "",
                 ctor_kwargs: dict | None = None) -> Contender:
    """A `Contender` from what a user named: a Contender (kept), an nn.Module loss class
    (built per call with ``ctor_kwargs``), or a function. ``caps_text`` (clauses of
    `declare.parse_caps`) and the object's ``xentbench_caps`` attribute narrow what it
    is checked on."""
    if isinstance(obj, Contender):
        if obj.family != family:
            raise ContenderError(
                f"contender {name}: a {obj.family} contender given as {family} ({source}): "
                f"pass it with {FAMILIES[obj.family].cli_flag}")
        return replace(obj, name=name, source=source, caps=_declared(name, obj.caps, caps_text))
    if ctor_kwargs and not declare.is_module_class(obj):
        raise ContenderError(f"contender {name}: constructor arguments are for nn.Module loss "
                             f"classes, and {obj!r} is not one")
    if declare.is_module_class(obj):
        try:
            caps, accepted = declare.module_caps(obj, FAMILIES[family].index_targets, ctor_kwargs or {})
        except (TypeError, ValueError) as exc:
            raise ContenderError(f"contender {name}: cannot read {obj.__name__}'s constructor "
                                 f"({exc})") from None
        fn = declare.module_function(obj, ctor_kwargs or {}, accepted)
        description = f"external nn.Module {obj.__module__}.{obj.__qualname__}"
    elif callable(obj):
        caps, fn = Capabilities(), obj
        description = f"external {getattr(obj, '__qualname__', repr(obj))}"
    else:
        raise ContenderError(f"contender {name}: {obj!r} is not callable")
    caps = _declared(name, caps, getattr(obj, "xentbench_caps", ""))
    return Contender(name=name, family=family, fn=fn, source=source, description=description,
                     caps=_declared(name, caps, caps_text))


def _declared(name: str, caps: Capabilities, text: str) -> Capabilities:
    try:
        return declare.parse_caps(text, caps) if text else caps
    except declare.DeclarationError as exc:
        raise ContenderError(f"contender {name}: {exc}") from None


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
