"""Generated labels and probabilities shared by the metric, calibration and bootstrap tests."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

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
