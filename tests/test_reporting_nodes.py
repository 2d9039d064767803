"""Reporting nodes draw from the same probabilities that the metrics were computed on."""

import re

import numpy as np
import pandas as pd
import pytest

from skin_lesion import evaluation, figures
from skin_lesion.calibration import apply_temperature
from skin_lesion.pipelines.reporting import nodes
from tests.test_environments import load_config

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def test_roc_curves_use_the_calibrated_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=40)
    predictions = pd.DataFrame(probs, columns=[f"p_{c}" for c in CLASSES])
    predictions["label"] = rng.integers(0, len(CLASSES), 40)
    seen = {}

    def capture(labels, scores, classes, **kwargs):
        seen["scores"] = scores
        seen["points"] = kwargs.get("operating_points")
        return "figure"

    monkeypatch.setattr(figures, "plot_roc_curves", capture)
    monkeypatch.setattr(figures, "figure_to_png", lambda fig: b"png")
    metrics = {"calibration": {"temperature": 2.5}}
    assert nodes.plot_roc_curves(predictions, metrics, CLASSES) == b"png"
    np.testing.assert_allclose(seen["scores"], apply_temperature(probs, 2.5))
    assert not np.allclose(seen["scores"], probs)
    metrics["melanoma"] = {
        "argmax": {"sensitivity": 0.8, "specificity": 0.9},
        "validated_threshold": {"sensitivity": 0.95, "specificity": 0.6},
    }
    nodes.plot_roc_curves(predictions, metrics, CLASSES)
    np.testing.assert_allclose([p[1:] for p in seen["points"]], [(0.1, 0.8), (0.4, 0.95)])


def test_evaluate_test_refuses_classes_in_another_order_than_the_labels() -> None:
    """Labels index ``classes``; in another order every image would be scored against the
    wrong class (balanced accuracy 0.20 for 0.71 on a real run) with no other sign."""
    rng = np.random.default_rng(1)

    def frame(n: int, prefix: str) -> pd.DataFrame:
        labels = np.tile(np.arange(len(CLASSES)), n // len(CLASSES))
        probs = rng.dirichlet(np.ones(len(CLASSES)), size=len(labels))
        probs[np.arange(len(labels)), labels] += 1.0
        out = pd.DataFrame(probs / probs.sum(1, keepdims=True), columns=[f"p_{c}" for c in CLASSES])
        out["image_id"] = [f"{prefix}{i}" for i in range(len(labels))]
        out["lesion_id"] = out["image_id"]
        out["label"], out["dx"] = labels, [CLASSES[i] for i in labels]
        return out

    test, val = frame(70, "t"), frame(70, "v")
    params = {"bootstrap": {"n_resamples": 20}, "progress": False}
    metrics = nodes.evaluate_test(test, val, CLASSES, params, seed=0)
    assert metrics["test"]["balanced_accuracy"] > 0.9
    isic_order = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    with pytest.raises(
        ValueError, match=r"60 of 70 test predictions have a label that is not their dx.*first: t0"
    ):
        nodes.evaluate_test(test, val, isic_order, params, seed=0)


@pytest.mark.parametrize(("recorded", "used"), [("dihedral", "dihedral"), (None, "none")])
def test_gradcam_explains_with_the_tta_the_predictions_were_made_with(
    monkeypatch: pytest.MonkeyPatch, recorded: str | None, used: str
) -> None:
    """The panels' classes and confidences are the TTA predictions': so are their maps (a
    test_metrics.json from before the TTA was recorded was single-view)."""
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=14)
    predictions = pd.DataFrame(probs, columns=[f"p_{c}" for c in CLASSES])
    predictions["label"] = np.arange(14) % len(CLASSES)
    predictions["image_id"] = [f"ISIC_{i}" for i in range(14)]
    seen = {}

    def capture(classifier, images, rows, chosen, *, device, tta):
        seen["tta"] = tta
        return []

    monkeypatch.setattr(nodes, "_check_classifier", lambda *args, **kwargs: None)
    monkeypatch.setattr(nodes, "_rows", lambda *args: None)
    monkeypatch.setattr(evaluation, "gradcam_panels", capture)
    monkeypatch.setattr(figures, "figure_to_png", lambda fig: b"png")
    metrics = {"calibration": {"temperature": 1.5}} | ({"tta": recorded} if recorded else {})
    cache = type("Cache", (), {"images": None})()
    png = nodes.plot_gradcam(
        {"class_names": CLASSES}, cache, None, None, predictions, metrics, {}, "cpu"
    )
    assert png == b"png" and seen["tta"] == used


def _report(env: str, classifier: dict | None) -> str:
    """build_report's page for the parameters of ``conf/<env>`` and no figures."""
    params = load_config(env)["parameters"]
    metadata = pd.DataFrame({"image_id": ["ISIC_1"], "lesion_id": ["HAM_1"]})
    return nodes.build_report(
        {}, {}, metadata, classifier, param_device="cpu", param_reporting=params["reporting"]
    )


@pytest.mark.parametrize(
    ("env", "title"),
    [
        ("local", "skin-lesion: classifier report on HAM10000"),
        ("demo", "skin-lesion: classifier report on synthetic demo data (not HAM10000)"),
    ],
)
def test_report_title_names_the_data_it_is_about(env: str, title: str) -> None:
    """The demo's report was titled a HAM10000 report over its cartoon images."""
    html = _report(env, None)
    assert re.search(r"<h1>(.*?)</h1>", html).group(1) == title
    assert re.search(r"<title>(.*?)</title>", html).group(1) == title


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        ({"type": "cuda", "name": "NVIDIA H100 80GB HBM3"}, "cuda (NVIDIA H100 80GB HBM3)"),
        (None, "not recorded"),  # a classifier saved before the device was recorded
    ],
)
def test_report_says_where_the_classifier_was_trained(recorded, shown) -> None:
    """The Environment section named only the device of the reporting run."""
    classifier = {"kind": "classifier", "params": {}}
    if recorded:
        classifier["trained_on"] = recorded
    environment = _report("local", classifier).split("<h2>Environment</h2>")[1]
    assert f"Classifier trained on: {shown}." in environment


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        (
            {"supcon": True, "trained_on": {"type": "cpu", "name": "AMD EPYC"}, "versions": {}},
            "cpu (AMD EPYC)",
        ),
        ({"supcon": False}, "none (contrastive pretraining off: the classifier was fine-tuned"),
        (None, "not recorded"),  # a classifier saved before it recorded its encoder's device
    ],
)
def test_report_says_where_the_supcon_encoder_was_pretrained(record, shown) -> None:
    """Only the classifier's device was named, not that of the encoder it was fine-tuned from
    (SupCon on a GPU, the classifier on another machine)."""
    classifier = {"kind": "classifier", "params": {}, "trained_on": {"type": "cuda", "name": "G"}}
    if record:
        classifier["encoder_trained_on"] = record
    environment = _report("local", classifier).split("<h2>Environment</h2>")[1]
    assert f"Classifier trained on: cuda (G). SupCon encoder pretrained on: {shown}" in environment


def test_the_augmentation_figure_leaves_the_callers_generator_as_it_was() -> None:
    """augmented_views seeded torch's global generator: a notebook that drew the figure and
    then trained trained on the figure's seed. Its views still depend on its seed alone."""
    import torch

    from skin_lesion.configs import AugmentConfig

    images = np.random.default_rng(0).integers(0, 256, (2, 40, 48, 3), dtype=np.uint8)
    config = AugmentConfig(crop_size=32)
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    first = evaluation.augmented_views(images, config, mean, std, views=3, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    torch.manual_seed(99)  # another caller state: the same views
    again = evaluation.augmented_views(images, config, mean, std, views=3, seed=7)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (2, 3, 32, 32, 3)
    other = evaluation.augmented_views(images, config, mean, std, views=3, seed=8)
    assert not np.array_equal(first, other)
