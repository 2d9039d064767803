"""The classifier model: an encoder's features (optionally joined with metadata) into an MLP head.

Also what fine-tuning needs from the model (its encoder in timm's coarse stages, unfreezing
the last K of them) and what using a trained one needs: rebuilding it from its checkpoint
alone and predicting with the preprocessing that checkpoint records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from timm.models import group_parameters
from torch import nn

from skin_lesion import engine
from skin_lesion.augment import build_eval_transform
from skin_lesion.checkpoints import require_kind

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import HeadConfig as HeadConfig
from skin_lesion.models import encoder_architecture, feature_width
from skin_lesion.prediction import predict_proba
from skin_lesion.tabular import MetadataEncoder

CHECKPOINT_KIND = "classifier"


class Classifier(nn.Module):
    """Encoder features (optionally joined with metadata features) -> MLP head -> logits."""

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        *,
        hidden_dim: int = 512,
        dropout: float = 0.3,
        meta_features: int = 0,
    ) -> None:
        """Build the head on top of ``encoder`` (its output width: ``models.feature_width``)."""
        super().__init__()
        self.encoder = encoder
        self.meta_features = meta_features
        width = feature_width(encoder) + meta_features
        if hidden_dim:
            self.head = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(width, hidden_dim),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden_dim, num_classes),
            )
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
        self.encoder_frozen = False
        self.frozen_batchnorm_fixed = False

    def forward(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, num_classes)``; ``meta`` is required when built with meta features."""
        features = self.encoder(images)
        if self.meta_features:
            if meta is None:
                raise ValueError("this classifier fuses metadata: pass meta (B, F)")
            features = torch.cat([features, meta.to(features.dtype)], dim=1)
        return self.head(features)

    def freeze_encoder(self, frozen: bool) -> None:
        """Freeze (or unfreeze) every encoder weight and keep its BatchNorm statistics."""
        self.encoder_frozen = frozen
        self.encoder.requires_grad_(not frozen)
        self.train(self.training)

    def fix_frozen_batchnorm(self, fixed: bool) -> None:
        """Keep the BatchNorm layers whose weights are frozen in eval mode (or not)."""
        self.frozen_batchnorm_fixed = fixed
        self.train(self.training)

    def train(self, mode: bool = True) -> Classifier:
        """As ``nn.Module.train``, but a frozen encoder stays in eval mode (BN stats fixed),
        and so do its frozen BatchNorm layers after ``fix_frozen_batchnorm(True)``."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        elif self.frozen_batchnorm_fixed:
            for module in self.encoder.modules():
                weights = list(module.parameters(recurse=False))
                batchnorm = isinstance(module, nn.modules.batchnorm._BatchNorm)
                if batchnorm and weights and not any(w.requires_grad for w in weights):
                    module.eval()
        return self


def encoder_stages(encoder: nn.Module) -> list[list[nn.Parameter]]:
    """The encoder's parameters in stages, first to last (timm's coarse groups)."""
    names = dict(encoder.named_parameters())
    if not hasattr(encoder, "group_matcher"):
        return [list(names.values())]
    groups = group_parameters(encoder, encoder.group_matcher(coarse=True))
    return [[names[n] for n in members] for _, members in sorted(groups.items())]


def check_unfreeze_stages(encoder: nn.Module, stages: int | None) -> None:
    """Refuse ``unfreeze_stages`` above the encoder's number of stages, naming the key."""
    count = len(encoder_stages(encoder))
    if stages is not None and not 1 <= stages <= count:
        raise ValueError(
            f"classifier_training.finetune.unfreeze_stages: {stages}, but this encoder "
            f"({type(encoder).__name__}) has {count} stage(s); give 1 to {count}, or null "
            "to fine-tune all of it"
        )


def unfreeze_last_stages(model: Classifier, stages: int | None) -> list[nn.Parameter]:
    """Unfreeze all encoder stages (``None``) or the last ``stages``; return those params."""
    check_unfreeze_stages(model.encoder, stages)
    model.freeze_encoder(False)
    groups = encoder_stages(model.encoder)
    if stages is not None:
        for group in groups[:-stages]:
            for p in group:
                p.requires_grad_(False)
        groups = groups[-stages:]
    return [p for group in groups for p in group]


def classifier_from_checkpoint(checkpoint: dict[str, Any]) -> Classifier:
    """Rebuild the classifier from its checkpoint alone (no download, no parameters)."""
    require_kind(checkpoint, CHECKPOINT_KIND)
    arch = checkpoint["architecture"]
    model = Classifier(
        encoder_architecture(arch["encoder"]),
        arch["num_classes"],
        hidden_dim=arch["head"]["hidden_dim"],
        dropout=arch["head"]["dropout"],
        meta_features=arch["meta_features"],
    )
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


class CheckpointPredictor:
    """A checkpoint's model, crop and precision, built once, to score images in parts."""

    def __init__(
        self,
        checkpoint: dict[str, Any],
        *,
        device: torch.device,
        batch_size: int = 256,
        tta: str = "none",
        progress: bool = True,
        channels_last: bool | None = None,
    ) -> None:
        """See :func:`predict_with_checkpoint` for the arguments."""
        self.checkpoint = checkpoint
        self.model = classifier_from_checkpoint(checkpoint)
        if channels_last is None:
            channels_last = bool(_training_setting(checkpoint, "channels_last", True))
        engine.place_model(self.model, device, channels_last)
        prep = checkpoint["preprocessing"]
        self.transform = build_eval_transform(prep["crop_size"], prep["mean"], prep["std"]).to(
            device
        )
        self.precision = checkpoint_precision(checkpoint, device)
        self.device, self.batch_size, self.tta, self.progress = device, batch_size, tta, progress

    def __call__(
        self,
        images: np.ndarray,
        indices: np.ndarray,
        *,
        rows: pd.DataFrame | None = None,
        meta_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """Probabilities of ``images[indices]`` (metadata as in predict_with_checkpoint)."""
        meta = meta_features
        if meta is None and self.checkpoint.get("metadata_encoder"):
            if rows is None:
                raise ValueError("this classifier fuses metadata: pass rows or meta_features")
            meta = MetadataEncoder.from_dict(self.checkpoint["metadata_encoder"]).transform(rows)
        return predict_proba(
            self.model,
            images,
            indices,
            transform=self.transform,
            device=self.device,
            meta=meta,
            batch_size=self.batch_size,
            precision=self.precision,
            tta=self.tta,
            progress=self.progress,
        )


def predict_with_checkpoint(
    checkpoint: dict[str, Any],
    images: np.ndarray,
    rows: pd.DataFrame,
    indices: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 256,
    tta: str = "none",
    progress: bool = True,
    channels_last: bool | None = None,
    meta_features: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities of ``images[indices]`` with the model and preprocessing a checkpoint records.

    ``rows`` (aligned with ``images``) supplies age, sex and localization when the
    classifier fuses metadata; ``meta_features``, where given, is those rows already
    encoded with the checkpoint's metadata encoder (aligned with ``images`` too).
    ``channels_last`` puts the model in NHWC memory format where that pays
    (``engine.use_channels_last``); ``None`` does as training's validation did.
    """
    predictor = CheckpointPredictor(
        checkpoint,
        device=device,
        batch_size=batch_size,
        tta=tta,
        progress=progress,
        channels_last=channels_last,
    )
    return predictor(images, indices, rows=rows, meta_features=meta_features)


def checkpoint_precision(checkpoint: dict[str, Any], device: torch.device) -> engine.Precision:
    """The precision training validated with (``classifier_training.amp``), so that reporting
    and inference score the model with the numerics its epoch was chosen on."""
    return engine.Precision(device, enabled=bool(_training_setting(checkpoint, "amp", True)))


def _training_setting(checkpoint: dict[str, Any], key: str, default: Any) -> Any:
    """``classifier_training.<key>`` as the checkpoint's training ran with it."""
    params = checkpoint.get("params") or {}
    # The filled-in settings where recorded (a default changed since still holds), else the
    # parameters as given.
    settings = (params.get("settings") or {}).get("classifier_training")
    return (settings or params.get("classifier_training") or {}).get(key, default)
