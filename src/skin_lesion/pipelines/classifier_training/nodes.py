"""Nodes of the classifier_training pipeline: thin calls into the library."""

from __future__ import annotations

from typing import Any

import pandas as pd

from skin_lesion import classification, engine
from skin_lesion.checkpoints import CheckpointStore
from skin_lesion.config import from_dict
from skin_lesion.images import ImageCache
from skin_lesion.splits import align_to_cache

METADATA_COLUMNS = ["image_id", "age", "sex", "localization"]


def train_classifier(
    image_cache: ImageCache,
    splits: pd.DataFrame,
    cached_metadata: pd.DataFrame,
    pretrained_encoder: dict[str, Any],
    classifier_run: CheckpointStore,
    classes: list[str],
    params: dict[str, Any],
    seed: int,
    device: str,
) -> tuple[dict[str, Any], list[dict[str, Any]], pd.DataFrame]:
    """Fine-tune the classifier on train, choose the best epoch on val (test untouched).

    Args:
        image_cache: The decoded images.
        splits: Split of every image.
        cached_metadata: Age, sex and localization per image (for metadata fusion).
        pretrained_encoder: The contrastive_pretraining checkpoint (or initial weights).
        classifier_run: Where each epoch's state is kept, for ``resume``.
        classes: Class names in label order.
        params: ``params:classifier_training``.
        seed: ``params:seed``.
        device: ``params:device``.

    Returns:
        The ``classifier`` checkpoint, ``training_history`` and ``val_predictions``.
    """
    config = from_dict(classification.ClassifierConfig, params, "classifier_training")
    rows = align_to_cache(image_cache.image_ids, splits).merge(
        cached_metadata[METADATA_COLUMNS], on="image_id", how="left", validate="one_to_one"
    )
    return classification.train_classifier(
        image_cache.images,
        rows,
        pretrained_encoder,
        classes=list(classes),
        config=config,
        seed=seed,
        device=engine.resolve_device(device),
        params={"classifier_training": params, "seed": seed, "classes": list(classes)},
        store=classifier_run,
    )
