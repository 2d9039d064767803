"""Mixed precision and channels_last as on a GPU, emulated on the CPU.

On CUDA the training nodes run under bf16 autocast (fp16 with loss scaling where bf16 is not
supported) in channels_last memory format; on a CPU they run in float32, so none of that code
would run before the first GPU run. Here both are switched on for the CPU (torch's CPU
autocast supports bf16 and fp16, and ``GradScaler("cpu")`` scales losses) and the pipelines
run through Kedro, so a reduced-precision tensor reaching NumPy, a checkpoint saved in half
precision or a loss scaler that cannot resume fails here.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from skin_lesion import engine
from tests.conftest import run_kedro

pytestmark = pytest.mark.slow


@pytest.fixture
def emulate_gpu_precision(monkeypatch: pytest.MonkeyPatch):
    """Make the engine choose ``dtype`` autocast and channels_last on the CPU; count uses."""
    seen: dict = {"dtypes": [], "autocast": 0, "channels_last": 0}

    def switch_on(dtype: torch.dtype) -> dict:
        monkeypatch.setattr(engine, "autocast_dtype", lambda device: dtype)

        def channels_last(device: torch.device, requested: bool) -> bool:
            seen["channels_last"] += requested
            return requested

        monkeypatch.setattr(engine, "use_channels_last", channels_last)
        original = engine.Precision.autocast

        def autocast(self):
            seen["dtypes"].append(self.dtype)
            seen["autocast"] += 1
            return original(self)

        monkeypatch.setattr(engine.Precision, "autocast", autocast)
        return seen

    return switch_on


def _float32_state(path: Path) -> None:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    dtypes = {v.dtype for v in checkpoint["state_dict"].values() if v.is_floating_point()}
    assert dtypes == {torch.float32}, f"{path.name}: {dtypes}"


def test_bf16_channels_last_through_every_pipeline(kedro_project, emulate_gpu_precision):
    seen = emulate_gpu_precision(torch.bfloat16)
    run_kedro(kedro_project)
    assert seen["autocast"] > 0 and set(seen["dtypes"]) == {torch.bfloat16}
    # Training SupCon and the classifier; the embedding export; reporting's val and test
    # predictions.
    assert seen["channels_last"] == 5
    data = kedro_project / "data" / "test"
    for name in ("pretrained_encoder.pt", "classifier.pt"):
        _float32_state(data / "06_models" / name)
    for name in ("val_predictions.csv", "test_predictions.csv"):
        probs = pd.read_csv(data / "07_model_output" / name).filter(regex=r"^p_").to_numpy()
        assert probs.shape[1] == 7 and np.isfinite(probs).all(), name
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    metrics = json.loads((data / "08_reporting" / "test_metrics.json").read_text())
    assert 0.0 <= metrics["test"]["balanced_accuracy"] <= 1.0
    history = json.loads((data / "08_reporting" / "training_history.json").read_text())
    assert all(np.isfinite(r["loss"]) for r in history)
    assert (data / "08_reporting" / "report.html").exists()


def test_fp16_with_loss_scaling_trains_and_resumes(
    kedro_project, emulate_gpu_precision, monkeypatch
):
    seen = emulate_gpu_precision(torch.float16)
    # A start scale far above fp16's range: the first steps overflow for sure and are skipped.
    monkeypatch.setattr(torch.amp, "GradScaler", partial(torch.amp.GradScaler, init_scale=2.0**40))
    run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "contrastive_pretraining")
    run_kedro(kedro_project, "classifier_training")
    assert seen["autocast"] > 0 and set(seen["dtypes"]) == {torch.float16}
    models = kedro_project / "data" / "test" / "06_models"
    _float32_state(models / "classifier.pt")
    history = json.loads(
        (kedro_project / "data" / "test" / "08_reporting" / "training_history.json").read_text()
    )
    assert all(np.isfinite(r["loss"]) for r in history)
    latest = sorted((models / "runs").rglob("*.pt"))
    assert latest, "no resume checkpoint written"
    scalers = [torch.load(p, map_location="cpu", weights_only=False).get("scaler") for p in latest]
    assert any(s and 0 < s.get("scale", 0) < 2.0**40 for s in scalers), scalers
    # Resuming restores the scaler with the rest and finishes the same run.
    # The run is complete, so resuming trains no further epoch (a fresh run would).
    epochs = []
    train_one_epoch = engine.train_one_epoch
    monkeypatch.setattr(
        engine,
        "train_one_epoch",
        lambda *a, **k: epochs.append(k["epoch"]) or train_one_epoch(*a, **k),
    )
    run_kedro(kedro_project, "classifier_training", classifier_training={"resume": True})
    assert epochs == []
    _float32_state(models / "classifier.pt")
