"""Classify new images with a trained classifier checkpoint.

The images get exactly the preprocessing the checkpoint records (decode, resize to the cache
size, optional hair removal and CLAHE, then the eval crop and normalisation), not
whatever the current parameters say. Probabilities are calibrated with the temperature
fitted on validation, and the melanoma flag uses the threshold chosen on validation (both
from the reporting pipeline's ``test_metrics["operating_point"]``).

A classifier trained with metadata fusion also needs each image's age, sex and
localization: a table with HAM10000's columns (``image_id``, ``age``, ``sex``,
``localization``), matched to the images by file name without its extension, as
``HAM10000_metadata.csv`` is. An image without a row is classified with its metadata
unknown (as HAM10000 itself records unknowns), and its prediction says so.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from skin_lesion import engine
from skin_lesion.calibration import apply_temperature
from skin_lesion.checkpoints import require_kind, state_fingerprint
from skin_lesion.classifier import CHECKPOINT_KIND, CheckpointPredictor, classifier_from_checkpoint
from skin_lesion.config import from_dict

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import InferenceConfig
from skin_lesion.evaluation import evidence_note, explain
from skin_lesion.files import (
    display_name,
    is_left_out,
    left_out,
    left_out_reason,
    unique_name,
    walk_files,
    warn_alike,
    warn_left_out,
)
from skin_lesion.images import IMAGE_SUFFIXES, build_image_cache
from skin_lesion.lineage import FUSION_COLUMNS
from skin_lesion.metadata import MetadataConfig, set_aside_identical_copies
from skin_lesion.preprocessing import PreprocessConfig
from skin_lesion.tabular import MetadataEncoder

logger = logging.getLogger(__name__)

REJECT_COLUMNS = ("image", "reason")
METADATA_COLUMNS = FUSION_COLUMNS  # what metadata fusion reads
# How many names a warning or error lists before giving the count of the rest.
SHOWN = 5
# Images a lazy Grad-CAM batch holds (explain's own batch: crops and heatmaps of 16 at once).
GRADCAM_BATCH = 16


BATCH_SIZE_CUDA = 64
BATCH_SIZE_CPU = engine.FORWARD_BATCH_CPU


def batch_size_for(config: InferenceConfig, device: torch.device) -> int:
    """``config.batch_size``, or where it is None the default for ``device``'s kind."""
    return engine.forward_batch_size(config.batch_size, device, gpu=BATCH_SIZE_CUDA)


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
            "test_metrics.json ('operating_point'): run `kedro run --pipelines reporting` first "
            "(with the --env and --params the classifier was trained with)"
        )
    temperature = _operating_value(operating_point, "temperature")
    threshold = _operating_value(operating_point, "melanoma_threshold")
    # Reporting writes neither out of range; a hand-edited or damaged file could (a NaN or
    # 2.0 threshold turned every melanoma flag off without a word, 0 failed after decoding).
    if not temperature > 0:
        raise ValueError(
            f"the operating point's temperature is {temperature!r}; it must be above 0 (a "
            "damaged or edited test_metrics.json? rerun `kedro run --pipelines reporting`)"
        )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"the operating point's melanoma_threshold is {threshold!r}; it must lie in [0, 1] "
            "(a damaged or edited test_metrics.json? rerun `kedro run --pipelines reporting`)"
        )
    return temperature, threshold


def _operating_value(operating_point: Mapping[str, Any], key: str) -> float:
    """``operating_point[key]`` as a finite float, or an error naming it."""
    value = operating_point[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(
            f"the operating point's {key} is {value!r}, not a finite number (a damaged or "
            "edited test_metrics.json? rerun `kedro run --pipelines reporting`)"
        )
    return number


class OperatingPointMismatch(ValueError):
    """An operating point fitted for another classifier than the one given."""


def check_operating_point_matches(operating_point: Mapping[str, Any], fingerprint: str) -> None:
    """Refuse an operating point fitted for another classifier than the one whose weights'
    fingerprint (:func:`skin_lesion.checkpoints.state_fingerprint`) is ``fingerprint``.

    The temperature and melanoma threshold were fitted on one classifier's validation
    predictions; on another model the flag would not have its validated sensitivity. An
    operating point from before the fingerprint was recorded passes with a warning.
    """
    fitted_for = operating_point.get("classifier_sha256")
    if fitted_for is None:
        logger.warning(
            "the operating point does not say which classifier it was fitted for (it predates "
            "the record); rerun `kedro run --pipelines reporting` (with the --env and --params "
            "the classifier was trained with) to be sure it fits this one"
        )
        return
    if fitted_for != fingerprint:
        raise OperatingPointMismatch(
            f"the operating point (temperature, melanoma threshold) was fitted for another "
            f"classifier (weights SHA-256 {fitted_for[:12]}) than this checkpoint "
            f"({fingerprint[:12]}): rerun `kedro run --pipelines reporting` for this classifier "
            "(with the --env and --params it was trained with), or use the test_metrics.json "
            "made with it"
        )


def predict_images(
    checkpoint: dict[str, Any],
    operating_point: Mapping[str, Any],
    loaders: Mapping[str, Callable[[], bytes]],
    *,
    device: torch.device,
    config: InferenceConfig,
    metadata: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Callable[[], dict[str, Any]]]]:
    """Classify every image; unreadable files go to the rejects with their reason.

    Args:
        checkpoint: A ``classifier`` checkpoint.
        operating_point: ``temperature`` and ``melanoma_threshold`` chosen on validation
            (and ``tta``, the test-time augmentation they were fitted with).
        loaders: Image name (e.g. a relative path) -> zero-argument callable returning bytes.
        device: Where to run the model.
        config: TTA, batch size, decoding threads.
        metadata: The images' ``image_id``, ``age``, ``sex`` and ``localization`` (see
            :func:`match_metadata`); required when the classifier fuses metadata, ignored
            (with a warning) when it does not. It is matched to every file that will be read
            before any is decoded (its errors come at once); its warnings name only the
            images classified.

    Returns:
        ``predictions`` (``image``, the calibrated ``p_<class>``, ``predicted``,
        ``melanoma_flag``, ``melanoma_threshold``, ``tta``, ``metadata``: ``given``,
        ``missing`` (classified as unknown) or ``unused`` by an image-only classifier,
        ``classifier_sha256``, ``file_sha256``: the SHA-256 of the file's bytes),
        ``rejects`` (``image``, ``reason``, sorted by image) and,
        with ``config.gradcam``, one callable per image returning its Grad-CAM panel
        (``image``, ``heatmap``, ``title``), computed when called, a batch at a time
        (:class:`LazyGradcam`; empty otherwise).

    Raises:
        ValueError: For a checkpoint of the wrong kind, a metadata-fusion classifier
            without a metadata table, a table that cannot be matched to the images, an
            empty folder, or an incomplete operating point.
    """
    require_kind(checkpoint, CHECKPOINT_KIND)
    fuses = bool(checkpoint.get("metadata_encoder"))
    if fuses and metadata is None:
        raise ValueError(
            "this classifier fuses metadata (age, sex, localization), which a folder of "
            f"images does not provide: give a CSV with columns {list(METADATA_COLUMNS)} (as "
            "HAM10000_metadata.csv; image_id is the file name without its extension) with "
            "--metadata PATH, or --params inference.metadata=PATH in `kedro run`"
        )
    if metadata is not None:
        if fuses:
            check_metadata_table(metadata)
        else:
            logger.warning(
                "this classifier was trained without metadata fusion: the metadata table "
                "is not used"
            )
    if not loaders:
        raise ValueError("no images to classify: the input is empty (.jpg, .jpeg, .png)")
    temperature, threshold = check_operating_point(operating_point)
    fingerprint = state_fingerprint(checkpoint)  # hashed once: checked, then recorded
    check_operating_point_matches(operating_point, fingerprint)
    tta = operating_tta(operating_point, config.tta)
    preprocessing = from_dict(
        PreprocessConfig, checkpoint["preprocessing"]["cache"], "checkpoint.preprocessing.cache"
    )
    # Kaggle's HAM10000 holds every image twice (part_N and its lower-case copy): as in
    # data_processing, byte-identical files of one name are classified once, the copies
    # listed in the rejects (which also lets a metadata table tell every image apart).
    # Files a folder left out (already warned about) go to the rejects without decoding.
    left = {name: left_out_reason(load) for name, load in loaders.items() if is_left_out(load)}
    _, copies = set_aside_identical_copies(
        {name: load for name, load in loaders.items() if name not in left},
        listed_in="the rejects",
    )
    set_aside = {**dict(zip(copies["file"], copies["reason"], strict=True)), **left}
    names_all = [name for name in loaders if name not in set_aside]
    if fuses:
        # Matched before any decoding, so that a table that cannot be used fails at once:
        # every file that will be read (not those a folder leaves out, such as a sidecar
        # ISIC_0.json beside ISIC_0.jpg, nor the identical copies). Encoded once, for the
        # predictions and Grad-CAM alike (its warnings said once).
        rows_read, given_read = match_metadata(
            names_all, metadata, metadata_limits(checkpoint), warn=False
        )
        encoder = MetadataEncoder.from_dict(checkpoint["metadata_encoder"])
        meta_read = encoder.transform(rows_read, warn=False)  # warned of the classified
    classes = checkpoint["class_names"]
    parts = chunked(names_all, config.chunk_size)
    many = len(parts) > 1  # then one progress bar over the parts, not one per part
    if many:
        logger.info(
            "Classifying %d images %d at a time (inference.chunk_size): %d parts",
            len(names_all),
            config.chunk_size,
            len(parts),
        )
    predictor = CheckpointPredictor(
        checkpoint,
        device=device,
        batch_size=batch_size_for(config, device),
        tta=tta,
        progress=config.progress and not many,
    )
    kept: list[int] = []  # positions in names_all of the decoded images, in order
    files: dict[str, str] = {}  # the SHA-256 of each file's bytes as read, by name
    probs_parts: list[np.ndarray] = []
    failures: dict[str, str] = {}
    images = None  # the decoded images, kept for Grad-CAM only when there is one part
    with tqdm(
        total=len(names_all), desc="classify", unit="img", disable=not (config.progress and many)
    ) as bar:
        for part in parts:
            cache, failed = build_image_cache(
                {names_all[i]: _hashing(names_all[i], loaders[names_all[i]], files) for i in part},
                preprocessing,
                workers=config.workers,
                progress=config.progress and not many,
            )
            failures.update(failed)
            done = [i for i in part if names_all[i] not in failed]
            if done:
                probs_parts.append(
                    predictor(
                        cache.images,
                        np.arange(len(done)),
                        meta_features=meta_read[done] if fuses else None,
                    )
                )
            kept += done
            images = None if many else cache.images
            bar.update(len(part))
    rejects = pd.DataFrame(
        list(set_aside.items()) + list(failures.items()), columns=list(REJECT_COLUMNS)
    )
    rejects = rejects.sort_values("image", ignore_index=True)  # alike however they were given
    names = [names_all[i] for i in kept]
    if fuses:
        # Said of the images classified only (not of those rejected).
        given = given_read[kept]
        warn_missing_rows(names, given)
        warn_unseen_ages(rows_read.iloc[kept], encoder)
        encoder.warn_unseen(rows_read.iloc[kept])
        status = np.where(given, "given", "missing")
        meta = meta_read[kept]
    else:
        status, meta = np.full(len(names), "unused"), None
    probs = np.concatenate(probs_parts) if probs_parts else np.zeros((0, len(classes)))
    calibrated = apply_temperature(probs, temperature) if len(names) else probs
    mel = classes.index("mel")
    predictions = pd.DataFrame(calibrated, columns=[f"p_{c}" for c in classes])
    predictions.insert(0, "image", names)
    predictions["predicted"] = [classes[k] for k in calibrated.argmax(axis=1)]
    predictions["melanoma_flag"] = calibrated[:, mel] >= threshold
    predictions["melanoma_threshold"] = threshold
    predictions["tta"] = tta
    predictions["metadata"] = status
    # Which classifier made them, as the operating point and the MLflow runs name it.
    predictions["classifier_sha256"] = fingerprint
    # The file each row scored, as `sha256sum` names it: an audit trail that holds when the
    # file is renamed, moved or replaced.
    predictions["file_sha256"] = [files[name] for name in names]
    logger.info("Classified %d image(s); %d rejected", len(predictions), len(rejects))
    if not len(predictions):
        logger.warning("no image could be classified: all %d rejected", len(rejects))
    panels = {}
    if config.gradcam and len(names):

        def decode_again(rows: list[int]) -> tuple[np.ndarray, dict[int, str]]:
            again, failed = build_image_cache(
                {names[r]: loaders[names[r]] for r in rows},
                preprocessing,
                workers=config.workers,
                progress=False,
            )
            pixels = np.zeros((len(rows), *again.images.shape[1:]), dtype=np.uint8)
            where = {name: k for k, name in enumerate(again.image_ids)}
            for k, r in enumerate(rows):
                if names[r] in where:
                    pixels[k] = again.images[where[names[r]]]
            return pixels, {r: failed[names[r]] for r in rows if names[r] in failed}

        # Several parts: a Grad-CAM batch decodes its images again instead of keeping all.
        source = decode_again if images is None else images
        panels = LazyGradcam(checkpoint, source, predictions, meta, device=device, tta=tta).panels()
    return predictions, rejects, panels


def _hashing(name: str, load: Callable[[], bytes], into: dict[str, str]) -> Callable[[], bytes]:
    """``load``, recording the SHA-256 of the bytes it returns in ``into[name]`` (called in
    the decoding threads: one dict item set per file)."""

    def loaded() -> bytes:
        data = load()
        into[name] = hashlib.sha256(data).hexdigest()
        return data

    return loaded


def chunked(items: list[Any], size: int | None) -> list[range]:
    """Positions ``0..len(items)`` in parts of ``size`` (one part when ``size`` is None)."""
    step = size or max(len(items), 1)
    return [range(start, min(start + step, len(items))) for start in range(0, len(items), step)]


def check_metadata_table(metadata: pd.DataFrame) -> None:
    """Raise a ValueError naming missing columns or repeated ``image_id`` values."""
    missing = [c for c in METADATA_COLUMNS if c not in metadata.columns]
    if missing:
        raise ValueError(
            f"the metadata table lacks column(s) {missing}: it needs {list(METADATA_COLUMNS)} "
            "(as HAM10000_metadata.csv; image_id is the file name without its extension), "
            f"found {list(metadata.columns)}"
        )
    ids = _image_ids(metadata)
    repeated = sorted(set(ids[ids.duplicated()]))
    if repeated:
        raise ValueError(
            f"the metadata table has more than one row for {len(repeated)} image_id(s), so "
            f"their metadata is ambiguous: {_listed(repeated)}"
        )


def metadata_limits(checkpoint: dict[str, Any]) -> MetadataConfig:
    """The sexes and ages data_processing let into the classifier's training
    (``data_processing.metadata`` as its run had it); the defaults for a checkpoint from
    before they were recorded."""
    settings = (checkpoint.get("params") or {}).get("settings") or {}
    recorded = settings.get("metadata_validation")
    if recorded is None:
        return MetadataConfig()
    return from_dict(MetadataConfig, recorded, "checkpoint.params.settings.metadata_validation")


def match_metadata(
    names: list[str],
    metadata: pd.DataFrame,
    limits: MetadataConfig | None = None,
    *,
    warn: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Each image's metadata row, matched on the file name without its extension.

    Args:
        names: The images (relative paths or file names, e.g. ``part_1/ISIC_0024306.jpg``).
        metadata: A table with ``image_id``, ``age``, ``sex`` and ``localization`` (other
            columns are ignored; ``image_id`` is compared after stripping spaces and an
            image suffix such as ``.jpg``, if one was written). Rows that
            match no image are left out: the whole ``HAM10000_metadata.csv`` may be given for
            a few of its images.
        limits: The ages training's metadata validation kept (:func:`metadata_limits`;
            default 0-120 years).

    Returns:
        ``rows`` aligned with ``names`` (indexed by name, so that an invalid age is named
        by its image) and ``given``, a boolean per image: False where the table has no row,
        whose age, sex and localization are then missing (encoded as unknown; counted and
        named in a warning).

    Raises:
        ValueError: Naming missing columns, repeated ``image_id`` values, images in
            different folders whose file names (and so image_id) are the same and have a row,
            ages outside ``limits``, the range metadata validation kept for training, or a
            table that matches none of the images.
    """
    check_metadata_table(metadata)
    stems = pd.Series([PurePosixPath(name).stem for name in names], index=names, dtype=object)
    table = metadata.assign(image_id=_image_ids(metadata)).set_index("image_id")
    # Images of one file name in two folders are ambiguous only where the table has a row
    # of that name (which image it describes cannot be told); without, all are "missing".
    clashes = stems[stems.duplicated(keep=False) & stems.isin(table.index)]
    if len(clashes):
        raise ValueError(
            f"{len(clashes)} images share a file name without extension (image_id) that the "
            "metadata table has a row for, so which image the row describes cannot be told: "
            f"{_listed(list(clashes.index))}; classify them in separate runs"
        )
    given = stems.isin(table.index).to_numpy()
    if len(names) and not given.any():
        # Most often image_ids that are not the file names (a renamed export): every image
        # would be classified with its metadata unknown, under a threshold validated with it.
        raise ValueError(
            f"the metadata table matches none of the {len(names)} image(s): its image_id "
            f"values ({_listed(list(table.index.astype(str)))}) are not the images' file names "
            f"without extension ({_listed(list(dict.fromkeys(stems)))}). Correct the image_id "
            "column; for images whose age, sex and site are unknown, give them rows with those "
            "left empty"
        )
    rows = table.reindex(stems.to_numpy())[list(METADATA_COLUMNS[1:])]
    rows.index = pd.Index(names, name="image")
    rows.insert(0, "image_id", stems.to_numpy())
    _check_age_range(rows, limits or MetadataConfig())
    if warn:
        warn_missing_rows(names, given)
    return rows, given


def warn_missing_rows(names: list[str], given: np.ndarray) -> None:
    """One warning counting and naming the images without a metadata row (none if all have)."""
    if not given.all():
        logger.warning(
            "%d of %d image(s) have no row in the metadata table; they are classified with "
            "age, sex and localization unknown (their predictions say metadata=missing): %s",
            int((~given).sum()),
            len(names),
            _listed([n for n, g in zip(names, given, strict=True) if not g]),
        )


def _check_age_range(rows: pd.DataFrame, limits: MetadataConfig) -> None:
    """Refuse ages that metadata validation would not have let into training.

    (Text that is not a number is left to the encoder, which names it.)
    """
    outside = _ages_outside(rows, limits.min_age, limits.max_age)
    if len(outside):
        shown = [f"{name}: {rows.at[name, 'age']!r}" for name in outside]
        raise ValueError(
            f"{len(outside)} age(s) outside {limits.min_age:g}-{limits.max_age:g} years, the "
            f"range metadata validation keeps for training: {_listed(shown)} (leave an unknown "
            "age empty)"
        )


def warn_unseen_ages(rows: pd.DataFrame, encoder: MetadataEncoder) -> None:
    """Warn, naming the images, about ages outside the range of the training ages.

    Such an age is plausible (it passed metadata validation's range) but the model never
    saw one like it, so its standardised age feature lies beyond anything it was trained
    on. Silent for an encoder from before the range was recorded.
    """
    if encoder.age_min is None or encoder.age_max is None:
        return
    outside = _ages_outside(rows, encoder.age_min, encoder.age_max)
    if len(outside):
        logger.warning(
            "%d image(s) have an age outside the training ages (%g-%g years), which the "
            "model has not seen; their age feature extrapolates: %s",
            len(outside),
            encoder.age_min,
            encoder.age_max,
            _listed([f"{name}: {rows.at[name, 'age']}" for name in outside]),
        )


def _ages_outside(rows: pd.DataFrame, low: float, high: float) -> pd.Index:
    """The rows whose age is a number below ``low`` or above ``high``."""
    ages = pd.to_numeric(rows["age"], errors="coerce")
    return rows.index[(ages < low) | (ages > high)]


def _image_ids(metadata: pd.DataFrame) -> pd.Series:
    """``image_id`` stripped, and without an image suffix where one was written
    (``ISIC_0024306.jpg`` names the same image as ``ISIC_0024306``)."""
    ids = metadata["image_id"].astype(str).str.strip()
    suffix = "|".join(ext.lstrip(".") for ext in IMAGE_SUFFIXES)
    return ids.str.replace(rf"\.(?:{suffix})$", "", case=False, regex=True)


def _listed(values: list[str]) -> str:
    """The first few values, then how many more."""
    more = len(values) - SHOWN
    return ", ".join(map(str, values[:SHOWN])) + (f" and {more} more" if more > 0 else "")


def gradcam_panels(
    checkpoint: dict[str, Any],
    images: np.ndarray,
    predictions: pd.DataFrame,
    meta: np.ndarray | None,
    *,
    device: torch.device,
    tta: str = "none",
    model: torch.nn.Module | None = None,
) -> dict[str, dict[str, Any]]:
    """Grad-CAM (captum) of the predicted class on each image's model input crop
    (``model``: the checkpoint's classifier already built on ``device``, else built here).

    ``meta`` (encoded metadata rows aligned with ``images``) feeds a classifier that fuses
    it, and ``tta`` is the test-time augmentation the predictions were made with (the views'
    heatmaps averaged, :func:`skin_lesion.evaluation.explain`), so that the heatmap explains
    the prediction that was made.
    """
    classes = checkpoint["class_names"]
    targets = [classes.index(c) for c in predictions["predicted"]]
    crops, heatmaps = explain(
        checkpoint, images, targets, device=device, meta=meta, tta=tta, model=model
    )
    return {
        row.image: {
            "image": crop,
            "heatmap": heat,
            "title": f"{row.image}: {row.predicted} (p={getattr(row, 'p_' + row.predicted):.2f})"
            + evidence_note(heat),
        }
        for crop, heat, row in zip(crops, heatmaps, predictions.itertuples(), strict=True)
    }


def gradcam_model(checkpoint: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """The checkpoint's classifier on ``device``, built once for every Grad-CAM batch."""
    return classifier_from_checkpoint(checkpoint).to(device)


class LazyGradcam:
    """Grad-CAM panels of the predicted class, computed only when asked for, a batch at a
    time, holding one batch: overlays for thousands of images then need the memory of a
    batch, not of every crop, heatmap and figure at once.

    Panels are asked for in the order their overlays are saved (sorted overlay file names,
    as Kedro's ``PartitionedDataset`` saves lazily), so a batch is the next images in that
    order from the one asked for; any order works, at the cost of recomputing batches.
    """

    def __init__(
        self,
        checkpoint: dict[str, Any],
        images: np.ndarray | Callable[[list[int]], tuple[np.ndarray, dict[int, str]]],
        predictions: pd.DataFrame,
        meta: np.ndarray | None,
        *,
        device: torch.device,
        batch_size: int = GRADCAM_BATCH,
        tta: str = "none",
    ) -> None:
        """``images``: the decoded images aligned with ``predictions``, or a function that
        decodes those of the given prediction rows (for a run too large to hold them),
        returning them and ``{row: reason}`` for any that could not be read again (whose
        panel then says so, with an empty heatmap, and a warning)."""
        self._args = (checkpoint, images, predictions, meta)
        self._device = device
        self._tta = tta
        images = list(predictions["image"])
        names = overlay_names(images)
        self._order = sorted(range(len(images)), key=lambda i: names[images[i]])
        self._rank = {row: k for k, row in enumerate(self._order)}
        self._batch_size = batch_size
        self._held: dict[int, dict[str, Any]] = {}
        self._model: torch.nn.Module | None = None  # built at the first panel, then reused

    def panel(self, row: int) -> dict[str, Any]:
        """The panel of row ``row`` of the predictions."""
        if row not in self._held:
            start = self._rank[row]
            rows = self._order[start : start + self._batch_size]
            checkpoint, images, predictions, meta = self._args
            chosen = predictions.iloc[rows]
            pixels, unreadable = images(rows) if callable(images) else (images[rows], {})
            if self._model is None:
                self._model = gradcam_model(checkpoint, self._device)
            batch = gradcam_panels(
                checkpoint, pixels, chosen, None if meta is None else meta[rows],
                device=self._device, tta=self._tta, model=self._model,
            )  # fmt: skip
            for r, name in zip(rows, chosen["image"]):
                if r in unreadable:  # classified, but gone or changed since: say so, not fail
                    logger.warning("Grad-CAM of %s: %s", name, unreadable[r])
                    batch[name] = {
                        **batch[name],
                        "heatmap": np.zeros_like(batch[name]["heatmap"]),
                        "title": f"{name}: not read again for Grad-CAM",
                    }
            self._held = {r: batch[name] for r, name in zip(rows, chosen["image"])}
        return self._held[row]

    def panels(self) -> dict[str, Callable[[], dict[str, Any]]]:
        """``{image: callable returning its panel}`` for every prediction."""
        images = self._args[2]["image"]
        return {name: partial(self.panel, row) for row, name in enumerate(images)}


# The longest file name most file systems take (ext4, XFS, APFS, NTFS: 255 bytes or UTF-16
# units; bytes are the stricter count).
MAX_NAME_BYTES = 255


def overlay_names(images: list[str]) -> dict[str, str]:
    """A file name for each image's Grad-CAM overlay in one flat folder: its relative path
    with ``/`` as ``__``, plus ``.png``; one already taken (``x/y.jpg`` and ``x__y.jpg``)
    gets ``~2``, ``~3``, ... so that no overlay overwrites another. A name longer than
    :data:`MAX_NAME_BYTES` in UTF-8 (an image deep in long folders) keeps its end, the file's
    own name, after ``~`` and 12 hex digits of its path's SHA-256, so that it can be saved."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for image in images:
        stem = _fit_name(image.replace("/", "__"), image)
        name, k = f"{stem}.png", 1
        while name in taken:
            k += 1
            name = f"{_fit_name(stem, image, f'~{k}')}~{k}.png"
        names[image] = name
        taken.add(name)
    return names


def _fit_name(stem: str, image: str, suffix: str = "") -> str:
    """``stem``, or where ``stem + suffix + '.png'`` is over :data:`MAX_NAME_BYTES` bytes, a
    hash of ``image`` then as much of the end of ``stem`` as fits."""
    room = MAX_NAME_BYTES - len(suffix.encode()) - len(b".png")
    if len(stem.encode()) <= room:
        return stem
    tag = "~" + hashlib.sha256(image.encode("utf-8", "surrogateescape")).hexdigest()[:12] + "~"
    tail = stem.encode()[-(room - len(tag)) :].decode("utf-8", "ignore")  # whole characters
    return tag + tail


def file_loaders(paths: list[str]) -> dict[str, Callable[[], bytes]]:
    """Loaders for local files or folders (searched recursively for .jpg/.jpeg/.png, through
    symlinked subfolders).

    A file named directly is read whatever its suffix (the decoder judges it). In a folder,
    other files (hidden files aside) get a loader that fails with the reason, so they land in
    the rejects, and a warning counts and names them. Names that are not valid UTF-8 are
    shown with ``\\xNN`` escapes (:func:`skin_lesion.files.display_name`).

    Raises:
        FileNotFoundError: For a path that does not exist, or a folder with no image in it.
    """
    wanted = "/".join(IMAGE_SUFFIXES)
    loaders: dict[str, Callable[[], bytes]] = {}
    # real path -> the name it was added under and the position of the path that gave it
    seen: dict[str, tuple[str, int]] = {}
    repeats: list[str] = []  # names of files given again
    renamed: list[str] = []  # files listed as name~k: another file shows under their name
    # A folder's files left out, by real path: (folder given, name in the folder, loader name)
    left: dict[str, tuple[str, str, str]] = {}
    for position, given in enumerate(paths):
        path = Path(given)
        if path.is_dir():
            files = sorted(Path(f) for f in walk_files(path))
            found = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            others = [
                p for p in files
                if p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith(".")
            ]  # fmt: skip
            if not found:
                listed = _listed([str(p.relative_to(path)) for p in others])
                raise FileNotFoundError(
                    f"no {wanted} image in folder '{given}'"
                    + (
                        f" ({len(others)} other file(s): {listed}; a file named on its own is "
                        "read whatever its ending, e.g. a TIFF)"
                        if others
                        else ""
                    )
                )
            for file in found:
                _add(loaders, seen, repeats, file, file.read_bytes, position, renamed)
            for file in others:
                real = os.path.realpath(file)
                if real not in seen and real not in left:  # a file named directly is read
                    name = display_name(str(file.relative_to(path)))
                    left[real] = (given, name, _name(file))
        elif path.exists() or path.is_symlink():  # a broken link is rejected when read
            _add(loaders, seen, repeats, path, path.read_bytes, position, renamed)
        else:
            raise FileNotFoundError(f"no such image or folder: '{given}'")
    # Named directly after its folder was given: read, not left out (until 2026-12-06 the
    # folder's left-out entry replaced a file named before it).
    left = {real: entry for real, entry in left.items() if real not in seen}
    for folder in dict.fromkeys(entry[0] for entry in left.values()):
        warn_left_out(folder, [name for f, name, _ in left.values() if f == folder], wanted)
    for _, _, key in left.values():
        unique = unique_name(key, loaders)
        if unique != key:
            renamed.append(unique)
        loaders[unique] = left_out(wanted)
    warn_alike(renamed)
    if repeats:
        logger.warning(
            "%d file(s) given more than once (by name, under another spelling, or in a folder "
            "also given) are classified once: %s",
            len(repeats),
            _listed(repeats),
        )
    return loaders


def _add(
    loaders: dict[str, Callable[[], bytes]],
    seen: dict[str, tuple[str, int]],
    repeats: list[str],
    path: Path,
    load: Callable[[], bytes],
    position: int,
    renamed: list[str],
) -> None:
    """Add one image, unless another path given (``position``) already added the same file,
    under this spelling or another (``x.jpg`` twice, ``x.jpg`` and ``../dir/x.jpg``, or a
    folder and a file in it): then it goes to ``repeats``, for one warning of them all.

    Two names inside one folder given (a symlink beside its target) are two images, as the
    inference pipeline reads that folder; byte-identical copies of one file name are set
    aside later, as there."""
    name, real = _name(path), os.path.realpath(path)
    if real in seen and seen[real][1] != position:
        first = seen[real][0]
        repeats.append(name if first == name else f"{name} (= {first})")
        return
    if real not in seen and name in loaders:  # another file shows under this name
        name = unique_name(name, loaders)
        renamed.append(name)
    seen.setdefault(real, (name, position))
    loaders[name] = load


def _name(path: Path) -> str:
    return display_name(str(PurePosixPath(path.as_posix())))
