"""Tests for skin_lesion.bootstrap: analytic resampling cases and agreement with scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from skin_lesion.bootstrap import (
    bootstrap_distribution,
    lesion_bootstrap,
    standard_bootstrap_metrics,
)
from tests.predictions import CLASSES, MEL, accuracy, noisy_predictions


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
        "stratified": False,
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
        "stratified": False,
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
    assert metrics["melanoma_specificity"](labels, probs) == pytest.approx(
        np.mean(predicted[~mel] != MEL)
    )
    at_threshold = standard_bootstrap_metrics(CLASSES, MEL, threshold=0.2)
    assert at_threshold["melanoma_sensitivity"](labels, probs) == pytest.approx(
        np.mean(probs[mel, MEL] >= 0.2)
    )
    assert at_threshold["melanoma_specificity"](labels, probs) == pytest.approx(
        np.mean(probs[~mel, MEL] < 0.2)
    )
    only_mel = np.full(5, MEL)
    assert np.isnan(metrics["melanoma_specificity"](only_mel, probs[:5]))
    assert np.isnan(metrics["macro_auc"](np.zeros(5, dtype=int), probs[:5]))
    with pytest.raises(ValueError, match="positive_index 7"):
        standard_bootstrap_metrics(CLASSES, 7)


def class_counts(labels: np.ndarray, probs: np.ndarray) -> float:
    """The resample's images per class, packed into one number (base 1000)."""
    return float(np.bincount(labels, minlength=7) @ (1000.0 ** np.arange(7)))


def test_stratified_bootstrap_keeps_every_class_in_every_resample() -> None:
    # 30 lesions of one image: 25 nv, 4 mel, 1 df. A plain resample lacks df in about
    # (29/30)^30 = 36% of draws, and a macro metric then averages over the classes left;
    # stratified, each resample holds 25 nv, 4 mel and 1 df lesion.
    nv, df = CLASSES.index("nv"), CLASSES.index("df")
    labels = np.array([nv] * 25 + [MEL] * 4 + [df])
    probs = np.eye(7)[labels]
    groups = np.arange(30)
    plain = bootstrap_distribution(
        labels, probs, groups, {"counts": class_counts}, n_resamples=500, seed=0
    )["counts"]
    stratified = bootstrap_distribution(
        labels, probs, groups, {"counts": class_counts}, n_resamples=500, seed=0, stratify=True
    )["counts"]
    assert np.all(stratified == class_counts(labels, probs))
    assert 0.25 < np.mean(plain != class_counts(labels, probs)) < 1.0
    # ... yet it still resamples lesions: which mel lesions are drawn varies.
    probs[labels == MEL] = np.eye(7)[nv]  # two of the four melanomas missed
    probs[np.flatnonzero(labels == MEL)[2:]] = np.eye(7)[MEL]
    report = lesion_bootstrap(
        labels, probs, groups, standard_bootstrap_metrics(CLASSES, MEL), stratify=True
    )
    assert report["melanoma_sensitivity"]["low"] == 0.0
    assert report["melanoma_sensitivity"]["high"] == 1.0
    assert report["balanced_accuracy"]["n_valid"] == 1000
    assert report["balanced_accuracy"]["stratified"] is True
    # The one df lesion is redrawn as itself every time: counted, so the report can say so.
    assert report["balanced_accuracy"]["single_lesion_strata"] == 1
    two_df = np.append(labels, df), np.vstack([probs, np.eye(7)[df]]), np.arange(31)
    many = lesion_bootstrap(*two_df, standard_bootstrap_metrics(CLASSES, MEL), stratify=True)
    assert many["balanced_accuracy"]["single_lesion_strata"] == 0
    plain = lesion_bootstrap(labels, probs, groups, standard_bootstrap_metrics(CLASSES, MEL))
    assert "single_lesion_strata" not in plain["balanced_accuracy"]


def test_stratified_bootstrap_puts_mixed_groups_in_a_stratum_of_their_own() -> None:
    # Lesions a and b are class 0; lesion c has one image of class 0 and one of class 1.
    labels = np.array([0, 0, 0, 1])
    probs = np.eye(2)[labels]
    groups = np.array(["a", "b", "c", "c"])
    ones = bootstrap_distribution(
        labels,
        probs,
        groups,
        {"ones": lambda y, p: float(np.sum(y == 1))},
        n_resamples=200,
        stratify=True,
    )["ones"]
    assert np.all(ones == 1.0)  # c is drawn exactly once in every resample
