"""Wiring of the classifier_training pipeline."""

from kedro.pipeline import Node, Pipeline

from skin_lesion.pipelines.classifier_training import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Warm-up on frozen features, then fine-tuning; model choice on validation only."""
    return Pipeline(
        [
            Node(
                nodes.train_classifier,
                [
                    "image_cache",
                    "splits",
                    "cached_metadata",
                    "pretrained_encoder",
                    "classifier_run",
                    "params:classes",
                    "params:classifier_training",
                    "params:seed",
                    "params:device",
                    "params:encoder",
                    "params:data_processing.preprocessing",
                    "params:contrastive_pretraining",
                    "params:data_processing.metadata",
                ],
                ["classifier", "training_history", "val_predictions"],
                name="train_classifier",
                tags=["gpu"],
            ),
        ]
    )
