"""End-to-end run of classifier_training through a Kedro session on generated data."""

import json

import pandas as pd
import pytest
import torch
from tests.conftest import run_kedro

from skin_lesion import lineage
from skin_lesion.checkpoints import state_fingerprint
from skin_lesion.classifier import classifier_from_checkpoint

pytestmark = pytest.mark.slow


def test_kedro_run_classifier_training(kedro_project):
    run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "contrastive_pretraining")
    run_kedro(kedro_project, "classifier_training")
    root = kedro_project / "data" / "test"
    checkpoint = torch.load(root / "06_models" / "classifier.pt", weights_only=True)
    assert checkpoint["kind"] == "classifier"
    assert checkpoint["class_names"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert checkpoint["preprocessing"]["cache"]["height"] == 48
    classifier_from_checkpoint(checkpoint)
    # What resume compares besides the parameters: the cache and the encoder started from.
    pretrained = torch.load(root / "06_models" / "pretrained_encoder.pt", weights_only=True)
    assert checkpoint["params"][lineage.CACHE_KEY] == checkpoint["preprocessing"]["cache"]
    assert checkpoint["params"][lineage.ENCODER_KEY] == state_fingerprint(pretrained)
    history = json.loads((root / "08_reporting" / "training_history.json").read_text())
    assert [h["phase"] for h in history] == ["warmup", "finetune", "finetune"]
    assert {"loss", "val_loss", "balanced_accuracy", "macro_f1", "accuracy", "lr"} <= set(
        history[0]
    )
    preds = pd.read_csv(root / "07_model_output" / "val_predictions.csv")
    splits = pd.read_parquet(root / "05_model_input" / "splits.parquet")
    assert set(preds["image_id"]) == set(splits.loc[splits["split"] == "val", "image_id"])
    assert preds.filter(like="p_").shape[1] == 7
