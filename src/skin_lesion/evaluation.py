"""Test-set evaluation: predictions, metrics with calibration and lesion-bootstrap intervals.

Everything chosen from data (the temperature, the melanoma threshold) is fitted on the
validation predictions and only applied to the test predictions, which are touched once.
Both splits are predicted the same way (same checkpoint, same test-time augmentation): a
threshold fitted on single-view probabilities does not carry over to TTA-averaged ones,
which are flatter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from skin_lesion import bootstrap as bs
from skin_lesion import calibration as cal
from skin_lesion import engine, lineage
from skin_lesion import metrics as m
from skin_lesion.augment import AugmentConfig, build_eval_transform, build_train_augment
from skin_lesion.checkpoints import state_fingerprint
from skin_lesion.classifier import classifier_from_checkpoint, predict_with_checkpoint
from skin_lesion.config import from_dict

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import BootstrapConfig as BootstrapConfig
from skin_lesion.configs import ReportingConfig
from skin_lesion.gradcam import gradcam_heatmaps, normalise_maps
from skin_lesion.images import image_digests
from skin_lesion.prediction import TTA_VIEWS, dihedral, undo_dihedral
from skin_lesion.tabular import MetadataEncoder

logger = logging.getLogger(__name__)

ISIC_ORDER = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")
POSITIVE_CLASS = "mel"


def predict_split(
    checkpoint: dict[str, Any],
    images: np.ndarray,
    rows: pd.DataFrame,
    split: str,
    *,
    device: torch.device,
    config: ReportingConfig,
) -> pd.DataFrame:
    """Predict every image of ``split`` with the classifier checkpoint.

    Args:
        checkpoint: The ``classifier`` checkpoint.
        images: The image cache array.
        rows: Cache-aligned rows with ``image_id, lesion_id, dx, label, split`` (and
            ``age, sex, localization`` for metadata fusion).
        split: Which split to predict (``val`` and ``test`` in the reporting pipeline).
        device: Where to run.
        config: Reporting parameters (TTA, batch size).

    Returns:
        ``image_id, lesion_id, label, dx``, ``classifier_sha256`` and ``tta`` (what made
        them) and ``image_sha256`` (the pixels each was made from), which
        ``lineage.check_predictions`` compares before they are scored, and ``p_<class>``
        for every class.
    """
    classes = checkpoint["class_names"]
    chosen = np.flatnonzero(rows["split"].to_numpy() == split)
    probs = predict_with_checkpoint(
        checkpoint,
        images,
        rows,
        chosen,
        device=device,
        batch_size=engine.forward_batch_size(config.batch_size, device),
        tta=config.tta,
        progress=config.progress,
    )
    out = rows.iloc[chosen][["image_id", "lesion_id", "label", "dx"]].reset_index(drop=True)
    out[lineage.PREDICTED_BY] = state_fingerprint(checkpoint)
    out[lineage.PREDICTED_TTA] = config.tta
    out[lineage.PREDICTED_PIXELS] = image_digests(images, chosen)
    return pd.concat([out, pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])], axis=1)


def to_isic_format(predictions: pd.DataFrame) -> pd.DataFrame:
    """The ISIC 2018 Task 3 submission layout: ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``."""
    out = pd.DataFrame({"image": predictions["image_id"]})
    for name in ISIC_ORDER:
        out[name.upper()] = predictions[f"p_{name}"].clip(0.0, 1.0)
    return out


def probabilities(predictions: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    """The ``p_<class>`` columns as an ``(N, K)`` array in class order."""
    return predictions[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)


def _check_labels_match_dx(frame: pd.DataFrame, classes: Sequence[str], name: str) -> None:
    """Every row's ``label`` must index its own ``dx`` in ``classes``: a ``classes`` list in
    another order than the predictions were made with would score every image against the
    wrong class without any other sign."""
    if "dx" not in frame.columns or frame.empty:
        return
    labels = frame["label"].to_numpy()
    valid = (labels >= 0) & (labels < len(classes))
    named = np.where(valid, np.asarray(classes, dtype=object)[np.where(valid, labels, 0)], None)
    wrong = np.flatnonzero(named != frame["dx"].to_numpy(dtype=object))
    if wrong.size:
        first = frame.iloc[wrong[0]]
        raise ValueError(
            f"{wrong.size} of {len(frame)} {name} predictions have a label that is not their "
            f"dx in classes {list(classes)} (first: {first['image_id']}, dx "
            f"{first['dx']!r}, label {first['label']}): the classes must be the ones, in the "
            "order, the predictions were made with"
        )


def evaluate_test(
    test: pd.DataFrame,
    val: pd.DataFrame,
    classes: Sequence[str],
    *,
    config: ReportingConfig,
    seed: int,
) -> dict[str, Any]:
    """All test metrics; calibration and the melanoma threshold are fitted on validation.

    ``val`` and ``test`` must be predicted alike (the reporting pipeline predicts both with
    ``config.tta``); the operating point records that TTA, so inference can match it.

    Returns:
        A JSON-ready dict: ``test`` (summary metrics, per class, confusion matrix),
        ``melanoma`` (argmax and validated-threshold operating points), ``calibration``
        (temperature, ECE before and after), ``bootstrap`` (lesion-level intervals) and
        ``operating_point`` (what inference needs: temperature and threshold).
    """
    classes = list(classes)
    for name, frame in (("test", test), ("validation", val)):
        _check_labels_match_dx(frame, classes, name)
    mel = classes.index(POSITIVE_CLASS)
    val_probs, test_probs = probabilities(val, classes), probabilities(test, classes)
    val_labels, test_labels = val["label"].to_numpy(), test["label"].to_numpy()
    temperature = cal.fit_temperature(val_probs, val_labels)
    val_cal = cal.apply_temperature(val_probs, temperature)
    test_cal = cal.apply_temperature(test_probs, temperature)
    melanoma = m.melanoma_summary(
        val_labels,
        val_cal,
        test_labels,
        test_cal,
        positive_index=mel,
        target_sensitivity=config.target_sensitivity,
    )
    threshold = melanoma["validated_threshold"]["threshold"]
    bootstrap_metrics = bs.standard_bootstrap_metrics(classes, mel)
    at_threshold = bs.standard_bootstrap_metrics(classes, mel, threshold=threshold)
    for name in ("melanoma_sensitivity", "melanoma_specificity"):
        bootstrap_metrics[f"{name}_at_threshold"] = at_threshold[name]
    bootstrap = bs.lesion_bootstrap(
        test_labels,
        test_cal,
        test["lesion_id"].to_numpy(),
        bootstrap_metrics,
        n_resamples=config.bootstrap.n_resamples,
        confidence=config.bootstrap.confidence,
        seed=seed,
        stratify=config.bootstrap.stratified,
    )
    bins = config.calibration_bins
    return {
        "classes": classes,
        "test_images": len(test),
        "test_lesions": int(test["lesion_id"].nunique()),
        "tta": config.tta,
        "test": m.classification_summary(test_labels, test_cal, classes),
        "melanoma": melanoma,
        "calibration": {
            "temperature": float(temperature),
            "fitted_on": "validation",
            "evaluated_on": "test",
            "ece_before": cal.expected_calibration_error(test_labels, test_probs, bins),
            "ece_after": cal.expected_calibration_error(test_labels, test_cal, bins),
            "bins": bins,
        },
        "bootstrap": bootstrap,
        "operating_point": {
            "temperature": float(temperature),
            "melanoma_threshold": threshold,
            "target_sensitivity": config.target_sensitivity,
            # The test-time augmentation both were fitted with; inference uses it by default.
            "tta": config.tta,
            "note": "probabilities are calibrated with the temperature before the threshold",
        },
    }


def melanoma_roc_points(metrics: dict[str, Any]) -> list[tuple[str, float, float]]:
    """The melanoma operating points of :func:`evaluate_test`'s ``metrics`` as the ROC figure
    marks them: ``(label, 1 - specificity, sensitivity)`` of the argmax rule (A) and of the
    validated threshold (B), each where both of its rates are defined."""
    melanoma = metrics.get("melanoma") or {}
    return [
        (label, 1.0 - point["specificity"], point["sensitivity"])
        for key, label in (("argmax", "argmax (A)"), ("validated_threshold", "threshold (B)"))
        if (point := melanoma.get(key))
        and point.get("sensitivity") is not None
        and point.get("specificity") is not None
    ]


def pick_gradcam_examples(
    test: pd.DataFrame, classes: Sequence[str], per_class: int
) -> pd.DataFrame:
    """For each class, the most confident correct and the most confident wrong test images.

    Returns:
        Rows of ``test`` with ``predicted`` (class index), ``confidence`` and ``outcome``
        (``correct``/``wrong``), ordered by class then outcome.
    """
    probs = probabilities(test, classes)
    scored = test.assign(predicted=probs.argmax(1), confidence=probs.max(1))
    scored["outcome"] = np.where(scored["predicted"] == scored["label"], "correct", "wrong")
    picked = (
        scored.sort_values("confidence", ascending=False)
        .groupby(["label", "outcome"], sort=True)
        .head(per_class)
    )
    return picked.sort_values(["label", "outcome", "confidence"], ascending=[True, True, False])


def augmented_views(
    images: np.ndarray,
    augment: AugmentConfig,
    mean: Sequence[float],
    std: Sequence[float],
    views: int,
    seed: int,
) -> np.ndarray:
    """``views`` training-augmented versions of each image, de-normalised to uint8.

    Returns:
        ``(n, views, S, S, 3)`` uint8.

    The augmentation draws from torch's global generator, seeded with ``seed`` inside a fork
    of its state: the caller's generator is left as it was (a notebook that draws the figure
    and then trains got the figure's seed in its training, since 2026-12-07 no longer).
    """
    with torch.random.fork_rng(devices=[]):  # the batch is on the CPU
        torch.manual_seed(seed)
        module = build_train_augment(augment, mean, std)
        batch = torch.from_numpy(np.ascontiguousarray(images)).repeat_interleave(views, dim=0)
        augmented = module(batch)
    pixels = to_uint8(augmented, mean, std)
    n, size = len(images), pixels.shape[1]
    return pixels.reshape(n, views, size, size, 3)


def augment_config_of(checkpoint: dict[str, Any]) -> AugmentConfig:
    """The classifier's training augmentation, as recorded in its checkpoint."""
    params = checkpoint["params"]["classifier_training"].get("augment", {})
    return from_dict(AugmentConfig, params, "classifier_training.augment")


def to_uint8(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo normalisation: ``(B, 3, S, S)`` float -> ``(B, S, S, 3)`` uint8."""
    mean_t = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    pixels = ((x * std_t + mean_t).clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def explain(
    checkpoint: dict[str, Any],
    images: np.ndarray,
    targets: Sequence[int],
    *,
    device: torch.device,
    meta: np.ndarray | None = None,
    batch_size: int = 16,
    tta: str = "none",
    model: torch.nn.Module | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of ``targets`` on cached ``images`` as the checkpoint's model sees them
    (``model``: that model already built on ``device``, for a caller explaining batch after
    batch; built from the checkpoint when not given).

    With test-time augmentation (``tta`` as in :func:`skin_lesion.prediction.predict_proba`),
    which is how the explained predictions were made, each view's heatmap is turned back
    onto the unaugmented crop and the views' heatmaps are averaged (then min-max normalised
    again): of the views the mean prediction comes from, not of one view alone. Each view's
    map is min-max normalised before the mean, so the views weigh alike, as they do in the
    mean of their probabilities. Costs a Grad-CAM pass per view (4 with flips, 8 dihedral).

    Returns:
        ``(crops, heatmaps)``: the model's input crops as uint8 ``(n, S, S, 3)`` and the
        heatmaps ``(n, S, S)`` in [0, 1].
    """
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta must be one of {sorted(TTA_VIEWS)}, got {tta!r}")
    prep = checkpoint["preprocessing"]
    if model is None:
        model = classifier_from_checkpoint(checkpoint).to(device)
    transform = build_eval_transform(prep["crop_size"], prep["mean"], prep["std"]).to(device)
    crops, heatmaps = [], []
    for start in range(0, len(images), batch_size):
        stop = start + batch_size
        x = transform(torch.from_numpy(np.ascontiguousarray(images[start:stop])).to(device))
        m = None if meta is None else torch.from_numpy(meta[start:stop]).to(device)
        wanted = [int(t) for t in targets[start:stop]]
        views = []
        for k in TTA_VIEWS[tta]:
            view = gradcam_heatmaps(model, dihedral(x, k), wanted, meta=m)
            views.append(undo_dihedral(torch.from_numpy(view), k))
        heat = views[0] if len(views) == 1 else normalise_maps(torch.stack(views).mean(0))
        heatmaps.append(heat.numpy().astype(np.float32))
        crops.append(to_uint8(x, prep["mean"], prep["std"]))
    return np.concatenate(crops), np.concatenate(heatmaps)


def evidence_note(heatmap: np.ndarray) -> str:
    """A second title line for an all-zero Grad-CAM map (no positive evidence for the class
    explained), which draws as an even blue wash that reads as a heatmap; else empty."""
    return "" if np.any(np.asarray(heatmap) > 0) else "\nno positive Grad-CAM evidence"


def gradcam_panels(
    checkpoint: dict[str, Any],
    images: np.ndarray,
    rows: pd.DataFrame,
    chosen: pd.DataFrame,
    *,
    device: torch.device,
    tta: str = "none",
) -> list[dict[str, Any]]:
    """Grad-CAM of the predicted class for each chosen test image, ready to plot; ``tta``:
    the test-time augmentation the predictions were made with (see :func:`explain`).

    Returns:
        One dict per image: ``image`` (the model's input crop, uint8), ``heatmap`` (in
        [0, 1]), ``row`` (true class), ``column`` (outcome) and ``title`` (true and
        predicted class, confidence, outcome).
    """
    if chosen.empty:
        return []
    classes = checkpoint["class_names"]
    position = {image_id: i for i, image_id in enumerate(rows["image_id"])}
    index = np.array([position[i] for i in chosen["image_id"]])
    meta = None
    if checkpoint.get("metadata_encoder"):
        encoder = MetadataEncoder.from_dict(checkpoint["metadata_encoder"])
        meta = encoder.transform(rows.iloc[index])
    crops, heatmaps = explain(
        checkpoint,
        images[index],
        chosen["predicted"].to_numpy(),
        device=device,
        meta=meta,
        tta=tta,
    )
    return [
        {
            "image": crop,
            "heatmap": heat,
            "row": classes[r.label],
            "column": r.outcome,
            "title": f"{classes[r.label]} -> {classes[r.predicted]} "
            f"(P={r.confidence:.2f}, {r.outcome}){evidence_note(heat)}",
        }
        for crop, heat, r in zip(crops, heatmaps, chosen.itertuples(), strict=True)
    ]
