"""Nodes of the contrastive_pretraining pipeline: thin calls into the library."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from skin_lesion import lineage
from skin_lesion.checkpoints import CheckpointStore
from skin_lesion.config import from_dict
from skin_lesion.configs import PretrainConfig
from skin_lesion.images import ImageCache
from skin_lesion.preprocessing import PreprocessConfig
from skin_lesion.splits import align_to_cache

# skin_lesion.pretraining and engine import torch and timm: each node imports them, so that
# loading the pipelines (every `kedro` command, kedro-viz, `%reload_kedro`) does not.

logger = logging.getLogger(__name__)


def pretrain_encoder(
    image_cache: ImageCache,
    splits: pd.DataFrame,
    pretraining_run: CheckpointStore,
    encoder: dict[str, Any],
    params: dict[str, Any],
    seed: int,
    device: str,
    preprocessing: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Pretrain the encoder with SupCon on the train split only.

    The validation split is only scored, by the kNN monitor (``knn_monitor``), never
    trained on.

    Args:
        image_cache: The decoded images.
        splits: Split of every image (only ``train`` rows are used).
        pretraining_run: Where each epoch's checkpoint is kept, for ``resume``.
        encoder: ``params:encoder`` (timm name and initial weights).
        params: ``params:contrastive_pretraining``.
        seed: ``params:seed``.
        device: ``params:device`` (``auto``, ``cuda``, ``cpu``, ...).
        preprocessing: ``params:data_processing.preprocessing``; the cache must have been
            made with it (a cache left from other settings is refused).

    Returns:
        The ``pretrained_encoder`` checkpoint and the per-epoch ``pretraining_history``.
        The checkpoint's ``params`` record the split's fingerprint, so that a later stage
        (and ``resume``) can tell when the splits have changed since.
    """
    from skin_lesion import engine
    from skin_lesion import pretraining as supcon

    config = from_dict(supcon.PretrainConfig, params, "contrastive_pretraining")
    encoder_config = from_dict(supcon.EncoderConfig, encoder, "encoder")
    if preprocessing is not None:
        lineage.check_cache_settings(
            image_cache.preprocessing,
            from_dict(PreprocessConfig, preprocessing, "data_processing.preprocessing").to_dict(),
        )
    rows = align_to_cache(image_cache.image_ids, splits)
    split = rows["split"].to_numpy()
    checkpoint, history = supcon.pretrain(
        image_cache.images,
        rows["label"].to_numpy(),
        np.flatnonzero(split == "train"),
        encoder=encoder_config,
        config=config,
        seed=seed,
        device=engine.resolve_device(device),
        cache_preprocessing=image_cache.preprocessing,
        params=run_params(image_cache, splits, encoder, params, seed),
        store=pretraining_run,
        val_indices=np.flatnonzero(split == "val"),
    )
    return checkpoint, history


def run_params(
    image_cache: ImageCache,
    splits: pd.DataFrame,
    encoder: dict[str, Any],
    params: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """What :func:`pretrain_encoder` records as the run's ``params`` in its checkpoints,
    which ``resume`` compares with the saved run's (arguments as its)."""
    config = from_dict(PretrainConfig, params, "contrastive_pretraining")
    return {
        "encoder": encoder,
        "contrastive_pretraining": params,
        "seed": seed,
        lineage.SPLIT_KEY: lineage.split_fingerprint(splits),
        lineage.CACHE_KEY: image_cache.preprocessing,
        lineage.ORDER_KEY: lineage.train_order_fingerprint(image_cache, splits),
        lineage.DATA_KEY: lineage.data_fingerprint(image_cache, splits),
        lineage.SETTINGS_KEY: {"contrastive_pretraining": asdict(config)},
    }


def check_resumable(
    image_cache: ImageCache,
    splits: pd.DataFrame,
    pretraining_run: CheckpointStore,
    encoder: dict[str, Any],
    params: dict[str, Any],
    seed: int,
    device: str,
    preprocessing: dict[str, Any] | None = None,
) -> None:
    """The refusal of :func:`pretrain_encoder` with ``resume`` (its arguments), without
    training: run by ``parameters_check`` before the run, so that a refused resume leaves
    no FAILED MLflow run; the engine's own check stays for calls outside a ``kedro run``.
    SupCon off (``enabled: false`` or ``epochs: 0``) trains nothing and resumes nothing.

    Raises:
        engine.ResumeMismatchError: Naming each difference from the saved run.
    """
    config = from_dict(PretrainConfig, params, "contrastive_pretraining")
    if not (config.resume and config.enabled and config.epochs > 0):
        return
    from skin_lesion import engine

    engine.check_resumable(pretraining_run, run_params(image_cache, splits, encoder, params, seed))


def export_embeddings(
    pretrained_encoder: dict[str, Any],
    image_cache: ImageCache,
    splits: pd.DataFrame,
    params: dict[str, Any],
    device: str,
) -> pd.DataFrame:
    """Embed the val and test images for the reporting pipeline's 2-D map.

    Returns:
        One row per val/test image: ``image_id, split, label, dx`` and the normalised
        projection ``z0 .. z{d-1}`` (no rows when ``export_embeddings`` is false).
    """
    from skin_lesion import engine
    from skin_lesion import pretraining as supcon

    config = from_dict(supcon.PretrainConfig, params, "contrastive_pretraining")
    # Run alone (`--nodes export_embeddings`) after the SupCon settings changed, it would map
    # an encoder the settings no longer describe.
    lineage.check_pretraining_settings(pretrained_encoder, params)
    if pretrained_encoder.get("history"):  # trained on labels: must match the current splits
        lineage.check_checkpoint_inputs(
            pretrained_encoder,
            "pretrained_encoder",
            "contrastive_pretraining",
            splits=splits,
            cache_preprocessing=image_cache.preprocessing,
            data=lineage.data_fingerprint(image_cache, splits),
        )
    rows = align_to_cache(image_cache.image_ids, splits)
    chosen = np.flatnonzero(rows["split"].isin(["val", "test"]).to_numpy())
    if not config.export_embeddings:
        chosen = chosen[:0]
    model = supcon.model_from_checkpoint(pretrained_encoder)
    resolved = engine.resolve_device(device)
    _, projections = supcon.embed(
        model,
        image_cache.images,
        chosen,
        preprocessing=pretrained_encoder["preprocessing"],
        device=resolved,
        batch_size=engine.forward_batch_size(config.embed_batch_size, resolved),
        progress=config.progress,
        channels_last=config.channels_last,
    )
    out_dim = pretrained_encoder["architecture"]["projection"]["out_dim"]
    table = pd.DataFrame(
        projections.reshape(len(chosen), out_dim), columns=[f"z{i}" for i in range(out_dim)]
    )
    meta = rows.iloc[chosen][["image_id", "split", "label", "dx"]].reset_index(drop=True)
    return pd.concat([meta, table], axis=1)
