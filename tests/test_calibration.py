"""Tests for skin_lesion.calibration: temperature recovery, hand-computed ECE and bins."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from skin_lesion.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from tests.predictions import noisy_predictions


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


def test_a_temperature_fitted_on_separable_validation_is_called_meaningless(caplog) -> None:
    """Every validation image right (the demo's data): the NLL falls as T shrinks, and the
    search stopped short of its bound, so the bound's warning said nothing."""
    labels = np.arange(60) % 7
    probs = np.full((60, 7), 0.02)
    probs[np.arange(60), labels] = 0.88
    with caplog.at_level("WARNING", logger="skin_lesion.calibration"):
        fit_temperature(probs, labels)
    assert "every one of the 60 validation images is classified correctly" in caplog.text
    caplog.clear()
    labels[0] = 1  # one mistake: a real fit, no such warning
    with caplog.at_level("WARNING", logger="skin_lesion.calibration"):
        fit_temperature(probs, labels)
    assert "classified correctly" not in caplog.text


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
    with pytest.raises(ValueError, match=r"n_bins must be a positive integer, got 0"):
        reliability_bins(labels, probs, n_bins=0)


def test_reliability_bins_edges_close_on_the_right() -> None:
    # Bins are (lower, upper] (Guo et al. 2017, Sec. 2): 0.5 is in the first of two bins.
    probs = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.6, 0.2, 0.2]])
    counts = [b["count"] for b in reliability_bins(np.zeros(3, dtype=int), probs, 2)["bins"]]
    assert counts == [1, 2]
