import logging

import numpy as np
import pytest
import torch

from skin_lesion import pretraining as supcon
from skin_lesion.augment import AugmentConfig
from skin_lesion.checkpoints import CheckpointStore
from skin_lesion.engine import OptimConfig
from tests.conftest import colour_images

ENCODER = supcon.EncoderConfig(name="test_efficientnet", weights="none")


def _images(n: int = 64):
    return colour_images(n)


def _config(**kwargs):
    defaults = dict(
        epochs=8,
        batch_size=16,
        progress=False,
        optim=OptimConfig(lr=3e-3, warmup_epochs=0.5),
        augment=AugmentConfig(crop_size=24, crop_scale=(0.5, 1.0)),
    )
    return supcon.PretrainConfig(**{**defaults, **kwargs})


def _pretrain(config, store=None, seed=0):
    images, labels = _images()
    return supcon.pretrain(
        images,
        labels,
        np.arange(len(labels)),
        encoder=ENCODER,
        config=config,
        seed=seed,
        device=torch.device("cpu"),
        cache_preprocessing={"height": 24, "width": 24},
        params={"x": 1},
        store=store,
    )


def test_supcon_loss_falls_over_a_few_dozen_steps():
    checkpoint, history = _pretrain(_config())
    assert len(history) == 8  # 8 epochs x 4 steps = 32 steps
    first = np.mean([h["loss"] for h in history[:2]])
    last = np.mean([h["loss"] for h in history[-2:]])
    assert last < first - 0.1, [h["loss"] for h in history]
    assert checkpoint["epoch"] == 7 and checkpoint["kind"] == supcon.CHECKPOINT_KIND


def test_checkpoint_rebuilds_the_model_alone(caplog):
    checkpoint, _ = _pretrain(_config(epochs=1))
    assert all(t.device.type == "cpu" for t in checkpoint["state_dict"].values())
    caplog.clear()  # training above did use random weights, and logged so
    with caplog.at_level(logging.INFO, logger="skin_lesion"):
        model = supcon.model_from_checkpoint(checkpoint)
    # The rebuilt model has the checkpoint's weights; the log must not say "random".
    assert "random weights" not in caplog.text
    assert checkpoint["preprocessing"]["crop_size"] == 24
    assert checkpoint["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    images, _ = _images(8)
    feats, proj = supcon.embed(
        model,
        images,
        np.arange(8),
        device=torch.device("cpu"),
        preprocessing=checkpoint["preprocessing"],
        progress=False,
    )
    assert feats.shape == (8, 256) and proj.shape == (8, 128)
    assert np.allclose(np.linalg.norm(proj, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="kind 'classifier'"):
        supcon.model_from_checkpoint({**checkpoint, "kind": "classifier"})


def test_disabled_hands_on_initial_weights():
    checkpoint, history = _pretrain(_config(enabled=False))
    assert history == [] and checkpoint["epoch"] == -1
    torch.manual_seed(0)
    fresh = supcon.build_model(ENCODER, supcon.ProjectionConfig())
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][name]), name


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    full, _ = _pretrain(_config(epochs=3))
    store = CheckpointStore(tmp_path)
    original = supcon.engine.train_one_epoch

    def crash_in_epoch_two(*args, **kwargs):
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(supcon.engine, "train_one_epoch", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        _pretrain(_config(epochs=3, resume=True), store=store)
    monkeypatch.setattr(supcon.engine, "train_one_epoch", original)
    resumed, history = _pretrain(_config(epochs=3, resume=True), store=store)
    assert [h["epoch"] for h in history] == [0, 1, 2]
    for name, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name


@pytest.mark.slow
def test_compiled_pretraining_saves_a_plain_checkpoint():
    """``compile: true`` (torch.compile on the CPU): no ``_orig_mod.`` keys, loss falls."""
    checkpoint, history = _pretrain(_config(compile=True))
    assert not [k for k in checkpoint["state_dict"] if "_orig_mod" in k]
    assert all(np.isfinite(h["loss"]) for h in history)
    assert np.mean([h["loss"] for h in history[-2:]]) < history[0]["loss"]
    supcon.model_from_checkpoint(checkpoint)  # strict load of every key
