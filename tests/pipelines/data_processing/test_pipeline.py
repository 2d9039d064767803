"""End-to-end runs of data_processing through a Kedro session on generated data."""

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from tests.conftest import TEST_IMAGES, run_kedro

pytestmark = pytest.mark.slow


def test_kedro_run_data_processing(kedro_project):
    run_kedro(kedro_project, "data_processing")
    root = kedro_project / "data" / "test"
    splits = pd.read_parquet(root / "05_model_input" / "splits.parquet")
    assert len(splits) == TEST_IMAGES
    assert splits.groupby("lesion_id")["split"].nunique().max() == 1
    for split in ("train", "val", "test"):
        assert splits.loc[splits["split"] == split, "dx"].nunique() == 7
    index = json.loads((root / "02_intermediate" / "image_cache" / "index.json").read_text())
    images = np.load(root / "02_intermediate" / "image_cache" / "images.npy", mmap_mode="r")
    assert images.shape == (TEST_IMAGES, 48, 64, 3)
    assert set(index["image_ids"]) == set(splits["image_id"])
    summary = json.loads((root / "05_model_input" / "split_summary.json").read_text())
    assert sum(summary["images"].values()) == TEST_IMAGES
    stats = json.loads((root / "05_model_input" / "class_statistics.json").read_text())
    assert sum(stats["train_counts"]) == summary["images"]["train"]
    rejected = pd.read_csv(root / "02_intermediate" / "rejected_images.csv")
    assert list(rejected.columns) == ["image_id", "file", "stage", "reason"]
    assert rejected.empty

    # Cross-validation: --params data_processing.split.validation_fold=2 re-splits train+val
    # (fold 2 validates), leaves test alone, and says so in the summary the report shows.
    run_kedro(
        kedro_project,
        "data_processing",
        from_nodes=["split_by_lesion"],
        data_processing={"split": {"validation_fold": 2}},
    )
    cv = pd.read_parquet(root / "05_model_input" / "splits.parquet")
    pd.testing.assert_series_equal(cv["fold"], splits["fold"])
    assert (cv["split"] == "test").equals(splits["split"] == "test")
    assert set(cv.loc[cv["fold"] == 2, "split"]) == {"val"}
    assert set(cv.loc[cv["fold"].isin([0, 1, 3, 4]), "split"]) == {"train"}
    summary = json.loads((root / "05_model_input" / "split_summary.json").read_text())
    assert summary["validation_fold"] == 2 and "fold 2" in summary["protocol"]
    stats = json.loads((root / "05_model_input" / "class_statistics.json").read_text())
    assert sum(stats["train_counts"]) == (cv["split"] == "train").sum()


def test_bad_inputs_are_set_aside_with_drop(kedro_project):
    raw = kedro_project / "data" / "test" / "01_raw" / "HAM10000"
    meta = pd.read_csv(raw / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    corrupt = meta.loc[0, "image_id"]
    next(raw.rglob(f"{corrupt}.jpg")).write_bytes(b"\xff\xd8 this is no jpeg")
    meta.loc[1, "dx"] = "melanoma"
    meta.to_csv(raw / "HAM10000_metadata.csv", index=False)
    shutil.copy(next(raw.rglob("*.jpg")), raw / "ISIC_9999999.jpg")

    with pytest.raises(Exception, match="metadata rows are invalid"):
        run_kedro(kedro_project, "data_processing")

    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("skin_lesion").addHandler(handler)  # kedro's set-up leaves caplog out
    try:
        run_kedro(kedro_project, "data_processing", data_processing={"on_invalid": "drop"})
    finally:
        logging.getLogger("skin_lesion").removeHandler(handler)
    # The image that did not decode is reported once (set aside), not also as "failed".
    assert sum(corrupt in m for m in messages) == 1
    root = kedro_project / "data" / "test"
    rejected = pd.read_csv(root / "02_intermediate" / "rejected_images.csv")
    stages = dict(zip(rejected["image_id"], rejected["stage"]))
    assert stages == {
        meta.loc[1, "image_id"]: "metadata",
        "ISIC_9999999": "unmatched_file",
        corrupt: "decode",
    }
    splits = pd.read_parquet(root / "05_model_input" / "splits.parquet")
    assert len(splits) == TEST_IMAGES - 2  # every valid image survives


def test_runs_under_kedros_parallel_runner(kedro_project):
    """Every dataset passed between nodes is a file or undeclared: a declared MemoryDataset
    (the rejections were) is not shared between ParallelRunner's processes, and the run
    failed at collect_rejections."""
    from kedro.runner import ParallelRunner

    raw = kedro_project / "data" / "test" / "01_raw" / "HAM10000"
    next(raw.rglob("*.jpg")).write_bytes(b"not a jpeg")  # one rejection to pass along
    run_kedro(
        kedro_project,
        "data_processing",
        runner=ParallelRunner(max_workers=2),
        data_processing={"on_invalid": "drop"},
    )
    root = kedro_project / "data" / "test"
    rejected = pd.read_csv(root / "02_intermediate" / "rejected_images.csv")
    assert list(rejected["stage"]) == ["decode"]
    assert len(pd.read_parquet(root / "05_model_input" / "splits.parquet")) == TEST_IMAGES - 1


def test_kaggle_download_with_every_image_twice(kedro_project):
    """Kaggle's kmader download unpacks each image in HAM10000_images_part_N/ and again in
    ham10000_images_part_N/: identical copies are one image, different bytes are an error."""
    raw = kedro_project / "data" / "test" / "01_raw" / "HAM10000"
    parts = sorted(p for p in raw.iterdir() if p.is_dir())
    assert [p.name for p in parts] == ["HAM10000_images_part_1", "HAM10000_images_part_2"]
    for part in parts:
        shutil.copytree(part, raw / part.name.lower())

    run_kedro(kedro_project, "data_processing")  # on_invalid: raise, the default

    root = kedro_project / "data" / "test"
    splits = pd.read_parquet(root / "05_model_input" / "splits.parquet")
    assert len(splits) == TEST_IMAGES  # every image once
    rejected = pd.read_csv(root / "02_intermediate" / "rejected_images.csv")
    assert len(rejected) == TEST_IMAGES and set(rejected["stage"]) == {"duplicate_file"}
    first = rejected.iloc[0]
    assert first["file"].startswith("ham10000_images_part_")
    assert first["reason"] == f"identical copy of HAM10000_{first['file'][9:]}; not used"

    # One copy that differs: which is right is not for the pipeline to guess.
    changed = next((raw / "ham10000_images_part_1").glob("*.jpg"))
    changed.write_bytes(changed.read_bytes() + b"\0")
    with pytest.raises(Exception, match=rf"{changed.stem}: .*2 image files.*bytes differ"):
        run_kedro(kedro_project, "data_processing")


def test_raw_dir_runtime_param_and_missing_folder_message(kedro_project):
    moved = kedro_project / "elsewhere"
    (kedro_project / "data" / "test" / "01_raw" / "HAM10000").rename(moved)
    with pytest.raises(DatasetError, match=r"not a folder.*make demo"):
        run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "data_processing", raw_dir=str(moved))
    assert (kedro_project / "data" / "test" / "05_model_input" / "splits.parquet").is_file()


def test_drop_refuses_to_leave_a_class_without_images_and_keeps_the_old_cache(kedro_project):
    run_kedro(kedro_project, "data_processing")
    root = kedro_project / "data" / "test"
    cache = root / "02_intermediate" / "image_cache"
    cache_files = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert cache_files
    raw = kedro_project / "data" / "test" / "01_raw" / "HAM10000"
    meta = pd.read_csv(raw / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    # Every dermatofibroma image unreadable: dropping them leaves 'df' with nothing.
    for image_id in meta.loc[meta["dx"] == "df", "image_id"]:
        next(raw.rglob(f"{image_id}.jpg")).write_bytes(b"not an image")
    with pytest.raises(Exception, match=r"no valid images left for class\(es\) \['df'\]"):
        run_kedro(kedro_project, "data_processing", data_processing={"on_invalid": "drop"})
    after = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert after == cache_files  # the good cache from the first run is untouched
    # Every metadata row broken: named at the first step.
    meta["sex"] = "robot"
    meta.to_csv(raw / "HAM10000_metadata.csv", index=False)
    with pytest.raises(Exception, match=r"no valid metadata rows left for class\(es\) \['akiec'"):
        run_kedro(kedro_project, "data_processing", data_processing={"on_invalid": "drop"})


def test_identical_images_are_named_and_refused_across_lesions(caplog):
    """An image filed twice under two lesion_ids could be split into train and test."""
    import numpy as np

    from skin_lesion.images import ImageCache
    from skin_lesion.metadata import InvalidDataError
    from skin_lesion.pipelines.data_processing.nodes import check_identical_images

    pixels = np.stack([np.full((4, 5, 3), v, np.uint8) for v in (1, 2, 1, 3, 2)])
    ids = ("ISIC_1", "ISIC_2", "ISIC_3", "ISIC_4", "ISIC_5")
    cache = ImageCache(pixels, ids, {"height": 4, "width": 5})
    one_lesion = pd.DataFrame({"image_id": ids, "lesion_id": ["A", "B", "A", "C", "B"]})
    with caplog.at_level(logging.WARNING):
        check_identical_images(cache, one_lesion)
    assert "2 group(s) of images are identical pixel for pixel within one lesion" in caplog.text
    assert "ISIC_1 (A) = ISIC_3 (A)" in caplog.text and "ISIC_2 (B) = ISIC_5 (B)" in caplog.text
    two_lesions = one_lesion.assign(lesion_id=["A", "B", "D", "C", "B"])
    with pytest.raises(InvalidDataError, match=r"1 group\(s\) .* ISIC_1 \(A\) = ISIC_3 \(D\)\."):
        check_identical_images(cache, two_lesions)
    distinct = ImageCache(pixels[[0, 1, 3]], ("ISIC_1", "ISIC_2", "ISIC_4"), cache.preprocessing)
    caplog.clear()
    check_identical_images(distinct, one_lesion)
    assert "identical" not in caplog.text


@pytest.mark.parametrize("seed", [0, 1])
def test_the_cache_is_in_image_id_order_whatever_the_metadata_row_order(seed):
    """Each epoch's batches permute cache positions: with the cache in the metadata's row
    order, the same images, split and seed trained another model from a reordered copy of
    the metadata (every fingerprint ignores row order, so nothing said so)."""
    import io

    from PIL import Image

    from skin_lesion.pipelines.data_processing.nodes import decode_images

    ids = [f"ISIC_{n:07d}" for n in (24306, 24307, 24308, 24309, 24310, 24311)]
    files = {}
    for n, image_id in enumerate(ids):
        buffer = io.BytesIO()
        Image.new("RGB", (10, 8), (40 * n, 255 - 40 * n, 17 * n)).save(buffer, "PNG")
        files[f"part_1/{image_id}.png"] = buffer.getvalue()
    raw_images = {name: (lambda data=data: data) for name, data in files.items()}
    rows = pd.DataFrame(
        {
            "image_id": ids,
            "lesion_id": [f"HAM_{n}" for n in range(6)],
            "file": [f"part_1/{i}.png" for i in ids],
        }
    )
    shuffled = rows.sample(frac=1.0, random_state=seed + 3).reset_index(drop=True)
    assert list(shuffled["image_id"]) != ids
    params = {"preprocessing": {"height": 8, "width": 10}, "workers": 1}
    in_order, cached_in_order, _ = decode_images(raw_images, rows, params)
    cache, cached, _ = decode_images(raw_images, shuffled, params)
    assert list(cache.image_ids) == ids == list(in_order.image_ids)
    np.testing.assert_array_equal(cache.images, in_order.images)
    pd.testing.assert_frame_equal(cached, cached_in_order)
    assert list(cached["image_id"]) == ids
