"""How problems are generated: Hypothesis strategies for `Case`, and the three profiles.

Sizes are set for a 2-core CPU (`SMALL`); benchmarks draw from the same strategies with
`BENCH` sizes. Values are drawn from short lists first ("simple" values lead, so shrinking
ends on readable cases) and floats are rounded to a few significant digits so that ids stay
short and read back exactly.

Compiled contenders draw their dtype/reduction/weights/smoothing/layout/rank from a fixed
list of compile signatures (`COMPILE_SIGNATURES`) and sizes >= 2 (dynamo specialises sizes
0 and 1), so a run spends at most one compile per signature instead of one per case.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from harness.problem.capabilities import Capabilities
from harness.problem.case import DEFAULT_IGNORE_INDEX, Case, CaseError, class_shares
from harness.problem.families import FAMILIES
from harness.problem.weights import NEGATIVE_WEIGHT_SCHEMES, SCHEMES, is_defined
from harness.rounding import round_sig

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def register_profiles() -> None:
    """Register the three profiles (idempotent). Called by xentbench's own runs only (the
    plugin, for a run of its suites): registering them at import replaced Hypothesis's own
    ``ci`` profile in every project of the environment — under ``CI=true`` a foreign
    project's Hypothesis tests ran 200 examples instead of 100 (`test_foreign.py`). What
    every profile shares is one parent; each says only how it differs."""
    base = settings(deadline=None, print_blob=True, suppress_health_check=_SLOW_OK)
    settings.register_profile("ci", parent=base, max_examples=200, derandomize=True, database=None)
    settings.register_profile("dev", parent=base, max_examples=60)
    settings.register_profile("thorough", parent=base, max_examples=2000)
DEFAULT_PROFILE = "ci"
# Compiled contenders: examples per property per profile (each is a real compiled call).
COMPILED_EXAMPLES = {"ci": 30, "dev": 15, "thorough": 150}
# Contenders in an interpreter (the fused Triton kernels on CPU, 20-50 ms a call where the
# kernel itself takes microseconds): random draws per property per profile, after the
# covering cases. fused_triton's five properties took 34 s of `make test` with 200 draws.
INTERPRETED_EXAMPLES = {"ci": 60, "dev": 30, "thorough": 600}


def profile_name() -> str:
    """The Hypothesis profile in force (``ci``, ``dev``, ``thorough``)."""
    getter = getattr(settings, "get_current_profile_name", None)
    return getter() if getter else settings._current_profile  # older Hypothesis


def example_budget(*, compiled: bool, interpreted: bool = False) -> int | None:
    """Random examples per property: None (the profile's) for an eager contender, the
    smaller `COMPILED_EXAMPLES` budget of the profile for a compiled one and
    `INTERPRETED_EXAMPLES` for one run in an interpreter."""
    budgets = COMPILED_EXAMPLES if compiled else INTERPRETED_EXAMPLES if interpreted else None
    return None if budgets is None else budgets.get(profile_name(), budgets["ci"])


@dataclass(frozen=True)
class Sizes:
    max_n: int
    max_c: int
    max_side: int
    max_positions: int
    max_elements: int
    min_n: int = 1
    min_side: int = 1
    max_vocab_elements: int = 0  # logits elements a vocabulary-sized C may take (0: none)


# Vocabulary-sized class counts where blocked kernels break: 2^k - 1, 2^k and 2^k + 1 from
# one block of 64 to 262,144 (LLM vocabularies: 32,000; 128,256; 262,144).
VOCAB_SIZES: tuple[int, ...] = tuple(sorted({2**k + d for k in range(6, 19) for d in (-1, 0, 1)}
                                            | {32000, 128256}))

SMALL = Sizes(max_n=8, max_c=40, max_side=16, max_positions=512, max_elements=8192,
              max_vocab_elements=1 << 19)
# Benchmarks want realistic sizes: Hypothesis's first draws are the smallest allowed.
BENCH = Sizes(max_n=64, max_c=1000, max_side=256, max_positions=1 << 18, max_elements=1 << 22,
              min_n=8, min_side=16)

# (dtype, reduction, weights, label_smoothing, spatial rank, layout)
COMPILE_SIGNATURES: tuple[tuple[str, str, bool, float, int, str], ...] = (
    ("f32", "mean", True, 0.0, 2, "contiguous"),
    ("f32", "none", False, 0.1, 0, "contiguous"),
    ("f64", "sum", True, 0.0, 1, "contiguous"),
    ("bf16", "mean", True, 0.1, 2, "channels_last"),
    ("f16", "none", True, 0.0, 3, "contiguous"),
    ("f32", "mean", False, 0.0, 2, "strided"),
)


PROBABILITIES = st.one_of(
    st.sampled_from([0.5, 0.0, 1.0, 0.05, 1e-6, 1e-3, 0.01, 0.2]),
    st.floats(0.0, 1.0).map(round_sig),
)
SCALES = st.one_of(
    st.sampled_from([1.0, 1e-3, 10.0, 30.0, 100.0, 1e3, 1e4]),
    st.floats(-3.0, 4.0).map(lambda e: round_sig(10.0**e, 2)),
)
SMOOTHING = st.one_of(st.just(0.0), st.sampled_from([0.1, 0.05, 0.2, 1.0]),
                      st.floats(0.0, 1.0).map(lambda v: round(v, 2)))
# share of a position's other logits set to -inf: half, nearly all, anything (drawn for
# one case in four: with label smoothing a masked case's loss is +inf, which leaves
# the loss property nothing finite to compare)
MASKED = st.one_of(st.sampled_from([0.5, 0.9]), st.floats(0.01, 0.99).map(lambda v: round(v, 2)))
IGNORED = st.one_of(st.just(0.0), st.sampled_from([0.25, 1.0]),
                    st.floats(0.0, 1.0).map(lambda v: round(v, 2)))


@st.composite
def _spatial(draw, rank: int, sizes: Sizes, n: int, min_side: int) -> tuple[int, ...]:
    budget = max(sizes.max_positions // max(n, 1), 1)
    side_cap = max(min_side, min(sizes.max_side, int(budget ** (1 / rank)) if rank else 1))
    return tuple(draw(st.integers(min_side, side_cap)) for _ in range(rank))


def _keeps_a_target(c: int, p: float, ignore_index: int) -> bool:
    """Whether a class other than ``ignore_index`` has a nonzero share at ``p``."""
    return any(s > 0 for k, s in enumerate(class_shares(c, p)) if k != ignore_index)


def _vocab_sizes(caps: Capabilities | None, sizes: Sizes, positions: int) -> list[int]:
    """The `VOCAB_SIZES` this many positions can afford within ``sizes`` and ``caps``."""
    limit = caps.max_classes if caps is not None and caps.max_classes is not None else math.inf
    return [c for c in VOCAB_SIZES
            if c <= limit and c * max(positions, 1) <= sizes.max_vocab_elements]


def _defined(scheme: str, case: Case) -> bool:
    return is_defined(scheme, n_classes=case.n_classes, target_dims=len(case.target_shape))


def _allowed(values, allowed) -> list:
    return [v for v in values if v in allowed]


def _validated(family: str, caps: Capabilities | None, sizes: Sizes) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family={family!r}: use one of {tuple(FAMILIES)}")
    if caps is not None and not isinstance(caps, Capabilities):
        raise TypeError(f"caps={caps!r}: pass a harness.problem.capabilities.Capabilities "
                        "(a contender's .caps), or None for every case")
    if not isinstance(sizes, Sizes):
        raise TypeError(f"sizes={sizes!r}: pass a strategies.Sizes, e.g. strategies.SMALL")


# What only the drawn tensors tell, so the strategies cannot honour it while drawing:
# `for_contender` filters it after the draw (`Contender.case_gaps`' wording).
FILTERED_AFTER_DRAW = ("a per-element weight",)


def unfiltered_for_contender(contender, sizes: Sizes = SMALL) -> st.SearchStrategy[Case]:
    """`for_contender` before its after-draw filter: what the strategies draw from the
    contender's capabilities alone (`test_capability_gaps_are_visible` holds them to it)."""
    if getattr(contender, "compiled", None) is not None:
        return SIGNATURE_CASES[contender.family](caps=contender.caps, sizes=sizes)
    return cases(family=contender.family, caps=contender.caps, sizes=sizes)


def drawn_in_gaps(contender, count: int = 20) -> list[tuple[str, list[str]]]:
    """(case id, gaps) of the cases among ``count`` drawn from the contender's capabilities
    alone that fall in one of its gaps, those only the tensors tell aside: empty when the
    strategies honour the declaration (`test_capability_gaps_are_visible`)."""
    found = []
    for case in draw_cases(unfiltered_for_contender(contender), count):
        gaps = [g for g in contender.case_gaps(case) if g not in FILTERED_AFTER_DRAW]
        if gaps:
            found.append((case.id, gaps))
    return found


def for_contender(contender, sizes: Sizes = SMALL) -> st.SearchStrategy[Case]:
    """The cases ``contender`` (anything with ``family``, ``caps`` and ``compiled``)
    declares it handles: `cases` for an eager one, the compile signatures for a compiled
    one (`signature_cases`, `binary_signature_cases`)."""
    drawn = unfiltered_for_contender(contender, sizes)
    gaps = getattr(contender, "case_gaps", None)
    # what only the drawn tensors tell (a binary weight's form) is filtered after the draw
    return drawn.filter(lambda case: not gaps(case)) if gaps else drawn


# The case fields drawn each on its own, in this order (changing the order changes every
# draw): a strategy, or a tuple of values that the contender's capabilities narrow
# (`Capabilities.allowed`); a field a lacking flag governs takes that flag's plain value
# (`Capabilities.off_fields`). A new case field's values go here.
FIELD_VALUES: dict[str, st.SearchStrategy | tuple] = {
    "p": PROBABILITIES,
    "seed": st.integers(0, 2**16),
    "scale": SCALES,
    "dtype": ("f32", "f64", "bf16", "f16"),
    "reduction": ("mean", "sum", "none"),
    "layout": ("contiguous", "channels_last", "strided"),
}


def _within(caps: Capabilities, name: str, values: st.SearchStrategy | tuple) -> st.SearchStrategy:
    if isinstance(values, st.SearchStrategy):
        return values
    allowed = caps.allowed(name, values)
    if not allowed:
        raise ValueError(f"the capabilities leave no value of case field {name!r} out of "
                         f"{values}: declare at least one")
    return st.sampled_from(allowed)


@st.composite
def cases(draw, *, family: str = "multiclass", caps: Capabilities | None = None,
          sizes: Sizes = SMALL) -> Case:
    """Any case of ``family`` within ``caps`` (every case when None), sized by ``sizes``.

    * ``family``: ``"multiclass"`` or ``"binary"``;
    * ``caps``: what the implementation handles (`Capabilities`); None for all;
    * ``sizes``: bounds on N, C and sides (`Sizes`); `SMALL` keeps a CPU check fast.

    Simple values come first, so a failure shrinks to a readable case."""
    _validated(family, caps, sizes)
    caps = caps or Capabilities()
    rank = draw(st.sampled_from(sorted(caps.spatial_dims)))
    n = draw(st.integers(1, sizes.max_n))
    spatial = draw(_spatial(rank, sizes, n, 1))
    fields = dict(n=n, spatial=spatial)
    off = caps.off_fields()
    for name, values in FIELD_VALUES.items():
        fields[name] = off[name] if name in off else draw(_within(caps, name, values))
    spec = FAMILIES[family]
    if spec.fixed_c is not None:
        fields.update(c=spec.fixed_c, family=family)
    else:
        positions = n * math.prod(spatial)
        max_c = max(spec.min_c, min(sizes.max_c, sizes.max_elements // max(positions, 1)))
        choices = [st.just(spec.min_c), st.integers(spec.min_c, max_c)]
        if vocab := _vocab_sizes(caps, sizes, positions):
            choices.append(st.sampled_from(vocab))
        fields["c"] = draw(st.one_of(*choices))
    if spec.channel_dim_optional:
        # channel_dim=False with rank 0 is the plain [N] vector of logits, BCE's commonest use.
        fields["channel_dim"] = draw(st.booleans())
        if fields["layout"] == "channels_last" and not fields["channel_dim"]:
            fields["layout"] = "contiguous"
    if spec.label_smoothing and caps.handles("label_smoothing"):
        below = caps.label_smoothing_below
        fields["label_smoothing"] = draw(SMOOTHING if below is None
                                         else SMOOTHING.filter(lambda v: v < below))
    if caps.handles("soft_targets"):
        fields["soft"] = draw(st.booleans())
    if spec.ignore_index and caps.handles("ignore_index") and not fields.get("soft"):
        fields["ignore_frac"] = draw(IGNORED)
        # PyTorch takes any integer: padding (-100, -1), a class ignored as background
        # (0, or the last), or a label outside the classes (255: Pascal VOC, Cityscapes)
        candidates = [DEFAULT_IGNORE_INDEX, -1, 0, fields["c"] - 1, 255]
        fields["ignore_index"] = draw(st.sampled_from(
            [i for i in candidates if _keeps_a_target(fields["c"], fields["p"], i)]))
    if rank == 0 and spec.unbatched and caps.handles("unbatched") and draw(st.booleans()):
        fields.update(batched=False, n=1)  # one sample: [C] logits, a 0-d target
        if spec.channel_dim_optional:  # binary: one 0-d logit
            fields.update(channel_dim=False, layout="contiguous")
        if fields["layout"] == "channels_last":
            fields["layout"] = "contiguous"
    if spec.masked_logits and caps.handles("masked_logits") and not fields.get("soft"):
        fields["masked"] = draw(MASKED) if draw(st.integers(0, 3)) == 3 else 0.0
        positions = fields["n"] * math.prod(spatial)
        kept = positions - round(fields.get("ignore_frac", 0.0) * positions)
        fields["masked_target"] = bool(fields["masked"]) and kept > 0 and draw(st.booleans())
    fields["weights"] = "none"
    if caps.handles("weights"):
        probe = Case(**fields)
        schemes = [s for s in SCHEMES if _defined(s, probe)
                   and (caps.negative_weights or s not in NEGATIVE_WEIGHT_SCHEMES)]
        fields["weights"] = draw(st.sampled_from(schemes))
    return Case(**fields)


def usable_signatures(caps: Capabilities) -> list[tuple[str, str, bool, float, int, str]]:
    """The compile signatures a contender with ``caps`` handles."""
    return [s for s in COMPILE_SIGNATURES
            if s[0] in caps.dtypes and s[1] in caps.reductions and s[4] in caps.spatial_dims
            and s[5] in caps.layouts and (caps.label_smoothing or not s[3])
            and (caps.weights or not s[2])]


@st.composite
def signature_cases(draw, *, caps: Capabilities | None = None, sizes: Sizes = SMALL) -> Case:
    """Multi-class cases from the fixed compile signatures, sizes >= 2: what compiled
    contenders are checked on, and what benchmarks draw so that every contender, compiled
    or not, is timed on the same cases at a bounded compile cost."""
    _validated("multiclass", caps, sizes)
    caps = caps or Capabilities()
    usable = usable_signatures(caps)
    dtype, reduction, weighted, smoothing, rank, layout = draw(st.sampled_from(usable))
    n = draw(st.integers(max(2, sizes.min_n), sizes.max_n))
    spatial = draw(_spatial(rank, sizes, n, max(2, sizes.min_side)))
    positions = n * math.prod(spatial)
    max_c = max(2, min(sizes.max_c, sizes.max_elements // positions))
    fields = dict(
        n=n, c=_signature_classes(draw, layout, max_c), spatial=spatial, dtype=dtype,
        reduction=reduction,
        label_smoothing=smoothing, layout=layout, p=draw(PROBABILITIES), scale=draw(SCALES),
        seed=draw(st.integers(0, 2**16)),
        ignore_frac=draw(IGNORED) if caps.ignore_index else 0.0,
    )
    fields["weights"] = "none"
    if weighted:
        probe = Case(**fields)
        fields["weights"] = draw(st.sampled_from([
            s for s in SCHEMES[1:] if _defined(s, probe)
            and (caps.negative_weights or s not in NEGATIVE_WEIGHT_SCHEMES)]))
    return Case(**fields)


# Binary compile signatures: (dtype, reduction, weight form, spatial rank, channel_dim,
# layout). The weight form decides what `harness.problem.bce.binary_kwargs` passes — "pos": a
# [1] weight and a [1] pos_weight (schemes whose w0 is not 0), "elementwise": a weight of
# the target's shape ('onehot', w0 = 0), "none" — since dynamo guards on each.
BINARY_COMPILE_SIGNATURES: tuple[tuple[str, str, str, int, bool, str], ...] = (
    ("f32", "mean", "pos", 2, True, "contiguous"),
    ("f32", "none", "none", 0, False, "contiguous"),
    ("f64", "sum", "elementwise", 1, False, "contiguous"),
    ("bf16", "mean", "pos", 2, False, "strided"),
    ("f16", "sum", "pos", 3, True, "contiguous"),
)
POS_WEIGHT_SCHEMES = ("inverse_freq", "balanced", "sqrt_inv_freq", "effective_number",
                      "median_freq", "random", "seed_inverse_freq")
ELEMENTWISE_WEIGHT_SCHEMES = ("onehot",)


@st.composite
def binary_signature_cases(draw, *, caps: Capabilities | None = None, sizes: Sizes = SMALL) -> Case:
    """Binary cases from `BINARY_COMPILE_SIGNATURES`, sizes >= 2 (dynamo specialises 0
    and 1): a compiled binary contender compiles once per signature, not once per case."""
    _validated("binary", caps, sizes)
    caps = caps or Capabilities()
    usable = [s for s in BINARY_COMPILE_SIGNATURES
              if s[0] in caps.dtypes and s[1] in caps.reductions and s[3] in caps.spatial_dims
              and s[5] in caps.layouts and (caps.weights or s[2] == "none")]
    dtype, reduction, form, rank, channel_dim, layout = draw(st.sampled_from(usable))
    n = draw(st.integers(2, sizes.max_n))
    schemes = {"none": ("none",), "pos": POS_WEIGHT_SCHEMES,
               "elementwise": ELEMENTWISE_WEIGHT_SCHEMES}[form]
    scheme, p = draw(st.sampled_from(schemes)), draw(PROBABILITIES)
    if scheme == "seed_inverse_freq" and p == 0:
        p = 1.0  # an all-background batch gives the seed's w0 = 0: another compile signature
    return Case(n=n, c=1, family="binary", channel_dim=channel_dim,
                spatial=draw(_spatial(rank, sizes, n, 2)), dtype=dtype, reduction=reduction,
                layout=layout, p=p, scale=draw(SCALES), seed=draw(st.integers(0, 2**16)),
                weights=scheme)


# the compile-signature strategy of each family (what compiled contenders are checked on)
SIGNATURE_CASES = {"multiclass": signature_cases, "binary": binary_signature_cases}


CHANNELS_LAST_CLASSES = 4


def _signature_classes(draw, layout: str, max_c: int) -> int:
    """Any C, except for channels-last inputs: there dynamo specialises the class dim even
    with dynamic=True (a guard Eq(C, 4) raised inside F.cross_entropy's tracing, seen with
    TORCHDYNAMO_EXTENDED_DEBUG_GUARD_ADDED), so every new C would compile again."""
    if layout == "channels_last":
        return min(CHANNELS_LAST_CLASSES, max_c)
    return draw(st.integers(2, max_c))


DEFAULT_SEED = 0  # `check`'s draw (``--seed``), and every fixed list of cases


@contextlib.contextmanager
def without_local_constants():
    """Draw as if no module of this project were loaded. Hypothesis (6.131 and later) now and
    then draws a literal found in the source of any *local* module in ``sys.modules``
    (`hypothesis.internal.conjecture.providers._get_local_constants`), so the cases drawn
    moved with any number added anywhere in ``harness/`` (0edc313's ``0.45`` in
    `harness.analysis.plots` moved `check`'s README example from 48 to 50 of 72), with which
    modules a command had
    imported (`check` drew other cases than `check_contenders` called directly), and with
    whether xentbench is a checkout or an installed wheel (site-packages is never local).
    Inside this block that pool is empty; the built-in constants stay. Pinned by
    ``suites/harness/test_strategies.py::test_the_draw_is_pinned``."""
    from hypothesis.internal.conjecture import providers

    real = providers._get_local_constants
    providers.CONSTANTS_CACHE.cache.clear()  # it holds the local constants already met
    providers._get_local_constants = _no_constants
    try:
        yield
    finally:
        providers._get_local_constants = real
        providers.CONSTANTS_CACHE.cache.clear()


def _no_constants():
    from hypothesis.internal.constants_ast import Constants

    return Constants()


def draw_cases(strategy: st.SearchStrategy, count: int, seed: int = DEFAULT_SEED) -> list[Case]:
    """A fixed list of distinct cases drawn from a strategy with ``seed``: the same list in
    every process and on every commit that leaves the strategies alone
    (`without_local_constants`), for benchmarks and the command-line check."""
    drawn: list[Case] = []

    class _Enough(Exception):
        """Stops generation once ``count`` distinct cases are in (generate phase only, so
        Hypothesis does not try to shrink it)."""

    @hypothesis_seed(seed)
    @settings(max_examples=count * 3, derandomize=False, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(strategy)
    def collect(case: Case) -> None:
        if case not in drawn:
            drawn.append(case)
        if len(drawn) >= count:
            raise _Enough

    with contextlib.suppress(_Enough), without_local_constants():
        collect()
    return drawn


__all__ = ["BENCH", "BINARY_COMPILE_SIGNATURES", "COMPILED_EXAMPLES", "COMPILE_SIGNATURES",
           "SMALL", "CaseError", "Sizes", "binary_signature_cases", "cases", "draw_cases",
           "signature_cases"]
