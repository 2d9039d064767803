"""End-to-end: every pipeline through a Kedro session, then the report's contents."""

import base64
import html as htmllib
import json
import re

import numpy as np
import pandas as pd
import pytest
from tests.conftest import run_kedro

from skin_lesion.calibration import apply_temperature, fit_temperature

pytestmark = pytest.mark.slow

FIGURES = [
    "confusion_matrix", "roc_curves", "melanoma_pr_curve", "training_curves", "per_class_f1",
    "class_distribution", "augmentation_grid", "reliability_diagram", "embedding_map",
    "gradcam_examples",
]  # fmt: skip


def test_kedro_run_everything_ends_with_the_report(kedro_project):
    run_kedro(kedro_project)  # the default pipeline: all four, in order
    root = kedro_project / "data" / "test"
    metrics = json.loads((root / "08_reporting" / "test_metrics.json").read_text())
    splits = pd.read_parquet(root / "05_model_input" / "splits.parquet")
    test_ids = set(splits.loc[splits["split"] == "test", "image_id"])
    assert metrics["test_images"] == len(test_ids)
    assert metrics["calibration"]["fitted_on"] == "validation"
    assert metrics["melanoma"]["validated_threshold"]["chosen_on"] == "validation"
    assert set(metrics["bootstrap"]) == {
        "balanced_accuracy",
        "macro_f1",
        "macro_auc",
        "melanoma_sensitivity",
        "melanoma_specificity",
        "melanoma_sensitivity_at_threshold",
        "melanoma_specificity_at_threshold",
    }
    # Each diagnosis's lesions resampled apart (reporting.bootstrap.stratified, the default).
    assert all(entry["stratified"] is True for entry in metrics["bootstrap"].values())
    cm = metrics["test"]["confusion_matrix"]
    assert sum(map(sum, cm)) == len(test_ids)

    # The temperature and the melanoma threshold are fitted on validation predicted as test is
    # (the suite's reporting uses flips TTA), not on training's single-view val predictions.
    assert metrics["tta"] == metrics["operating_point"]["tta"] == "flips"
    val_tta = pd.read_csv(root / "07_model_output" / "reporting_val_predictions.csv")
    val_single = pd.read_csv(root / "07_model_output" / "val_predictions.csv")
    assert set(val_tta["image_id"]) == set(splits.loc[splits["split"] == "val", "image_id"])
    columns = [f"p_{c}" for c in metrics["classes"]]
    val_single = val_single.set_index("image_id").loc[val_tta["image_id"]]
    assert not np.allclose(val_tta[columns].to_numpy(), val_single[columns].to_numpy())
    refit = fit_temperature(val_tta[columns].to_numpy(), val_tta["label"].to_numpy())
    assert metrics["operating_point"]["temperature"] == pytest.approx(refit)

    isic = pd.read_csv(root / "08_reporting" / "isic_predictions.csv")
    assert list(isic.columns) == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    assert set(isic["image"]) == test_ids
    assert isic.iloc[:, 1:].to_numpy().min() >= 0 and isic.iloc[:, 1:].to_numpy().max() <= 1
    # The ISIC file holds the calibrated probabilities the report's figures come from: the
    # threshold applied to its MEL column gives the reported melanoma operating point.
    test = pd.read_csv(root / "07_model_output" / "test_predictions.csv")
    calibrated = apply_temperature(
        test[columns].to_numpy(), metrics["operating_point"]["temperature"]
    )
    by_image = isic.set_index("image").loc[test["image_id"]]
    np.testing.assert_allclose(
        by_image[[c.upper() for c in metrics["classes"]]].to_numpy(), calibrated, atol=1e-12
    )
    assert metrics["operating_point"]["temperature"] != pytest.approx(1.0, abs=1e-3)
    called = by_image["MEL"].to_numpy() >= metrics["operating_point"]["melanoma_threshold"]
    is_mel = test["dx"].to_numpy() == "mel"
    reported = metrics["melanoma"]["validated_threshold"]
    assert called[is_mel].mean() == pytest.approx(reported["sensitivity"])
    assert (~called[~is_mel]).mean() == pytest.approx(reported["specificity"])

    for name in FIGURES:
        png = root / "08_reporting" / "figures" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG", name

    html = (root / "08_reporting" / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == len(FIGURES)
    assert not re.search(r'(src|href)="https?://', html)
    assert "Split protocol" in html and "lesion" in html
    assert all(group in html for group in ("classifier_training", "encoder", "seed"))

    # The report embeds exactly the PNG files on disk...
    embedded = {base64.b64decode(b) for b in re.findall(r'data:image/png;base64,([^"]+)"', html)}
    on_disk = {(root / "08_reporting" / "figures" / f"{n}.png").read_bytes() for n in FIGURES}
    assert embedded == on_disk

    # ...so the report can be rebuilt on its own, from the saved figures.
    (root / "08_reporting" / "report.html").unlink()
    # (With a speed setting the checks let differ: the report lists training's, not this run's.)
    run_kedro(
        kedro_project,
        "reporting",
        from_nodes=["build_report"],
        classifier_training={"eval_batch_size": 3},
    )
    rebuilt = (root / "08_reporting" / "report.html").read_text()
    assert re.findall(r'data:image/png;base64,([^"]+)"', rebuilt) == re.findall(
        r'data:image/png;base64,([^"]+)"', html
    )
    listed = json.loads(htmllib.unescape(re.search(r"<pre>(.*?)</pre>", rebuilt, re.S)[1]))
    trained = listed["classifier_training"]
    assert trained["eval_batch_size"] != 3 and trained["head"]["hidden_dim"] == 32
    assert trained["finetune"]["optim"]["lr"] > 0  # defaults filled in, as the checkpoint records
    assert "as the classifier recorded them when it was trained" in rebuilt


def test_report_lists_every_parameter_group_but_inference():
    """A new top-level parameter group must be added to the report (or excluded here)."""
    from pathlib import Path

    import yaml

    from skin_lesion.pipelines.reporting.pipeline import REPORTED_PARAMETERS

    conf = Path(__file__).resolve().parents[3] / "conf" / "base"
    groups = set()
    for path in conf.glob("parameters*.yml"):
        groups |= set(yaml.safe_load(path.read_text()) or {})
    assert set(REPORTED_PARAMETERS) == groups - {"inference"}


def test_reporting_refuses_outputs_of_another_classifier_encoder_or_tta(after_full_run):
    """Runs that start after the predicting nodes, or plot histories and embeddings alone,
    reported outputs of another model as this classifier's (and inference accepted an
    operating point fitted on another classifier's predictions)."""
    import torch

    from skin_lesion.lineage import StaleInputError

    kedro_project = after_full_run
    root = kedro_project / "data" / "test"
    # Another TTA than the predictions were made with: the operating point claimed it.
    with pytest.raises(StaleInputError, match=r"predicted with tta flips, but reporting.tta is"):
        run_kedro(
            kedro_project, "reporting", from_nodes=["evaluate_test"], reporting={"tta": "none"}
        )
    # Predictions of another classifier (as after classifier_training was rerun alone).
    path = root / "07_model_output" / "test_predictions.csv"
    original = path.read_text()
    pd.read_csv(path).assign(classifier_sha256="0" * 64).to_csv(path, index=False)
    with pytest.raises(StaleInputError, match=r"`test_predictions` is stale: it was predicted by"):
        run_kedro(kedro_project, "reporting", from_nodes=["evaluate_test"])
    path.write_text(original)
    # The report alone with another seed listed beside this classifier's metrics.
    with pytest.raises(StaleInputError, match=r"seed=42, but the parameters now"):
        run_kedro(kedro_project, "reporting", from_nodes=["build_report"], seed=7)
    # Another run's classifier history beside this classifier.
    history = root / "08_reporting" / "training_history.json"
    kept = history.read_text()
    history.write_text(json.dumps(json.loads(kept)[:-1]))
    with pytest.raises(StaleInputError, match=r"`training_history` is not the history"):
        run_kedro(kedro_project, "reporting")
    history.write_text(kept)
    # An encoder pretrained again alone: not the one the classifier was fine-tuned from.
    encoder_path = root / "06_models" / "pretrained_encoder.pt"
    encoder = torch.load(encoder_path, weights_only=True)
    name = next(iter(encoder["state_dict"]))
    encoder["state_dict"][name] = encoder["state_dict"][name] + 1
    torch.save(encoder, encoder_path)
    with pytest.raises(StaleInputError, match=r"not the encoder the classifier was fine-tuned"):
        run_kedro(kedro_project, "reporting")
