"""Evaluation metrics for the 7-class HAM10000 classifier: summary, melanoma, calibration, CIs.

Inputs are integer labels ``[N]`` and probability matrices ``[N, K]`` whose rows sum to 1.
Everything returned is plain JSON-serialisable Python; an undefined value (a 0/0 ratio, an
AUC for a class with no positives) is ``None``, never NaN, and the docstring says when.

scikit-learn computes every metric it has, except inside :func:`standard_bootstrap_metrics`:
there its input checks cost ~17 ms per resample on 1,500 images (17 s for 1,000 resamples),
so those four metrics are recomputed from a confusion matrix and ranks in numpy, and
tests/test_metrics.py checks them against scikit-learn.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

logger = logging.getLogger(__name__)

Metric = Callable[[np.ndarray, np.ndarray], float]

# Probabilities are clipped before log so that a hard 0 gives a finite logit.
PROB_FLOOR = 1e-12
# float32 softmax outputs sum to 1 only to ~1e-6; anything further off is not a distribution.
ROW_SUM_TOLERANCE = 1e-3
# Search range for log T in temperature scaling: T in [0.05, 20] covers any sane network.
LOG_TEMPERATURE_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))


def _none_if_nan(value: float) -> float | None:
    """``float(value)``, or ``None`` where it is NaN (JSON has no NaN)."""
    return None if np.isnan(value) else float(value)


def _check_labels_probs(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate integer labels ``[N]`` against a probability matrix ``[N, K]``; return arrays."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be 1-D integers, got shape {labels.shape} {labels.dtype}")
    if probs.ndim != 2 or len(probs) != len(labels) or len(labels) == 0:
        raise ValueError(f"probs must be [N={len(labels)}, K] with N > 0, got {probs.shape}")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(~np.isfinite(sums) | (np.abs(sums - 1.0) > ROW_SUM_TOLERANCE))
    if bad.size or (probs < 0).any():
        row = int(bad[0]) if bad.size else int(np.argwhere(probs < 0)[0, 0])
        raise ValueError(f"probs row {row} is not a distribution: {probs[row].tolist()}")
    out = np.flatnonzero((labels < 0) | (labels >= probs.shape[1]))
    if out.size:
        raise ValueError(f"label {labels[out[0]]} at row {out[0]} is outside [0, {probs.shape[1]})")
    return labels, probs


def _check_binary(name: str, values: np.ndarray) -> np.ndarray:
    """Return ``values`` as a bool array; raise naming the first value that is not 0/1."""
    values = np.asarray(values)
    bad = np.flatnonzero((values != 0) & (values != 1))
    if values.ndim != 1 or bad.size:
        culprit = f"value {values[bad[0]]} at row {bad[0]}" if bad.size else values.shape
        raise ValueError(f"{name} must be a 1-D array of 0/1, got {culprit}")
    return values.astype(bool)


def classification_summary(
    labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, F1, one-vs-rest AUC, per-class scores and confusion matrix.

    Predictions are the argmax of ``probs``. Undefined values are ``None``: per-class
    precision when the class is never predicted, recall when it has no support, F1 when both;
    AUC for a class with no positives or no negatives in ``labels`` (such classes are
    listed in ``auc_undefined_for`` and left out of ``macro_auc``). ``macro_f1`` averages
    over the classes that occur in ``labels`` or predictions (scikit-learn's default), i.e.
    over the classes whose F1 is not ``None``.

    Args:
        labels: True class indices ``[N]``.
        probs: Class probabilities ``[N, K]``.
        classes: The K class names, in column order.

    Returns:
        A dict of plain floats/ints/lists: accuracy, balanced_accuracy, macro_f1,
        weighted_f1, macro_auc, auc_undefined_for, per_class, confusion_matrix (rows true,
        columns predicted, all K classes), classes and n_samples.
    """
    labels, probs = _check_labels_probs(labels, probs)
    k = probs.shape[1]
    if len(classes) != k:
        raise ValueError(f"got {len(classes)} class names {list(classes)} for {k} columns")
    predicted = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=range(k), zero_division=np.nan
    )
    aucs: list[float | None] = []
    for c in range(k):
        positives = labels == c
        # ROC AUC needs both positives and negatives (Fawcett 2006, Sec. 7).
        defined = 0 < positives.sum() < len(labels)
        aucs.append(float(roc_auc_score(positives, probs[:, c])) if defined else None)
    defined_aucs = [a for a in aucs if a is not None]
    with warnings.catch_warnings():
        # Balanced accuracy averages recall over classes in labels (Brodersen et al. 2010);
        # a predicted class absent from labels is expected here, not worth a warning.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(labels, predicted)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, predicted, average="weighted", zero_division=0)),
        "macro_auc": float(np.mean(defined_aucs)) if defined_aucs else None,
        "auc_undefined_for": [name for name, a in zip(classes, aucs) if a is None],
        "per_class": {
            name: {
                "precision": _none_if_nan(precision[c]),
                "recall": _none_if_nan(recall[c]),
                "f1": _none_if_nan(f1[c]),
                "support": int(support[c]),
                "auc": aucs[c],
            }
            for c, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=range(k)).tolist(),
        "classes": list(classes),
        "n_samples": len(labels),
    }


def sensitivity_specificity(
    labels_binary: np.ndarray, predicted_binary: np.ndarray
) -> tuple[float | None, float | None]:
    """Sensitivity TP/(TP+FN) and specificity TN/(TN+FP); ``None`` with no positives/negatives."""
    truth = _check_binary("labels_binary", labels_binary)
    predicted = _check_binary("predicted_binary", predicted_binary)
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labels but {len(predicted)} predictions")
    tn, fp, fn, tp = confusion_matrix(truth, predicted, labels=[False, True]).ravel()
    sensitivity = float(tp / (tp + fn)) if tp + fn else None
    specificity = float(tn / (tn + fp)) if tn + fp else None
    return sensitivity, specificity


def threshold_for_sensitivity(
    labels_binary: np.ndarray, scores: np.ndarray, target: float
) -> float:
    """The largest ``t`` such that ``scores >= t`` has sensitivity ``>= target`` on these data.

    Sensitivity only changes at a positive's score, so ``t`` is the score of the m-th highest
    positive, m the fewest positives whose share m/P reaches ``target`` (computed as the same
    float ratio as the sensitivity itself, so 0.7 * 10 needs 7 positives, not 8).

    Args:
        labels_binary: 1 for a positive (melanoma), 0 otherwise ``[N]``; validation data.
        scores: Score of each row ``[N]``, higher meaning more likely positive.
        target: Sensitivity to reach, in (0, 1].

    Raises:
        ValueError: If ``target`` is not in (0, 1], or there are no positives.
    """
    truth = _check_binary("labels_binary", labels_binary)
    scores = np.asarray(scores, dtype=np.float64)
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    if scores.shape != truth.shape or not np.isfinite(scores).all():
        raise ValueError(f"scores must be finite with shape {truth.shape}, got {scores.shape}")
    positive_scores = np.sort(scores[truth])[::-1]
    n_pos = len(positive_scores)
    if n_pos == 0:
        raise ValueError(f"no positives in labels_binary: no threshold reaches target {target}")
    reached = np.arange(1, n_pos + 1) / n_pos >= target
    return float(positive_scores[np.argmax(reached)])


def melanoma_summary(
    val_labels: np.ndarray,
    val_probs: np.ndarray,
    test_labels: np.ndarray,
    test_probs: np.ndarray,
    *,
    positive_index: int,
    target_sensitivity: float = 0.90,
) -> dict[str, Any]:
    """Melanoma-vs-rest sensitivity and specificity at argmax and at a validated threshold.

    The threshold on P(mel) is chosen on validation data only (the largest reaching
    ``target_sensitivity`` there) and then applied unchanged to test, so the test numbers
    are an honest estimate of what the rule achieves. Sensitivity/specificity are ``None``
    where a split has no melanomas/no non-melanomas.

    Args:
        val_labels: Validation class indices ``[N_val]``; the threshold is chosen here.
        val_probs: Validation probabilities ``[N_val, K]``.
        test_labels: Test class indices ``[N_test]``; only evaluated, never used to choose.
        test_probs: Test probabilities ``[N_test, K]``.
        positive_index: Column of melanoma.
        target_sensitivity: Validation sensitivity the threshold must reach.

    Returns:
        ``{"argmax": {...}, "validated_threshold": {...}}`` of plain floats and strings.
    """
    val_labels, val_probs = _check_labels_probs(val_labels, val_probs)
    test_labels, test_probs = _check_labels_probs(test_labels, test_probs)
    k = val_probs.shape[1]
    if test_probs.shape[1] != k or not 0 <= positive_index < k:
        raise ValueError(
            f"positive_index {positive_index} must index the same K columns of val probs "
            f"{val_probs.shape} and test probs {test_probs.shape}"
        )
    val_truth, test_truth = val_labels == positive_index, test_labels == positive_index
    threshold = threshold_for_sensitivity(
        val_truth, val_probs[:, positive_index], target_sensitivity
    )
    argmax_sens, argmax_spec = sensitivity_specificity(
        test_truth, test_probs.argmax(axis=1) == positive_index
    )
    val_sens, val_spec = sensitivity_specificity(
        val_truth, val_probs[:, positive_index] >= threshold
    )
    test_sens, test_spec = sensitivity_specificity(
        test_truth, test_probs[:, positive_index] >= threshold
    )
    logger.info(
        "P(mel) threshold %.4f for sensitivity >= %.2f on validation: test sens %s spec %s",
        threshold,
        target_sensitivity,
        test_sens,
        test_spec,
    )
    return {
        "argmax": {
            "sensitivity": argmax_sens,
            "specificity": argmax_spec,
            "rule": "predicted class == mel (argmax of the 7 probabilities)",
        },
        "validated_threshold": {
            "threshold": threshold,
            "target_sensitivity": float(target_sensitivity),
            "chosen_on": "validation",
            "val_sensitivity": val_sens,
            "val_specificity": val_spec,
            "sensitivity": test_sens,
            "specificity": test_spec,
            "rule": "P(mel) >= threshold",
        },
    }


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log(p) / T)`` (Guo et al. 2017, Sec. 4.2).

    Softmax is shift-invariant, so log-probabilities stand in for the logits exactly.
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), PROB_FLOOR, 1.0))
    return softmax(logits / temperature, axis=1)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the NLL of ``softmax(log(p) / T)`` on these data.

    Temperature scaling (Guo et al. 2017, Sec. 4.2): one scalar fitted on validation data,
    searched over log T (bounded, so T stays positive) with ``minimize_scalar``.
    """
    labels, probs = _check_labels_probs(labels, probs)
    logits = np.log(np.clip(probs, PROB_FLOOR, 1.0))
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, labels].mean())

    result = minimize_scalar(nll, bounds=LOG_TEMPERATURE_BOUNDS, method="bounded")
    temperature = float(np.exp(result.x))
    if min(abs(result.x - b) for b in LOG_TEMPERATURE_BOUNDS) < 1e-3:
        logger.warning("fitted temperature %.4g is at its search bound", temperature)
    logger.info("temperature %.4f: NLL %.4f -> %.4f", temperature, nll(0.0), result.fun)
    return temperature


def reliability_bins(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    """Top-label confidence vs accuracy in equal-width bins, for a reliability diagram.

    Bin m is (lower, upper] as in Guo et al. 2017, Sec. 2 (the first bin also takes 0).
    ``mean_confidence`` and ``accuracy`` are ``None`` for empty bins. ``ece`` is Eq. 3
    of Guo et al. (Naeini et al. 2015): sum over bins of count/N * |accuracy - confidence|.
    """
    labels, probs = _check_labels_probs(labels, probs)
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    conf_sums = np.bincount(index, weights=confidence, minlength=n_bins)
    correct_sums = np.bincount(index, weights=correct, minlength=n_bins)
    bins = []
    for m in range(n_bins):
        filled = counts[m] > 0
        bins.append(
            {
                "lower": float(edges[m]),
                "upper": float(edges[m + 1]),
                "count": int(counts[m]),
                "mean_confidence": float(conf_sums[m] / counts[m]) if filled else None,
                "accuracy": float(correct_sums[m] / counts[m]) if filled else None,
            }
        )
    ece = float(np.abs(correct_sums - conf_sums).sum() / len(labels))
    return {"n_bins": n_bins, "n_samples": len(labels), "ece": ece, "bins": bins}


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al. 2017, Eq. 3; Naeini 2015)."""
    return reliability_bins(labels, probs, n_bins)["ece"]


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
) -> dict[str, np.ndarray]:
    """Each metric on ``n_resamples`` lesion-level bootstrap resamples (NaN where undefined).

    A resample draws as many groups as there are, with replacement, and takes all rows of
    each (a group drawn twice counts twice): the cluster bootstrap (Davison & Hinkley 1997,
    Sec. 3.8), since images of one lesion are not independent.
    """
    labels, probs = _check_labels_probs(labels, probs)
    groups = np.asarray(groups)
    if groups.shape != labels.shape:
        raise ValueError(f"groups must have shape {labels.shape}, got {groups.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    _, group_of_row = np.unique(groups, return_inverse=True)
    rows_by_group = np.argsort(group_of_row, kind="stable")
    sizes = np.bincount(group_of_row)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    draws = np.random.default_rng(seed).integers(0, len(sizes), size=(n_resamples, len(sizes)))
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


def lesion_bootstrap(
    labels: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray,
    metrics: Mapping[str, Metric],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
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
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    started = time.perf_counter()
    values = bootstrap_distribution(
        labels, probs, groups, metrics, n_resamples=n_resamples, seed=seed
    )
    labels, probs = _check_labels_probs(labels, probs)
    tail = 100.0 * (1.0 - confidence) / 2.0
    report = {}
    for name, metric in metrics.items():
        valid = values[name][np.isfinite(values[name])]
        low, high = np.percentile(valid, [tail, 100.0 - tail]) if valid.size else (np.nan,) * 2
        report[name] = {
            "estimate": _none_if_nan(_metric_value(metric, labels, probs)),
            "low": _none_if_nan(low),
            "high": _none_if_nan(high),
            "n_resamples": n_resamples,
            "n_valid": int(valid.size),
            "confidence": float(confidence),
        }
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
    """The four metrics the report bootstraps, as fast ``metric(labels, probs)`` callables.

    ``melanoma_sensitivity`` uses the argmax rule, or ``P(class positive_index) >= threshold``
    when a threshold is given; it is NaN (skipped) in a resample with no positives.
    """
    if not 0 <= positive_index < len(classes):
        raise ValueError(f"positive_index {positive_index} is not an index into {list(classes)}")

    def melanoma_sensitivity(labels: np.ndarray, probs: np.ndarray) -> float:
        positives = labels == positive_index
        if not positives.any():
            return np.nan
        if threshold is None:
            flagged = probs[positives].argmax(axis=1) == positive_index
        else:
            flagged = probs[positives, positive_index] >= threshold
        return float(flagged.mean())

    return {
        "balanced_accuracy": _balanced_accuracy,
        "macro_f1": _macro_f1,
        "macro_auc": _macro_auc,
        "melanoma_sensitivity": melanoma_sensitivity,
    }
