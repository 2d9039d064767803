import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score

from skin_lesion import figures

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def pyplot_registry_unchanged():
    before = len(plt.get_fignums())
    yield
    assert len(plt.get_fignums()) == before


def texts(fig: Figure) -> list[str]:
    """Every tick label, legend entry, title and free text of the figure."""
    out = [fig.get_suptitle()]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        out += [t.get_text() for t in ax.texts]
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        if ax.get_legend() is not None:
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return out


def assert_labelled(fig: Figure) -> None:
    for ax in fig.axes:
        twin = [a for a in ax.get_shared_x_axes().get_siblings(ax) if a is not ax]
        if twin and not ax.get_title():  # a second y axis: its panel has the title and x label
            assert ax.get_ylabel() and twin[0].get_title(), twin[0]
            continue
        assert ax.get_title(), ax
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()


def assert_names_shown(fig: Figure, names) -> None:
    shown = " ".join(texts(fig))
    for name in names:
        assert name in shown, name


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def line_labelled(ax, prefix: str):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith(prefix)]
    return line


def png_width(data: bytes) -> int:
    return int.from_bytes(data[16:20], "big")  # IHDR follows the 8-byte magic


# ----- confusion matrix ------------------------------------------------------------------


def confusion() -> np.ndarray:
    cm = np.random.default_rng(0).integers(0, 20, size=(7, 7))
    return cm + np.diag(np.arange(50, 120, 10))


def cell_texts(ax, parse) -> np.ndarray:
    """The annotation of each cell, placed by its (x = column, y = row) position."""
    out = np.full((7, 7), np.nan)
    for t in ax.texts:
        column, row = np.rint(t.get_position()).astype(int)
        out[row, column] = parse(t.get_text())
    return out


def test_confusion_matrix_annotates_counts_and_recall():
    cm = confusion()
    fig = figures.plot_confusion_matrix(cm.tolist(), CLASSES)
    counts_ax, recall_ax = fig.axes
    assert len(fig.axes) == 2
    assert_labelled(fig)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
        assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    np.testing.assert_array_equal(cell_texts(counts_ax, int), cm)
    shown = np.asarray(recall_ax.images[0].get_array())
    np.testing.assert_allclose(shown.sum(axis=1), 1.0)
    recall = cm / cm.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(cell_texts(recall_ax, float), recall, atol=0.005)


def test_confusion_matrix_row_without_examples_is_dashes():
    cm = confusion()
    cm[3] = 0
    fig = figures.plot_confusion_matrix(cm, CLASSES)
    row = [t.get_text() for t in fig.axes[1].texts][3 * 7 : 4 * 7]
    assert row == ["–"] * 7


def test_confusion_matrix_rejects_mismatched_classes():
    with pytest.raises(ValueError, match="7 classes but 3 names"):
        figures.plot_confusion_matrix(confusion(), CLASSES[:3])


# ----- ROC ------------------------------------------------------------------------------


def roc_data(n: int = 140):
    rng = np.random.default_rng(1)
    labels = rng.choice([0, 1, 2, 4, 5, 6], size=n)  # df (3) absent
    logits = rng.normal(size=(n, 7)) + 2.0 * np.eye(7)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


def test_roc_curves_report_auc_and_absent_classes():
    labels, probs = roc_data()
    fig = figures.plot_roc_curves(labels, probs, CLASSES)
    (ax,) = fig.axes
    assert_labelled(fig)
    legend = legend_texts(ax)
    assert_names_shown(fig, CLASSES)
    expected = roc_auc_score(labels == 4, probs[:, 4])
    assert f"mel (AUC = {expected:.3f})" in legend
    assert any(t.startswith("df: absent") for t in legend)
    chance = line_labelled(ax, "chance")
    np.testing.assert_array_equal(chance.get_xydata(), [[0, 0], [1, 1]])
    assert len(line_labelled(ax, "mel").get_xdata()) > 2


# ----- precision-recall -----------------------------------------------------------------

PR_LABELS = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 0])
PR_SCORES = np.array([0.9, 0.8, 0.35, 0.7, 0.2, 0.1, 0.45, 0.6, 0.3, 0.05])


def test_precision_recall_marks_operating_point():
    fig = figures.plot_precision_recall(PR_LABELS, PR_SCORES, threshold=0.4)
    (ax,) = fig.axes
    assert_labelled(fig)
    # Predicted positive at >= 0.4: 0.9, 0.8, 0.7, 0.45, 0.6 -> 3 of 5 correct, 3 of 4 found.
    point = line_labelled(ax, "operating point")
    np.testing.assert_allclose(point.get_xydata(), [[3 / 4, 3 / 5]])
    assert "P = 0.60\nR = 0.75" in [t.get_text() for t in ax.texts]
    np.testing.assert_allclose(line_labelled(ax, "prevalence").get_ydata(), [0.4, 0.4])
    ap = average_precision_score(PR_LABELS, PR_SCORES)
    assert f"mel (AP = {ap:.3f})" in legend_texts(ax)


def test_precision_recall_says_when_the_threshold_flags_nothing():
    # Above every score: recall 0 and no precision (drawn at 1, the curve's end), not "P = 1".
    fig = figures.plot_precision_recall(PR_LABELS, PR_SCORES, threshold=0.95)
    (ax,) = fig.axes
    np.testing.assert_allclose(line_labelled(ax, "operating point").get_xydata(), [[0.0, 1.0]])
    (label,) = ax.texts
    assert label.get_text() == "P undefined:\nnothing flagged\nR = 0.00"
    assert label.xyann[1] < 0  # below the point at the top, not over the title


def test_precision_recall_without_threshold_or_positives():
    fig = figures.plot_precision_recall(PR_LABELS, PR_SCORES, threshold=None, positive_name="bcc")
    assert not [ln for ln in fig.axes[0].get_lines() if "operating" in ln.get_label()]
    assert any("bcc" in t for t in legend_texts(fig.axes[0]))
    empty = figures.plot_precision_recall(np.zeros(4), np.ones(4), threshold=0.5)
    assert any("no mel examples" in t.get_text() for t in empty.axes[0].texts)


# ----- training curves ------------------------------------------------------------------


def histories():
    pre = [
        {"epoch": e, "loss": 5.0 - e, "lr": 0.1 / (e + 1), "img_per_s": 100.0, "seconds": 1.0}
        for e in range(3)
    ]
    train = [
        {
            "phase": phase,
            "epoch": e,
            "loss": 2.0 - 0.1 * i,
            "val_loss": 2.1 - 0.1 * i,
            "balanced_accuracy": 0.3 + 0.05 * i,
            "macro_f1": 0.25 + 0.05 * i,
            "accuracy": 0.5,
            "lr": 1e-3 / (i + 1),
            "img_per_s": 50.0,
            "seconds": 2.0,
        }
        for i, (phase, e) in enumerate(
            [("warmup", 0), ("warmup", 1), *(("finetune", e) for e in range(4))]
        )
    ]
    return pre, train


def test_training_curves_panels_and_phase_boundary():
    pre, train = histories()
    fig = figures.plot_training_curves(pre, train)
    supcon, loss, score, lr = fig.axes
    assert len(fig.axes) == 4
    assert_labelled(fig)
    np.testing.assert_allclose(line_labelled(supcon, "train loss").get_ydata(), [5, 4, 3])
    val = line_labelled(loss, "validation")
    np.testing.assert_allclose(val.get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(val.get_ydata(), [r["val_loss"] for r in train])
    boundaries = [ln.get_xdata()[0] for ln in loss.get_lines() if ln.get_label().startswith("_")]
    assert 2.5 in boundaries  # between warm-up epoch 2 and fine-tune epoch 1
    f1 = line_labelled(score, "macro-F1")
    np.testing.assert_allclose(f1.get_ydata(), [r["macro_f1"] for r in train])
    assert lr.get_yscale() == "log"
    assert {"SupCon pretraining", "classifier head"} <= set(legend_texts(lr))


def test_training_curves_mark_the_epoch_the_classifier_kept():
    pre, train = histories()
    kept = {"phase": "finetune", "epoch": 1, "metric": "balanced_accuracy", "ema": True}
    fig = figures.plot_training_curves(pre, train, kept)
    _, loss, score, _ = fig.axes
    label = "kept: epoch 4 (fine-tune; by balanced accuracy, EMA weights)"
    for ax in (loss, score):
        assert line_labelled(ax, label).get_xdata()[0] == 4  # 2 warm-up epochs, then 2nd
    assert label in legend_texts(score)
    # An epoch the history does not hold (another run's), or none: nothing marked.
    for other in ({**kept, "epoch": 9}, None):
        fig = figures.plot_training_curves(pre, train, other)
        assert not any(t.startswith("kept") for t in legend_texts(fig.axes[2]))


def test_gradcam_titles_say_when_a_map_holds_no_positive_evidence():
    from skin_lesion.evaluation import evidence_note

    assert evidence_note(np.zeros((7, 7), np.float32)) == "\nno positive Grad-CAM evidence"
    assert evidence_note(np.eye(7, dtype=np.float32)) == ""


def test_training_curves_draw_the_knn_monitor_on_its_own_axis():
    pre, train = histories()
    pre[0]["val_knn_balanced_accuracy"] = 0.4  # scored after epochs 1 and 3 (every: 2)
    pre[2]["val_knn_balanced_accuracy"] = 0.55
    fig = figures.plot_training_curves(pre, train)
    assert len(fig.axes) == 5
    supcon, monitor = fig.axes[0], fig.axes[4]
    assert_labelled(fig)
    knn = line_labelled(monitor, "validation kNN balanced accuracy")
    np.testing.assert_allclose(knn.get_xdata(), [1, 3])
    np.testing.assert_allclose(knn.get_ydata(), [0.4, 0.55])
    assert monitor.get_ylim()[1] > 1.02  # a score of 1.0 is not drawn on the edge
    assert max(monitor.get_yticks()) == 1.0
    assert supcon.get_title() == "Contrastive pretraining (SupCon): loss, validation kNN"
    assert set(legend_texts(supcon)) == {"train loss", "validation kNN balanced accuracy"}


@pytest.mark.parametrize("knn", [0.3, 0.7, 1.0])
def test_training_curves_supcon_legend_clears_both_lines(knn):
    # The legend of the SupCon panel covered the kNN line near 1.0 (the demo's): "best"
    # placed it looking at the loss line only.
    pre, train = histories()
    pre = pre * 4  # 12 epochs, the loss falling from 5 to 3 each third
    for row in pre:
        row["val_knn_balanced_accuracy"] = knn
    fig = figures.plot_training_curves(pre, train)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    supcon, monitor = fig.axes[0], fig.axes[4]
    legend = supcon.get_legend().get_window_extent(renderer)
    for ax in (supcon, monitor):
        for line in ax.get_lines():
            points = ax.transData.transform(line.get_xydata())
            assert not any(legend.contains(x, y) for x, y in points), line.get_label()


def test_training_curves_legends_of_the_classifier_panels_cover_nothing():
    """The loss legend ("best") sat over the demo's train loss, which falls across the
    panel from 0.72 to 0.01 and climbs back to 0.25."""
    pre, train = histories()
    for row, loss, val_loss in zip(
        train, [0.72, 0.01, 0.04, 0.25, 0.07, 0.0], [0.07, 0.02, 0.01, 0.0, 0.0, 0.0]
    ):
        row.update(loss=loss, val_loss=val_loss, balanced_accuracy=1.0, macro_f1=1.0)
    kept = {"phase": "finetune", "epoch": 2, "metric": "balanced_accuracy", "ema": True}
    fig = figures.plot_training_curves(pre, train, kept)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    _, loss, score, _ = fig.axes
    for ax in (loss, score):
        legend = ax.get_legend().get_window_extent(renderer)
        covered = [a.get_title() for a in fig.axes if legend.overlaps(a.get_window_extent())]
        covered += [
            t.get_text()
            for a in fig.axes
            for t in (a.title, a.xaxis.label, *a.get_xticklabels())
            if t.get_text() and legend.overlaps(t.get_window_extent(renderer))
        ]
        assert not covered, (ax.get_title(), covered)
        assert "warm-up (frozen)" in legend_texts(ax)


def test_training_curves_without_pretraining_or_any_history():
    _, train = histories()
    fig = figures.plot_training_curves([], train)
    supcon = fig.axes[0]
    assert [t.get_text() for t in supcon.texts] == ["pretraining skipped"]
    assert not supcon.get_lines()
    assert_labelled(fig)
    empty = figures.plot_training_curves([], [])
    assert len(empty.axes) == 4
    assert figures.figure_to_png(empty).startswith(PNG_MAGIC)


# ----- per-class F1 ---------------------------------------------------------------------


def per_class():
    return {
        name: {
            "precision": 0.5 + 0.05 * i,
            "recall": 0.4 + 0.06 * i,
            "f1-score": 0.45 + 0.05 * i,
            "support": 10 * (i + 1),
        }
        for i, name in enumerate(CLASSES)
    }


def test_per_class_f1_bars_markers_and_support():
    scores = per_class()
    fig = figures.plot_per_class_f1(scores, CLASSES)
    (ax,) = fig.axes
    assert_labelled(fig)
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, [scores[c]["f1-score"] for c in CLASSES])
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[4] == "mel\n(n = 50)"
    recall = line_labelled(ax, "recall")
    np.testing.assert_allclose(recall.get_ydata(), [scores[c]["recall"] for c in CLASSES])
    assert {"F1 (bar)", "precision", "recall"} == set(legend_texts(ax))


def test_per_class_f1_undefined_score_is_not_applicable():
    scores = {name: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3} for name in CLASSES}
    scores["df"] = {"precision": None, "recall": 0.0, "f1": None, "support": 0}
    ax = figures.plot_per_class_f1(scores, CLASSES).axes[0]
    assert [t.get_text() for t in ax.texts][3] == "n/a"
    assert np.isnan(ax.patches[3].get_height())


def test_per_class_f1_names_a_missing_class():
    scores = per_class()
    del scores["vasc"]
    with pytest.raises(KeyError, match="vasc"):
        figures.plot_per_class_f1(scores, CLASSES)


# ----- class distribution ---------------------------------------------------------------


def split_table() -> pd.DataFrame:
    rows = []
    for i, name in enumerate(CLASSES):
        for split, n in (("train", 3 * i + 5), ("val", i + 2), ("test", i + 1)):
            rows += [{"dx": name, "split": split}] * n
    return pd.DataFrame(rows)


def test_class_distribution_counts_per_split():
    splits = split_table()
    fig = figures.plot_class_distribution(splits, CLASSES, log=True)
    (ax,) = fig.axes
    assert_labelled(fig)
    assert ax.get_yscale() == "log"
    heights = np.array([bar.get_height() for bar in ax.patches]).reshape(3, 7)
    expected = pd.crosstab(splits["split"], splits["dx"]).loc[["train", "val", "test"], CLASSES]
    np.testing.assert_array_equal(heights, expected.to_numpy())
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(expected.to_numpy().ravel())
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == CLASSES
    assert [t.split(" ")[0] for t in legend_texts(ax)] == ["train", "val", "test"]


def test_class_distribution_rejects_unknown_diagnosis():
    splits = pd.DataFrame({"dx": ["mel", "melanoma"], "split": ["train", "val"]})
    with pytest.raises(ValueError, match="melanoma"):
        figures.plot_class_distribution(splits, CLASSES)


# ----- augmentation grid ----------------------------------------------------------------


def test_augmentation_grid_rows_of_original_then_views():
    rng = np.random.default_rng(2)
    originals = rng.integers(0, 255, size=(2, 20, 24, 3), dtype=np.uint8)
    views = rng.integers(0, 255, size=(2, 3, 16, 16, 3), dtype=np.uint8)
    fig = figures.plot_augmentation_grid(originals, views, titles=["mel", "nv"])
    assert len(fig.axes) == 2 * 4
    assert fig.get_suptitle()
    assert [ax.get_title() for ax in fig.axes[:4]] == ["original", "view 1", "view 2", "view 3"]
    np.testing.assert_array_equal(fig.axes[4].images[0].get_array(), originals[1])
    np.testing.assert_array_equal(fig.axes[7].images[0].get_array(), views[1, 2])
    assert [fig.axes[0].get_ylabel(), fig.axes[4].get_ylabel()] == ["mel", "nv"]


def test_augmentation_grid_checks_dtype_and_handles_none():
    with pytest.raises(ValueError, match="float64"):
        figures.plot_augmentation_grid(np.zeros((1, 8, 8, 3)), np.zeros((1, 2, 8, 8, 3)))
    empty = figures.plot_augmentation_grid(
        np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 2, 8, 8, 3), np.uint8)
    )
    assert "no examples" in texts(empty)


# ----- reliability diagram --------------------------------------------------------------


def reliability_bins(accuracies):
    edges = np.linspace(0, 1, len(accuracies) + 1)
    return {
        "bins": [
            {
                "lower": float(lo),
                "upper": float(hi),
                "count": 0 if acc is None else 10,
                "mean_confidence": None if acc is None else float((lo + hi) / 2),
                "accuracy": acc,
            }
            for lo, hi, acc in zip(edges[:-1], edges[1:], accuracies)
        ]
    }


def test_reliability_diagram_bars_diagonal_and_ece():
    before = reliability_bins([None, None, 0.3, 0.4, 0.5])
    after = reliability_bins([None, 0.3, 0.5, 0.65, 0.85])
    fig = figures.plot_reliability_diagram(before, after, ece_before=0.123, ece_after=0.045)
    left, right = fig.axes
    assert len(fig.axes) == 2
    assert_labelled(fig)
    assert "accuracy (ECE = 0.123)" in legend_texts(left)
    assert "accuracy (ECE = 0.045)" in legend_texts(right)
    accuracy_bars, gap_bars = left.containers
    assert accuracy_bars.get_label().startswith("accuracy")
    np.testing.assert_allclose([p.get_height() for p in accuracy_bars], [0.3, 0.4, 0.5])
    np.testing.assert_allclose([p.get_x() for p in accuracy_bars], [0.4, 0.6, 0.8])
    # Mean confidence is the bin centre here, so the gap bar reaches it.
    np.testing.assert_allclose([p.get_y() + p.get_height() for p in gap_bars], [0.5, 0.7, 0.9])
    np.testing.assert_allclose(line_labelled(right, "perfect").get_xydata(), [[0, 0], [1, 1]])


def test_reliability_diagram_takes_metrics_bins():
    from skin_lesion import calibration

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=60)
    probs = rng.dirichlet(np.ones(3), size=60)
    bins = calibration.reliability_bins(labels, probs, 10)
    fig = figures.plot_reliability_diagram(bins, bins, ece_before=bins["ece"], ece_after=0.0)
    filled = [b for b in bins["bins"] if b["count"]]
    heights = [p.get_height() for p in fig.axes[0].containers[0]]
    np.testing.assert_allclose(heights, [b["accuracy"] for b in filled])
    assert fig.axes[0].get_title().endswith("(n = 60)")


# ----- embedding map --------------------------------------------------------------------


def test_embedding_map_colours_classes_and_clips_perplexity():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(7), 3)  # 21 points: perplexity 30 must be clipped
    embeddings = rng.normal(size=(21, 8)) + 5.0 * np.eye(8)[labels]
    fig = figures.plot_embedding_map(embeddings, labels, CLASSES, perplexity=30.0, max_iter=250)
    (ax,) = fig.axes
    assert_labelled(fig)
    assert "t-SNE" in ax.get_title()
    assert sum(len(c.get_offsets()) for c in ax.collections) == 21
    assert [t.split(" ")[0] for t in legend_texts(ax)] == CLASSES
    mel = next(c for c in ax.collections if c.get_label().startswith("mel"))
    assert to_hex(mel.get_facecolor()[0]) == figures.CLASS_COLOURS["mel"].lower()


def test_embedding_map_with_too_few_points_says_so():
    fig = figures.plot_embedding_map(np.zeros((3, 4)), np.arange(3), CLASSES)
    assert any("too few" in t for t in texts(fig))


# ----- Grad-CAM grid --------------------------------------------------------------------


def test_gradcam_grid_one_row_per_label():
    image = np.zeros((16, 16, 3), np.uint8)
    heat = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    panels = [
        {"image": image, "heatmap": heat, "title": "mel ok", "row": "mel"},
        {"image": image, "heatmap": heat, "title": "mel as nv", "row": "mel"},
        {"image": image, "heatmap": heat, "title": "nv ok", "row": "nv"},
    ]
    fig = figures.plot_gradcam_grid(panels)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["mel ok", "mel as nv", "nv ok"]
    assert [fig.axes[0].get_ylabel(), fig.axes[2].get_ylabel()] == ["mel", "nv"]
    assert fig.axes[2].get_subplotspec().rowspan.start == 1  # nv starts the second row
    overlay = fig.axes[0].images[1]
    assert overlay.get_alpha() == pytest.approx(0.45)
    assert overlay.get_cmap().name == "jet"
    assert overlay.get_extent() == [-0.5, 15.5, 15.5, -0.5]  # stretched over the image


def test_gradcam_grid_keeps_correct_then_wrong_columns():
    """A class with no correct example had its wrong one moved into the correct column."""
    image = np.zeros((16, 16, 3), np.uint8)
    heat = np.zeros((8, 8), np.float32)

    def panel(row, outcome):
        return {
            "image": image,
            "heatmap": heat,
            "title": f"{row} {outcome}",
            "row": row,
            "column": outcome,
        }

    # mel right and wrong, bcc only wrong, nv only right
    outcomes = [("mel", "correct"), ("mel", "wrong"), ("bcc", "wrong"), ("nv", "correct")]
    fig = figures.plot_gradcam_grid([panel(*o) for o in outcomes])
    cells = {
        (ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start): ax
        for ax in fig.axes
    }
    assert sorted(cells) == [(r, c) for r in range(3) for c in range(2)]
    assert [cells[0, 0].get_title(), cells[0, 1].get_title()] == ["mel correct", "mel wrong"]
    assert cells[1, 1].get_title() == "bcc wrong"
    assert [t.get_text() for t in cells[1, 0].texts] == ["no correct example"]
    assert not cells[1, 0].images
    assert [t.get_text() for t in cells[2, 1].texts] == ["no wrong example"]
    assert [cells[r, 0].get_ylabel() for r in range(3)] == ["mel", "bcc", "nv"]
    # A model wrong on no test image (the demo's) still has its wrong column, saying so.
    fig = figures.plot_gradcam_grid([panel("mel", "correct"), panel("nv", "correct")])
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == ["no wrong example"] * 2


def test_gradcam_grid_titles_are_file_names_not_mathtext():
    """Two `$` in an image's name made its title mathtext, and saving the overlay failed."""
    import io

    image = np.zeros((16, 16, 3), np.uint8)
    heat = np.zeros((8, 8), np.float32)
    for title in ("scan $$ 2.jpg: mel (p=0.91)", "x$^$.jpg: nv (p=0.50)", "pay$\\x$.jpg"):
        fig = figures.plot_gradcam_grid([{"image": image, "heatmap": heat, "title": title}])
        fig.savefig(io.BytesIO(), format="png")
        assert fig.axes[0].get_title() == title


def test_gradcam_grid_without_panels():
    fig = figures.plot_gradcam_grid([])
    assert len(fig.axes) == 1
    assert "no examples" in texts(fig)


# ----- shared ---------------------------------------------------------------------------


def test_figure_to_png_bytes_scale_with_dpi():
    fig = figures.plot_per_class_f1(per_class(), CLASSES)
    low, high = figures.figure_to_png(fig, dpi=50), figures.figure_to_png(fig, dpi=100)
    assert low.startswith(PNG_MAGIC) and high.startswith(PNG_MAGIC)
    assert png_width(high) == pytest.approx(2 * png_width(low), rel=0.05)


def test_one_colour_per_class_across_figures():
    labels, probs = roc_data()
    roc = figures.plot_roc_curves(labels, probs, CLASSES).axes[0]
    bars = figures.plot_per_class_f1(per_class(), CLASSES).axes[0].patches
    for k, name in enumerate(CLASSES):
        expected = figures.class_colours(CLASSES)[k]
        assert to_hex(bars[k].get_facecolor()) == expected.lower()
        if name != "df":
            assert to_hex(line_labelled(roc, name).get_color()) == expected.lower()
    assert len(set(figures.class_colours(CLASSES))) == len(CLASSES)
    assert figures.class_colours(["other"])[0] != figures.class_colours(["mel"])[0]


def test_figures_are_not_registered_with_pyplot():
    before = len(plt.get_fignums())
    figs = [figures.plot_confusion_matrix(confusion(), CLASSES), figures.plot_gradcam_grid([])]
    assert all(isinstance(f, Figure) for f in figs)
    assert len(plt.get_fignums()) == before


def test_per_class_f1_legend_leaves_the_bar_labels_visible_at_f1_one():
    # At F1 = 1 (the demo's model) the legend covered the first bars' value labels.
    classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    scores = {c: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 10} for c in classes}
    fig = figures.plot_per_class_f1(scores, classes)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    labels = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() == "1.00"]
    assert len(labels) == len(classes)
    assert not any(legend.overlaps(label) for label in labels)
