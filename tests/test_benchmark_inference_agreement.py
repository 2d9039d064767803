"""benchmarks/inference_agreement.py: matching, calibration, and a difference it must see."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmarks import inference_agreement

from skin_lesion.calibration import apply_temperature

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def _reporting(data: Path, probs: np.ndarray, ids: list[str]) -> None:
    (data / "07_model_output").mkdir(parents=True)
    (data / "08_reporting").mkdir()
    test = pd.DataFrame(probs, columns=[f"p_{c}" for c in CLASSES]).assign(image_id=ids)
    test.to_csv(data / "07_model_output" / "test_predictions.csv", index=False)
    point = {"temperature": 1.7, "melanoma_threshold": 0.2, "tta": "flips"}
    (data / "08_reporting" / "test_metrics.json").write_text(json.dumps({"operating_point": point}))


def test_agreement_matches_by_file_name_and_sees_a_difference(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=4)
    _reporting(tmp_path, probs, ["a", "b", "c", "d"])
    calibrated = apply_temperature(probs, 1.7)
    # Inference saw b, c and d (in a subfolder) and an image outside the test split.
    predictions = pd.DataFrame(
        np.vstack([calibrated[1:], rng.dirichlet(np.ones(7), size=1)]),
        columns=[f"p_{c}" for c in CLASSES],
    )
    predictions.insert(0, "image", ["x/b.jpg", "x/c.jpg", "x/d.png", "new.jpg"])
    predictions["melanoma_flag"] = predictions["p_mel"] >= 0.2
    predictions["tta"] = "flips"
    csv = tmp_path / "predictions.csv"
    predictions.to_csv(csv, index=False)
    assert inference_agreement.main([str(csv), "--data-dir", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matched"] == 3 and result["max_abs_difference"] < 1e-9
    assert result["same_predicted_class"] == 1.0 and result["same_melanoma_flag"] == 1.0

    # Uncalibrated probabilities (another temperature) differ, and say so.
    predictions.loc[:2, [f"p_{c}" for c in CLASSES]] = probs[1:]
    predictions.to_csv(csv, index=False)
    inference_agreement.main([str(csv), "--data-dir", str(tmp_path)])
    assert json.loads(capsys.readouterr().out)["max_abs_difference"] > 1e-3

    # No test image among the predictions: status 1.
    predictions["image"] = ["p.jpg", "q.jpg", "r.jpg", "s.jpg"]
    predictions.to_csv(csv, index=False)
    assert inference_agreement.main([str(csv), "--data-dir", str(tmp_path)]) == 1


def test_missing_files_and_columns_are_named_not_a_traceback(tmp_path: Path) -> None:
    probs = np.full((2, 7), 1 / 7)
    data = tmp_path / "data"
    data.mkdir()
    _reporting(data, probs, ["a", "b"])
    reporting_csv = data / "07_model_output" / "test_predictions.csv"
    argv = ["--data-dir", str(data)]
    # A predictions file that is not there (was a FileNotFoundError traceback).
    with pytest.raises(SystemExit, match=r"predictions CSV '.*absent\.csv' not found"):
        inference_agreement.main([str(tmp_path / "absent.csv"), *argv])
    # Reporting's test_predictions.csv passed as the predictions (was KeyError: 'image').
    with pytest.raises(
        SystemExit,
        match=r"predictions CSV '.*test_predictions\.csv' has no column image, melanoma_flag "
        r"\(its columns: p_akiec, ",
    ):
        inference_agreement.main([str(reporting_csv), *argv])
    # Predictions without one of reporting's classes.
    predictions = pd.DataFrame(probs[:, :6], columns=[f"p_{c}" for c in CLASSES[:6]])
    predictions.insert(0, "image", ["a.jpg", "b.jpg"])
    predictions["melanoma_flag"] = False
    csv = tmp_path / "predictions.csv"
    predictions.to_csv(csv, index=False)
    with pytest.raises(SystemExit, match=r"the predictions have no p_vasc"):
        inference_agreement.main([str(csv), *argv])
    # Reporting's files missing: --data-dir not a reported run's.
    with pytest.raises(
        SystemExit, match=r"reporting's test predictions '.*test_predictions\.csv' not found"
    ):
        inference_agreement.main([str(csv), "--data-dir", str(tmp_path / "elsewhere")])
    (data / "08_reporting" / "test_metrics.json").unlink()
    with pytest.raises(SystemExit, match=r"reporting's metrics '.*test_metrics\.json' not found"):
        inference_agreement.main([str(csv), *argv])
