import logging

import pandas as pd
import pytest

from skin_lesion.metadata import (
    InvalidDataError,
    MetadataConfig,
    count_rows,
    enforce_policy,
    require_every_class,
    set_aside_identical_copies,
    validate_metadata,
)

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def _raw(rows: list[dict]) -> pd.DataFrame:
    base = {"dx_type": "histo", "age": "45.0", "sex": "male", "localization": "back"}
    return pd.DataFrame([{**base, **row} for row in rows])[
        ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    ]


def _good(n: int) -> list[dict]:
    return [
        {"lesion_id": f"HAM_{i:07d}", "image_id": f"ISIC_{i:07d}", "dx": CLASSES[i % 7]}
        for i in range(n)
    ]


def _files(ids: list[str]) -> list[str]:
    return [f"part_1/{i}.jpg" for i in ids]


def _validate(rows, files=None):
    raw = _raw(rows)
    files = _files(sorted(set(raw["image_id"]))) if files is None else files
    return validate_metadata(raw, files, CLASSES, MetadataConfig())


def test_valid_rows_are_typed_and_kept_in_order():
    rows = _good(10)
    rows[3]["age"] = ""
    valid, rejected = _validate(rows)
    assert list(valid["image_id"]) == [r["image_id"] for r in rows]
    assert valid["age"].isna().sum() == 1 and valid.loc[0, "age"] == 45.0
    assert list(valid["label"]) == [i % 7 for i in range(10)]
    assert valid.loc[2, "file"] == "part_1/ISIC_0000002.jpg"
    assert list(valid["row"]) == list(range(2, 12))
    assert rejected.empty


def test_missing_column_names_it():
    raw = _raw(_good(3)).drop(columns=["sex"])
    with pytest.raises(InvalidDataError, match=r"missing required column\(s\) \['sex'\]"):
        validate_metadata(raw, _files(list(raw["image_id"])), CLASSES, MetadataConfig())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"dx": "melanoma"}, "dx 'melanoma' is not one of"),
        ({"sex": "M"}, "sex 'M' is not one of"),
        ({"age": "forty"}, "age 'forty' is not a number"),
        ({"age": "nan"}, "age 'nan' is not a number"),
        ({"age": "150.0"}, "age 150 is outside [0, 120]"),
        # Python's float() reads these; the typing of the valid rows (pd.to_numeric) did not,
        # and stopped the run naming no line.
        ({"age": "1_2"}, "age '1_2' is not a number"),
        ({"age": "\u0661\u0662"}, "is not a number"),
        ({"lesion_id": ""}, "empty lesion_id"),
    ],
)
def test_bad_value_is_rejected_with_reason_and_others_survive(change, reason):
    rows = _good(8)
    rows[5].update(change)
    valid, rejected = _validate(rows)
    assert len(valid) == 7 and "ISIC_0000005" not in set(valid["image_id"])
    assert list(rejected["image_id"]) == ["ISIC_0000005"]
    assert rejected.loc[0, "stage"] == "metadata"
    assert reason in rejected.loc[0, "reason"]
    assert rejected.loc[0, "reason"].startswith("line 7:")


def test_missing_and_duplicate_image_files():
    rows = _good(5)
    files = _files(["ISIC_0000000", "ISIC_0000001", "ISIC_0000003", "ISIC_0000004"])
    files.append("part_2/ISIC_0000004.png")
    valid, rejected = _validate(rows, files)
    assert list(valid["image_id"]) == ["ISIC_0000000", "ISIC_0000001", "ISIC_0000003"]
    reasons = dict(zip(rejected["image_id"], rejected["reason"]))
    assert "no image file for this image_id" in reasons["ISIC_0000002"]
    assert "2 image files" in reasons["ISIC_0000004"]
    assert "part_2/ISIC_0000004.png" in reasons["ISIC_0000004"]


def test_unmatched_files_are_reported_not_fatal(caplog):
    rows = _good(3)
    files = _files(["ISIC_0000000", "ISIC_0000001", "ISIC_0000002", "ISIC_9999999"])
    valid, rejected = _validate(rows, files)
    assert len(valid) == 3
    assert list(rejected["stage"]) == ["unmatched_file"]
    assert list(rejected["file"]) == ["part_1/ISIC_9999999.jpg"]
    with caplog.at_level(logging.WARNING):
        enforce_policy(rejected, "raise", "metadata rows", 3)
    assert "ISIC_9999999" in caplog.text


def test_duplicates_identical_keep_first_conflicting_reject_all():
    rows = _good(4)
    rows.append(dict(rows[1]))  # exact repeat of line 3
    rows.append({**rows[2], "age": "70.0"})  # conflicting copy of line 4
    valid, rejected = _validate(rows)
    assert list(valid["image_id"]) == ["ISIC_0000000", "ISIC_0000001", "ISIC_0000003"]
    reasons = list(rejected["reason"])
    assert reasons[0] == "line 4: image_id appears on lines 4, 7 with different values"
    assert reasons[1] == "line 6: duplicate of line 3"


def test_a_repeat_that_writes_the_age_another_way_is_still_a_repeat():
    rows = _good(3)
    rows[1]["age"] = "50"
    rows.append({**rows[1], "age": "50.0"})  # line 5: the same row, the age written as float
    valid, rejected = _validate(rows)
    assert list(valid["image_id"]) == ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002"]
    assert list(rejected["reason"]) == ["line 5: duplicate of line 3"]


def test_lesion_with_two_diagnoses_is_rejected():
    rows = _good(4)
    rows[1]["lesion_id"] = rows[0]["lesion_id"]  # dx akiec and bcc on one lesion
    valid, rejected = _validate(rows)
    assert len(valid) == 2
    assert all("several diagnoses (akiec, bcc)" in r for r in rejected["reason"])


def test_a_diagnosis_typo_rejects_its_row_not_the_lesions_other_images():
    """MEL on one image of a mel lesion rejected all three as "several diagnoses (MEL, mel)",
    and under on_invalid: drop lost the two correct ones."""
    rows = _good(8) + [
        {"lesion_id": "HAM_lesion", "image_id": f"ISIC_m{k}", "dx": dx}
        for k, dx in enumerate(["mel", "MEL", "mel"])
    ]
    valid, rejected = _validate(rows)
    assert list(valid["image_id"])[-2:] == ["ISIC_m0", "ISIC_m2"]
    assert list(rejected["image_id"]) == ["ISIC_m1"]
    assert "several diagnoses" not in rejected["reason"].iloc[0]


def test_policy_raise_names_first_rows_and_count():
    rows = _good(12)
    for row in rows[:7]:
        row["dx"] = "xx"
    _, rejected = _validate(rows)
    with pytest.raises(InvalidDataError) as info:
        enforce_policy(rejected, "raise", "metadata rows", 12)
    message = str(info.value)
    assert message.startswith("7 of 12 metadata rows are invalid")
    assert "ISIC_0000000: line 2: dx 'xx'" in message
    assert "... and 2 more" in message
    assert "on_invalid: drop" in message


def test_policy_raise_names_the_file_of_an_image_that_did_not_decode():
    rejected = pd.DataFrame(
        {
            "image_id": ["ISIC_0000001", "ISIC_0000002"],
            "file": ["HAM10000_images_part_2/ISIC_0000001.jpg", None],
            "stage": ["decode", "metadata"],
            "reason": ["truncated file", "line 3: sex '?'"],
        }
    )
    with pytest.raises(InvalidDataError) as info:
        enforce_policy(rejected, "raise", "images", 2)
    assert "ISIC_0000001 (HAM10000_images_part_2/ISIC_0000001.jpg): truncated file" in str(
        info.value
    )
    assert "ISIC_0000002: line 3" in str(info.value)  # a metadata row: its line says where


def test_policy_drop_logs_and_continues(caplog):
    rows = _good(5)
    rows[0]["sex"] = "?"
    valid, rejected = _validate(rows)
    with caplog.at_level(logging.WARNING):
        enforce_policy(rejected, "drop", "metadata rows", 5)
    assert "1 of 5 metadata rows are invalid" in caplog.text
    assert len(valid) == 4


def test_policy_rejects_unknown_mode():
    with pytest.raises(ValueError, match="'ignore'"):
        enforce_policy(_validate(_good(2))[1], "ignore", "rows", 2)


def test_require_every_class_names_each_empty_class():
    kept = pd.DataFrame({"dx": ["mel", "nv", "nv"]})
    require_every_class(kept, ["mel", "nv"], "images", 0)
    with pytest.raises(
        InvalidDataError, match=r"class\(es\) \[.bcc.\].*3 valid in all \(2 images were set aside"
    ):
        require_every_class(kept, ["bcc", "mel", "nv"], "images", 2)
    with pytest.raises(InvalidDataError, match=r"\['mel', 'nv'\].*0 valid in all"):
        require_every_class(kept.iloc[:0], ["mel", "nv"], "metadata rows", 3)


def test_identical_copies_are_set_aside_and_different_ones_kept_for_validation():
    content = {
        "HAM10000_images_part_1/ISIC_1.jpg": b"one",
        "ham10000_images_part_1/ISIC_1.jpg": b"one",
        "x/ISIC_1.png": b"one",
        "HAM10000_images_part_1/ISIC_2.jpg": b"two",
        "ham10000_images_part_1/ISIC_2.jpg": b"TWO",
        "HAM10000_images_part_2/ISIC_3.jpg": b"three",
    }
    reads = []

    def loader(path):
        def read():
            reads.append(path)
            return content[path]

        return read

    kept, copies = set_aside_identical_copies({path: loader(path) for path in content})

    assert kept == [
        "HAM10000_images_part_1/ISIC_1.jpg",
        "HAM10000_images_part_1/ISIC_2.jpg",
        "HAM10000_images_part_2/ISIC_3.jpg",
        "ham10000_images_part_1/ISIC_2.jpg",
    ]
    assert copies.to_dict("records") == [
        {
            "image_id": "ISIC_1",
            "file": path,
            "stage": "duplicate_file",
            "reason": "identical copy of HAM10000_images_part_1/ISIC_1.jpg; not used",
        }
        for path in ("ham10000_images_part_1/ISIC_1.jpg", "x/ISIC_1.png")
    ]
    assert "HAM10000_images_part_2/ISIC_3.jpg" not in reads  # a single file is not read
    # The copies never stop a run; the differing pair is left for validation to reject.
    enforce_policy(copies, "raise", "metadata rows", 3)
    rows = [{"lesion_id": f"HAM_{i}", "image_id": f"ISIC_{i}", "dx": "nv"} for i in (1, 2, 3)]
    valid, rejected = _validate(rows, kept)
    assert list(valid["image_id"]) == ["ISIC_1", "ISIC_3"]
    assert "their bytes differ" in rejected.loc[0, "reason"]


def test_a_copy_that_cannot_be_read_is_kept_for_decoding_to_reject_not_fatal_here():
    """A broken link beside its image stopped predict (and data_processing) outright."""

    def broken() -> bytes:
        raise FileNotFoundError("b/ISIC_1.jpg")

    files = {"a/ISIC_1.jpg": lambda: b"one", "b/ISIC_1.jpg": broken, "c/ISIC_1.jpg": lambda: b"one"}
    kept, copies = set_aside_identical_copies(files)
    # The unreadable one is not known to be a copy: kept, for validation to name the
    # image_id's several files; c is a's copy all the same. The read error is listed (the
    # refusal alone said "different bytes", sending the user to compare the two files).
    assert kept == ["a/ISIC_1.jpg", "b/ISIC_1.jpg"]
    assert copies[["file", "stage"]].values.tolist() == [
        ["c/ISIC_1.jpg", "duplicate_file"],
        ["b/ISIC_1.jpg", "duplicate_file"],
    ]
    assert copies.loc[1, "reason"] == "cannot read file: b/ISIC_1.jpg"
    enforce_policy(copies, "raise", "metadata rows", 1)  # listed, never fatal by itself


def test_identical_copies_are_set_aside_beside_a_different_file_of_the_same_name():
    """A third file of one name, with other bytes, left both identical copies in (inference
    classified the same image twice)."""
    files = {"a.jpg": lambda: b"one", "nested/a.jpg": lambda: b"one", "other/a.png": lambda: b"2"}
    kept, copies = set_aside_identical_copies(files)
    assert kept == ["a.jpg", "other/a.png"]
    assert copies.to_dict("records") == [
        {
            "image_id": "a",
            "file": "nested/a.jpg",
            "stage": "duplicate_file",
            "reason": "identical copy of a.jpg; not used",
        }
    ]


def test_blank_rows_are_skipped_and_lines_still_named_right():
    rows = _good(3)
    rows[2]["sex"] = "robot"
    raw = _raw(rows)
    blank = pd.DataFrame([[""] * raw.shape[1], [" "] * raw.shape[1]], columns=raw.columns)
    raw = pd.concat([raw.iloc[:1], blank, raw.iloc[1:]], ignore_index=True)  # lines 3 and 4
    # The count the node logs ("n of N metadata rows are valid") skips both, as validation
    # does: the line of only spaces counted as a row until 2026-12-06.
    assert count_rows(raw) == 3

    valid, rejected = validate_metadata(
        raw, _files(["ISIC_0000000", "ISIC_0000001", "ISIC_0000002"]), CLASSES, MetadataConfig()
    )

    assert list(valid["row"]) == [2, 5]
    assert rejected["reason"].tolist() == [
        "line 6: sex 'robot' is not one of ['male', 'female', 'unknown']"
    ]


def test_a_row_with_only_an_extra_column_filled_is_rejected_not_dropped_unseen():
    raw = _raw(_good(3))
    raw["note"] = ""
    extra = pd.DataFrame([{**{c: "" for c in raw.columns}, "note": "see ISIC_9"}])
    raw = pd.concat([raw.iloc[:1], extra, raw.iloc[1:]], ignore_index=True)  # line 3
    valid, rejected = validate_metadata(
        raw, _files(["ISIC_0000000", "ISIC_0000001", "ISIC_0000002"]), CLASSES, MetadataConfig()
    )
    assert list(valid["row"]) == [2, 4, 5]
    assert rejected["reason"].str.startswith("line 3: empty image_id").tolist() == [True]


def test_a_rare_localization_like_a_common_one_is_named_as_a_likely_typo(caplog):
    rows = _good(14)
    rows[4]["localization"] = "bakc"
    rows[6]["localization"] = "acral"  # rare, but like no other site
    rows[8]["localization"] = "upper extremity"  # like "lower extremity", but HAM10000's own
    for k in (9, 10, 11):
        rows[k]["localization"] = "lower extremity"
    with caplog.at_level(logging.WARNING, logger="skin_lesion.metadata"):
        valid, rejected = _validate(rows)
    assert len(valid) == 14 and rejected.empty  # a warning, not a rejection
    warnings = [r.getMessage() for r in caplog.records if "localization" in r.getMessage()]
    assert len(warnings) == 1
    assert "'bakc' on line 6 (like 'back', on 8 rows)" in warnings[0]
    assert "extremity" not in warnings[0]
    assert "acral" not in warnings[0]


def test_age_zero_is_kept_with_a_warning_counting_it_by_class(caplog):
    """HAM10000 has 39 rows of age 0 (nv, bkl, vasc): likely placeholders, read by metadata
    fusion as newborns without a word."""
    rows = _good(8)
    rows[2]["age"] = "0"
    rows[6]["age"] = "0.0"
    with caplog.at_level("WARNING", logger="skin_lesion.metadata"):
        valid, rejected = _validate(rows)
    assert len(valid) == 8 and rejected.empty
    assert list(valid.loc[valid["age"].eq(0), "image_id"]) == ["ISIC_0000002", "ISIC_0000006"]
    assert (
        f"2 valid row(s) have age 0 ({CLASSES[2]} 1, {CLASSES[6]} 1; first lines 4, 8)"
        in caplog.text
    )
