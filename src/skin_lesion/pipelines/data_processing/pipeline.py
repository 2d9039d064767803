"""Wiring of the data_processing pipeline."""

from kedro.pipeline import Node, Pipeline

from skin_lesion.pipelines.data_processing import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Validate -> decode once into the image cache -> split by lesion -> class statistics;
    the raw data validation read, recorded once the cache and splits made from it are
    written."""
    return Pipeline(
        [
            Node(
                nodes.validate_metadata,
                ["raw_images", "raw_metadata", "params:classes", "params:data_processing"],
                ["validated_metadata", "metadata_rejections", "raw_data_read"],
                name="validate_metadata",
            ),
            Node(
                nodes.decode_images,
                ["raw_images", "validated_metadata", "params:data_processing", "params:classes"],
                ["image_cache", "cached_metadata", "decode_rejections"],
                name="decode_images",
            ),
            Node(
                nodes.collect_rejections,
                ["metadata_rejections", "decode_rejections"],
                "rejected_images",
                name="collect_rejections",
            ),
            Node(
                nodes.split_by_lesion,
                ["cached_metadata", "params:classes", "params:data_processing", "params:seed"],
                ["splits", "split_summary"],
                name="split_by_lesion",
            ),
            Node(
                nodes.compute_class_statistics,
                ["splits", "params:classes"],
                "class_statistics",
                name="compute_class_statistics",
            ),
            Node(
                nodes.record_raw_data,
                ["raw_data_read", "validated_metadata", "image_cache", "cached_metadata", "splits"],
                "raw_data_record",
                name="record_raw_data",
            ),
        ]
    )
