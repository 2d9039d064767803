"""benchmarks/decision_rules.py: the prior shift, its cross-fitting, the TTA views, the split."""

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


RECORD_PARAMETERS = {
    "data_processing.split.train": 0.7,
    "data_processing.split.val": 0.15,
    "data_processing.split.test": 0.15,
    "data_processing.split.folds": 5,
}


def test_the_split_is_rebuilt_from_the_seed_whose_fingerprint_the_checkpoint_records():
    metadata = _metadata()
    trained = split_by_lesion(metadata, SplitConfig(), 7)
    record = {"parameters": RECORD_PARAMETERS, "split_seed": 7}
    rebuilt = dr.rebuild_split(record, metadata, [3, 7], split_fingerprint(trained), "split7")
    pd.testing.assert_frame_equal(rebuilt, trained)
    with pytest.raises(SystemExit, match=r"split3: no split seed gives the split .* 3 -> "):
        dr.rebuild_split(record, metadata, [3], split_fingerprint(trained), "split3")
    with pytest.raises(SystemExit, match="seed0: its classifier records no split fingerprint"):
        dr.rebuild_split(record, metadata, [7], None, "seed0")


def test_a_cross_validation_record_rebuilds_its_fold_as_validation():
    metadata = _metadata()
    trained = split_by_lesion(metadata, SplitConfig(validation_fold=2), 42)
    record = {"parameters": RECORD_PARAMETERS, "fold": 2}
    rebuilt = dr.rebuild_split(record, metadata, [42], split_fingerprint(trained), "fold2")
    pd.testing.assert_frame_equal(rebuilt, trained)
