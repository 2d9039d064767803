"""Wiring of the contrastive_pretraining pipeline."""

from kedro.pipeline import Node, Pipeline

from skin_lesion.pipelines.contrastive_pretraining import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """SupCon pretraining on the train split, then val/test embeddings for reporting."""
    return Pipeline(
        [
            Node(
                nodes.pretrain_encoder,
                [
                    "image_cache",
                    "splits",
                    "pretraining_run",
                    "params:encoder",
                    "params:contrastive_pretraining",
                    "params:seed",
                    "params:device",
                    "params:data_processing.preprocessing",
                ],
                ["pretrained_encoder", "pretraining_history"],
                name="pretrain_encoder",
                tags=["gpu"],
            ),
            Node(
                nodes.export_embeddings,
                [
                    "pretrained_encoder",
                    "image_cache",
                    "splits",
                    "params:contrastive_pretraining",
                    "params:device",
                ],
                "contrastive_embeddings",
                name="export_embeddings",
                tags=["gpu"],
            ),
        ]
    )
