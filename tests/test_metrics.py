"""Tests for skin_lesion.metrics: agreement with scikit-learn, hand-computed and analytic cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import log_softmax, softmax
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from skin_lesion.metrics import (
    apply_temperature,
    bootstrap_distribution,
    classification_summary,
    expected_calibration_error,
    fit_temperature,
    lesion_bootstrap,
    melanoma_summary,
    reliability_bins,
    sensitivity_specificity,
    standard_bootstrap_metrics,
    threshold_for_sensitivity,
)

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
MEL = CLASSES.index("mel")


def noisy_predictions(n: int, seed: int, absent: tuple[int, ...] = ()) -> tuple:
    """Labels over the 7 classes (minus ``absent``) and probabilities that mostly agree."""
    rng = np.random.default_rng(seed)
    allowed = np.setdiff1d(np.arange(len(CLASSES)), absent)
    labels = rng.choice(allowed, size=n)
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), labels] += 1.5
    return labels, softmax(logits, axis=1)


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


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
    assert threshold == 0.3
    sensitivity, _ = sensitivity_specificity(truth, scores >= threshold)
    assert sensitivity >= 0.75
    assert threshold_for_sensitivity(truth, scores, 1.0) == 0.2
    assert threshold_for_sensitivity(truth, scores, 0.25) == 0.9
    # 0.7 * 10 is 7.000000000000001 in floats; 7 of 10 positives must still be enough.
    ten = np.arange(10, 0, -1) / 10
    assert threshold_for_sensitivity(np.ones(10), ten, 0.7) == 0.4


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
    assert set(summary["argmax"]) == {"sensitivity", "specificity", "rule"}
    assert set(rule) == {
        "threshold",
        "target_sensitivity",
        "chosen_on",
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


def mean_nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(probs[np.arange(len(labels)), labels]).mean())


def test_fit_temperature_recovers_known_temperature() -> None:
    rng = np.random.default_rng(6)
    logits = rng.normal(scale=3.0, size=(5000, 7))
    true_probs = softmax(logits / 2.0, axis=1)
    labels = (rng.random((5000, 1)) > true_probs.cumsum(axis=1)).sum(axis=1)
    overconfident = softmax(logits, axis=1)
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(2.0, rel=0.1)
    calibrated = apply_temperature(overconfident, temperature)
    assert mean_nll(calibrated, labels) < mean_nll(overconfident, labels) - 0.05
    assert np.allclose(calibrated.sum(axis=1), 1.0)


def test_apply_temperature_identity_and_errors() -> None:
    _, probs = noisy_predictions(20, seed=7)
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, rtol=1e-10)
    flatter = apply_temperature(probs, 3.0)
    np.testing.assert_allclose(flatter, softmax(log_softmax(np.log(probs), axis=1) / 3, axis=1))
    assert (flatter.max(axis=1) < probs.max(axis=1)).all()
    with pytest.raises(ValueError, match="-1"):
        apply_temperature(probs, -1.0)


def test_ece_near_zero_when_calibrated() -> None:
    rng = np.random.default_rng(8)
    probs = rng.dirichlet(np.ones(7) * 0.5, size=20000)
    labels = (rng.random((20000, 1)) > probs.cumsum(axis=1)).sum(axis=1)
    assert expected_calibration_error(labels, probs) < 0.02


def test_ece_two_bins_hand_computed() -> None:
    probs = np.array(
        [
            [0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3],  # bin (0.5, 1]: correct
            [0.1, 0.7, 0.1, 0.1],  # bin (0.5, 1]: wrong -> acc 0.5, conf 0.8
            [0.4, 0.2, 0.2, 0.2],  # bin [0, 0.5]: correct
            [0.2, 0.4, 0.2, 0.2],  # bin [0, 0.5]: wrong -> acc 0.5, conf 0.4
        ]
    )
    labels = np.array([0, 0, 0, 0])
    # 2/4 * |0.5 - 0.8| + 2/4 * |0.5 - 0.4|
    assert expected_calibration_error(labels, probs, n_bins=2) == pytest.approx(0.2, abs=1e-12)
    bins = reliability_bins(labels, probs, n_bins=2)["bins"]
    assert [b["count"] for b in bins] == [2, 2]
    assert bins[1]["mean_confidence"] == pytest.approx(0.8)
    assert bins[0]["accuracy"] == 0.5


def test_reliability_bins_counts_and_empty_bins() -> None:
    labels, probs = noisy_predictions(123, seed=9)
    report = reliability_bins(labels, probs, n_bins=15)
    assert sum(b["count"] for b in report["bins"]) == 123
    assert report["bins"][0] == {
        "lower": 0.0,
        "upper": pytest.approx(1 / 15),
        "count": 0,
        "mean_confidence": None,
        "accuracy": None,
    }  # top-label confidence is at least 1/7 > 1/15
    json.dumps(report, allow_nan=False)
    with pytest.raises(ValueError, match="0"):
        reliability_bins(labels, probs, n_bins=0)


def test_bootstrap_all_correct_gives_point_interval() -> None:
    labels, _ = noisy_predictions(60, seed=10)
    probs = np.eye(7)[labels]
    groups = np.arange(60) // 3
    report = lesion_bootstrap(
        labels, probs, groups, standard_bootstrap_metrics(CLASSES, MEL), n_resamples=200
    )
    for name in ("balanced_accuracy", "macro_f1", "macro_auc", "melanoma_sensitivity"):
        assert report[name]["estimate"] == 1.0
        assert (report[name]["low"], report[name]["high"]) == (1.0, 1.0)


def two_lesions_one_right_one_wrong(images_each: int = 5) -> tuple:
    labels = np.zeros(2 * images_each, dtype=int)
    probs = np.tile([0.9, 0.1], (2 * images_each, 1))
    probs[images_each:] = [0.1, 0.9]
    groups = np.repeat(["lesion_a", "lesion_b"], images_each)
    return labels, probs, groups


def test_bootstrap_two_lesions_analytic_distribution() -> None:
    labels, probs, groups = two_lesions_one_right_one_wrong()
    values = bootstrap_distribution(
        labels, probs, groups, {"accuracy": accuracy}, n_resamples=4000, seed=1
    )["accuracy"]
    assert set(np.unique(values)) == {0.0, 0.5, 1.0}
    shares = [np.mean(values == v) for v in (0.0, 0.5, 1.0)]
    np.testing.assert_allclose(shares, [0.25, 0.5, 0.25], atol=0.03)
    report = lesion_bootstrap(labels, probs, groups, {"accuracy": accuracy}, n_resamples=4000)
    assert report["accuracy"] == {
        "estimate": 0.5,
        "low": 0.0,
        "high": 1.0,
        "n_resamples": 4000,
        "n_valid": 4000,
        "confidence": 0.95,
    }


def test_bootstrap_duplicates_a_lesion_drawn_twice() -> None:
    labels = np.zeros(4, dtype=int)
    probs = np.tile([0.6, 0.4], (4, 1))
    groups = np.array([7, 3, 3, 3])  # lesion 7 has one image, lesion 3 three
    sizes = bootstrap_distribution(
        labels, probs, groups, {"n": lambda y, p: len(y)}, n_resamples=200
    )["n"]
    assert set(np.unique(sizes)) == {2.0, 4.0, 6.0}


def test_bootstrap_resamples_lesions_not_images() -> None:
    # 10 lesions of 10 identical images, half right, half wrong; then the same 100 images
    # as 100 lesions. Accuracy ~ Binomial(10)/10 vs Binomial(100)/100: ~3x wider interval.
    labels = np.zeros(100, dtype=int)
    probs = np.tile([0.9, 0.1], (100, 1))
    probs[50:] = [0.1, 0.9]
    grouped = lesion_bootstrap(labels, probs, np.arange(100) // 10, {"accuracy": accuracy})
    per_image = lesion_bootstrap(labels, probs, np.arange(100), {"accuracy": accuracy})
    width = grouped["accuracy"]["high"] - grouped["accuracy"]["low"]
    image_width = per_image["accuracy"]["high"] - per_image["accuracy"]["low"]
    assert grouped["accuracy"]["estimate"] == per_image["accuracy"]["estimate"] == 0.5
    assert width > 2 * image_width
    assert width == pytest.approx(0.6, abs=0.11)  # Binomial(10, 0.5)/10: [0.2, 0.8]


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    labels, probs = noisy_predictions(80, seed=11)
    groups = np.arange(80) // 2
    metrics = standard_bootstrap_metrics(CLASSES, MEL)
    first = lesion_bootstrap(labels, probs, groups, metrics, n_resamples=50, seed=3)
    assert lesion_bootstrap(labels, probs, groups, metrics, n_resamples=50, seed=3) == first
    assert lesion_bootstrap(labels, probs, groups, metrics, n_resamples=50, seed=4) != first


def test_bootstrap_skips_and_counts_undefined_resamples() -> None:
    # Only lesion 0 has melanomas (both detected): sensitivity is undefined whenever it is not
    # drawn, P = (1 - 1/2)^2 = 1/4, and exactly 1 whenever it is.
    labels = np.array([MEL, MEL, 0, 0])
    probs = np.eye(7)[labels]
    groups = np.array([0, 0, 1, 1])
    metrics = standard_bootstrap_metrics(CLASSES, MEL)
    report = lesion_bootstrap(labels, probs, groups, metrics, n_resamples=2000)
    sensitivity = report["melanoma_sensitivity"]
    assert sensitivity["n_valid"] == pytest.approx(1500, abs=80)
    assert (sensitivity["low"], sensitivity["high"]) == (1.0, 1.0)
    # macro_auc needs two classes: the same resamples that drew one lesion twice are skipped.
    assert report["macro_auc"]["n_valid"] == pytest.approx(1000, abs=90)
    assert report["macro_auc"]["high"] == 1.0
    no_mel = lesion_bootstrap(labels[2:], probs[2:], groups[2:], metrics, n_resamples=20)
    assert no_mel["melanoma_sensitivity"] == {
        "estimate": None,
        "low": None,
        "high": None,
        "n_resamples": 20,
        "n_valid": 0,
        "confidence": 0.95,
    }
    json.dumps(report, allow_nan=False)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_standard_bootstrap_metrics_match_sklearn() -> None:
    labels, probs = noisy_predictions(250, seed=12, absent=(CLASSES.index("df"),))
    probs = np.round(probs, 2)  # ties, which AUC must count as 1/2
    probs /= probs.sum(axis=1, keepdims=True)
    predicted = probs.argmax(axis=1)
    metrics = standard_bootstrap_metrics(CLASSES, MEL)
    present = np.unique(labels)
    assert metrics["balanced_accuracy"](labels, probs) == pytest.approx(
        balanced_accuracy_score(labels, predicted)
    )
    assert metrics["macro_f1"](labels, probs) == pytest.approx(
        f1_score(labels, predicted, average="macro")
    )
    assert metrics["macro_auc"](labels, probs) == pytest.approx(
        np.mean([roc_auc_score(labels == c, probs[:, c]) for c in present])
    )
    mel = labels == MEL
    assert metrics["melanoma_sensitivity"](labels, probs) == pytest.approx(
        np.mean(predicted[mel] == MEL)
    )
    at_threshold = standard_bootstrap_metrics(CLASSES, MEL, threshold=0.2)
    assert at_threshold["melanoma_sensitivity"](labels, probs) == pytest.approx(
        np.mean(probs[mel, MEL] >= 0.2)
    )
    assert np.isnan(metrics["macro_auc"](np.zeros(5, dtype=int), probs[:5]))
    with pytest.raises(ValueError, match="positive_index 7"):
        standard_bootstrap_metrics(CLASSES, 7)


def test_reliability_bins_edges_close_on_the_right() -> None:
    # Bins are (lower, upper] (Guo et al. 2017, Sec. 2): 0.5 is in the first of two bins.
    probs = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.6, 0.2, 0.2]])
    counts = [b["count"] for b in reliability_bins(np.zeros(3, dtype=int), probs, 2)["bins"]]
    assert counts == [1, 2]
