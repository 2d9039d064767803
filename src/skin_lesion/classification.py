"""Training the classifier (``skin_lesion.classifier``): fine-tuned in two phases.

Phase 1 (warm-up) trains the head on a frozen encoder; phase 2 unfreezes the whole encoder
or its last K stages with a lower learning rate than the head (discriminative learning
rates). Model choice uses validation only: the test split is never touched here.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from timm.data.mixup import cutmix_bbox_and_lam, mixup_target
from torch import nn

from skin_lesion import engine
from skin_lesion.augment import build_eval_transform, build_train_augment, eval_settings
from skin_lesion.batches import Batch, BatchSource
from skin_lesion.checkpoints import (
    CheckpointStore,
    encoder_training_record,
    to_cpu,
    training_device,
)
from skin_lesion.classifier import (
    CHECKPOINT_KIND,
    Classifier,
    check_unfreeze_stages,
    unfreeze_last_stages,
)

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import ClassifierConfig, FinetuneConfig, LossConfig, MixConfig
from skin_lesion.configs import EarlyStoppingConfig as EarlyStoppingConfig
from skin_lesion.configs import WarmupConfig as WarmupConfig
from skin_lesion.ema import StepEma
from skin_lesion.losses import build_classification_loss
from skin_lesion.models import feature_width
from skin_lesion.prediction import predict_proba
from skin_lesion.pretraining import model_from_checkpoint as pretrained_from_checkpoint
from skin_lesion.tabular import MetadataEncoder, fit_metadata_encoder

logger = logging.getLogger(__name__)

METRICS = ("balanced_accuracy", "macro_f1")


def build_finetune_optimizer(model: Classifier, config: FinetuneConfig) -> torch.optim.AdamW:
    """Unfreeze the encoder (or its last stages) and give it ``encoder_lr_scale`` x the lr."""
    encoder_params = unfreeze_last_stages(model, config.unfreeze_stages)
    model.fix_frozen_batchnorm(config.frozen_batchnorm == "fixed")
    return engine.build_optimizer(
        [
            {"params": encoder_params, "lr_scale": config.encoder_lr_scale, "name": "encoder"},
            {"params": model.head.parameters(), "name": "head"},
        ],
        config.optim,
        no_decay=engine.no_weight_decay_parameters(model),
    )


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Balanced accuracy (mean per-class recall), macro-F1, accuracy and cross-entropy."""
    predicted = probs.argmax(axis=1)
    picked = probs[np.arange(len(labels)), labels]
    return {
        "val_loss": float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, predicted)),
    }


class BestTracker:
    """Keeps the best validation score, its epoch and weights; counts epochs without gain.

    Higher ``metric`` wins; a tie goes to the lower validation loss (small validation sets
    make ties in balanced accuracy common).
    """

    def __init__(self, metric: str) -> None:
        """Track ``metric`` (higher is better)."""
        self.metric = metric
        self.key: tuple[float, float] = (-np.inf, -np.inf)
        self.where: dict[str, Any] = {}
        self.state_dict_: dict[str, torch.Tensor] | None = None
        self.stale = 0
        # The same two counts within the current phase (early stopping's ``scope: phase``).
        self.phase_key: tuple[float, float] = (-np.inf, -np.inf)
        self.phase_stale = 0

    def start_phase(self) -> None:
        """A new phase: no epoch of it yet, so none stale."""
        self.stale, self.phase_key, self.phase_stale = 0, (-np.inf, -np.inf), 0

    def update(self, metrics: dict[str, float], model: nn.Module, where: dict[str, Any]) -> None:
        """Record an epoch; keep a CPU copy of ``model``'s weights when it is the best."""
        key = (metrics[self.metric], -metrics["val_loss"])
        if key > self.phase_key:
            self.phase_key, self.phase_stale = key, 0
        else:
            self.phase_stale += 1
        if key > self.key:
            self.key, self.where, self.stale = key, dict(where), 0
            self.state_dict_ = to_cpu(copy.deepcopy(model.state_dict()))
        else:
            self.stale += 1

    def stale_epochs(self, scope: Literal["run", "phase"]) -> int:
        """Epochs since the last gain over the best of the run (``run``) or of this phase."""
        return self.phase_stale if scope == "phase" else self.stale

    def state_dict(self) -> dict[str, Any]:
        """For checkpoints (resume)."""
        return {
            "key": list(self.key),
            "where": self.where,
            "stale": self.stale,
            "phase_key": list(self.phase_key),
            "phase_stale": self.phase_stale,
            "weights": self.state_dict_,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.key, self.where = tuple(state["key"]), state["where"]
        self.stale, self.state_dict_ = state["stale"], state["weights"]
        self.phase_key = tuple(state["phase_key"])
        self.phase_stale = state["phase_stale"]


class BatchMix:
    """MixUp/CutMix of a batch with its metadata: timm's ``Mixup`` mixes the images and the
    targets only, so with metadata fusion a mixed image carried one patient's age, sex and
    site under a target that is partly the other image's class. The draws are timm's
    ``Mixup`` in batch mode (one ``lam`` a batch, from NumPy's global generator, in the same
    order), as are the CutMix box and its area-corrected ``lam`` and the targets (timm's
    ``cutmix_bbox_and_lam`` and ``mixup_target``): without metadata, the same images and
    targets as ``Mixup``. The metadata features are mixed with the ``lam`` the targets get
    (for CutMix, the share of the area each image keeps), pairing each sample with the
    batch's reverse, as the images are.
    """

    def __init__(self, config: MixConfig, num_classes: int) -> None:
        self.config = config
        self.num_classes = num_classes

    def _draw(self) -> tuple[float, bool]:
        """``lam`` and whether CutMix is used, as timm's ``Mixup._params_per_batch``."""
        config, lam, use_cutmix = self.config, 1.0, False
        if np.random.rand() < config.prob:
            if config.mixup_alpha > 0 and config.cutmix_alpha > 0:
                use_cutmix = bool(np.random.rand() < config.switch_prob)
                alpha = config.cutmix_alpha if use_cutmix else config.mixup_alpha
                lam = float(np.random.beta(alpha, alpha))
            elif config.mixup_alpha > 0:
                lam = float(np.random.beta(config.mixup_alpha, config.mixup_alpha))
            else:
                use_cutmix = True
                lam = float(np.random.beta(config.cutmix_alpha, config.cutmix_alpha))
        return lam, use_cutmix

    def __call__(
        self, x: torch.Tensor, target: torch.Tensor, meta: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Mixed images (in place), soft targets ``(B, num_classes)`` and mixed metadata."""
        if len(x) % 2:
            raise ValueError(f"MixUp/CutMix pair images within a batch: got {len(x)} images")
        lam, use_cutmix = self._draw()
        if lam != 1.0:
            if use_cutmix:
                (yl, yh, xl, xh), lam = cutmix_bbox_and_lam(x.shape, lam, correct_lam=True)
                x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
            else:
                partner = x.flip(0).mul_(1.0 - lam)  # before x is scaled in place
                x.mul_(lam).add_(partner)
            if meta is not None:
                meta = meta * lam + meta.flip(0) * (1.0 - lam)
        return x, mixup_target(target, self.num_classes, lam, 0.0), meta


def make_classifier_step(
    augment: nn.Module, loss_fn: nn.Module, mixup: BatchMix | None, channels_last: bool
):
    """The per-batch step: per-sample augmentation, optional MixUp/CutMix, loss."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(model: nn.Module, batch: Batch) -> torch.Tensor:
        # Augmentation in float32: the step runs under autocast, which would otherwise send
        # kornia's resampling and colour ops through bf16/fp16.
        with torch.autocast(batch.images.device.type, enabled=False):
            x = augment(batch.images).contiguous(memory_format=memory_format)
        target, meta = batch.labels, batch.meta
        if mixup is not None:
            x, target, meta = mixup(x, target, meta)
        return loss_fn(model(x, meta), target)

    return step


def _warn_double_reweighting(config: ClassifierConfig) -> None:
    alpha_on = config.loss.name == "focal" and config.loss.alpha not in (None, "none")
    weighted = config.loss.name == "weighted_cross_entropy" or alpha_on
    if config.sampling != "none" and weighted:
        logger.warning(
            "sampling=%s and a class-weighted loss (%s, alpha=%s) are both on: the minority "
            "classes are being re-weighted twice",
            config.sampling,
            config.loss.name,
            config.loss.alpha,
        )


def build_mixup(config: ClassifierConfig, num_classes: int) -> BatchMix | None:
    """MixUp/CutMix on the batch (:class:`BatchMix`), or ``None`` when both alphas are 0."""
    if not config.mix.enabled:
        return None
    if config.batch_size % 2:
        raise ValueError(
            f"MixUp/CutMix pair images within a batch: batch_size must be even, "
            f"got {config.batch_size}"
        )
    return BatchMix(config.mix, num_classes)


def predictions_frame(probs: np.ndarray, rows: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """``image_id, label, dx, p_<class>...``: one row per image of ``rows``, in order."""
    frame = pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
    labels = rows["label"].to_numpy()
    frame.insert(0, "image_id", rows["image_id"].to_numpy())
    frame.insert(1, "label", labels)
    frame.insert(2, "dx", [classes[k] for k in labels])
    return frame


@dataclass
class _Setup:
    """What both training phases share."""

    model: Classifier
    source: BatchSource
    step: engine.StepFn
    precision: engine.Precision
    validate: Callable[[nn.Module], np.ndarray]  # a model -> its val probabilities
    val_idx: np.ndarray
    val_labels: np.ndarray
    preprocessing: dict[str, Any]
    meta_encoder: MetadataEncoder | None


def _set_up(
    images: np.ndarray,
    rows: pd.DataFrame,
    pretrained: dict[str, Any],
    classes: list[str],
    config: ClassifierConfig,
    seed: int,
    device: torch.device,
) -> _Setup:
    """Model, metadata encoder, loss, batch source, augmentation and validation."""
    train_idx = np.flatnonzero(rows["split"].to_numpy() == "train")
    val_idx = np.flatnonzero(rows["split"].to_numpy() == "val")
    labels = rows["label"].to_numpy()
    meta_encoder, meta = None, None
    if config.metadata_fusion:
        meta_encoder = fit_metadata_encoder(rows.iloc[train_idx])
        meta = meta_encoder.transform(rows)
    model = Classifier(
        pretrained_from_checkpoint(pretrained).encoder,
        len(classes),
        hidden_dim=config.head.hidden_dim,
        dropout=config.head.dropout,
        meta_features=meta_encoder.num_features if meta_encoder else 0,
    )
    channels_last = engine.place_model(model, device, config.channels_last)
    crop = config.augment.crop_size
    prep = {**pretrained["preprocessing"], "crop_size": crop, **eval_settings(crop)}
    _warn_double_reweighting(config)
    loss_fn = build_classification_loss(
        config.loss.name,
        num_classes=len(classes),
        class_counts=np.bincount(labels[train_idx], minlength=len(classes)).tolist(),
        gamma=config.loss.gamma,
        # The default alpha ('inverse') is focal's: other losses warn only of one chosen.
        alpha=None
        if config.loss.name != "focal" and config.loss.alpha == LossConfig.alpha
        else config.loss.alpha,
        label_smoothing=config.loss.label_smoothing,
    ).to(device)
    source = BatchSource(
        images,
        labels,
        train_idx,
        batch_size=config.batch_size,
        device=device,
        seed=seed,
        sampling="uniform" if config.sampling == "none" else config.sampling,
        placement=config.placement,
        meta=meta,
        even=config.mix.enabled,
    )
    augment = build_train_augment(config.augment, prep["mean"], prep["std"]).to(device)
    mixup = build_mixup(config, len(classes))
    transform = build_eval_transform(prep["crop_size"], prep["mean"], prep["std"]).to(device)
    precision = engine.Precision(device, enabled=config.amp)

    def validate(evaluated: nn.Module) -> np.ndarray:
        return predict_proba(
            evaluated,
            images,
            val_idx,
            transform=transform,
            device=device,
            meta=meta,
            batch_size=engine.forward_batch_size(config.eval_batch_size, device),
            precision=precision,
        )

    return _Setup(
        model=model,
        source=source,
        step=make_classifier_step(augment, loss_fn, mixup, channels_last),
        precision=precision,
        validate=validate,
        val_idx=val_idx,
        val_labels=labels[val_idx],
        preprocessing=prep,
        meta_encoder=meta_encoder,
    )


def _fit_phase(
    setup: _Setup,
    phase: Literal["warmup", "finetune"],
    optimizer: torch.optim.Optimizer,
    optim: engine.OptimConfig,
    epochs: int,
    *,
    config: ClassifierConfig,
    tracker: BestTracker,
    params: dict[str, Any],
    store: CheckpointStore | None,
    ema: StepEma | None = None,
) -> list[dict[str, Any]]:
    """One phase through the engine's loop; every epoch is scored on val (EMA weights if on)."""
    model = setup.model
    scheduler = engine.build_scheduler(optimizer, optim, len(setup.source), epochs)

    def evaluate(trained: nn.Module, epoch: int) -> dict[str, float]:
        evaluated = ema.module if ema is not None else model
        metrics = classification_metrics(setup.val_labels, setup.validate(evaluated))
        tracker.update(metrics, evaluated, {"phase": phase, "epoch": epoch})
        return metrics

    def describe(epoch: int, phase_history: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": f"{CHECKPOINT_KIND}_run",
            "phase": phase,
            "state_dict": model.state_dict(),
            "params": params,
        }

    finetune = phase == "finetune"
    history = engine.fit(
        torch.compile(model) if config.compile and finetune else model,
        setup.step,
        setup.source.with_stream(phase),  # each phase its own orders (not warm-up's again)
        optimizer,
        scheduler,
        setup.precision,
        epochs=epochs,
        grad_clip=optim.grad_clip,
        describe=describe,
        store=store.child(phase) if store else None,
        resume=config.resume,
        evaluate=evaluate,
        after_step=(lambda m: ema.update(model)) if ema is not None else None,
        should_stop=(
            lambda h: (
                tracker.stale_epochs(config.early_stopping.scope) >= config.early_stopping.patience
            )
        )
        if finetune
        else None,
        stateful={"tracker": tracker} | ({"ema": ema} if ema is not None else {}),
        progress=config.progress,
        desc="fine-tune" if finetune else "warm-up",
    )
    return [{"phase": phase, **h} for h in history]


def prepare_phase_stores(store: CheckpointStore, config: ClassifierConfig) -> None:
    """Make each phase's checkpoint belong to this run before phase 1 starts.

    A fresh run discards both phases' leftovers now (saying so for an interrupted one), not
    each as its phase starts: a run interrupted in warm-up would otherwise leave the fine-tune
    checkpoint of an older run, which its resumption would take up as its own. Resuming, a
    fine-tune checkpoint counts only after a complete warm-up: behind an unfinished one it is
    an older run's, and is discarded with a warning.
    """
    warmup, finetune = store.child("warmup"), store.child("finetune")
    if not config.resume:
        engine.discard_run(warmup, "warm-up")
        engine.discard_run(finetune, "fine-tune")
    elif finetune.latest() is not None and not engine.run_complete(warmup, config.warmup.epochs):
        logger.warning(
            "fine-tune: the checkpoint in %s follows no complete warm-up in %s, so it is an "
            "older run's: discarded (fine-tuning starts from epoch 0 after the warm-up)",
            finetune,
            warmup,
        )
        finetune.clear()


def check_resumable(
    store: CheckpointStore, config: ClassifierConfig, params: dict[str, Any]
) -> None:
    """What :func:`train_classifier` with ``resume`` refuses, without training: the warm-up's
    checkpoint, and the fine-tune one where it follows a complete warm-up (otherwise
    :func:`prepare_phase_stores` discards it), against ``params``. Nothing for a fresh run.

    Raises:
        engine.ResumeMismatchError: Naming each difference, as the training does.
    """
    if not config.resume:
        return
    warmup = store.child("warmup")
    engine.check_resumable(warmup, params)
    if engine.run_complete(warmup, config.warmup.epochs):
        engine.check_resumable(store.child("finetune"), params)


def train_classifier(
    images: np.ndarray,
    rows: pd.DataFrame,
    pretrained: dict[str, Any],
    *,
    classes: list[str],
    config: ClassifierConfig,
    seed: int,
    device: torch.device,
    params: dict[str, Any],
    store: CheckpointStore | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], pd.DataFrame]:
    """Fine-tune a classifier on the train split, choosing the best epoch on validation.

    Args:
        images: The image cache array ``(N, H, W, 3)``.
        rows: One row per cached image, in cache order: ``image_id, label, split`` and, for
            metadata fusion, ``age, sex, localization``.
        pretrained: The ``pretrained_encoder`` checkpoint.
        classes: Class names in label order.
        config: Training parameters.
        seed: Seed for everything.
        device: Where to train.
        params: The parameters to record in the checkpoint (and compare on resume).
        store: Where each epoch's state is kept for ``resume``.

    Returns:
        The ``classifier`` checkpoint (best validation epoch), the per-epoch history of
        both phases, and the validation predictions of the chosen model.
    """
    engine.seed_everything(seed)
    setup = _set_up(images, rows, pretrained, classes, config, seed, device)
    check_unfreeze_stages(setup.model.encoder, config.finetune.unfreeze_stages)  # before warm-up
    model, tracker = setup.model, BestTracker(config.early_stopping.metric)
    common = {"config": config, "tracker": tracker, "params": params, "store": store}
    if store is not None:
        prepare_phase_stores(store, config)

    # Phase 1: the head learns on frozen features.
    model.freeze_encoder(True)
    optimizer = engine.build_optimizer(
        [{"params": model.head.parameters(), "name": "head"}], config.warmup.optim
    )
    logger.info(
        "Classifier phase 1 (warm-up, encoder frozen): %d epochs on %s (%s)",
        config.warmup.epochs,
        device,
        setup.precision.name,
    )
    history = _fit_phase(
        setup, "warmup", optimizer, config.warmup.optim, config.warmup.epochs, **common
    )

    # Phase 2: unfreeze, encoder at a fraction of the head's learning rate.
    optimizer = build_finetune_optimizer(model, config.finetune)
    ema = StepEma(model, config.ema) if config.ema.enabled else None
    tracker.start_phase()
    logger.info("Classifier phase 2 (fine-tuning): up to %d epochs", config.finetune.epochs)
    history += _fit_phase(
        setup,
        "finetune",
        optimizer,
        config.finetune.optim,
        config.finetune.epochs,
        ema=ema,
        **common,
    )

    model.load_state_dict(tracker.state_dict_)
    probs = setup.validate(model)
    best_metrics = classification_metrics(setup.val_labels, probs)
    logger.info(
        "Chosen on validation: %s epoch %s, %s",
        tracker.where.get("phase"),
        tracker.where.get("epoch"),
        ", ".join(f"{k}={v:.4f}" for k, v in best_metrics.items()),
    )
    checkpoint = {
        "kind": CHECKPOINT_KIND,
        "architecture": {
            "encoder": pretrained["architecture"]["encoder"],
            "num_features": feature_width(model.encoder),
            "num_classes": len(classes),
            "head": asdict(config.head),
            "meta_features": model.meta_features,
        },
        "class_names": list(classes),
        "metadata_encoder": setup.meta_encoder.to_dict() if setup.meta_encoder else None,
        "preprocessing": setup.preprocessing,
        "state_dict": model.state_dict(),
        # EMA weights exist only in phase 2; an epoch kept from the warm-up has raw weights.
        "selected": {
            **tracker.where,
            "metric": tracker.metric,
            "ema": ema is not None and tracker.where.get("phase") == "finetune",
        },
        "metrics": {"val": best_metrics},
        "params": params,
        "history": history,
        "trained_on": training_device(device),
        # Where its SupCon encoder was pretrained (or that it was not), for the report.
        "encoder_trained_on": encoder_training_record(pretrained),
    }
    predictions = predictions_frame(probs, rows.iloc[setup.val_idx], classes)
    return to_cpu(checkpoint), history, predictions
