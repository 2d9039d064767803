"""Tests for skin_lesion.metrics: agreement with scikit-learn, hand-computed and analytic cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from skin_lesion.metrics import (
    classification_summary,
    melanoma_summary,
    sensitivity_specificity,
    threshold_for_sensitivity,
)
from tests.predictions import CLASSES, MEL, noisy_predictions


def test_classification_summary_matches_sklearn() -> None:
    labels, probs = noisy_predictions(300, seed=0)
    predicted = probs.argmax(axis=1)
    summary = classification_summary(labels, probs, CLASSES)

    assert summary["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert summary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert summary["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert summary["weighted_f1"] == pytest.approx(f1_score(labels, predicted, average="weighted"))
    assert summary["macro_auc"] == pytest.approx(
        roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    )
    assert summary["auc_undefined_for"] == []
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=range(len(CLASSES))
    )
    for c, name in enumerate(CLASSES):
        row = summary["per_class"][name]
        assert row["precision"] == pytest.approx(precision[c])
        assert row["recall"] == pytest.approx(recall[c])
        assert row["f1"] == pytest.approx(f1[c])
        assert row["support"] == support[c]
        assert row["auc"] == pytest.approx(roc_auc_score(labels == c, probs[:, c]))
    expected_cm = confusion_matrix(labels, predicted, labels=range(len(CLASSES)))
    assert summary["confusion_matrix"] == expected_cm.tolist()
    json.dumps(summary, allow_nan=False)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_classification_summary_absent_class_has_no_auc() -> None:
    df = CLASSES.index("df")
    labels, probs = noisy_predictions(200, seed=1, absent=(df,))
    probs[0] = np.eye(len(CLASSES))[df]  # predict the absent class once: precision 0
    predicted = probs.argmax(axis=1)
    summary = classification_summary(labels, probs, CLASSES)

    assert summary["auc_undefined_for"] == ["df"]
    assert summary["per_class"]["df"] == {
        "precision": 0.0,
        "recall": None,
        "f1": 0.0,
        "support": 0,
        "auc": None,
    }
    present = [c for c in range(len(CLASSES)) if c != df]
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in present])
    assert summary["macro_auc"] == pytest.approx(expected)
    assert summary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert np.array(summary["confusion_matrix"]).shape == (7, 7)
    assert summary["confusion_matrix"][df] == [0] * 7
    json.dumps(summary, allow_nan=False)


def test_classification_summary_names_bad_inputs() -> None:
    labels, probs = noisy_predictions(10, seed=2)
    with pytest.raises(ValueError, match="label 9 at row 3"):
        classification_summary(np.where(np.arange(10) == 3, 9, labels), probs, CLASSES)
    bad = probs.copy()
    bad[4] *= 2
    with pytest.raises(ValueError, match="row 4"):
        classification_summary(labels, bad, CLASSES)
    with pytest.raises(ValueError, match="6 class names"):
        classification_summary(labels, probs, CLASSES[:6])


def test_sensitivity_specificity_hand_computed() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    predicted = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0])
    assert sensitivity_specificity(truth, predicted) == (0.75, 0.8)
    assert sensitivity_specificity(np.zeros(3), np.array([0, 1, 0])) == (None, pytest.approx(2 / 3))
    assert sensitivity_specificity(np.ones(2), np.array([1, 0])) == (0.5, None)
    with pytest.raises(ValueError, match="value 2"):
        sensitivity_specificity(np.array([0, 2]), np.array([0, 1]))


def test_threshold_for_sensitivity_hand_made() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.5, 0.1, 0.35])
    threshold = threshold_for_sensitivity(truth, scores, 0.75)
    # Keeps positives 0.9, 0.8, 0.3; halfway between 0.3 and the next lower score, 0.2.
    assert threshold == pytest.approx(0.25)
    sensitivity, specificity = sensitivity_specificity(truth, scores >= threshold)
    assert (sensitivity, specificity) == sensitivity_specificity(truth, scores >= 0.3)
    assert sensitivity >= 0.75
    assert threshold_for_sensitivity(truth, scores, 1.0) == pytest.approx(0.15)
    assert threshold_for_sensitivity(truth, scores, 0.25) == pytest.approx(0.85)
    # 0.7 * 10 is 7.000000000000001 in floats; 7 of 10 positives must still be enough.
    ten = np.arange(10, 0, -1) / 10
    assert threshold_for_sensitivity(np.ones(10), ten, 0.7) == pytest.approx(0.35)
    # Nothing scores below the last positive kept: the threshold is its score.
    assert threshold_for_sensitivity(np.array([0, 1]), np.array([0.9, 0.2]), 1.0) == 0.2


def test_threshold_for_sensitivity_between_adjacent_floats_calls_no_lower_row() -> None:
    # No float lies between 0.3 and the next one down: the midpoint rounds onto the lower
    # score, which the rule would then call too; the kept positive's own score does not.
    lower = np.nextafter(0.3, 0.0)
    truth, scores = np.array([1, 0]), np.array([0.3, lower])
    threshold = threshold_for_sensitivity(truth, scores, 1.0)
    assert threshold == 0.3
    assert (scores >= threshold).tolist() == [True, False]


def test_threshold_for_sensitivity_survives_float_noise_in_the_scores() -> None:
    """Inference recomputes validation scores in float32 (reporting read them from a CSV):
    scores that move by 1e-7 must not cross the threshold, as they did when it sat exactly
    on the last melanoma's score."""
    generator = np.random.default_rng(0)
    flipped = 0
    for _ in range(200):
        truth = generator.random(300) < 0.15
        scores = np.clip(generator.normal(0.3 + 0.3 * truth, 0.2), 0, 1)
        threshold = threshold_for_sensitivity(truth, scores, 0.9)
        noisy = scores + generator.uniform(-1e-7, 1e-7, scores.shape)
        flipped += not np.array_equal(scores >= threshold, noisy >= threshold)
    assert flipped == 0


@pytest.mark.parametrize("target", [0.0, 1.5, -0.1])
def test_threshold_for_sensitivity_rejects_target(target: float) -> None:
    with pytest.raises(ValueError, match=str(target)):
        threshold_for_sensitivity(np.array([0, 1]), np.array([0.2, 0.8]), target)


def test_threshold_for_sensitivity_needs_positives() -> None:
    with pytest.raises(ValueError, match=r"no positives.*0\.9"):
        threshold_for_sensitivity(np.array([0, 0]), np.array([0.2, 0.8]), 0.9)


def test_melanoma_summary_threshold_comes_from_validation() -> None:
    val_labels, val_probs = noisy_predictions(200, seed=3)
    test_labels, test_probs = noisy_predictions(150, seed=4)
    summary = melanoma_summary(val_labels, val_probs, test_labels, test_probs, positive_index=MEL)
    rule = summary["validated_threshold"]
    assert set(summary["argmax"]) == {"sensitivity", "specificity", "evaluated_on", "rule"}
    # The unprefixed sensitivity and specificity are the test split's, and say so.
    assert summary["argmax"]["evaluated_on"] == rule["evaluated_on"] == "test"
    assert set(rule) == {
        "threshold",
        "target_sensitivity",
        "chosen_on",
        "evaluated_on",
        "val_sensitivity",
        "val_specificity",
        "sensitivity",
        "specificity",
        "rule",
    }
    assert rule["threshold"] == threshold_for_sensitivity(val_labels == MEL, val_probs[:, MEL], 0.9)
    assert rule["val_sensitivity"] >= 0.9
    expected = sensitivity_specificity(test_labels == MEL, test_probs[:, MEL] >= rule["threshold"])
    assert (rule["sensitivity"], rule["specificity"]) == expected
    argmax = sensitivity_specificity(test_labels == MEL, test_probs.argmax(axis=1) == MEL)
    assert (summary["argmax"]["sensitivity"], summary["argmax"]["specificity"]) == argmax

    other_labels, other_probs = noisy_predictions(90, seed=5)
    other = melanoma_summary(val_labels, val_probs, other_labels, other_probs, positive_index=MEL)
    assert other["validated_threshold"]["threshold"] == rule["threshold"]
    assert other["validated_threshold"]["sensitivity"] != rule["sensitivity"]
    json.dumps(summary, allow_nan=False)


def test_melanoma_summary_without_validation_melanomas_names_the_split() -> None:
    val_labels, val_probs = noisy_predictions(200, seed=3)
    test_labels, test_probs = noisy_predictions(150, seed=4)
    keep = val_labels != MEL
    with pytest.raises(ValueError, match=r"validation split has no image of the positive class"):
        melanoma_summary(
            val_labels[keep], val_probs[keep], test_labels, test_probs, positive_index=MEL
        )
