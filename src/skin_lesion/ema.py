"""Exponential moving average of the weights: timm's ``ModelEmaV3``, resumable."""

from __future__ import annotations

from typing import Any

from timm.utils import ModelEmaV3
from torch import nn

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import EmaConfig


class StepEma:
    """timm's ``ModelEmaV3`` driven by our own step count, which resume restores."""

    def __init__(self, model: nn.Module, config: EmaConfig) -> None:
        """Start the average at ``model``'s current weights."""
        self.ema = ModelEmaV3(model, decay=config.decay, use_warmup=config.warmup)
        self.step = 0

    @property
    def module(self) -> nn.Module:
        """The averaged model."""
        return self.ema.module

    def update(self, model: nn.Module) -> None:
        """Fold ``model``'s weights into the average (after an optimizer step)."""
        self.step += 1
        self.ema.update(model, step=self.step)

    def state_dict(self) -> dict[str, Any]:
        """For checkpoints (resume)."""
        return {"ema": self.ema.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.ema.load_state_dict(state["ema"])
        self.step = state["step"]
