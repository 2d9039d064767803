"""A self-contained HTML report of one classifier run: metrics, protocol, data and environment.

The report is a single UTF-8 file with inline CSS and PNG figures embedded as data URIs, so it
can be mailed, archived next to a checkpoint, or opened offline years later. It references no
external resource; a Content-Security-Policy in the page makes the browser enforce that.

``render_report`` is tolerant of the metrics it gets: a missing key or a ``None`` shows as
"n/a" rather than failing the end of a long run. The only script is a few lines that record,
on load, how many images decoded (``<body data-images-loaded="N/M">``) for browser tests.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

NA = "n/a"
DECIMALS = 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY_METRICS = (
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("macro_f1", "Macro-F1"),
    ("weighted_f1", "Weighted F1"),
    ("macro_auc", "Macro AUC (one-vs-rest)"),
)
PER_CLASS_COLUMNS = (
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("f1", "F1"),
    ("auc", "AUC"),
    ("support", "Support"),
)

# The one script: counts decoded images so a headless browser test can read the result
# from the DOM. Its hash goes into the CSP, so no other script can run in the page.
_IMAGES_LOADED_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) {
    return img.complete && img.naturalWidth > 0;
  }).length;
  document.body.dataset.imagesLoaded = loaded + "/" + images.length;
});
"""

_CSS = """
:root { color-scheme: light; }
body {
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  max-width: 1100px; margin: 0 auto; padding: 1.5rem; color: #1f2328; background: #fff;
  line-height: 1.45;
}
header { border-bottom: 2px solid #d0d7de; margin-bottom: 1rem; }
h1 { margin: 0 0 0.25rem; font-size: 1.7rem; }
h2 { margin-top: 2rem; font-size: 1.25rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05rem; }
.meta, .note { color: #57606a; font-size: 0.9rem; }
.notice { background: #fff8c5; border: 1px solid #d4a72c; padding: 0.5rem 0.75rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.92rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.diag { font-weight: 600; background: #eef6ee; }
pre {
  background: #f6f8fa; border: 1px solid #d0d7de; padding: 0.75rem; overflow-x: auto;
  font-size: 0.85rem;
}
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9rem; margin-top: 0.3rem; }
"""


# What each of the reporting pipeline's figures shows, as the report's caption and alt text.
FIGURE_CAPTIONS = {
    "confusion_matrix": "Confusion matrix on the test split: counts and row-normalised (recall)",
    "per_class_f1": "Per-class F1 on the test split",
    "roc_curves": "One-vs-rest ROC curves on the test split (calibrated probabilities)",
    "melanoma_pr_curve": (
        "Melanoma precision-recall on the test split, with the threshold chosen on validation"
    ),
    "training_curves": (
        "Training curves: SupCon loss, classifier losses, validation metrics, learning rates"
    ),
    "class_distribution": "Images per class in each split",
    "augmentation_grid": "Training images and their per-sample augmented views",
    "reliability_diagram": (
        "Reliability on the test split, before and after temperature scaling (fitted on validation)"
    ),
    "embedding_map": "t-SNE of the SupCon embeddings of the validation and test images",
    "gradcam_examples": "Grad-CAM of the predicted class on right and wrong test images, by class",
}


def render_report(
    *,
    title: str,
    metrics: dict,
    split_summary: dict,
    params: dict,
    fingerprint: dict,
    environment: dict,
    figures: Mapping[str, bytes],
    figure_captions: Mapping[str, str] | None = None,
    generated_at: datetime | None = None,
    notice: str | None = None,
    recorded_groups: Sequence[str] = (),
    trained_on: str | None = None,
    encoder_trained_on: str | None = None,
) -> str:
    """Render one run as a self-contained HTML5 page.

    Args:
        title: Page and header title.
        metrics: The evaluation's metrics (test scores, bootstrap intervals, melanoma
            operating points, calibration); missing keys show as "n/a".
        split_summary: ``splits.summarize_splits`` output (images and lesions per split).
        params: The run's parameters, shown as pretty-printed JSON.
        fingerprint: ``dataset_fingerprint`` output.
        environment: ``environment_info`` output.
        figures: Name to PNG bytes, embedded in the given order.
        figure_captions: Name to caption, over :data:`FIGURE_CAPTIONS` (the reporting
            pipeline's figures); the name is used where neither gives one.
        generated_at: Timestamp to print (default: now, UTC).
        notice: A line shown under the title, before any figure (``reporting.notice``).
        recorded_groups: The groups of ``params`` that are the settings the classifier
            recorded as trained with, not the run's (said in the Parameters section).
        trained_on: The device the classifier was trained on (its checkpoint's record),
            said above the Environment section's tables, which describe this run.
        encoder_trained_on: Likewise the device its SupCon encoder was pretrained on (the
            classifier's record of it), or that it was not pretrained.

    Returns:
        The HTML document.

    Raises:
        ValueError: If a figure's bytes are not a PNG.
    """
    unknown = sorted(set(figure_captions or {}) - set(figures))
    if unknown:
        logger.warning("Captions for figures that were not given are ignored: %s", unknown)
    captions = {**FIGURE_CAPTIONS, **(figure_captions or {})}
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    script_hash = base64.b64encode(
        hashlib.sha256(_IMAGES_LOADED_SCRIPT.encode("utf-8")).digest()
    ).decode("ascii")
    csp = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'"
    )
    test = metrics.get("test") or {}
    subtitle = (
        f"Generated {when:%Y-%m-%d %H:%M:%S} UTC · test set: "
        f"{_fmt(metrics.get('test_images'))} images, {_fmt(metrics.get('test_lesions'))} lesions"
    )
    shown = f"<p class='notice'>{_esc(notice)}</p>" if notice else ""
    body = [
        f"<header><h1>{_esc(title)}</h1><p class='meta'>{_esc(subtitle)}</p>{shown}</header>",
        _section("Test metrics", _summary_table(test, metrics.get("bootstrap") or {})),
        _section("Per-class metrics", _per_class_table(metrics)),
        _section("Melanoma", _melanoma_section(metrics)),
        _section("Calibration", _calibration_table(metrics.get("calibration") or {})),
        _section("Confusion matrix", _confusion_table(metrics)),
        _section("Split protocol", _split_section(split_summary, metrics)),
        _section("Parameters", _params_block(params, recorded_groups)),
        _section("Dataset", _key_value_table(fingerprint)),
        _section("Environment", _environment_tables(environment, trained_on, encoder_trained_on)),
        _section("Figures", _figures(figures, captions)),
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_esc(title)}</title>",
            f"<style>{_CSS}</style>",
            f"<script>{_IMAGES_LOADED_SCRIPT}</script>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, numbers.Integral)
        and (math.isnan(value))
    )


def _fmt(value: object) -> str:
    """A value as escaped cell text: "n/a" for missing, 3 decimals for floats."""
    if _is_missing(value):
        return NA
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.{DECIMALS}f}"
    return _esc(value)


def _exact(value: object) -> str:
    """A value applied as it is (a threshold, a temperature): six significant digits, since
    rounded to 3 decimals a validated threshold can fall on the other side of a validation
    score (a gap under 0.0005 is common on ~1,000 images) and one under 0.0005 reads 0."""
    exact = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
    if exact and not isinstance(value, (bool, np.bool_)) and not _is_missing(value):
        return f"{float(value):.6g}"
    return _fmt(value)


def _get(mapping: object, *keys: str) -> object:
    """``mapping[k1][k2]...`` or None where any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _interval(bootstrap: object) -> str:
    low, high = _get(bootstrap, "low"), _get(bootstrap, "high")
    if _is_missing(low) or _is_missing(high):
        return NA
    return f"{_fmt(low)} – {_fmt(high)}"


def _resamples(bootstrap: object) -> str:
    valid, total = _get(bootstrap, "n_valid"), _get(bootstrap, "n_resamples")
    if _is_missing(valid) and _is_missing(total):
        return NA
    return f"{_fmt(valid)} / {_fmt(total)}"


def _cell(value: object, *, header: bool = False, css: str = "") -> str:
    tag = "th" if header else "td"
    if not css and not header and (_is_missing(value) or isinstance(value, numbers.Real)):
        css = "num"
    attr = f' class="{css}"' if css else ""
    return f"<{tag}{attr}>{_fmt(value) if not header else _esc(value)}</{tag}>"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table from a header of plain strings and rows of ready-made ``<td>``/``<th>`` cells."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(name: str, content: str) -> str:
    anchor = name.lower().replace(" ", "-")
    return f'<section id="{_esc(anchor)}"><h2>{_esc(name)}</h2>\n{content}\n</section>'


def _level(boot: Mapping | None) -> str:
    """The interval's confidence as a percentage and a space ("95% "), from the bootstrap
    entry itself (``reporting.bootstrap.confidence``); empty where it does not say."""
    confidence = (boot or {}).get("confidence")
    return f"{100 * float(confidence):g}% " if confidence is not None else ""


def _summary_table(test: Mapping, bootstrap: Mapping) -> str:
    rows = [
        [
            _cell(label, header=True),
            _cell(test.get(key)),
            _cell(_interval(bootstrap.get(key)), css="num"),
            _cell(_resamples(bootstrap.get(key)), css="num"),
        ]
        for key, label in SUMMARY_METRICS
    ]
    first = next(iter(bootstrap.values()), None) if bootstrap else None
    level = _level(first)
    stratified = _get(first, "stratified")
    if stratified is True:
        how = (
            " Each diagnosis's lesions are resampled separately, so every resample holds "
            "every class of the test split in the same number of lesions."
        )
        single = _get(first, "single_lesion_strata")
        if isinstance(single, numbers.Integral) and single > 0:
            how += (
                f" <strong>{int(single)} diagnosis stratum/strata hold a single test lesion"
                "</strong>, redrawn as itself in every resample: it adds no spread, so these "
                "intervals are too narrow (a test split this small gives no reliable "
                "interval)."
            )
    elif stratified is False:
        how = (
            " Resamples are not stratified by diagnosis: one that lacks a class scores the "
            "macro metrics over the classes it has."
        )
    else:
        how = ""
    note = (
        f"<p class='note'>Intervals are {level}percentile intervals from a bootstrap that "
        "resamples test lesions (all images of a lesion together), so near-duplicate images "
        f"do not narrow them.{how} Valid resamples are those in which the metric is "
        "defined.</p>"
    )
    left_out = list(test.get("auc_undefined_for") or [])
    if left_out:
        note += (
            f"<p class='note'>Macro AUC leaves out {_esc(', '.join(left_out))}: no "
            "one-vs-rest AUC exists for a class with no test image (or only test images of "
            "its own). Balanced accuracy averages the recalls of the classes in the test "
            "split, macro-F1 the classes in it or predicted, so the three average over "
            "different classes here.</p>"
        )
    header = [
        "Metric",
        "Test value",
        f"{level}interval (lesion bootstrap)".capitalize(),
        "Valid / resamples",
    ]
    return _table(header, rows) + note


def _class_names(metrics: Mapping) -> list[str]:
    classes = metrics.get("classes")
    if classes:
        return [str(c) for c in classes]
    return [str(c) for c in (_get(metrics, "test", "per_class") or {})]


def _per_class_table(metrics: Mapping) -> str:
    per_class = _get(metrics, "test", "per_class") or {}
    classes = _class_names(metrics)
    if not classes:
        return f"<p>{NA}</p>"
    rows = [
        [_cell(name, header=True)]
        + [_cell(_get(per_class, name, key)) for key, _ in PER_CLASS_COLUMNS]
        for name in classes
    ]
    header = ["Class", *(label for _, label in PER_CLASS_COLUMNS)]
    return _table(header, rows) + "<p class='note'>AUC is one-vs-rest; support is images.</p>"


def _melanoma_section(metrics: Mapping) -> str:
    melanoma = metrics.get("melanoma") or {}
    argmax = melanoma.get("argmax") or {}
    tuned = melanoma.get("validated_threshold") or {}
    rows = [
        [
            _cell("A: argmax (predicted class is melanoma)", header=True),
            _cell(argmax.get("rule")),
            _cell(NA, css="num"),
            _cell(argmax.get("sensitivity")),
            _cell(argmax.get("specificity")),
        ],
        [
            _cell("B: validated threshold on P(melanoma)", header=True),
            _cell(tuned.get("rule")),
            f"<td class='num'>{_exact(tuned.get('threshold'))}</td>",
            _cell(tuned.get("sensitivity")),
            _cell(tuned.get("specificity")),
        ],
    ]
    table = _table(
        ["Operating point", "Rule", "Threshold", "Test sensitivity", "Test specificity"], rows
    )
    chosen_on = tuned.get("chosen_on") or "validation"
    tta = _get(metrics, "operating_point", "tta")
    predicted = (
        f" (predicted with test-time augmentation {_esc(tta)}, as the test set is)" if tta else ""
    )
    how = (
        f"<p>Threshold B = {_exact(tuned.get('threshold'))} was chosen on the "
        f"<strong>{_esc(chosen_on)}</strong> set{predicted} to reach a target sensitivity of "
        f"{_fmt(tuned.get('target_sensitivity'))}; there it achieved sensitivity "
        f"{_fmt(tuned.get('val_sensitivity'))} and specificity "
        f"{_fmt(tuned.get('val_specificity'))}. The test columns above are its result on the "
        "held-out test set, where it was not tuned. <code>test_metrics.json</code> holds the "
        "exact threshold, which inference applies.</p>"
    )
    boot_lines = []
    for key, label in (
        ("melanoma_sensitivity", "sensitivity (A, argmax)"),
        ("melanoma_specificity", "specificity (A, argmax)"),
        ("melanoma_sensitivity_at_threshold", "sensitivity (B, validated threshold)"),
        ("melanoma_specificity_at_threshold", "specificity (B, validated threshold)"),
    ):
        boot = _get(metrics, "bootstrap", key)
        if boot is None:
            continue
        boot_lines.append(
            f"<p>Melanoma test {label}, lesion bootstrap: estimate "
            f"{_fmt(_get(boot, 'estimate'))}, {_level(boot)}interval {_interval(boot)} "
            f"({_resamples(boot)} valid resamples).</p>"
        )
    if _get(metrics, "bootstrap", "melanoma_sensitivity_at_threshold") is not None:
        boot_lines.append(
            "<p class='note'>The intervals of B resample test lesions with the threshold "
            "held fixed: they leave out how the threshold itself would move with another "
            "validation split, so they are narrower than the rule's own uncertainty.</p>"
        )
    return table + how + "".join(boot_lines)


def _calibration_table(calibration: Mapping) -> str:
    rows = [
        [
            _cell("Temperature", header=True),
            f"<td class='num'>{_exact(calibration.get('temperature'))}</td>",
        ],
        [_cell("ECE before scaling", header=True), _cell(calibration.get("ece_before"))],
        [_cell("ECE after scaling", header=True), _cell(calibration.get("ece_after"))],
        [_cell("ECE bins (equal width)", header=True), _cell(calibration.get("bins"))],
        [_cell("Fitted on", header=True), _cell(calibration.get("fitted_on"))],
        [_cell("Evaluated on", header=True), _cell(calibration.get("evaluated_on"))],
    ]
    note = (
        "<p class='note'>Temperature scaling (Guo et al., 2017) divides the logits by one "
        "scalar (with test-time augmentation, the log of the views' mean probabilities, "
        "which are the logits up to a constant with none); ECE is the expected calibration "
        "error of the top-class probability.</p>"
    )
    return _table(["Quantity", "Value"], rows) + note


def _confusion_table(metrics: Mapping) -> str:
    matrix = _get(metrics, "test", "confusion_matrix")
    if not isinstance(matrix, (Sequence, np.ndarray)) or len(matrix) == 0:
        return f"<p>{NA}</p>"
    matrix = [list(row) if isinstance(row, (Sequence, np.ndarray)) else [row] for row in matrix]
    classes = _class_names(metrics)
    width = max(len(row) for row in matrix)
    names = [classes[i] if i < len(classes) else str(i) for i in range(max(width, len(matrix)))]
    rows = [
        [_cell(names[i], header=True)]
        + [_cell(v, css="num diag" if i == j else "num") for j, v in enumerate(row)]
        for i, row in enumerate(matrix)
    ]
    header = ["true \\ predicted", *names[:width]]
    return _table(header, rows) + "<p class='note'>Counts of test images.</p>"


def _split_section(split_summary: Mapping, metrics: Mapping | None = None) -> str:
    protocol = split_summary.get("protocol") or (
        "grouped by lesion_id (every image of a lesion in one split), stratified by diagnosis"
    )
    images = split_summary.get("images") or {}
    lesions = split_summary.get("lesions") or {}
    names = list(dict.fromkeys([*images, *lesions]))
    rows = [
        [
            _cell(name, header=True),
            _cell(_get(images, name)),
            _cell(_get(lesions, name)),
            _cell(_images_per_lesion(_get(images, name), _get(lesions, name)), css="num"),
        ]
        for name in names
    ]
    parts = [f"<p>Protocol: {_esc(protocol)}.</p>"]
    parts.append(
        _table(["Split", "Images", "Lesions", "Images per lesion"], rows)
        if rows
        else f"<p>{NA}</p>"
    )
    if rows:
        # A val/test of mostly single-image lesions is an easier, unrepresentative test on
        # HAM10000 (follow-up nevi are photographed once): the column shows it at a glance.
        parts.append(
            "<p class='note'>Images per lesion should be alike across the splits; val or test "
            "near 1.0 against a higher train would mean that they hold only lesions "
            "photographed once.</p>"
        )
    gap = split_summary.get("max_share_gap_points")
    parts.append(
        "<p class='note'>Largest gap between a class's share of a split and its overall "
        f"share: {_fmt(gap)} percentage points.</p>"
    )
    metrics = metrics or {}
    split_sha = metrics.get("split_sha256")
    weights_sha = (metrics.get("operating_point") or {}).get("classifier_sha256")
    if split_sha or weights_sha:
        parts.append(
            "<p class='note'>The classifier was trained on the split with SHA-256 "
            f"<code>{_esc(split_sha or NA)}</code> (every image's label and split); its "
            f"weights' SHA-256 is <code>{_esc(weights_sha or NA)}</code>, which the "
            "operating point in test_metrics.json names for inference.</p>"
        )
    return "\n".join(parts)


def _images_per_lesion(images: object, lesions: object) -> str:
    """``images / lesions`` to two decimals, or n/a where either is missing or not positive."""
    try:
        ratio = float(images) / float(lesions)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return NA
    return f"{ratio:.2f}" if ratio > 0 else NA


def _params_block(params: Mapping, recorded: Sequence[str] = ()) -> str:
    text = json.dumps(params, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    source = ""
    if recorded:
        names = ", ".join(f"<code>{_esc(name)}</code>" for name in recorded)
        source = (
            f"<p>{names}: as the classifier recorded them when it was trained (every default "
            "filled in; its speed settings, such as <code>amp</code> and <code>compile</code>, "
            "may differ from this run's); the other groups are this run's.</p>"
        )
    # Folded by default: the full parameter set is long and would push the figures far down.
    return (
        f"{source}<details><summary>All {len(params)} parameter groups (JSON)"
        f"</summary><pre>{_esc(text)}</pre></details>"
    )


def _key_value_table(values: Mapping) -> str:
    # Plain cells: a column that mixes hashes, names and counts reads best left-aligned.
    rows = [[_cell(key, header=True), f"<td>{_fmt(value)}</td>"] for key, value in values.items()]
    return _table(["Field", "Value"], rows) if rows else f"<p>{NA}</p>"


def _environment_tables(
    environment: Mapping, trained_on: str | None = None, encoder_trained_on: str | None = None
) -> str:
    scalars = {k: v for k, v in environment.items() if not isinstance(v, Mapping)}
    packages = environment.get("packages") or {}
    out = _key_value_table(scalars)
    said = [f"Classifier trained on: {_esc(trained_on)}."] if trained_on else []
    if encoder_trained_on:
        said.append(f"SupCon encoder pretrained on: {_esc(encoder_trained_on)}.")
    if said:
        out = f"<p>{' '.join(said)} The tables describe the run that made this report.</p>" + out
    if packages:
        rows = [[_cell(name, header=True), f"<td>{_fmt(v)}</td>"] for name, v in packages.items()]
        out += "<h3>Package versions</h3>" + _table(["Package", "Version"], rows)
    return out


def _figures(figures: Mapping[str, bytes], captions: Mapping[str, str]) -> str:
    if not figures:
        return "<p>No figures.</p>"
    parts = []
    for name, data in figures.items():
        if not bytes(data[:8]) == PNG_SIGNATURE:
            raise ValueError(
                f"figure {name!r} is not a PNG: it starts with {bytes(data[:8])!r}, "
                f"expected {PNG_SIGNATURE!r}"
            )
        caption = captions.get(name, name)
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(
            f'<figure id="figure-{_esc(name)}">'
            f'<img src="data:image/png;base64,{encoded}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )
    return "\n".join(parts)
