"""Inference predicts with the TTA its operating point was fitted with, unless told otherwise,
and with the precision its classifier was validated with."""

import logging

import pytest

from skin_lesion.inference import operating_tta


def test_unset_tta_takes_the_operating_points() -> None:
    assert operating_tta({"tta": "flips"}, None) == "flips"
    assert operating_tta({"tta": "dihedral"}, None) == "dihedral"


def test_an_operating_point_from_before_tta_was_recorded_was_fitted_single_view() -> None:
    # Until the reporting pipeline predicted validation itself, the temperature and threshold
    # were fitted on training's single-view validation predictions.
    assert operating_tta({"temperature": 1.2, "melanoma_threshold": 0.1}, None) == "none"


def test_another_tta_is_allowed_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        assert operating_tta({"tta": "flips"}, "none") == "none"
    assert "fitted on validation predictions with TTA 'flips'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        assert operating_tta({"tta": "flips"}, "flips") == "flips"
    assert caplog.text == ""


def test_scoring_uses_the_precision_training_validated_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reporting and inference autocast only if the classifier's training did (its ``amp``),
    so test and validation predictions of a model share their numerics."""
    import torch

    from skin_lesion import engine
    from skin_lesion.classifier import checkpoint_precision

    monkeypatch.setattr(engine, "autocast_dtype", lambda device: torch.bfloat16)
    cuda = torch.device("cuda")  # never touched: only the chosen dtype is checked
    trained = {"params": {"classifier_training": {"amp": False}}}
    assert checkpoint_precision(trained, cuda).name == "fp32"
    trained["params"]["classifier_training"]["amp"] = True
    assert checkpoint_precision(trained, cuda).name == "bf16"
    assert checkpoint_precision({}, cuda).name == "bf16"  # a checkpoint without its params
    # The filled-in settings win over the parameters as given (which omit defaults).
    settings = {"classifier_training": {"amp": False}}
    filled = {"params": {"classifier_training": {}, "settings": settings}}
    assert checkpoint_precision(filled, cuda).name == "fp32"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"classifier_training": {"channels_last": False}}, False),
        (
            {
                "classifier_training": {},
                "settings": {"classifier_training": {"channels_last": False}},
            },
            False,
        ),
        ({"classifier_training": {"channels_last": True}}, True),
        (None, True),  # a checkpoint without its params: the default
    ],
)
def test_scoring_uses_the_memory_format_training_validated_with(
    monkeypatch: pytest.MonkeyPatch, params, expected
) -> None:
    """Reporting and inference put the model in NHWC on the CPU exactly when the classifier's
    training did (its ``channels_last``)."""
    import numpy as np
    import pandas as pd
    import torch

    from skin_lesion import classifier

    model = torch.nn.Conv2d(3, 4, 3)
    seen = {}

    def predict_proba(m, images, indices, **kwargs):
        seen["nhwc"] = m.weight.is_contiguous(memory_format=torch.channels_last)
        return np.zeros((len(indices), 2), np.float32)

    monkeypatch.setattr(classifier, "classifier_from_checkpoint", lambda checkpoint: model)
    monkeypatch.setattr(classifier, "predict_proba", predict_proba)
    checkpoint = {"preprocessing": {"crop_size": 8, "mean": [0.5] * 3, "std": [0.2] * 3}}
    if params is not None:
        checkpoint["params"] = params
    images = np.zeros((2, 8, 8, 3), np.uint8)
    classifier.predict_with_checkpoint(
        checkpoint, images, pd.DataFrame(index=range(2)), np.arange(2), device=torch.device("cpu")
    )
    assert seen["nhwc"] is expected
