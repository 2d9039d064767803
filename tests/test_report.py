"""The HTML run report: content, escaping, self-containment, fingerprints, and a real browser."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from skin_lesion.provenance import dataset_fingerprint, environment_info
from skin_lesion.report import render_report
from tests.browser import dump_dom, ensure_chromium, screenshot

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
SUPPORT = [49, 77, 165, 17, 167, 1006, 22]


def _metrics() -> dict:
    """Metrics shaped like the metrics module's output, with a few values left out."""
    per_class = {
        name: {
            "precision": 0.5 + 0.05 * i,
            "recall": 0.45 + 0.06 * i,
            "f1": 0.47 + 0.055 * i,
            "support": support,
            "auc": 0.9 + 0.01 * i,
        }
        for i, (name, support) in enumerate(zip(CLASSES, SUPPORT))
    }
    per_class["df"]["auc"] = None  # e.g. undefined on a tiny class
    matrix = np.diag(SUPPORT) // 2 + 1
    return {
        "classes": CLASSES,
        "test": {
            "accuracy": 0.84567,
            "balanced_accuracy": 0.71234,
            "macro_f1": 0.6789,
            "weighted_f1": 0.8321,
            "macro_auc": None,
            "per_class": per_class,
            "confusion_matrix": matrix.tolist(),
        },
        "bootstrap": {
            "balanced_accuracy": {
                "estimate": 0.712,
                "low": 0.6543,
                "high": 0.7654,
                "n_resamples": 1000,
                "n_valid": 998,
                "confidence": 0.95,
                "stratified": True,
            },
            "macro_f1": {"estimate": 0.679, "low": 0.6111, "high": 0.7222, "confidence": 0.95},
            "melanoma_sensitivity": {
                "estimate": 0.61,
                "low": 0.5321,
                "high": 0.6843,
                "confidence": 0.95,
            },
            "melanoma_sensitivity_at_threshold": {
                "estimate": 0.82,
                "low": 0.7512,
                "high": 0.8833,
                "confidence": 0.95,
            },
            "melanoma_specificity_at_threshold": {
                "estimate": 0.796,
                "low": 0.7704,
                "high": 0.8215,
                "confidence": 0.95,
            },
        },
        "operating_point": {"temperature": 1.4321, "melanoma_threshold": 0.1875, "tta": "flips"},
        "melanoma": {
            "argmax": {"sensitivity": 0.5988, "specificity": 0.9612, "rule": "argmax"},
            "validated_threshold": {
                "threshold": 0.1875,
                "target_sensitivity": 0.85,
                "chosen_on": "validation",
                "val_sensitivity": 0.8571,
                "val_specificity": 0.8123,
                "sensitivity": 0.8204,
                "specificity": 0.7956,
                "rule": "p_mel >= threshold",
            },
        },
        "calibration": {
            "temperature": 1.4321,
            "ece_before": 0.0876,
            "ece_after": 0.0234,
            "fitted_on": "validation",
            "evaluated_on": "test",
        },
        "test_images": sum(SUPPORT),
        "test_lesions": 1101,
    }


def _split_summary() -> dict:
    return {
        "protocol": "grouped by lesion_id, stratified by dx, lesions in an order hashed from "
        "(seed, lesion_id); test rows have fold -1",
        "images": {"train": 7009, "val": 1503, "test": 1503},
        "lesions": {"train": 5228, "val": 1141, "test": 1101},
        "max_share_gap_points": 0.412,
    }


def _png(kind: str) -> bytes:
    """A small matplotlib figure as PNG bytes, no pyplot state involved."""
    fig = Figure(figsize=(4, 3), dpi=60)
    ax = fig.subplots()
    x = np.linspace(0, 1, 50)
    if kind == "bars":
        ax.bar(CLASSES, SUPPORT)
    elif kind == "image":
        ax.imshow(np.arange(49).reshape(7, 7))
    else:
        ax.plot(x, np.sqrt(x))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


@pytest.fixture
def figures() -> dict[str, bytes]:
    return {"roc": _png("line"), "class_counts": _png("bars"), "confusion": _png("image")}


@pytest.fixture
def report_path(tmp_path: Path, figures: dict[str, bytes]) -> Path:
    metadata = pd.DataFrame({"image_id": ["ISIC_1", "ISIC_2"], "lesion_id": ["HAM_1", "HAM_1"]})
    html = render_report(
        title="HAM10000 <run 7> & co",
        metrics=_metrics(),
        split_summary=_split_summary(),
        params={"lr": 3e-4, "model": "efficientnet_b0", "note": "<script>alert(1)</script>"},
        fingerprint=dataset_fingerprint(metadata),
        environment=environment_info(device="cpu"),
        figures=figures,
        figure_captions={"roc": "ROC curves, one-vs-rest", "confusion": "Confusion matrix"},
        generated_at=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
    )
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_report_references_nothing_external(report_path: Path) -> None:
    html = report_path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in html
    references = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html, re.IGNORECASE)
    assert references, "expected the figures' src attributes"
    assert all(ref.startswith("data:image/png;base64,") for ref in references), references
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert html.count("<script") == 1


def test_report_embeds_every_figure_with_alt_and_caption(
    report_path: Path, figures: dict[str, bytes]
) -> None:
    html = report_path.read_text(encoding="utf-8")
    for data in figures.values():
        assert f"data:image/png;base64,{base64.b64encode(data).decode('ascii')}" in html
    assert html.count("<img ") == 3
    assert 'alt="ROC curves, one-vs-rest"' in html
    assert "<figcaption>Confusion matrix</figcaption>" in html
    assert "<figcaption>class_counts</figcaption>" in html  # name when no caption given


def test_report_formats_numbers_and_shows_missing_as_na(report_path: Path) -> None:
    html = report_path.read_text(encoding="utf-8")
    for text in ("0.846", "0.712", "0.679", "0.832", "0.654 – 0.765", "998 / 1000"):
        assert text in html, text
    macro_auc_row = re.search(r"Macro AUC[^<]*</th>(.*?)</tr>", html).group(1)
    assert macro_auc_row.count("n/a") == 3  # value, interval, resamples
    df_row = re.search(r"<th>df</th>(.*?)</tr>", html).group(1)
    assert re.findall(r">([^<]*)</td>", df_row) == ["0.650", "0.630", "0.635", "n/a", "17"]
    # Melanoma: both operating points, labelled, and the validation result of the threshold.
    assert "A: argmax" in html and "B: validated threshold" in html
    assert "0.599" in html and "0.961" in html and "0.820" in html and "0.796" in html
    assert "Threshold B = 0.1875 was" in html and "target sensitivity of 0.850" in html
    assert "sensitivity 0.857" in html
    # Each rule's lesion-bootstrap interval, labelled with its rule.
    assert (
        "sensitivity (A, argmax), lesion bootstrap: estimate 0.610, 95% interval 0.532 – 0.684"
        in html
    )
    assert (
        "sensitivity (B, validated threshold), lesion bootstrap: estimate 0.820, 95% interval "
        "0.751 – 0.883" in html
    )
    assert "validation</strong> set (predicted with test-time augmentation flips" in html
    assert (
        "specificity (B, validated threshold), lesion bootstrap: estimate 0.796, 95% interval "
        "0.770 – 0.822" in html
    )
    assert "specificity (A, argmax)" not in html  # no entry, no line
    assert "The intervals of B resample test lesions with the threshold held fixed" in html
    assert "resampled separately, so every resample holds every class" in html
    # Calibration, confusion matrix diagonal, split sizes, header facts.
    assert "1.432" in html and "0.088" in html and "0.023" in html
    assert '<td class="num diag">504</td>' in html  # nv: 1006 // 2 + 1
    assert '<td class="num">5228</td>' in html
    assert "2024-05-06 07:08:09 UTC" in html and "1503 images, 1101 lesions" in html


def test_report_labels_intervals_with_the_confidence_they_were_computed_at() -> None:
    metrics = _metrics()
    for entry in metrics["bootstrap"].values():
        entry["confidence"] = 0.8  # reporting.bootstrap.confidence
    html = render_report(
        title="t", metrics=metrics, split_summary={}, params={}, fingerprint={},
        environment={}, figures={},
    )  # fmt: skip

    assert "95%" not in html
    assert "80% interval (lesion bootstrap)" in html
    assert "Intervals are 80% percentile intervals" in html
    assert "estimate 0.610, 80% interval 0.532 – 0.684" in html


def test_thresholds_and_temperatures_show_the_digits_they_are_applied_with() -> None:
    """Rounded to 3 decimals, a threshold in a gap narrower than 0.0005 between validation
    scores flags other images than the rule; one under 0.0005 read as 0 (flag everything)."""
    metrics = _metrics()
    metrics["melanoma"]["validated_threshold"]["threshold"] = 0.016536300281777157
    metrics["calibration"]["temperature"] = 1.43214567
    html = render_report(
        title="t", metrics=metrics, split_summary={}, params={}, fingerprint={},
        environment={}, figures={},
    )  # fmt: skip
    assert "Threshold B = 0.0165363 was" in html and "<td class='num'>0.0165363</td>" in html
    assert "<td class='num'>1.43215</td>" in html
    assert "0.017" not in html


def test_report_says_when_a_stratum_of_one_lesion_narrows_the_intervals() -> None:
    metrics = _metrics()
    for entry in metrics["bootstrap"].values():
        entry.update(stratified=True, single_lesion_strata=2)

    def html() -> str:
        return render_report(
            title="t", metrics=metrics, split_summary={}, params={}, fingerprint={},
            environment={}, figures={},
        )  # fmt: skip

    assert "2 diagnosis stratum/strata hold a single test lesion" in html()
    for entry in metrics["bootstrap"].values():
        entry["single_lesion_strata"] = 0
    assert "single test lesion" not in html()


def test_report_escapes_strings(report_path: Path) -> None:
    html = report_path.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<title>HAM10000 &lt;run 7&gt; &amp; co</title>" in html
    params = re.search(r"<pre>(.*?)</pre>", html, re.S).group(1)
    assert "&quot;lr&quot;: 0.0003" in params


def test_report_survives_empty_inputs() -> None:
    html = render_report(
        title="empty",
        metrics={},
        split_summary={},
        params={},
        fingerprint={},
        environment={},
        figures={},
    )
    assert "n/a" in html and "<img" not in html


def test_report_names_the_split_and_weights_fingerprints() -> None:
    def render(metrics: dict) -> str:
        return render_report(
            title="r",
            metrics=metrics,
            split_summary={},
            params={},
            fingerprint={},
            environment={},
            figures={},
        )

    html = render({"split_sha256": "5" * 64, "operating_point": {"classifier_sha256": "c" * 64}})
    assert f"split with SHA-256 <code>{'5' * 64}</code>" in html
    assert f"weights' SHA-256 is <code>{'c' * 64}</code>" in html
    assert "split with SHA-256" not in render({})  # an older test_metrics.json has neither


def test_report_gives_images_per_lesion_for_each_split() -> None:
    html = render_report(
        title="r",
        metrics={},
        split_summary={
            "images": {"train": 7005, "val": 1506, "test": 1504},
            "lesions": {"train": 5236, "val": 1122},  # test's count lost: n/a, not a guess
        },
        params={},
        fingerprint={},
        environment={},
        figures={},
    )
    assert "<th>Images per lesion</th>" in html
    table = html.split("<th>Images per lesion</th>", 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<tr><th>(\w+)</th>(.*?)</tr>", table)
    per_lesion = {name: re.findall(r"<td[^>]*>([^<]*)</td>", row)[-1] for name, row in cells}
    assert per_lesion == {"train": "1.34", "val": "1.34", "test": "n/a"}


def test_report_rejects_a_figure_that_is_not_png() -> None:
    with pytest.raises(ValueError, match="'roc' is not a PNG"):
        render_report(
            title="t",
            metrics={},
            split_summary={},
            params={},
            fingerprint={},
            environment={},
            figures={"roc": b"GIF89a..."},
        )


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report_path: Path, tmp_path: Path) -> None:
    ensure_chromium()
    dom = dump_dom(report_path)
    assert 'data-images-loaded="3/3"' in dom

    png = screenshot(report_path, tmp_path / "report.png", width=1200, height=3000)
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 3000)
        rgb = image.convert("RGB")
    colours = rgb.getcolors(maxcolors=1 << 24)  # fast; np.unique(axis=0) takes ~10 s here
    assert len(colours) > 2, "screenshot is blank"
    assert np.asarray(rgb).std() > 0


def test_the_pipeline_figures_get_their_captions_by_default(figures: dict[str, bytes]) -> None:
    html = render_report(
        title="t", metrics={}, split_summary={}, params={}, fingerprint={}, environment={},
        figures={"roc_curves": figures["roc"], "unnamed_plot": figures["roc"]},
    )  # fmt: skip

    assert 'alt="One-vs-rest ROC curves on the test split (calibrated probabilities)"' in html
    assert 'alt="unnamed_plot"' in html  # no caption known: its name


def test_report_names_the_classes_macro_auc_leaves_out() -> None:
    metrics = _metrics()
    html = render_report(
        title="t", metrics=metrics, split_summary={}, params={}, fingerprint={},
        environment={}, figures={},
    )  # fmt: skip
    assert "Macro AUC leaves out" not in html
    metrics["test"]["auc_undefined_for"] = ["df", "vasc"]
    html = render_report(
        title="t", metrics=metrics, split_summary={}, params={}, fingerprint={},
        environment={}, figures={},
    )  # fmt: skip
    assert "Macro AUC leaves out df, vasc: no one-vs-rest AUC" in html


def test_a_notice_shows_under_the_title_escaped() -> None:
    """The demo environment's reporting.notice says its data are synthetic."""
    html = render_report(
        title="t", metrics={}, split_summary={}, params={}, fingerprint={},
        environment={}, figures={}, notice="Synthetic <demo> data",
    )  # fmt: skip
    assert "<p class='notice'>Synthetic &lt;demo&gt; data</p></header>" in html
    assert "class='notice'" not in render_report(
        title="t", metrics={}, split_summary={}, params={}, fingerprint={},
        environment={}, figures={},
    )  # fmt: skip
