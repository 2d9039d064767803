"""Nodes of the reporting pipeline: thin calls into the library.

Each figure node renders its figure to PNG bytes once (``figures.figure_to_png``); the
catalog writes them to a file (``PngDataset``) and ``build_report`` loads the same bytes back
to embed.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from skin_lesion import lineage, provenance, report
from skin_lesion.checkpoints import describe_training_device, state_fingerprint
from skin_lesion.config import from_dict
from skin_lesion.configs import ClassifierConfig, EncoderConfig, ReportingConfig
from skin_lesion.images import ImageCache
from skin_lesion.splits import align_to_cache

# The library modules that score and draw (calibration, engine, evaluation, figures) import
# torch, timm, scipy or matplotlib: each node imports what it calls, so that loading the
# pipelines (every `kedro` command, kedro-viz, `%reload_kedro`) does not.

METADATA_COLUMNS = list(lineage.FUSION_COLUMNS)  # what metadata fusion reads
# build_report's inputs with this prefix are parameter groups; the others are figures.
PARAM_PREFIX = "param_"


def _config(params: dict[str, Any]) -> ReportingConfig:
    return from_dict(ReportingConfig, params, "reporting")


def _rows(image_cache: ImageCache, splits: pd.DataFrame, cached_metadata: pd.DataFrame):
    return align_to_cache(image_cache.image_ids, splits).merge(
        cached_metadata[METADATA_COLUMNS], on="image_id", how="left", validate="one_to_one"
    )


# classifier_training settings that do not change the trained weights.
TRAINING_EXEMPT = frozenset(
    {"resume", "progress", "compile", "placement", "amp", "channels_last", "eval_batch_size"}
)


# Where a classifier's predictions are made, the parameters it must have been made with (and
# the node functions' keyword for each): the report and MLflow list these groups.
UPSTREAM = {
    "training": "classifier_training",
    "encoder": "encoder",
    "contrastive": "contrastive_pretraining",
    "seed": "seed",
}
RERUN_ALL = "contrastive_pretraining,classifier_training"


def _check_classifier(
    classifier: dict[str, Any], image_cache: ImageCache, splits, cached_metadata, **now
) -> None:
    """Refuse a classifier trained on other splits, another cache, other data (images, or
    fusion metadata) or other settings than the current ones (the report would list settings
    the classifier was not trained with, or score it on images it did not learn from).

    ``now``: the current parameters by ``UPSTREAM`` keyword; one not given is not checked,
    nor is one the classifier did not record (made by an older version).
    """
    lineage.all_of(
        lambda: lineage.check_checkpoint_inputs(
            classifier,
            "classifier",
            RERUN_ALL,  # the SupCon encoder learnt from the same splits, cache and images
            splits=splits,
            cache_preprocessing=image_cache.preprocessing,
            data=lineage.data_fingerprint(image_cache, splits, cached_metadata),
        ),
        lambda: check_classifier_settings(classifier, **now),
    )


def check_classifier_settings(classifier: dict[str, Any], **now) -> None:
    """The settings half of :func:`_check_classifier`: refuse a classifier trained with other
    classifier_training settings, another seed, or from an encoder made with other encoder or
    SupCon settings than ``now`` (by ``UPSTREAM`` keyword) says.

    Needs neither the image cache nor the splits, so the ``ParametersCheck`` hook runs it
    before any node (and before kedro-mlflow opens a run); the nodes run it again for calls
    made outside a ``kedro run``.
    """
    then = lineage.recorded_config(classifier, "classifier_training", ClassifierConfig)
    made_from = (classifier.get("params") or {}).get(lineage.SETTINGS_KEY) or {}
    checks = []
    if now.get("training") is not None and then is not None:
        checks.append(
            lambda: lineage.check_settings(
                asdict(then),
                asdict(from_dict(ClassifierConfig, now["training"], "classifier_training")),
                "classifier_training",
                "classifier",
                "classifier_training",
                TRAINING_EXEMPT,
            )
        )
    if now.get("encoder") is not None and isinstance(made_from.get("encoder"), dict):
        wanted = asdict(from_dict(EncoderConfig, now["encoder"], "encoder"))
        checks.append(
            lambda: lineage.check_encoder_settings(
                made_from["encoder"], wanted, "classifier", RERUN_ALL
            )
        )
    if now.get("contrastive") is not None:
        checks.append(
            lambda: lineage.check_pretraining_settings(
                classifier, now["contrastive"], "classifier", RERUN_ALL
            )
        )
    if now.get("seed") is not None:
        checks.append(lambda: lineage.check_seed(classifier, now["seed"], "classifier", RERUN_ALL))
    lineage.all_of(*checks)


def _predict(split: str, classifier, image_cache, splits, cached_metadata, params, device, now):
    """``split`` through the classifier, with reporting's TTA and batch size."""
    from skin_lesion import evaluation as ev
    from skin_lesion.engine import resolve_device

    _check_classifier(classifier, image_cache, splits, cached_metadata, **now)
    return ev.predict_split(
        classifier,
        image_cache.images,
        _rows(image_cache, splits, cached_metadata),
        split,
        device=resolve_device(device),
        config=_config(params),
    )


def _calibrated(
    test_predictions: pd.DataFrame, test_metrics: dict[str, Any], classes: list[str]
) -> np.ndarray:
    """The test probabilities scaled with the temperature ``evaluate_test`` fitted."""
    from skin_lesion import calibration
    from skin_lesion import evaluation as ev

    return calibration.apply_temperature(
        ev.probabilities(test_predictions, classes), test_metrics["calibration"]["temperature"]
    )


def _calibrated_frame(
    test_predictions: pd.DataFrame, test_metrics: dict[str, Any], classes: list[str]
) -> pd.DataFrame:
    """``test_predictions`` with its ``p_<class>`` columns calibrated (``_calibrated``)."""
    calibrated = test_predictions.copy()
    calibrated[[f"p_{c}" for c in classes]] = _calibrated(test_predictions, test_metrics, classes)
    return calibrated


def predict_test(
    classifier: dict[str, Any],
    image_cache: ImageCache,
    splits: pd.DataFrame,
    cached_metadata: pd.DataFrame,
    params: dict[str, Any],
    device: str,
    **now: Any,
) -> pd.DataFrame:
    """Predict the test split once (optional TTA): the uncalibrated probabilities that
    ``evaluate_test`` calibrates with the temperature it fits on validation.

    ``now``: ``training``, ``encoder``, ``contrastive``, ``seed`` (``UPSTREAM``), which must
    match what the classifier was made with, as must the splits and the image cache
    (``lineage``).
    """
    return _predict("test", classifier, image_cache, splits, cached_metadata, params, device, now)


def export_isic(
    test_predictions: pd.DataFrame, test_metrics: dict[str, Any], classes: list[str]
) -> pd.DataFrame:
    """The calibrated test probabilities in the ISIC 2018 Task 3 CSV layout: the ones every
    reported metric and the melanoma threshold are computed on, so that an official
    scoring tool, or the threshold applied to ``MEL``, gives the report's figures."""
    from skin_lesion import evaluation as ev

    return ev.to_isic_format(_calibrated_frame(test_predictions, test_metrics, classes))


def predict_val(
    classifier: dict[str, Any],
    image_cache: ImageCache,
    splits: pd.DataFrame,
    cached_metadata: pd.DataFrame,
    params: dict[str, Any],
    device: str,
    **now: Any,
) -> pd.DataFrame:
    """Predict the validation split as ``predict_test`` predicts test (same TTA), for the
    temperature and the melanoma threshold that ``evaluate_test`` fits on it."""
    return _predict("val", classifier, image_cache, splits, cached_metadata, params, device, now)


def evaluate_test(
    test_predictions: pd.DataFrame,
    val_predictions: pd.DataFrame,
    classes: list[str],
    params: dict[str, Any],
    seed: int,
    classifier: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics, calibration (fitted on val), melanoma operating points, lesion bootstrap.

    With ``classifier``, predictions made by another classifier or with another TTA than
    ``params`` says are refused (a run started after the predicting nodes would otherwise
    fit this classifier's operating point on them), the operating point records its weights'
    SHA-256, so that inference refuses to apply this temperature and threshold to another
    classifier, and ``split_sha256`` the split it was trained on. ``scored_images_sha256``
    records the pixels the predictions were made from (``lineage.scored_pixels``).
    """
    from skin_lesion import evaluation as ev

    config = _config(params)
    if classifier is not None:
        made_by = state_fingerprint(classifier)
        lineage.all_of(
            lambda: lineage.check_predictions(
                test_predictions, "test_predictions", made_by, config.tta
            ),
            lambda: lineage.check_predictions(
                val_predictions, "reporting_val_predictions", made_by, config.tta
            ),
        )
    metrics = ev.evaluate_test(test_predictions, val_predictions, classes, config=config, seed=seed)
    if classifier is not None:
        metrics["split_sha256"] = (classifier.get("params") or {}).get(lineage.SPLIT_KEY)
        metrics["operating_point"]["classifier_sha256"] = made_by
    scored = lineage.scored_pixels(val_predictions, test_predictions)
    if scored is not None:
        metrics[lineage.SCORED_PIXELS] = scored
    return metrics


def plot_confusion_matrix(test_metrics: dict[str, Any]) -> bytes:
    """Confusion matrix, counts and row-normalised."""
    from skin_lesion import figures

    return figures.figure_to_png(
        figures.plot_confusion_matrix(
            test_metrics["test"]["confusion_matrix"], test_metrics["classes"]
        )
    )


def plot_roc_curves(
    test_predictions: pd.DataFrame, test_metrics: dict[str, Any], classes: list[str]
) -> bytes:
    """One-vs-rest ROC curves per class, on the calibrated probabilities the metrics use.

    One temperature for all classes is not rank-preserving within a class across images
    (each probability also depends on the other logits), so the curves and their AUCs are
    drawn from the same calibrated probabilities as the AUC column of ``test_metrics``.
    """
    from skin_lesion import evaluation as ev
    from skin_lesion import figures

    probs = _calibrated(test_predictions, test_metrics, classes)
    return figures.figure_to_png(
        figures.plot_roc_curves(
            test_predictions["label"].to_numpy(),
            probs,
            classes,
            operating_points=ev.melanoma_roc_points(test_metrics),
            positive_name=ev.POSITIVE_CLASS,
        )
    )


def plot_melanoma_pr(
    test_predictions: pd.DataFrame, test_metrics: dict[str, Any], classes: list[str]
) -> bytes:
    """Melanoma precision-recall on calibrated test probabilities, validated threshold marked."""
    from skin_lesion import evaluation as ev
    from skin_lesion import figures

    probs = _calibrated(test_predictions, test_metrics, classes)
    mel = classes.index(ev.POSITIVE_CLASS)
    is_mel = (test_predictions["label"].to_numpy() == mel).astype(int)
    threshold = test_metrics["melanoma"]["validated_threshold"]["threshold"]
    return figures.figure_to_png(
        figures.plot_precision_recall(is_mel, probs[:, mel], threshold=threshold)
    )


def plot_training_curves(
    pretraining_history: list[dict],
    training_history: list[dict],
    classifier: dict[str, Any] | None = None,
) -> bytes:
    """SupCon loss, classifier losses, validation metrics and learning rates, with the
    epoch whose weights the classifier kept marked (its ``selected``)."""
    from skin_lesion import figures

    selected = (classifier or {}).get("selected")
    return figures.figure_to_png(
        figures.plot_training_curves(pretraining_history, training_history, selected)
    )


def plot_per_class_f1(test_metrics: dict[str, Any]) -> bytes:
    """F1 (with precision and recall) per class on test."""
    from skin_lesion import figures

    return figures.figure_to_png(
        figures.plot_per_class_f1(test_metrics["test"]["per_class"], test_metrics["classes"])
    )


def plot_class_distribution(splits: pd.DataFrame, classes: list[str]) -> bytes:
    """Images per class per split."""
    from skin_lesion import figures

    return figures.figure_to_png(figures.plot_class_distribution(splits, classes))


def plot_augmentations(
    image_cache: ImageCache,
    splits: pd.DataFrame,
    classifier: dict[str, Any],
    params: dict[str, Any],
    seed: int,
) -> bytes:
    """A grid of training images and their per-sample augmented views."""
    from skin_lesion import evaluation as ev
    from skin_lesion import figures

    config = _config(params)
    rows = align_to_cache(image_cache.image_ids, splits)
    train = np.flatnonzero(rows["split"].to_numpy() == "train")
    picked = np.random.default_rng(seed).choice(train, config.augment_examples, replace=False)
    prep = classifier["preprocessing"]
    views = ev.augmented_views(
        image_cache.images[np.sort(picked)],
        ev.augment_config_of(classifier),
        prep["mean"],
        prep["std"],
        config.augment_views,
        seed,
    )
    titles = list(rows.iloc[np.sort(picked)]["dx"])
    return figures.figure_to_png(
        figures.plot_augmentation_grid(image_cache.images[np.sort(picked)], views, titles=titles)
    )


def plot_reliability(
    test_predictions: pd.DataFrame, test_metrics: dict[str, Any], classes: list[str]
) -> bytes:
    """Reliability diagram before and after temperature scaling."""
    from skin_lesion import calibration, figures
    from skin_lesion import evaluation as ev

    fitted = test_metrics["calibration"]
    labels = test_predictions["label"].to_numpy()
    before = ev.probabilities(test_predictions, classes)
    after = calibration.apply_temperature(before, fitted["temperature"])
    return figures.figure_to_png(
        figures.plot_reliability_diagram(
            calibration.reliability_bins(labels, before, fitted["bins"]),
            calibration.reliability_bins(labels, after, fitted["bins"]),
            ece_before=fitted["ece_before"],
            ece_after=fitted["ece_after"],
        )
    )


def plot_embedding_map(
    contrastive_embeddings: pd.DataFrame, classes: list[str], params: dict[str, Any], seed: int
) -> bytes:
    """t-SNE of the contrastive embeddings of the val and test images, coloured by class."""
    from skin_lesion import figures

    z = contrastive_embeddings.filter(regex=r"^z\d+$").to_numpy()
    return figures.figure_to_png(
        figures.plot_embedding_map(
            z,
            contrastive_embeddings["label"].to_numpy(),
            classes,
            seed=seed,
            perplexity=_config(params).tsne_perplexity,
        )
    )


def plot_gradcam(
    classifier: dict[str, Any],
    image_cache: ImageCache,
    splits: pd.DataFrame,
    cached_metadata: pd.DataFrame,
    test_predictions: pd.DataFrame,
    test_metrics: dict[str, Any],
    params: dict[str, Any],
    device: str,
    **now: Any,
) -> bytes:
    """Grad-CAM overlays for the most confident correct and wrong test images of each
    class, confidence as calibrated P(predicted class) (``now`` as in ``predict_test``)."""
    from skin_lesion import evaluation as ev
    from skin_lesion import figures
    from skin_lesion.engine import resolve_device

    classes = classifier["class_names"]
    _check_classifier(classifier, image_cache, splits, cached_metadata, **now)
    chosen = ev.pick_gradcam_examples(
        _calibrated_frame(test_predictions, test_metrics, classes),
        classes,
        _config(params).gradcam_per_class,
    )
    rows = _rows(image_cache, splits, cached_metadata)
    panels = ev.gradcam_panels(
        classifier,
        image_cache.images,
        rows,
        chosen,
        device=resolve_device(device),
        # The TTA the explained (calibrated) predictions were made with; "none" for metrics
        # from before it was recorded.
        tta=test_metrics.get("tta") or "none",
    )
    title = (
        "Grad-CAM of the predicted class\n(red = most evidence for it; rows: true class;\n"
        "titles: true -> predicted, calibrated P, outcome)"
    )
    return figures.figure_to_png(figures.plot_gradcam_grid(panels, title=title))


# The parameter groups a classifier records as it was trained with (``lineage.SETTINGS_KEY``).
TRAINED_WITH = ("encoder", "contrastive_pretraining", "classifier_training")


def trained_settings(
    params: dict[str, Any], classifier: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """``params`` with the groups the classifier recorded (``TRAINED_WITH``) as it recorded
    them, every default filled in, and the names of those groups.

    The checks before reporting let only settings that do not change the weights differ
    (``amp``, ``compile``, ``channels_last``, ``eval_batch_size``, ...): the run's values of
    those describe this run, not the training the report is about.
    """
    made_with = ((classifier or {}).get("params") or {}).get(lineage.SETTINGS_KEY) or {}
    groups = [g for g in TRAINED_WITH if g in params and isinstance(made_with.get(g), dict)]
    return {**params, **{g: made_with[g] for g in groups}}, groups


def build_report(
    test_metrics: dict[str, Any],
    split_summary: dict[str, Any],
    cached_metadata: pd.DataFrame,
    classifier: dict[str, Any] | None = None,
    **inputs: Any,
) -> str:
    """One self-contained HTML file: metrics, intervals, protocol, parameters, figures.

    ``classifier``: where given, the settings it was trained with replace the run's
    parameter groups of training (``trained_settings``).
    ``inputs``: the parameter groups as ``param_<group>`` (``param_device`` among them) and
    the figures' PNG bytes by figure name, embedded in the pipeline's order.
    """
    from skin_lesion.checkpoints import describe_encoder_training_device
    from skin_lesion.engine import resolve_device

    params, recorded = trained_settings(
        {k.removeprefix(PARAM_PREFIX): v for k, v in inputs.items() if k.startswith(PARAM_PREFIX)},
        classifier,
    )
    config = _config(params["reporting"])
    return report.render_report(
        title=f"skin-lesion: classifier report on {config.dataset}",
        metrics=test_metrics,
        split_summary=split_summary,
        params=params,
        fingerprint=provenance.dataset_fingerprint(cached_metadata),
        environment=provenance.environment_info(str(resolve_device(params["device"]))),
        figures={k: v for k, v in inputs.items() if not k.startswith(PARAM_PREFIX)},
        notice=config.notice,
        recorded_groups=recorded,
        trained_on=describe_training_device(classifier),
        encoder_trained_on=describe_encoder_training_device(classifier),
    )
