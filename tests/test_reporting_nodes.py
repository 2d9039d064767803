"""Reporting nodes draw from the same probabilities that the metrics were computed on."""

import numpy as np
import pandas as pd
import pytest

from skin_lesion.calibration import apply_temperature
from skin_lesion.pipelines.reporting import nodes

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def test_roc_curves_use_the_calibrated_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=40)
    predictions = pd.DataFrame(probs, columns=[f"p_{c}" for c in CLASSES])
    predictions["label"] = rng.integers(0, len(CLASSES), 40)
    seen = {}

    def capture(labels, scores, classes):
        seen["scores"] = scores
        return "figure"

    monkeypatch.setattr(nodes.figures, "plot_roc_curves", capture)
    monkeypatch.setattr(nodes.figures, "figure_to_png", lambda fig: b"png")
    metrics = {"calibration": {"temperature": 2.5}}
    assert nodes.plot_roc_curves(predictions, metrics, CLASSES) == b"png"
    np.testing.assert_allclose(seen["scores"], apply_temperature(probs, 2.5))
    assert not np.allclose(seen["scores"], probs)
