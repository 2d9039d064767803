"""Loss functions, one per module."""

from skin_lesion.losses.focal import (
    FocalLoss,
    build_classification_loss,
    inverse_frequency_weights,
    sqrt_inverse_frequency_weights,
)
from skin_lesion.losses.supcon import SupConLoss

__all__ = [
    "FocalLoss",
    "SupConLoss",
    "build_classification_loss",
    "inverse_frequency_weights",
    "sqrt_inverse_frequency_weights",
]
