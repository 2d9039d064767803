"""``ImageCacheDataset``: a decoded image cache as one memory-mappable ``.npy`` array."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from kedro.io.core import AbstractDataset, DatasetError

from skin_lesion.datasets.errors import local_path
from skin_lesion.files import atomic_write
from skin_lesion.images import ImageCache

ARRAY_FILE = "images.npy"
INDEX_FILE = "index.json"
FORMAT_VERSION = 1


class ImageCacheDataset(AbstractDataset[ImageCache, ImageCache]):
    """Saves an ``ImageCache`` as a folder; ``load()`` returns an equal ``ImageCache``.

    The folder holds ``images.npy`` (uint8, ``(N, H, W, 3)``, written with ``np.save``) and
    ``index.json`` (the image_id order, the preprocessing that produced the pixels, shape,
    dtype and each image's SHA-256). With ``mmap_mode: r`` (the default) loading is
    instant and pages are read on demand, so a later pipeline can gather batches by index
    without holding all images in memory; ``mmap_mode: null`` reads the whole array into RAM.
    Memory mapping needs a local file, so this dataset is local-only. Files are written to
    temporary names and renamed, so an interrupted save never leaves a half-written cache
    that loads.

    Example catalog entry::

        image_cache:
          type: skin_lesion.datasets.ImageCacheDataset
          path: data/02_intermediate/image_cache
    """

    def __init__(
        self,
        *,
        path: str,
        mmap_mode: Literal["r", "c"] | None = "r",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            path: Local folder for ``images.npy`` and ``index.json``.
            mmap_mode: ``r`` (read-only map), ``c`` (copy-on-write map) or ``None`` (read
                into memory).
            metadata: Free-form metadata, ignored by Kedro (kedro-viz reads ``layer``).
        """
        if mmap_mode not in ("r", "c", None):
            raise DatasetError(f"mmap_mode must be 'r', 'c' or null, got {mmap_mode!r}")
        self._path = Path(local_path(path, type(self).__name__))
        self._mmap_mode = mmap_mode
        self.metadata = metadata

    def load(self) -> ImageCache:
        """Load the cache written by ``save``."""
        index_path = self._path / INDEX_FILE
        if not index_path.is_file():
            raise DatasetError(
                f"No image cache at '{self._path}': '{INDEX_FILE}' is missing. "
                "Run `kedro run --pipelines data_processing` first."
            )
        index = json.loads(index_path.read_text())
        if index.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"'{index_path}' has format_version {index.get('format_version')!r}, "
                f"expected {FORMAT_VERSION}; rebuild it with the data_processing pipeline"
            )
        images = np.load(self._path / ARRAY_FILE, mmap_mode=self._mmap_mode)
        if list(images.shape) != index["shape"] or str(images.dtype) != index["dtype"]:
            raise DatasetError(
                f"'{self._path / ARRAY_FILE}' has shape {images.shape} and dtype "
                f"{images.dtype}, but '{index_path}' records {index['shape']} and "
                f"{index['dtype']}; the cache is inconsistent, rebuild it"
            )
        return ImageCache(
            images=images,
            image_ids=tuple(index["image_ids"]),
            preprocessing=index["preprocessing"],
            # None for caches saved before they were recorded: hashed when first needed.
            image_sha256=index.get("image_sha256"),
        )

    def save(self, data: ImageCache) -> None:
        """Write the array and its index atomically (temporary files, then rename)."""
        if not isinstance(data, ImageCache):
            raise DatasetError(f"Expected an ImageCache, got {type(data).__name__}")
        index = {
            "format_version": FORMAT_VERSION,
            "shape": list(data.images.shape),
            "dtype": str(data.images.dtype),
            "image_ids": list(data.image_ids),
            "preprocessing": data.preprocessing,
            "image_sha256": list(data.digests()),
        }
        # Serialised before anything is touched: an index that cannot be written (a value
        # JSON does not take) used to fail after the old cache was already gone.
        try:
            text = json.dumps(index, indent=1).encode()
        except (TypeError, ValueError) as error:
            raise DatasetError(
                f"{type(self).__name__} '{self._path}': cannot record the cache's index "
                f"({error}); the cache there is left as it was"
            ) from error
        self._path.mkdir(parents=True, exist_ok=True)
        # The index goes last: a cache whose index exists is complete.
        (self._path / INDEX_FILE).unlink(missing_ok=True)
        atomic_write(self._path / ARRAY_FILE, lambda f: np.save(f, data.images))
        atomic_write(self._path / INDEX_FILE, lambda f: f.write(text))

    def _exists(self) -> bool:
        return (self._path / INDEX_FILE).is_file() and (self._path / ARRAY_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "mmap_mode": self._mmap_mode}
