import functools
import logging

import numpy as np
import pytest
import torch

from skin_lesion import pretraining as supcon
from skin_lesion.augment import AugmentConfig, build_eval_transform
from skin_lesion.checkpoints import CheckpointStore
from skin_lesion.engine import OptimConfig
from skin_lesion.provenance import cpu_name
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


def _pretrain(config, store=None, seed=0, images=None, val=0):
    """SupCon on 64 generated images; ``val`` more after them as the validation split."""
    images, labels = images or _images(64 + val)
    return supcon.pretrain(
        images,
        labels,
        np.arange(64),
        encoder=ENCODER,
        config=config,
        seed=seed,
        device=torch.device("cpu"),
        cache_preprocessing={"height": 24, "width": 24},
        params={"x": 1},
        store=store,
        val_indices=np.arange(64, 64 + val),
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
    # The eval settings recorded are the ones evaluation applies (timm's pretrained eval,
    # 224 px bicubic at crop_pct 0.875, was recorded and applied nowhere).
    prep = checkpoint["preprocessing"]
    assert (prep["input_size"], prep["interpolation"], prep["crop_pct"], prep["crop_mode"]) == (
        [3, 24, 24],
        "bilinear",
        1.0,
        "center",
    )
    recorded = build_eval_transform(
        24,
        prep["mean"],
        prep["std"],
        crop_pct=prep["crop_pct"],
        interpolation=prep["interpolation"],
    )
    batch = torch.from_numpy(_images(2)[0])
    assert torch.equal(recorded(batch), build_eval_transform(24, prep["mean"], prep["std"])(batch))
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


def test_checkpoint_records_the_device_it_was_trained_on():
    checkpoint, _ = _pretrain(_config(epochs=1))
    assert checkpoint["trained_on"] == {"type": "cpu", "name": cpu_name()}


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


def test_compiled_pretraining_saves_a_plain_checkpoint(monkeypatch):
    """``compile: true`` (torch.compile on the CPU): no ``_orig_mod.`` keys, loss falls.
    TorchDynamo's capture and AOTAutograd run as in a real compile; Inductor's C++ code
    generation (about a minute on 2 cores) is left to the GPU test, which compiles both
    training nodes with it (``tests/test_gpu.py``)."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    checkpoint, history = _pretrain(_config(compile=True))
    assert not [k for k in checkpoint["state_dict"] if "_orig_mod" in k]
    assert all(np.isfinite(h["loss"]) for h in history)
    assert np.mean([h["loss"] for h in history[-2:]]) < history[0]["loss"]
    supcon.model_from_checkpoint(checkpoint)  # strict load of every key


# ----- kNN monitor ----------------------------------------------------------------------


def _brute_force_knn(train, train_labels, query, k, temperature):
    """The monitor's rule written out one query at a time, in float64 numpy."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    classes = int(train_labels.max()) + 1
    prior = np.bincount(train_labels, minlength=classes) / len(train_labels)
    predicted = []
    for q in query:
        similarity = train @ q
        nearest = np.argsort(-similarity, kind="stable")[:k]
        votes = np.zeros(classes)
        for i in nearest:
            votes[train_labels[i]] += np.exp(similarity[i] / temperature)
        predicted.append(np.argmax(votes / votes.sum() / prior))
    return np.array(predicted)


def test_knn_scores_match_a_brute_force_vote():
    from sklearn.metrics import balanced_accuracy_score, f1_score

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    train_labels = rng.choice(4, size=300, p=[0.7, 0.15, 0.1, 0.05])
    query_labels = rng.integers(0, 4, size=90)
    train = centres[train_labels] + rng.normal(scale=1.2, size=(300, 16))
    query = centres[query_labels] + rng.normal(scale=1.2, size=(90, 16))
    expected = _brute_force_knn(train, train_labels, query, k=25, temperature=0.1)
    scores = supcon.knn_scores(
        torch.tensor(train, dtype=torch.float32),
        torch.from_numpy(train_labels),
        torch.tensor(query, dtype=torch.float32),
        torch.from_numpy(query_labels),
        k=25,
        temperature=0.1,
        chunk=32,  # several similarity blocks
    )
    assert scores["val_knn_balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(query_labels, expected)
    )
    assert scores["val_knn_macro_f1"] == pytest.approx(
        f1_score(query_labels, expected, average="macro")
    )
    assert 0.4 < scores["val_knn_balanced_accuracy"] < 1.0  # neither trivial nor perfect


def test_knn_votes_do_not_underflow_at_a_small_temperature():
    """Queries far from every train image at temperature 0.005: exp((s - 1) / t) underflowed
    to all-zero votes, 0/0 shares, and class 0 for every query."""
    train = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).repeat(5, 1)
    train_labels = torch.tensor([0, 1] * 5)
    query = torch.tensor([[0.1, 1.0, 2.0], [1.0, 0.1, 2.0]])  # cosine <= 0.45 with any
    query_labels = torch.tensor([1, 0])
    scores = supcon.knn_scores(train, train_labels, query, query_labels, k=4, temperature=0.005)
    assert scores["val_knn_balanced_accuracy"] == 1.0


def test_pretraining_accepts_square_root_sampling():
    from skin_lesion.config import from_dict

    params = {"sampling": "sqrt_inverse"}
    assert from_dict(supcon.PretrainConfig, params, "cp").sampling == "sqrt_inverse"
    _, history = _pretrain(_config(epochs=1, sampling="sqrt_inverse"))
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    # HAM10000's train split: a rare class appears at least twice in nearly every batch.
    from skin_lesion.batches import BatchSource

    counts = [229, 360, 769, 80, 779, 4694, 99]  # 70% of akiec .. vasc
    train_labels = np.repeat(np.arange(7), counts)
    source = BatchSource(
        np.zeros((len(train_labels), 1, 1, 3), np.uint8),
        train_labels,
        np.arange(len(train_labels)),
        batch_size=128,
        device=torch.device("cpu"),
        seed=0,
        sampling="sqrt_inverse",
    )
    df = [int((batch.labels == 3).sum()) for batch in source.epoch(0)]
    assert np.mean(np.array(df) >= 2) > 0.9


def test_knn_votes_are_divided_by_the_class_prior():
    """Six majority and four minority neighbours, all equally similar: the minority wins."""
    direction = torch.tensor([[1.0, 0.0]])
    train = torch.cat([direction.repeat(10, 1), torch.tensor([[0.0, 1.0]]).repeat(90, 1)])
    train_labels = torch.tensor([0] * 6 + [1] * 4 + [0] * 90)  # class 1 is 4% of train
    query_labels = torch.tensor([1])
    scores = supcon.knn_scores(train, train_labels, direction, query_labels, k=10, temperature=0.07)
    assert scores["val_knn_balanced_accuracy"] == 1.0
    # Plain votes (6 against 4) would have said class 0: balanced accuracy 0.


def test_knn_never_predicts_a_class_missing_from_train_and_caps_k():
    train = torch.eye(3)[[0, 0, 1, 1]]
    train_labels = torch.tensor([0, 0, 1, 1])
    query = torch.eye(3)[[0, 1, 2]]
    query_labels = torch.tensor([0, 1, 2])  # class 2 has no train image
    scores = supcon.knn_scores(train, train_labels, query, query_labels, k=50, temperature=0.1)
    assert scores["val_knn_balanced_accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="needs train and query images, got 4 and 0"):
        supcon.knn_scores(train, train_labels, query[:0], query_labels[:0], k=5, temperature=0.1)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"k": -1}, "k"),
        ({"every": 0}, "every"),
        ({"temperature": 0.0}, "knn_monitor.temperature must be > 0"),
    ],
)
def test_knn_monitor_settings_are_checked(bad, message):
    with pytest.raises(ValueError, match=message):
        supcon.KnnMonitorConfig(**bad)


def test_knn_monitor_scores_the_epochs_asked_and_leaves_the_weights_alone():
    monitor = supcon.KnnMonitorConfig(k=10, every=2)
    images, labels = _images(80)
    checkpoint, history = _pretrain(
        _config(epochs=3, knn_monitor=monitor), images=(images, labels), val=16
    )
    scored = [h["epoch"] for h in history if "val_knn_balanced_accuracy" in h]
    assert scored == [1, 2]  # every 2nd epoch, and the last
    assert all(h["knn_seconds"] > 0 for h in history if h["epoch"] in scored)
    # The last score is the final encoder's, recomputed from its checkpoint alone.
    model = supcon.model_from_checkpoint(checkpoint)
    features = [
        supcon.embed(
            model,
            images,
            rows,
            preprocessing=checkpoint["preprocessing"],
            device=torch.device("cpu"),
            progress=False,
        )[0]
        for rows in (np.arange(64), np.arange(64, 80))
    ]
    again = supcon.knn_scores(
        torch.from_numpy(features[0]),
        torch.from_numpy(labels[:64]),
        torch.from_numpy(features[1]),
        torch.from_numpy(labels[64:]),
        k=10,
        temperature=monitor.temperature,
    )
    assert history[-1]["val_knn_balanced_accuracy"] == pytest.approx(
        again["val_knn_balanced_accuracy"]
    )
    # Off (k = 0): no scores, and bit-identical weights and losses.
    off, off_history = _pretrain(
        _config(epochs=3, knn_monitor=supcon.KnnMonitorConfig(k=0)), images=(images, labels), val=16
    )
    assert not any("val_knn_balanced_accuracy" in h for h in off_history)
    assert [h["loss"] for h in off_history] == [h["loss"] for h in history]
    for name, value in off["state_dict"].items():
        assert torch.equal(value, checkpoint["state_dict"][name]), name


def test_knn_monitor_without_validation_images_warns_and_trains(caplog):
    with caplog.at_level(logging.WARNING, logger="skin_lesion"):
        _, history = _pretrain(_config(epochs=1))  # val = 0: no validation images
    assert "no validation images; monitor off" in caplog.text
    assert "val_knn_balanced_accuracy" not in history[0]
