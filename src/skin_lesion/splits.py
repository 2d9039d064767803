"""Lesion-grouped, class-stratified train/val/test splits and cross-validation folds.

HAM10000 has 10,015 images of 7,470 lesions; images of one lesion are near-duplicates, so an
image-level split leaks. Every lesion here goes wholly to one split.

Why our own assignment rather than sklearn's ``StratifiedGroupKFold`` for train/val/test:
each lesion has exactly one diagnosis (validation enforces it), so grouped stratification
decomposes into one independent problem per class. Filling each class's splits greedily,
its lesions in random order (whatever their number of images, so that val and test hold
multi-image lesions in the same proportion as train), hits any fractions (0.70/0.15/0.15
included) to within about one lesion, where k-fold only offers multiples of 1/k. The folds,
equal by definition, do use ``StratifiedGroupKFold``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ("image_id", "lesion_id", "dx", "label", "split", "fold")


@dataclass(frozen=True)
class SplitConfig:
    """Split fractions and folds.

    Attributes:
        train: Fraction of each class's images for training.
        val: Fraction for validation (model choice).
        test: Fraction for the final, once-only test.
        folds: Grouped stratified folds over train+val; 0 disables (fold -1 everywhere).
        validation_fold: Cross-validation: when set to ``k``, fold ``k`` becomes the
            validation split and the other folds the train split (the test split is
            unchanged). ``None`` keeps the fractions' train/val split.
        warn_share_gap: Warn when a class's share of a split is further than this many
            percentage points from its overall share.
    """

    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    folds: int = 5
    validation_fold: int | None = None
    warn_share_gap: float = 2.0

    def __post_init__(self) -> None:
        fractions = (self.train, self.val, self.test)
        if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(
                f"split fractions must be positive and sum to 1, got train={self.train}, "
                f"val={self.val}, test={self.test} (sum {sum(fractions):g})"
            )
        if not self.warn_share_gap >= 0:
            raise ValueError(f"warn_share_gap must be >= 0, got {self.warn_share_gap!r}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds must be 0 (off) or at least 2, got {self.folds}")
        k = self.validation_fold
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int):
                raise ValueError(f"validation_fold must be an integer or null, got {k!r}")
            if not self.folds:
                raise ValueError(
                    f"validation_fold={k} needs folds; folds is 0 (off): set folds to 2 or more"
                )
            if not 0 <= k < self.folds:
                raise ValueError(
                    f"validation_fold must be between 0 and folds - 1 = {self.folds - 1}, got {k}"
                )


class SplitError(ValueError):
    """A split that would leak lesions or miss a class."""


def split_by_lesion(metadata: pd.DataFrame, config: SplitConfig, seed: int) -> pd.DataFrame:
    """Assign every image a split and a fold, keeping each lesion in one place.

    Args:
        metadata: Rows with ``image_id``, ``lesion_id``, ``dx`` and ``label``.
        config: Fractions and folds.
        seed: Seed for the random order in which lesions are assigned.

    Returns:
        A frame with columns ``image_id, lesion_id, dx, label, split, fold`` in the input
        order; ``fold`` is -1 for test rows (and everywhere when folds are off).
    """
    rng = np.random.default_rng(seed)
    fractions = np.array([config.train, config.val, config.test])
    lesions = metadata.groupby("lesion_id", sort=True).agg(
        dx=("dx", "first"), images=("image_id", "size")
    )
    assignment: dict[str, str] = {}
    for dx in sorted(lesions["dx"].unique()):
        members = lesions[lesions["dx"] == dx]
        chosen = _fill_splits(members["images"].to_numpy(), fractions, rng)
        assignment.update(zip(members.index, (SPLITS[k] for k in chosen)))
    out = metadata.loc[:, ["image_id", "lesion_id", "dx", "label"]].copy()
    out["split"] = out["lesion_id"].map(assignment)
    out["fold"] = -1
    if config.folds:
        dev = out.index[out["split"] != "test"]
        _check_fold_lesions(out.loc[dev], config)
        kfold = StratifiedGroupKFold(n_splits=config.folds, shuffle=True, random_state=seed)
        try:
            for fold, (_, held_out) in enumerate(
                kfold.split(dev, out.loc[dev, "label"], groups=out.loc[dev, "lesion_id"])
            ):
                out.loc[dev[held_out], "fold"] = fold
        except ValueError as error:  # sklearn's, e.g. n_splits above a class's images
            lesions = out.loc[dev].groupby("dx")["lesion_id"].nunique().to_dict()
            raise SplitError(
                f"cannot make data_processing.split.folds={config.folds} lesion-grouped folds "
                f"of train+val ({error}); lesions per class there: {lesions}. Lower folds "
                "(0 turns them off) or add data"
            ) from error
        if config.validation_fold is not None:
            held_out = out.loc[dev, "fold"] == config.validation_fold
            out.loc[dev, "split"] = np.where(held_out, "val", "train")
    return out.reset_index(drop=True)


def _check_fold_lesions(dev: pd.DataFrame, config: SplitConfig) -> None:
    """Each fold can hold a lesion of every class only if train+val has ``folds`` of each.

    Raises:
        SplitError: Under ``validation_fold``, naming the classes short of lesions (their
            validation split would miss them); otherwise that is only logged, since the
            folds are then labels for later cross-validation runs.
    """
    lesions = dev.groupby("dx")["lesion_id"].nunique()
    short = lesions[lesions < config.folds].to_dict()
    if not short:
        return
    message = (
        f"class(es) {short} have fewer lesions in train+val than "
        f"data_processing.split.folds={config.folds}, so some folds hold none of them"
    )
    if config.validation_fold is not None:
        raise SplitError(
            f"{message}, and validation_fold={config.validation_fold} needs every class in "
            "its fold: lower folds or add data"
        )
    logger.warning("%s: a cross-validation run on such a fold would miss the class", message)


def _fill_splits(sizes: np.ndarray, fractions: np.ndarray, rng: np.random.Generator) -> list:
    """Assign lesions of one class to splits so image counts track ``fractions``.

    Lesions go in random order, whatever their size; each goes to the split furthest below
    its target image count relative to that target, so every split fills at its own pace
    from the first lesion on and ends within about one lesion of its target. A lesion's
    split therefore does not depend on how many images it has: val and test hold multi-image
    lesions in the same proportion as train. (Placing the largest lesions first would hit
    the counts a little closer, but it sends every multi-image lesion to train and leaves
    val and test with single-image lesions only: a sample of lesions that is not HAM10000's.)
    A split left without a lesion then takes the smallest lesion of the fullest split.
    """
    targets = fractions * sizes.sum()
    order = rng.permutation(len(sizes))
    filled = np.zeros(len(fractions))
    chosen = [0] * len(sizes)
    for i in order:
        k = int(np.argmax((targets - filled) / targets))
        chosen[i] = k
        filled[k] += sizes[i]
    for k in range(len(fractions)):
        if k not in chosen and len(sizes) >= len(fractions):
            counts = np.bincount(chosen, minlength=len(fractions))
            donor = int(np.argmax(counts))
            smallest = min(
                (i for i in range(len(sizes)) if chosen[i] == donor), key=lambda i: sizes[i]
            )
            chosen[smallest] = k
    return chosen


def check_splits(splits: pd.DataFrame, classes: Sequence[str]) -> None:
    """Fail loudly when a lesion crosses splits or a class is missing from a split.

    Raises:
        SplitError: Naming the leaking lesions or the missing class and split.
    """
    crossing = splits.groupby("lesion_id")["split"].nunique()
    crossing = crossing[crossing > 1]
    if len(crossing):
        raise SplitError(
            f"{len(crossing)} lesion(s) appear in more than one split, e.g. "
            f"{list(crossing.index[:5])}; splits must be grouped by lesion_id"
        )
    present = splits.groupby("split")["dx"].unique()
    for split in SPLITS:
        found = set(present.get(split, []))
        missing = [c for c in classes if c not in found]
        if missing:
            lesions = splits.groupby("dx")["lesion_id"].nunique().to_dict()
            raise SplitError(
                f"class(es) {missing} have no image in the {split} split "
                f"(lesions per class: {lesions}); every class needs at least "
                f"{len(SPLITS)} lesions, more for stable estimates"
            )


def summarize_splits(
    splits: pd.DataFrame, classes: Sequence[str], validation_fold: int | None = None
) -> dict:
    """Images and lesions per class per split, shares, and the largest share gap.

    ``validation_fold`` (``SplitConfig.validation_fold``) is recorded in the protocol.

    Returns:
        A JSON-ready dict.
    """
    overall = splits["dx"].value_counts(normalize=True)
    per_class: dict[str, dict] = {}
    gaps = []
    for name in classes:
        rows = splits[splits["dx"] == name]
        per_class[name] = {"overall_share": round(float(overall.get(name, 0.0)), 4)}
        for split in SPLITS:
            part = splits[splits["split"] == split]
            in_split = rows[rows["split"] == split]
            share = len(in_split) / max(len(part), 1)
            gaps.append(abs(share - overall.get(name, 0.0)) * 100)
            per_class[name][split] = {
                "images": len(in_split),
                "lesions": int(in_split["lesion_id"].nunique()),
                "share": round(share, 4),
            }
    folds = splits[splits["fold"] >= 0]
    protocol = "grouped by lesion_id, stratified by dx; test rows have fold -1"
    if validation_fold is not None:
        protocol += (
            f"; cross-validation: fold {validation_fold} of train+val is the validation "
            "split, the other folds train"
        )
    return {
        "protocol": protocol,
        "validation_fold": validation_fold,
        "images": {s: int((splits["split"] == s).sum()) for s in SPLITS},
        "lesions": {
            s: int(splits.loc[splits["split"] == s, "lesion_id"].nunique()) for s in SPLITS
        },
        "per_class": per_class,
        "max_share_gap_points": round(max(gaps), 3),
        "folds": {
            int(f): {c: int(n) for c, n in group["dx"].value_counts().sort_index().items()}
            for f, group in folds.groupby("fold")
        },
    }


def compute_class_statistics(splits: pd.DataFrame, classes: Sequence[str]) -> dict:
    """Per-class image counts per split and inverse-frequency weights from train.

    The weights are ``n_train / (K * n_c)`` (mean one over classes when all are present),
    the usual "balanced" weighting (as in scikit-learn's ``class_weight='balanced'``).

    Returns:
        A JSON-ready dict; lists are aligned with ``classes``.
    """
    counts = {
        split: [int(((splits["split"] == split) & (splits["dx"] == c)).sum()) for c in classes]
        for split in SPLITS
    }
    train = np.array(counts["train"], dtype=float)
    weights = train.sum() / (len(classes) * np.maximum(train, 1.0))
    return {
        "classes": list(classes),
        "counts": counts,
        "train_counts": counts["train"],
        "inverse_frequency_weights": [round(float(w), 6) for w in weights],
    }


def warn_on_share_gaps(summary: dict, limit: float) -> None:
    """Log a warning when a class's share of a split strays beyond ``limit`` points."""
    if summary["max_share_gap_points"] > limit:
        logger.warning(
            "A class's share of a split differs from its overall share by %.2f points "
            "(limit %.2f); with few lesions per class this is expected",
            summary["max_share_gap_points"],
            limit,
        )


def align_to_cache(image_ids: Sequence[str], splits: pd.DataFrame) -> pd.DataFrame:
    """The split rows in the order of the image cache (row i describes cached image i).

    Raises:
        ValueError: When the cache and the splits do not hold the same images (a stale
            cache or splits file), naming a few of the differences.
    """
    indexed = splits.set_index("image_id")
    missing = [i for i in image_ids if i not in indexed.index]
    extra = sorted(set(indexed.index) - set(image_ids))
    if missing or extra:
        raise ValueError(
            f"image cache and splits disagree: {len(missing)} cached image(s) have no split "
            f"(e.g. {missing[:3]}), {len(extra)} split row(s) have no cached image "
            f"(e.g. {extra[:3]}); rerun `kedro run --pipelines data_processing`"
        )
    return indexed.loc[list(image_ids)].reset_index()
