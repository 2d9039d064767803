"""Exponential moving average of the weights: timm's ``ModelEmaV3``, resumable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timm.utils import ModelEmaV3
from torch import nn

from skin_lesion.config import check_probability


@dataclass(frozen=True)
class EmaConfig:
    """Exponential moving average of the weights in phase 2 (timm ``ModelEmaV3``).

    Attributes:
        enabled: Evaluate and keep the EMA weights instead of the raw ones.
        decay: The largest decay.
        warmup: Ramp the decay up as ``1 - (1 + step)^(-2/3)`` (timm's warm-up), so that a
            short run is not dominated by the weights it started from.
    """

    enabled: bool = True
    decay: float = 0.998
    warmup: bool = True

    def __post_init__(self) -> None:
        check_probability(self, "decay", below_one=True)


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
