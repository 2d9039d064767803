"""Custom Kedro datasets, one per storage format."""

from skin_lesion.datasets.atomic import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicParquetDataset,
    AtomicTextDataset,
)
from skin_lesion.datasets.checkpoint import CheckpointStoreDataset, TorchCheckpointDataset
from skin_lesion.datasets.image_cache import ImageCacheDataset
from skin_lesion.datasets.image_folder import ImageFolderDataset
from skin_lesion.datasets.optional_table import OptionalTableDataset
from skin_lesion.datasets.png import PngDataset
from skin_lesion.datasets.raw_metadata import RawMetadataDataset

__all__ = [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "AtomicParquetDataset",
    "AtomicTextDataset",
    "CheckpointStoreDataset",
    "ImageCacheDataset",
    "ImageFolderDataset",
    "OptionalTableDataset",
    "PngDataset",
    "RawMetadataDataset",
    "TorchCheckpointDataset",
]
