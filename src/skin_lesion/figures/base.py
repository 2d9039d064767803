"""Shared pieces of the figures: class colours, an Agg-backed figure, PNG export, notes.

Every function of this package builds a ``matplotlib.figure.Figure`` directly (with an Agg
canvas) rather than through pyplot, so nothing is registered with pyplot's figure manager
and nothing accumulates over a long run. Each class keeps one colour in every figure
(``CLASS_COLOURS``); colours that do not encode a class (splits, markers) are greys or
black so they never read as a class.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Okabe & Ito's colour-blind-safe palette (yellow swapped for olive, which reads on white);
# melanoma gets vermillion so the class that matters most stands out.
CLASS_COLOURS: dict[str, str] = {
    "akiec": "#E69F00",
    "bcc": "#56B4E9",
    "bkl": "#009E73",
    "df": "#999933",
    "mel": "#D55E00",
    "nv": "#0072B2",
    "vasc": "#CC79A7",
}
FALLBACK_COLOURS = "tab10"
SPLIT_ORDER = ("train", "val", "test")
SPLIT_COLOURS: dict[str, str] = {"train": "#4D4D4D", "val": "#8C8C8C", "test": "#C7C7C7"}
NEUTRAL = "#7F7F7F"
HEATMAP_CMAP = "jet"
HEATMAP_ALPHA = 0.45
MATRIX_CMAP = "Blues"
DEFAULT_DPI = 120
# Annotations on a cell switch to white text above this fraction of the colour scale.
DARK_CELL = 0.5
# Fewer embeddings than this get a note instead of a t-SNE map (too few to lay out).
TSNE_MIN_SAMPLES = 5
IMAGE_CELL_INCHES = 1.9
ANNOTATE_LEFT_OF = 0.75
ANNOTATE_BELOW = 0.85  # y above which a point's label goes below it, inside the axes
NOTE_STYLE: dict[str, Any] = {"ha": "center", "va": "center", "fontsize": 12, "color": NEUTRAL}


def class_colours(classes: Sequence[str]) -> list[str]:
    """The colour of each class: ``CLASS_COLOURS``, else tab10 by position."""
    fallback = matplotlib.colormaps[FALLBACK_COLOURS]
    return [
        CLASS_COLOURS.get(name, matplotlib.colors.to_hex(fallback(i % fallback.N)))
        for i, name in enumerate(classes)
    ]


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on an Agg canvas, outside pyplot's registry."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_to_png(fig: Figure, dpi: int = DEFAULT_DPI) -> bytes:
    """The figure as PNG bytes (for embedding in HTML as a data URI)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _note(ax: Axes, text: str) -> None:
    """Say why a panel is empty, in place of its (meaningless) ticks."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, transform=ax.transAxes, **NOTE_STYLE)


def _legend(ax: Axes, **kwargs: Any) -> None:
    """A legend only when something is labelled (an empty one warns)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _check_classes(name: str, size: int, classes: Sequence[str]) -> None:
    if size != len(classes):
        raise ValueError(f"{name} has {size} classes but {len(classes)} names: {list(classes)}")


def _annotate_matrix(ax: Axes, values: np.ndarray, fmt: str, vmax: float) -> None:
    for (i, j), value in np.ndenumerate(values):
        text = "–" if np.isnan(value) else format(value, fmt)
        dark = not np.isnan(value) and vmax > 0 and value / vmax > DARK_CELL
        ax.text(
            j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black"
        )
