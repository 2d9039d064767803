"""Classify new images with a trained classifier checkpoint.

The images get exactly the preprocessing the checkpoint records (decode, optional hair
removal and CLAHE, resize to the cache size, then the eval crop and normalisation), not
whatever the current parameters say. Probabilities are calibrated with the temperature
fitted on validation, and the melanoma flag uses the threshold chosen on validation (both
from the reporting pipeline's ``test_metrics["operating_point"]``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from skin_lesion.calibration import apply_temperature
from skin_lesion.checkpoints import require_kind, state_fingerprint
from skin_lesion.classifier import CHECKPOINT_KIND, predict_with_checkpoint
from skin_lesion.config import check_at_least, from_dict
from skin_lesion.evaluation import explain
from skin_lesion.images import IMAGE_SUFFIXES, build_image_cache
from skin_lesion.preprocessing import PreprocessConfig

logger = logging.getLogger(__name__)

REJECT_COLUMNS = ("image", "reason")


@dataclass(frozen=True)
class InferenceConfig:
    """``params:inference``.

    Attributes:
        input_dir: The folder to classify, given at run time
            (``--params inference.input_dir=PATH``); the catalog's ``inference_images``
            reads it, so the node itself never opens files.
        tta: Test-time augmentation: ``none``, ``flips`` or ``dihedral``; null (the
            default) takes the operating point's, the TTA its temperature and melanoma
            threshold were fitted with, so the flag keeps its validated sensitivity.
        batch_size: Images per forward pass.
        workers: Decoding threads; null uses every core.
        gradcam: Also return a Grad-CAM overlay of the predicted class for every image.
        progress: Progress bars.
    """

    input_dir: str | None = None
    tta: Literal["none", "flips", "dihedral"] | None = None
    batch_size: int = 64
    workers: int | None = None
    gradcam: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_at_least(self, 1, "batch_size", "workers")


def operating_tta(operating_point: Mapping[str, Any], requested: str | None) -> str:
    """The TTA to predict with: ``requested``, or the operating point's when None.

    An operating point from before the TTA was recorded was fitted on single-view validation
    predictions (``none``). A requested TTA other than the operating point's is allowed,
    with a warning: the temperature and threshold were not fitted on such probabilities.
    """
    fitted = operating_point.get("tta", "none")
    if requested is None:
        return fitted
    if requested != fitted:
        logger.warning(
            "TTA %r, but the temperature and melanoma threshold were fitted on validation "
            "predictions with TTA %r: the melanoma flag's sensitivity is not the validated one "
            "(leave tta unset to use %r)",
            requested,
            fitted,
            fitted,
        )
    return requested


def check_operating_point(operating_point: Mapping[str, Any]) -> tuple[float, float]:
    """The temperature and melanoma threshold, or an error naming what is missing."""
    missing = [k for k in ("temperature", "melanoma_threshold") if k not in operating_point]
    if missing:
        raise ValueError(
            f"the operating point lacks {missing}; it comes from the reporting pipeline's "
            "test_metrics.json ('operating_point'): run `kedro run --pipelines reporting` first"
        )
    return float(operating_point["temperature"]), float(operating_point["melanoma_threshold"])


def check_operating_point_matches(
    operating_point: Mapping[str, Any], checkpoint: dict[str, Any]
) -> None:
    """Refuse an operating point fitted for another classifier than ``checkpoint``.

    The temperature and melanoma threshold were fitted on one classifier's validation
    predictions; on another model the flag would not have its validated sensitivity. An
    operating point from before the fingerprint was recorded passes with a warning.
    """
    fitted_for = operating_point.get("classifier_sha256")
    if fitted_for is None:
        logger.warning(
            "the operating point does not say which classifier it was fitted for (it predates "
            "the record); rerun `kedro run --pipelines reporting` to be sure it fits this one"
        )
        return
    this = state_fingerprint(checkpoint)
    if fitted_for != this:
        raise ValueError(
            f"the operating point (temperature, melanoma threshold) was fitted for another "
            f"classifier (weights SHA-256 {fitted_for[:12]}) than this checkpoint "
            f"({this[:12]}): rerun `kedro run --pipelines reporting` for this classifier, or "
            "use the test_metrics.json made with it"
        )


def predict_images(
    checkpoint: dict[str, Any],
    operating_point: Mapping[str, Any],
    loaders: Mapping[str, Callable[[], bytes]],
    *,
    device: torch.device,
    config: InferenceConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]]]:
    """Classify every image; unreadable files go to the rejects with their reason.

    Args:
        checkpoint: A ``classifier`` checkpoint.
        operating_point: ``temperature`` and ``melanoma_threshold`` chosen on validation
            (and ``tta``, the test-time augmentation they were fitted with).
        loaders: Image name (e.g. a relative path) -> zero-argument callable returning bytes.
        device: Where to run the model.
        config: TTA, batch size, decoding threads.

    Returns:
        ``predictions`` (``image``, the calibrated ``p_<class>``, ``predicted``,
        ``melanoma_flag``, ``melanoma_threshold``, ``tta``), ``rejects`` (``image``,
        ``reason``) and, with ``config.gradcam``, Grad-CAM panels per image (``image``,
        ``heatmap``, ``title``; empty otherwise).

    Raises:
        ValueError: For a checkpoint of the wrong kind, one that needs metadata, an empty
            folder, or an incomplete operating point.
    """
    require_kind(checkpoint, CHECKPOINT_KIND)
    if checkpoint.get("metadata_encoder"):
        raise ValueError(
            "this classifier fuses metadata (age, sex, localization), which a folder of "
            "images does not provide; use a classifier trained with metadata_fusion: false"
        )
    if not loaders:
        raise ValueError("no images to classify: the input is empty (.jpg, .jpeg, .png)")
    temperature, threshold = check_operating_point(operating_point)
    check_operating_point_matches(operating_point, checkpoint)
    tta = operating_tta(operating_point, config.tta)
    preprocessing = from_dict(
        PreprocessConfig, checkpoint["preprocessing"]["cache"], "checkpoint.preprocessing.cache"
    )
    cache, failures = build_image_cache(
        loaders, preprocessing, workers=config.workers, progress=config.progress
    )
    rejects = pd.DataFrame(list(failures.items()), columns=list(REJECT_COLUMNS))
    classes = checkpoint["class_names"]
    rows = pd.DataFrame({"image_id": list(cache.image_ids)})
    probs = (
        predict_with_checkpoint(
            checkpoint,
            cache.images,
            rows,
            np.arange(len(rows)),
            device=device,
            batch_size=config.batch_size,
            tta=tta,
            progress=config.progress,
        )
        if len(rows)
        else np.zeros((0, len(classes)))
    )
    calibrated = apply_temperature(probs, temperature) if len(rows) else probs
    mel = classes.index("mel")
    predictions = pd.DataFrame(calibrated, columns=[f"p_{c}" for c in classes])
    predictions.insert(0, "image", list(cache.image_ids))
    predictions["predicted"] = [classes[k] for k in calibrated.argmax(axis=1)]
    predictions["melanoma_flag"] = calibrated[:, mel] >= threshold
    predictions["melanoma_threshold"] = threshold
    predictions["tta"] = tta
    logger.info("Classified %d image(s); %d rejected", len(predictions), len(rejects))
    panels = {}
    if config.gradcam and len(rows):
        panels = gradcam_panels(checkpoint, cache.images, predictions, device=device)
    return predictions, rejects, panels


def gradcam_panels(
    checkpoint: dict[str, Any],
    images: np.ndarray,
    predictions: pd.DataFrame,
    *,
    device: torch.device,
) -> dict[str, dict[str, Any]]:
    """Grad-CAM (captum) of the predicted class on each image's model input crop."""
    classes = checkpoint["class_names"]
    targets = [classes.index(c) for c in predictions["predicted"]]
    crops, heatmaps = explain(checkpoint, images, targets, device=device)
    return {
        row.image: {
            "image": crop,
            "heatmap": heat,
            "title": f"{row.image}: {row.predicted} (p={getattr(row, 'p_' + row.predicted):.2f})",
        }
        for crop, heat, row in zip(crops, heatmaps, predictions.itertuples(), strict=True)
    }


def file_loaders(paths: list[str]) -> dict[str, Callable[[], bytes]]:
    """Loaders for local files or folders (searched recursively for .jpg/.jpeg/.png).

    A file named directly is read whatever its suffix (the decoder judges it). In a folder,
    other files are left out with a warning that counts and names them (hidden files aside).

    Raises:
        FileNotFoundError: For a path that does not exist, or a folder with no image in it.
    """
    from pathlib import Path

    loaders: dict[str, Callable[[], bytes]] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            found = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            others = [
                p for p in files
                if p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith(".")
            ]  # fmt: skip
            if others:
                logger.warning(
                    "%s: %d file(s) not %s left out: %s%s", given, len(others),
                    "/".join(IMAGE_SUFFIXES), ", ".join(p.name for p in others[:5]),
                    ", ..." if len(others) > 5 else "",
                )  # fmt: skip
            if not found:
                raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} image in folder '{given}'")
            loaders.update({str(PurePosixPath(p.as_posix())): p.read_bytes for p in found})
        elif path.exists():
            loaders[str(PurePosixPath(path.as_posix()))] = path.read_bytes
        else:
            raise FileNotFoundError(f"no such image or folder: '{given}'")
    return loaders
