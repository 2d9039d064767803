import functools
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skin_lesion import classification as clf
from skin_lesion import classifier, ema, prediction
from skin_lesion import pretraining as supcon
from skin_lesion.augment import AugmentConfig
from skin_lesion.engine import OptimConfig
from skin_lesion.provenance import cpu_name
from tests.conftest import colour_images

CLASSES = ["a", "b", "c", "d"]
ENCODER = supcon.EncoderConfig(name="test_efficientnet", weights="none")


def _pretrained():
    images, labels = colour_images(8)
    checkpoint, _ = supcon.pretrain(
        images,
        labels,
        np.arange(8),
        encoder=ENCODER,
        config=supcon.PretrainConfig(enabled=False, augment=AugmentConfig(crop_size=24)),
        seed=0,
        device=torch.device("cpu"),
        cache_preprocessing={},
        params={},
    )
    return checkpoint


def _rows(n: int, labels: np.ndarray) -> pd.DataFrame:
    split = np.where((np.arange(n) // 4) % 4 == 3, "val", "train")  # every class in val
    return pd.DataFrame(
        {
            "image_id": [f"ISIC_{i:07d}" for i in range(n)],
            "label": labels,
            "split": split,
            "age": [np.nan if i % 5 == 0 else 30.0 + i for i in range(n)],
            "sex": ["unknown" if i % 7 == 0 else ("male", "female")[i % 2] for i in range(n)],
            "localization": ["back", "face", "trunk", "unknown"] * (n // 4),
        }
    )


def _config(**kwargs):
    fast = OptimConfig(lr=1e-2, warmup_epochs=0.2)
    defaults = dict(
        batch_size=16,
        eval_batch_size=64,
        progress=False,
        head=classifier.HeadConfig(hidden_dim=32, dropout=0.1),
        warmup=clf.WarmupConfig(epochs=2, optim=fast),
        finetune=clf.FinetuneConfig(epochs=10, encoder_lr_scale=0.3, optim=fast),
        ema=ema.EmaConfig(enabled=True, decay=0.5),
        early_stopping=clf.EarlyStoppingConfig(patience=10),
        # No colour jitter: colour is half of what tells these classes apart, and with it on
        # a 12-epoch run's outcome turns on the random stream (0.75 to 1.0 over seeds).
        augment=AugmentConfig(
            crop_size=24, crop_scale=(0.6, 1.0), rotation_p=0.0, color_jitter_p=0.0
        ),
    )
    return clf.ClassifierConfig(**{**defaults, **kwargs})


def _train(config, n=128, pretrained=None):
    images, labels = colour_images(n)
    rows = _rows(n, labels)
    return (
        clf.train_classifier(
            images,
            rows,
            pretrained or _pretrained(),
            classes=CLASSES,
            config=config,
            seed=0,
            device=torch.device("cpu"),
            params={"p": 1},
        ),
        images,
        rows,
    )


def test_tiny_run_learns_separable_classes_and_checkpoint_rebuilds(caplog):
    (checkpoint, history, preds), images, rows = _train(_config())
    assert checkpoint["metrics"]["val"]["balanced_accuracy"] >= 0.9  # chance is 0.25
    assert [h["phase"] for h in history] == ["warmup"] * 2 + ["finetune"] * 10
    assert {
        "loss",
        "val_loss",
        "balanced_accuracy",
        "macro_f1",
        "accuracy",
        "lr",
        "img_per_s",
    } <= set(history[-1])
    assert list(preds.columns) == ["image_id", "label", "dx", "p_a", "p_b", "p_c", "p_d"]
    assert len(preds) == (rows["split"] == "val").sum()
    np.testing.assert_allclose(preds.filter(like="p_").sum(axis=1), 1.0, atol=1e-5)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="skin_lesion"):
        model = classifier.classifier_from_checkpoint(checkpoint)
    assert "random weights" not in caplog.text  # rebuilt with the checkpoint's weights
    transform = clf.build_eval_transform(
        24, checkpoint["preprocessing"]["mean"], checkpoint["preprocessing"]["std"]
    )
    val = np.flatnonzero(rows["split"] == "val")
    probs = prediction.predict_proba(
        model, images, val, transform=transform, device=torch.device("cpu")
    )
    np.testing.assert_allclose(probs, preds.filter(like="p_").to_numpy(), atol=1e-5)
    assert checkpoint["class_names"] == CLASSES
    assert checkpoint["selected"]["metric"] == "balanced_accuracy"


def test_the_warmup_and_the_finetuning_draw_orders_of_their_own(monkeypatch):
    """Each phase counts its epochs from 0: from one stream, fine-tuning epoch 0 would
    replay the warm-up's epoch 0 batch for batch."""
    from skin_lesion.batches import BatchSource

    drawn = {}
    original = BatchSource.order

    def order(self, epoch):
        drawn[self.stream, epoch] = original(self, epoch)
        return drawn[self.stream, epoch]

    monkeypatch.setattr(BatchSource, "order", order)
    fast = OptimConfig(lr=1e-2, warmup_epochs=0.2)
    _train(
        _config(
            warmup=clf.WarmupConfig(epochs=1, optim=fast),
            finetune=clf.FinetuneConfig(epochs=1, optim=fast),
        ),
        n=64,
    )
    assert set(drawn) == {("warmup", 0), ("finetune", 0)}
    assert not torch.equal(drawn["warmup", 0], drawn["finetune", 0])


def test_warmup_leaves_every_encoder_weight_unchanged():
    pretrained = _pretrained()
    (checkpoint, history, _), _, _ = _train(
        _config(finetune=clf.FinetuneConfig(epochs=0), ema=ema.EmaConfig(enabled=False)),
        pretrained=pretrained,
    )
    assert len(history) == 2 and checkpoint["selected"]["phase"] == "warmup"
    for name, value in pretrained["state_dict"].items():
        if name.startswith("encoder."):
            assert torch.equal(checkpoint["state_dict"][name], value), name  # BN stats too
    head = [k for k in checkpoint["state_dict"] if k.startswith("head.")]
    assert head


def test_an_epoch_kept_from_the_warmup_is_not_called_ema():
    """EMA weights exist only in phase 2: a warm-up epoch kept has the raw weights."""
    (checkpoint, _, _), _, _ = _train(
        _config(finetune=clf.FinetuneConfig(epochs=0), ema=ema.EmaConfig(enabled=True))
    )
    assert checkpoint["selected"]["phase"] == "warmup"
    assert checkpoint["selected"]["ema"] is False


def test_checkpoint_records_the_device_it_was_trained_on():
    (checkpoint, _, _), _, _ = _train(
        _config(warmup=clf.WarmupConfig(epochs=1), finetune=clf.FinetuneConfig(epochs=0)), n=64
    )
    assert checkpoint["trained_on"] == {"type": "cpu", "name": cpu_name()}
    # Its encoder, of SupCon off (_pretrained): not pretrained, so no device named.
    assert checkpoint["encoder_trained_on"] == {"supcon": False}


def test_tracker_counts_stale_epochs_against_the_run_and_against_the_phase():
    tracker, model = clf.BestTracker("balanced_accuracy"), torch.nn.Linear(1, 1)

    def epoch(score, phase, n):
        tracker.update(
            {"balanced_accuracy": score, "val_loss": 1.0}, model, {"phase": phase, "epoch": n}
        )

    epoch(0.9, "warmup", 0)
    tracker.start_phase()
    for n, score in enumerate([0.5, 0.6, 0.6, 0.7]):
        epoch(score, "finetune", n)
    # Run: four epochs below the warm-up's 0.9. Phase: the tie at 0.6 (same loss) is one.
    assert tracker.stale_epochs("run") == 4 and tracker.stale_epochs("phase") == 0
    epoch(0.65, "finetune", 4)
    assert tracker.stale_epochs("phase") == 1
    assert tracker.where == {"phase": "warmup", "epoch": 0}
    epoch(0.95, "finetune", 5)
    assert tracker.stale_epochs("run") == tracker.stale_epochs("phase") == 0
    restored = clf.BestTracker("balanced_accuracy")
    restored.load_state_dict(tracker.state_dict())  # resume keeps both counts
    assert (restored.phase_key, restored.phase_stale) == (tracker.phase_key, 0)
    assert restored.where == {"phase": "finetune", "epoch": 5}


@pytest.mark.parametrize(
    ("scope", "finetune_epochs", "kept"),
    [("run", 2, ("warmup", 0)), ("phase", 7, ("finetune", 4))],
)
def test_early_stopping_scope_decides_whether_a_finetune_below_the_warmup_may_climb(
    monkeypatch, scope, finetune_epochs, kept
):
    """Validation scores scripted: the warm-up's one epoch scores 0.9, fine-tuning starts at
    0.5 and climbs to 0.95 by its fifth epoch, then falls."""
    scores = iter([0.9, 0.5, 0.6, 0.7, 0.8, 0.95, 0.94, 0.93, 0.92, 0.91, 0.9])
    real = clf.classification_metrics

    def scripted(labels, probs):
        return {**real(labels, probs), "balanced_accuracy": next(scores, 0.0), "val_loss": 1.0}

    monkeypatch.setattr(clf, "classification_metrics", scripted)
    config = _config(
        warmup=clf.WarmupConfig(epochs=1, optim=OptimConfig(lr=1e-2, warmup_epochs=0.2)),
        early_stopping=clf.EarlyStoppingConfig(patience=2, scope=scope),
    )
    (checkpoint, history, _), _, _ = _train(config, n=64)
    assert [h["phase"] for h in history] == ["warmup"] + ["finetune"] * finetune_epochs
    assert (checkpoint["selected"]["phase"], checkpoint["selected"]["epoch"]) == kept


def test_finetune_groups_carry_the_intended_learning_rates():
    model = classifier.Classifier(supcon.build_model(ENCODER, supcon.ProjectionConfig()).encoder, 4)
    model.freeze_encoder(True)
    config = clf.FinetuneConfig(encoder_lr_scale=0.1, unfreeze_stages=2, optim=OptimConfig(lr=1e-3))
    optimizer = clf.build_finetune_optimizer(model, config)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["encoder"] == pytest.approx(1e-4) and lrs["head"] == pytest.approx(1e-3)
    stages = classifier.encoder_stages(model.encoder)
    trainable = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(id(p) in trainable and p.requires_grad for s in stages[-2:] for p in s)
    assert not any(p.requires_grad or id(p) in trainable for s in stages[:-2] for p in s)
    with pytest.raises(ValueError, match=r"unfreeze_stages: 9, but .* 6 stage\(s\); give 1 to 6"):
        classifier.unfreeze_last_stages(model, 9)


def test_unfreeze_stages_beyond_the_encoder_is_refused_before_the_warmup(caplog):
    with (
        caplog.at_level(logging.INFO, logger="skin_lesion"),
        pytest.raises(ValueError, match=r"classifier_training.finetune.unfreeze_stages: 7"),
    ):
        _train(_config(finetune=clf.FinetuneConfig(epochs=1, unfreeze_stages=7)), n=32)
    assert "phase 1" not in caplog.text  # nothing trained before the refusal


def test_metadata_fusion_handles_missing_age_and_unknown_sex():
    (checkpoint, _, preds), _, rows = _train(
        _config(
            metadata_fusion=True,
            warmup=clf.WarmupConfig(epochs=1),
            finetune=clf.FinetuneConfig(epochs=1),
        ),
        n=64,
    )
    assert rows["age"].isna().any() and (rows["sex"] == "unknown").any()
    assert checkpoint["architecture"]["meta_features"] > 0
    assert checkpoint["metadata_encoder"] is not None
    model = classifier.classifier_from_checkpoint(checkpoint)
    assert model.meta_features == checkpoint["architecture"]["meta_features"]
    assert np.isfinite(preds.filter(like="p_").to_numpy()).all()
    with pytest.raises(ValueError, match="pass meta"):
        model(torch.zeros(1, 3, 24, 24))


def test_double_reweighting_is_warned(caplog):
    config = _config(sampling="inverse", loss=clf.LossConfig(name="focal", alpha="inverse"))
    clf._warn_double_reweighting(config)
    assert "re-weighted twice" in caplog.text
    caplog.clear()
    clf._warn_double_reweighting(
        _config(sampling="inverse", loss=clf.LossConfig(name="focal", alpha="none"))
    )
    assert "re-weighted twice" not in caplog.text


def test_mixup_needs_even_batch():
    with pytest.raises(ValueError, match="batch_size must be even, got 15"):
        _train(_config(batch_size=15, mix=clf.MixConfig(mixup_alpha=0.2)), n=64)


def test_mixup_with_a_batch_above_an_odd_train_split_trains_on_an_even_batch(caplog):
    # 39 train images: batch_size 64 is clipped to the split, and 39 images cannot be
    # paired (timm's Mixup refused the odd batch).
    images, labels = colour_images(52)
    rows = _rows(52, labels)
    rows.loc[0, "split"] = "test"
    assert (rows["split"] == "train").sum() == 39
    config = _config(
        batch_size=64,
        mix=clf.MixConfig(mixup_alpha=0.2),
        warmup=clf.WarmupConfig(epochs=1),
        finetune=clf.FinetuneConfig(epochs=1),
    )
    with caplog.at_level(logging.INFO, logger="skin_lesion"):
        _, history, _ = clf.train_classifier(
            images,
            rows,
            _pretrained(),
            classes=CLASSES,
            config=config,
            seed=0,
            device=torch.device("cpu"),
            params={},
        )
    assert "batch 38" in caplog.text
    assert len(history) == 2 and np.isfinite(history[-1]["loss"])


def test_training_never_reads_the_test_split():
    images, labels = colour_images(96)
    rows = _rows(96, labels)
    rows.loc[rows.index % 8 == 0, "split"] = "test"
    test = np.flatnonzero(rows["split"] == "test")
    config = _config(warmup=clf.WarmupConfig(epochs=1), finetune=clf.FinetuneConfig(epochs=1))
    pretrained = _pretrained()
    results = []
    for fill in (0, 255):  # the test images change completely between the two runs
        changed = images.copy()
        changed[test] = fill
        checkpoint, _, preds = clf.train_classifier(
            changed,
            rows,
            pretrained,
            classes=CLASSES,
            config=config,
            seed=0,
            device=torch.device("cpu"),
            params={},
        )
        results.append((checkpoint, preds))
    (a, pa), (b, pb) = results
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    pd.testing.assert_frame_equal(pa, pb)
    assert not set(pa["image_id"]) & set(rows.loc[test, "image_id"])


def test_tta_views_are_the_eight_symmetries_and_average():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    views = {tuple(prediction.dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(views) == 8
    (checkpoint, _, preds), images, rows = _train(
        _config(warmup=clf.WarmupConfig(epochs=1), finetune=clf.FinetuneConfig(epochs=1)), n=64
    )
    val = np.flatnonzero(rows["split"] == "val")
    plain = classifier.predict_with_checkpoint(
        checkpoint, images, rows, val, device=torch.device("cpu"), progress=False
    )
    np.testing.assert_allclose(plain, preds.filter(like="p_").to_numpy(), atol=1e-5)
    tta = classifier.predict_with_checkpoint(
        checkpoint, images, rows, val, device=torch.device("cpu"), tta="dihedral", progress=False
    )
    np.testing.assert_allclose(tta.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(tta, plain)
    with pytest.raises(ValueError, match="'rot'"):
        classifier.predict_with_checkpoint(
            checkpoint, images, rows, val, device=torch.device("cpu"), tta="rot"
        )


@pytest.mark.parametrize(
    "mix",
    [clf.MixConfig(), clf.MixConfig(mixup_alpha=0.4, cutmix_alpha=1.0)],
    ids=["no-mix", "mixup-cutmix"],
)
def test_resume_in_phase_two_equals_uninterrupted(tmp_path, monkeypatch, mix):
    """With MixUp/CutMix too, whose draws come from NumPy's RNG (a resume replayed them from
    the start of the run until 2026-12-06: the checkpoint kept torch's RNG only)."""
    from skin_lesion.checkpoints import CheckpointStore

    config = _config(
        resume=True,
        warmup=clf.WarmupConfig(epochs=1),
        finetune=clf.FinetuneConfig(epochs=3),
        mix=mix,
    )
    images, labels = colour_images(64)
    rows, pretrained = _rows(64, labels), _pretrained()

    def run(store):
        return clf.train_classifier(
            images,
            rows,
            pretrained,
            classes=CLASSES,
            config=config,
            seed=0,
            device=torch.device("cpu"),
            params={"p": 1},
            store=store,
        )

    full, full_history, full_preds = run(CheckpointStore(tmp_path / "a"))
    original = clf.engine.train_one_epoch

    def crash(*args, **kwargs):
        if kwargs["desc"] == "fine-tune" and kwargs["epoch"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    store = CheckpointStore(tmp_path / "b")
    monkeypatch.setattr(clf.engine, "train_one_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        run(store)
    monkeypatch.setattr(clf.engine, "train_one_epoch", original)
    resumed, history, preds = run(store)
    assert [h["phase"] for h in history] == ["warmup", "finetune", "finetune", "finetune"]
    assert resumed["selected"] == full["selected"]
    for name, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name
    pd.testing.assert_frame_equal(preds, full_preds)
    assert [h["loss"] for h in history] == [h["loss"] for h in full_history]


def test_compiled_training_saves_a_plain_checkpoint(monkeypatch):
    """``compile: true`` (torch.compile): the checkpoint holds the plain module's keys (no
    ``_orig_mod.``) and rebuilds into a classifier that still fits. TorchDynamo's capture and
    AOTAutograd run as in a real compile; Inductor's C++ code generation (about a minute on 2
    cores) is left to the GPU test, which compiles both training nodes with it."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    (checkpoint, history, _), _, _ = _train(_config(compile=True))
    assert not [k for k in checkpoint["state_dict"] if "_orig_mod" in k]
    assert all(np.isfinite(h["loss"]) for h in history)
    # Learns (chance is 0.25); compiled numerics differ a little from eager ones.
    assert checkpoint["metrics"]["val"]["balanced_accuracy"] >= 0.75
    model = classifier.classifier_from_checkpoint(checkpoint)  # strict load of every key
    assert sum(p.numel() for p in model.parameters()) > 0


def test_phase_stores_hold_only_this_runs_checkpoints(tmp_path, caplog) -> None:
    """A run interrupted in warm-up must not resume into an older run's fine-tuning."""
    from skin_lesion.checkpoints import CheckpointStore

    def leftovers(warmup_done: int | None) -> CheckpointStore:
        store = CheckpointStore(tmp_path / "runs")
        store.child("finetune").save({"epoch": 1, "epochs": 4, "stopped": False})  # older run
        if warmup_done is not None:
            store.child("warmup").save({"epoch": warmup_done - 1, "epochs": 2, "stopped": False})
        return store

    # Fresh: both phases discarded before phase 1, the interrupted ones named.
    store = leftovers(warmup_done=1)
    with caplog.at_level(logging.WARNING):
        clf.prepare_phase_stores(store, _config(resume=False, warmup=clf.WarmupConfig(epochs=2)))
    assert store.child("warmup").latest() is None and store.child("finetune").latest() is None
    assert "fine-tune: starting over" in caplog.text and "warm-up: starting over" in caplog.text
    # Resuming behind an unfinished (or absent) warm-up: the fine-tune checkpoint is not ours.
    for done in (None, 1):
        store = leftovers(warmup_done=done)
        clf.prepare_phase_stores(store, _config(resume=True, warmup=clf.WarmupConfig(epochs=2)))
        assert store.child("finetune").latest() is None, done
    # Resuming after a complete warm-up (or none planned): it is this run's, kept.
    for done, epochs in ((2, 2), (None, 0)):
        store = leftovers(warmup_done=done)
        clf.prepare_phase_stores(
            store, _config(resume=True, warmup=clf.WarmupConfig(epochs=epochs))
        )
        assert store.child("finetune").latest()["epoch"] == 1


@pytest.mark.parametrize(("alpha", "warned"), [("inverse", False), ((1.0, 2.0, 1.0, 1.0), True)])
def test_cross_entropy_warns_of_an_alpha_only_when_one_was_chosen(caplog, alpha, warned):
    # 'inverse' is LossConfig's default, there for focal: it warned on every such run.
    config = _config(
        loss=clf.LossConfig(name="cross_entropy", alpha=alpha),
        warmup=clf.WarmupConfig(epochs=1),
        finetune=clf.FinetuneConfig(epochs=0),
    )
    with caplog.at_level(logging.WARNING, logger="skin_lesion"):
        _train(config, n=32)
    assert ("only used by the focal loss" in caplog.text) is warned


@pytest.mark.parametrize("mode", ["update", "fixed"])
def test_frozen_stages_batchnorm_updates_or_stays_fixed_as_configured(mode):
    torch.manual_seed(0)
    model = classifier.Classifier(supcon.build_model(ENCODER, supcon.ProjectionConfig()).encoder, 4)
    config = clf.FinetuneConfig(unfreeze_stages=2, frozen_batchnorm=mode)
    clf.build_finetune_optimizer(model, config)
    model.train()

    def stats(bn_weights_trained: bool) -> list[torch.Tensor]:
        return [
            m.running_mean.clone()
            for m in model.encoder.modules()
            if isinstance(m, nn.BatchNorm2d) and m.weight.requires_grad is bn_weights_trained
        ]

    frozen_before, trained_before = stats(False), stats(True)
    assert frozen_before and trained_before
    model(torch.rand(4, 3, 24, 24))
    frozen_changed = [not torch.equal(a, b) for a, b in zip(frozen_before, stats(False))]
    trained_changed = [not torch.equal(a, b) for a, b in zip(trained_before, stats(True))]
    assert all(trained_changed)
    assert (all if mode == "update" else lambda c: not any(c))(frozen_changed)
    model.eval()  # and eval() still turns every layer to eval
    assert not any(m.training for m in model.modules())


@pytest.mark.parametrize(
    "mix",
    [
        clf.MixConfig(mixup_alpha=0.4),
        clf.MixConfig(cutmix_alpha=1.0),
        clf.MixConfig(mixup_alpha=0.4, cutmix_alpha=1.0, switch_prob=0.5, prob=0.7),
    ],
)
def test_batch_mix_mixes_the_metadata_as_the_images_and_targets(mix):
    """timm's Mixup left the metadata unmixed: a mixed image kept one patient's age, sex and
    site under a target partly the other image's class."""
    from timm.data import Mixup

    timm_mix = Mixup(
        mixup_alpha=mix.mixup_alpha, cutmix_alpha=mix.cutmix_alpha, prob=mix.prob,
        switch_prob=mix.switch_prob, label_smoothing=0.0, num_classes=3,
    )  # fmt: skip
    ours = clf.BatchMix(mix, 3)
    labels = torch.tensor([0, 1, 2, 0])
    meta = torch.arange(4, dtype=torch.float32)[:, None] * torch.tensor([[1.0, 10.0]])
    mixed_any = False
    for draw in range(20):
        images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(draw))
        np.random.seed(draw)
        want_x, want_target = timm_mix(images.clone(), labels)
        np.random.seed(draw)
        x, target, mixed = ours(images.clone(), labels, meta)
        # Without metadata, the same images and targets as timm's Mixup.
        torch.testing.assert_close(x, want_x)
        torch.testing.assert_close(target, want_target)
        # The metadata mixed with the lam the target got (sample 0 pairs with sample 3,
        # both class 0; sample 1 with sample 2: its target keeps lam of class 1).
        lam = float(target[1, 1])
        torch.testing.assert_close(mixed, meta * lam + meta.flip(0) * (1 - lam))
        mixed_any |= lam < 1.0
    assert mixed_any
    # No metadata (no fusion): none comes back.
    assert ours(torch.rand(4, 3, 16, 16), labels)[2] is None
