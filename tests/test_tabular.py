"""Tests for skin_lesion.tabular."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest

from skin_lesion.tabular import MetadataEncoder, fit_metadata_encoder


def _train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30.0, 50.0, math.nan, 70.0],
            "sex": ["male", "female", "unknown", "male"],
            "localization": ["back", "face", "back", "unknown"],
        }
    )


def _column(encoder: MetadataEncoder, features: np.ndarray, name: str) -> np.ndarray:
    return features[:, encoder.feature_names.index(name)]


def test_fit_uses_only_the_given_rows() -> None:
    encoder = fit_metadata_encoder(_train())
    # Known ages 30, 50, 70: mean 50, population std sqrt(800 / 3).
    assert encoder.age_mean == pytest.approx(50.0)
    assert encoder.age_std == pytest.approx(math.sqrt(800 / 3))
    assert encoder.localization_vocabulary == ("back", "face", "unknown")
    validation = pd.DataFrame({"age": [90.0], "sex": ["male"], "localization": ["scalp"]})
    both = fit_metadata_encoder(pd.concat([_train(), validation], ignore_index=True))
    assert both.age_mean != pytest.approx(encoder.age_mean)  # the statistics see the rows


def test_feature_names_and_order_are_stable() -> None:
    encoder = fit_metadata_encoder(_train())
    expected = [
        "age",
        "age_missing",
        "sex=female",
        "sex=male",
        "sex=unknown",
        "localization=back",
        "localization=face",
        "localization=unknown",
    ]
    assert encoder.feature_names == expected
    assert encoder.num_features == len(expected)
    # Row order of the training frame does not change the vocabulary or the columns.
    shuffled = fit_metadata_encoder(_train().iloc[::-1])
    assert shuffled == encoder


def test_transform_values() -> None:
    encoder = fit_metadata_encoder(_train())
    features = encoder.transform(_train())
    assert features.dtype == np.float32
    assert features.shape == (4, encoder.num_features)
    std = math.sqrt(800 / 3)
    np.testing.assert_allclose(features[0], [-20 / std, 0, 0, 1, 0, 1, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(features[3], [20 / std, 0, 0, 1, 0, 0, 0, 1], rtol=1e-6)


def test_missing_ages_get_flag_and_zero() -> None:
    encoder = fit_metadata_encoder(_train())
    frame = pd.DataFrame(
        {
            "age": ["", "  ", None, " 50 ", 35],
            "sex": ["male"] * 5,
            "localization": ["back"] * 5,
        }
    )
    features = encoder.transform(frame)
    np.testing.assert_array_equal(_column(encoder, features, "age_missing"), [1, 1, 1, 0, 0])
    ages = _column(encoder, features, "age")
    np.testing.assert_array_equal(ages[:4], [0, 0, 0, 0])  # missing, and 50 == the mean
    assert ages[4] == pytest.approx(-15 / encoder.age_std)


def test_invalid_age_is_named() -> None:
    encoder = fit_metadata_encoder(_train())
    frame = pd.DataFrame(
        {"age": ["40", "forty", -3], "sex": ["male"] * 3, "localization": [""] * 3}
    )
    with pytest.raises(ValueError, match=r"2 age value\(s\).*row 1: 'forty', row 2: -3"):
        encoder.transform(frame)


def test_fit_without_any_age_fails() -> None:
    frame = _train().assign(age=math.nan)
    with pytest.raises(ValueError, match="none of the 4 training rows has an age"):
        fit_metadata_encoder(frame)


def test_unknown_and_odd_sex_map_to_unknown_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    encoder = fit_metadata_encoder(_train())
    frame = pd.DataFrame(
        {
            "age": [40.0] * 4,
            "sex": ["unknown", None, " Female ", "other"],
            "localization": ["back"] * 4,
        }
    )
    with caplog.at_level(logging.WARNING, logger="skin_lesion.tabular"):
        features = encoder.transform(frame)
    np.testing.assert_array_equal(_column(encoder, features, "sex=unknown"), [1, 1, 0, 1])
    np.testing.assert_array_equal(_column(encoder, features, "sex=female"), [0, 0, 1, 0])
    assert "1 sex value(s)" in caplog.text
    assert "{'other': 1}" in caplog.text


def test_unseen_localization_maps_to_unknown(caplog: pytest.LogCaptureFixture) -> None:
    encoder = fit_metadata_encoder(_train())
    frame = pd.DataFrame(
        {"age": [40.0] * 3, "sex": ["male"] * 3, "localization": ["scalp", "FACE", ""]}
    )
    with caplog.at_level(logging.WARNING, logger="skin_lesion.tabular"):
        features = encoder.transform(frame)
    place = features[:, encoder.feature_names.index("localization=back") :]
    np.testing.assert_array_equal(place, [[0, 0, 1], [0, 1, 0], [0, 0, 1]])
    assert "{'scalp': 1}" in caplog.text


def test_round_trip_through_json_gives_identical_features() -> None:
    encoder = fit_metadata_encoder(_train())
    restored = MetadataEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert restored == encoder
    frame = pd.concat(
        [_train(), pd.DataFrame({"age": [1.5], "sex": ["x"], "localization": ["ear"]})]
    )
    np.testing.assert_array_equal(restored.transform(frame), encoder.transform(frame))


def test_from_dict_names_bad_keys() -> None:
    data = fit_metadata_encoder(_train()).to_dict()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['age_men'\]"):
        MetadataEncoder.from_dict({**data, "age_men": 1.0})
    without_std = {k: v for k, v in data.items() if k != "age_std"}
    with pytest.raises(ValueError, match="required key 'age_std' is missing"):
        MetadataEncoder.from_dict(without_std)
    with pytest.raises(ValueError, match="localization_vocabulary must contain 'unknown'"):
        MetadataEncoder.from_dict({**data, "localization_vocabulary": ["back"]})
    with pytest.raises(ValueError, match=r"age_std must be finite and positive, got 0\.0"):
        MetadataEncoder.from_dict({**data, "age_std": 0.0})
    with pytest.raises(ValueError, match="age_min and age_max must both be set"):
        MetadataEncoder.from_dict({**data, "age_min": 70.0, "age_max": 30.0})
    with pytest.raises(ValueError, match="age_min and age_max must both be set"):
        MetadataEncoder.from_dict({**data, "age_max": None})


def test_single_age_gets_unit_scale() -> None:
    frame = _train().assign(age=[40.0, 40.0, math.nan, 40.0])
    encoder = fit_metadata_encoder(frame)
    assert (encoder.age_mean, encoder.age_std) == (40.0, 1.0)


@pytest.mark.parametrize("fit", [True, False])
def test_missing_columns_are_named(fit: bool) -> None:
    frame = _train().drop(columns=["sex", "localization"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['sex', 'localization'\]"):
        if fit:
            fit_metadata_encoder(frame)
        else:
            fit_metadata_encoder(_train()).transform(frame)


def test_empty_frame_transforms_to_no_rows() -> None:
    encoder = fit_metadata_encoder(_train())
    features = encoder.transform(_train().iloc[:0])
    assert features.shape == (0, encoder.num_features)
