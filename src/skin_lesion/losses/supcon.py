"""Supervised contrastive loss (Khosla et al. 2020, "Supervised Contrastive Learning").

Implements L^sup_out, Eq. 2 of the paper, for a batch of ``views`` augmented views per
sample. With ``z`` the flattened, L2-normalised projections, ``A(i)`` every index but
``i`` and ``P(i)`` the indices in ``A(i)`` that share ``i``'s label:

    L = mean_{i : |P(i)| > 0}  -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / t)
                                                            / sum_{a in A(i)} exp(z_i.z_a / t) )

The paper averages over every anchor; an anchor with no positive (possible when
``views == 1`` and its label occurs once in the batch) makes the 1/|P(i)| term 0/0, which
gave NaN in the reference implementation (SupContrast issue #141). Here such anchors are
left out of the mean, which is also what ``pytorch_metric_learning.losses.SupConLoss``
does through its ``AvgNonZeroReducer``.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

FEATURES_NDIM = 3  # (batch, views, dim)


class SupConLoss(nn.Module):
    """Supervised contrastive loss, L_out form (Eq. 2 of Khosla et al. 2020).

    ``forward(features, labels)`` takes ``features`` of shape ``(batch, views, dim)``
    and integer ``labels`` of shape ``(batch,)``; every view of sample ``b`` has label
    ``labels[b]``. Features must already be L2-normalised (e.g. the output of
    ``ProjectionHead``): the loss does not renormalise them, because normalising twice
    would hide a caller that forgot the projection head's normalisation, and the
    temperature is only meaningful for inner products of unit vectors (cosines).

    The loss is computed in float32 with autocast disabled, even when the caller runs
    under mixed precision: ``exp(cos / t)`` with small ``t`` overflows float16.
    """

    def __init__(self, temperature: float = 0.1, base_temperature: float | None = None) -> None:
        """Configure the loss.

        Args:
            temperature: The temperature ``t`` of Eq. 2; must be positive.
            base_temperature: If given, the loss is multiplied by
                ``temperature / base_temperature`` as in the SupContrast repository, which
                keeps the gradient scale independent of ``t``. ``None`` (the default)
                applies no scaling, i.e. Eq. 2 as printed and as in
                pytorch-metric-learning.

        Raises:
            ValueError: On a non-positive temperature or base temperature.
        """
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if base_temperature is not None and base_temperature <= 0:
            raise ValueError(f"base_temperature must be positive or None, got {base_temperature}")
        self.temperature = temperature
        self.base_temperature = base_temperature

    def extra_repr(self) -> str:
        """Show the temperatures in ``repr``."""
        return f"temperature={self.temperature}, base_temperature={self.base_temperature}"

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            features: L2-normalised projections, shape ``(batch, views, dim)``.
            labels: Class labels, shape ``(batch,)``.

        Returns:
            A float32 scalar: the mean of the per-anchor losses over anchors with at least
            one positive. If no anchor has a positive, a zero that is still connected to
            ``features`` (so ``backward`` works and gives zero gradients).

        Raises:
            ValueError: Naming the shape when ``features`` is not 3-D, ``labels`` is not
                1-D, or their batch sizes differ.
        """
        _check_shapes(features, labels)
        batch, views, dim = features.shape
        with torch.autocast(device_type=features.device.type, enabled=False):
            z = features.float().reshape(batch * views, dim)  # sample-major: row b*views + v
            anchor_labels = labels.repeat_interleave(views)
            logits = z @ z.T / self.temperature

            # A(i) excludes i itself (Eq. 2). A large finite negative rather than -inf keeps
            # a batch of one anchor (no other entries at all) free of NaN.
            self_mask = torch.eye(batch * views, dtype=torch.bool, device=z.device)
            logits = logits.masked_fill(self_mask, torch.finfo(logits.dtype).min)
            log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)

            positives = (anchor_labels[:, None] == anchor_labels[None, :]) & ~self_mask
            num_positives = positives.sum(dim=1)
            sum_log_prob_pos = torch.where(positives, log_prob, 0.0).sum(dim=1)
            per_anchor = -sum_log_prob_pos / num_positives.clamp(min=1)
            if self.base_temperature is not None:
                per_anchor = per_anchor * (self.temperature / self.base_temperature)

            # Mean over anchors that have a positive; 0/1 (a connected zero) if none does.
            has_positive = num_positives > 0
            return (per_anchor * has_positive).sum() / has_positive.sum().clamp(min=1)


def _check_shapes(features: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise a ValueError naming the bad shape if inputs do not fit ``[batch, views, dim]``."""
    if features.ndim != FEATURES_NDIM:
        raise ValueError(
            f"features must have shape (batch, views, dim), got {tuple(features.shape)}"
        )
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (batch,), got {tuple(labels.shape)}")
    if labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels {tuple(labels.shape)} and features {tuple(features.shape)} "
            "differ in batch size"
        )
    if 0 in features.shape:
        raise ValueError(f"features must not be empty, got shape {tuple(features.shape)}")
