"""The frozen-feature baseline on a generated dataset: its record, and no silent overwrite."""

import json
from pathlib import Path

import pandas as pd
import pytest
from benchmarks import frozen_baseline

from tests.conftest import run_kedro


def test_baseline_scores_validation_and_keeps_another_settings_result(
    kedro_project: Path, tmp_path: Path
) -> None:
    run_kedro(kedro_project, "data_processing")
    out = tmp_path / "results" / "frozen.json"
    argv = ["--data-dir", str(kedro_project / "data"), "--weights", "none", "--out", str(out)]
    result = frozen_baseline.main([*argv, "--crop", "32"])
    saved = json.loads(out.read_text())
    assert saved == result
    assert saved["crop"] == 32 and saved["weights"] == "none"
    assert saved["train_images"] > 0 and saved["val_images"] > 0
    assert len(saved["split_sha256"]) == 64 and saved["device"] == "cpu"
    assert 0.0 <= saved["val_balanced_accuracy"] <= 1.0
    assert 0.0 <= saved["val_macro_f1"] <= 1.0

    # Another crop would overwrite the result: refused before any work, naming the change.
    with pytest.raises(SystemExit, match=r"crop 32 there, 40 now.*--out"):
        frozen_baseline.main([*argv, "--crop", "40"])
    assert json.loads(out.read_text()) == saved
    # The same settings may replace it (a rerun; random weights here, so other scores).
    saved = frozen_baseline.main([*argv, "--crop", "32"])
    assert json.loads(out.read_text()) == saved
    # Another split of the same sizes (one train and one val image trade places) is another
    # baseline too: refused after reading the split, before the features.
    splits_path = kedro_project / "data" / "05_model_input" / "splits.parquet"
    splits = pd.read_parquet(splits_path)
    first_train = splits.index[splits["split"] == "train"][0]
    first_val = splits.index[splits["split"] == "val"][0]
    splits.loc[[first_train, first_val], "split"] = ["val", "train"]
    splits.to_parquet(splits_path)
    with pytest.raises(SystemExit, match=r"split_sha256 '[0-9a-f]{64}' there"):
        frozen_baseline.main([*argv, "--crop", "32"])
    assert json.loads(out.read_text()) == saved


def test_a_data_folder_without_a_cache_is_named(tmp_path: Path) -> None:
    argv = ["--data-dir", str(tmp_path), "--out", str(tmp_path / "f.json")]
    with pytest.raises(SystemExit, match=r"image_cache not found: run `kedro run"):
        frozen_baseline.main(argv)
    assert not (tmp_path / "f.json").exists()
