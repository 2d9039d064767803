"""Evaluation metrics for the 7-class HAM10000 classifier: summary and melanoma operating point.

Inputs are integer labels ``[N]`` and probability matrices ``[N, K]`` whose rows sum to 1.
Everything returned is plain JSON-serialisable Python; an undefined value (a 0/0 ratio, an
AUC for a class with no positives) is ``None``, never NaN, and the docstring says when.
Calibration lives in :mod:`skin_lesion.calibration`, lesion-bootstrap intervals in
:mod:`skin_lesion.bootstrap`; both check their inputs with :func:`check_labels_probs`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

logger = logging.getLogger(__name__)

# float32 softmax outputs sum to 1 only to ~1e-6; anything further off is not a distribution.
ROW_SUM_TOLERANCE = 1e-3


def none_if_nan(value: float) -> float | None:
    """``float(value)``, or ``None`` where it is NaN (JSON has no NaN)."""
    return None if np.isnan(value) else float(value)


def check_labels_probs(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    labels, probs = check_labels_probs(labels, probs)
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
                "precision": none_if_nan(precision[c]),
                "recall": none_if_nan(recall[c]),
                "f1": none_if_nan(f1[c]),
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
    """A threshold ``t`` at which ``scores >= t`` has the fewest positives calls that reach
    sensitivity ``>= target`` on these data, placed in the gap below the last one it keeps.

    Sensitivity only changes at a positive's score: the rule keeps the m highest positives, m
    the fewest whose share m/P reaches ``target`` (computed as the same float ratio as the
    sensitivity itself, so 0.7 * 10 needs 7 positives, not 8). ``t`` lies halfway between the
    m-th positive's score and the next lower score of any row, which calls exactly the rows
    the m-th positive's own score would, but leaves a margin: a score that moves by float
    noise (a CSV round trip, another batch size, device or TTA order) does not cross it, so
    inference on the same images flags the same ones. With no lower score, ``t`` is the m-th
    positive's score.

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
    last_kept = positive_scores[np.argmax(reached)]
    below = scores[scores < last_kept]
    if below.size == 0:
        return float(last_kept)
    next_lower = below.max()
    midpoint = (last_kept + next_lower) / 2
    # Adjacent floats have no float between them: the midpoint rounds to one of the two, and
    # at the lower one the rule would call that row too.
    return float(midpoint if midpoint > next_lower else last_kept)


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

    The threshold on P(mel) is chosen on validation data only (the fewest melanoma calls
    reaching ``target_sensitivity`` there, :func:`threshold_for_sensitivity`) and then applied
    unchanged to test, so the test numbers
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
    val_labels, val_probs = check_labels_probs(val_labels, val_probs)
    test_labels, test_probs = check_labels_probs(test_labels, test_probs)
    k = val_probs.shape[1]
    if test_probs.shape[1] != k or not 0 <= positive_index < k:
        raise ValueError(
            f"positive_index {positive_index} must index the same K columns of val probs "
            f"{val_probs.shape} and test probs {test_probs.shape}"
        )
    val_truth, test_truth = val_labels == positive_index, test_labels == positive_index
    if not val_truth.any():
        raise ValueError(
            f"the validation split has no image of the positive class (index {positive_index}, "
            "melanoma): no threshold on P(mel) can be chosen there for a sensitivity of "
            f"{target_sensitivity}; validation must hold melanomas (the split node refuses "
            "a split without every class)"
        )
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
            "evaluated_on": "test",
            "rule": "predicted class == mel (argmax of the 7 probabilities)",
        },
        "validated_threshold": {
            "threshold": threshold,
            "target_sensitivity": float(target_sensitivity),
            "chosen_on": "validation",
            "val_sensitivity": val_sens,
            "val_specificity": val_spec,
            # sensitivity and specificity below are the test split's, as in argmax.
            "evaluated_on": "test",
            "sensitivity": test_sens,
            "specificity": test_spec,
            "rule": "P(mel) >= threshold",
        },
    }
