import itertools
import logging
import math
import warnings

import pytest
import torch
from torch import nn

from skin_lesion import engine
from skin_lesion.batches import BatchSource
from skin_lesion.checkpoints import CheckpointStore
from skin_lesion.engine import ResumeMismatchError
from skin_lesion.input_errors import input_error_types


def _problem(n: int = 64):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 4, 4, 3), generator=g, dtype=torch.uint8).numpy()
    labels = (images.reshape(n, -1).mean(1) > 127).astype("int64")
    return images, labels


def _step(model, batch):
    x = batch.images.float().flatten(1) / 255.0
    return nn.functional.cross_entropy(model(x), batch.labels)


def _fit(store, epochs, resume=False, crash_at=None, monkeypatch=None, compiled=False, params=None):
    params = {"lr": 0.05} if params is None else params
    torch.manual_seed(0)
    images, labels = _problem()
    model = nn.Sequential(nn.Linear(48, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    source = BatchSource(
        images, labels, torch.arange(64).numpy(), batch_size=8, device=torch.device("cpu"), seed=1
    )
    cfg = engine.OptimConfig(lr=0.05, warmup_epochs=0.5)
    opt = engine.build_optimizer([{"params": model.parameters()}], cfg)
    sched = engine.build_scheduler(opt, cfg, len(source), epochs)
    step = _step
    if crash_at is not None:

        def step(model, batch, _seen=[0]):  # noqa: B006
            _seen[0] += 1
            if _seen[0] > crash_at * len(source):
                raise RuntimeError("power cut")
            return _step(model, batch)

    # As the training nodes do with compile: true: fit gets the torch.compile wrapper, the
    # checkpoint the plain module's state dict. (The eager backend keeps the test fast; the
    # wrapper and its "_orig_mod." keys are the same with any backend.)
    history = engine.fit(
        torch.compile(model, backend="eager") if compiled else model,
        step,
        source,
        opt,
        sched,
        engine.Precision(torch.device("cpu")),
        epochs=epochs,
        grad_clip=1.0,
        store=store,
        resume=resume,
        progress=False,
        describe=lambda e, h: {"state_dict": model.state_dict(), "params": params},
    )
    return model, history


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    full, full_history = _fit(CheckpointStore(tmp_path / "a"), epochs=4)
    store = CheckpointStore(tmp_path / "b")
    with pytest.raises(RuntimeError, match="power cut"):
        _fit(store, epochs=4, crash_at=2)
    assert store.latest()["epoch"] == 1
    resumed, history = _fit(store, epochs=4, resume=True)
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    for (name, a), (_, b) in zip(
        full.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert [h["loss"] for h in history] == [h["loss"] for h in full_history]


@pytest.mark.parametrize("first, then", [(None, torch.float16), (torch.float16, None)])
def test_resume_across_loss_scaling_on_and_off(tmp_path, monkeypatch, first, then):
    """A run saved without loss scaling (bf16 or float32: its disabled scaler saves {})
    resumed where fp16 scaling is on, e.g. on a T4 after an A100, raised in GradScaler's
    load_state_dict; the scaler starts afresh instead. The other way round loads too."""
    store = CheckpointStore(tmp_path / "run")
    monkeypatch.setattr(engine, "autocast_dtype", lambda device: first)
    _fit(store, epochs=2)
    monkeypatch.setattr(engine, "autocast_dtype", lambda device: then)
    _, history = _fit(store, epochs=3, resume=True)
    assert [h["epoch"] for h in history] == [0, 1, 2]


def test_resume_with_nothing_to_resume_says_so_and_starts_over(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="skin_lesion.engine"):
        _, history = _fit(CheckpointStore(tmp_path / "empty"), epochs=2, resume=True)
    assert [h["epoch"] for h in history] == [0, 1]
    assert "resume asked, but" in caplog.text and "holds no checkpoint" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skin_lesion.engine"):
        _fit(CheckpointStore(tmp_path / "other"), epochs=1)  # a fresh run asked for nothing
    assert "resume asked" not in caplog.text


def test_resume_into_a_compiled_model(tmp_path):
    """The checkpoint holds the plain module's keys; resuming loads them into the module the
    compile wrapper holds, not into the wrapper (whose keys carry ``_orig_mod.``)."""
    full, _ = _fit(CheckpointStore(tmp_path / "a"), epochs=3)
    store = CheckpointStore(tmp_path / "b")
    with pytest.raises(RuntimeError, match="power cut"):
        _fit(store, epochs=3, crash_at=1, compiled=True)
    resumed, history = _fit(store, epochs=3, resume=True, compiled=True)
    assert [h["epoch"] for h in history] == [0, 1, 2]
    for (name, a), (_, b) in zip(
        full.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_history_reports_falling_loss_and_throughput(tmp_path):
    _, history = _fit(None, epochs=5)
    assert set(history[0]) == {"epoch", "loss", "lr", "img_per_s", "seconds"}
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(h["img_per_s"] > 0 for h in history)


def test_fresh_run_over_an_interrupted_one_warns_and_a_finished_one_does_not(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    with pytest.raises(RuntimeError, match="power cut"):
        _fit(store, epochs=4, crash_at=2)
    with caplog.at_level(logging.WARNING, logger="skin_lesion.engine"):
        _fit(store, epochs=2)  # resume not asked: the interrupted run is discarded
    assert "interrupted run in" in caplog.text and "(2 of 4 epochs done)" in caplog.text
    assert "set resume: true" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skin_lesion.engine"):
        _fit(store, epochs=3)  # the previous run finished its 2 epochs: nothing lost
    assert "interrupted" not in caplog.text
    # A store saved before the planned length was recorded: no guess, no warning.
    with pytest.raises(RuntimeError, match="power cut"):
        _fit(store, epochs=4, crash_at=1)
    state = store.latest()
    del state["epochs"]
    store.save(state)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skin_lesion.engine"):
        _fit(store, epochs=2)
    assert "interrupted" not in caplog.text


def test_fresh_run_clears_old_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path)
    _fit(store, epochs=2)
    _, history = _fit(store, epochs=1, resume=False)
    assert len(history) == 1 and store.latest()["epoch"] == 0


def test_resume_refuses_other_parameters(tmp_path):
    store = CheckpointStore(tmp_path)
    _fit(store, epochs=1)
    state = store.latest()
    state["params"] = {"lr": 0.1}
    store.save(state)
    with pytest.raises(
        ResumeMismatchError, match=r"cannot resume: the saved run differs in lr: 0.1 before"
    ):
        _fit(store, epochs=2, resume=True)
    # An error in the run's input: one line on the command line, not Kedro's traceback.
    assert issubclass(ResumeMismatchError, input_error_types())


def test_resume_of_a_run_saved_before_the_split_was_recorded(tmp_path):
    store = CheckpointStore(tmp_path)
    _fit(store, epochs=1, params={"lr": 0.05})
    _fit(store, epochs=2, resume=True, params={"lr": 0.05, "split_sha256": "a" * 64})
    assert store.latest()["epoch"] == 1  # resumed: the older run had no split to compare
    state = store.latest()
    state["params"] = {"lr": 0.05, "split_sha256": "b" * 64}
    store.save(state)
    with pytest.raises(ValueError, match=r"split_sha256: 'bbb.*The splits changed since"):
        _fit(store, epochs=3, resume=True, params={"lr": 0.05, "split_sha256": "a" * 64})


def test_resume_of_a_run_saved_before_a_settings_group_was_recorded(tmp_path):
    store = CheckpointStore(tmp_path)
    older = {"lr": 0.05, "settings": {"train": {"lr": 0.05}}}
    _fit(store, epochs=1, params=older)
    newer = {"lr": 0.05, "settings": {"train": {"lr": 0.05}, "encoder": {"name": "x"}}}
    _fit(store, epochs=2, resume=True, params=newer)
    assert store.latest()["epoch"] == 1  # resumed: the older run had no encoder to compare
    # Once recorded, a group is compared like any other parameter.
    other = {"lr": 0.05, "settings": {"train": {"lr": 0.05}, "encoder": {"name": "y"}}}
    with pytest.raises(ValueError, match=r"differs in encoder.name: 'x' before, now 'y'\. "):
        _fit(store, epochs=3, resume=True, params=other)


def test_resume_compares_a_group_with_its_defaults_filled_in_and_names_a_change_once(tmp_path):
    # The classifier records its group as given and, under settings, filled in.
    store = CheckpointStore(tmp_path)
    given = {"train": {"lr": 0.05}, "settings": {"train": {"lr": 0.05, "epochs": 3}}}
    _fit(store, epochs=1, params=given)
    at_default = {"train": {"lr": 0.05, "epochs": 3}, "settings": given["settings"]}
    _fit(store, epochs=2, resume=True, params=at_default)  # a default given: no change
    assert store.latest()["epoch"] == 1
    changed = {"train": {"lr": 0.1}, "settings": {"train": {"lr": 0.1, "epochs": 3}}}
    with pytest.raises(ValueError, match=r"differs in train.lr: 0.05 before, now 0.1\. ") as err:
        _fit(store, epochs=3, resume=True, params=changed)
    assert "settings" not in str(err.value)


def test_parameter_differences_name_each_changed_key():
    saved = {"seed": 1, "train": {"lr": 0.1, "epochs": 3, "augment": {"p": 0.5}}, "old": 1}
    now = {"seed": 1, "train": {"lr": 0.2, "epochs": 3, "augment": {"p": 0.4}}, "new": 2}
    assert engine.parameter_differences(saved, now) == [
        "new: unset before, now 2",
        "old: 1 before, now unset",
        "train.augment.p: 0.5 before, now 0.4",
        "train.lr: 0.1 before, now 0.2",
    ]
    assert engine.parameter_differences(saved, saved) == []


def test_nan_loss_names_epoch_and_step():
    model = nn.Linear(2, 1)
    batches = [(torch.ones(4, 2), torch.zeros(4))] * 5
    calls = []

    def step(model, batch):
        calls.append(1)
        loss = model(batch[0]).pow(2).mean()
        return loss * math.nan if len(calls) == 4 else loss

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    with pytest.raises(engine.NonFiniteLossError, match="nan at epoch 7, step 3"):
        engine.train_one_epoch(
            model,
            step,
            batches,
            opt,
            sched,
            engine.Precision(torch.device("cpu")),
            epoch=7,
            grad_clip=None,
            progress=False,
        )


def test_scheduler_warms_up_then_decays_to_min():
    p = nn.Parameter(torch.zeros(2, 2))
    cfg = engine.OptimConfig(lr=1.0, warmup_epochs=1.0, min_lr_ratio=0.1)
    opt = engine.build_optimizer([{"params": [p]}], cfg)
    sched = engine.build_scheduler(opt, cfg, steps_per_epoch=10, epochs=3)
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=0.01)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))


def test_optimizer_groups_scale_lr_and_skip_decay_on_biases():
    enc, head = nn.Linear(3, 3), nn.Linear(3, 2)
    cfg = engine.OptimConfig(lr=1e-3, weight_decay=0.05)
    opt = engine.build_optimizer(
        [
            {"params": enc.parameters(), "lr_scale": 0.1, "name": "encoder"},
            {"params": head.parameters(), "name": "head"},
        ],
        cfg,
    )
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["encoder"]["lr"] == pytest.approx(1e-4)
    assert groups["head"]["lr"] == pytest.approx(1e-3)
    assert groups["head/no_decay"]["weight_decay"] == 0.0
    assert groups["head"]["weight_decay"] == 0.05


def test_a_vits_position_embedding_and_class_token_get_no_weight_decay():
    """As timm's param_groups_weight_decay: the names a model's no_weight_decay() lists are
    exempt, found in the encoder inside our wrappers (a 2-D pos_embed otherwise decays)."""
    from skin_lesion.classifier import Classifier
    from skin_lesion.models import ContrastiveModel, create_encoder

    cfg = engine.OptimConfig(lr=1e-3, weight_decay=0.05)
    encoder = create_encoder("vit_tiny_patch16_224", img_size=32, patch_size=16, depth=1)
    for model in (Classifier(encoder, 7), ContrastiveModel(encoder)):
        exempt = engine.no_weight_decay_parameters(model)
        assert {id(p) for p in exempt} == {id(encoder.pos_embed), id(encoder.cls_token)}
        opt = engine.build_optimizer([{"params": model.parameters()}], cfg, no_decay=exempt)
        decayed = {id(p) for g in opt.param_groups if g["weight_decay"] for p in g["params"]}
        assert id(encoder.pos_embed) not in decayed and id(encoder.cls_token) not in decayed
        assert id(encoder.patch_embed.proj.weight) in decayed
    # A CNN declares none: its groups are as before.
    assert engine.no_weight_decay_parameters(nn.Sequential(nn.Conv2d(3, 4, 3))) == []


def test_resolve_device():
    assert engine.resolve_device("cpu").type == "cpu"
    assert engine.resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="'cuda'"):
            engine.resolve_device("cuda")


def test_fp16_steps_skipped_for_overflow_do_not_advance_the_schedule(monkeypatch):
    """With loss scaling, a step whose gradients overflow is skipped; so is its LR step."""
    monkeypatch.setattr(engine, "autocast_dtype", lambda device: torch.float16)
    precision = engine.Precision(torch.device("cpu"))
    assert precision.name == "fp16" and precision.scaler.is_enabled()
    precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**30)  # overflows at first
    model = nn.Linear(2, 1)
    batches = [(torch.ones(4, 2), torch.zeros(4))] * 30
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine.train_one_epoch(
            model,
            lambda m, b: m(b[0]).float().pow(2).mean(),
            batches,
            opt,
            sched,
            precision,
            epoch=0,
            grad_clip=1.0,
            progress=False,
        )
    skipped = round(math.log2(2.0**30 / precision.scaler.get_scale()))
    assert 0 < skipped < len(batches)
    assert sched.last_epoch == len(batches) - skipped
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]


def test_channels_last_where_it_pays():
    """NHWC on CUDA and the CPU (oneDNN convolutions), when asked; never elsewhere."""
    assert engine.use_channels_last(torch.device("cpu"), True)
    assert engine.use_channels_last(torch.device("cuda"), True)
    assert not engine.use_channels_last(torch.device("cpu"), False)
    assert not engine.use_channels_last(torch.device("mps"), True)


@pytest.mark.parametrize("requested", [True, False])
def test_place_model_sets_the_memory_format_it_reports(requested):
    """place_model moves the model and says truthfully whether its conv weights are NHWC."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    nhwc = engine.place_model(model, torch.device("cpu"), requested)
    weight = model[0].weight
    assert nhwc is requested
    assert weight.is_contiguous(memory_format=torch.channels_last) == requested
    assert weight.is_contiguous() == (not requested)
    assert weight.device.type == "cpu"


def test_the_history_reports_the_heads_learning_rate_not_the_first_groups():
    # Fine-tuning lists the encoder first, at encoder_lr_scale x the head's rate: the
    # training-curves figure showed a drop of 10x between the phases that never happened.
    encoder, head = nn.Linear(2, 2), nn.Linear(2, 1)
    optimizer = torch.optim.SGD(
        [
            {"params": encoder.parameters(), "lr": 1e-4, "name": "encoder"},
            {"params": head.parameters(), "lr": 1e-3, "name": "head"},
        ]
    )
    assert engine.reported_lr(optimizer) == pytest.approx(1e-3)
    assert engine.reported_lr(torch.optim.SGD(encoder.parameters(), lr=0.5)) == 0.5


def test_resume_refuses_another_image_cache_or_starting_encoder(tmp_path):
    # Both used to go unseen: data_processing or contrastive_pretraining run again between
    # the interruption and the resumption, and training went on from the old state.
    from skin_lesion.lineage import CACHE_KEY, ENCODER_KEY

    store = CheckpointStore(tmp_path)
    made = {"lr": 0.05, CACHE_KEY: {"height": 256}, ENCODER_KEY: "a" * 64}
    _fit(store, epochs=1, params=made)
    _fit(store, epochs=2, resume=True, params=made)  # the same inputs: resumed
    assert store.latest()["epoch"] == 1
    with pytest.raises(
        ValueError, match=r"cache_preprocessing.height: 256 before, now 224\. The im"
    ):
        _fit(store, epochs=3, resume=True, params={**made, CACHE_KEY: {"height": 224}})
    with pytest.raises(ValueError, match=r"encoder_sha256: 'aaa.*The encoder it starts from"):
        _fit(store, epochs=3, resume=True, params={**made, ENCODER_KEY: "b" * 64})
    # A run saved before these were recorded resumes, as with the split.
    old = CheckpointStore(tmp_path / "old")
    _fit(old, epochs=1, params={"lr": 0.05})
    _fit(old, epochs=2, resume=True, params=made)
    assert old.latest()["epoch"] == 1


def test_steps_skipped_for_overflow_update_neither_schedule_nor_ema(monkeypatch):
    # fp16 with a start scale far above its range: the first steps overflow and are skipped
    # (GradScaler lowers the scale); the EMA was updated on them all the same.
    monkeypatch.setattr(engine, "autocast_dtype", lambda device: torch.float16)
    precision = engine.Precision(torch.device("cpu"))
    precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(30)]
    updates = []
    engine.train_one_epoch(
        model,
        lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]),
        batches,
        optimizer,
        scheduler,
        precision,
        epoch=0,
        grad_clip=None,
        progress=False,
        after_step=lambda m: updates.append(1),
    )
    taken = scheduler.last_epoch  # the schedule follows the optimizer's real steps
    assert 0 < taken < len(batches)  # some steps were skipped, some taken
    assert len(updates) == taken


def test_a_run_saved_before_a_setting_existed_resumes_at_its_old_behaviour(tmp_path):
    # finetune.frozen_batchnorm came later: its absence in an interrupted run's settings is
    # "update", what runs did before; the raw group recorded it as given (not at all).
    store = CheckpointStore(tmp_path)
    finetune = {"epochs": 3}
    old = {"classifier_training": {}, "settings": {"classifier_training": {"finetune": finetune}}}
    _fit(store, epochs=1, params=old)
    now = {
        "classifier_training": {},
        "settings": {
            "classifier_training": {"finetune": {**finetune, "frozen_batchnorm": "update"}}
        },
    }
    _fit(store, epochs=2, resume=True, params=now)
    assert store.latest()["epoch"] == 1
    fixed = {
        "classifier_training": {},
        "settings": {
            "classifier_training": {"finetune": {**finetune, "frozen_batchnorm": "fixed"}}
        },
    }
    with pytest.raises(
        ValueError, match=r"finetune.frozen_batchnorm: 'update' before, now 'fixed'"
    ):
        _fit(store, epochs=3, resume=True, params=fixed)


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((7, 0), torch.float16),
        ((7, 5), torch.float16),
        ((8, 0), torch.bfloat16),
        ((9, 0), torch.bfloat16),
    ],
)
def test_autocast_dtype_is_bf16_only_where_the_gpu_has_it_natively(
    monkeypatch, capability, expected
):
    # is_bf16_supported() counts emulation: a T4 (7.5) or V100 (7.0) got slow emulated bf16
    # and the fp16 + GradScaler path never ran. The device asked about is the one given.
    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(
        torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability
    )
    assert engine.autocast_dtype(torch.device("cuda:1")) is expected
    assert asked == [torch.device("cuda:1")]
    assert engine.autocast_dtype(torch.device("cpu")) is None


def test_cuda_rng_states_restore_on_a_machine_with_fewer_gpus(monkeypatch):
    # A checkpoint saved on a 4-GPU node keeps four CUDA states; set_rng_state_all failed on
    # a 1-GPU node for the missing ordinals.
    restored = []

    def set_state(state, device="cuda"):
        if device not in (0, "cuda"):
            raise RuntimeError(f"Invalid device ordinal {device}")
        restored.append(state)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_state)
    saved = [torch.full((8,), i, dtype=torch.uint8) for i in range(4)]
    engine.set_rng_state({"torch": torch.get_rng_state(), "cuda": saved})
    assert len(restored) == 1 and torch.equal(restored[0], saved[0])


def test_resume_names_a_setting_or_preprocessing_change_not_other_data() -> None:
    """metadata_fusion switched records a metadata fingerprint one side lacks, and other
    preprocessing makes other pixels: neither is data replaced since the run started."""
    from skin_lesion.engine import _check_resumable

    def run(**params) -> dict:
        return {"params": {"cache_preprocessing": {"clahe": False}, **params}}

    saved = run(data_sha256={"images": "i"}, fusion=False)
    with pytest.raises(ValueError) as caught:
        _check_resumable(saved, run(data_sha256={"images": "i", "metadata": "m"}, fusion=True))
    assert "differs in fusion: False before, now True. Restore" in str(caught.value)
    assert "data_sha256" not in str(caught.value)
    other_cache = {
        "params": {"cache_preprocessing": {"clahe": True}, "data_sha256": {"images": "j"}}
    }
    with pytest.raises(ValueError) as caught:
        _check_resumable(run(data_sha256={"images": "i"}), other_cache)
    assert "cache_preprocessing.clahe" in str(caught.value)
    assert "data_sha256" not in str(caught.value)
    with pytest.raises(ValueError, match=r"differs in data_sha256.images: 'i' before, now 'j'"):
        _check_resumable(run(data_sha256={"images": "i"}), run(data_sha256={"images": "j"}))


def test_resume_refuses_the_same_images_cached_in_another_order(tmp_path):
    # Each epoch's batches are a permutation of the train images' positions in the cache, so
    # the same images cached in another order (an older version's cache, in the metadata's
    # row order, rebuilt in image_id order) train another model. Every recorded fingerprint
    # ignored the order, so resume went on, into a model that no uninterrupted run gives.
    import numpy as np
    import pandas as pd

    from skin_lesion.images import ImageCache
    from skin_lesion.pipelines.contrastive_pretraining import nodes as contrastive

    images, _ = _problem(8)
    ids = [f"ISIC_{i:07d}" for i in range(8)]
    splits = pd.DataFrame(
        {"image_id": ids, "label": [0, 1] * 4, "split": ["train"] * 6 + ["val"] * 2}
    )
    order = [3, 1, 0, 2, 5, 4, 7, 6]
    prep = {"height": 4, "width": 4}
    cached = ImageCache(images, tuple(ids), prep)
    reordered = ImageCache(np.ascontiguousarray(images[order]), tuple(ids[i] for i in order), prep)
    encoder = {"name": "test_efficientnet", "weights": "none"}

    def params(cache):
        return contrastive.run_params(cache, splits, encoder, {}, 0)

    store = CheckpointStore(tmp_path)
    _fit(store, epochs=1, params=params(cached))
    _fit(store, epochs=2, resume=True, params=params(cached))  # the same order: resumed
    assert store.latest()["epoch"] == 1
    with pytest.raises(ResumeMismatchError, match=r"train_order_sha256.*another order"):
        engine.check_resumable(store, params(reordered))
    # A run saved before the order was recorded resumes, as with the split.
    old = CheckpointStore(tmp_path / "old")
    saved = {k: v for k, v in params(cached).items() if k != "train_order_sha256"}
    _fit(old, epochs=1, params=saved)
    engine.check_resumable(old, params(reordered))
