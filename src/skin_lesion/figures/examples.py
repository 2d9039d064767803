"""Image grids: augmented training views and Grad-CAM overlays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from skin_lesion.figures.base import (
    HEATMAP_ALPHA,
    HEATMAP_CMAP,
    IMAGE_CELL_INCHES,
    _note,
    new_figure,
)


def _image_axes(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def plot_augmentation_grid(
    originals: np.ndarray, views: np.ndarray, *, titles: Sequence[str] | None = None
) -> Figure:
    """One row per image: the original, then its augmented views.

    Args:
        originals: ``uint8`` images ``(n, H, W, 3)``.
        views: ``uint8`` augmented views ``(n, k, S, S, 3)``.
        titles: A label per row (such as the class), shown left of the row.

    Returns:
        ``n * (k + 1)`` image panels (one note panel when ``n`` is 0).

    Raises:
        ValueError: On shapes or dtypes other than the above.
    """
    originals, views = np.asarray(originals), np.asarray(views)
    if originals.ndim != 4 or originals.shape[-1] != 3 or originals.dtype != np.uint8:
        raise ValueError(
            f"originals must be uint8 (n, H, W, 3), got {originals.dtype} {originals.shape}"
        )
    if views.ndim != 5 or views.shape[-1] != 3 or views.dtype != np.uint8:
        raise ValueError(f"views must be uint8 (n, k, S, S, 3), got {views.dtype} {views.shape}")
    if len(views) != len(originals):
        raise ValueError(f"{len(originals)} originals but views for {len(views)} images")
    if titles is not None and len(titles) != len(originals):
        raise ValueError(f"{len(titles)} titles for {len(originals)} images")
    n, k = views.shape[:2]
    if n == 0:
        fig = new_figure(6.0, 3.0)
        ax = fig.subplots()
        _image_axes(ax)
        ax.set_title("Training augmentation")
        _note(ax, "no examples")
        return fig
    fig = new_figure(IMAGE_CELL_INCHES * (k + 1), IMAGE_CELL_INCHES * n + 0.6)
    axes = fig.subplots(n, k + 1, squeeze=False)
    for i in range(n):
        for j in range(k + 1):
            ax = axes[i, j]
            ax.imshow(originals[i] if j == 0 else views[i, j - 1])
            _image_axes(ax)
            if i == 0:
                ax.set_title("original" if j == 0 else f"view {j}", fontsize=10)
        axes[i, 0].set_ylabel(titles[i] if titles is not None else f"image {i + 1}")
    fig.suptitle(f"Training augmentation: {k} random views per image")
    return fig


GRADCAM_TITLE = (
    "Grad-CAM of the predicted class (encoder's final feature map; "
    "red = most evidence for that class)"
)


# The column labels of Grad-CAM panels, in order (``evaluation.gradcam_panels``'s outcomes).
GRADCAM_COLUMNS = ("correct", "wrong")


def _in_columns(groups: dict[str, list[dict]], columns: Sequence[str]) -> dict[str, list]:
    """Each row's panels in fixed columns by their ``"column"`` label: ``columns`` first
    (shown even where no row has one: a demo model is wrong on no test image), then other
    labels by first appearance, each as wide as its fullest row; a row's empty slot holds
    the text to show there instead."""
    labels = list(dict.fromkeys([*columns, *(p.get("column") for g in groups.values() for p in g)]))
    laid_out: dict[str, list] = {label: [] for label in groups}
    for column in labels:
        fullest = max(sum(p.get("column") == column for p in g) for g in groups.values())
        width = max(fullest, 1 if column in columns else 0)
        for row, members in groups.items():
            mine = [p for p in members if p.get("column") == column]
            missing = [f"no {'other ' if mine else ''}{column} example"] * (width - len(mine))
            laid_out[row] += mine + missing
    return laid_out


def plot_gradcam_grid(
    panels: Sequence[dict],
    *,
    ncols: int = 4,
    title: str = GRADCAM_TITLE,
    columns: Sequence[str] = GRADCAM_COLUMNS,
) -> Figure:
    """Grad-CAM heatmaps over their images, arranged in rows.

    Args:
        panels: ``{"image": uint8 (H, W, 3), "heatmap": float (h, w) in [0, 1],
            "title": str}``, optionally ``"row"``: panels sharing a row label go on one
            row (e.g. one row per class), rows in order of first appearance; and with rows,
            ``"column"``: panels go in fixed columns by that label (``columns``), a row
            without one shows a blank panel saying so ("no correct example"). Without
            ``"row"`` keys, panels fill ``ncols`` columns.
        ncols: Columns when rows are not given.
        title: The figure's title.
        columns: The order of the ``"column"`` labels; labels not in it follow.

    Returns:
        One image panel per entry (one note panel when there are none). The heatmap is
        drawn with the jet colormap at alpha 0.45, stretched over the image.
    """
    if not panels:
        fig = new_figure(6.0, 3.0)
        ax = fig.subplots()
        _image_axes(ax)
        ax.set_title("Grad-CAM")
        _note(ax, "no examples")
        return fig
    if any("row" in p for p in panels):
        groups: dict[str, list[dict]] = {}
        for p in panels:
            groups.setdefault(str(p.get("row", "")), []).append(p)
        if any("column" in p for p in panels):
            # Fixed columns: a class with no correct example had its wrong one moved under
            # the other classes' correct ones.
            groups = _in_columns(groups, columns)
        rows = list(groups.items())
    else:
        rows = [("", list(panels[i : i + ncols])) for i in range(0, len(panels), ncols)]
    width = max(len(members) for _, members in rows)
    fig = new_figure(2.3 * width + 0.4, 2.5 * len(rows) + 0.6)
    for r, (label, members) in enumerate(rows):
        for c, panel in enumerate(members):
            ax = fig.add_subplot(len(rows), width, r * width + c + 1)
            if c == 0 and label:
                ax.set_ylabel(label)
            if isinstance(panel, str):  # a slot of the fixed columns with no example
                _image_axes(ax)
                _note(ax, panel)
                continue
            image = np.asarray(panel["image"])
            height, wide = image.shape[:2]
            ax.imshow(image)
            ax.imshow(
                np.asarray(panel["heatmap"], dtype=float),
                cmap=HEATMAP_CMAP,
                vmin=0.0,
                vmax=1.0,
                alpha=HEATMAP_ALPHA,
                extent=(-0.5, wide - 0.5, height - 0.5, -0.5),
                interpolation="bilinear",
            )
            _image_axes(ax)
            # parse_math off: a title holds a file name, and one with two `$` in it is no
            # mathtext (saving the figure failed on it).
            ax.set_title(panel.get("title", ""), fontsize=9, parse_math=False)
    fig.suptitle(title)
    return fig
