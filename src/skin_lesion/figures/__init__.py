"""Matplotlib figures for the reporting pipeline, built without pyplot (see ``base``).

``base``: class colours, ``new_figure``, ``figure_to_png``; ``evaluation``: test
performance; ``training``: data and training; ``examples``: image grids. Everything public
is importable from here, e.g. ``from skin_lesion.figures import plot_roc_curves``.
"""

from skin_lesion.figures.base import (
    CLASS_COLOURS,
    DEFAULT_DPI,
    SPLIT_COLOURS,
    TSNE_MIN_SAMPLES,
    class_colours,
    figure_to_png,
    new_figure,
)
from skin_lesion.figures.evaluation import (
    operating_point,
    plot_confusion_matrix,
    plot_per_class_f1,
    plot_precision_recall,
    plot_reliability_diagram,
    plot_roc_curves,
)
from skin_lesion.figures.examples import plot_augmentation_grid, plot_gradcam_grid
from skin_lesion.figures.training import (
    plot_class_distribution,
    plot_embedding_map,
    plot_training_curves,
)

__all__ = [
    "CLASS_COLOURS",
    "DEFAULT_DPI",
    "SPLIT_COLOURS",
    "TSNE_MIN_SAMPLES",
    "class_colours",
    "figure_to_png",
    "new_figure",
    "operating_point",
    "plot_augmentation_grid",
    "plot_class_distribution",
    "plot_confusion_matrix",
    "plot_embedding_map",
    "plot_gradcam_grid",
    "plot_per_class_f1",
    "plot_precision_recall",
    "plot_reliability_diagram",
    "plot_roc_curves",
    "plot_training_curves",
]
