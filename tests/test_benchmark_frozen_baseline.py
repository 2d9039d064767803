"""The frozen-feature baseline on a generated dataset: its record, and no silent overwrite."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmarks import frozen_baseline

from tests.conftest import run_kedro


def _swap_a_train_and_a_val_image(data: Path) -> None:
    """Another split of the same sizes: the first train and val images trade places."""
    splits_path = data / "05_model_input" / "splits.parquet"
    splits = pd.read_parquet(splits_path)
    first_train = splits.index[splits["split"] == "train"][0]
    first_val = splits.index[splits["split"] == "val"][0]
    splits.loc[[first_train, first_val], "split"] = ["val", "train"]
    splits.to_parquet(splits_path)


def test_baseline_scores_validation_and_keeps_another_settings_result(
    kedro_project: Path, tmp_path: Path
) -> None:
    run_kedro(kedro_project, "data_processing")
    out = tmp_path / "results" / "frozen.json"
    argv = [
        "--data-dir",
        str(kedro_project / "data" / "test"),
        "--weights",
        "none",
        "--out",
        str(out),
    ]
    result = frozen_baseline.main([*argv, "--crop", "32"])
    saved = json.loads(out.read_text())
    assert saved == result
    assert saved["crop"] == 32 and saved["weights"] == "none"
    assert saved["train_images"] > 0 and saved["val_images"] > 0
    assert len(saved["split_sha256"]) == 64 and saved["device"] == "cpu"
    assert 0.0 <= saved["val_balanced_accuracy"] <= 1.0
    assert 0.0 <= saved["val_macro_f1"] <= 1.0
    # The kNN monitor's rule on the same features, prior-corrected and plain.
    knn = saved["knn"]
    assert (knn["k"], knn["temperature"]) == (200, 0.07)
    assert set(knn) == {
        "k",
        "temperature",
        "val_balanced_accuracy",
        "val_macro_f1",
        "plain_val_balanced_accuracy",
        "plain_val_macro_f1",
    }
    assert all(0.0 <= knn[key] <= 1.0 for key in knn if "val_" in key)

    # Another crop would overwrite the result: refused before any work, naming the change.
    with pytest.raises(SystemExit, match=r"crop 32 there, 40 now.*--out"):
        frozen_baseline.main([*argv, "--crop", "40"])
    assert json.loads(out.read_text()) == saved
    # The same settings may replace it, and give the same baseline: the random weights of
    # --weights none are seeded (they were not, so each run scored other features).
    saved = frozen_baseline.main([*argv, "--crop", "32"])
    assert json.loads(out.read_text()) == saved
    scores = ("val_balanced_accuracy", "val_macro_f1", "train_balanced_accuracy", "knn")
    assert {k: saved[k] for k in scores} == {k: result[k] for k in scores}
    # Another split of the same sizes (one train and one val image trade places) is another
    # baseline too: refused after reading the split, before the features.
    _swap_a_train_and_a_val_image(kedro_project / "data" / "test")
    with pytest.raises(SystemExit, match=r"split_sha256 '[0-9a-f]{64}' there"):
        frozen_baseline.main([*argv, "--crop", "32"])
    assert json.loads(out.read_text()) == saved


def test_a_data_folder_without_a_cache_is_named(tmp_path: Path) -> None:
    argv = ["--data-dir", str(tmp_path), "--out", str(tmp_path / "f.json")]
    with pytest.raises(SystemExit, match=r"image_cache not found: run `kedro run"):
        frozen_baseline.main(argv)
    assert not (tmp_path / "f.json").exists()


def test_probe_of_a_supcon_encoder_uses_its_weights_and_refuses_one_trained_on_other_splits(
    kedro_project: Path, tmp_path: Path
) -> None:
    import hashlib

    import torch

    run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "contrastive_pretraining")
    data = kedro_project / "data" / "test"
    encoder = data / "06_models" / "pretrained_encoder.pt"
    checkpoint = torch.load(encoder, map_location="cpu", weights_only=True)
    out = tmp_path / "probe.json"
    argv = ["--data-dir", str(data), "--encoder-checkpoint", str(encoder), "--out", str(out)]
    result = frozen_baseline.main(argv)
    assert result["weights"] == "checkpoint"
    assert result["crop"] == checkpoint["preprocessing"]["crop_size"]  # its training crop
    assert result["encoder_checkpoint"] == {
        "file": "pretrained_encoder.pt",
        "sha256": hashlib.sha256(encoder.read_bytes()).hexdigest(),
        "initial_weights": checkpoint["initial_weights"],
        "supcon_epochs": 2,  # conf/test
    }
    for key in ("val_balanced_accuracy", "train_balanced_accuracy", "train_macro_f1"):
        assert 0.0 <= result[key] <= 1.0
    # Another encoder's weights are another baseline: refused before any work.
    state = checkpoint["state_dict"]
    first = next(k for k in state if k.startswith("encoder.") and state[k].is_floating_point())
    state[first] = state[first] + 1.0
    other = tmp_path / "other.pt"
    torch.save(checkpoint, other)
    with pytest.raises(SystemExit, match=r"encoder_checkpoint .* there.*--out"):
        frozen_baseline.main([*argv[:3], str(other), *argv[4:]])
    # The weights are the checkpoint's: the changed one gives other features, other scores.
    changed = frozen_baseline.main([*argv[:3], str(other), "--out", str(tmp_path / "o.json")])
    assert changed["encoder_checkpoint"]["sha256"] != result["encoder_checkpoint"]["sha256"]
    assert (changed["train_balanced_accuracy"], changed["val_macro_f1"]) != (
        result["train_balanced_accuracy"],
        result["val_macro_f1"],
    )
    # Trained on other splits: val images may have been its training images.
    _swap_a_train_and_a_val_image(data)
    with pytest.raises(SystemExit, match=r"trained on other splits"):
        frozen_baseline.main([*argv[:-1], str(tmp_path / "p2.json")])
    assert not (tmp_path / "p2.json").exists()
    # Not a pretrained encoder at all.
    torch.save({"kind": "classifier"}, tmp_path / "c.pt")
    with pytest.raises(SystemExit, match=r"a 'classifier' checkpoint, not a"):
        frozen_baseline.main([*argv[:3], str(tmp_path / "c.pt"), "--out", str(tmp_path / "c.json")])


def test_probe_scores_score_validation_against_its_own_labels() -> None:
    """The scores were checked only to lie in [0, 1]: scored on train, or micro-averaged,
    they passed the same."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    rng = np.random.default_rng(0)
    y_train = np.repeat([0, 1, 2], [30, 10, 5])
    x_train = (np.eye(3)[y_train] * 5 + rng.normal(0, 0.1, (45, 3))).astype(np.float32)
    # Val: the features of train images the probe sees as classes 0, 0, 1, 2, with labels that
    # disagree on two of them, so that val's scores are not train's (1.0).
    pick = [0, 1, 30, 40]
    x_val, y_val = x_train[pick], np.array([0, 2, 1, 1])
    scores = frozen_baseline.probe_scores(x_train, y_train, x_val, y_val)
    predicted = y_train[pick]
    assert scores["train_balanced_accuracy"] == 1.0
    assert scores["val_balanced_accuracy"] == round(balanced_accuracy_score(y_val, predicted), 4)
    assert scores["val_macro_f1"] == round(f1_score(y_val, predicted, average="macro"), 4)
    assert scores["val_balanced_accuracy"] == 0.5 and scores["val_macro_f1"] == 0.4444
    assert set(scores["knn"]) >= {"val_balanced_accuracy", "plain_val_balanced_accuracy"}
