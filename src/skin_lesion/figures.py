"""Matplotlib figures for the reporting pipeline.

Every function builds a ``matplotlib.figure.Figure`` directly (with an Agg canvas) rather
than through pyplot, so nothing is registered with pyplot's figure manager and nothing
accumulates over a long run; the caller saves or embeds the figure (``figure_to_png``).
Each class keeps one colour in every figure (``CLASS_COLOURS``); colours that do not
encode a class (splits, markers) are greys or black so they never read as a class.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from sklearn.manifold import TSNE
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

logger = logging.getLogger(__name__)

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


def plot_confusion_matrix(cm: np.ndarray | list, classes: Sequence[str]) -> Figure:
    """Counts and row-normalised confusion matrices side by side.

    Args:
        cm: Square matrix of counts, true class on rows, predicted on columns.
        classes: Class names in label order.

    Returns:
        Two panels: counts, and each row divided by its total (the diagonal is the
        per-class recall). A class with no true examples has a row of dashes.

    Raises:
        ValueError: If ``cm`` is not square or does not match ``classes``.
    """
    counts = np.asarray(cm, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {counts.shape}")
    _check_classes("confusion matrix", counts.shape[0], classes)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(totals > 0, counts / totals, np.nan)
    size = 4.0 + 0.55 * len(classes)
    fig = new_figure(2 * size + 0.5, size)
    axes = fig.subplots(1, 2)
    panels = [
        (counts, "Counts", "d", counts.max(initial=0.0)),
        (recall, "Row-normalised (recall per true class)", ".2f", 1.0),
    ]
    for ax, (values, title, fmt, vmax) in zip(axes, panels):
        shown = values.astype(int) if fmt == "d" else values
        ax.imshow(values, cmap=MATRIX_CMAP, vmin=0.0, vmax=max(vmax, 1.0))
        _annotate_matrix(ax, shown, fmt, max(vmax, 1.0))
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        ax.set_title(title)
    fig.suptitle(f"Confusion matrix (n = {int(counts.sum())})")
    return fig


def plot_roc_curves(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> Figure:
    """One-vs-rest ROC curve per class, AUC in the legend, with the chance diagonal.

    Args:
        labels: True class index per example, ``(N,)``.
        probs: Predicted probabilities ``(N, K)``.
        classes: Class names in label order.

    Returns:
        One panel. A class absent from ``labels`` (or making up all of them) has no ROC
        curve; the legend says so.
    """
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (N, K) with N = {len(labels)}, got {probs.shape}")
    _check_classes("probs", probs.shape[1], classes)
    fig = new_figure(7.0, 6.0)
    ax = fig.subplots()
    aucs = []
    for k, (name, colour) in enumerate(zip(classes, class_colours(classes))):
        positive = labels == k
        if positive.all() or not positive.any():
            reason = "absent from labels" if not positive.any() else "no negatives"
            ax.plot([], [], color=colour, linestyle=":", label=f"{name}: {reason}, no ROC")
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, k])
        aucs.append(auc(fpr, tpr))
        ax.plot(fpr, tpr, color=colour, linewidth=1.8, label=f"{name} (AUC = {aucs[-1]:.3f})")
    ax.plot([0, 1], [0, 1], color=NEUTRAL, linestyle="--", linewidth=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    macro = f", macro AUC = {np.mean(aucs):.3f}" if aucs else ""
    ax.set_title(f"One-vs-rest ROC curves (n = {len(labels)}{macro})")
    ax.legend(loc="lower right", fontsize=9)
    return fig


def operating_point(labels_binary: np.ndarray, scores: np.ndarray, threshold: float) -> tuple:
    """``(recall, precision)`` of predicting positive when ``score >= threshold``.

    With no predicted positives precision is taken as 1, as at the end of sklearn's
    precision-recall curve.
    """
    positive = np.asarray(labels_binary).astype(bool)
    predicted = np.asarray(scores) >= threshold
    tp = int((predicted & positive).sum())
    recall = tp / positive.sum() if positive.any() else float("nan")
    precision = tp / predicted.sum() if predicted.any() else 1.0
    return float(recall), float(precision)


def plot_precision_recall(
    labels_binary: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float | None,
    positive_name: str = "mel",
) -> Figure:
    """Precision-recall curve of one class against the rest, with its operating point.

    Args:
        labels_binary: 1 (or True) for the positive class, ``(N,)``.
        scores: Score of the positive class, ``(N,)``.
        threshold: Decision threshold chosen on validation; its (recall, precision) is
            marked and annotated. ``None`` marks nothing.
        positive_name: Name of the positive class (its colour in ``CLASS_COLOURS``).

    Returns:
        One panel with the curve (average precision in the legend), the operating point
        and the prevalence baseline (a classifier with no skill).
    """
    positive = np.asarray(labels_binary).astype(bool)
    scores = np.asarray(scores, dtype=float)
    if positive.shape != scores.shape or positive.ndim != 1:
        raise ValueError(
            f"labels_binary and scores must be matching 1-D arrays, "
            f"got {positive.shape} and {scores.shape}"
        )
    colour = class_colours([positive_name])[0]
    fig = new_figure(7.0, 6.0)
    ax = fig.subplots()
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.set_xlabel("Recall (sensitivity)")
    ax.set_ylabel("Precision (positive predictive value)")
    ax.set_title(f"Precision-recall: {positive_name} vs rest (n = {len(positive)})")
    if not positive.any():
        _note(ax, f"no {positive_name} examples: precision-recall undefined")
        return fig
    precision, recall, _ = precision_recall_curve(positive, scores)
    ap = average_precision_score(positive, scores)
    ax.plot(
        recall,
        precision,
        color=colour,
        linewidth=1.8,
        drawstyle="steps-post",
        label=f"{positive_name} (AP = {ap:.3f})",
    )
    prevalence = positive.mean()
    ax.axhline(
        prevalence,
        color=NEUTRAL,
        linestyle="--",
        linewidth=1,
        label=f"prevalence = {prevalence:.3f}",
    )
    if threshold is not None:
        r, p = operating_point(positive, scores, threshold)
        ax.plot(
            [r],
            [p],
            marker="o",
            markersize=9,
            color="black",
            markerfacecolor=colour,
            linestyle="none",
            label=f"operating point (threshold {threshold:.3f}, from val)",
        )
        right = r > ANNOTATE_LEFT_OF  # keep the label inside the axes near recall 1
        ax.annotate(
            f"P = {p:.2f}\nR = {r:.2f}",
            (r, p),
            xytext=(-16 if right else 16, 16),
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize=10,
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": NEUTRAL},
            arrowprops={"arrowstyle": "-", "color": "black"},
        )
    ax.legend(loc="upper right", fontsize=9)
    return fig


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if row.get(key) is None else row[key] for row in rows], dtype=float)


def plot_training_curves(pretraining_history: list[dict], training_history: list[dict]) -> Figure:
    """Loss, validation metrics and learning rate of pretraining and both classifier phases.

    Args:
        pretraining_history: One row per SupCon epoch (``epoch, loss, lr, ...``); empty
            when pretraining was skipped.
        training_history: One row per classifier epoch in order (``phase`` ``warmup`` or
            ``finetune``, ``loss, val_loss, balanced_accuracy, macro_f1, lr, ...``).

    Returns:
        Four panels: SupCon loss; classifier train and validation loss over the epochs of
        both phases (the warm-up shaded); validation balanced accuracy and macro-F1; and
        the learning rate of each stage.
    """
    fig = new_figure(12.0, 8.0)
    (supcon, loss, score, lr) = fig.subplots(2, 2).ravel()
    pre_x = np.arange(1, len(pretraining_history) + 1)
    x = np.arange(1, len(training_history) + 1)
    warmup = sum(row.get("phase") == "warmup" for row in training_history)

    supcon.set_title("Contrastive pretraining (SupCon) loss")
    if pretraining_history:
        supcon.plot(
            pre_x,
            _series(pretraining_history, "loss"),
            marker=".",
            color="black",
            label="train loss",
        )
        _legend(supcon)
    else:
        _note(supcon, "pretraining skipped")
    supcon.set_xlabel("Pretraining epoch")
    supcon.set_ylabel("SupCon loss")

    panels = [
        (loss, "Classifier loss", "Loss", [("loss", "train"), ("val_loss", "validation")]),
        (
            score,
            "Validation metrics",
            "Score",
            [("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1")],
        ),
    ]
    styles = [{"color": "black"}, {"color": NEUTRAL, "linestyle": "--"}]
    for ax, title, ylabel, keys in panels:
        ax.set_title(title)
        ax.set_xlabel("Classifier epoch (warm-up, then fine-tune)")
        ax.set_ylabel(ylabel)
        if not training_history:
            _note(ax, "no classifier history")
            continue
        for (key, label), style in zip(keys, styles):
            ax.plot(x, _series(training_history, key), marker=".", label=label, **style)
        if warmup:
            ax.axvspan(0.5, warmup + 0.5, color=NEUTRAL, alpha=0.12, label="warm-up (frozen)")
            ax.axvline(warmup + 0.5, color=NEUTRAL, linewidth=1)
        _legend(ax, fontsize=9)
    score.set_ylim(0, 1)

    lr.set_title("Learning rate")
    lr.set_xlabel("Epoch of each stage")
    lr.set_ylabel("Learning rate (end of epoch)")
    if pretraining_history:
        lr.plot(
            pre_x,
            _series(pretraining_history, "lr"),
            color=NEUTRAL,
            linestyle="--",
            label="SupCon pretraining",
        )
    if training_history:
        lr.plot(x, _series(training_history, "lr"), color="black", label="classifier")
    if pretraining_history or training_history:
        lr.set_yscale("log")
        _legend(lr, fontsize=9)
    else:
        _note(lr, "no history")
    for ax in (supcon, loss, score, lr):
        if ax.get_lines():  # an empty panel keeps no ticks (see _note)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("Training curves")
    return fig


def _metric(scores: Mapping[str, Any], *keys: str) -> float:
    """The first of ``keys`` in ``scores``; ``None`` (undefined, e.g. no predictions) is NaN."""
    for key in keys:
        if key in scores:
            return float("nan") if scores[key] is None else float(scores[key])
    raise KeyError(f"per-class scores need one of {keys}, got keys {sorted(scores)}")


def plot_per_class_f1(per_class: dict[str, dict], classes: Sequence[str]) -> Figure:
    """F1 per class as bars, precision and recall as markers, support in the tick labels.

    Args:
        per_class: ``{class: {"precision", "recall", "f1" (or sklearn's "f1-score"),
            "support"}}`` as in ``metrics`` or ``classification_report(output_dict=True)``;
            a ``None`` score (undefined) is drawn as "n/a".
        classes: Class names in the order to plot.

    Returns:
        One panel.

    Raises:
        KeyError: If a class or one of its scores is missing.
    """
    missing = [name for name in classes if name not in per_class]
    if missing:
        raise KeyError(f"per_class has no scores for {missing}; it has {sorted(per_class)}")
    rows = [per_class[name] for name in classes]
    f1 = [_metric(r, "f1", "f1-score") for r in rows]
    precision = [_metric(r, "precision") for r in rows]
    recall = [_metric(r, "recall") for r in rows]
    support = [int(_metric(r, "support")) for r in rows]
    x = np.arange(len(classes))
    fig = new_figure(2.5 + 1.1 * len(classes), 5.0)
    ax = fig.subplots()
    ax.bar(x, f1, color=class_colours(classes), edgecolor="black", linewidth=0.6)
    for position, value in zip(x, f1):
        # bar_label leaves undefined (NaN) bars blank; say so instead.
        undefined = np.isnan(value)
        label, y = ("n/a", 0.0) if undefined else (f"{value:.2f}", value)
        ax.text(position, y + 0.01, label, ha="center", va="bottom", fontsize=9)
    ax.plot(
        x - 0.2, precision, "D", color="black", markersize=6, linestyle="none", label="precision"
    )
    ax.plot(
        x + 0.2,
        recall,
        "o",
        color="white",
        markeredgecolor="black",
        markersize=7,
        linestyle="none",
        label="recall",
    )
    ax.set_xticks(x, [f"{name}\n(n = {n})" for name, n in zip(classes, support)])
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("Class (support)")
    ax.set_ylabel("Score")
    ax.set_title("Per-class F1 (bars), precision and recall (markers)")
    handles = [
        Patch(facecolor="white", edgecolor="black", label="F1 (bar)"),
        *ax.get_legend_handles_labels()[0],
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=9, ncols=3)
    return fig


def plot_class_distribution(
    splits: pd.DataFrame, classes: Sequence[str], *, log: bool = False
) -> Figure:
    """Images per class in each split, as grouped bars with counts annotated.

    Args:
        splits: One row per image with columns ``dx`` (class name) and ``split``.
        classes: Class names in the order to plot.
        log: Logarithmic count axis (HAM10000 is dominated by ``nv``).

    Returns:
        One panel; splits in ``SPLIT_ORDER`` first, then any others.

    Raises:
        ValueError: If a column is missing or ``dx`` holds a name not in ``classes``.
    """
    missing = {"dx", "split"} - set(splits.columns)
    if missing:
        raise ValueError(f"splits needs columns dx and split; missing {sorted(missing)}")
    unknown = sorted(set(splits["dx"]) - set(classes))
    if unknown:
        raise ValueError(f"splits has diagnoses {unknown} that are not in classes {classes}")
    counts = pd.crosstab(splits["dx"], splits["split"]).reindex(index=list(classes), fill_value=0)
    present = list(counts.columns)
    order = [s for s in SPLIT_ORDER if s in present] + sorted(set(present) - set(SPLIT_ORDER))
    grey = matplotlib.colormaps["Greys"]
    fig = new_figure(2.5 + 1.3 * len(classes), 5.5)
    ax = fig.subplots()
    width = 0.8 / max(len(order), 1)
    x = np.arange(len(classes))
    for i, split in enumerate(order):
        colour = SPLIT_COLOURS.get(split, grey(0.3 + 0.5 * i / max(len(order), 1)))
        values = counts[split].to_numpy()
        bars = ax.bar(
            x + (i - (len(order) - 1) / 2) * width,
            values,
            width,
            color=colour,
            edgecolor="black",
            linewidth=0.5,
            label=f"{split} (n = {values.sum()})",
        )
        ax.bar_label(bars, fontsize=7, padding=1)
    totals = counts.sum(axis=1).to_numpy()
    ax.set_xticks(x, [f"{name}\n(n = {n})" for name, n in zip(classes, totals)])
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.1)
    ax.set_xlabel("Diagnosis")
    ax.set_ylabel("Images" + (" (log scale)" if log else ""))
    ax.set_title(f"Images per class and split (n = {len(splits)})")
    _legend(ax, title="split")
    return fig


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


def _bin_arrays(bins: Mapping[str, Any]) -> dict[str, np.ndarray]:
    rows = [b for b in bins["bins"] if b.get("count") and b.get("accuracy") is not None]
    return {
        "lower": np.array([b["lower"] for b in rows], dtype=float),
        "upper": np.array([b["upper"] for b in rows], dtype=float),
        "confidence": np.array([b["mean_confidence"] for b in rows], dtype=float),
        "accuracy": np.array([b["accuracy"] for b in rows], dtype=float),
        "count": np.array([b["count"] for b in rows], dtype=float),
    }


def plot_reliability_diagram(
    bins_before: dict, bins_after: dict, *, ece_before: float, ece_after: float
) -> Figure:
    """Reliability diagrams before and after temperature scaling (Guo et al. 2017, Fig. 1).

    Args:
        bins_before: ``{"bins": [{"lower", "upper", "count", "mean_confidence",
            "accuracy"}, ...]}`` (``metrics.reliability_bins``) of the raw model; empty
            bins have ``accuracy`` ``None`` and are not drawn.
        bins_after: The same after temperature scaling.
        ece_before: Expected calibration error before.
        ece_after: Expected calibration error after.

    Returns:
        Two panels: accuracy per confidence bin as bars, the gap to the bin's mean
        confidence hatched, and the diagonal of perfect calibration.
    """
    fig = new_figure(11.0, 5.2)
    axes = fig.subplots(1, 2, sharey=True)
    panels = [(bins_before, ece_before, "Before"), (bins_after, ece_after, "After")]
    for ax, (bins, ece, when) in zip(axes, panels):
        b = _bin_arrays(bins)
        width, left = b["upper"] - b["lower"], b["lower"]
        ax.bar(
            left,
            b["accuracy"],
            width,
            align="edge",
            color="#0072B2",
            edgecolor="black",
            linewidth=0.5,
            label=f"accuracy (ECE = {ece:.3f})",
        )
        ax.bar(
            left,
            b["confidence"] - b["accuracy"],
            width,
            bottom=b["accuracy"],
            align="edge",
            color="none",
            edgecolor="#D55E00",
            hatch="//",
            linewidth=0.5,
            label="gap to mean confidence",
        )
        ax.plot([0, 1], [0, 1], color=NEUTRAL, linestyle="--", label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
        ax.set_xlabel("Confidence (max softmax probability)")
        ax.set_ylabel("Accuracy")
        ax.set_title(f"{when} temperature scaling (n = {int(b['count'].sum())})")
        ax.legend(loc="upper left", fontsize=9)
    fig.suptitle("Reliability diagram")
    return fig


def plot_embedding_map(
    embeddings: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    *,
    seed: int = 0,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    title: str = "t-SNE of the contrastive embeddings (val+test)",
) -> Figure:
    """2-D t-SNE map of embeddings, one colour per class.

    Args:
        embeddings: ``(N, D)`` features.
        labels: Class index per row.
        classes: Class names in label order.
        seed: t-SNE's random state.
        perplexity: t-SNE perplexity; clipped below ``N / 3`` for small ``N``.
        max_iter: t-SNE optimisation steps (sklearn's default, 1000; at least 250).
        title: Figure title.

    Returns:
        One panel (a note instead of a map when ``N < TSNE_MIN_SAMPLES``).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(
            f"embeddings must be (N, D) with N = {len(labels)} labels, got {embeddings.shape}"
        )
    fig = new_figure(8.0, 7.0)
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    n = len(embeddings)
    if n < TSNE_MIN_SAMPLES:
        _note(ax, f"too few embeddings for t-SNE (n = {n})")
        return fig
    # sklearn needs perplexity < n; below n / 3 keeps neighbourhoods local on small sets.
    used = min(perplexity, (n - 1) / 3)
    if used < perplexity:
        logger.info("t-SNE perplexity %.1f clipped to %.1f for %d points", perplexity, used, n)
    tsne = TSNE(n_components=2, perplexity=used, init="pca", max_iter=max_iter, random_state=seed)
    points = tsne.fit_transform(embeddings)
    for k, (name, colour) in enumerate(zip(classes, class_colours(classes))):
        mask = labels == k
        if mask.any():
            ax.scatter(
                *points[mask].T,
                s=10,
                color=colour,
                alpha=0.8,
                linewidths=0,
                label=f"{name} (n = {mask.sum()})",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(title="class", markerscale=2, fontsize=9, loc="best")
    return fig


def plot_gradcam_grid(panels: Sequence[dict], *, ncols: int = 4) -> Figure:
    """Grad-CAM heatmaps over their images, arranged in rows.

    Args:
        panels: ``{"image": uint8 (H, W, 3), "heatmap": float (h, w) in [0, 1],
            "title": str}``, optionally ``"row"``: panels sharing a row label go on one
            row (e.g. one row per class, correct then wrong predictions), rows in order of
            first appearance. Without ``"row"`` keys, panels fill ``ncols`` columns.
        ncols: Columns when rows are not given.

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
        rows = list(groups.items())
    else:
        rows = [("", list(panels[i : i + ncols])) for i in range(0, len(panels), ncols)]
    width = max(len(members) for _, members in rows)
    fig = new_figure(2.3 * width + 0.4, 2.5 * len(rows) + 0.6)
    for r, (label, members) in enumerate(rows):
        for c, panel in enumerate(members):
            ax = fig.add_subplot(len(rows), width, r * width + c + 1)
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
            ax.set_title(panel.get("title", ""), fontsize=9)
            if c == 0 and label:
                ax.set_ylabel(label)
    fig.suptitle("Grad-CAM (last conv layer; red = most evidence for the class)")
    return fig
