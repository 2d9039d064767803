"""Loss functions, one per module."""

from skin_lesion.losses.supcon import SupConLoss

__all__ = ["SupConLoss"]
