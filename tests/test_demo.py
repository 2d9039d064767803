"""The synthetic HAM10000-format generator used by `make demo` and the tests."""

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skin_lesion.demo import CLASSES, MIN_IMAGES, MIN_LESIONS_PER_CLASS, generate_demo_dataset, main

SIZE = (64, 48)
N = 150
LOCALIZATIONS = {
    "abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
    "lower extremity", "neck", "scalp", "trunk", "unknown", "upper extremity",
}  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    generate_demo_dataset(out, n_images=N, seed=3, size=SIZE)
    return out, pd.read_csv(out / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)


def _pixels(folder, image_id):
    return np.asarray(Image.open(next(folder.rglob(f"{image_id}.jpg"))))


def test_metadata_has_ham10000_columns_and_formats(demo):
    out, meta = demo
    header = (out / "HAM10000_metadata.csv").read_text().splitlines()[0]
    assert header == "lesion_id,image_id,dx,dx_type,age,sex,localization"
    assert len(meta) == N and meta["image_id"].is_unique
    assert meta["lesion_id"].str.fullmatch(r"HAM_\d{7}").all()
    assert meta["image_id"].str.fullmatch(r"ISIC_\d{7}").all()
    assert set(meta["dx"]) == set(CLASSES)
    assert set(meta["dx_type"]) <= {"histo", "follow_up", "consensus", "confocal"}
    assert set(meta["sex"]) <= {"male", "female", "unknown"}
    assert set(meta["localization"]) <= LOCALIZATIONS
    ages = meta["age"][meta["age"] != ""]
    assert ages.map(lambda a: re.fullmatch(r"\d+\.0", a) is not None).all()


def test_every_image_exists_once_with_the_requested_size(demo):
    out, meta = demo
    files = sorted(out.rglob("*.jpg"))
    assert len(files) == N
    assert {f.parent.name for f in files} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}
    assert {f.stem for f in files} == set(meta["image_id"])
    with Image.open(files[0]) as img:
        assert img.size == SIZE and img.mode == "RGB"


def test_lesions_have_several_images_one_diagnosis_and_every_class_its_floor(demo):
    _, meta = demo
    per_lesion = meta.groupby("lesion_id").size()
    assert per_lesion.max() > 1 and (per_lesion == 1).any()
    assert meta.groupby("lesion_id")["dx"].nunique().max() == 1
    lesions = meta.groupby("dx")["lesion_id"].nunique()
    assert lesions.min() >= MIN_LESIONS_PER_CLASS
    assert meta["dx"].value_counts().idxmax() == "nv"  # HAM10000-like imbalance


def test_same_seed_same_files_other_seed_different(demo, tmp_path):
    out, meta = demo
    again = generate_demo_dataset(tmp_path / "a", n_images=N, seed=3, size=SIZE)
    assert (tmp_path / "a" / "HAM10000_metadata.csv").read_bytes() == (
        out / "HAM10000_metadata.csv"
    ).read_bytes()
    first = meta["image_id"].iloc[0]
    assert np.array_equal(_pixels(out, first), _pixels(tmp_path / "a", first))
    other = generate_demo_dataset(tmp_path / "b", n_images=N, seed=4, size=SIZE)
    assert not other.equals(again)


def test_classes_are_visually_separable(demo):
    """Colour statistics alone, with a nearest-class-mean rule, reach about 3x chance (1/7).

    Shape and texture separate the classes further: the demo classifier reaches a validation
    balanced accuracy near 1.0 (see the classifier tests and `make demo`).
    """
    out, meta = demo
    feats = np.stack([
        np.concatenate([(p := _pixels(out, i).astype(float)).mean((0, 1)), p.std((0, 1))])
        for i in meta["image_id"]
    ])  # fmt: skip
    labels = meta["dx"].map({c: k for k, c in enumerate(CLASSES)}).to_numpy()
    lesion_rank = meta.groupby("lesion_id").ngroup().to_numpy()
    train = lesion_rank % 2 == 0
    means = np.stack([feats[train & (labels == k)].mean(0) for k in range(len(CLASSES))])
    scale = feats[train].std(0) + 1e-6
    predicted = (((feats[~train, None] - means[None]) / scale) ** 2).sum(-1).argmin(1)
    recalls = [
        (predicted[labels[~train] == k] == k).mean()
        for k in range(len(CLASSES))
        if (labels[~train] == k).any()
    ]
    assert np.mean(recalls) > 0.4


def test_too_few_images_names_the_minimum(tmp_path):
    with pytest.raises(ValueError, match=f"at least {MIN_IMAGES} images"):
        generate_demo_dataset(tmp_path, n_images=MIN_IMAGES - 1, size=SIZE)


def test_cli_writes_the_dataset_and_rejects_bad_arguments(tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--images", str(MIN_IMAGES), "--size", "64x48"]) == 0
    assert f"Wrote {MIN_IMAGES} images" in capsys.readouterr().out
    assert len(list((tmp_path / "cli").rglob("*.jpg"))) == MIN_IMAGES
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "x"), "--size", "big"])
    assert exit_info.value.code == 2
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err


def test_rerun_replaces_the_dataset_and_keeps_other_files(tmp_path):
    generate_demo_dataset(tmp_path, n_images=MIN_IMAGES + 20, seed=0, size=SIZE)
    (tmp_path / "keep.txt").write_text("mine")
    generate_demo_dataset(tmp_path, n_images=MIN_IMAGES, seed=1, size=SIZE)
    assert len(list(tmp_path.rglob("*.jpg"))) == MIN_IMAGES
    assert (tmp_path / "keep.txt").read_text() == "mine"
