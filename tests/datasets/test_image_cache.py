import json

import numpy as np
import pytest
from kedro.io import DatasetError

from skin_lesion.datasets import ImageCacheDataset
from skin_lesion.images import ImageCache


def _cache(n: int = 5) -> ImageCache:
    rng = np.random.default_rng(0)
    return ImageCache(
        images=rng.integers(0, 256, size=(n, 6, 8, 3), dtype=np.uint8),
        image_ids=tuple(f"ISIC_{i:07d}" for i in range(n)),
        preprocessing={"height": 6, "width": 8, "clahe": {"enabled": False}},
    )


@pytest.mark.parametrize("mmap_mode", ["r", None])
def test_save_then_load_round_trip(tmp_path, mmap_mode):
    cache = _cache()
    dataset = ImageCacheDataset(path=str(tmp_path / "cache"), mmap_mode=mmap_mode)
    assert not dataset.exists()
    dataset.save(cache)
    assert dataset.exists()
    loaded = dataset.load()
    np.testing.assert_array_equal(loaded.images, cache.images)
    assert loaded.images.dtype == np.uint8
    assert loaded.image_ids == cache.image_ids
    assert loaded.preprocessing == cache.preprocessing
    assert isinstance(loaded.images, np.memmap) == (mmap_mode == "r")


def test_overwrite_and_no_temporary_files_left(tmp_path):
    dataset = ImageCacheDataset(path=str(tmp_path))
    dataset.save(_cache(5))
    dataset.save(_cache(3))
    assert dataset.load().images.shape == (3, 6, 8, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.npy", "index.json"]


def test_missing_cache_says_how_to_build_it(tmp_path):
    with pytest.raises(DatasetError, match="kedro run --pipelines data_processing"):
        ImageCacheDataset(path=str(tmp_path / "none")).load()


def test_inconsistent_index_is_detected(tmp_path):
    dataset = ImageCacheDataset(path=str(tmp_path))
    dataset.save(_cache())
    index = json.loads((tmp_path / "index.json").read_text())
    index["shape"][0] = 99
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(DatasetError, match="inconsistent"):
        dataset.load()


def test_rejects_other_objects_and_bad_mode(tmp_path):
    with pytest.raises(DatasetError, match="Expected an ImageCache, got ndarray"):
        ImageCacheDataset(path=str(tmp_path)).save(np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"got 'w\+'"):
        ImageCacheDataset(path=str(tmp_path), mmap_mode="w+")


def test_cache_files_get_the_umask_permissions_not_mkstemp_0600(tmp_path):
    """A shared data folder's group (or a container running as another user) must be able
    to read the cache, as any file the process writes."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        cache = ImageCache(np.zeros((1, 4, 4, 3), np.uint8), ("a",), {"height": 4, "width": 4})
        ImageCacheDataset(path=str(tmp_path / "cache")).save(cache)
    finally:
        os.umask(old)
    for name in ("images.npy", "index.json"):
        assert stat.S_IMODE((tmp_path / "cache" / name).stat().st_mode) == 0o644, name


def test_urls_other_than_file_are_refused_and_a_file_url_is_the_local_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"ImageCacheDataset reads and writes local files only"):
        ImageCacheDataset(path="memory:///cache").save(_cache())
    assert list(tmp_path.iterdir()) == []  # was a folder named "memory:"
    dataset = ImageCacheDataset(path=(tmp_path / "cache").as_uri())
    dataset.save(_cache())
    assert (tmp_path / "cache" / "index.json").is_file() and dataset.exists()


def test_a_save_that_cannot_write_its_index_leaves_the_old_cache(tmp_path):
    dataset = ImageCacheDataset(path=str(tmp_path / "cache"), mmap_mode=None)
    dataset.save(_cache(3))
    bad = _cache(5)
    bad = ImageCache(bad.images, bad.image_ids, {"height": np.int64(6)})  # not JSON
    with pytest.raises(DatasetError, match="cannot record the cache's index"):
        dataset.save(bad)
    assert dataset.load().image_ids == _cache(3).image_ids


def test_the_pixels_digests_are_recorded_and_a_cache_saved_before_them_gets_them(tmp_path):
    cache = _cache()
    dataset = ImageCacheDataset(path=str(tmp_path / "cache"))
    dataset.save(cache)
    index_path = tmp_path / "cache" / "index.json"
    index = json.loads(index_path.read_text())
    assert index["image_sha256"] == list(cache.digests())
    # The recorded digests are what a load returns, not recomputed from the array.
    index["image_sha256"][0] = "0" * 64
    index_path.write_text(json.dumps(index))
    assert dataset.load().image_sha256[0] == "0" * 64
    # An index from before they were recorded: computed from the pixels at load.
    del index["image_sha256"]
    index_path.write_text(json.dumps(index))
    loaded = dataset.load()
    assert loaded.image_sha256 is None  # not read at load: hashed when first needed
    assert loaded.fingerprint() == cache.fingerprint()
    assert loaded.image_sha256 == cache.image_sha256
