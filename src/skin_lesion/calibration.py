"""Temperature scaling and reliability bins for class-probability matrices.

Temperature scaling (Guo et al. 2017, Sec. 4.2) is fitted on validation predictions and applied
to test and inference predictions; the reliability bins and ECE (Guo et al., Eq. 3) feed the
report's reliability diagram. Inputs are checked as in :mod:`skin_lesion.metrics`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from skin_lesion.metrics import check_labels_probs

logger = logging.getLogger(__name__)

# Probabilities are clipped before log so that a hard 0 gives a finite logit.
PROB_FLOOR = 1e-12
# Search range for log T in temperature scaling: T in [0.05, 20] covers any sane network.
LOG_TEMPERATURE_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))


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
    labels, probs = check_labels_probs(labels, probs)
    logits = np.log(np.clip(probs, PROB_FLOOR, 1.0))
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, labels].mean())

    result = minimize_scalar(nll, bounds=LOG_TEMPERATURE_BOUNDS, method="bounded")
    temperature = float(np.exp(result.x))
    if (probs.argmax(axis=1) == labels).all():
        # The NLL then falls towards 0 as T shrinks; where the search stopped means nothing
        # (the demo's synthetic data, or a validation split too small or too easy).
        logger.warning(
            "every one of the %d validation images is classified correctly: the NLL keeps "
            "falling as the temperature shrinks, so the fitted %.4g is only where the search "
            "stopped, and calibration says nothing on these data",
            len(labels),
            temperature,
        )
    elif min(abs(result.x - b) for b in LOG_TEMPERATURE_BOUNDS) < 1e-3:
        logger.warning("fitted temperature %.4g is at its search bound", temperature)
    # An NLL is >= 0; float rounding near 0 printed "-0.0000".
    logger.info(
        "temperature %.4f: NLL %.4f -> %.4f", temperature, nll(0.0), max(float(result.fun), 0.0)
    )
    return temperature


def reliability_bins(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    """Top-label confidence vs accuracy in equal-width bins, for a reliability diagram.

    Bin m is (lower, upper] as in Guo et al. 2017, Sec. 2 (the first bin also takes 0).
    ``mean_confidence`` and ``accuracy`` are ``None`` for empty bins. ``ece`` is Eq. 3
    of Guo et al. (Naeini et al. 2015): sum over bins of count/N * |accuracy - confidence|.
    """
    labels, probs = check_labels_probs(labels, probs)
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
