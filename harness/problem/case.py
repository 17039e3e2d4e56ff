"""What a problem is: the frozen `Case` and its readable id.

A case id such as ``n8-c2-512x512-p0.05-f32-mean-wbalanced`` is the pytest id, the
results key and the reproduction handle at once: `Case.from_id(case.id) == case`.

Class frequencies are set by one number, ``p``, the share of the *rarest* class among
the targets that are not ignored:

* binary family and ``c == 2``: ``p`` is the positive fraction (class 1);
* ``c > 2``: class ``c - 1`` gets the share ``p``; classes ``0 .. c-2`` split the rest
  along a Zipf long tail (share of class k proportional to 1 / (k + 1)).

Counts are apportioned exactly (largest remainder), so the realised counts equal
`Case.class_counts()`. ``p == 0`` makes the rarest class absent; any ``0 < p`` gives it at
least one target, so extremes such as ``p = 1e-6`` reach "a single target".
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Literal, NamedTuple, get_args

import torch

from harness.problem.weights import SCHEMES, is_defined

if TYPE_CHECKING:
    from harness.problem.families import Family as FamilyRecord

Family = Literal["multiclass", "binary"]
FAMILY_NAMES: tuple[str, ...] = get_args(Family)  # each declared in harness.problem.families
Reduction = Literal["mean", "sum", "none"]
Layout = Literal["contiguous", "channels_last", "strided"]

DTYPES: dict[str, torch.dtype] = {
    "f64": torch.float64,
    "f32": torch.float32,
    "bf16": torch.bfloat16,
    "f16": torch.float16,
}
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
LAYOUTS: dict[str, str] = {"contiguous": "", "channels_last": "cl", "strided": "nc"}
DEFAULT_IGNORE_INDEX = -100
MAX_SPATIAL_DIMS = 5  # F.cross_entropy takes any rank; 5 covers video and 3-D + time
PER_CALL_SCHEME = "inverse_freq"  # the scheme per-call weights compute (`Case.per_call`)
PER_CALL_MAX_CLASSES = 64  # per-call counting: one comparison-sum over the targets per class


class CaseError(ValueError):
    """A case that cannot exist, with what is wrong and how to fix it."""


@dataclass(frozen=True)
class Case:
    """One cross-entropy problem. Every field is part of `.id`; defaults are omitted there."""

    n: int
    c: int
    spatial: tuple[int, ...] = ()
    p: float = 0.5
    dtype: str = "f32"
    reduction: str = "mean"
    weights: str = "none"
    label_smoothing: float = 0.0
    ignore_frac: float = 0.0
    ignore_index: int = DEFAULT_IGNORE_INDEX
    scale: float = 1.0
    layout: str = "contiguous"
    seed: int = 0
    family: str = "multiclass"
    channel_dim: bool = True
    soft: bool = False  # probability targets (multi-class) / targets anywhere in [0, 1] (binary)
    batched: bool = True  # False: one sample, [C] logits and a 0-d target (binary: a 0-d logit)
    masked: float = 0.0  # share of each position's non-target logits set to -inf
    masked_target: bool = False  # one position's own target logit is -inf too
    # the class weights computed from the targets inside every timed call, as the seed's
    # training loop does: the same tensors and truth, the counting's cost in the step
    per_call: bool = False

    def __post_init__(self) -> None:
        # A list is accepted where a tuple is meant; equality and hashing need the tuple.
        object.__setattr__(self, "spatial", tuple(self.spatial))
        problems = list(self._type_problems()) or list(self._problems())
        if problems:
            raise CaseError("invalid case: " + "; ".join(problems))

    def _type_problems(self):
        for name in ("n", "c", "seed", "ignore_index"):
            if not isinstance(getattr(self, name), numbers.Integral):
                yield f"{name} must be an int, got {getattr(self, name)!r}"
        if not all(isinstance(s, numbers.Integral) for s in self.spatial):
            yield f"spatial sizes must be ints, got {self.spatial}"
        for name in ("p", "scale", "label_smoothing", "ignore_frac", "masked"):
            if not isinstance(getattr(self, name), numbers.Real):
                yield f"{name} must be a number, got {getattr(self, name)!r}"

    def _problems(self):

        if self.family not in FAMILY_NAMES:
            yield f"family must be one of {FAMILY_NAMES}, got {self.family!r}"
            return
        spec = self.spec
        if self.n < 0:
            yield f"batch n must be >= 0, got {self.n}"
        if self.seed < 0:
            yield f"seed must be >= 0 (the id has no negative seeds), got {self.seed}"
        if self.weights not in SCHEMES:
            yield f"weights must be one of {SCHEMES}, got {self.weights!r}"
        elif not is_defined(self.weights, n_classes=self.n_classes,
                            target_dims=len(self.target_shape)):
            yield (f"weights {self.weights!r} needs two classes and targets with at least "
                   "two dims (n and a spatial dim): use another scheme")
        if spec.fixed_c is not None and self.c != spec.fixed_c:
            yield (f"a {self.family} case has {spec.fixed_c} logit channel: use c={spec.fixed_c}, "
                   f"got c={self.c}")
        if self.c < spec.min_c:
            yield f"a {self.family} case needs c >= {spec.min_c} classes, got c={self.c}"
        if len(self.spatial) > MAX_SPATIAL_DIMS or any(s < 1 for s in self.spatial):
            yield f"spatial must hold 0 to {MAX_SPATIAL_DIMS} sizes >= 1, got {self.spatial}"
        if not 0.0 <= self.p <= 1.0:
            yield f"p (share of the rarest class) must be in [0, 1], got {self.p}"
        if self.dtype not in DTYPES:
            yield f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}"
        if self.reduction not in REDUCTIONS:
            yield f"reduction must be one of {REDUCTIONS}, got {self.reduction!r}"
        if not 0.0 <= self.label_smoothing <= 1.0:
            yield f"label_smoothing must be in [0, 1], got {self.label_smoothing}"
        if not spec.label_smoothing and self.label_smoothing:
            yield f"{self.family} cases have no label_smoothing: set it to 0"
        if not 0.0 <= self.ignore_frac <= 1.0:
            yield f"ignore_frac must be in [0, 1], got {self.ignore_frac}"
        if (self.ignored_class is not None and self.positions > self.n_ignored
                and self._kept_share() == 0):  # the share loops over every class: last
            yield (f"ignore_index {self.ignore_index} is the only class with targets at p={self.p}: "
                   "every target would be ignored; use another p, ignore_index or ignore_frac=1")
        if self.soft and (self.ignore_frac or self.ignore_index >= 0):
            yield ("probability targets have no ignore_index (PyTorch refuses one >= 0): set "
                   "ignore_frac to 0 and leave ignore_index negative")
        if not spec.ignore_index and self.ignore_frac:
            yield f"{self.family} cases have no ignore_index: set ignore_frac to 0"
        if not (self.scale > 0 and math.isfinite(self.scale)):
            yield f"scale must be a positive finite number, got {self.scale}"
        if self.layout not in LAYOUTS:
            yield f"layout must be one of {sorted(LAYOUTS)}, got {self.layout!r}"
        if not self.channel_dim and self.layout == "channels_last":
            yield "channels_last needs the channel dim: set channel_dim=True"

        if not (spec.channel_dim_optional or self.channel_dim):
            yield f"{self.family} logits always have the class dim: set channel_dim=True"
        yield from self._unbatched_problems()
        yield from self._mask_problems()
        yield from self._per_call_problems()

    def _unbatched_problems(self):
        if self.batched:
            return
        if not self.spec.unbatched:
            yield f"{self.family} cases are always batched: set batched=True"
        if self.n != 1 or self.spatial:
            yield (f"an unbatched case is one sample with [C] logits: set n=1 and spatial=(), "
                   f"got n={self.n}, spatial={self.spatial}")
        if self.spec.channel_dim_optional and self.channel_dim:
            yield "an unbatched case of this family is one 0-d logit: set channel_dim=False"
        elif not self.logits_shape and self.layout != "contiguous":
            yield "a 0-d logit has one layout: use contiguous"
        elif self.layout == "channels_last":
            yield "unbatched logits are one vector, with no channels-last form: use contiguous or strided"

    def _mask_problems(self):
        if not (self.masked or self.masked_target):
            return
        if not self.spec.masked_logits:
            yield f"{self.family} cases have no masked logits: set masked=0 and masked_target=False"
        if not 0.0 <= self.masked < 1.0:
            yield (f"masked (share of a position's other logits set to -inf) must be in [0, 1), "
                   f"got {self.masked}")
        if self.soft:
            yield ("masked logits are generated with class-index targets only (a probability "
                   "target of 0 on a -inf logit is 0·inf = NaN in PyTorch): set soft=False")
        if self.masked_target and self.positions <= self.n_ignored:
            yield ("masked_target needs a position whose target is not ignored: lower ignore_frac "
                   "or add positions")

    def _per_call_problems(self):
        if not self.per_call:
            return
        # only inverse_freq is computed without a host sync (harness.problem.weights), and
        # counting one comparison-sum per class is for the few classes of segmentation
        if self.weights != PER_CALL_SCHEME:
            yield (f"per-call weights (percall) are computed as {PER_CALL_SCHEME}: "
                   f"set weights={PER_CALL_SCHEME!r}, got {self.weights!r}")
        if self.n_classes > PER_CALL_MAX_CLASSES:
            yield (f"per-call weights count each class on the device: at most "
                   f"{PER_CALL_MAX_CLASSES} classes, got {self.n_classes}")
        if self.soft:
            yield "per-call weights count class-index (or 0/1) targets: set soft=False"

    @property
    def spec(self) -> FamilyRecord:
        """This case's family record (`harness.problem.families`)."""
        # imported here: the records hold the oracle and the call options, built on Case
        from harness.problem.families import family

        return family(self.family)

    # ---- sizes -------------------------------------------------------------------------
    @property
    def positions(self) -> int:
        """Number of target positions: N times the spatial sizes."""
        return self.n * math.prod(self.spatial)

    @property
    def n_ignored(self) -> int:
        return round(self.ignore_frac * self.positions)

    @property
    def logits_shape(self) -> tuple[int, ...]:
        if not self.batched:  # one sample: its class vector, or one 0-d logit
            return (self.c,) if self.spec.index_targets else ()
        if not self.channel_dim:
            return (self.n, *self.spatial)
        return (self.n, self.c, *self.spatial)

    @property
    def target_shape(self) -> tuple[int, ...]:
        """The class-index target's shape (one per position), which is also the shape of
        a 'none' loss; binary targets are shaped like the logits."""
        if not self.spec.index_targets:
            return self.logits_shape
        return (self.n, *self.spatial) if self.batched else ()

    @property
    def n_classes(self) -> int:
        """Classes of the problem: a binary case has two (negative, positive)."""
        return self.spec.n_classes(self.c)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def ignored_class(self) -> int | None:
        """The class id ``ignore_index`` names when it lies in [0, C) (class 0 as background,
        say), else None. Its targets are all ignored: the class keeps its logit in every
        row's softmax, but no position counts as it."""
        return self.ignore_index if self.spec.ignore_index and 0 <= self.ignore_index < self.c else None

    def _kept_share(self) -> float:
        shares, ignored = class_shares(self.n_classes, self.p), self.ignored_class
        # `ignored_class` read once: per class, it was most of collecting the suites (a
        # million property calls over the cases of C up to 32,000)
        return sum(s for i, s in enumerate(shares) if i != ignored)

    def class_counts(self) -> tuple[int, ...]:
        """Exact target count of each class among the non-ignored positions: the shares of
        `class_shares`, with the `ignored_class` (if any) left out and the rest scaled up."""
        shares = class_shares(self.n_classes, self.p)
        if (k := self.ignored_class) is not None:
            shares[k] = 0.0
            kept = sum(shares)
            shares = [s / kept for s in shares] if kept > 0 else shares
        return apportion(self.positions - self.n_ignored, shares)

    # ---- id ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        parts = [f"n{self.n}", f"c{self.c}"]
        if prefix := self.spec.id_prefix(self.channel_dim):
            parts.insert(0, prefix)
        if self.spatial:
            parts.append("x".join(map(str, self.spatial)))
        parts += [f"p{_num(self.p)}", self.dtype, self.reduction]
        if self.weights != "none":
            parts.append(f"w{self.weights}")
        if self.per_call:
            parts.append("percall")
        if self.label_smoothing:
            parts.append(f"ls{_num(self.label_smoothing)}")
        if self.ignore_frac:
            parts.append(f"ig{_num(self.ignore_frac)}")
        if self.ignore_index != DEFAULT_IGNORE_INDEX:
            parts.append(f"ii{self.ignore_index}")
        if self.scale != 1.0:
            parts.append(f"z{_num(self.scale)}")
        if LAYOUTS[self.layout]:
            parts.append(LAYOUTS[self.layout])
        if self.seed:
            parts.append(f"s{self.seed}")
        if self.soft:
            parts.append("soft")
        if not self.batched:
            parts.append("unbatched")
        if self.masked:
            parts.append(f"m{_num(self.masked)}")
        if self.masked_target:
            parts.append("mt")
        return "-".join(parts)

    @classmethod
    def from_id(cls, case_id: str) -> Case:
        """Parse an id written by `.id`; raises `CaseError` in one line naming the token it
        cannot read and what that token takes (or, for a misspelt one, the valid tokens)."""
        kw: dict = {}
        for tok in _split_id(case_id):
            if problem := _read_token(tok, kw):
                raise CaseError(f"case id {case_id!r}: cannot read token {tok!r}{_close(tok)}: "
                                f"{problem} (the tokens of an id: {ID_DOC})")
        if "n" not in kw or "c" not in kw:
            raise CaseError(f"case id {case_id!r} lacks the n<batch> and c<classes> tokens, "
                            f"e.g. n8-c2 (the tokens of an id: {ID_DOC})")
        try:
            return cls(**kw)
        except CaseError as exc:  # every token read, but the values cannot go together
            raise CaseError(f"case id {case_id!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"Case.from_id({self.id!r})"

    def replace(self, **changes) -> Case:
        return replace(self, **changes)

    def fields(self) -> dict:
        """The case as plain JSON-able data."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["spatial"] = list(self.spatial)
        return out


def _num(x: float) -> str:
    """Shortest text that reads back as the same float (ints without '.0')."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _split_id(case_id: str) -> list[str]:
    # '-' separates tokens but also starts a negative number or an exponent ('1e-06').
    raw = case_id.split("-")
    tokens: list[str] = []
    for piece in raw:
        if tokens and (piece == "" or piece[0].isdigit()) and (
            tokens[-1].endswith("e") or tokens[-1] == "ii" or tokens[-1].endswith("=")
        ):
            tokens[-1] += "-" + piece
        elif piece == "" and tokens:
            tokens[-1] += "-"
        else:
            tokens.append(piece)
    return tokens


ID_DOC = "docs/correctness.md#case-ids"  # the table of the tokens of an id

# Tokens that are a whole word, and the fields each sets. Read before the prefixed tokens
# below: "mean" and "mt" begin with the masked share's "m", "sum" and "soft" with the
# seed's "s", "percall" with the share's "p", "nc" with the batch's "n" and "cl" with the
# classes' "c".
_WORDS: dict[str, dict] = {
    "bin": {"family": "binary", "channel_dim": True},
    "bin1": {"family": "binary", "channel_dim": False},
    **{name: {"dtype": name} for name in DTYPES},
    **{name: {"reduction": name} for name in REDUCTIONS},
    **{short: {"layout": layout} for layout, short in LAYOUTS.items() if short},
    "soft": {"soft": True},
    "unbatched": {"batched": False},
    "mt": {"masked_target": True},
    "percall": {"per_call": True},
}


def _scheme(text: str) -> str:
    if text not in SCHEMES[1:]:  # 'none' is the default, never written
        raise ValueError(text)
    return text


class _Prefixed(NamedTuple):
    """A token that is a prefix and a value: the field it sets, how its value is read, its
    form in the list of tokens, and what the value must be (for the one-line error)."""

    field: str
    read: Callable[[str], object]
    form: str
    takes: str


# Tokens that are a prefix and a value; the first prefix a token starts with reads it
# (two-letter ones first, should a one-letter prefix ever share their first letter).
_PREFIXED: dict[str, _Prefixed] = {
    "ls": _Prefixed("label_smoothing", float, "ls<smoothing>",
                    "the label smoothing, a number in [0, 1], e.g. ls0.1"),
    "ig": _Prefixed("ignore_frac", float, "ig<share>",
                    "the share of targets set to ignore_index, a number in [0, 1], e.g. ig0.25"),
    "ii": _Prefixed("ignore_index", int, "ii<index>",
                    "the ignore_index, a whole number, e.g. ii255 or ii-1"),
    "n": _Prefixed("n", int, "n<batch>", "the batch size, a whole number, e.g. n8"),
    "c": _Prefixed("c", int, "c<classes>",
                   "the classes (logit channels; 1 for binary), a whole number, e.g. c2"),
    "p": _Prefixed("p", float, "p<share>",
                   "the rarest class's share of the targets, a number in [0, 1], e.g. p0.05"),
    "w": _Prefixed("weights", _scheme, "w<scheme>",
                   f"a class-weighting scheme: {', '.join('w' + s for s in SCHEMES[1:])}"),
    "z": _Prefixed("scale", float, "z<scale>", "the logit scale, a positive number, e.g. z100"),
    "s": _Prefixed("seed", int, "s<seed>", "the tensors' seed, a whole number, e.g. s3"),
    "m": _Prefixed("masked", float, "m<share>",
                   "the share of each position's other logits set to -inf, in [0, 1), e.g. m0.5"),
}


def _spatial(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split("x"))


# The token without a prefix: it starts with a digit.
_SPATIAL = _Prefixed("spatial", _spatial, "<sizes>",
                     "the spatial sizes, whole numbers joined by x, e.g. 512x512")


def token_forms() -> list[str]:
    """Every token of an id, in the order `Case.id` writes them, as the list of valid
    tokens in an error shows them (docs/correctness.md's table has a row for each)."""
    form = {prefix: p.form for prefix, p in _PREFIXED.items()}
    return ["bin|bin1", form["n"], form["c"], _SPATIAL.form, form["p"], "|".join(DTYPES),
            "|".join(REDUCTIONS), form["w"], "percall", form["ls"], form["ig"], form["ii"], form["z"],
            "|".join(s for s in LAYOUTS.values() if s), form["s"], "soft", "unbatched",
            form["m"], "mt"]


def _read_token(tok: str, kw: dict) -> str | None:
    """Read ``tok`` into ``kw``; None, or what is wrong with it, in words."""
    if tok in _WORDS:
        kw.update(_WORDS[tok])
        return None
    if tok[:1].isdigit():
        prefix, reader = "", _SPATIAL
    else:
        prefix = next((p for p in _PREFIXED if tok.startswith(p) and len(tok) > len(p)), "")
        if not prefix:
            return f"no such token; the tokens are {' '.join(token_forms())}"
        reader = _PREFIXED[prefix]
    try:
        kw[reader.field] = reader.read(tok[len(prefix):])
    except ValueError:
        return f"{reader.form} is {reader.takes}"
    return None


def _close(tok: str) -> str:
    """' (did you mean 'mean'?)' when ``tok`` looks like a misspelt word or scheme: a
    typo of a word would otherwise be read as a prefix and a bad value ('maen': m, 'aen')."""
    known = [*_WORDS, *(f"w{s}" for s in SCHEMES[1:])]
    found = difflib.get_close_matches(tok, known, n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


# ---- class frequencies ----------------------------------------------------------------
def class_shares(n_classes: int, p: float) -> list[float]:
    """Share of each class; the last (rarest) class gets exactly ``p``."""
    if n_classes == 2:
        return [1.0 - p, p]
    head = [1.0 / (k + 1) for k in range(n_classes - 1)]
    total = sum(head)
    return [(1.0 - p) * h / total for h in head] + [p]


def apportion(total: int, shares: list[float]) -> tuple[int, ...]:
    """Split ``total`` into integer counts by largest remainder; a share > 0 gets >= 1 when
    possible and a share < 1 leaves room for the others, so p=0 and p=1 stay exact."""
    raw = [s * total for s in shares]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(shares)), key=lambda k: raw[k] - counts[k], reverse=True)
    for k in order[: total - sum(counts)]:
        counts[k] += 1
    rare = len(shares) - 1
    if total and shares[rare] > 0 and counts[rare] == 0:
        counts[rare] = 1
        counts[max(range(rare), key=lambda k: counts[k])] -= 1
    if total > 1 and shares[rare] < 1 and counts[rare] == total:
        counts[rare] -= 1
        counts[max(range(rare), key=lambda k: shares[k])] += 1
    return tuple(counts)
