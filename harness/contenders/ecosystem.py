"""The ecosystem board's contenders: other libraries' cross-entropy and BCE losses, each at
the parameter setting where it should equal `F.cross_entropy` or
`F.binary_cross_entropy_with_logits` (focal losses at γ = 0 with α off, Dice-CE without
its Dice term), each declaring what its documentation promises (`declare.parse_caps`
clauses), registered when ``python -m harness check --ecosystem`` asks for them.

An adapter only translates the call: targets shaped as the library wants them (MONAI's
``[N, 1, ...]``), classes moved last where the library reads them there (timm), and a
per-class loss map summed over its class dim where the library returns one (MONAI and
kornia under ``'none'``: the cross-entropy of a position is that sum; kornia's binary loss
reads ``[B, C, *]``, so its logits go in as ``[N, 1, rest]``). Reductions, dtypes,
weights and shapes are the library's own, so every difference the board reports is the
library's. A library that cannot be imported here is listed with the reason
(`Entry.unavailable`). Install them with ``pip install -e '.[ecosystem]'``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.contenders import Contender
from harness.contenders.declare import parse_caps
from harness.problem.layout import class_rows


@dataclass(frozen=True)
class Entry:
    """One library loss on the board."""

    name: str          # contender name
    package: str       # PyPI distribution (for the version and the install hint)
    module: str        # what must import
    family: str
    call: str          # the library call, at the setting that should equal CE / BCE
    caps: str          # what its documentation promises, as declaration clauses
    adapter: Callable  # the family's signature -> the library call
    # clauses that depend on the installed version, asked only once the library imports
    version_caps: Callable[[], str] | None = None

    @functools.cached_property
    def unavailable(self) -> str | None:
        """Why the library cannot be used here (import error), or None."""
        try:
            importlib.import_module(self.module)
        except Exception as exc:  # ImportError, or a binary extension that will not load
            first = str(exc).splitlines()[0] if str(exc) else ""
            return f"{self.package} cannot be imported ({type(exc).__name__}: {first[:160]})"
        return None

    @property
    def version(self) -> str:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    def contender(self) -> Contender:
        caps = self.caps
        if self.version_caps is not None and not self.unavailable:
            caps = ",".join(c for c in (caps, self.version_caps()) if c)
        return Contender(self.name, self.family, self.adapter, f"{self.package}: {self.call}",
                         caps=parse_caps(caps), source=f"ecosystem {self.package} {self.version}",
                         why_unavailable=lambda: self.unavailable)


def _kornia_focal_caps() -> str:
    """Older kornia's focal_loss has no ignore_index."""
    from kornia.losses import focal_loss

    return "" if "ignore_index" in inspect.signature(focal_loss).parameters else "no-ignore-index"


def _class_sum(out: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """A per-class loss map ([N, C, ...], as the logits) summed over its class dim: the
    per-position cross-entropy. Any other shape is returned as it is."""
    return out.sum(1) if out.shape == logits.shape and out.dim() >= 2 else out


# ---- MONAI ---------------------------------------------------------------------------
def monai_focal(input, target, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
    from monai.losses import FocalLoss

    loss = FocalLoss(to_onehot_y=True, gamma=0.0, weight=weight, reduction=reduction,
                     use_softmax=True)
    out = loss(input, target.unsqueeze(1))  # MONAI's index targets carry a channel dim of 1
    return _class_sum(out, input) if reduction == "none" else out


def monai_dice_ce(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    from monai.losses import DiceCELoss

    kwargs = {"label_smoothing": label_smoothing} if label_smoothing else {}
    loss = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=0.0, lambda_ce=1.0,
                      weight=weight, reduction=reduction, **kwargs)
    return loss(input, target.unsqueeze(1))


# ---- kornia --------------------------------------------------------------------------
def kornia_focal(input, target, weight=None, ignore_index=-100, reduction="mean",
                 label_smoothing=0.0):
    from kornia.losses import focal_loss

    kwargs = {"weight": weight} if weight is not None else {}
    if "ignore_index" in inspect.signature(focal_loss).parameters:
        kwargs["ignore_index"] = ignore_index
    out = focal_loss(input, target, alpha=None, gamma=0.0, reduction=reduction, **kwargs)
    return _class_sum(out, input) if reduction == "none" else out


def kornia_binary_focal(input, target, weight=None, pos_weight=None, reduction="mean"):
    from kornia.losses import binary_focal_loss_with_logits

    # kornia reads [B, C, *]: one class, every other logit along the last dim
    x, t = input.reshape(input.shape[0], 1, -1), target.reshape(input.shape[0], 1, -1)
    kwargs = {k: v for k, v in (("weight", weight), ("pos_weight", pos_weight)) if v is not None}
    out = binary_focal_loss_with_logits(x, t, alpha=None, gamma=0.0, reduction=reduction, **kwargs)
    return out.reshape(input.shape) if reduction == "none" else out


# ---- torchvision, timm, segmentation_models_pytorch, pytorch_toolbelt -----------------
def torchvision_sigmoid_focal(input, target, weight=None, pos_weight=None, reduction="mean"):
    from torchvision.ops import sigmoid_focal_loss

    return sigmoid_focal_loss(input, target, alpha=-1, gamma=0.0, reduction=reduction)


def timm_label_smoothing(input, target, weight=None, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0):
    from timm.loss import LabelSmoothingCrossEntropy

    return LabelSmoothingCrossEntropy(smoothing=label_smoothing)(class_rows(input), target.reshape(-1))


def timm_binary(input, target, weight=None, pos_weight=None, reduction="mean"):
    from timm.loss import BinaryCrossEntropy

    return BinaryCrossEntropy(smoothing=0.0, weight=weight, pos_weight=pos_weight,
                              reduction=reduction)(input, target)


def smp_soft_ce(input, target, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
    from segmentation_models_pytorch.losses import SoftCrossEntropyLoss

    return SoftCrossEntropyLoss(reduction=reduction, smooth_factor=float(label_smoothing),
                                ignore_index=ignore_index, dim=1)(input, target)


def smp_soft_bce(input, target, weight=None, pos_weight=None, reduction="mean"):
    from segmentation_models_pytorch.losses import SoftBCEWithLogitsLoss

    return SoftBCEWithLogitsLoss(weight=weight, pos_weight=pos_weight, ignore_index=None,
                                 reduction=reduction)(input, target)


def toolbelt_soft_ce(input, target, weight=None, ignore_index=-100, reduction="mean",
                     label_smoothing=0.0):
    from pytorch_toolbelt.losses import SoftCrossEntropyLoss

    return SoftCrossEntropyLoss(reduction=reduction, smooth_factor=float(label_smoothing),
                                ignore_index=ignore_index, dim=1)(input, target)


# What each one's documentation promises. Common to all: [N, C, ...] logits only (no
# unbatched [C] vector: each documents a batch dim), no masked logits are promised either
# way, so those are generated (PyTorch handles them).
_NO_EXTRAS = "no-unbatched"
ENTRIES: tuple[Entry, ...] = (
    Entry("monai_focal", "monai", "monai.losses", "multiclass",
          "FocalLoss(to_onehot_y=True, use_softmax=True, gamma=0, weight=w)",
          f"{_NO_EXTRAS},no-ignore-index,no-label-smoothing,no-soft-targets,no-negative-weights",
          monai_focal),
    Entry("monai_dice_ce", "monai", "monai.losses", "multiclass",
          "DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=0, weight=w)",
          f"{_NO_EXTRAS},no-ignore-index,no-soft-targets,no-negative-weights,reductions=mean+sum",
          monai_dice_ce),
    Entry("kornia_focal", "kornia", "kornia.losses", "multiclass",
          "focal_loss(alpha=None, gamma=0, weight=w)",
          f"{_NO_EXTRAS},no-label-smoothing,no-soft-targets", kornia_focal,
          version_caps=_kornia_focal_caps),
    Entry("kornia_binary_focal", "kornia", "kornia.losses", "binary",
          "binary_focal_loss_with_logits(alpha=None, gamma=0, weight=w, pos_weight=p)",
          f"{_NO_EXTRAS},no-elementwise-weight", kornia_binary_focal),
    Entry("torchvision_sigmoid_focal", "torchvision", "torchvision.ops", "binary",
          "ops.sigmoid_focal_loss(alpha=-1, gamma=0)", f"{_NO_EXTRAS},no-weights",
          torchvision_sigmoid_focal),
    Entry("timm_label_smoothing", "timm", "timm.loss", "multiclass",
          "LabelSmoothingCrossEntropy(smoothing=ε) on [positions, C]",
          f"{_NO_EXTRAS},no-weights,no-ignore-index,no-soft-targets,reductions=mean,"
          "label-smoothing<1", timm_label_smoothing),
    Entry("timm_binary", "timm", "timm.loss", "binary",
          "BinaryCrossEntropy(smoothing=0, weight=w, pos_weight=p)", _NO_EXTRAS, timm_binary),
    Entry("smp_soft_ce", "segmentation-models-pytorch", "segmentation_models_pytorch.losses",
          "multiclass", "SoftCrossEntropyLoss(smooth_factor=ε, ignore_index=i, dim=1)",
          f"{_NO_EXTRAS},no-weights,no-soft-targets", smp_soft_ce),
    Entry("smp_soft_bce", "segmentation-models-pytorch", "segmentation_models_pytorch.losses",
          "binary", "SoftBCEWithLogitsLoss(weight=w, pos_weight=p, ignore_index=None)",
          _NO_EXTRAS, smp_soft_bce),
    Entry("toolbelt_soft_ce", "pytorch-toolbelt", "pytorch_toolbelt.losses", "multiclass",
          "SoftCrossEntropyLoss(smooth_factor=ε, ignore_index=i, dim=1)",
          f"{_NO_EXTRAS},no-weights,no-soft-targets", toolbelt_soft_ce),
)


def liger_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                        label_smoothing=0.0):
    from harness.contenders.fused import liger

    return liger(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                 label_smoothing=label_smoothing)


ENTRIES = (*ENTRIES, Entry(
    "liger_cross_entropy", "liger-kernel", "liger_kernel.transformers.functional", "multiclass",
    "liger_cross_entropy(weight=w, ignore_index=i, label_smoothing=ε) on [positions, C] "
    "(the built-in `liger`'s adapter)",
    f"{_NO_EXTRAS},no-soft-targets,devices=cuda", liger_cross_entropy))


def contenders() -> list[Contender]:
    """Every board entry as a contender (unavailable ones say why)."""
    return [e.contender() for e in ENTRIES]
