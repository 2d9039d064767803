"""Lesion-level (cluster) bootstrap confidence intervals for the report's metrics.

Images of one lesion are not independent, so resamples draw lesions, not images; stratified,
they draw each diagnosis's lesions separately, so that every resample keeps each class's number
of lesions (on a small test split, a plain resample often lacks a rare class, and a macro
metric then averages over the classes it has: a different metric). scikit-learn
computes every metric elsewhere, but inside :func:`standard_bootstrap_metrics` its input checks
cost ~17 ms per resample on 1,500 images (17 s for 1,000 resamples), so those four metrics are
recomputed from a confusion matrix and ranks in numpy; tests/test_bootstrap.py checks them
against scikit-learn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from skin_lesion.metrics import check_labels_probs, none_if_nan

logger = logging.getLogger(__name__)

Metric = Callable[[np.ndarray, np.ndarray], float]


def _metric_value(metric: Metric, labels: np.ndarray, probs: np.ndarray) -> float:
    """The metric as a float; NaN where it is undefined (it returned None/NaN or ValueError)."""
    try:
        value = metric(labels, probs)
    except ValueError:
        return np.nan
    return np.nan if value is None else float(value)


def bootstrap_distribution(
    labels: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray,
    metrics: Mapping[str, Metric],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    stratify: bool = False,
) -> dict[str, np.ndarray]:
    """Each metric on ``n_resamples`` lesion-level bootstrap resamples (NaN where undefined).

    A resample draws as many groups as there are, with replacement, and takes all rows of
    each (a group drawn twice counts twice): the cluster bootstrap (Davison & Hinkley 1997,
    Sec. 3.8), since images of one lesion are not independent. With ``stratify``, it draws
    as many groups of each class as there are, from that class's groups (stratified
    resampling), so every resample holds every class the data hold, in the same
    number of groups: a group's class is its rows' label (one per lesion in HAM10000);
    groups whose rows disagree form one more stratum of their own.
    """
    labels, probs = check_labels_probs(labels, probs)
    groups = np.asarray(groups)
    if groups.shape != labels.shape:
        raise ValueError(f"groups must have shape {labels.shape}, got {groups.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    _, group_of_row = np.unique(groups, return_inverse=True)
    rows_by_group = np.argsort(group_of_row, kind="stable")
    sizes = np.bincount(group_of_row)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    if stratify:
        draws = _stratified_draws(rng, _group_strata(labels, group_of_row, len(sizes)), n_resamples)
    else:
        draws = rng.integers(0, len(sizes), size=(n_resamples, len(sizes)))
    values = {name: np.empty(n_resamples) for name in metrics}
    for r, drawn in enumerate(draws):
        # Row positions of each drawn group, vectorised: start of the group in rows_by_group,
        # repeated per member, plus 0..size-1 within it.
        lengths = sizes[drawn]
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows = rows_by_group[np.repeat(starts[drawn], lengths) + within]
        for name, metric in metrics.items():
            values[name][r] = _metric_value(metric, labels[rows], probs[rows])
    return values


def _group_strata(labels: np.ndarray, group_of_row: np.ndarray, n_groups: int) -> np.ndarray:
    """Each group's stratum: its rows' label, or ``-1`` where they disagree."""
    low = np.full(n_groups, np.iinfo(np.int64).max)
    high = np.full(n_groups, -1)
    np.minimum.at(low, group_of_row, labels)
    np.maximum.at(high, group_of_row, labels)
    return np.where(low == high, high, -1)


def _stratified_draws(rng: np.random.Generator, strata: np.ndarray, n_resamples: int) -> np.ndarray:
    """``[n_resamples, n_groups]`` group indices: each stratum's groups drawn from its own."""
    columns = []
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        columns.append(members[rng.integers(0, len(members), size=(n_resamples, len(members)))])
    return np.concatenate(columns, axis=1)


def _single_lesion_strata(labels: np.ndarray, groups: np.ndarray) -> int:
    """How many strata of a stratified resample hold one group (lesion) only."""
    _, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group_of_row.max()) + 1 if group_of_row.size else 0
    strata = _group_strata(np.asarray(labels), group_of_row, n_groups)
    return int((np.unique(strata, return_counts=True)[1] == 1).sum())


def lesion_bootstrap(
    labels: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray,
    metrics: Mapping[str, Metric],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    stratify: bool = False,
) -> dict[str, dict[str, Any]]:
    """Percentile bootstrap confidence intervals that resample lesions, not images.

    Resamples where a metric is undefined are skipped for that metric and counted:
    ``n_valid`` of ``n_resamples`` went into ``low``/``high`` (percentile method, Efron &
    Tibshirani 1993, Ch. 13). ``estimate`` is the metric on the full data; any of the three
    is ``None`` where undefined (no valid resample, or the full data lack what it needs).

    Args:
        labels: True class indices ``[N]``.
        probs: Class probabilities ``[N, K]``.
        groups: Lesion id of each row ``[N]`` (any dtype).
        metrics: Name -> ``metric(labels, probs)``; NaN, None or ValueError mean undefined.
        n_resamples: Number of bootstrap resamples.
        confidence: Two-sided coverage of the interval, in (0, 1).
        seed: Seed of the resampling generator.
        stratify: Resample each class's lesions separately (see
            :func:`bootstrap_distribution`); recorded as ``stratified`` in each entry, with
            ``single_lesion_strata``, the strata of one lesion (redrawn as that lesion in
            every resample: they add no spread, and the intervals are too narrow).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    started = time.perf_counter()
    values = bootstrap_distribution(
        labels, probs, groups, metrics, n_resamples=n_resamples, seed=seed, stratify=stratify
    )
    labels, probs = check_labels_probs(labels, probs)
    single = _single_lesion_strata(labels, groups) if stratify else 0
    if single:
        logger.warning(
            "lesion bootstrap: %d diagnosis stratum/strata hold a single lesion; every "
            "stratified resample redraws it, so it adds no spread and the intervals are too "
            "narrow (a split this small gives no reliable interval)",
            single,
        )
    tail = 100.0 * (1.0 - confidence) / 2.0
    report = {}
    for name, metric in metrics.items():
        valid = values[name][np.isfinite(values[name])]
        low, high = np.percentile(valid, [tail, 100.0 - tail]) if valid.size else (np.nan,) * 2
        report[name] = {
            "estimate": none_if_nan(_metric_value(metric, labels, probs)),
            "low": none_if_nan(low),
            "high": none_if_nan(high),
            "n_resamples": n_resamples,
            "n_valid": int(valid.size),
            "confidence": float(confidence),
            "stratified": bool(stratify),
        }
        if stratify:
            report[name]["single_lesion_strata"] = single
        if valid.size < n_resamples:
            logger.info(
                "%s undefined in %d of %d resamples", name, n_resamples - valid.size, n_resamples
            )
    logger.info(
        "lesion bootstrap: %d resamples in %.1f s", n_resamples, time.perf_counter() - started
    )
    return report


def _confusion(labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """Confusion counts ``[K, K]`` (rows true, columns predicted) via one bincount."""
    return np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)


def _balanced_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean recall over classes present in labels, as ``balanced_accuracy_score``."""
    cm = _confusion(labels, probs.argmax(axis=1), probs.shape[1])
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def _macro_f1(labels: np.ndarray, probs: np.ndarray) -> float:
    """Macro F1 = 2TP / (2TP + FP + FN) averaged over classes in labels or predictions."""
    cm = _confusion(labels, probs.argmax(axis=1), probs.shape[1])
    tp = np.diag(cm)
    denominator = cm.sum(axis=0) + cm.sum(axis=1)  # = 2TP + FP + FN
    seen = denominator > 0
    return float(np.mean(2 * tp[seen] / denominator[seen]))


def _macro_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """One-vs-rest macro AUC over classes present; NaN with fewer than two present.

    Per class, AUC is the Mann-Whitney U statistic over positives and negatives with ties
    counted 1/2 (Hanley & McNeil 1982), which equals scikit-learn's trapezoidal ROC AUC.
    """
    present = np.flatnonzero(np.bincount(labels, minlength=probs.shape[1]))
    if len(present) < 2:
        return np.nan
    ranks = rankdata(probs[:, present], axis=0)
    aucs = []
    for j, c in enumerate(present):
        positives = labels == c
        n_pos = positives.sum()
        n_neg = len(labels) - n_pos
        aucs.append((ranks[positives, j].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


def standard_bootstrap_metrics(
    classes: Sequence[str], positive_index: int, threshold: float | None = None
) -> dict[str, Metric]:
    """The metrics the report bootstraps, as fast ``metric(labels, probs)`` callables.

    ``melanoma_sensitivity`` and ``melanoma_specificity`` use the argmax rule, or
    ``P(class positive_index) >= threshold`` when a threshold is given; each is NaN (skipped)
    in a resample with no positives (negatives).
    """
    if not 0 <= positive_index < len(classes):
        raise ValueError(f"positive_index {positive_index} is not an index into {list(classes)}")

    def flagged(probs: np.ndarray) -> np.ndarray:
        if threshold is None:
            return probs.argmax(axis=1) == positive_index
        return probs[:, positive_index] >= threshold

    def melanoma_sensitivity(labels: np.ndarray, probs: np.ndarray) -> float:
        positives = labels == positive_index
        return float(flagged(probs[positives]).mean()) if positives.any() else np.nan

    def melanoma_specificity(labels: np.ndarray, probs: np.ndarray) -> float:
        negatives = labels != positive_index
        return float(1.0 - flagged(probs[negatives]).mean()) if negatives.any() else np.nan

    return {
        "balanced_accuracy": _balanced_accuracy,
        "macro_f1": _macro_f1,
        "macro_auc": _macro_auc,
        "melanoma_sensitivity": melanoma_sensitivity,
        "melanoma_specificity": melanoma_specificity,
    }
