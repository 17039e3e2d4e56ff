"""How a user declares a contender in one line: what it handles (`parse_caps`), and an
nn.Module loss class taken as it is (`module_contender`).

The syntax, on the command line and in an entry point's ``xentbench_caps`` attribute::

    NAME=MODULE:ATTR                       a function with the family's signature
    NAME=MODULE:Class(gamma=0, eps=1e-6)   an nn.Module loss, with constructor arguments
    ...@no-label-smoothing,dtypes=f32+f64  what it does not handle, after an '@'

Clauses, separated by commas, each one capability's (`harness.problem.capabilities`
declares them; `CLAUSES` has the list an unknown clause's error prints): ``no-label-smoothing`` for a
flag, ``dtypes=f32+f64`` or ``spatial=0+1+2`` for a set, ``max-classes=N`` and
``label-smoothing<X`` for a bound, ``float32-output`` (returns float32 for half-precision
inputs by design, so `meta` expects float32 there).

An nn.Module class's constructor decides the rest: a parameter it lacks (``weight``,
``ignore_index``, ``label_smoothing``, ``pos_weight``, ``reduction``) is a capability it
lacks, and cases that need it are skipped with the reason. Tests:
``suites/harness/test_declare.py``.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import replace
from typing import Any

import torch

from harness.problem import capabilities as caps_record
from harness.problem.capabilities import Capabilities


class DeclarationError(ValueError):
    """A declaration that cannot be read; the message says what is wrong and the fix."""


# Every clause is an entry's (`harness.problem.capabilities`): a flag's ``no-<name>``, a
# set's ``<clause>=A+B``, a bound's ``max-classes=N`` / ``label-smoothing<X``, a trait.
FLAGS = tuple(c.name for c in caps_record.of_kind("flag"))
SETS: dict[str, tuple[str, Any]] = {  # clause -> (Capabilities field, allowed values)
    c.clause: (c.name, c.values) for c in caps_record.of_kind("set")}
BOUNDS: dict[str, tuple[str, type]] = {  # clause before its number -> (field, number type)
    c.clause.partition("{")[0]: (c.name, c.number) for c in caps_record.of_kind("bound")}
TRAITS = {c.clause: c.name for c in caps_record.of_kind("trait")}
CLAUSES = ([caps_record.BY_NAME[f].clause for f in FLAGS]
           + [f"{prefix}{'N' if kind is int else 'X'}" for prefix, (_, kind) in BOUNDS.items()]
           + list(TRAITS) + [f"{k}=A+B" for k in SETS])


def parse_caps(text: str, base: Capabilities | None = None) -> Capabilities:
    """``base`` (every case when None) narrowed by the clauses in ``text``."""
    caps = base or Capabilities()
    for clause in (c.strip() for c in text.split(",")):
        if clause:
            caps = _apply(clause, caps)
    return caps


def _apply(clause: str, caps: Capabilities) -> Capabilities:
    flag = clause.removeprefix("no-").replace("-", "_")
    if clause.startswith("no-") and flag in FLAGS:
        return replace(caps, **{flag: False})
    if clause in TRAITS:
        return replace(caps, **{TRAITS[clause]: True})
    for prefix, (field, kind) in BOUNDS.items():
        if clause.startswith(prefix):
            bound = _number(clause, clause.removeprefix(prefix), kind)
            return replace(caps, **{field: _tighter(getattr(caps, field), bound)})
    key, eq, value = clause.partition("=")
    if eq and key in SETS:
        field, allowed = SETS[key]
        chosen = [v.strip() for v in value.split("+") if v.strip()]
        typed = [int(v) if v.isdigit() and all(isinstance(a, int) for a in allowed) else v
                 for v in chosen]
        bad = [v for v in typed if v not in allowed]
        if bad or not typed:
            raise DeclarationError(f"capability {clause!r}: {key} takes values from "
                                   f"{'+'.join(map(str, allowed))}, joined by '+'")
        return replace(caps, **{field: frozenset(typed) & frozenset(getattr(caps, field))})
    raise DeclarationError(f"unknown capability {clause!r}; use comma-separated clauses from: "
                           f"{', '.join(CLAUSES)}")


def _tighter(current, given):
    """A declaration narrows: the smaller of an existing bound and the declared one."""
    return given if current is None else min(current, given)


def _number(clause: str, text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise DeclarationError(f"capability {clause!r}: {text!r} is not a "
                               f"{'whole number' if kind is int else 'number'}") from None
    if value <= 0:
        raise DeclarationError(f"capability {clause!r}: must be above 0")
    return value


def format_caps(caps: Capabilities) -> str:
    """The clauses that declare ``caps`` (empty for everything): the inverse of
    `parse_caps`."""
    full, out = Capabilities(), []
    for entry in caps_record.CAPABILITIES:
        value = getattr(caps, entry.name)
        if value == getattr(full, entry.name):
            continue
        if entry.kind in ("flag", "trait"):
            out.append(entry.clause)
        elif entry.kind == "bound":
            out.append(entry.clause.format(value))
        else:
            out.append(f"{entry.clause}=" + "+".join(str(v) for v in entry.values if v in value))
    return ",".join(out)


# ---- the target: MODULE:ATTR, MODULE:Class(args), then @caps ----------------------------
def split_target(target: str) -> tuple[str, str, dict, str]:
    """``MODULE:ATTR[(k=v, ...)][@caps]`` → (module, attr, constructor kwargs, caps text)."""
    head, caps = target, ""
    if "@" in target and ")" not in target.rpartition("@")[2]:
        head, _, caps = target.rpartition("@")
    module, _, attr = head.partition(":")
    kwargs: dict = {}
    if "(" in attr:
        attr, _, rest = attr.partition("(")
        kwargs = _constructor_kwargs(f"f({rest}", head)
    return module, attr.strip(), kwargs, caps


def _constructor_kwargs(call: str, spec: str) -> dict:
    try:
        node = ast.parse(call, mode="eval").body
        if not isinstance(node, ast.Call) or node.args:
            raise ValueError("positional arguments")
        return {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except (SyntaxError, ValueError) as exc:
        raise DeclarationError(f"cannot read the constructor arguments of {spec!r} ({exc}): "
                               "write Class(name=value, ...) with literal values") from None


# ---- nn.Module loss classes -------------------------------------------------------------
# the call options the harness passes, per family, and what lacking each one means
_MULTICLASS_OPTIONS = ("weight", "ignore_index", "label_smoothing", "reduction")
_BINARY_OPTIONS = ("weight", "pos_weight", "reduction")
_DEFAULTS = {"weight": None, "pos_weight": None, "ignore_index": -100, "label_smoothing": 0.0,
             "reduction": "mean"}


def is_module_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def module_caps(cls: type, index_targets: bool, fixed: dict) -> tuple[Capabilities, tuple[str, ...]]:
    """What ``cls``'s constructor lets the harness pass (the options it accepts and the
    user did not fix), and the capabilities that follow."""
    params = inspect.signature(cls).parameters
    # nn.Module.__init__(*args, **kwargs) takes no loss option: a class that does not define
    # its own constructor (or only forwards **kwargs to it) accepts none
    own_init = cls.__init__ is not torch.nn.Module.__init__
    open_kw = own_init and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options = _MULTICLASS_OPTIONS if index_targets else _BINARY_OPTIONS
    if clash := sorted(set(fixed) & set(options)):
        raise DeclarationError(f"{', '.join(clash)} is passed by the harness per case; give "
                               "only the other constructor arguments (e.g. gamma=0)")
    accepted = tuple(o for o in options if (o in params or open_kw) and o not in fixed)
    caps = Capabilities()
    if "reduction" not in accepted:
        caps = replace(caps, reductions=frozenset({fixed.get("reduction", "mean")}))
    if index_targets:
        caps = replace(caps, weights="weight" in accepted, ignore_index="ignore_index" in accepted,
                       label_smoothing="label_smoothing" in accepted)
    else:  # pos_weight's form passes weight=[w0] and pos_weight=[w1/w0]
        caps = replace(caps, weights={"weight", "pos_weight"} <= set(accepted),
                       elementwise_weight="weight" in accepted)
    return caps, accepted


def module_function(cls: type, fixed: dict, accepted: tuple[str, ...]):
    """A function with the family's signature that builds ``cls(**fixed, **options)`` and
    calls it on (input, target). An option the class does not accept must be at its
    default (`Contender.skip_reason` keeps other cases away)."""

    built: dict = {}  # one instance per option set: construction is not the loss's cost

    def call(input, target, **options):
        kwargs = dict(fixed)
        for key, value in options.items():
            if key in accepted:  # always: the class's own default may differ (kornia: 'none')
                kwargs[key] = value
            elif not _is_default(key, value) and not _unused_ignore_index(key, value, target):
                raise TypeError(f"{cls.__name__} takes no {key} (got {value!r})")
        key = tuple((k, id(v) if isinstance(v, torch.Tensor) else v) for k, v in sorted(kwargs.items()))
        if key not in built:
            built.clear()  # the last option set only: tensors are keyed by identity
            built[key] = (cls(**kwargs), kwargs)  # kwargs kept: their ids stay valid
        return built[key][0](input, target)

    call.__qualname__ = f"{cls.__name__}(...)"
    return call


def _unused_ignore_index(key: str, value: Any, target: torch.Tensor) -> bool:
    """An ignore_index that no target holds changes nothing: the harness passes the case's
    index even when nothing is ignored."""
    return key == "ignore_index" and not target.is_floating_point() and not bool((target == value).any())


def _is_default(key: str, value: Any) -> bool:
    default = _DEFAULTS.get(key, object())
    return value is default or (not isinstance(value, torch.Tensor) and value == default)
