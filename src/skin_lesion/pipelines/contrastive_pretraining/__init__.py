"""Supervised contrastive pretraining of the encoder on the train split."""

from skin_lesion.pipelines.contrastive_pretraining.pipeline import create_pipeline

__all__ = ["create_pipeline"]
