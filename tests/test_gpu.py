"""The pipelines on a CUDA GPU, end to end (skipped without one).

What the CPU suite cannot see: the image cache placed in GPU memory, bf16 autocast chosen
on the device, channels_last, and every output back on the host as float32.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from skin_lesion import batches, engine
from tests.conftest import run_kedro

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Record the precision, memory format and cache placement the nodes choose."""
    seen: dict = {"dtypes": set(), "channels_last": [], "on_device": []}
    original_precision = engine.Precision.__init__
    original_cl = engine.use_channels_last
    original_source = batches.BatchSource.__init__

    def precision(self, device, enabled=True):
        original_precision(self, device, enabled)
        seen["dtypes"].add(self.dtype)

    def channels_last(device, requested):
        seen["channels_last"].append(original_cl(device, requested))
        return seen["channels_last"][-1]

    def source(self, *args, **kwargs):
        original_source(self, *args, **kwargs)
        seen["on_device"].append(self.on_device)

    monkeypatch.setattr(engine.Precision, "__init__", precision)
    monkeypatch.setattr(engine, "use_channels_last", channels_last)
    monkeypatch.setattr(batches.BatchSource, "__init__", source)
    return seen


def test_every_pipeline_on_cuda(kedro_project, spy):
    run_kedro(kedro_project, device="cuda")
    native_bf16 = torch.cuda.get_device_capability() >= (8, 0)  # not emulated
    expected = torch.bfloat16 if native_bf16 else torch.float16
    assert expected in spy["dtypes"]
    assert spy["channels_last"] and all(spy["channels_last"])
    assert spy["on_device"] and all(spy["on_device"])  # the small cache fits: auto -> device
    data = kedro_project / "data" / "test"
    checkpoint = torch.load(
        data / "06_models" / "classifier.pt", map_location="cpu", weights_only=False
    )
    assert {v.dtype for v in checkpoint["state_dict"].values() if v.is_floating_point()} == {
        torch.float32
    }
    probs = pd.read_csv(data / "07_model_output" / "test_predictions.csv").filter(regex="^p_")
    assert np.isfinite(probs.to_numpy()).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    report = (data / "08_reporting" / "report.html").read_text()
    assert torch.cuda.get_device_name() in report
    # Both checkpoints record the GPU they were trained on, and the report says it.
    trained_on = {"type": "cuda", "name": torch.cuda.get_device_name()}
    assert checkpoint["trained_on"] == trained_on
    encoder = torch.load(data / "06_models" / "pretrained_encoder.pt", weights_only=True)
    assert encoder["trained_on"] == trained_on
    assert f"Classifier trained on: cuda ({trained_on['name']}), torch " in report
    assert f"SupCon encoder pretrained on: cuda ({trained_on['name']}), torch " in report
    # SupCon's kNN monitor (on by default) scored every epoch under autocast on the device.
    history = json.loads((data / "08_reporting" / "pretraining_history.json").read_text())
    assert history and all(0 <= h["val_knn_balanced_accuracy"] <= 1 for h in history), history


def test_both_training_nodes_compile_with_inductor_on_cuda(kedro_project):
    """``compile: true`` with torch.compile's default backend (Inductor, which the CPU
    tests replace with ``aot_eager`` to save its minute of C++ code generation)."""
    run_kedro(
        kedro_project,
        device="cuda",
        contrastive_pretraining={"compile": True},
        classifier_training={"compile": True},
    )
    models = kedro_project / "data" / "test" / "06_models"
    for name in ("pretrained_encoder.pt", "classifier.pt"):
        state = torch.load(models / name, map_location="cpu", weights_only=False)["state_dict"]
        assert state and not [k for k in state if "_orig_mod" in k], name
    history = json.loads(
        (kedro_project / "data" / "test" / "08_reporting" / "training_history.json").read_text()
    )
    assert history and all(np.isfinite(r["loss"]) for r in history)


def test_classifier_resumes_on_cuda(kedro_project, monkeypatch):
    run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "contrastive_pretraining", device="cuda")
    run_kedro(kedro_project, "classifier_training", device="cuda")
    # The run is complete, so resuming trains no further epoch (a fresh run would).
    epochs = []
    train_one_epoch = engine.train_one_epoch
    monkeypatch.setattr(
        engine,
        "train_one_epoch",
        lambda *a, **k: epochs.append(k["epoch"]) or train_one_epoch(*a, **k),
    )
    run_kedro(
        kedro_project, "classifier_training", device="cuda", classifier_training={"resume": True}
    )
    assert epochs == []
    history = json.loads(
        (kedro_project / "data" / "test" / "08_reporting" / "training_history.json").read_text()
    )
    assert history and all(np.isfinite(r["loss"]) for r in history)


def test_metadata_fusion_training_and_inference_on_cuda(kedro_project, tmp_path, spy):
    """Age, sex and site reach the device in training, reporting, inference and Grad-CAM,
    and inference reproduces reporting's calibrated test probabilities (bf16 autocast, and
    other batch sizes, allow a small difference)."""
    from tests.pipelines.inference.test_pipeline import fusion_inference_agrees_with_reporting

    fusion_inference_agrees_with_reporting(kedro_project, tmp_path, device="cuda", atol=2e-2)
    assert spy["channels_last"] and all(spy["channels_last"])
    assert spy["on_device"] and all(spy["on_device"])
