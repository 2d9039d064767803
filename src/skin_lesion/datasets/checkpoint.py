"""Checkpoint datasets: a torch checkpoint dict, and a run folder for resumable training."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import (
    AbstractDataset,
    AbstractVersionedDataset,
    DatasetError,
    Version,
)

from skin_lesion.checkpoints import CheckpointStore, load_checkpoint, save_checkpoint, to_cpu
from skin_lesion.datasets.errors import local_path


class TorchCheckpointDataset(AbstractVersionedDataset[dict, dict]):
    """A self-describing checkpoint dict in a ``.pt`` file; ``load()`` returns what was saved.

    Unlike kedro-datasets' experimental ``PyTorchDataset`` (saves a module, loads a state
    dict), this saves and loads the same dict. Loading uses ``weights_only=True``, so a
    checkpoint can hold tensors, numbers, strings, lists and dicts, and never runs pickled
    code. Writes are atomic. Versioning works as for any Kedro dataset (``versioned: true``).
    Local files only: atomic rename needs a local filesystem.

    Example catalog entry::

        pretrained_encoder:
          type: skin_lesion.datasets.TorchCheckpointDataset
          filepath: data/06_models/pretrained_encoder.pt
          versioned: true
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            filepath: Local path of the ``.pt`` file.
            version: Kedro version (set by the catalog when ``versioned: true``).
            metadata: Free-form metadata, ignored by Kedro (kedro-viz reads ``layer``).
        """
        local = local_path(filepath, type(self).__name__)
        super().__init__(filepath=PurePosixPath(Path(local).as_posix()), version=version)
        self.metadata = metadata

    def load(self) -> dict:
        """Load the checkpoint dict on the CPU."""
        return load_checkpoint(str(self._get_load_path()))

    def save(self, data: dict) -> None:
        """Save the checkpoint dict (tensors moved to the CPU), atomically."""
        if not isinstance(data, dict):
            raise DatasetError(
                f"{type(self).__name__} saves checkpoint dicts, got {type(data).__name__}"
            )
        save_checkpoint(to_cpu(data), str(self._get_save_path()))

    def _exists(self) -> bool:
        try:
            return Path(str(self._get_load_path())).is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


class CheckpointStoreDataset(AbstractDataset[None, CheckpointStore]):
    """Hands a node the folder where a training run keeps its per-epoch checkpoint.

    ``load()`` returns a ``CheckpointStore`` bound to ``path``; the training engine writes
    the latest epoch there atomically and reads it back on ``resume``. The dataset itself
    is read-only: what the store holds is written by the store.

    Example catalog entry::

        pretraining_run:
          type: skin_lesion.datasets.CheckpointStoreDataset
          path: data/06_models/runs/pretraining
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        """Create the dataset for the run folder ``path``."""
        self._path = Path(local_path(path, type(self).__name__))
        self.metadata = metadata

    def load(self) -> CheckpointStore:
        """A store bound to the run folder."""
        return CheckpointStore(self._path)

    def save(self, data: None) -> None:
        """Not supported: the store writes its own checkpoints."""
        raise DatasetError(f"{type(self).__name__} is read-only; the CheckpointStore writes")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
