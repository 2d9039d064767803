"""Test-performance figures: confusion matrix, ROC, melanoma PR, per-class F1, reliability."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from skin_lesion.figures.base import (
    ANNOTATE_BELOW,
    ANNOTATE_LEFT_OF,
    MATRIX_CMAP,
    NEUTRAL,
    _annotate_matrix,
    _check_classes,
    _note,
    class_colours,
    new_figure,
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


def plot_roc_curves(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    operating_points: Sequence[tuple[str, float, float]] = (),
    positive_name: str = "mel",
) -> Figure:
    """One-vs-rest ROC curve per class, AUC in the legend, with the chance diagonal.

    Args:
        labels: True class index per example, ``(N,)``.
        probs: Predicted probabilities ``(N, K)``.
        classes: Class names in label order.
        operating_points: ``(label, 1 - specificity, sensitivity)`` of ``positive_name``'s
            operating points, marked: a threshold on its probability lies on its curve;
            the argmax rule is no such threshold and need not.
        positive_name: The class the operating points belong to (its colour).

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
    colour = class_colours([positive_name])[0]
    for (label, fpr_point, tpr_point), marker in zip(operating_points, "os^Dv"):
        ax.plot(
            [fpr_point],
            [tpr_point],
            marker=marker,
            markersize=8,
            color="black",
            markerfacecolor=colour,
            linestyle="none",
            label=f"{positive_name} {label}",
        )
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
            label=f"operating point (threshold {threshold:.6g}, from val)",
        )
        right = r > ANNOTATE_LEFT_OF  # keep the label inside the axes near recall 1
        # Nothing flagged: precision is undefined (the curve's end convention puts it at 1).
        shown = (
            "P undefined:\nnothing flagged" if not (scores >= threshold).any() else f"P = {p:.2f}"
        )
        ax.annotate(
            f"{shown}\nR = {r:.2f}",
            (r, p),
            # below a point near the top (nothing flagged sits at P = 1), else above it
            xytext=(-16 if right else 16, -40 if p > ANNOTATE_BELOW else 16),
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize=10,
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": NEUTRAL},
            arrowprops={"arrowstyle": "-", "color": "black"},
        )
    # Lower left, the curve's empty corner: upper right covered a high-precision operating
    # point's label (and the top of the curve).
    ax.legend(loc="lower left", fontsize=9)
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
    # Head room above 1 for the value labels and the legend, which covered the labels of
    # bars near F1 = 1; ticks stop at 1.
    ax.set_ylim(0, 1.25)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("Class (support)")
    ax.set_ylabel("Score")
    ax.set_title("Per-class F1 (bars), precision and recall (markers)")
    handles = [
        Patch(facecolor="white", edgecolor="black", label="F1 (bar)"),
        *ax.get_legend_handles_labels()[0],
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=9, ncols=3)
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
            "accuracy"}, ...]}`` (``calibration.reliability_bins``) of the raw model; empty
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
