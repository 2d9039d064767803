"""Wiring of the reporting pipeline."""

from kedro.pipeline import Node, Pipeline

from skin_lesion.pipelines.reporting import nodes

# The parameters a classifier must have been made with where it predicts (by the node
# functions' keyword): the report lists them.
UPSTREAM_INPUTS = {keyword: f"params:{group}" for keyword, group in nodes.UPSTREAM.items()}
# figure name -> (node function, its inputs)
FIGURES = {
    "confusion_matrix": (nodes.plot_confusion_matrix, ["test_metrics"]),
    "roc_curves": (
        nodes.plot_roc_curves,
        ["test_predictions", "test_metrics", "params:classes"],
    ),
    "melanoma_pr_curve": (
        nodes.plot_melanoma_pr,
        ["test_predictions", "test_metrics", "params:classes"],
    ),
    "training_curves": (
        nodes.plot_training_curves,
        ["pretraining_history", "training_history", "classifier"],
    ),
    "per_class_f1": (nodes.plot_per_class_f1, ["test_metrics"]),
    "class_distribution": (nodes.plot_class_distribution, ["splits", "params:classes"]),
    "augmentation_grid": (
        nodes.plot_augmentations,
        ["image_cache", "splits", "classifier", "params:reporting", "params:seed"],
    ),
    "reliability_diagram": (
        nodes.plot_reliability,
        ["test_predictions", "test_metrics", "params:classes"],
    ),
    "embedding_map": (
        nodes.plot_embedding_map,
        ["contrastive_embeddings", "params:classes", "params:reporting", "params:seed"],
    ),
    "gradcam_examples": (
        nodes.plot_gradcam,
        {
            "classifier": "classifier",
            "image_cache": "image_cache",
            "splits": "splits",
            "cached_metadata": "cached_metadata",
            "test_predictions": "test_predictions",
            "test_metrics": "test_metrics",
            "params": "params:reporting",
            "device": "params:device",
            **UPSTREAM_INPUTS,
        },
    ),
}
# The parameter groups the report lists: every top-level key of conf/base/parameters*.yml but
# `inference`, which a reporting run does not use. Named one by one, not as Kedro's whole
# `parameters` input, which kedro-mlflow would log a second time as `parameters.*`.
REPORTED_PARAMETERS = (
    "seed",
    "device",
    "classes",
    "encoder",
    "data_processing",
    "contrastive_pretraining",
    "classifier_training",
    "reporting",
)
# What predict_test and predict_val read: both splits are predicted alike.
PREDICT_INPUTS = {
    "classifier": "classifier",
    "image_cache": "image_cache",
    "splits": "splits",
    "cached_metadata": "cached_metadata",
    "params": "params:reporting",
    "device": "params:device",
    **UPSTREAM_INPUTS,
}
# Figures that run the classifier: tagged like the other nodes worth a GPU.
GPU_FIGURES = {"gradcam_examples": ["gpu"]}


def create_pipeline(**kwargs) -> Pipeline:
    """Predict val and test alike (same TTA) and test once, evaluate (calibration and
    threshold fitted on val), plot, report."""
    figure_nodes = [
        Node(func, inputs, f"{name}_plot", name=f"plot_{name}", tags=GPU_FIGURES.get(name))
        for name, (func, inputs) in FIGURES.items()
    ]
    return Pipeline(
        [
            Node(
                nodes.predict_test,
                PREDICT_INPUTS,
                "test_predictions",
                name="predict_test",
                tags=["gpu"],
            ),
            Node(
                nodes.predict_val,
                PREDICT_INPUTS,
                "reporting_val_predictions",
                name="predict_val",
                tags=["gpu"],
            ),
            Node(
                nodes.evaluate_test,
                [
                    "test_predictions",
                    "reporting_val_predictions",
                    "params:classes",
                    "params:reporting",
                    "params:seed",
                    "classifier",
                ],
                "test_metrics",
                name="evaluate_test",
            ),
            Node(
                nodes.export_isic,
                ["test_predictions", "test_metrics", "params:classes"],
                "isic_predictions",
                name="export_isic",
            ),
            *figure_nodes,
            Node(
                nodes.build_report,
                {
                    "test_metrics": "test_metrics",
                    "split_summary": "split_summary",
                    "cached_metadata": "cached_metadata",
                    "classifier": "classifier",
                    **{f"{nodes.PARAM_PREFIX}{k}": f"params:{k}" for k in REPORTED_PARAMETERS},
                    **{name: f"{name}_plot" for name in FIGURES},
                },
                "report",
                name="build_report",
            ),
        ]
    )
