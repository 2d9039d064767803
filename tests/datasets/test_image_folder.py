import pytest
from kedro.io import DatasetError

from skin_lesion.datasets import ImageFolderDataset


def _tree(root):
    (root / "HAM10000_images_part_1").mkdir(parents=True)
    (root / "HAM10000_images_part_2").mkdir()
    (root / "HAM10000_images_part_1" / "ISIC_0000001.jpg").write_bytes(b"one")
    (root / "HAM10000_images_part_2" / "ISIC_0000002.JPEG").write_bytes(b"two")
    (root / "flat.png").write_bytes(b"three")
    (root / "HAM10000_metadata.csv").write_text("not an image")
    (root / "notes.txt").write_text("skip me")


def test_lists_images_in_any_subfolder_with_lazy_bytes(tmp_path):
    _tree(tmp_path)
    images = ImageFolderDataset(path=str(tmp_path)).load()
    assert list(images) == [
        "HAM10000_images_part_1/ISIC_0000001.jpg",
        "HAM10000_images_part_2/ISIC_0000002.JPEG",
        "flat.png",
    ]
    assert images["flat.png"]() == b"three"
    assert images["HAM10000_images_part_2/ISIC_0000002.JPEG"]() == b"two"

    # Sizes without reading the files: what data_processing records of the raw data.
    assert images["flat.png"].size() == 5
    assert images["flat.png"].path.endswith("flat.png")
    assert "flat.png" in repr(images["flat.png"])


def test_follows_symlinked_subfolders_once(tmp_path):
    _tree(tmp_path / "elsewhere")
    raw = tmp_path / "HAM10000"
    raw.mkdir()
    for part in ("HAM10000_images_part_1", "HAM10000_images_part_2"):
        (raw / part).symlink_to(tmp_path / "elsewhere" / part, target_is_directory=True)
    (raw / "HAM10000_images_part_1" / "loop").symlink_to(raw, target_is_directory=True)

    images = ImageFolderDataset(path=str(raw)).load()

    assert list(images) == [
        "HAM10000_images_part_1/ISIC_0000001.jpg",
        "HAM10000_images_part_2/ISIC_0000002.JPEG",
    ]
    assert images["HAM10000_images_part_1/ISIC_0000001.jpg"]() == b"one"


def test_relative_path_works(tmp_path, monkeypatch):
    _tree(tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    images = ImageFolderDataset(path="raw", extensions=[".png"]).load()
    assert list(images) == ["flat.png"]


def test_missing_folder_says_where_to_put_ham10000(tmp_path):
    dataset = ImageFolderDataset(path=str(tmp_path / "nowhere"))
    assert not dataset.exists()
    with pytest.raises(
        DatasetError, match=r"nowhere' is not a folder.*data/01_raw/HAM10000.*make demo"
    ):
        dataset.load()


def test_is_read_only(tmp_path):
    with pytest.raises(DatasetError, match="read-only"):
        ImageFolderDataset(path=str(tmp_path)).save({"a.jpg": b""})


def test_two_files_whose_names_show_alike_are_both_listed(tmp_path, caplog):
    """A Latin-1 `café.jpg` shows as `caf\\xe9.jpg`, as does a file named so literally: one
    took the other's place, unseen."""
    with open(bytes(tmp_path) + b"/caf\xe9.jpg", "wb") as file:
        file.write(b"latin-1")
    (tmp_path / "caf\\xe9.jpg").write_bytes(b"literal")
    with caplog.at_level("WARNING", logger="skin_lesion.files"):
        images = ImageFolderDataset(path=str(tmp_path)).load()
    assert sorted(images) == ["caf\\xe9.jpg", "caf\\xe9.jpg~2"]
    assert sorted(load() for load in images.values()) == [b"latin-1", b"literal"]
    assert "1 file(s) whose names show like another file's once escaped" in caplog.text


def test_an_unreadable_folder_is_named_not_skipped(tmp_path, monkeypatch):
    """os.walk skips a folder it cannot list without a word; its images' rows were then
    rejected as having no file."""
    import os

    _tree(tmp_path)
    scandir = os.scandir

    def denied(path="."):
        if str(path).endswith("HAM10000_images_part_2"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(
        DatasetError, match=r"1 folder\(s\) under .* could not be read.*part_2': Permission denied"
    ):
        ImageFolderDataset(path=str(tmp_path)).load()


@pytest.mark.parametrize("reverse", [False, True])
def test_a_folder_linked_twice_is_listed_under_the_same_path_whatever_the_disk_order(
    tmp_path, monkeypatch, reverse
):
    """The path kept followed the disk's listing order (hash order on ext4)."""
    import os

    (tmp_path / "b_real").mkdir()
    (tmp_path / "b_real" / "ISIC_0000005.jpg").write_bytes(b"five")
    (tmp_path / "a_link").symlink_to(tmp_path / "b_real", target_is_directory=True)
    scandir = os.scandir

    class Ordered:  # os.scandir, its entries in name order or the reverse
        def __init__(self, path="."):
            with scandir(path) as entries:
                self.entries = iter(sorted(entries, key=lambda e: e.name, reverse=reverse))

        def __next__(self):
            return next(self.entries)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(os, "scandir", Ordered)
    assert list(ImageFolderDataset(path=str(tmp_path)).load()) == ["a_link/ISIC_0000005.jpg"]
