import numpy as np
import pytest
import torch

from skin_lesion.batches import BatchSource, class_sampling_weights


def _source(**kwargs):
    images = np.arange(20 * 2 * 2 * 3, dtype=np.uint8).reshape(20, 2, 2, 3)
    labels = np.array([0] * 16 + [1] * 4)
    defaults = {"batch_size": 4, "device": torch.device("cpu"), "seed": 3}
    return BatchSource(images, labels, np.arange(20), **{**defaults, **kwargs}), images


def test_batches_gather_the_right_rows_and_labels():
    source, images = _source()
    seen = []
    for batch, labels, meta in source.epoch(0):
        assert meta is None
        assert batch.dtype == torch.uint8 and batch.shape == (4, 2, 2, 3)
        for img, label in zip(batch, labels, strict=True):
            row = int(np.flatnonzero((images == img.numpy()).all(axis=(1, 2, 3)))[0])
            seen.append(row)
            assert label == (0 if row < 16 else 1)
    assert sorted(seen) == list(range(20))  # uniform: a permutation, each image once
    assert len(source) == 5


def test_order_depends_on_seed_and_epoch_only():
    a, _ = _source()
    b, _ = _source()
    assert torch.equal(a.order(2), b.order(2))
    assert not torch.equal(a.order(2), a.order(3))
    c, _ = _source(seed=4)
    assert not torch.equal(a.order(2), c.order(2))


def test_each_stream_draws_orders_of_its_own_from_the_same_images():
    source, _ = _source()
    warmup, finetune = source.with_stream("warmup"), source.with_stream("finetune")
    assert warmup.images is source.images and source.stream == ""  # a view, no copy
    assert torch.equal(warmup.order(0), source.with_stream("warmup").order(0))
    assert not torch.equal(warmup.order(0), finetune.order(0))
    assert not torch.equal(warmup.order(0), source.order(0))
    # The default stream keeps the formula it had before streams (SupCon's earlier orders).
    earlier = torch.randperm(20, generator=torch.Generator().manual_seed(3 * 100_003 + 2))
    assert torch.equal(source.order(2), earlier)


def test_balanced_sampling_draws_classes_equally():
    source, _ = _source(sampling="balanced")
    drawn = torch.cat([source.order(e) for e in range(200)])
    minority = (drawn >= 16).float().mean()
    assert minority == pytest.approx(0.5, abs=0.03)


def test_sqrt_inverse_weights():
    w = class_sampling_weights(np.array([0, 0, 0, 0, 1]), "sqrt_inverse")
    # class 0: 4 * 1/2 = 2, class 1: 1 * 1 = 1 -> shares 2/3 and 1/3
    assert w[:4].sum() == pytest.approx(2 / 3) and w[4] == pytest.approx(1 / 3)
    assert class_sampling_weights(np.array([0, 1]), "uniform") is None
    with pytest.raises(ValueError, match="'weighted'"):
        class_sampling_weights(np.array([0, 1]), "weighted")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="selection is empty"):
        BatchSource(
            np.zeros((2, 1, 1, 3), np.uint8),
            np.zeros(2, int),
            np.array([], int),
            batch_size=1,
            device=torch.device("cpu"),
            seed=0,
        )
    with pytest.raises(ValueError, match="'gpu'"):
        _source(placement="gpu", device=torch.device("meta"))


@pytest.mark.gpu
def test_auto_placement_puts_small_cache_on_gpu():
    source, _ = _source(device=torch.device("cuda"))
    assert source.on_device and source.images.device.type == "cuda"
    batch, labels, _ = next(iter(source.epoch(0)))
    assert batch.device.type == "cuda" and labels.device.type == "cuda"


def test_meta_features_travel_with_their_images():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=3)
    meta = np.arange(10, dtype=np.float32)[:, None] * 2
    source = BatchSource(
        images,
        np.zeros(10, int),
        np.arange(10),
        batch_size=5,
        device=torch.device("cpu"),
        seed=0,
        meta=meta,
    )
    for batch in source.epoch(0):
        assert batch.meta.dtype == torch.float32
        assert torch.equal(batch.meta[:, 0], batch.images[:, 0, 0, 0].float() * 2)


@pytest.mark.parametrize(("n", "batch_size", "expected"), [(7, 32, 6), (8, 32, 8), (9, 5, 4)])
def test_even_batches_drop_one_more_image_when_clipped_or_given_odd(n, batch_size, expected):
    images = np.zeros((n, 4, 4, 3), np.uint8)
    source = BatchSource(
        images,
        np.zeros(n, np.int64),
        np.arange(n),
        batch_size=batch_size,
        device=torch.device("cpu"),
        seed=0,
        even=True,
    )
    assert source.batch_size == expected
    assert all(len(batch.labels) == expected for batch in source.epoch(0))


def test_even_batches_need_two_images():
    with pytest.raises(ValueError, match="only 1 image"):
        BatchSource(
            np.zeros((1, 4, 4, 3), np.uint8),
            np.zeros(1, np.int64),
            np.arange(1),
            batch_size=8,
            device=torch.device("cpu"),
            seed=0,
            even=True,
        )


def test_a_batch_larger_than_the_training_images_is_clipped_with_a_warning(caplog):
    """batch_size 1000 on 276 images trained with 276 while MLflow recorded 1000, unsaid."""
    with caplog.at_level("WARNING", logger="skin_lesion.batches"):
        source, _ = _source(batch_size=50)
    assert source.batch_size == 20 and len(source) == 1
    assert "batch_size 50 gives batches of 20 here (20 training images)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="skin_lesion.batches"):
        _source(batch_size=20)
    assert not caplog.records


def test_host_placement_on_cuda_keeps_one_unpinned_copy(monkeypatch):
    # Pinning the whole cache held a second, page-locked copy of it and served no copy to
    # the GPU: a batch gathered by index is a new tensor, pinned on its way (epoch).
    def pin(self):
        raise AssertionError("the whole cache was pinned")

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    source, images = _source(device=torch.device("cuda"), placement="host")
    assert not source.on_device
    assert np.array_equal(source.images.numpy(), images)


@pytest.mark.parametrize(("reserved", "expected"), [(0, False), (6_000, True)])
def test_auto_placement_counts_memory_the_allocator_holds_unused_as_free(
    monkeypatch, reserved, expected
):
    # mem_get_info counts blocks PyTorch's caching allocator keeps (pretraining's, earlier in
    # the same run) as used: the cache went to the host where it fits on the GPU.
    cache = 20 * 2 * 2 * 3  # bytes, the _source images
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * cache - 2, 10**9))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved + 1_000)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1_000)
    source = object.__new__(BatchSource)
    source.device = torch.device("cuda")
    assert source._place(torch.zeros(cache, dtype=torch.uint8), "auto") is expected


def test_a_class_absent_from_the_labels_gives_no_division_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's divide-by-zero RuntimeWarning fails here
        weights = class_sampling_weights(np.array([0, 0, 2, 2, 2]), "inverse")
    np.testing.assert_allclose(weights, [0.25, 0.25, 1 / 6, 1 / 6, 1 / 6])
