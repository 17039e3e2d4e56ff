"""What a contender handles, in terms of case fields: `Capabilities`. Cases outside are
never generated for it (`harness.problem.strategies`) and are skipped with a reason
elsewhere (`harness.contenders.Contender.skip_reason`)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.problem.case import DTYPES, LAYOUTS, MAX_SPATIAL_DIMS, REDUCTIONS

SPATIAL_RANKS = tuple(range(MAX_SPATIAL_DIMS + 1))


@dataclass(frozen=True)
class Capabilities:
    """What a contender handles. Anything outside is skipped with a reason."""

    weights: bool = True
    ignore_index: bool = True
    label_smoothing: bool = True
    soft_targets: bool = True  # probability targets / BCE targets anywhere in [0, 1]
    unbatched: bool = True  # one sample: [C] logits with a 0-d target
    masked_logits: bool = True  # -inf logits, the target's own included
    spatial_dims: frozenset[int] = frozenset(SPATIAL_RANKS)
    dtypes: frozenset[str] = frozenset(DTYPES)
    devices: frozenset[str] = frozenset({"cpu", "cuda"})
    reductions: frozenset[str] = frozenset(REDUCTIONS)
    layouts: frozenset[str] = frozenset(LAYOUTS)
    max_classes: int | None = None  # the largest C it handles (None: any, vocabulary-sized)
    label_smoothing_below: float | None = None  # smoothing must stay below this (timm: 1)
    negative_weights: bool = True  # class weights below 0 (the seed's helper makes them)
    elementwise_weight: bool = True  # binary: a per-element weight, not only pos_weight's form
    float32_output: bool = False  # returns float32 for half-precision inputs, by design

    def gaps(self) -> list[str]:
        """Human-readable list of what is not supported."""
        out = [f"no more than {self.max_classes} classes"] if self.max_classes is not None else []
        if self.label_smoothing_below is not None:
            out.append(f"label_smoothing below {self.label_smoothing_below} only")
        for flag in ("weights", "ignore_index", "label_smoothing", "soft_targets", "unbatched",
                     "masked_logits", "negative_weights", "elementwise_weight"):
            if not getattr(self, flag):
                out.append(f"no {flag}")
        for name, full in (("spatial_dims", set(SPATIAL_RANKS)), ("dtypes", set(DTYPES)),
                           ("devices", {"cpu", "cuda"}), ("reductions", set(REDUCTIONS)),
                           ("layouts", set(LAYOUTS))):
            missing = sorted(map(str, set(full) - set(getattr(self, name))))
            if missing:
                out.append(f"no {name} {','.join(missing)}")
        return out

    def describe(self, options: tuple[str, ...] = ("weights", "ignore_index", "label_smoothing")) -> str:
        """One line; only the flags that are call options of the contender's family
        (`Family.options`: binary cases have neither ignore_index nor label smoothing)."""
        spatial = "/".join(f"{d}-D" for d in sorted(self.spatial_dims))
        flags = [f for f in options if getattr(self, f)]
        return (f"{' '.join(flags) or '-'}; spatial {spatial}; "
                f"{','.join(d for d in DTYPES if d in self.dtypes)}; "
                f"{','.join(sorted(self.devices))}")
