"""Two-phase fine-tuning of the classifier with focal loss and class re-balancing."""

from skin_lesion.pipelines.classifier_training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
