"""Nodes of the data_processing pipeline: thin calls into the library."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from skin_lesion import lineage
from skin_lesion import metadata as meta
from skin_lesion import splits as splitting
from skin_lesion.config import check_at_least, from_dict
from skin_lesion.images import ImageCache, build_image_cache
from skin_lesion.preprocessing import PreprocessConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataProcessingParams:
    """``params:data_processing``, checked key by key."""

    on_invalid: Literal["raise", "drop"] = "raise"
    metadata: meta.MetadataConfig = field(default_factory=meta.MetadataConfig)
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    workers: int | None = None
    split: splitting.SplitConfig = field(default_factory=splitting.SplitConfig)

    def __post_init__(self) -> None:
        check_at_least(self, 1, "workers")


def _params(params: dict[str, Any]) -> DataProcessingParams:
    return from_dict(DataProcessingParams, params, "data_processing")


def metadata_limits(config: meta.MetadataConfig) -> dict[str, Any]:
    """The validation limits as the raw-data record and the checkpoints keep them (JSON)."""
    return {**asdict(config), "sexes": list(config.sexes)}


def record_raw_data(
    raw_data_read: dict[str, Any],
    validated_metadata: pd.DataFrame,
    image_cache: ImageCache,
    cached_metadata: pd.DataFrame,
    splits: pd.DataFrame,
) -> dict[str, Any]:
    """``raw_data_read`` (what validation read) as the record of the raw data the image cache
    and the splits were made from, once they are written and shown to come from that read
    (``lineage.check_made_from``): a run that reads them without making them first checks
    the raw data against this record, so that a metadata file edited since (a label
    corrected, rows removed) or images replaced are not trained on, or scored, as they were.
    A run that stops midway keeps the previous record; a slice of the pipeline that would
    pair outputs of different runs is refused here.

    Raises:
        lineage.StaleInputError: When the outputs come from different runs.
    """
    lineage.check_made_from(raw_data_read, validated_metadata, image_cache, cached_metadata, splits)
    logger.info(
        "Recorded the raw data read: %d metadata rows, %d image files",
        raw_data_read["metadata_rows"],
        len(raw_data_read["images"]),
    )
    return raw_data_read


def validate_metadata(
    raw_images: dict[str, Callable[[], bytes]],
    raw_metadata: pd.DataFrame,
    classes: list[str],
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Check the metadata rows and match each to exactly one image file.

    Args:
        raw_images: Relative image path -> byte loader (read only where several files share
            an image_id, to tell identical copies from different images).
        raw_metadata: HAM10000's metadata CSV, every cell as text.
        classes: The class names, in label order.
        params: ``params:data_processing``.

    Returns:
        The valid rows (typed, with ``label`` and ``file``), the rejected ones, and what was
        read (``lineage.raw_data_record``: each row's digest, the size of each image file a
        valid row uses, and the valid rows' fingerprint), which ``record_raw_data`` makes
        the run's record once the rest is written.
    """
    config = _params(params)
    files, copies = meta.set_aside_identical_copies(raw_images)
    valid, rejections = meta.validate_metadata(raw_metadata, files, classes, config.metadata)
    rejections = pd.concat([rejections, copies], ignore_index=True)
    rows = meta.count_rows(raw_metadata)  # blank lines are no rows
    meta.enforce_policy(rejections, config.on_invalid, "metadata rows", rows)
    fatal = int((~rejections["stage"].isin(meta.REPORT_ONLY_STAGES)).sum())
    meta.require_every_class(valid, classes, "metadata rows", fatal)
    logger.info("%d of %d metadata rows are valid", len(valid), rows)
    read = lineage.raw_data_record(raw_images, raw_metadata, valid["file"])
    read[lineage.VALIDATED_KEY] = lineage.rows_fingerprint(valid)
    read[lineage.VALIDATION_KEY] = metadata_limits(config.metadata)
    return valid, rejections, read


def decode_images(
    raw_images: dict[str, Callable[[], bytes]],
    validated_metadata: pd.DataFrame,
    params: dict[str, Any],
    classes: list[str] | None = None,
) -> tuple[ImageCache, pd.DataFrame, pd.DataFrame]:
    """Decode and preprocess every valid image once, in parallel, into one array.

    Args:
        raw_images: Relative image path -> byte loader.
        validated_metadata: Output of ``validate_metadata``.
        params: ``params:data_processing``.
        classes: ``params:classes``: each must keep a decodable image, or nothing is saved.

    Returns:
        The image cache, the metadata of the cached images in cache order, and the images
        that could not be decoded with their reasons. The cache holds the images in
        ``image_id`` order, whatever the order of the metadata's rows: each training epoch's
        batches are a permutation of cache positions, so the same images and seed train the
        same model from any copy of the metadata (Kaggle's, Dataverse's, one sorted or edited).
    """
    config = _params(params)
    in_order = validated_metadata.sort_values("image_id", kind="stable")
    loaders = {row.image_id: raw_images[row.file] for row in in_order.itertuples()}
    # Failures are reported once, by the policy below (set aside, or the run stopped).
    cache, failures = build_image_cache(
        loaders, config.preprocessing, workers=config.workers, warn_failures=False
    )
    files = dict(zip(validated_metadata["image_id"], validated_metadata["file"]))
    rejections = pd.DataFrame(
        {
            "image_id": list(failures),
            "file": [files[i] for i in failures],
            "stage": "decode",
            "reason": list(failures.values()),
        },
        columns=list(meta.REJECTION_COLUMNS),
    )
    meta.enforce_policy(rejections, config.on_invalid, "images", len(loaders))
    cached = validated_metadata.set_index("image_id").loc[list(cache.image_ids)].reset_index()
    if classes is not None:
        meta.require_every_class(cached, classes, "images", len(rejections))
    check_identical_images(cache, cached)
    return cache, cached, rejections


# How many groups of identical images a message lists before "...".
SHOWN_IDENTICAL = 10


def check_identical_images(cache: ImageCache, cached: pd.DataFrame) -> None:
    """Name images whose cached pixels are identical (the same image filed twice).

    Within one lesion (HAM10000 has two such pairs, e.g. ISIC_0029861 and ISIC_0024366 of
    HAM_0002300) they stay in one split: a warning, as each counts as an image. Across
    lesions the lesion-grouped split could put one copy in train and the other in test, a
    leak no split by lesion_id prevents: refused, naming both, until the metadata gives them
    one lesion_id or one copy is removed.

    Raises:
        metadata.InvalidDataError: Naming every group of identical images of several lesions.
    """
    by_digest: dict[str, list[str]] = {}
    for image_id, digest in zip(cache.image_ids, cache.digests(), strict=True):
        by_digest.setdefault(digest, []).append(image_id)
    groups = [ids for ids in by_digest.values() if len(ids) > 1]
    if not groups:
        return
    lesion = dict(zip(cached["image_id"].astype(str), cached["lesion_id"].astype(str)))

    def listed(chosen: list[list[str]]) -> str:
        shown = "; ".join(
            " = ".join(f"{i} ({lesion[i]})" for i in ids) for ids in chosen[:SHOWN_IDENTICAL]
        )
        return shown + (
            f"; and {len(chosen) - SHOWN_IDENTICAL} more" if len(chosen) > SHOWN_IDENTICAL else ""
        )

    across = [ids for ids in groups if len({lesion[i] for i in ids}) > 1]
    within = [ids for ids in groups if len({lesion[i] for i in ids}) == 1]
    if within:
        logger.warning(
            "%d group(s) of images are identical pixel for pixel within one lesion (image "
            "(lesion_id)): %s. Each stays an image of its own, in the same split (trained on, "
            "or scored, once per copy)",
            len(within),
            listed(within),
        )
    if across:
        raise meta.InvalidDataError(
            f"{len(across)} group(s) of images are identical pixel for pixel but filed under "
            f"different lesions (image (lesion_id)): {listed(across)}. A split by lesion_id "
            "could put one copy in train and another in test. Give the copies one lesion_id "
            "in the metadata, or remove all but one, then rerun data_processing."
        )


def collect_rejections(
    metadata_rejections: pd.DataFrame, decode_rejections: pd.DataFrame
) -> pd.DataFrame:
    """Join everything set aside into one report (``image_id, file, stage, reason``)."""
    return pd.concat(
        [meta.empty_rejections(), metadata_rejections, decode_rejections], ignore_index=True
    )


def split_by_lesion(
    cached_metadata: pd.DataFrame, classes: list[str], params: dict[str, Any], seed: int
) -> tuple[pd.DataFrame, dict]:
    """Split train/val/test by lesion, stratified by class, with grouped folds.

    Returns:
        ``splits`` (image_id, lesion_id, dx, label, split, fold) and a summary of images and
        lesions per class per split.

    Raises:
        SplitError: When a lesion crosses splits or a class is missing from a split.
    """
    config = _params(params).split
    drawn = splitting.split_seed(config, seed)  # data_processing.split.seed, else seed
    splits = splitting.split_by_lesion(cached_metadata, config, seed)
    splitting.check_splits(splits, classes)
    summary = splitting.summarize_splits(splits, classes, config.validation_fold, drawn)
    # What the split was made with: runs that read the splits without making them check it.
    summary[lineage.SETTINGS_KEY] = lineage.split_settings(config, classes, drawn)
    splitting.warn_on_share_gaps(summary, config.warn_share_gap)
    logger.info("Split sizes (images): %s; lesions: %s", summary["images"], summary["lesions"])
    return splits, summary


def compute_class_statistics(splits: pd.DataFrame, classes: list[str]) -> dict:
    """Per-class counts per split and inverse-frequency weights for the training pipelines."""
    return splitting.compute_class_statistics(splits, classes)
