"""Nodes of the classifier_training pipeline: thin calls into the library."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from skin_lesion import lineage
from skin_lesion.checkpoints import CheckpointStore, state_fingerprint
from skin_lesion.config import from_dict
from skin_lesion.configs import ClassifierConfig, EncoderConfig, PretrainConfig
from skin_lesion.images import ImageCache
from skin_lesion.metadata import MetadataConfig
from skin_lesion.preprocessing import PreprocessConfig
from skin_lesion.splits import align_to_cache

# skin_lesion.classification and engine import torch and timm: the node imports them, so
# that loading the pipelines (every `kedro` command, kedro-viz, `%reload_kedro`) does not.

METADATA_COLUMNS = list(lineage.FUSION_COLUMNS)  # what metadata fusion reads


def check_inputs_current(
    cache_preprocessing: dict[str, Any],
    splits: pd.DataFrame,
    pretrained_encoder: dict[str, Any],
    *,
    encoder: dict[str, Any] | None = None,
    preprocessing: dict[str, Any] | None = None,
    contrastive: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """The cache and the pretrained encoder must have been made with the current settings
    and splits (arguments as :func:`train_classifier`'s; ``data``, the cache's
    ``lineage.data_fingerprint``, which a SupCon encoder must have learnt from). Run by the
    node, and before the run starts by ``parameters_check`` (before any node, and before
    MLflow opens a run).

    Raises:
        lineage.StaleInputError: Naming every stale input at once, and what to rerun.
    """
    checks = []
    if preprocessing is not None:
        checks.append(
            lambda: lineage.check_cache_settings(
                cache_preprocessing,
                from_dict(
                    PreprocessConfig, preprocessing, "data_processing.preprocessing"
                ).to_dict(),
            )
        )
    if encoder is not None:
        wanted = asdict(from_dict(EncoderConfig, encoder, "encoder"))
        checks.append(
            lambda: lineage.check_encoder_settings(lineage.encoder_of(pretrained_encoder), wanted)
        )
    if contrastive is not None:
        checks.append(lambda: lineage.check_pretraining_settings(pretrained_encoder, contrastive))
    if pretrained_encoder.get("history"):  # SupCon learnt from labels: same splits needed
        checks.append(
            lambda: lineage.check_checkpoint_inputs(
                pretrained_encoder,
                "pretrained_encoder",
                "contrastive_pretraining",
                splits=splits,
                cache_preprocessing=cache_preprocessing,
                data=data,
            )
        )
    lineage.all_of(*checks)  # every stale input named at once


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
    encoder: dict[str, Any] | None = None,
    preprocessing: dict[str, Any] | None = None,
    contrastive: dict[str, Any] | None = None,
    metadata_validation: dict[str, Any] | None = None,
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
        encoder: ``params:encoder``; ``pretrained_encoder`` must have been built from it.
        preprocessing: ``params:data_processing.preprocessing``; the cache must have been
            made with it.
        contrastive: ``params:contrastive_pretraining``; ``pretrained_encoder`` must have
            been made with it (the settings that change the weights).
        metadata_validation: ``params:data_processing.metadata``, the sexes and ages
            data_processing let into training; recorded in the checkpoint, so that inference
            holds new metadata to the same limits.

    Returns:
        The ``classifier`` checkpoint, ``training_history`` and ``val_predictions``. The
        checkpoint's ``params`` record the split's fingerprint, which reporting checks.

    Raises:
        lineage.StaleInputError: When the cache, or a pretrained encoder, was made from
            other settings or splits than the current ones (naming the pipeline to rerun).
    """
    from skin_lesion import classification, engine

    config = from_dict(classification.ClassifierConfig, params, "classifier_training")
    check_inputs_current(
        image_cache.preprocessing,
        splits,
        pretrained_encoder,
        encoder=encoder,
        preprocessing=preprocessing,
        contrastive=contrastive,
        data=lineage.data_fingerprint(image_cache, splits),
    )
    recorded = run_params(
        image_cache,
        splits,
        cached_metadata,
        pretrained_encoder,
        classes,
        params,
        seed,
        metadata_validation,
    )
    if not pretrained_encoder.get("history"):  # initial weights: only their cache is current
        pretrained_encoder = {
            **pretrained_encoder,
            "preprocessing": {
                **pretrained_encoder["preprocessing"],
                "cache": image_cache.preprocessing,
            },
        }
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
        params=recorded,
        store=classifier_run,
    )


def run_params(
    image_cache: ImageCache,
    splits: pd.DataFrame,
    cached_metadata: pd.DataFrame,
    pretrained_encoder: dict[str, Any],
    classes: list[str],
    params: dict[str, Any],
    seed: int,
    metadata_validation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What :func:`train_classifier` records as the run's ``params`` in its checkpoints,
    which ``resume`` compares with the saved run's (arguments as its)."""
    config = from_dict(ClassifierConfig, params, "classifier_training")
    return {
        "classifier_training": params,
        "seed": seed,
        "classes": list(classes),
        lineage.SPLIT_KEY: lineage.split_fingerprint(splits),
        lineage.CACHE_KEY: image_cache.preprocessing,
        lineage.ORDER_KEY: lineage.train_order_fingerprint(image_cache, splits),
        lineage.DATA_KEY: lineage.data_fingerprint(
            image_cache, splits, cached_metadata if config.metadata_fusion else None
        ),
        lineage.ENCODER_KEY: state_fingerprint(pretrained_encoder),
        lineage.SETTINGS_KEY: {
            "classifier_training": asdict(config),
            # What the encoder it starts from was made with, which reporting checks.
            **_pretrained_settings(pretrained_encoder),
            **_validation_settings(metadata_validation),
        },
    }


def check_resumable(
    image_cache: ImageCache,
    splits: pd.DataFrame,
    cached_metadata: pd.DataFrame,
    pretrained_encoder: dict[str, Any],
    classifier_run: CheckpointStore,
    classes: list[str],
    params: dict[str, Any],
    seed: int,
    device: str,
    encoder: dict[str, Any] | None = None,
    preprocessing: dict[str, Any] | None = None,
    contrastive: dict[str, Any] | None = None,
    metadata_validation: dict[str, Any] | None = None,
) -> None:
    """The refusal of :func:`train_classifier` with ``resume`` (its arguments), without
    training: run by ``parameters_check`` before the run, so that a refused resume leaves
    no FAILED MLflow run; the node's own check stays for calls outside a ``kedro run``.

    Raises:
        engine.ResumeMismatchError: Naming each difference from the saved run.
    """
    config = from_dict(ClassifierConfig, params, "classifier_training")
    if not config.resume:
        return
    from skin_lesion import classification

    recorded = run_params(
        image_cache,
        splits,
        cached_metadata,
        pretrained_encoder,
        classes,
        params,
        seed,
        metadata_validation,
    )
    classification.check_resumable(classifier_run, config, recorded)


def _validation_settings(metadata_validation: dict[str, Any] | None) -> dict[str, Any]:
    """``{"metadata_validation": {...}}``, the limits filled in (none where not given)."""
    if metadata_validation is None:
        return {}
    limits = from_dict(MetadataConfig, metadata_validation, "data_processing.metadata")
    return {"metadata_validation": {**asdict(limits), "sexes": list(limits.sexes)}}


def _pretrained_settings(pretrained: dict[str, Any]) -> dict[str, Any]:
    """The ``encoder`` and ``contrastive_pretraining`` settings ``pretrained`` was made with
    (the latter only where it recorded them readably)."""
    settings: dict[str, Any] = {"encoder": lineage.encoder_of(pretrained)}
    supcon = lineage.recorded_config(pretrained, "contrastive_pretraining", PretrainConfig)
    if supcon is not None:
        settings["contrastive_pretraining"] = asdict(supcon)
    return settings
