"""Lesion-grouped, class-stratified train/val/test splits and cross-validation folds.

HAM10000 has 10,015 images of 7,470 lesions; images of one lesion are near-duplicates, so an
image-level split leaks. Every lesion here goes wholly to one split.

Each lesion has exactly one diagnosis (validation enforces it), so grouped stratification
decomposes into one problem per class. Each class's lesions are put in an order fixed by a
hash of (seed, lesion_id) and laid end to end by their image counts; a lesion goes to the
split whose share of that line holds the lesion's middle (the first 70% of the class's
images train, the next 15% val, the last 15% test). That hits any fractions (0.70/0.15/0.15
included) to within about half a lesion at each boundary, whatever a lesion's size, so val
and test hold multi-image lesions in the same proportion as train. The folds lay train+val's
lesions out the same way (in another hashed order) in ``folds`` equal parts per class.

Why our own assignment rather than a random permutation or sklearn's
``StratifiedGroupKFold``: **stability**. A lesion's place depends only on its own hash, the
images before it on its class's line and the class's image count, so removing, adding or
relabelling a lesion (a corrupt file set aside, a corrected label, another copy of the data)
moves only lesions within about that lesion's images of a boundary; with a seeded
permutation of the class, or k-fold's shuffle, one lesion fewer reshuffles about half of the
class, and results on two versions of the data would compare different test splits. The
order does not depend on the numpy or scikit-learn version either (``StratifiedGroupKFold``
assigned other folds before 1.8).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ("image_id", "lesion_id", "dx", "label", "split", "fold")
# How lesions are assigned, as ``split_summary`` records it: splits made before this
# assignment (a seeded random order, until 2026-12-06) are named when a run reads them.
ASSIGNMENT = "hashed lesion order (2026-12-06)"


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
        seed: Seed of the split's hashed lesion order (train/val/test and folds); ``None``
            uses the run's ``seed``. Set it to draw another split while the training seed
            stays, or to keep the split while ``seed`` varies.
    """

    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    folds: int = 5
    validation_fold: int | None = None
    warn_share_gap: float = 2.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0
        ):
            raise ValueError(f"seed must be an integer >= 0 or null, got {self.seed!r}")
        fractions = (self.train, self.val, self.test)
        # Written to fail on NaN too (`--params data_processing.split.val=.nan`).
        if not all(f > 0 for f in fractions) or not abs(sum(fractions) - 1.0) <= 1e-6:
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
        seed: Seed of the hashed order in which each class's lesions are laid out, where
            ``config.seed`` is null (the run's ``seed``).

    Returns:
        A frame with columns ``image_id, lesion_id, dx, label, split, fold`` in the input
        order; ``fold`` is -1 for test rows (and everywhere when folds are off).

    Raises:
        SplitError: When a lesion's images carry more than one diagnosis (each class's
            lesions are laid out apart, so such a lesion has no one place; the pipeline's
            validation sets them aside before this), when ``folds`` equal parts of train+val
            cannot each hold a lesion, or (under ``validation_fold``) a class has fewer
            train+val lesions than folds.
    """
    _check_one_diagnosis_a_lesion(metadata)
    seed = split_seed(config, seed)
    fractions = np.array([config.train, config.val, config.test])
    lesions = metadata.groupby("lesion_id", sort=True).agg(
        dx=("dx", "first"), images=("image_id", "size")
    )
    assignment: dict[str, str] = {}
    for dx in sorted(lesions["dx"].unique()):
        members = lesions[lesions["dx"] == dx]
        order = hashed_order(members.index, seed, "split")
        chosen = _fill_splits(members["images"].to_numpy(), fractions, order)
        assignment.update(zip(members.index, (SPLITS[k] for k in chosen)))
    out = metadata.loc[:, ["image_id", "lesion_id", "dx", "label"]].copy()
    out["split"] = out["lesion_id"].map(assignment)
    out["fold"] = -1
    if config.folds:
        dev = out.index[out["split"] != "test"]
        _check_fold_lesions(out.loc[dev], config)
        dev_lesions = lesions[[assignment[lesion] != "test" for lesion in lesions.index]]
        folds = _assign_folds(dev_lesions, config, seed)
        out.loc[dev, "fold"] = out.loc[dev, "lesion_id"].map(folds).to_numpy()
        if config.validation_fold is not None:
            held_out = out.loc[dev, "fold"] == config.validation_fold
            out.loc[dev, "split"] = np.where(held_out, "val", "train")
    return out.reset_index(drop=True)


def _check_one_diagnosis_a_lesion(metadata: pd.DataFrame) -> None:
    """Refuse lesions whose images carry different diagnoses, naming them with their labels."""
    counts = metadata.groupby("lesion_id", sort=True)["dx"].nunique()
    mixed = counts.index[counts > 1]
    if len(mixed) == 0:
        return
    diagnoses = metadata.groupby("lesion_id", sort=True)["dx"].agg(lambda d: sorted(set(d)))
    shown = [f"{lesion} ({', '.join(diagnoses[lesion])})" for lesion in mixed[:5]]
    more = f" and {len(mixed) - 5} more" if len(mixed) > 5 else ""
    raise SplitError(
        f"{len(mixed)} lesion(s) have images with different diagnoses: {'; '.join(shown)}{more}. "
        "A lesion goes to one split and is stratified by its diagnosis; correct the labels or "
        "set those images aside (data_processing's validation does so with `on_invalid: drop`)."
    )


def split_seed(config: SplitConfig, seed: int) -> int:
    """The seed a split is drawn with: ``config.seed`` where set, else the run's ``seed``."""
    return seed if config.seed is None else config.seed


def hashed_order(lesion_ids: Sequence[str], seed: int, purpose: str) -> np.ndarray:
    """Positions of ``lesion_ids`` sorted by SHA-256 of ``purpose:seed:lesion_id``.

    Each lesion's key depends on nothing but its own id and the seed, so the relative order of
    the others is unchanged when a lesion is added or removed. ``purpose`` gives the split and
    the folds independent orders.
    """
    keys = [_hash(purpose, seed, lesion) for lesion in lesion_ids]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=int)


def _hash(purpose: str, seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{purpose}:{seed}:{name}".encode()).digest()[:8], "big")


def _line_positions(sizes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Each lesion's middle on the line of its class's images laid end to end in ``order``,
    as a fraction of the class's images (aligned with ``sizes``)."""
    laid = sizes[order].astype(float)
    middles = np.cumsum(laid) - laid / 2
    positions = np.empty(len(sizes))
    positions[order] = middles / laid.sum()
    return positions


def _assign_folds(dev_lesions: pd.DataFrame, config: SplitConfig, seed: int) -> dict:
    """Fold of each train+val lesion: ``folds`` equal parts of each class's hashed line.

    A class with at least ``folds`` lesions reaches every fold: where a lesion of many images
    would cover a whole part of the line (leaving that fold without the class), the class is
    cut by lesion count instead. A class with fewer lesions reaches as many folds as it has
    lesions; classes are rotated, in turn, to whichever offset covers the most folds still
    without a lesion (ties: a hashed preference), so that they do not all leave the same
    folds empty.

    Raises:
        SplitError: When a fold would hold no lesion at all.
    """
    k = config.folds
    folds: dict[str, int] = {}
    covered = np.zeros(k, dtype=int)
    for dx in sorted(dev_lesions["dx"].unique()):
        members = dev_lesions[dev_lesions["dx"] == dx]
        order = hashed_order(members.index, seed, "fold")
        part = _parts(_line_positions(members["images"].to_numpy(), order), k)
        if len(members) >= k and len(set(part.tolist())) < k:
            part = _parts(_line_positions(np.ones(len(members)), order), k)
        used = np.unique(part)
        preference = hashed_order([str(o) for o in range(k)], seed, f"fold-offset:{dx}")
        offset = max(preference.tolist(), key=lambda o: (covered[(used + o) % k] == 0).sum())
        chosen = (part + offset) % k
        covered[(used + offset) % k] += 1
        folds.update(zip(members.index, chosen.tolist()))
    empty = np.flatnonzero(covered == 0).tolist()
    if empty:
        per_class = dev_lesions.groupby("dx").size().to_dict()
        raise SplitError(
            f"cannot make data_processing.split.folds={k} lesion-grouped folds of "
            f"train+val: fold(s) {empty} would hold no lesion; lesions per class there: "
            f"{per_class}. Lower folds (0 turns them off) or add data"
        )
    return folds


def _parts(positions: np.ndarray, k: int) -> np.ndarray:
    """Which of ``k`` equal parts of the line each position falls in."""
    return np.minimum((positions * k).astype(int), k - 1)


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


def _fill_splits(sizes: np.ndarray, fractions: np.ndarray, order: np.ndarray) -> list:
    """Assign lesions of one class to splits so image counts track ``fractions``.

    The lesions are laid end to end in ``order`` (a hashed order: see the module docstring),
    each as long as its number of images; a lesion goes to the split whose part of the line
    (``fractions`` in turn) holds its middle. Every split thus ends within about half a lesion
    of its target at each boundary, and a lesion's split does not depend on how many images it
    has: val and test hold multi-image lesions in the same proportion as train. (Placing the
    largest lesions first would hit the counts a little closer, but it sends every
    multi-image lesion to train and leaves val and test with single-image lesions only: a
    sample of lesions that is not HAM10000's.) A split left without a lesion (a class of very
    few lesions) then takes the smallest lesion of the split holding most lesions.
    """
    edges = np.concatenate([[0.0], np.cumsum(fractions)])
    positions = _line_positions(sizes, order)
    chosen = np.searchsorted(edges[1:-1], positions, side="right").tolist()
    rank = np.empty(len(sizes), dtype=int)
    rank[order] = np.arange(len(sizes))
    for k in range(len(fractions)):
        if k not in chosen and len(sizes) >= len(fractions):
            counts = np.bincount(chosen, minlength=len(fractions))
            donor = int(np.argmax(counts))
            # The donor's smallest lesion nearest split k's part of the line (then the
            # hashed order): the choice does not depend on how lesion ids sort.
            given = min(
                (i for i in range(len(sizes)) if chosen[i] == donor),
                key=lambda i: (
                    sizes[i],
                    max(edges[k] - positions[i], positions[i] - edges[k + 1], 0.0),
                    rank[i],
                ),
            )
            chosen[given] = k
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
    splits: pd.DataFrame,
    classes: Sequence[str],
    validation_fold: int | None = None,
    seed: int | None = None,
) -> dict:
    """Images and lesions per class per split, shares, and the largest share gap.

    ``validation_fold`` (``SplitConfig.validation_fold``) and the ``seed`` the split was
    drawn with are recorded in the protocol (the report quotes it).

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
    protocol = (
        "grouped by lesion_id, stratified by dx, lesions in an order hashed from "
        f"({'seed' if seed is None else f'seed {seed}'}, lesion_id); test rows have fold -1"
    )
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
