"""Which local files ``skin-lesion predict`` reads, and what it says about the others."""

import logging
from pathlib import Path

import pytest

from skin_lesion.inference import file_loaders


def test_a_folder_gives_its_images_and_names_what_it_leaves_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "sub/b.PNG", "c.jpeg", "scan.tif", "notes.txt", ".DS_Store"):
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        loaders = file_loaders([str(tmp_path)])
    assert sorted(Path(k).name for k in loaders) == ["a.jpg", "b.PNG", "c.jpeg"]
    assert "2 file(s) not .jpg/.jpeg/.png left out: notes.txt, scan.tif" in caplog.text
    assert ".DS_Store" not in caplog.text
    # Named directly, a .tif is read (the decoder decides what it can use).
    assert list(file_loaders([str(tmp_path / "scan.tif")])) == [(tmp_path / "scan.tif").as_posix()]


def test_a_folder_without_images_and_a_missing_path_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "scan.tif").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"no \.jpg/\.jpeg/\.png image in folder '.*empty'"):
        file_loaders([str(tmp_path / "empty")])
    with pytest.raises(FileNotFoundError, match=r"no such image or folder: 'absent\.jpg'"):
        file_loaders(["absent.jpg"])
