"""Nodes of the inference pipeline: thin calls into the library."""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from skin_lesion.config import from_dict

# skin_lesion.inference, engine and figures import torch, timm and matplotlib: each node
# imports what it calls, so that loading the pipelines (every `kedro` command, kedro-viz,
# `%reload_kedro`) does not.
if TYPE_CHECKING:
    from matplotlib.figure import Figure
else:
    # Kedro's parameter validation resolves every node's type hints (typing.get_type_hints)
    # when a context reads its parameters: an unresolved name logged "Could not extract type
    # hints from function classify_images" at every `kedro run` and `%reload_kedro`.
    Figure = Any

SHOWN = 5  # rejects named in the error of a run that classified nothing


def classify_images(
    inference_images: dict[str, Callable[[], bytes]],
    inference_metadata: pd.DataFrame | None,
    classifier: dict[str, Any],
    test_metrics: dict[str, Any],
    params: dict[str, Any],
    device: str,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Callable[[], Figure]]]:
    """Calibrated probabilities, predicted class and melanoma flag for every image.

    ``inference_metadata`` (None unless ``inference.metadata`` names a CSV) gives the age,
    sex and localization a classifier trained with metadata fusion needs.

    Returns:
        ``inference_predictions``, ``inference_rejects`` (unreadable files, with reasons)
        and ``inference_gradcam``: when ``gradcam: true``, one callable per image that makes
        its overlay figure when the catalog's PartitionedDataset saves it, so that only one
        batch of Grad-CAM and one figure are in memory at a time.
    """
    from skin_lesion import inference
    from skin_lesion.engine import resolve_device

    config = from_dict(inference.InferenceConfig, params, "inference")
    predictions, rejects, panels = inference.predict_images(
        classifier,
        test_metrics.get("operating_point") or {},
        inference_images,
        device=resolve_device(device),
        config=config,
        metadata=inference_metadata,
    )
    if predictions.empty:  # as `skin-lesion predict` exits 1: not an empty CSV over the last
        shown = "; ".join(f"{r.image}: {r.reason}" for r in rejects.head(SHOWN).itertuples())
        more = f" and {len(rejects) - SHOWN} more" if len(rejects) > SHOWN else ""
        raise ValueError(
            f"no image could be classified: all {len(rejects)} file(s) of inference.input_dir "
            f"rejected ({shown}{more}); nothing written"
        )
    names = inference.overlay_names(list(panels))
    overlays = {names[name]: partial(_overlay, panel) for name, panel in panels.items()}
    return predictions, rejects, overlays


def _overlay(panel: Callable[[], dict[str, Any]]) -> Figure:
    """One image's overlay figure, made when the catalog saves it (one at a time).

    The figure saved before is garbage by now, but in reference cycles (figure, axes,
    artists) that Python's collector would only reach in its rare oldest-generation passes:
    collecting the young generations here keeps memory flat over thousands of overlays, at
    no measurable cost (a full collection per overlay would take several times the run).
    """
    from skin_lesion import figures

    gc.collect(1)
    return figures.plot_gradcam_grid([panel()])
