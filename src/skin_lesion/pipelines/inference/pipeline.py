"""Wiring of the inference pipeline (not part of the default run)."""

from kedro.pipeline import Node, Pipeline

from skin_lesion.pipelines.inference import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Classify every image of ``inference_images`` with the trained classifier."""
    return Pipeline(
        [
            Node(
                nodes.classify_images,
                [
                    "inference_images",
                    "inference_metadata",
                    "classifier",
                    "test_metrics",
                    "params:inference",
                    "params:device",
                ],
                ["inference_predictions", "inference_rejects", "inference_gradcam"],
                name="classify_images",
                tags=["gpu"],
            )
        ]
    )
