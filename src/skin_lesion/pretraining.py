"""Supervised contrastive pretraining of an encoder (Khosla et al. 2020) on the image cache.

A plain library: the contrastive_pretraining pipeline's node calls ``pretrain`` and
``embed``; a notebook can do the same without Kedro.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score
from torch import nn
from tqdm.auto import tqdm

from skin_lesion import engine
from skin_lesion.augment import (
    build_eval_transform,
    build_train_augment,
    eval_settings,
    two_views,
)
from skin_lesion.batches import Batch, BatchSource
from skin_lesion.checkpoints import CheckpointStore, require_kind, to_cpu, training_device

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import EncoderConfig, PretrainConfig, ProjectionConfig
from skin_lesion.configs import KnnMonitorConfig as KnnMonitorConfig
from skin_lesion.losses import SupConLoss
from skin_lesion.models import (
    ContrastiveModel,
    create_encoder,
    encoder_architecture,
    feature_width,
    resolve_preprocessing,
)

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "supcon_encoder"


def build_model(encoder: EncoderConfig, projection: ProjectionConfig) -> ContrastiveModel:
    """The encoder with its projection head."""
    return _with_projection(create_encoder(encoder.name, weights=encoder.weights), projection)


def _with_projection(backbone: nn.Module, projection: ProjectionConfig) -> ContrastiveModel:
    return ContrastiveModel(backbone, hidden_dim=projection.hidden_dim, out_dim=projection.out_dim)


def model_from_checkpoint(checkpoint: dict[str, Any]) -> ContrastiveModel:
    """Rebuild the pretrained model from its checkpoint alone (no download, no params)."""
    require_kind(checkpoint, CHECKPOINT_KIND)
    arch = checkpoint["architecture"]
    model = _with_projection(
        encoder_architecture(arch["encoder"]), ProjectionConfig(**arch["projection"])
    )
    model.load_state_dict(checkpoint["state_dict"])
    return model


def make_supcon_step(augment: nn.Module, loss_fn: SupConLoss, channels_last: bool):
    """The per-batch step: two augmented views per image, projections, SupCon loss."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(model: nn.Module, batch: Batch) -> torch.Tensor:
        # Augmentation in float32: the step runs under autocast (see make_classifier_step).
        with torch.autocast(batch.images.device.type, enabled=False):
            views = two_views(augment, batch.images)  # [B, 2, 3, S, S]
        b, v = views.shape[:2]
        flat = views.flatten(0, 1).contiguous(memory_format=memory_format)
        projections = model(flat).view(b, v, -1)
        return loss_fn(projections, batch.labels)

    return step


def pretrain(
    images: np.ndarray,
    labels: np.ndarray,
    train_indices: np.ndarray,
    *,
    encoder: EncoderConfig,
    config: PretrainConfig,
    seed: int,
    device: torch.device,
    cache_preprocessing: dict[str, Any],
    params: dict[str, Any],
    store: CheckpointStore | None = None,
    val_indices: np.ndarray | None = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Pretrain with SupCon on ``images[train_indices]``.

    With ``config.knn_monitor.k > 0`` and ``val_indices``, every scored epoch's history row
    also holds ``val_knn_balanced_accuracy``, ``val_knn_macro_f1`` and ``knn_seconds``
    (:func:`knn_scores` of the validation images against the train images, both through
    the eval transform). The monitor draws no random numbers: the weights are the same
    with it on or off.

    Returns:
        The self-describing checkpoint (CPU) and the per-epoch history.
    """
    engine.seed_everything(seed)
    model = build_model(encoder, config.projection)
    preprocessing = {
        "cache": cache_preprocessing,
        **resolve_preprocessing(model.encoder),
        "crop_size": config.augment.crop_size,
        # What evaluation does, not timm's pretrained eval (224 px, bicubic, crop_pct 0.875),
        # which no prediction here applies: a reader deploying from the record gets ours.
        **eval_settings(config.augment.crop_size),
    }
    epochs = config.epochs if config.enabled else 0

    def describe(epoch: int, history: list[dict[str, float]]) -> dict[str, Any]:
        return {
            "kind": CHECKPOINT_KIND,
            "architecture": {
                "encoder": encoder.name,
                "projection": asdict(config.projection),
                "num_features": feature_width(model.encoder),
            },
            "constructor": {"encoder": {"name": encoder.name, "weights": "none"}},
            "initial_weights": encoder.weights,
            "state_dict": model.state_dict(),
            "epoch": epoch,
            "params": params,
            "preprocessing": preprocessing,
            "history": history,
            "trained_on": training_device(device),
        }

    if epochs == 0:
        logger.info("Contrastive pretraining disabled: passing on the initial weights")
        return to_cpu(describe(-1, [])), []
    channels_last = engine.place_model(model, device, config.channels_last)
    source = BatchSource(
        images,
        labels,
        train_indices,
        batch_size=config.batch_size,
        device=device,
        seed=seed,
        sampling=config.sampling,
        placement=config.placement,
    )
    augment = build_train_augment(config.augment, preprocessing["mean"], preprocessing["std"])
    step = make_supcon_step(
        augment.to(device),
        SupConLoss(config.temperature),
        channels_last,
    )
    optimizer = engine.build_optimizer(
        [{"params": model.parameters()}],
        config.optim,
        no_decay=engine.no_weight_decay_parameters(model),
    )
    scheduler = engine.build_scheduler(optimizer, config.optim, len(source), epochs)
    precision = engine.Precision(device, enabled=config.amp)
    compiled = torch.compile(model) if config.compile else model
    evaluate = _knn_monitor(
        model,
        images,
        labels,
        train_indices,
        val_indices,
        config=config,
        epochs=epochs,
        preprocessing=preprocessing,
        device=device,
        precision=precision,
    )
    logger.info(
        "SupCon pretraining %s on %s (%s), %d epochs x %d steps",
        encoder.name,
        device,
        precision.name,
        epochs,
        len(source),
    )
    history = engine.fit(
        compiled,
        step,
        source,
        optimizer,
        scheduler,
        precision,
        epochs=epochs,
        grad_clip=config.optim.grad_clip,
        describe=describe,
        store=store.keeping_epochs() if store is not None and config.keep_epochs else store,
        resume=config.resume,
        evaluate=evaluate,
        progress=config.progress,
        desc="supcon",
    )
    return to_cpu(describe(epochs - 1, history)), history


def _knn_monitor(
    model: ContrastiveModel,
    images: np.ndarray,
    labels: np.ndarray,
    train_indices: np.ndarray,
    val_indices: np.ndarray | None,
    *,
    config: PretrainConfig,
    epochs: int,
    preprocessing: dict[str, Any],
    device: torch.device,
    precision: engine.Precision,
) -> Callable[[nn.Module, int], dict[str, float]] | None:
    """The engine's ``evaluate`` for the kNN monitor, or None when it is off."""
    monitor = config.knn_monitor
    if monitor.k == 0:
        return None
    if val_indices is None or len(val_indices) == 0:
        logger.warning("knn_monitor: the splits have no validation images; monitor off")
        return None
    transform = build_eval_transform(
        preprocessing["crop_size"], preprocessing["mean"], preprocessing["std"]
    ).to(device)
    train_labels = torch.from_numpy(np.asarray(labels)[train_indices])
    val_labels = torch.from_numpy(np.asarray(labels)[val_indices])

    def evaluate(_: nn.Module, epoch: int) -> dict[str, float]:
        if (epoch + 1) % monitor.every and epoch != epochs - 1:
            return {}
        started = time.perf_counter()
        encoded = [
            _encode(
                model,
                images,
                rows,
                transform=transform,
                device=device,
                batch_size=engine.forward_batch_size(config.embed_batch_size, device),
                autocast=precision.autocast,
                projections=False,
                progress=config.progress,
                desc=f"knn {split}",
            )[0]
            for split, rows in (("train", train_indices), ("val", val_indices))
        ]
        scores = knn_scores(
            encoded[0],
            train_labels,
            encoded[1],
            val_labels,
            k=monitor.k,
            temperature=monitor.temperature,
        )
        return {**scores, "knn_seconds": time.perf_counter() - started}

    return evaluate


@torch.no_grad()
def _encode(
    model: ContrastiveModel,
    images: np.ndarray,
    indices: np.ndarray,
    *,
    transform: nn.Module,
    device: torch.device,
    batch_size: int,
    autocast: Any = contextlib.nullcontext,
    projections: bool = True,
    progress: bool = False,
    desc: str = "embed",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encoder features (and projections) of ``images[indices]`` in order, float32 on CPU."""
    model.eval()
    features, projected = [], []
    for start in tqdm(
        range(0, len(indices), batch_size), desc=desc, disable=not progress, leave=False
    ):
        rows = indices[start : start + batch_size]
        batch = torch.from_numpy(np.ascontiguousarray(images[rows])).to(device)
        x = transform(batch)  # float32, outside autocast, as the classifier's validation
        with autocast():
            feats = model.features(x)
            if projections:
                projected.append(model.head(feats).float().cpu())
        features.append(feats.float().cpu())
    return torch.cat(features), torch.cat(projected) if projections else None


@torch.no_grad()
def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    *,
    k: int,
    temperature: float,
    chunk: int = 1024,
    prior_corrected: bool = True,
) -> dict[str, float]:
    """Balanced accuracy and macro-F1 of a weighted kNN vote in the encoder's feature space.

    Each query image takes its ``k`` most cosine-similar train images, and each of those
    votes for its class with weight ``exp(similarity / temperature)`` (the kNN monitor of
    Wu et al. 2018, k = 200 and temperature 0.07 there). A class's share of the votes
    estimates P(class | image); the prediction divides it by the class's share of the train
    images before the argmax, the decision rule for balanced accuracy. Plain votes name the
    majority class for almost every image on HAM10000 (67% ``nv``): with ImageNet features
    at 128 px, balanced accuracy 0.18 plain against 0.49 prior-corrected (k = 200).

    Args:
        train_features: ``[n, d]`` features of the labelled (train) images.
        train_labels: ``[n]`` integer classes.
        query_features: ``[m, d]`` features of the images to score (validation).
        query_labels: ``[m]`` their classes.
        k: Neighbours (at most ``n`` are used).
        temperature: Vote weight temperature (> 0).
        chunk: Queries per similarity block (bounds memory at ``chunk x n``).
        prior_corrected: False: the argmax of the plain votes, for comparison.

    Returns:
        ``{"val_knn_balanced_accuracy": ..., "val_knn_macro_f1": ...}``.
    """
    if len(train_features) == 0 or len(query_features) == 0:
        raise ValueError(
            f"knn_scores needs train and query images, got {len(train_features)} and "
            f"{len(query_features)}"
        )
    num_classes = int(max(train_labels.max(), query_labels.max())) + 1
    train = torch.nn.functional.normalize(train_features.float(), dim=1)
    query = torch.nn.functional.normalize(query_features.float(), dim=1)
    labels = train_labels.long()
    prior = torch.bincount(labels, minlength=num_classes).float() / len(labels)
    k = min(k, len(train))
    predicted = []
    for start in range(0, len(query), chunk):
        similarity = query[start : start + chunk] @ train.T
        top, where = similarity.topk(k, dim=1)
        # Shifted by each query's best similarity: no overflow, and no underflow to all-zero
        # votes (0/0 shares, class 0 for every image) at a small temperature.
        votes = torch.zeros(len(top), num_classes).scatter_add_(
            1,
            labels[where],
            torch.exp((top - top[:, :1]) / temperature),
        )
        share = votes / votes.sum(dim=1, keepdim=True)
        # A class absent from the train images gets no votes and is never predicted.
        adjusted = (
            torch.where(prior > 0, share / prior.clamp_min(1e-12), -1.0)
            if prior_corrected
            else share
        )
        predicted.append(adjusted.argmax(dim=1))
    truth, guess = query_labels.long().numpy(), torch.cat(predicted).numpy()
    return {
        "val_knn_balanced_accuracy": float(balanced_accuracy_score(truth, guess)),
        "val_knn_macro_f1": float(f1_score(truth, guess, average="macro", zero_division=0)),
    }


def embed(
    model: ContrastiveModel,
    images: np.ndarray,
    indices: np.ndarray,
    *,
    preprocessing: dict[str, Any],
    device: torch.device,
    batch_size: int = 256,
    progress: bool = True,
    channels_last: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Encoder features and normalised projections of ``images[indices]`` (eval transform).

    ``channels_last`` puts the model in NHWC memory format where that pays
    (``engine.use_channels_last``).

    Returns:
        ``(features [n, num_features], projections [n, out_dim])`` as float32 arrays (with
        no rows for no indices).
    """
    if len(indices) == 0:
        return (
            np.zeros((0, feature_width(model.encoder)), np.float32),
            np.zeros((0, model.head.out_dim), np.float32),
        )
    engine.place_model(model, device, channels_last)
    transform = build_eval_transform(
        preprocessing["crop_size"], preprocessing["mean"], preprocessing["std"]
    ).to(device)
    features, projections = _encode(
        model,
        images,
        indices,
        transform=transform,
        device=device,
        batch_size=batch_size,
        progress=progress,
    )
    return features.numpy(), projections.numpy()
