"""Out-of-range parameters fail when the configs are built, naming the full key."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import torch

from skin_lesion.config import ConfigError
from skin_lesion.parameters_check import check_node_configs, check_run_settings


def nested(dotted: str, value: Any) -> dict[str, Any]:
    """``{"a": {"b": value}}`` from ``"a.b"``."""
    head, _, rest = dotted.partition(".")
    return {head: nested(rest, value) if rest else value}


BAD = [
    ("classifier_training.finetune.epochs", -1, "classifier_training.finetune: epochs"),
    ("classifier_training.warmup.epochs", -2, "classifier_training.warmup: epochs"),
    ("classifier_training.batch_size", 0, "classifier_training: batch_size"),
    ("classifier_training.eval_batch_size", -8, "eval_batch_size"),
    ("classifier_training.ema.decay", 1.5, "classifier_training.ema: decay"),
    ("classifier_training.ema.decay", 1.0, "decay must lie in [0, 1)"),
    ("classifier_training.finetune.optim.lr", -1e-3, "classifier_training.finetune.optim: lr"),
    ("classifier_training.finetune.optim.lr", 0, "lr must be > 0"),
    ("classifier_training.warmup.optim.weight_decay", -0.1, "weight_decay"),
    ("classifier_training.warmup.optim.min_lr_ratio", 2.0, "min_lr_ratio"),
    ("classifier_training.warmup.optim.grad_clip", -1.0, "grad_clip must be >= 0"),
    ("classifier_training.finetune.unfreeze_stages", 0, "unfreeze_stages"),
    ("classifier_training.finetune.encoder_lr_scale", -0.1, "encoder_lr_scale"),
    ("classifier_training.loss.gamma", -1.0, "classifier_training.loss: gamma"),
    ("classifier_training.loss.label_smoothing", 1.0, "label_smoothing"),
    ("classifier_training.loss.alpha", "invers", "alpha must be 'inverse'"),
    ("classifier_training.loss.alpha", [1.0, -1.0], "alpha weights must be >= 0"),
    ("classifier_training.loss.alpha", [0.0, 0.0], "alpha weights must not all be 0"),
    (
        "classifier_training",
        {"batch_size": 31, "mix": {"mixup_alpha": 0.2}},
        "batch_size must be even, got 31",
    ),
    ("classifier_training.mix.prob", 1.5, "classifier_training.mix: prob"),
    ("classifier_training.mix.mixup_alpha", -0.2, "mixup_alpha"),
    ("classifier_training.early_stopping.patience", 0, "patience"),
    ("classifier_training.early_stopping.scope", "phases", "scope: 'phases' is not one of"),
    ("classifier_training.head.dropout", 1.0, "classifier_training.head: dropout"),
    ("classifier_training.head.hidden_dim", -1, "hidden_dim"),
    ("contrastive_pretraining.epochs", -1, "contrastive_pretraining: epochs"),
    ("contrastive_pretraining.batch_size", 0, "batch_size"),
    ("contrastive_pretraining.temperature", 0.0, "temperature must be > 0"),
    # Infinity (`--params key=.inf`) and NaN passed the range checks until 2026-12-06: no
    # SupCon gradient, NaN losses mid-run, or blank (flat or NaN) training images.
    ("contrastive_pretraining.temperature", float("inf"), "temperature must be a finite"),
    ("contrastive_pretraining.knn_monitor.temperature", float("inf"), "knn_monitor: temperat"),
    ("classifier_training.finetune.optim.lr", float("inf"), "lr must be a finite number"),
    ("classifier_training.warmup.optim.weight_decay", float("inf"), "weight_decay must be a fin"),
    ("classifier_training.finetune.encoder_lr_scale", float("inf"), "encoder_lr_scale must be"),
    ("classifier_training.mix.mixup_alpha", float("inf"), "mixup_alpha must be a finite"),
    ("classifier_training.loss.gamma", float("inf"), "gamma must be a finite number"),
    ("classifier_training.augment.rotation_degrees", float("nan"), "rotation_degrees must be"),
    ("classifier_training.augment.rotation_degrees", float("inf"), "rotation_degrees must be"),
    (
        "contrastive_pretraining.augment.color_jitter",
        [float("nan"), 0.4, 0.2, 0.03],
        "color_jitter strengths must be finite numbers >= 0",
    ),
    (
        "classifier_training.augment.color_jitter",
        [0.4, 0.4, 0.2, float("nan")],
        "color_jitter strengths must be finite",
    ),
    ("classifier_training.augment.crop_ratio", [0.75, float("inf")], "0 < low <= high, finite"),
    ("contrastive_pretraining.projection.out_dim", 0, "projection: out_dim"),
    ("contrastive_pretraining.optim.lr", -1.0, "contrastive_pretraining.optim: lr"),
    (
        "classifier_training.warmup.optim.warmup_epochs",
        2.5,
        "classifier_training.warmup: optim.warmup_epochs (2.5) is longer than epochs (2)",
    ),
    (
        "classifier_training.finetune.optim.warmup_epochs",
        21,
        "classifier_training.finetune: optim.warmup_epochs (21) is longer than epochs (20)",
    ),
    (
        "contrastive_pretraining.optim.warmup_epochs",
        30.5,
        "contrastive_pretraining: optim.warmup_epochs (30.5) is longer than epochs (30)",
    ),
    ("reporting.bootstrap.confidence", 95, "reporting.bootstrap: confidence"),
    ("reporting.bootstrap.n_resamples", 0, "n_resamples"),
    ("reporting.target_sensitivity", 0.0, "target_sensitivity"),
    ("reporting.calibration_bins", 0, "calibration_bins"),
    ("reporting.tsne_perplexity", -5.0, "tsne_perplexity"),
    ("reporting.gradcam_per_class", -1, "gradcam_per_class"),
    ("inference.batch_size", 0, "inference: batch_size"),
    ("inference.workers", 0, "workers"),
    ("data_processing.workers", 0, "data_processing: workers"),
    ("data_processing.metadata.min_age", 130.0, "data_processing.metadata: ages"),
    ("data_processing.metadata.sexes", [], "sexes"),
    ("data_processing.split.warn_share_gap", -1.0, "data_processing.split: warn_share_gap"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_out_of_range_value_is_refused_with_its_path(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_node_configs(nested(key, value))


def test_alpha_needs_one_weight_per_class() -> None:
    params = {"classes": ["a", "b", "c"], **nested("classifier_training.loss.alpha", [1.0, 2.0])}
    with pytest.raises(ConfigError, match=r"alpha: 2 weight\(s\) \[1.0, 2.0\] for 3 classes"):
        check_node_configs(params)
    check_node_configs({**params, "classes": ["a", "b"]})


def test_both_classifier_phases_empty_is_refused() -> None:
    params = nested("classifier_training", {"warmup": {"epochs": 0}, "finetune": {"epochs": 0}})
    with pytest.raises(ConfigError, match="nothing to train"):
        check_node_configs(params)


@pytest.mark.parametrize(
    "params",
    [
        {"classifier_training": {"warmup": {"epochs": 0}}},
        {"classifier_training": {"finetune": {"epochs": 0}, "ema": {"decay": 0.0}}},
        {"classifier_training": {"finetune": {"optim": {"grad_clip": None}}}},
        {"classifier_training": {"warmup": {"optim": {"grad_clip": 0}}}},  # off, as null
        {"contrastive_pretraining": {"epochs": 0}},
        # a warm-up as long as the phase, or one of a phase or pretraining that does not run
        {"classifier_training": {"finetune": {"epochs": 1}}},
        {"classifier_training": {"warmup": {"epochs": 0, "optim": {"warmup_epochs": 3}}}},
        {"contrastive_pretraining": {"enabled": False, "epochs": 2, "optim": {"warmup_epochs": 5}}},
        {"reporting": {"gradcam_per_class": 0, "target_sensitivity": 1.0}},
        {"classifier_training": {"loss": {"alpha": "sqrt_inverse"}}},
        {"data_processing": {"metadata": {"min_age": 20, "max_age": 20}}},
    ],
)
def test_edge_values_that_mean_something_are_accepted(params: dict[str, Any]) -> None:
    check_node_configs(params)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"seed": 1.5}, r"seed: expected an integer from 0 to 2\*\*32 - 1 .*, got 1.5"),
        ({"seed": True}, "seed: expected an integer from 0"),
        ({"seed": -3}, "seed: expected an integer from 0"),
        # A seed past 64 bits failed in torch's generator inside the training node.
        ({"seed": 2**32}, r"seed: expected an integer from 0 to 2\*\*32 - 1 .*4294967296"),
        ({"device": "gpu"}, "device: .*gpu"),
        # Parsed by torch, but no node runs on it (failed in the node, naming no setting).
        ({"device": "meta"}, "device: 'meta' is not a device the nodes run on"),
        ({"device": "hip"}, "device: 'hip' is not a device the nodes run on"),
        ({"device": 0}, "device: expected auto"),
        pytest.param(
            {"device": "mps"},
            "device: 'mps' is not available",
            marks=pytest.mark.skipif(
                torch.backends.mps.is_available(), reason="this machine has an MPS device"
            ),
        ),
        ({"classes": "akiec,bcc"}, "classes: expected a list"),
        ({"classes": ["mel"]}, "two or more distinct"),
        ({"classes": ["mel", "nv", "mel"]}, r"\['mel'\] repeated"),
    ],
)
def test_bad_run_settings_are_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_run_settings(params)


def test_good_run_settings_pass() -> None:
    check_run_settings({"seed": 0, "device": "cpu", "classes": ["a", "b"]})
    check_run_settings({"seed": 42, "device": "auto"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    # data_processing and notebooks need no GPU; the model nodes fail later, naming it.
    with caplog.at_level(logging.WARNING, logger="skin_lesion.parameters_check"):
        check_run_settings({"device": "cuda"})
    assert "device 'cuda': CUDA is not available here" in caplog.text
