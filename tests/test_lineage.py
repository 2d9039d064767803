"""A stage refuses a checkpoint or cache made from other splits or settings than its own."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skin_lesion.lineage import (
    DATA_KEY,
    SPLIT_KEY,
    StaleInputError,
    all_of,
    check_cache_settings,
    check_checkpoint_inputs,
    check_encoder_settings,
    check_made_from,
    check_predictions,
    check_pretraining_settings,
    check_raw_data,
    check_scored_pixels,
    check_seed,
    check_settings,
    check_split_settings,
    data_fingerprint,
    encoder_of,
    raw_data_at_hand,
    raw_data_record,
    recorded_config,
    rows_fingerprint,
    scored_pixels,
    split_fingerprint,
    split_settings,
)
from skin_lesion.splits import SplitConfig
from tests.conftest import run_kedro

QUIET = {"progress": False, "eval_batch_size": 7, "resume": True}
CACHE = {"height": 48, "width": 64, "hair_removal": {"enabled": False}}


def splits_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": ["ISIC_3", "ISIC_1", "ISIC_2", "ISIC_4"],
            "label": [0, 1, 1, 0],
            "split": ["train", "val", "test", "train"],
            "fold": [0, -1, -1, 1],
        }
    )


def test_fingerprint_ignores_row_order_and_folds_but_not_split_or_label() -> None:
    splits = splits_frame()
    base = split_fingerprint(splits)
    assert len(base) == 64
    assert split_fingerprint(splits.iloc[::-1]) == base
    assert split_fingerprint(splits.assign(fold=[4, -1, -1, 3])) == base
    moved = splits.copy()
    moved.loc[0, "split"] = "test"
    assert split_fingerprint(moved) != base
    relabelled = splits.copy()
    relabelled.loc[1, "label"] = 0
    assert split_fingerprint(relabelled) != base
    with pytest.raises(ValueError, match=r"\['split'\]"):
        split_fingerprint(splits.drop(columns="split"))


def checkpoint(splits: pd.DataFrame, cache: dict) -> dict:
    return {"params": {SPLIT_KEY: split_fingerprint(splits)}, "preprocessing": {"cache": cache}}


def test_matching_checkpoint_passes_and_a_stale_one_names_what_to_rerun() -> None:
    splits = splits_frame()
    made = checkpoint(splits, CACHE)
    check_checkpoint_inputs(made, "classifier", "classifier_training", splits=splits)
    check_checkpoint_inputs(
        made, "classifier", "classifier_training", splits=splits, cache_preprocessing=dict(CACHE)
    )
    moved = splits.assign(split=["train", "train", "test", "val"])
    with pytest.raises(StaleInputError, match=r"other splits.*--pipelines classifier_training"):
        check_checkpoint_inputs(made, "classifier", "classifier_training", splits=moved)
    with pytest.raises(StaleInputError, match=r"`classifier` is stale.*\"height\": 40"):
        check_checkpoint_inputs(
            made, "classifier", "classifier_training", cache_preprocessing={**CACHE, "height": 40}
        )


def test_checkpoint_without_a_fingerprint_passes_the_split_check() -> None:
    check_checkpoint_inputs(
        {"params": {}}, "classifier", "classifier_training", splits=splits_frame()
    )


def test_cache_and_encoder_settings() -> None:
    check_cache_settings(CACHE, dict(CACHE))
    with pytest.raises(StaleInputError, match=r"`image_cache` is stale.*pipelines data_processing"):
        check_cache_settings(CACHE, {**CACHE, "width": 80})
    # The key that changed, not both whole settings.
    with pytest.raises(StaleInputError) as stale:
        check_cache_settings(CACHE, {**CACHE, "width": 80})
    assert f"(data_processing.preprocessing.width: {CACHE['width']!r} before, now 80)" in str(
        stale.value
    )
    pretrained = encoder_of({"architecture": {"encoder": "resnet18"}, "initial_weights": "none"})
    assert pretrained == {"name": "resnet18", "weights": "none"}
    check_encoder_settings(pretrained, {"name": "resnet18", "weights": "none"})
    with pytest.raises(StaleInputError, match=r"name='resnet18'.*encoder.name='efficientnet_b0'"):
        check_encoder_settings(pretrained, {"name": "efficientnet_b0", "weights": "none"})
    with pytest.raises(StaleInputError, match=r"weights='none'.*encoder.weights='timm'"):
        check_encoder_settings(pretrained, {"name": "resnet18", "weights": "timm"})
    with pytest.raises(StaleInputError, match=r"`classifier` is stale.*pipelines a,b"):
        check_encoder_settings(pretrained, {"name": "vit", "weights": "none"}, "classifier", "a,b")


def test_pretraining_settings_and_seed() -> None:
    made = {"params": {"seed": 3, "settings": {"contrastive_pretraining": {"temperature": 0.1}}}}
    check_pretraining_settings(made, {"temperature": 0.1, "progress": False})  # exempt key
    with pytest.raises(StaleInputError, match=r"`classifier` is stale.*temperature: 0.1 before"):
        check_pretraining_settings(made, {"temperature": 0.2}, "classifier", "x")
    with pytest.raises(StaleInputError, match=r"enabled and epochs > 0: True before, now False"):
        check_pretraining_settings(made, {"enabled": False})
    off = {"params": {"settings": {"contrastive_pretraining": {"epochs": 0, "temperature": 0.1}}}}
    check_pretraining_settings(off, {"enabled": False, "temperature": 0.5})  # no SupCon either way
    check_pretraining_settings({"params": {}}, {"temperature": 0.5})  # nothing recorded
    check_seed(made, 3, "classifier", "x")
    check_seed({"params": {}}, 5, "classifier", "x")
    with pytest.raises(StaleInputError, match=r"seed=3, but the parameters now say seed=4.*seed=3"):
        check_seed(made, 4, "classifier", "x")


def test_settings_compare_all_but_the_exempt_keys() -> None:
    then = {"epochs": 3, "lr": 0.1, "progress": True, "optim": {"wd": 0.0}}
    check_settings(then, {**then, "progress": False}, "g", "out", "p", frozenset({"progress"}))
    with pytest.raises(StaleInputError, match=r"`out` is stale.*g.epochs: 3 before, now 4; g.opt"):
        check_settings(then, {**then, "epochs": 4, "optim": {"wd": 1.0}}, "g", "out", "p")


def test_recorded_config_reads_what_it_can() -> None:
    assert recorded_config({"params": {"g": {"epochs": 1}}}, "g", Config).epochs == 1
    assert recorded_config({"params": {"g": {"gone": 1}}}, "g", Config) is None  # older key
    assert recorded_config({"params": {}}, "g", Config) is None
    # The filled-in record wins: a default changed in the code since still shows.
    filled = {"params": {"g": {}, "settings": {"g": {"epochs": 5}}}}
    assert recorded_config(filled, "g", Config).epochs == 5


def test_split_settings_are_compared_but_the_seed_and_warning_gap_are_not() -> None:
    made = {"settings": split_settings(SplitConfig(), ["a", "b"], seed=42)}
    assert made["settings"]["seed"] == 42 and "warn_share_gap" not in made["settings"]["split"]
    check_split_settings(made, SplitConfig(warn_share_gap=9.0), ["a", "b"])
    with pytest.raises(StaleInputError, match=r"data_processing.split.validation_fold: None b"):
        check_split_settings(made, SplitConfig(validation_fold=2), ["a", "b"])
    with pytest.raises(StaleInputError, match=r"classes: \['a', 'b'\] before.*data_processing`"):
        check_split_settings(made, SplitConfig(), ["a", "b", "c"])
    check_split_settings({"protocol": "older"}, SplitConfig(validation_fold=2), ["a"])


def test_a_split_seed_the_parameters_name_must_be_the_one_drawn() -> None:
    made = {"settings": split_settings(SplitConfig(), ["a", "b"], seed=42)}
    assert "seed" not in made["settings"]["split"]
    check_split_settings(made, SplitConfig(seed=42), ["a", "b"])  # drawn with the run's 42
    with pytest.raises(
        StaleInputError, match=r"split.seed: the splits were drawn with seed 42, now 7"
    ):
        check_split_settings(made, SplitConfig(seed=7), ["a", "b"])
    drawn = {"settings": split_settings(SplitConfig(seed=7), ["a", "b"], seed=7)}
    check_split_settings(drawn, SplitConfig(seed=7), ["a", "b"])
    check_split_settings(drawn, SplitConfig(), ["a", "b"])  # no split seed named: not compared
    # A summary recorded with the split seed among the split fields (as asdict gives them).
    fuller = {"settings": {**drawn["settings"], "split": {**drawn["settings"]["split"], "seed": 7}}}
    check_split_settings(fuller, SplitConfig(), ["a", "b"])


def test_splits_made_by_the_earlier_assignment_are_named_but_used(caplog) -> None:
    made = {"settings": split_settings(SplitConfig(), ["a", "b"], seed=42)}
    check_split_settings(made, SplitConfig(), ["a", "b"])
    assert "lesion assignment" not in caplog.text
    earlier = {"settings": {k: v for k, v in made["settings"].items() if k != "assignment"}}
    check_split_settings(earlier, SplitConfig(), ["a", "b"])
    assert "made before 2026-12-06, by an earlier lesion assignment" in caplog.text
    assert "`kedro run --pipelines data_processing` remakes them" in caplog.text
    caplog.clear()
    check_split_settings({"protocol": "older, no settings"}, SplitConfig(), ["a"])
    assert "made before 2026-12-06" in caplog.text
    caplog.clear()
    later = {"settings": {**made["settings"], "assignment": "another"}}
    check_split_settings(later, SplitConfig(), ["a", "b"])
    assert "by the lesion assignment 'another', not today's" in caplog.text


class _File:
    def __init__(self, size: int) -> None:
        self._size = size

    def size(self) -> int:
        return self._size


COLUMNS = ["lesion_id", "image_id", "dx", "age"]


def _raw(rows: list[list[str | None]], sizes: dict[str, int], recorded: dict | None = None) -> dict:
    """The record of ``rows`` and files of ``sizes``; of ``recorded``'s files only, if given
    (as the check reads the raw data now)."""
    files = None if recorded is None else recorded["images"]
    images = {k: _File(v) for k, v in sizes.items()}
    return raw_data_record(images, pd.DataFrame(rows, columns=COLUMNS), files)


ROWS = [
    ["HAM_1", "ISIC_1", "nv", "50.0"],
    ["HAM_1", "ISIC_2", "nv", None],
    ["HAM_2", "ISIC_3", "mel", "70"],
]
SIZES = {"part_1/ISIC_1.jpg": 10, "part_1/ISIC_2.jpg": 20, "part_2/ISIC_3.jpg": 30}


def test_the_raw_data_record_ignores_order_and_names_every_change():
    then = _raw(ROWS, SIZES)
    assert then["metadata_rows"] == 3 and len(then["metadata"]) == 3
    assert then["images"] == SIZES
    # Rows and columns in another order, files listed in another order, a blank line: the
    # same data.
    frame = pd.DataFrame([*ROWS[::-1], ["", "", None, ""], [" ", "", None, "  "]], columns=COLUMNS)
    shuffled = raw_data_record(
        {k: _File(v) for k, v in reversed(SIZES.items())},
        frame[["age", "dx", "image_id", "lesion_id"]],
    )
    assert shuffled == then
    check_raw_data(then, shuffled, "kedro run")
    # A corrected label, an age written in, a row removed, a row added; one image replaced
    # by another of another size, one gone; a file no row used then (not recorded) added.
    rows = [
        ["HAM_1", "ISIC_1", "bkl", "50.0"],
        ["HAM_1", "ISIC_2", "nv", "45"],
        ["HAM_4", "ISIC_4", "df", "30"],
    ]
    files = {"part_1/ISIC_1.jpg": 11, "part_1/ISIC_2.jpg": 20, "part_2/ISIC_4.jpg": 40}
    now = _raw(rows, files, recorded=then)
    assert "part_2/ISIC_4.jpg" not in now["images"]
    with pytest.raises(StaleInputError) as caught:
        check_raw_data(then, now, "kedro run --env demo", "meta.csv")
    message = str(caught.value)
    assert "the raw data at hand changed since data_processing read them: " in message
    assert (
        "meta.csv, the rows of image_id: 2 changed (ISIC_1, ISIC_2); 1 added (ISIC_4); " in message
    )
    assert "1 removed (ISIC_3)" in message
    assert (
        "image files: 1 changed size (part_1/ISIC_1.jpg); 1 missing (part_2/ISIC_3.jpg)" in message
    )
    assert "`kedro run --env demo --pipelines data_processing`, then the stages" in message
    assert "or the whole `kedro run --env demo` (any other --params of yours in the same" in message
    # A column renamed or added: said as such, not as every row changed.
    renamed = raw_data_record(
        {k: _File(v) for k, v in SIZES.items()},
        pd.DataFrame(ROWS, columns=["lesion_id", "image_id", "diagnosis", "age"]),
    )
    with pytest.raises(StaleInputError) as caught:
        check_raw_data(then, renamed, "kedro run")
    assert (
        "the metadata's columns changed (added ['diagnosis']; removed ['dx']): they are now "
        "['age', 'diagnosis', 'image_id', 'lesion_id'], then ['age', 'dx', 'image_id', "
        "'lesion_id']" in str(caught.value)
    )
    assert "the rows of image_id" not in str(caught.value)
    # Many changes: the first few named, then "..."; an empty image_id named as such.
    many = [[f"HAM_{k}", f"ISIC_{k}", "nv", ""] for k in range(5, 13)] + [["H", "", "nv", ""]]
    expected = r"9 added \(<empty image_id>, ISIC_10, ISIC_11, ISIC_12, ISIC_5, \.\.\.\)"
    with pytest.raises(StaleInputError, match=expected):
        check_raw_data(then, _raw(ROWS + many, SIZES), "kedro run")


def test_the_raw_data_record_names_another_folder_and_knows_data_not_at_hand():
    then = _raw(ROWS, SIZES)
    then["folder"] = "/data/HAM10000"
    now = _raw([ROWS[0]], SIZES)
    now["folder"] = "/elsewhere/HAM10000"
    with pytest.raises(
        StaleInputError,
        match=r"raw data in /elsewhere/HAM10000 differ from "
        r"those data_processing read in /data/HAM10000: .*2 removed",
    ):
        check_raw_data(then, now, "kedro run")
    # None of the files data_processing used is there: not at hand (processed data copied to
    # another machine), not 3 files missing.
    assert raw_data_at_hand(then, _raw(ROWS, SIZES, recorded=then))
    assert not raw_data_at_hand(then, _raw(ROWS, {}, recorded=then))
    assert raw_data_at_hand(_raw(ROWS, {}), _raw(ROWS, {}))

    # The folder comes from the loaders' paths.
    class Located(_File):
        def __init__(self, size: int, path: str) -> None:
            super().__init__(size)
            self.path = path

    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    images = {"part_1/ISIC_1.jpg": Located(1, "/data/HAM10000/part_1/ISIC_1.jpg")}
    assert raw_data_record(images, frame)["folder"] == "/data/HAM10000"


def test_the_metadata_is_compared_when_no_image_used_is_at_hand():
    then = _raw(ROWS, SIZES)
    elsewhere = _raw([ROWS[0], ROWS[1]], {}, recorded=then)
    assert not raw_data_at_hand(then, elsewhere)
    check_raw_data(then, _raw(ROWS, {}, recorded=then), "kedro run", images=False)
    with pytest.raises(StaleInputError, match=r"1 removed \(ISIC_3\)\. The image cache"):
        check_raw_data(then, elsewhere, "kedro run", images=False)


def test_the_rows_fingerprint_survives_parquet_and_tells_rows_apart(tmp_path):
    frame = pd.DataFrame(
        {
            "image_id": ["ISIC_2", "ISIC_1"],
            "age": [50.0, None],
            "label": [1, 0],
            "sex": pd.array(["male", None], dtype="string"),
        }
    )
    frame.to_parquet(tmp_path / "f.parquet")
    back = pd.read_parquet(tmp_path / "f.parquet")
    assert rows_fingerprint(back) == rows_fingerprint(frame)
    assert rows_fingerprint(frame.iloc[::-1][["sex", "label", "age", "image_id"]]) == (
        rows_fingerprint(frame)
    )
    assert rows_fingerprint(frame.assign(label=[1, 1])) != rows_fingerprint(frame)


class _Cache:
    def __init__(self, ids: list[str]) -> None:
        self.image_ids = tuple(ids)


def test_the_record_refuses_outputs_of_different_runs():
    validated = pd.DataFrame(
        {"image_id": ["a", "b", "c"], "label": [0, 1, 1], "file": ["a.jpg", "b.jpg", "c.jpg"]}
    )
    read = {"validated_sha256": rows_fingerprint(validated)}
    cached = validated.iloc[[0, 2]].reset_index(drop=True)  # b did not decode
    splits = cached[["image_id", "label"]].assign(split=["train", "test"])
    check_made_from(read, validated, _Cache(["a", "c"]), cached, splits)
    stale = r"outputs come from different runs.*Rerun `kedro run --pipelines data_processing`"
    # Validation ran again (another label for c) but decoding stopped: the cache is older.
    relabelled = validated.assign(label=[0, 1, 0])
    with pytest.raises(StaleInputError, match=rf"{stale[:30]}.*other validated rows"):
        check_made_from(
            {"validated_sha256": rows_fingerprint(relabelled)},
            relabelled,
            _Cache(["a", "c"]),
            cached,
            splits,
        )
    # validated_metadata from another validation than raw_data_read.
    with pytest.raises(StaleInputError, match=r"not the table validation wrote"):
        check_made_from(read, relabelled, _Cache(["a", "c"]), cached, splits)
    # The cache and its table out of step; splits of another cache.
    with pytest.raises(StaleInputError, match=r"does not list the image cache's images"):
        check_made_from(read, validated, _Cache(["a"]), cached, splits)
    with pytest.raises(StaleInputError, match=r"`splits` were made from another image cache"):
        check_made_from(read, validated, _Cache(["a", "c"]), cached, splits.iloc[:1])
    # Before a run, only what it keeps: the validated rows, or those and the cache.
    check_made_from(read, validated)
    with pytest.raises(StaleInputError, match=r"other validated rows"):
        check_made_from(read, validated, _Cache(["a", "c"]), cached.assign(label=[0, 0]))


def test_the_raw_data_record_tells_duplicate_ids_and_missing_sizes_apart():
    twice = _raw([*ROWS, ROWS[0]], SIZES)
    assert twice["metadata_rows"] == 4 and twice != _raw(ROWS, SIZES)
    with pytest.raises(StaleInputError, match=r"1 changed \(ISIC_1\)"):
        check_raw_data(_raw(ROWS, SIZES), twice, "kedro run")

    # A loader without size() (not a file) counts as None; a broken link too; a file asked
    # for and not listed too.
    class Broken:
        def size(self) -> int:
            raise FileNotFoundError("gone")

    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    images = {"a.jpg": lambda: b"", "b.jpg": Broken()}
    assert raw_data_record(images, frame, ["a.jpg", "b.jpg", "c.jpg"])["images"] == {
        "a.jpg": None,
        "b.jpg": None,
        "c.jpg": None,
    }


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = 2


@pytest.mark.slow
def test_each_stage_refuses_upstream_outputs_made_from_other_inputs(after_full_run) -> None:
    kedro_project = after_full_run  # everything run, consistent
    # Other split settings than the splits were made with, in a run that does not make them.
    fold = {"data_processing": {"split": {"validation_fold": 1}}}
    with pytest.raises(StaleInputError, match=r"`splits` is stale.*validation_fold: None bef"):
        run_kedro(kedro_project, "classifier_training", **fold)
    # A re-split (another seed) without retraining.
    run_kedro(kedro_project, "data_processing", seed=7)
    with pytest.raises(StaleInputError, match=r"`classifier` is stale.*other splits"):
        run_kedro(kedro_project, "reporting")
    with pytest.raises(StaleInputError, match=r"`pretrained_encoder` is stale.*contrastive_pre"):
        run_kedro(kedro_project, "classifier_training")
    # Only the split differs from the saved run, and resume names it.
    with pytest.raises(ValueError, match=r"cannot resume.*differs in split_sha256: '"):
        run_kedro(
            kedro_project, "contrastive_pretraining", contrastive_pretraining={"resume": True}
        )
    # Preprocessing changed but the cache not remade.
    with pytest.raises(StaleInputError, match=r"`image_cache` is stale.*data_processing"):
        run_kedro(
            kedro_project, "classifier_training", data_processing={"preprocessing": {"height": 40}}
        )
    with pytest.raises(StaleInputError, match=r"`image_cache` is stale") as cache_early:
        stale_cache = {"preprocessing": {"height": 40}}
        run_kedro(kedro_project, "contrastive_pretraining", data_processing=stale_cache)
    assert "check_cache_current" in {entry.name for entry in cache_early.traceback}
    # Other SupCon settings than the pretrained encoder was made with, or other classifier
    # settings than the classifier was trained with (the report would list them).
    with pytest.raises(
        StaleInputError, match=r"contrastive_pretraining.temperature: 0.1 bef"
    ) as early:
        supcon = {"temperature": 0.2}
        run_kedro(kedro_project, "classifier_training", contrastive_pretraining=supcon)
    # Refused by the hook before any node ran (train_classifier had loaded its inputs and
    # kedro-mlflow opened a run that ended FAILED).
    assert "check_training_inputs_current" in {entry.name for entry in early.traceback}
    with pytest.raises(StaleInputError, match=r"enabled and epochs > 0: True before, now False"):
        run_kedro(kedro_project, "classifier_training", contrastive_pretraining={"enabled": False})
    # Another encoder asked for than the pretrained one was built from.
    with pytest.raises(StaleInputError, match=r"encoder.name='resnet18'"):
        run_kedro(kedro_project, "classifier_training", encoder={"name": "resnet18"})
    # Retraining on the new split makes everything consistent again.
    run_kedro(kedro_project, "contrastive_pretraining")
    run_kedro(kedro_project, "classifier_training")
    with pytest.raises(StaleInputError, match=r"classifier_training.head.dropout: 0.3 before"):
        run_kedro(kedro_project, "reporting", classifier_training={"head": {"dropout": 0.5}})
    # The classifier was fine-tuned from an encoder made with other encoder/SupCon settings
    # or trained with another seed than the parameters now say (the report lists them).
    with pytest.raises(StaleInputError, match=r"`classifier` is stale.*contrastive_pretraining.t"):
        run_kedro(kedro_project, "reporting", contrastive_pretraining={"temperature": 0.2})
    with pytest.raises(StaleInputError, match=r"encoder name=.*encoder.name='resnet18'"):
        run_kedro(kedro_project, "reporting", encoder={"name": "resnet18"})
    with pytest.raises(StaleInputError, match=r"seed=42, but the parameters now say seed=7") as no:
        run_kedro(kedro_project, "reporting", seed=7)
    # Refused by the hook before any node ran (and before kedro-mlflow opened a run).
    assert "check_classifier_current" in {entry.name for entry in no.traceback}
    # Settings that do not change the weights or the split may differ.
    supcon_speed = {"progress": False, "embed_batch_size": 5}
    run_kedro(
        kedro_project,
        "reporting",
        reporting={"tta": "none"},
        classifier_training=QUIET,
        contrastive_pretraining=supcon_speed,
        data_processing={"split": {"warn_share_gap": 50.0}},
    )


def test_a_classifier_stale_in_two_ways_names_both_at_once() -> None:
    """A user who changed the loss and the seed learnt one per run before."""
    from dataclasses import asdict

    from skin_lesion.classification import ClassifierConfig
    from skin_lesion.config import from_dict
    from skin_lesion.pipelines.reporting.nodes import check_classifier_settings

    trained = asdict(from_dict(ClassifierConfig, {"loss": {"name": "cross_entropy"}}, "t"))
    classifier = {"params": {"seed": 7, "settings": {"classifier_training": trained}}}
    with pytest.raises(StaleInputError) as caught:
        check_classifier_settings(classifier, training={"loss": {"name": "focal"}}, seed=42)
    message = str(caught.value)
    assert message.startswith("2 inputs or settings differ")
    assert "1. `classifier` is stale: it was made with other classifier_training" in message
    assert "loss.name: 'cross_entropy' before, now 'focal'" in message
    assert "2. `classifier` is stale: it was trained with seed=7" in message
    # One difference alone keeps its own message, unnumbered.
    with pytest.raises(StaleInputError, match=r"^`classifier` is stale: it was trained"):
        check_classifier_settings(classifier, training={"loss": {"name": "cross_entropy"}}, seed=42)


def test_all_of_within_all_of_counts_and_numbers_every_difference_once() -> None:
    def stale(what: str):
        def check() -> None:
            raise StaleInputError(f"`{what}` is stale")

        return check

    inner = lambda: all_of(stale("b"), stale("c"))  # noqa: E731
    with pytest.raises(StaleInputError) as caught:
        all_of(stale("a"), inner, lambda: None)
    assert str(caught.value) == (
        "3 inputs or settings differ from what the output was made with:\n"
        "  1. `a` is stale\n  2. `b` is stale\n  3. `c` is stale"
    )


def test_a_refusal_names_the_pipelines_to_rerun_as_data_not_only_in_its_words() -> None:
    """The notebooks took the pipelines to rerun from the message's "`kedro run --pipelines
    X`" text: ``pipelines`` says it whatever the wording (and where the text names none)."""
    import pickle

    from skin_lesion.lineage import (
        ENCODER_KEY,
        PIPELINE_ORDER,
        PREDICTED_BY,
        VALIDATION_KEY,
        check_fine_tuned_from,
        check_history,
        check_operating_point,
        check_validation_settings,
    )

    splits = splits_frame()
    moved = splits.assign(split=["train", "train", "test", "val"])
    both = "contrastive_pretraining,classifier_training"
    cases = [
        (
            lambda: check_checkpoint_inputs(checkpoint(splits, CACHE), "c", both, splits=moved),
            ("contrastive_pretraining", "classifier_training"),
        ),
        (lambda: check_cache_settings(CACHE, {**CACHE, "height": 40}), ("data_processing",)),
        (lambda: check_seed({"params": {"seed": 1}}, 2, "c", both), tuple(both.split(","))),
        (lambda: check_operating_point({PREDICTED_BY: "a"}, "b", "none"), ("reporting",)),
        (
            lambda: check_fine_tuned_from({"params": {ENCODER_KEY: "a"}}, "b"),
            ("classifier_training", "reporting"),
        ),
        # The message names no command: "Rerun the pipeline that makes `classifier`".
        (lambda: check_history([1], {"history": [2]}, "h", "classifier"), ("classifier_training",)),
        (
            lambda: check_history([1], {"history": [2]}, "h", "pretrained_encoder"),
            ("contrastive_pretraining",),
        ),
        # "Rerun `kedro run`": the whole run.
        (
            lambda: check_validation_settings(
                {VALIDATION_KEY: {"max_age": 90}}, {"max_age": 80}, "kedro run"
            ),
            PIPELINE_ORDER,
        ),
    ]
    for refuse, pipelines in cases:
        with pytest.raises(StaleInputError) as caught:
            refuse()
        assert caught.value.pipelines == pipelines, str(caught.value)
        for named in re.findall(r"`kedro run --pipelines ([\w,]+)", str(caught.value)):
            assert tuple(named.split(",")) == pipelines  # the words say the same
    # Several at once: each pipeline once, in the order they run.
    with pytest.raises(StaleInputError) as caught:
        all_of(cases[3][0], cases[1][0], cases[0][0])
    assert caught.value.pipelines == PIPELINE_ORDER
    assert pickle.loads(pickle.dumps(caught.value)).pipelines == PIPELINE_ORDER  # ParallelRunner

    # A refusal raised without them (code of its own) says so: None, not "nothing to rerun".
    def own() -> None:
        raise StaleInputError("`x` is stale")

    with pytest.raises(StaleInputError) as caught:
        all_of(cases[1][0], own)
    assert caught.value.pipelines is None


def _cache(pixels: dict[str, int]):
    from skin_lesion.images import ImageCache

    images = np.stack([np.full((4, 6, 3), value, np.uint8) for value in pixels.values()])
    return ImageCache(images, tuple(pixels), {"height": 4, "width": 6})


def _fusion(ages: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": list(ages),
            "age": list(ages.values()),
            "sex": ["male"] * len(ages),
            "localization": ["back"] * len(ages),
            "dx": ["nv"] * len(ages),
        }
    )


def test_the_data_fingerprint_covers_train_and_val_pixels_and_fusion_rows_only() -> None:
    splits = splits_frame()  # ISIC_3, ISIC_4 train; ISIC_1 val; ISIC_2 test
    pixels = {"ISIC_1": 1, "ISIC_2": 2, "ISIC_3": 3, "ISIC_4": 4}
    ages = {"ISIC_1": 40.0, "ISIC_2": 50.0, "ISIC_3": 60.0, "ISIC_4": 70.0}
    then = data_fingerprint(_cache(pixels), splits, _fusion(ages))
    assert set(then) == {"images", "metadata"}
    assert set(data_fingerprint(_cache(pixels), splits)) == {"images"}
    # Row order, columns fusion does not read, and test images change nothing.
    reordered = _cache(dict(reversed(list(pixels.items()))))
    other_dx = _fusion(ages).assign(dx="mel").iloc[::-1]
    assert data_fingerprint(reordered, splits, other_dx) == then
    test_changed = _cache({**pixels, "ISIC_2": 9})
    assert data_fingerprint(test_changed, splits, _fusion({**ages, "ISIC_2": 5.0})) == then
    # One train pixel, one val pixel or one train age does.
    for changed in ({**pixels, "ISIC_3": 9}, {**pixels, "ISIC_1": 9}):
        now = data_fingerprint(_cache(changed), splits, _fusion(ages))
        assert now["images"] != then["images"] and now["metadata"] == then["metadata"]
    now = data_fingerprint(_cache(pixels), splits, _fusion({**ages, "ISIC_4": 71.0}))
    assert now["images"] == then["images"] and now["metadata"] != then["metadata"]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['localization'\]"):
        data_fingerprint(_cache(pixels), splits, _fusion(ages).drop(columns="localization"))


def test_a_checkpoint_trained_on_other_data_is_refused_naming_which() -> None:
    splits = splits_frame()
    pixels = {"ISIC_1": 1, "ISIC_2": 2, "ISIC_3": 3, "ISIC_4": 4}
    ages = {"ISIC_1": 40.0, "ISIC_2": 50.0, "ISIC_3": 60.0, "ISIC_4": 70.0}
    recorded = data_fingerprint(_cache(pixels), splits, _fusion(ages))
    checkpoint = {"params": {SPLIT_KEY: split_fingerprint(splits), DATA_KEY: recorded}}
    check_checkpoint_inputs(checkpoint, "classifier", "classifier_training", data=recorded)
    now = data_fingerprint(_cache({**pixels, "ISIC_3": 9}), splits, _fusion({**ages, "ISIC_3": 1}))
    with pytest.raises(StaleInputError) as caught:
        check_checkpoint_inputs(checkpoint, "classifier", "classifier_training", data=now)
    message = str(caught.value)
    assert message.startswith("`classifier` is stale: it was trained on other train/val images")
    assert f"{recorded['images'][:12]} then, {now['images'][:12]} now" in message
    assert "and it was trained on other train/val age/sex/localization values" in message
    assert "`kedro run --pipelines classifier_training`" in message
    # A classifier without fusion records no metadata, so only the images are compared.
    images_only = {"params": {DATA_KEY: {"images": recorded["images"]}}}
    metadata_changed = {**recorded, "metadata": now["metadata"]}
    check_checkpoint_inputs(images_only, "classifier", "classifier_training", data=metadata_changed)
    # Checkpoints from before it was recorded pass; other splits are named, not also the data.
    check_checkpoint_inputs({"params": {}}, "classifier", "classifier_training", data=now)
    other_split = splits.assign(split=["train", "train", "test", "val"])
    with pytest.raises(StaleInputError) as caught:
        check_checkpoint_inputs(
            checkpoint,
            "classifier",
            "classifier_training",
            splits=other_split,
            data=data_fingerprint(_cache(pixels), other_split),
        )
    assert "other splits" in str(caught.value) and "train/val images" not in str(caught.value)
    # Other preprocessing makes other pixels: named as such, not as a replaced image.
    made_with = {**checkpoint, "preprocessing": {"cache": {"clahe": False}}}
    with pytest.raises(StaleInputError) as caught:
        check_checkpoint_inputs(
            made_with, "classifier", "c", cache_preprocessing={"clahe": True}, data=now
        )
    message = str(caught.value)
    assert "image cache made with" in message and "train/val images" not in message
    assert "age/sex/localization" in message  # the edited age still counts


@pytest.mark.slow
def test_a_model_trained_on_other_images_is_refused_after_data_processing_reran(
    after_full_run,
) -> None:
    """Replace a train image and rerun data_processing, as the raw-data check advises: the
    split and the settings are unchanged, and the stages after used the old models."""
    from PIL import Image

    kedro_project = after_full_run
    data = kedro_project / "data" / "test"
    splits = pd.read_parquet(data / "05_model_input" / "splits.parquet")
    raw = data / "01_raw" / "HAM10000"

    def file_of(split: str) -> Path:
        image_id = sorted(splits.loc[splits["split"] == split, "image_id"])[0]
        return next(raw.glob(f"*/{image_id}.jpg"))

    def replace(path: Path) -> bytes:
        original = path.read_bytes()
        with Image.open(path) as image:
            image.transpose(Image.Transpose.ROTATE_180).save(path, quality=95)
        return original

    # A test image replaced: the models never saw it, so reporting scores it as it now is,
    # once it predicts again; the old predictions and the metrics made of them are refused.
    test_image = file_of("test")
    replace(test_image)
    run_kedro(kedro_project, "data_processing")
    with pytest.raises(
        StaleInputError,
        match=rf"`test_predictions` is stale: .*1 now with other pixels .*\({test_image.stem}\)",
    ):
        run_kedro(kedro_project, "reporting", from_nodes=["evaluate_test"])
    with pytest.raises(StaleInputError, match=r"`test_metrics` is stale: it scores predictions"):
        run_kedro(kedro_project, "reporting", node_names=["build_report"])
    run_kedro(kedro_project, "reporting", reporting={"tta": "none"})
    # A train image replaced.
    train_image = file_of("train")
    original = replace(train_image)
    run_kedro(kedro_project, "data_processing")
    with pytest.raises(
        StaleInputError,
        match=r"`classifier` is stale: it was trained on other "
        r"train/val images",
    ) as caught:
        run_kedro(kedro_project, "reporting")
    assert "check_classifier_current" in {entry.name for entry in caught.traceback}
    # A run that reads neither the cache nor the splits (it refitted the operating point on
    # the old predictions and reported the classifier of other data).
    with pytest.raises(StaleInputError, match=r"other train/val images"):
        run_kedro(kedro_project, "reporting", from_nodes=["evaluate_test"])
    with pytest.raises(
        StaleInputError, match=r"`pretrained_encoder` is stale: it was trained on other train/val"
    ) as caught:
        run_kedro(kedro_project, "classifier_training")
    assert "check_training_inputs_current" in {entry.name for entry in caught.traceback}
    with pytest.raises(ValueError, match=r"cannot resume.*data_sha256.images.*data_processing ran"):
        run_kedro(
            kedro_project, "contrastive_pretraining", contrastive_pretraining={"resume": True}
        )
    # The old image back, data_processing rerun: the same fingerprints, nothing refused.
    train_image.write_bytes(original)
    run_kedro(kedro_project, "data_processing")
    run_kedro(kedro_project, "reporting", reporting={"tta": "none"})


def test_predictions_and_their_metrics_are_refused_once_the_pixels_they_scored_change() -> None:
    """The classifier and its train/val data unchanged, a test image replaced: the old
    predictions (and the metrics fitted and scored on them) were taken as the current."""
    pixels = {"ISIC_1": 1, "ISIC_2": 2, "ISIC_3": 3, "ISIC_4": 4}
    cache = _cache(pixels)
    digests = dict(zip(cache.image_ids, cache.digests(), strict=True))
    made = pd.DataFrame(
        {
            "image_id": ["ISIC_3", "ISIC_4"],
            "classifier_sha256": "c",
            "tta": "none",
            "image_sha256": [digests["ISIC_3"], digests["ISIC_4"]],
        }
    )
    check_predictions(made, "test_predictions", "c", "none", digests)
    check_predictions(made.drop(columns="image_sha256"), "test_predictions", "c", "none")
    with pytest.raises(StaleInputError, match=r"does not record the pixels"):
        check_predictions(made.drop(columns="image_sha256"), "test_predictions", "c", "none", {})
    now = dict(zip(cache.image_ids, _cache({**pixels, "ISIC_4": 9}).digests(), strict=True))
    with pytest.raises(StaleInputError, match=r"1 now with other pixels in the image cache "):
        check_predictions(made, "test_predictions", "c", "none", now)
    with pytest.raises(StaleInputError, match=r"1 no longer in the image cache \(ISIC_4\)"):
        check_predictions(made, "test_predictions", "c", "none", {"ISIC_3": digests["ISIC_3"]})
    # test_metrics: the val and test rows' pixels together, in any order.
    splits = pd.DataFrame({"image_id": list(pixels), "split": ["train", "val", "test", "test"]})
    val = made.iloc[:0].assign(image_id=["ISIC_2"], image_sha256=[digests["ISIC_2"]])
    metrics = {"scored_images_sha256": scored_pixels(val, made)}
    assert metrics["scored_images_sha256"] == scored_pixels(made.iloc[::-1], val)
    check_scored_pixels(metrics, splits, digests)
    check_scored_pixels({}, splits, now)  # made before they recorded it
    assert scored_pixels(val, made.drop(columns="image_sha256")) is None
    for changed in ({**pixels, "ISIC_4": 9}, {**pixels, "ISIC_2": 9}):
        now = dict(zip(cache.image_ids, _cache(changed).digests(), strict=True))
        with pytest.raises(StaleInputError, match=r"`test_metrics` is stale"):
            check_scored_pixels(metrics, splits, now)
    # A train image changing is the classifier's business (check_checkpoint_inputs), not this.
    now = dict(zip(cache.image_ids, _cache({**pixels, "ISIC_1": 9}).digests(), strict=True))
    check_scored_pixels(metrics, splits, now)


def test_predictions_cut_short_are_refused_not_scored_as_a_smaller_split() -> None:
    """A test_predictions.csv cut at a row boundary (a full disk, a kill mid-write) reads
    as a valid table: `--from-nodes evaluate_test` scored, calibrated and exported 31 of the
    62 test images without a word."""
    made = pd.DataFrame({"image_id": ["ISIC_1", "ISIC_2"], "classifier_sha256": "c", "tta": "none"})
    check_predictions(made, "test_predictions", "c", "none", expected=["ISIC_2", "ISIC_1"])
    with pytest.raises(StaleInputError, match=r"split's 3 images.*1 missing \(ISIC_3\)"):
        check_predictions(
            made, "test_predictions", "c", "none", expected=["ISIC_1", "ISIC_2", "ISIC_3"]
        )
    with pytest.raises(StaleInputError, match=r"1 not of that split \(ISIC_2\)"):
        check_predictions(made, "test_predictions", "c", "none", expected=["ISIC_1"])
    twice = pd.concat([made, made.iloc[:1]])
    with pytest.raises(StaleInputError, match=r"1 listed twice \(ISIC_1\)"):
        check_predictions(twice, "test_predictions", "c", "none", expected=["ISIC_1", "ISIC_2"])
