"""benchmarks/decision_rules.py: the prior shift, its cross-fitting, the TTA views, the split."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from benchmarks import decision_rules as dr

from skin_lesion.lineage import split_fingerprint
from skin_lesion.splits import SplitConfig, split_by_lesion


def _prior_biased(n: int = 3000, seed: int = 0):
    """Probabilities from a model that learnt the training prior: posterior = prior x
    likelihood, so the balanced decision is the argmax of the likelihood (tau = 1)."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.8, 0.15, 0.05])
    labels = rng.choice(3, size=n, p=[1 / 3] * 3)  # the evaluation split is balanced here
    loglik = rng.normal(0.0, 1.0, (n, 3))
    loglik[np.arange(n), labels] += 1.5
    logits = loglik + np.log(prior)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return probs / probs.sum(1, keepdims=True), labels, np.log(prior)


def test_the_fitted_tau_undoes_a_learnt_prior_and_raises_balanced_accuracy():
    probs, labels, log_prior = _prior_biased()
    tau = dr.fit_tau(probs, labels, log_prior)
    assert 0.6 <= tau <= 1.4
    shifted = dr.balanced_accuracy(labels, dr.shifted(probs, log_prior, tau))
    assert shifted > dr.balanced_accuracy(labels, probs) + 0.05


def test_ties_go_to_the_tau_nearest_zero():
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[labels] * 0.98 + 0.01  # every class right by a wide margin
    assert dr.fit_tau(probs, labels, np.log([0.6, 0.3, 0.1])) == 0.0


def test_cross_fitted_gain_is_positive_for_a_learnt_prior_and_zero_when_nothing_to_gain():
    probs, labels, log_prior = _prior_biased()
    lesions = np.array([f"L{i // 2}" for i in range(len(labels))])  # two images a lesion
    gains = dr.cross_fitted_gain(probs, labels, lesions, log_prior, halves=5)
    assert len(gains) == 5 and np.mean(gains) > 0.03
    perfect = np.eye(3)[labels] * 0.98 + 0.01
    assert dr.cross_fitted_gain(perfect, labels, lesions, log_prior, halves=3) == [0.0] * 3


@pytest.mark.filterwarnings("ignore:A single label")  # halves of 4 images
def test_score_averages_the_views_each_rule_names():
    labels = np.array([0, 1, 2, 1])
    right, wrong = np.eye(3)[labels], np.eye(3)[(labels + 1) % 3]
    # View 0 wrong; views 1-3 right (flips: 3 of 4 right); views 4-7 wrong (dihedral: 3 of 8).
    views = np.stack([wrong] + [right] * 3 + [wrong] * 4) * 0.9 + 0.1 / 3
    data = {
        "val_labels": labels,
        "test_labels": labels,
        "val_lesions": np.array(["a", "b", "c", "d"]),
        "train_counts": np.array([10, 10, 10]),
    }
    out = dr.score({"val": views, "test": views}, data, halves=2)
    assert out["none"] == {"val": 0.0, "test": 0.0}
    assert out["flips"] == {"val": 1.0, "test": 1.0}
    assert out["dihedral"]["test"] == 0.0
    # A uniform training prior: the shift changes nothing.
    assert out["flips + prior shift"]["test"] == 1.0


def test_score_shifts_by_the_training_prior_it_is_given():
    probs, labels, log_prior = _prior_biased()
    val, test = slice(0, 1500), slice(1500, None)
    data = {
        "val_labels": labels[val],
        "test_labels": labels[test],
        "val_lesions": np.array([f"L{i}" for i in range(1500)]),
        "train_counts": np.round(np.exp(log_prior) * 1000),  # 800, 150, 50
    }
    views = {"val": np.stack([probs[val]] * 8), "test": np.stack([probs[test]] * 8)}
    out = dr.score(views, data, halves=4)
    shift = out["flips + prior shift"]
    assert 0.6 <= shift["tau"] <= 1.4
    assert shift["test"] > out["flips"]["test"] + 0.05
    assert shift["cross_fitted_gain"] > 0.03 and shift["cross_fitted_sd"] is not None
    with pytest.raises(ValueError, match="every class needs training images"):
        dr.score(views, {**data, "train_counts": np.array([800, 150, 0])}, halves=1)


def test_a_lesion_half_keeps_lesions_whole_and_halves_each_class():
    rng = np.random.default_rng(0)
    lesions = np.array([f"L{i // 3}" for i in range(300)])  # 100 lesions of 3 images
    labels = np.array([0 if i < 240 else 1 for i in range(300)])  # 80 and 20 lesions
    for _ in range(5):
        half = dr.lesion_half(labels, lesions, rng)
        assert all(len(set(half[lesions == lesion])) == 1 for lesion in set(lesions))
        assert half[labels == 0].sum() == 40 * 3 and half[labels == 1].sum() == 10 * 3


def _metadata(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for label, (dx, lesions) in enumerate({"akiec": 20, "bcc": 25, "nv": 80}.items()):
        for lesion in range(lesions):
            for _ in range(rng.choice([1, 2, 3])):
                rows.append(
                    {
                        "image_id": f"ISIC_{len(rows):07d}",
                        "lesion_id": f"{dx}_{lesion}",
                        "dx": dx,
                        "label": label,
                    }
                )
    return pd.DataFrame(rows)


# Not the defaults: a rebuild that ignored the record's fractions or folds would fail.
RECORD_PARAMETERS = {
    "data_processing.split.train": 0.6,
    "data_processing.split.val": 0.2,
    "data_processing.split.test": 0.2,
    "data_processing.split.folds": 4,
}
CONFIG = SplitConfig(train=0.6, val=0.2, test=0.2, folds=4)


def test_the_split_is_rebuilt_from_the_seed_whose_fingerprint_the_checkpoint_records():
    metadata = _metadata()
    trained = split_by_lesion(metadata, CONFIG, 7)
    record = {"parameters": RECORD_PARAMETERS, "split_seed": 7}
    rebuilt = dr.rebuild_split(record, metadata, [3, 7], split_fingerprint(trained), "split7")
    pd.testing.assert_frame_equal(rebuilt, trained)
    with pytest.raises(SystemExit, match=r"split3: no split seed gives the split .* 3 -> "):
        dr.rebuild_split(record, metadata, [3], split_fingerprint(trained), "split3")
    with pytest.raises(SystemExit, match="seed0: its classifier records no split fingerprint"):
        dr.rebuild_split(record, metadata, [7], None, "seed0")


def test_a_cross_validation_record_rebuilds_its_fold_as_validation():
    metadata = _metadata()
    trained = split_by_lesion(metadata, replace(CONFIG, validation_fold=2), 42)
    record = {"parameters": RECORD_PARAMETERS, "fold": 2}
    rebuilt = dr.rebuild_split(record, metadata, [42], split_fingerprint(trained), "fold2")
    pd.testing.assert_frame_equal(rebuilt, trained)


def test_the_views_average_to_what_reporting_predicts_with_flips_and_dihedral():
    from types import SimpleNamespace

    import torch

    from skin_lesion import classification as clf
    from skin_lesion import classifier
    from tests.test_classification import _config, _train

    (checkpoint, _, _), images, rows = _train(
        _config(warmup=clf.WarmupConfig(epochs=1), finetune=clf.FinetuneConfig(epochs=1)), n=64
    )
    cpu = torch.device("cpu")
    views = dr.predict_views(checkpoint, SimpleNamespace(images=images), rows, ("val",), cpu)["val"]
    val = np.flatnonzero(rows["split"] == "val")
    assert views.shape == (8, len(val), len(checkpoint["class_names"]))
    for tta, used in (("none", [0]), ("flips", [0, 1, 2, 3]), ("dihedral", list(range(8)))):
        expected = classifier.predict_with_checkpoint(
            checkpoint, images, rows, val, device=cpu, tta=tta, progress=False
        )
        np.testing.assert_allclose(views[used].mean(0), expected, atol=1e-6)
    assert not np.allclose(views[0], views[1])  # the views differ: the check above means something


def test_the_summary_and_table_gather_every_classifier():
    def one(flips: float, shift: float, tau: float) -> dict:
        return {
            "none": {"val": 0.70, "test": flips - 0.01},
            "flips": {"val": 0.69, "test": flips},
            "dihedral": {"val": 0.69, "test": flips + 0.01},
            "flips + prior shift": {
                "val": 0.72,
                "test": shift,
                "tau": tau,
                "cross_fitted_gain": 0.004,
                "cross_fitted_sd": 0.01,
            },
        }

    per_run = {"split1": one(0.70, 0.68, 0.65), "split2": one(0.66, 0.67, -0.15)}
    summary = dr.summarize(per_run)
    assert summary["flips"]["test"][0] == pytest.approx(0.68)
    assert summary["flips + prior shift"]["test_change_vs_flips"] == pytest.approx([-0.02, 0.01])
    assert summary["flips + prior shift"]["tau"] == [0.65, -0.15]
    assert summary["dihedral"]["test_change_vs_flips"] == pytest.approx([0.01, 0.01])
    result = {"run": "r", "device": "CPU x", "halves": 50, "per_run": per_run, "summary": summary}
    table = dr.markdown(result)
    assert "| flips + prior shift | 0.720 ± 0.000 | 0.675 ± 0.007 | -0.020, +0.010 |" in table
    assert "by classifier: +0.65, -0.15;" in table
    one_run = dr.summarize({"split1": one(0.70, 0.68, 0.65)})
    assert one_run["flips"]["test"] == [pytest.approx(0.70), None]
    assert "| flips | 0.690 | 0.700 | +0.000 |" in dr.markdown(
        {**result, "summary": one_run, "per_run": {"split1": one(0.70, 0.68, 0.65)}}
    )


def test_a_trial_writes_to_out_and_is_refused_over_a_result_with_other_settings(
    tmp_path, monkeypatch
):
    """--results-dir is where the run's records are read: a trial with other --halves wrote
    over the committed decision-rules-<run>.json there."""
    calls, taus = [], [-1.0, 2.0, 0.05]

    def evaluate_run(run, work_dir, halves, device, results):
        calls.append(results)
        return {"run": run, "halves": halves, "taus": taus, "device": "CPU test"}

    monkeypatch.setattr(dr, "evaluate_run", evaluate_run)
    monkeypatch.setattr(dr, "markdown", lambda result: f"halves {result['halves']}\n")
    monkeypatch.setattr(dr.accuracy, "device_name", lambda: "CPU test")
    committed = tmp_path / "decision-rules-r.json"
    recorded = {"run": "r", "halves": 50, "taus": taus, "device": "CPU test"}
    committed.write_text(json.dumps(recorded))
    argv = ["--run", "r", "--results-dir", str(tmp_path), "--device", "cpu"]
    with pytest.raises(SystemExit, match=r"halves 50 there, 5 now\); pass another --out"):
        dr.main([*argv, "--halves", "5"])
    assert calls == []  # refused before any classifier was scored
    trial = tmp_path / "trial" / "rules.json"
    assert dr.main([*argv, "--halves", "5", "--out", str(trial)]) == 0
    assert calls == [tmp_path]  # the records are still read from --results-dir
    assert json.loads(trial.read_text())["halves"] == 5
    assert trial.with_suffix(".md").read_text() == "halves 5\n"
    assert json.loads(committed.read_text()) == recorded
    # Another device is another scoring; the same settings replace it.
    monkeypatch.setattr(dr.accuracy, "device_name", lambda: "CPU other")
    with pytest.raises(SystemExit, match=r"device 'CPU test' there, 'CPU other' now"):
        dr.main(argv)
    monkeypatch.setattr(dr.accuracy, "device_name", lambda: "CPU test")
    assert dr.main(argv) == 0
    assert (tmp_path / "decision-rules-r.md").read_text() == "halves 50\n"
