"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection") and class weighting.

Eq. 5 of the paper, for one sample with true class ``y`` and ``p_t = softmax(logits)[y]``:

    FL(p_t) = -alpha_t * (1 - p_t)^gamma * log(p_t)

The paper writes it for binary sigmoid outputs; the multi-class form used here takes
``p_t`` from a softmax over the ``K`` classes. ``p_t`` is the model's *unweighted*
probability of the true class, and the class weight ``alpha_t`` multiplies the loss
separately. Several public implementations instead compute
``p_t = exp(-cross_entropy(logits, y, weight=alpha))``; that ``exp(-alpha_y * -log p_y)``
equals ``p_y ** alpha_y``, so their modulating factor ``(1 - p_t)^gamma`` changes with
``alpha`` and is no longer the focal term of Eq. 5. This module keeps the two apart.

For a target distribution ``q`` over the classes (MixUp/CutMix targets) the loss
generalises the cross-entropy ``-sum_k q_k log p_k`` term by term:

    L(q) = -sum_k alpha_k * q_k * (1 - p_k)^gamma * log(p_k)

which for a one-hot ``q`` is Eq. 5 again, and for a MixUp target ``lam * a + (1 - lam) * b``
is ``lam * FL(a) + (1 - lam) * FL(b)``. With ``gamma = 0`` it is (class-weighted)
cross-entropy, the paper's own remark below Eq. 5.

Label smoothing with ``eps`` mixes in the uniform target, weighted as the sample is:

    L_eps(q) = (1 - eps) * L(q) + eps * w(q) * mean_k [-(1 - p_k)^gamma * log(p_k)],
    w(q) = sum_k alpha_k * q_k    (1 without alpha)

so a hard label ``y`` costs ``alpha_y`` times the smoothed, unweighted loss: ``alpha`` stays
the weight of the true class (``alpha_t``). Without ``alpha`` this equals
``F.cross_entropy(label_smoothing=eps)``, which smooths ``q`` to ``(1 - eps) * q + eps / K``.
With ``alpha`` it deliberately differs from torch's ``F.cross_entropy(weight=w,
label_smoothing=eps)``, which weights each smoothed class by its own ``w_k``: with
inverse-frequency weights the rare classes' share of the smoothing then outweighs a common
class's own label (for HAM10000's train counts at ``eps = 0.2``, the loss is lowest for an
``nv`` image when it is called ``df``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

LOGITS_NDIM = 2  # (batch, classes)
REDUCTIONS = ("mean", "sum", "none")
LOSS_NAMES = ("focal", "cross_entropy", "weighted_cross_entropy")

Reduction = Literal["mean", "sum", "none"]


class FocalLoss(nn.Module):
    """Multi-class focal loss, Eq. 5 of Lin et al. 2017, with optional class weights.

    ``forward(logits, targets)`` takes ``logits`` of shape ``(batch, classes)`` and either
    hard targets (integer class indices, shape ``(batch,)``) or soft targets (a float
    distribution over classes per sample, shape ``(batch, classes)``, as MixUp and CutMix
    produce). See the module docstring for the formula.

    ``'mean'`` divides the summed loss by the number of samples, not by ``sum(alpha_y)``
    as ``F.cross_entropy(weight=...)`` does for hard targets. This is the RetinaNet
    convention (a fixed normaliser, Sec. 4 of the paper), keeps hard and soft targets on
    one scale (torch's own cross-entropy divides by the batch size for probability targets
    but by ``sum(weight[y])`` for class indices), and keeps ``alpha`` a class weight rather
    than letting it cancel within each batch.

    The loss is computed in float32 with autocast disabled, via ``log_softmax`` so that
    ``log p`` is never ``log(0)``.
    """

    alpha: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Sequence[float] | torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        """Configure the loss.

        Args:
            gamma: The focusing parameter of Eq. 5; ``>= 0``. ``0`` gives cross-entropy.
            alpha: Per-class weights ``alpha_k`` (one non-negative value per class), or
                ``None`` for no weighting. Its length is checked against the logits on
                every call.
            label_smoothing: ``eps`` in ``[0, 1]``: the loss mixes in ``eps`` of the uniform
                target's, weighted by the sample's own ``alpha`` (module docstring); without
                ``alpha`` as ``F.cross_entropy(label_smoothing=eps)``.
            reduction: ``'mean'`` (over samples), ``'sum'`` or ``'none'`` (per sample).

        Raises:
            ValueError: Naming the value, on a negative or non-finite gamma, a label
                smoothing outside ``[0, 1]``, an unknown reduction, or an alpha that is not
                a 1-D sequence of finite non-negative numbers.
        """
        super().__init__()
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.reduction = reduction
        # A buffer follows the module through .to(device); not persistent, because the
        # constructor arguments (not the state dict) are what rebuild a loss.
        self.register_buffer("alpha", _as_alpha(alpha), persistent=False)

    def extra_repr(self) -> str:
        """Show the configuration in ``repr``."""
        alpha = None if self.alpha is None else [round(a, 4) for a in self.alpha.tolist()]
        return (
            f"gamma={self.gamma}, alpha={alpha}, label_smoothing={self.label_smoothing}, "
            f"reduction={self.reduction!r}"
        )

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits: Unnormalised class scores, shape ``(batch, classes)``, any float dtype.
            targets: Class indices, integer shape ``(batch,)``; or a float distribution per
                sample, shape ``(batch, classes)``, rows summing to 1 (not checked, so as not
                to synchronise with the GPU for it; the range check of class indices does).

        Returns:
            A float32 scalar for ``'mean'`` and ``'sum'``, a float32 ``(batch,)`` tensor for
            ``'none'``.

        Raises:
            ValueError: Naming the shape or value, when ``logits`` is not 2-D or empty,
                ``targets`` does not fit it, a class index is out of range (not read back
                on CUDA, where one_hot's device-side assert fails instead), or ``alpha``
                has a different number of classes than ``logits``.
        """
        _check_inputs(logits, targets, self.alpha)
        num_classes = logits.shape[1]
        with torch.autocast(device_type=logits.device.type, enabled=False):
            log_p = F.log_softmax(logits.float(), dim=1)
            if targets.is_floating_point():
                q = targets.float()
            else:
                q = F.one_hot(targets, num_classes).float()
            # Per class: -(1 - p_k)^gamma log p_k (module docstring).
            per_class = -log_p
            if self.gamma > 0:
                # 1 - p_k as -expm1(log p_k) stays accurate as p_k -> 1. The clamp keeps the
                # gradient of (1 - p)^gamma finite at p = 1 when 0 < gamma < 1, where it
                # would otherwise be inf * 0 = NaN.
                one_minus_p = (-torch.expm1(log_p)).clamp(min=torch.finfo(log_p.dtype).tiny)
                per_class = per_class * one_minus_p.pow(self.gamma)
            weighted_q = q
            if self.alpha is not None:
                weighted_q = q * self.alpha.to(q.device, torch.float32)
            per_sample = (weighted_q * per_class).sum(dim=1)
            if self.label_smoothing > 0:
                # The uniform part carries the sample's weight w(q), not each class's own.
                weight = weighted_q.sum(dim=1)
                per_sample = (1.0 - self.label_smoothing) * per_sample + (
                    self.label_smoothing * weight * per_class.mean(dim=1)
                )

            if self.reduction == "mean":
                return per_sample.mean()  # over samples, not sum(alpha_y): class docstring
            if self.reduction == "sum":
                return per_sample.sum()
            return per_sample


def inverse_frequency_weights(class_counts: Sequence[int]) -> torch.Tensor:
    """Class weights ``n / (K * n_c)``: inversely proportional to frequency.

    The normalisation makes the mean weight over training *samples* 1,
    ``sum_c (n_c / n) * n / (K * n_c) = 1``, so a weighted loss stays on the scale of the
    unweighted one (sklearn's ``class_weight='balanced'`` uses the same formula). The mean
    over *classes* is 1 only for balanced counts.

    Args:
        class_counts: Number of training samples per class, in label order.

    Returns:
        A float32 tensor of shape ``(K,)``; e.g. counts ``[2, 6]`` give ``[2.0, 0.6667]``.

    Raises:
        ValueError: When there are no classes, or naming the class index and count when a
            count is not a positive integer.
    """
    counts = _check_counts(class_counts, "an inverse-frequency")
    total = sum(int(c) for c in counts)
    return torch.tensor([total / (len(counts) * int(c)) for c in counts], dtype=torch.float32)


def sqrt_inverse_frequency_weights(class_counts: Sequence[int]) -> torch.Tensor:
    """Class weights proportional to ``1 / sqrt(n_c)``, a milder re-balancing.

    Scaled as :func:`inverse_frequency_weights` is, so the mean weight over training samples
    is 1: ``w_c = n / (sqrt(n_c) * sum_k sqrt(n_k))``. The ratio between two classes' weights
    is the square root of the inverse-frequency ratio (HAM10000's train split: about 7.6:1
    between ``df`` and ``nv`` where inverse frequency gives about 58:1).

    Args:
        class_counts: Number of training samples per class, in label order.

    Returns:
        A float32 tensor of shape ``(K,)``; e.g. counts ``[1, 4]`` give ``[5/3, 5/6]``.

    Raises:
        ValueError: As :func:`inverse_frequency_weights`, naming the class of a bad count.
    """
    counts = [int(c) for c in _check_counts(class_counts, "a square-root inverse-frequency")]
    total = sum(counts)
    roots = [math.sqrt(c) for c in counts]
    scale = total / sum(roots)
    return torch.tensor([scale / r for r in roots], dtype=torch.float32)


def build_classification_loss(
    name: str,
    *,
    num_classes: int,
    class_counts: Sequence[int] | None = None,
    gamma: float = 2.0,
    alpha: Literal["inverse", "sqrt_inverse", "none"] | Sequence[float] | None = None,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """Build the classification loss a training configuration names.

    Every loss is a :class:`FocalLoss` (``cross_entropy`` and ``weighted_cross_entropy`` are
    its ``gamma = 0`` case, the paper's remark below Eq. 5), so all take hard ``(batch,)``
    and soft ``(batch, classes)`` targets, smooth labels the same way and average over
    samples.

    * ``focal``: :class:`FocalLoss` with ``gamma`` and ``alpha``.
    * ``cross_entropy``: equals ``F.cross_entropy(label_smoothing=...)``.
    * ``weighted_cross_entropy``: ``-sum_k w_k q_k log p_k`` per sample with
      ``w = inverse_frequency_weights(class_counts)``, averaged over samples. Without label
      smoothing, for soft targets and for ``'none'``/``'sum'`` this equals
      ``F.cross_entropy(weight=w)``; for hard targets torch's ``'mean'`` divides by
      ``sum(w[y])`` instead of the batch size (see :class:`FocalLoss`). With mean-1
      weights the two normalisers agree in expectation. With label smoothing the sample's
      weight, not each class's, scales the smoothing (module docstring).

    Args:
        name: One of ``focal``, ``cross_entropy``, ``weighted_cross_entropy``.
        num_classes: Number of classes ``K``.
        class_counts: Training samples per class, in label order; needed by
            ``weighted_cross_entropy`` and by ``alpha='inverse'``/``'sqrt_inverse'``.
        gamma: Focusing parameter of ``focal``; ignored by the others.
        alpha: For ``focal`` only: ``'inverse'`` (inverse-frequency weights from
            ``class_counts``), ``'sqrt_inverse'`` (their square roots, rescaled:
            :func:`sqrt_inverse_frequency_weights`), ``'none'`` or ``None`` (no weighting),
            or one weight per class. Ignored, with a warning, by the other losses.
        label_smoothing: ``eps`` in ``[0, 1]``, applied by every loss.

    Returns:
        The loss module, reduction ``'mean'``.

    Raises:
        ValueError: Naming the value, on an unknown name or alpha string, a non-positive
            ``num_classes``, ``class_counts`` or ``alpha`` of the wrong length, missing
            ``class_counts`` where they are needed, or a zero count (naming its class).
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"Unknown classification loss {name!r}; expected one of {LOSS_NAMES}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if class_counts is not None and len(class_counts) != num_classes:
        raise ValueError(
            f"class_counts has {len(class_counts)} entries ({list(class_counts)}) but "
            f"num_classes is {num_classes}"
        )
    if name != "focal" and alpha not in (None, "none"):
        logger.warning("alpha=%r is only used by the focal loss; %s ignores it", alpha, name)

    if name == "cross_entropy":
        return FocalLoss(gamma=0.0, label_smoothing=label_smoothing)
    if name == "weighted_cross_entropy":
        weights = inverse_frequency_weights(_require_counts(class_counts, name))
        return FocalLoss(gamma=0.0, alpha=weights, label_smoothing=label_smoothing)
    return FocalLoss(
        gamma=gamma,
        alpha=_resolve_alpha(alpha, num_classes, class_counts),
        label_smoothing=label_smoothing,
    )


def _resolve_alpha(
    alpha: str | Sequence[float] | None, num_classes: int, class_counts: Sequence[int] | None
) -> torch.Tensor | None:
    """Turn the ``alpha`` setting of :func:`build_classification_loss` into weights."""
    if alpha is None or alpha == "none":
        return None
    if alpha == "inverse":
        return inverse_frequency_weights(_require_counts(class_counts, "alpha='inverse'"))
    if alpha == "sqrt_inverse":
        counts = _require_counts(class_counts, "alpha='sqrt_inverse'")
        return sqrt_inverse_frequency_weights(counts)
    if isinstance(alpha, str):
        raise ValueError(
            "alpha must be 'inverse', 'sqrt_inverse', 'none', None or one weight per class, "
            f"got {alpha!r}"
        )
    if len(alpha) != num_classes:
        raise ValueError(
            f"alpha has {len(alpha)} weights ({list(alpha)}) but num_classes is {num_classes}"
        )
    return _as_alpha(alpha)


def _check_counts(class_counts: Sequence[int], weight: str) -> list:
    """Return ``class_counts`` as a list, or raise naming the first bad count's class."""
    counts = list(class_counts)
    if not counts:
        raise ValueError("class_counts must name at least one class, got an empty sequence")
    for index, count in enumerate(counts):
        if not _is_positive_integer(count):
            raise ValueError(
                f"class_counts[{index}] is {count!r}; every class needs a positive integer "
                f"count to get {weight} weight"
            )
    return counts


def _is_positive_integer(value: object) -> bool:
    """Whether ``value`` is an integer (``3`` or ``3.0``, not ``True`` or ``'3'``) above 0."""
    if isinstance(value, (bool, str)):
        return False
    try:
        return int(value) == value and value > 0
    except (TypeError, ValueError, OverflowError):
        return False


def _require_counts(class_counts: Sequence[int] | None, needed_by: str) -> Sequence[int]:
    """Return ``class_counts``, or raise naming what needed them."""
    if class_counts is None:
        raise ValueError(f"{needed_by} needs class_counts (training samples per class)")
    return class_counts


def _as_alpha(alpha: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    """Validate per-class weights and return them as a float32 1-D tensor (or ``None``)."""
    if alpha is None:
        return None
    if isinstance(alpha, str):
        raise ValueError(f"alpha must be a sequence of per-class weights, got {alpha!r}")
    values = torch.as_tensor(alpha, dtype=torch.float32).detach().clone()
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(
            f"alpha must be a non-empty 1-D sequence of per-class weights, got shape "
            f"{tuple(values.shape)}"
        )
    bad = [(k, a) for k, a in enumerate(values.tolist()) if not (math.isfinite(a) and a >= 0)]
    if bad:
        raise ValueError(f"alpha weights must be finite and >= 0; (class, value): {bad}")
    return values


# Devices whose targets' class range is not read back (see _check_inputs).
UNCHECKED_DEVICES = frozenset({"cuda", "meta"})


def _check_inputs(logits: torch.Tensor, targets: torch.Tensor, alpha: torch.Tensor | None) -> None:
    """Raise a ValueError naming the bad shape or value if inputs do not fit each other."""
    if logits.ndim != LOGITS_NDIM:
        raise ValueError(f"logits must have shape (batch, classes), got {tuple(logits.shape)}")
    batch, num_classes = logits.shape
    if batch == 0 or num_classes == 0:
        raise ValueError(f"logits must not be empty, got shape {tuple(logits.shape)}")
    if alpha is not None and alpha.numel() != num_classes:
        raise ValueError(
            f"alpha has {alpha.numel()} class weights but logits have {num_classes} classes "
            f"(shape {tuple(logits.shape)})"
        )
    if targets.is_floating_point():
        if targets.shape != logits.shape:
            raise ValueError(
                f"soft targets must have the logits' shape {tuple(logits.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        return
    if targets.dtype == torch.bool or targets.is_complex():
        raise ValueError(f"targets must be integer class indices or floats, got {targets.dtype}")
    if targets.ndim != 1 or targets.shape[0] != batch:
        raise ValueError(
            f"hard targets must have shape ({batch},) to match logits {tuple(logits.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    if targets.device.type in UNCHECKED_DEVICES:
        # As F.one_hot does on CUDA: reading the range would make every training step wait
        # for the GPU (two syncs a step). An index out of range fails there as a device-side
        # assert in one_hot instead; the pipeline's labels are checked in data_processing.
        # (MPS has no such assert, so it is checked; a meta tensor has no values to read.)
        return
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"target class index {bad} is outside [0, {num_classes - 1}]")
