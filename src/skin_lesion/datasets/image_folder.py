"""``ImageFolderDataset``: every image file under a folder, as lazy byte loaders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

import fsspec
from kedro.io.core import AbstractDataset, DatasetError, get_protocol_and_path

from skin_lesion.datasets._help import WHERE_TO_PUT_HAM10000
from skin_lesion.datasets.errors import InputDataError
from skin_lesion.files import (
    UnreadableFolderError,
    display_name,
    left_out,
    unique_name,
    walk_files,
    warn_alike,
    warn_left_out,
)
from skin_lesion.images import IMAGE_SUFFIXES

DEFAULT_EXTENSIONS = IMAGE_SUFFIXES


@dataclass(frozen=True)
class FileBytes:
    """One file's bytes, read when called (the loader ``ImageFolderDataset.load`` gives per
    file); ``size()`` asks the filesystem without reading them, for the raw-data record
    (``lineage.raw_data_record``)."""

    path: str
    fs: Any = field(repr=False, compare=False)

    def __call__(self) -> bytes:
        return self.fs.cat_file(self.path)

    def size(self) -> int:
        """The file's size in bytes."""
        return int(self.fs.size(self.path))


class ImageFolderDataset(AbstractDataset[None, dict[str, Callable[[], bytes]]]):
    """Read-only: all images below ``path``, in any subfolders, keyed by relative path.

    ``load()`` returns ``{relative/path.jpg: callable}`` sorted by path, where each callable
    returns the file's bytes (the convention of Kedro's ``PartitionedDataset``), so that a
    node can decode thousands of images in parallel without opening files itself. Both
    Kaggle's layout (``HAM10000_images_part_1/``, ``..._part_2/``) and a flat folder work.
    Keys keep the subfolder so that two files with the same name in different folders are
    both seen (and reported by validation), not silently merged.

    A missing folder gets an error saying where HAM10000 belongs. Saving is not supported:
    raw data is never written by the pipeline.

    Example catalog entry::

        raw_images:
          type: skin_lesion.datasets.ImageFolderDataset
          path: data/01_raw/HAM10000
          extensions: [.jpg, .jpeg, .png]
    """

    def __init__(
        self,
        *,
        path: str,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        description: str = "HAM10000 image folder",
        hint: str = WHERE_TO_PUT_HAM10000,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        others: Literal["skip", "reject"] = "skip",
        allow_empty: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            path: Folder holding the images (local or any fsspec URL).
            extensions: File name endings to include, matched case-insensitively.
            description: What the folder is, for the missing-folder error.
            hint: What to do about a missing folder (default: where HAM10000 belongs).
            credentials: Passed to the fsspec filesystem.
            fs_args: Extra fsspec filesystem arguments.
            others: ``skip`` leaves files of other endings out unseen (data_processing: the
                metadata CSV, a README); ``reject`` lists each (hidden files aside) with a
                loader that fails with the reason, so that it lands in the rejects report,
                and warns (inference: nothing given is dropped silently).
            allow_empty: False makes a folder with no file of ``extensions`` an error
                naming it (inference), instead of an empty dict.
            metadata: Free-form metadata, ignored by Kedro (kedro-viz reads ``layer``).
        """
        protocol, folder = get_protocol_and_path(path)
        self._protocol = protocol
        self._path = folder.rstrip("/")
        self._extensions = tuple(ext.lower() for ext in extensions)
        self._description = description
        self._hint = hint
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        if others not in ("skip", "reject"):
            raise DatasetError(f"others must be 'skip' or 'reject', got {others!r}")
        self._others = others
        self._allow_empty = allow_empty
        self.metadata = metadata

    def load(self) -> dict[str, Callable[[], bytes]]:
        """List the images; each value reads one file when called."""
        if not self._fs.isdir(self._path):
            raise InputDataError(
                f"{self._description} not found: '{self._path}' is not a folder. {self._hint}"
            )
        # find() returns paths as the filesystem spells them (absolute, for local files).
        root = PurePosixPath(self._fs._strip_protocol(self._path))
        local = self._protocol == "file"
        try:
            found = walk_files(root) if local else self._fs.find(self._path)
        except UnreadableFolderError as error:
            raise InputDataError(f"{self._description}: {error}") from None
        files, others, renamed, taken = {}, [], [], set()
        for full in found:
            shown = display_name(str(PurePosixPath(full).relative_to(root)))
            relative = unique_name(shown, taken)
            taken.add(relative)
            if relative != shown:
                renamed.append(relative)
            if full.lower().endswith(self._extensions):
                files[relative] = FileBytes(full, self._fs)
            elif self._others == "reject" and not PurePosixPath(full).name.startswith("."):
                others.append(relative)
        warn_alike(renamed)
        wanted = "/".join(self._extensions)
        if not files and not self._allow_empty:  # left-out files are no images to classify
            shown = ", ".join(others[:5]) + (" and more" if len(others) > 5 else "")
            other = f" ({len(others)} other file(s): {shown})" if others else ""
            raise InputDataError(
                f"{self._description} '{self._path}' holds no {wanted} file{other}. {self._hint}"
            )
        warn_left_out(self._path, others, wanted)
        files.update({path: left_out(wanted) for path in others})
        return dict(sorted(files.items()))

    def save(self, data: None) -> None:
        """Raw images are read-only."""
        raise DatasetError(f"{type(self).__name__} is read-only; it never writes images")

    def _exists(self) -> bool:
        return self._fs.isdir(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path, "protocol": self._protocol, "extensions": self._extensions}
