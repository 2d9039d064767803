"""Classify a folder of new images with the trained classifier."""

from skin_lesion.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
