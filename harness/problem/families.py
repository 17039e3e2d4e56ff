"""The loss families, each declared once, as PyTorch's OpInfo declares an op: what a
contender of the family is called with, what the truth is, which contender others are
measured against, how a user adds one, and what a case of the family may be. Everything
that differs between multi-class cross-entropy and binary cross-entropy reads it from
here (`family`); no other module tests a family's name.

``suites/harness/test_families.py`` checks the two records against the code they drive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.problem import bce, oracle
from harness.problem.inputs import Inputs


@dataclass(frozen=True)
class Family:
    name: str
    # the call every contender of the family has, and what the harness passes
    signature: str                            # for documentation and error messages
    call_kwargs: Callable[[Inputs], dict]     # keyword arguments besides input and target
    options: tuple[str, ...]                  # the capabilities that apply to this family
    oracle: Callable[[Inputs], oracle.OracleResult]  # the float64 truth, loss and gradient
    # how contenders are found and measured
    reference: str                            # contender every speedup is relative to
    cli_flag: str                             # python -m harness ... --contender / ...
    option_dest: str                          # the same option as pytest's getoption() name
    fixture: str                              # the equivalence suite's parametrised fixture
    entry_point_group: str                    # installed contenders (pyproject entry points)
    # what a case of the family may be
    index_targets: bool                       # int64 class ids (else 0/1 in the logits' dtype)
    fixed_c: int | None                       # the only c allowed (binary: one logit channel)
    min_c: int                                # the least c allowed
    label_smoothing: bool                     # cases may smooth labels
    ignore_index: bool                        # cases may ignore targets
    channel_dim_optional: bool                # logits may drop the channel dim ([N, ...])
    unbatched: bool                           # cases may be one sample: [C] logits, 0-d target
                                              # (binary: one 0-d logit)
    masked_logits: bool                       # cases may hold -inf logits (padding, constraints)
    id_prefix: Callable[[bool], str | None]   # the id's leading token, given channel_dim
    elementwise: bool                         # BCE: one loss term (and weight) per logit;
                                              # else one per position, over its C classes

    def n_classes(self, c: int) -> int:
        """Classes of a case's problem: the fixed two of a binary case, else ``c``."""
        return 2 if self.fixed_c == 1 else c


MULTICLASS = Family(
    name="multiclass",
    signature="F.cross_entropy(input, target, weight=None, ignore_index=-100, "
              "reduction='mean', label_smoothing=0.0)",
    call_kwargs=Inputs.kwargs,
    options=("weights", "ignore_index", "label_smoothing", "soft_targets", "unbatched",
             "masked_logits"),
    oracle=oracle.multiclass, reference="eager", cli_flag="--contender", option_dest="contender",
    fixture="contender", entry_point_group="xentbench.contenders", index_targets=True,
    fixed_c=None, min_c=2, label_smoothing=True, ignore_index=True, channel_dim_optional=False,
    unbatched=True, masked_logits=True,
    id_prefix=lambda channel_dim: None, elementwise=False,
)
BINARY = Family(
    name="binary",
    signature="F.binary_cross_entropy_with_logits(input, target, weight=None, "
              "reduction='mean', pos_weight=None)",
    call_kwargs=bce.binary_kwargs, options=("weights", "soft_targets"), oracle=oracle.binary,
    reference="bce_logits", cli_flag="--binary-contender", option_dest="binary_contender",
    fixture="binary_contender", entry_point_group="xentbench.binary_contenders",
    index_targets=False, fixed_c=1, min_c=1, label_smoothing=False, ignore_index=False,
    channel_dim_optional=True, unbatched=True, masked_logits=False,
    id_prefix=lambda channel_dim: "bin" if channel_dim else "bin1",
    elementwise=True,
)
FAMILIES: dict[str, Family] = {f.name: f for f in (MULTICLASS, BINARY)}


def family(name: str) -> Family:
    """The record of ``name``; a name that is not a family says which are."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"family {name!r}: use one of {tuple(FAMILIES)}") from None
