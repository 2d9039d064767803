"""Tests for the synthetic HAM10000 generator in ``skin_lesion.demo``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skin_lesion.demo import (
    CLASSES,
    COLUMNS,
    DEMO_MARKER,
    METADATA_FILENAME,
    MIN_IMAGES,
    MIN_LESIONS_PER_CLASS,
    PART_DIRS,
    allocate_images,
    generate_demo_dataset,
    main,
)

N_IMAGES = 150
SIZE = (64, 48)
DX_TYPES = {"histo", "follow_up", "consensus", "confocal"}
SEXES = {"male", "female", "unknown"}
LOCALIZATIONS = {
    "abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
    "lower extremity", "neck", "scalp", "trunk", "unknown", "upper extremity",
}  # fmt: skip


def _image_paths(root: Path) -> dict[str, list[Path]]:
    """Every JPEG under the two part folders, by image id."""
    found: dict[str, list[Path]] = {}
    for part in PART_DIRS:
        for path in (root / part).iterdir():
            found.setdefault(path.stem, []).append(path)
    return found


def _pixels(root: Path, image_id: str) -> np.ndarray:
    (path,) = _image_paths(root)[image_id]
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("ham")
    return root, generate_demo_dataset(root, n_images=N_IMAGES, seed=0, size=SIZE)


@pytest.fixture(scope="module")
def raw_csv(demo: tuple[Path, pd.DataFrame]) -> pd.DataFrame:
    """The CSV as text, so formats are checked as written, not as pandas parses them."""
    root, _ = demo
    return pd.read_csv(root / METADATA_FILENAME, dtype=str, keep_default_na=False)


def test_csv_header_is_hams(demo: tuple[Path, pd.DataFrame]) -> None:
    root, _ = demo
    header = (root / METADATA_FILENAME).read_text().splitlines()[0]
    assert header == "lesion_id,image_id,dx,dx_type,age,sex,localization"
    assert tuple(COLUMNS) == tuple(header.split(","))


def test_returned_metadata_is_what_was_written(demo: tuple[Path, pd.DataFrame]) -> None:
    root, metadata = demo
    pd.testing.assert_frame_equal(metadata, pd.read_csv(root / METADATA_FILENAME))
    assert len(metadata) == N_IMAGES


def test_ids_have_hams_format(raw_csv: pd.DataFrame) -> None:
    assert raw_csv["lesion_id"].str.fullmatch(r"HAM_\d{7}").all()
    assert raw_csv["image_id"].str.fullmatch(r"ISIC_\d{7}").all()
    assert raw_csv["image_id"].is_unique
    numbers = sorted(int(image_id[5:]) for image_id in raw_csv["image_id"])
    assert numbers == list(range(24306, 24306 + N_IMAGES))
    # ids are shuffled, not counted up row by row
    assert [int(i[5:]) for i in raw_csv["image_id"]] != numbers


def test_categorical_values_are_hams(raw_csv: pd.DataFrame) -> None:
    assert set(raw_csv["dx"]) == set(CLASSES)
    assert set(raw_csv["dx_type"]) <= DX_TYPES
    assert set(raw_csv["sex"]) <= SEXES
    assert set(raw_csv["localization"]) <= LOCALIZATIONS
    assert raw_csv["localization"].nunique() >= 5


def test_ages_are_multiples_of_five_written_as_floats_or_empty(raw_csv: pd.DataFrame) -> None:
    ages = raw_csv["age"]
    well_formed = ages.str.fullmatch(r"(\d{1,2}\.0)?")
    assert well_formed.all(), ages[~well_formed].tolist()
    written = ages[ages != ""].astype(float)
    assert (written % 5 == 0).all()
    assert written.between(0, 85).all()
    missing = (ages == "").mean()
    assert 0 < missing < 0.1, missing


def test_every_image_is_one_rgb_jpeg_of_the_requested_size(
    demo: tuple[Path, pd.DataFrame],
) -> None:
    root, metadata = demo
    paths = _image_paths(root)
    assert set(paths) == set(metadata["image_id"])
    assert all(len(found) == 1 and found[0].suffix == ".jpg" for found in paths.values())
    for (path,) in paths.values():
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", SIZE)
    part_1 = len(list((root / PART_DIRS[0]).iterdir()))
    assert part_1 == N_IMAGES // 2


def test_lesions_have_several_images_and_one_description(
    demo: tuple[Path, pd.DataFrame],
) -> None:
    _, metadata = demo
    per_lesion = metadata.groupby("lesion_id")
    sizes = per_lesion.size()
    assert (sizes > 1).sum() >= 5
    assert sizes.max() <= 6
    assert 1.1 < N_IMAGES / len(sizes) < 1.6
    for column in ("dx", "dx_type", "age", "sex", "localization"):
        assert (per_lesion[column].nunique(dropna=False) == 1).all(), column


def test_every_class_has_the_lesion_floor_and_nv_dominates(
    demo: tuple[Path, pd.DataFrame],
) -> None:
    _, metadata = demo
    lesions = metadata.groupby("dx")["lesion_id"].nunique()
    assert set(lesions.index) == set(CLASSES)
    assert (lesions >= MIN_LESIONS_PER_CLASS).all(), lesions.to_dict()
    images = metadata["dx"].value_counts()
    assert images.idxmax() == "nv"
    assert images["nv"] > 0.5 * N_IMAGES


@pytest.mark.parametrize("n_images", [MIN_IMAGES, 100, 150, 400, 1000, 10015])
def test_allocate_images_is_exact_and_respects_the_floor(n_images: int) -> None:
    counts = allocate_images(n_images)
    assert sum(counts.values()) == n_images
    assert min(counts.values()) >= MIN_LESIONS_PER_CLASS
    assert max(counts, key=counts.get) == "nv" or n_images == MIN_IMAGES


def test_allocate_images_follows_ham_proportions_when_large() -> None:
    counts = allocate_images(10015)
    assert counts["nv"] == pytest.approx(6705, abs=2)
    assert counts["mel"] == pytest.approx(1113, abs=2)
    assert counts["df"] == pytest.approx(115, abs=2)


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    first = generate_demo_dataset(tmp_path / "a", n_images=90, seed=7, size=SIZE)
    generate_demo_dataset(tmp_path / "b", n_images=90, seed=7, size=SIZE)
    csv_a = (tmp_path / "a" / METADATA_FILENAME).read_bytes()
    assert csv_a == (tmp_path / "b" / METADATA_FILENAME).read_bytes()
    for image_id in first["image_id"]:
        np.testing.assert_array_equal(
            _pixels(tmp_path / "a", image_id), _pixels(tmp_path / "b", image_id)
        )


def test_another_seed_gives_other_data(tmp_path: Path, demo: tuple[Path, pd.DataFrame]) -> None:
    root, metadata = demo
    other = generate_demo_dataset(tmp_path, n_images=N_IMAGES, seed=1, size=SIZE)
    assert (root / METADATA_FILENAME).read_bytes() != (tmp_path / METADATA_FILENAME).read_bytes()
    image_id = metadata["image_id"].iloc[0]
    assert image_id in set(other["image_id"])
    assert not np.array_equal(_pixels(root, image_id), _pixels(tmp_path, image_id))


def test_images_of_one_lesion_are_similar_but_not_equal(demo: tuple[Path, pd.DataFrame]) -> None:
    root, metadata = demo
    sizes = metadata.groupby("lesion_id").size()
    same, other = [], []
    for lesion_id in sizes[sizes > 1].index[:10]:
        rows = metadata[metadata["lesion_id"] == lesion_id]
        a, b = (_pixels(root, i).astype(float) for i in rows["image_id"].iloc[:2])
        assert not np.array_equal(a, b)
        stranger = metadata.loc[metadata["dx"] != rows["dx"].iloc[0], "image_id"].iloc[0]
        same.append(np.abs(a - b).mean())
        other.append(np.abs(a - _pixels(root, stranger)).mean())
    assert np.mean(same) < np.mean(other)


def test_too_few_images_fails_naming_the_minimum(tmp_path: Path) -> None:
    assert MIN_IMAGES == 84
    with pytest.raises(ValueError, match=r"n_images=83 .* at least 84 images"):
        generate_demo_dataset(tmp_path, n_images=MIN_IMAGES - 1, size=SIZE)
    with pytest.raises(ValueError, match="at least 84"):
        allocate_images(10)
    assert not list(tmp_path.iterdir())


def test_too_few_images_leaves_an_existing_dataset_alone(tmp_path: Path) -> None:
    generate_demo_dataset(tmp_path, n_images=90, seed=0, size=SIZE)
    with pytest.raises(ValueError):
        generate_demo_dataset(tmp_path, n_images=5, seed=0, size=SIZE)
    assert len(pd.read_csv(tmp_path / METADATA_FILENAME)) == 90
    assert len(_image_paths(tmp_path)) == 90


def test_too_small_images_fail_naming_the_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size=20x48"):
        generate_demo_dataset(tmp_path, n_images=90, size=(20, 48))


def test_cli_rejects_too_few_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--images", "50", "--size", "64x48"])
    assert exit_info.value.code == 2
    assert "at least 84 images" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_rejects_a_malformed_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--size", "64by48"])
    assert "'64by48'" in capsys.readouterr().err


def test_cli_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--images", "90", "--seed", "3", "--size", "40x32"]) == 0
    metadata = pd.read_csv(tmp_path / METADATA_FILENAME)
    assert len(metadata) == 90
    assert len(_image_paths(tmp_path)) == 90
    with Image.open(next((tmp_path / PART_DIRS[1]).iterdir())) as image:
        assert image.size == (40, 32)
    assert "Wrote 90 images" in capsys.readouterr().out


def test_rerun_replaces_the_dataset_and_keeps_other_files(tmp_path: Path) -> None:
    generate_demo_dataset(tmp_path, n_images=120, seed=0, size=SIZE)
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / PART_DIRS[0] / "ISIC_9999999.jpg").write_bytes(b"stale")
    metadata = generate_demo_dataset(tmp_path, n_images=90, seed=0, size=SIZE)
    assert set(_image_paths(tmp_path)) == set(metadata["image_id"])
    assert len(pd.read_csv(tmp_path / METADATA_FILENAME)) == 90
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_dataset_it_did_not_write_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real download in the folder must not be deleted by a mistyped demo command."""
    (tmp_path / PART_DIRS[0]).mkdir()
    (tmp_path / PART_DIRS[0] / "ISIC_0024306.jpg").write_bytes(b"a real image")
    (tmp_path / METADATA_FILENAME).write_text("lesion_id,image_id,dx\n")
    with pytest.raises(ValueError, match=rf"holds {METADATA_FILENAME}, {PART_DIRS[0]}, not"):
        generate_demo_dataset(tmp_path, n_images=90, size=SIZE)
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--images", "90", "--size", "40x32"])
    assert "--replace" in capsys.readouterr().err
    assert (tmp_path / PART_DIRS[0] / "ISIC_0024306.jpg").read_bytes() == b"a real image"
    assert (tmp_path / METADATA_FILENAME).read_text() == "lesion_id,image_id,dx\n"
    # On purpose, it is replaced; and what the generator wrote, it replaces again.
    assert main([str(tmp_path), "--images", "90", "--size", "40x32", "--replace"]) == 0
    assert len(_image_paths(tmp_path)) == 90 and (tmp_path / DEMO_MARKER).exists()
    generate_demo_dataset(tmp_path, n_images=95, size=SIZE)
    assert len(_image_paths(tmp_path)) == 95


def _colour_features(image: np.ndarray) -> np.ndarray:
    """Mean and spread of the colours that differ most from the image's median (skin)."""
    pixels = image.reshape(-1, 3).astype(float)
    distance = np.linalg.norm(pixels - np.median(pixels, axis=0), axis=1)
    lesion = pixels[distance >= np.quantile(distance, 0.9)]
    return np.concatenate([lesion.mean(0), lesion.std(0)])


def test_classes_are_separable_by_lesion_colour(demo: tuple[Path, pd.DataFrame]) -> None:
    root, metadata = demo
    features = np.stack([_colour_features(_pixels(root, i)) for i in metadata["image_id"]])
    labels = metadata["dx"].to_numpy()
    # Hold out every other lesion of each class, so no lesion is on both sides.
    lesion_rank = metadata.groupby("dx")["lesion_id"].rank(method="dense").to_numpy()
    held_out = lesion_rank % 2 == 0
    scale = features[~held_out].std(0)
    means = np.stack([features[~held_out & (labels == dx)].mean(0) for dx in CLASSES])
    distances = np.linalg.norm((features[held_out, None] - means[None]) / scale, axis=2)
    predicted = np.array(CLASSES)[distances.argmin(1)]
    truth = labels[held_out]
    recall = [np.mean(predicted[truth == dx] == dx) for dx in CLASSES]
    # chance is 1/7 = 0.14
    assert np.mean(recall) > 0.8, dict(zip(CLASSES, recall, strict=True))
