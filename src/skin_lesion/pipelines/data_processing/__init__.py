"""Validate HAM10000, decode every image once into a cache, and split by lesion."""

from skin_lesion.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
