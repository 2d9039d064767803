"""Data and training figures: class distribution, training curves, embedding t-SNE map."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import offset_copy
from sklearn.manifold import TSNE

from skin_lesion.figures.base import (
    NEUTRAL,
    SPLIT_COLOURS,
    SPLIT_ORDER,
    TSNE_MIN_SAMPLES,
    _legend,
    _note,
    class_colours,
    new_figure,
)

logger = logging.getLogger(__name__)


# The line marking the epoch whose weights the classifier kept.
KEPT_COLOUR = "#d62728"
# A little above 1: a score of 1.0 (the demo's) was drawn on the axes' top edge, half hidden.
SCORE_TOP = 1.02
# The SupCon panel's axes reach this multiple of their data's span: the top fifth holds the
# legend, clear of both lines.
LEGEND_ROOM = 1.25
# Inches from the bottom of a classifier panel to its legend: below the tick labels and the
# x label.
LEGEND_BELOW = 0.5


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if row.get(key) is None else row[key] for row in rows], dtype=float)


def _kept_at(training_history: Sequence[Mapping[str, Any]], selected: Mapping | None):
    """The 1-based position in ``training_history`` of the epoch ``selected`` names, or None."""
    if not selected:
        return None
    for position, row in enumerate(training_history, start=1):
        if row.get("phase") == selected.get("phase") and row.get("epoch") == selected.get("epoch"):
            return position
    return None


def plot_training_curves(
    pretraining_history: list[dict],
    training_history: list[dict],
    selected: Mapping[str, Any] | None = None,
) -> Figure:
    """Loss, validation metrics and learning rate of pretraining and both classifier phases.

    Args:
        pretraining_history: One row per SupCon epoch (``epoch, loss, lr, ...``, and
            ``val_knn_balanced_accuracy`` on the epochs the kNN monitor scored); empty
            when pretraining was skipped.
        training_history: One row per classifier epoch in order (``phase`` ``warmup`` or
            ``finetune``, ``loss, val_loss, balanced_accuracy, macro_f1, lr, ...``).
        selected: The epoch whose weights the classifier kept (its checkpoint's
            ``selected``: ``phase``, ``epoch``, ``metric``, ``ema``), marked on the classifier
            panels; none marked where None or not in the history.

    Returns:
        Four panels: SupCon loss (with the validation kNN score on a second axis when
        the monitor ran); classifier train and validation loss over the epochs of
        both phases (the warm-up shaded); validation balanced accuracy and macro-F1; and
        the learning rate of each stage.
    """
    fig = new_figure(12.0, 10.0)
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
        knn = _series(pretraining_history, "val_knn_balanced_accuracy")
        if np.isfinite(knn).any():
            monitor = supcon.twinx()
            scored = np.isfinite(knn)
            monitor.plot(
                pre_x[scored],
                knn[scored],
                marker=".",
                color=NEUTRAL,
                linestyle="--",
                label="validation kNN balanced accuracy",
            )
            # Head room above both lines for one legend of both axes: "best" weighs only
            # the loss axis's line and put the legend over the kNN line near 1.0 (the demo).
            monitor.set_ylim(0, SCORE_TOP * LEGEND_ROOM)
            monitor.set_yticks(np.linspace(0, 1, 6))
            low, high = supcon.get_ylim()
            supcon.set_ylim(low, low + (high - low) * LEGEND_ROOM)
            monitor.set_ylabel("Validation kNN balanced accuracy")
            supcon.set_title("Contrastive pretraining (SupCon): loss, validation kNN")
            lines = supcon.get_lines() + monitor.get_lines()
            supcon.legend(
                lines, [line.get_label() for line in lines], fontsize=9, loc="upper center", ncols=2
            )
        else:
            _legend(supcon)
    else:
        _note(supcon, "pretraining skipped")
    supcon.set_xlabel("Pretraining epoch")
    supcon.set_ylabel("SupCon loss")

    panels = [
        # Not one loss: train is the training objective (focal by default, class-weighted),
        # validation the plain cross-entropy (classification_metrics); their gap is no
        # overfitting measure.
        (
            loss,
            "Classifier loss (train: training objective; validation: cross-entropy)",
            "Loss",
            [("loss", "train (training objective)"), ("val_loss", "validation (cross-entropy)")],
        ),
        (
            score,
            "Validation metrics",
            "Score",
            [("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1")],
        ),
    ]
    styles = [{"color": "black"}, {"color": NEUTRAL, "linestyle": "--"}]
    kept = _kept_at(training_history, selected)
    if kept is not None:
        chosen_by = str(selected.get("metric") or "validation").replace("_", " ")
        weights = ", EMA weights" if selected.get("ema") else ""
        phase = {"warmup": "warm-up", "finetune": "fine-tune"}.get(selected["phase"], "")
        kept_label = f"kept: epoch {kept} ({phase}; by {chosen_by}{weights})"
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
        if kept is not None:
            ax.axvline(kept, color=KEPT_COLOUR, linestyle=":", linewidth=1.5, label=kept_label)
        # Under the panel's x label, clear of the data: inside, "best" put the loss legend
        # over the demo's train loss, which crosses the panel, and no corner is free of a
        # real run's lines and the kept-epoch line.
        below = offset_copy(ax.transAxes, fig=fig, y=-LEGEND_BELOW, units="inches")
        _legend(ax, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below)
    score.set_ylim(0, SCORE_TOP)

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
        lr.plot(x, _series(training_history, "lr"), color="black", label="classifier head")
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
