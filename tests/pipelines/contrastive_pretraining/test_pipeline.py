"""End-to-end run of contrastive_pretraining through a Kedro session on generated data."""

import json

import pandas as pd
import pytest
import torch
from tests.conftest import run_kedro

from skin_lesion.pretraining import model_from_checkpoint

pytestmark = pytest.mark.slow


def test_kedro_run_contrastive_pretraining(kedro_project):
    run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "contrastive_pretraining")
    root = kedro_project / "data" / "test"
    checkpoint = torch.load(root / "06_models" / "pretrained_encoder.pt", weights_only=True)
    assert checkpoint["kind"] == "supcon_encoder" and checkpoint["epoch"] == 1
    assert checkpoint["architecture"]["encoder"] == "test_efficientnet"
    assert checkpoint["params"]["contrastive_pretraining"]["epochs"] == 2
    assert checkpoint["preprocessing"]["cache"]["height"] == 48
    model_from_checkpoint(checkpoint)  # rebuilds with no other input
    history = json.loads((root / "08_reporting" / "pretraining_history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert all(h["loss"] > 0 and h["img_per_s"] > 0 for h in history)
    # The kNN monitor is on by default and scores every epoch on the validation split.
    assert all(0 <= h["val_knn_balanced_accuracy"] <= 1 for h in history), history
    embeddings = pd.read_parquet(root / "07_model_output" / "contrastive_embeddings.parquet")
    splits = pd.read_parquet(root / "05_model_input" / "splits.parquet")
    assert len(embeddings) == splits["split"].isin(["val", "test"]).sum()
    assert set(embeddings["split"]) == {"val", "test"}
    assert embeddings.filter(like="z").shape[1] == 128
    assert (root / "06_models" / "runs" / "contrastive_pretraining" / "last.pt").is_file()


def test_disabled_pretraining_hands_on_initial_weights(kedro_project):
    run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "contrastive_pretraining", contrastive_pretraining={"enabled": False})
    checkpoint = torch.load(
        kedro_project / "data" / "test" / "06_models" / "pretrained_encoder.pt", weights_only=True
    )
    assert checkpoint["epoch"] == -1 and checkpoint["history"] == []


def test_embeddings_not_exported_leave_an_empty_table_the_report_can_draw(kedro_project):
    """``export_embeddings: false`` used to end the pipeline in ``torch.cat`` of no batches."""
    from skin_lesion.figures import plot_embedding_map

    run_kedro(kedro_project, "data_processing")
    run_kedro(
        kedro_project,
        "contrastive_pretraining",
        contrastive_pretraining={"enabled": False, "export_embeddings": False},
    )
    path = kedro_project / "data" / "test" / "07_model_output" / "contrastive_embeddings.parquet"
    embeddings = pd.read_parquet(path)
    assert len(embeddings) == 0
    assert list(embeddings.columns[:4]) == ["image_id", "split", "label", "dx"]
    assert embeddings.filter(regex=r"^z\d+$").shape == (0, 128)
    z = embeddings.filter(regex=r"^z\d+$").to_numpy()
    plot_embedding_map(z, embeddings["label"].to_numpy(), ["a", "b"])  # a note, not a map


def test_keep_epochs_keeps_each_epochs_weights_and_a_fresh_run_clears_them(kedro_project):
    run_kedro(kedro_project, "data_processing")
    run_kedro(
        kedro_project, "contrastive_pretraining", contrastive_pretraining={"keep_epochs": True}
    )
    root = kedro_project / "data" / "test" / "06_models"
    runs = root / "runs" / "contrastive_pretraining"
    final = torch.load(root / "pretrained_encoder.pt", weights_only=True)
    kept = [torch.load(runs / f"epoch{n}.pt", weights_only=True) for n in (0, 1)]
    assert [k["epoch"] for k in kept] == [0, 1] and [len(k["history"]) for k in kept] == [1, 2]
    for checkpoint in kept:
        assert checkpoint["kind"] == "supcon_encoder"
        assert not {"optimizer", "scheduler", "scaler", "rng"} & set(checkpoint)
        model_from_checkpoint(checkpoint)
    # The last epoch kept is the pipeline's output; the first is other weights.
    for name, value in final["state_dict"].items():
        assert torch.equal(kept[1]["state_dict"][name], value), name
    assert any(not torch.equal(kept[0]["state_dict"][k], v) for k, v in final["state_dict"].items())
    # A fresh run without it leaves none behind from the earlier run.
    run_kedro(kedro_project, "contrastive_pretraining")
    assert sorted(p.name for p in runs.iterdir()) == ["last.pt"]


def test_changing_the_knn_monitor_keeps_the_encoder_current(kedro_project):
    """The monitor does not change the weights: a classifier may train on the encoder."""
    run_kedro(kedro_project, "data_processing")
    run_kedro(
        kedro_project, "contrastive_pretraining", contrastive_pretraining={"knn_monitor": {"k": 0}}
    )
    history = json.loads(
        (kedro_project / "data" / "test" / "08_reporting" / "pretraining_history.json").read_text()
    )
    assert not any("val_knn_balanced_accuracy" in h for h in history)
    run_kedro(kedro_project, "classifier_training", classifier_training={"finetune": {"epochs": 1}})


def test_embeddings_alone_refuse_an_encoder_trained_with_other_settings(kedro_project):
    """`--nodes export_embeddings` after a SupCon setting changed mapped the old encoder."""
    from skin_lesion.lineage import StaleInputError

    run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "contrastive_pretraining", contrastive_pretraining={"epochs": 1})
    # A setting that leaves the weights as they are (how many images a forward pass takes).
    run_kedro(
        kedro_project,
        "contrastive_pretraining",
        from_nodes=["export_embeddings"],
        contrastive_pretraining={"epochs": 1, "embed_batch_size": 7},
    )
    with pytest.raises(
        StaleInputError,
        match=r"`pretrained_encoder` is stale.*epochs: 1 before, now 2.*contrastive_pretraining",
    ) as refused:
        run_kedro(kedro_project, "contrastive_pretraining", from_nodes=["export_embeddings"])
    # By the hook, before the node ran (and before kedro-mlflow opened a run).
    assert "check_embedded_encoder_current" in {entry.name for entry in refused.traceback}
