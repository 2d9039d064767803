"""Inference on generated images: the pipeline, the command, and agreement with reporting."""

import contextlib
import hashlib
import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from tests.conftest import copy_full_run, run_kedro

from skin_lesion.calibration import apply_temperature
from skin_lesion.checkpoints import load_checkpoint, state_fingerprint
from skin_lesion.command import main
from skin_lesion.lineage import split_fingerprint

pytestmark = pytest.mark.slow
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


class _Records(logging.Handler):
    """Collects the records of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def caplog_at_warning():
    """The skin_lesion warnings logged inside the block (kedro's logging setup, which a
    session applies, leaves pytest's caplog handler out, so attach one directly)."""
    handler, logger = _Records(), logging.getLogger("skin_lesion")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def trained(kedro_project, full_run_outputs):
    """A project that has run every training and reporting pipeline (TTA off, to compare):
    a copy of one such run, made once per session."""
    return copy_full_run(kedro_project, full_run_outputs(reporting={"tta": "none"}))


def test_inference_matches_reporting_and_sets_bad_files_aside(trained, tmp_path, monkeypatch):
    root = trained / "data" / "test"
    raw = root / "01_raw" / "HAM10000"
    test = pd.read_csv(root / "07_model_output" / "test_predictions.csv")
    folder = tmp_path / "new images"
    folder.mkdir()
    for image_id in test["image_id"]:
        shutil.copy(next(raw.rglob(f"{image_id}.jpg")), folder / f"{image_id}.jpg")
    (folder / "notes.png").write_bytes(b"this is not a png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "scan.tif").write_bytes(b"a tif")  # left out, and said so in the rejects
    # Two images whose overlays would share a name: x/y.jpg and x__y.jpg.
    first = folder / f"{test['image_id'][0]}.jpg"
    (folder / "x").mkdir()
    shutil.copy(first, folder / "x" / "y.jpg")
    shutil.copy(first, folder / "x__y.jpg")

    from skin_lesion import inference as library

    explained, explain = [], library.explain

    def spy(*args, **kwargs):
        explained.append(kwargs["tta"])
        return explain(*args, **kwargs)

    monkeypatch.setattr(library, "explain", spy)
    run_kedro(trained, "inference", inference={"input_dir": str(folder), "gradcam": True})
    out = pd.read_csv(root / "07_model_output" / "inference_predictions.csv")
    rejects = pd.read_csv(root / "07_model_output" / "inference_rejects.csv")
    assert sorted(rejects["image"]) == ["empty.jpg", "notes.png", "scan.tif"]
    # Each row names the bytes it scored, as `sha256sum` does (the same in parts, below).
    assert list(out["file_sha256"]) == [
        hashlib.sha256((folder / image).read_bytes()).hexdigest() for image in out["image"]
    ]
    # The overlays explain the predictions as they were made: with their TTA (here the
    # operating point's, none; another given is passed on as well, at the end).
    assert explained and set(explained) == set(out["tta"])
    assert rejects["reason"].str.len().min() > 0
    assert (
        rejects.set_index("image")
        .loc["scan.tif", "reason"]
        .startswith("not a .jpg/.jpeg/.png file: left out")
    )
    overlays = sorted(p.name for p in (root / "07_model_output" / "inference_gradcam").iterdir())
    expected = [f"{i}.jpg.png" for i in test["image_id"]] + ["x__y.jpg.png", "x__y.jpg~2.png"]
    assert overlays == sorted(expected)
    out = out[~out["image"].isin(["x/y.jpg", "x__y.jpg"])]

    metrics = json.loads((root / "08_reporting" / "test_metrics.json").read_text())
    point = metrics["operating_point"]
    expected = apply_temperature(test[[f"p_{c}" for c in CLASSES]].to_numpy(), point["temperature"])
    out = out.assign(image_id=out["image"].str.replace(".jpg", "", regex=False))
    out = out.set_index("image_id").loc[test["image_id"]]
    np.testing.assert_allclose(out[[f"p_{c}" for c in CLASSES]].to_numpy(), expected, atol=1e-4)
    assert list(out["predicted"]) == [CLASSES[k] for k in expected.argmax(1)]
    assert (out["melanoma_flag"] == (expected[:, 4] >= point["melanoma_threshold"])).all()

    # In parts of 4 images (inference.chunk_size), holding one part's images at a time and
    # decoding Grad-CAM's again: the same predictions, rejects and overlays.
    whole = {
        name: pd.read_csv(root / "07_model_output" / f"{name}.csv")
        for name in ("inference_predictions", "inference_rejects")
    }
    gradcam = root / "07_model_output" / "inference_gradcam"
    pictures = {p.name: p.read_bytes() for p in gradcam.iterdir()}
    assert len(whole["inference_predictions"]) > 8  # so that there are several parts
    parts = {"input_dir": str(folder), "gradcam": True, "chunk_size": 4}
    run_kedro(trained, "inference", inference=parts)
    for name, frame in whole.items():
        again = pd.read_csv(root / "07_model_output" / f"{name}.csv")
        pd.testing.assert_frame_equal(again, frame, check_exact=False, atol=1e-6)
    assert {p.name: p.read_bytes() for p in gradcam.iterdir()} == pictures

    few = tmp_path / "few"
    few.mkdir()
    shutil.copy(first, few / first.name)
    explained.clear()
    flips = {"input_dir": str(few), "gradcam": True, "tta": "flips"}
    run_kedro(trained, "inference", inference=flips)
    assert explained == ["flips"]


def test_command_prints_a_table_and_writes_csv(trained, tmp_path, capsys):
    raw = trained / "data" / "test" / "01_raw" / "HAM10000"
    images = sorted(raw.rglob("*.jpg"))[:3]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    csv = tmp_path / "out.csv"
    code = main(
        [
            "predict",
            *map(str, images),
            str(bad),
            "--csv",
            str(csv),
            # Given to an image-only classifier, the metadata is not used (with a warning).
            "--metadata",
            str(raw / "HAM10000_metadata.csv"),
            "--checkpoint",
            str(trained / "data/test/06_models/classifier.pt"),
            "--metrics",
            str(trained / "data/test/08_reporting/test_metrics.json"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    lines = captured.out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["image"])
    assert lines[start].split() == ["image", "predicted", "p_mel", "melanoma_flag", "confidence"]
    rows = [line.split() for line in lines[start + 1 : start + 4]]
    assert [r[0] for r in rows] == [str(p) for p in images]
    assert all(r[1] in CLASSES and r[3] in {"True", "False"} for r in rows)
    assert "rejected" in captured.err and "bad.jpg" in captured.err
    written = pd.read_csv(csv)
    assert len(written) == 3 and (written["metadata"] == "unused").all()
    # Each row names the classifier that made it, as the operating point does.
    metrics = json.loads((trained / "data/test/08_reporting/test_metrics.json").read_text())
    assert set(written["classifier_sha256"]) == {metrics["operating_point"]["classifier_sha256"]}
    assert list(written["file_sha256"]) == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in images
    ]
    # A full disk mid-write: the message, and the previous CSV whole (it was left cut short).
    before = csv.read_bytes()
    real = pd.DataFrame.to_csv

    def half_then_full(frame, file, **kwargs):
        real(frame.iloc[: len(frame) // 2], file, **kwargs)
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pd.DataFrame, "to_csv", half_then_full)
        options = [
            "--csv",
            str(csv),
            "--checkpoint",
            str(trained / "data/test/06_models/classifier.pt"),
        ]
        options += ["--metrics", str(trained / "data/test/08_reporting/test_metrics.json")]
        assert main(["predict", *map(str, images), *options]) == 2
    assert "cannot write the output: [Errno 28]" in capsys.readouterr().err
    assert csv.read_bytes() == before and sorted(tmp_path.glob(".out.csv*")) == []
    # Identical copies (Kaggle's folder holds every image twice): one line, not one per copy.
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for image in images:
            (tmp_path / folder / image.name).write_bytes(image.read_bytes())
    options = ["--checkpoint", str(trained / "data/test/06_models/classifier.pt")]
    options += ["--metrics", str(trained / "data/test/08_reporting/test_metrics.json")]
    assert main(["predict", str(tmp_path / "a"), str(tmp_path / "b"), *options]) == 0
    err = capsys.readouterr().err
    assert "set aside 3 byte-identical copies of images classified under another name" in err
    assert "rejected" not in err


def test_clear_errors(trained, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=rf"folder '{empty}' holds no \.jpg/\.jpeg/\.png"):
        run_kedro(trained, "inference", inference={"input_dir": str(empty)})
    # A folder of other files only is no image folder either (it ran, writing an empty CSV
    # over the last predictions); nor is one whose every image is unreadable.
    others = tmp_path / "others"
    others.mkdir()
    (others / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"holds no \.jpg/\.jpeg/\.png file \(1 other file"):
        run_kedro(trained, "inference", inference={"input_dir": str(others)})
    (others / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(
        ValueError, match=r"no image could be classified: all 2 file\(s\).*bad\.jpg"
    ):
        run_kedro(trained, "inference", inference={"input_dir": str(others)})
    with pytest.raises(DatasetError, match=r"Inference image folder not found.*input_dir"):
        run_kedro(trained, "inference", inference={"input_dir": str(tmp_path / "nowhere")})
    options = [
        "--checkpoint",
        str(trained / "data/test/06_models/pretrained_encoder.pt"),
        "--metrics",
        str(trained / "data/test/08_reporting/test_metrics.json"),
    ]
    # The command names a checkpoint of the wrong kind, and an empty folder.
    image = next((trained / "data" / "test" / "01_raw" / "HAM10000").rglob("*.jpg"))
    assert main(["predict", str(image), *options]) == 2
    assert "pretrained_encoder.pt': expected a 'classifier' checkpoint" in capsys.readouterr().err
    metrics = trained / "data/test/08_reporting/test_metrics.json"
    good = [
        "--checkpoint",
        str(trained / "data/test/06_models/classifier.pt"),
        "--metrics",
        str(metrics),
    ]
    assert main(["predict", str(empty), *good]) == 2
    assert f"no .jpg/.jpeg/.png image in folder '{empty}'" in capsys.readouterr().err

    # Every user error a line on stderr and status 2, before any image is classified.
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((trained / "data/test/06_models/classifier.pt").read_bytes()[:1000])
    no_point = tmp_path / "no_point.json"
    no_point.write_text('{"operating_point": null}')
    cases = {
        "--device=foo": (
            ["--device", "foo", *good],
            "--device foo: not a device torch knows (use auto, cpu, cuda, cuda:N or mps)",
        ),
        "--csv in no folder": (
            ["--csv", str(tmp_path / "nowhere" / "out.csv"), *good],
            f"--csv '{tmp_path}/nowhere/out.csv': no folder",
        ),
        "--rejects a folder": (["--rejects", str(tmp_path), *good], "is a folder"),
        "truncated checkpoint": (
            ["--checkpoint", str(truncated), "--metrics", str(metrics)],
            f"'{truncated}' is not a readable checkpoint",
        ),
        "no operating point": (
            ["--checkpoint", good[1], "--metrics", str(no_point)],
            "the operating point lacks",
        ),
    }
    for case, (argv, message) in cases.items():
        assert main(["predict", str(image), *argv]) == 2, case
        assert message in capsys.readouterr().err, case
    # Nothing classifiable: status 1, the reasons, no empty table.
    assert main(["predict", str(tmp_path / "truncated.pt"), *good]) == 1
    captured = capsys.readouterr()
    assert "no image could be classified (1 rejected" in captured.err
    assert "Empty DataFrame" not in captured.out


def test_a_run_before_its_inputs_are_made_names_them_and_the_command(kedro_project):
    folder = kedro_project / "data" / "test" / "01_raw" / "HAM10000"
    with pytest.raises(FileNotFoundError, match="reads 2 input") as error:
        run_kedro(kedro_project, "inference", inference={"input_dir": str(folder)})
    message = str(error.value)
    assert "classifier (" in message and "06_models/classifier.pt): made by `kedro run" in message
    assert "--pipelines classifier_training`" in message
    assert (
        "08_reporting/test_metrics.json): made by `kedro run --env test --pipelines reporting`"
        in message
    )


def test_operating_point_is_tied_to_its_classifier_and_bad_files_are_named(
    trained, tmp_path, capsys
):
    data = trained / "data" / "test"
    checkpoint = data / "06_models" / "classifier.pt"
    metrics = json.loads((data / "08_reporting" / "test_metrics.json").read_text())
    fitted_for = metrics["operating_point"]["classifier_sha256"]
    assert fitted_for == state_fingerprint(load_checkpoint(checkpoint))
    splits = pd.read_parquet(data / "05_model_input" / "splits.parquet")
    assert metrics["split_sha256"] == split_fingerprint(splits)
    assert fitted_for in (data / "08_reporting" / "report.html").read_text()
    image = str(next((data / "01_raw" / "HAM10000").rglob("*.jpg")))

    def predict(metrics_file, checkpoint_file=checkpoint):
        status = main(
            ["predict", image, "--checkpoint", str(checkpoint_file), "--metrics", str(metrics_file)]
        )
        return status, capsys.readouterr().err

    # Another classifier's operating point (a retrained model, reporting not rerun).
    other = tmp_path / "other.json"
    metrics["operating_point"]["classifier_sha256"] = "0" * 64
    other.write_text(json.dumps(metrics))
    status, err = predict(other)
    assert status == 2 and "fitted for another classifier (weights SHA-256 000000000000)" in err
    assert f"--metrics '{other}' does not fit --checkpoint '{checkpoint}'" in err
    assert err.count("fitted for another classifier") == 1
    # One from before the record: used, with a warning. (Kedro's logging set up by the
    # earlier runs in this process keeps records from the root logger, so listen here.)
    del metrics["operating_point"]["classifier_sha256"]
    other.write_text(json.dumps(metrics))
    warnings = logging.Handler(logging.WARNING)
    warnings.emit = lambda record: seen.append(record.getMessage())
    seen = []
    inference_logger = logging.getLogger("skin_lesion.inference")
    inference_logger.addHandler(warnings)
    try:
        status, _ = predict(other)
    finally:
        inference_logger.removeHandler(warnings)
    assert status == 0 and any("does not say which classifier" in m for m in seen)
    # Files that are not what they should be are named, with what to do.
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    status, err = predict(listed)
    assert status == 2 and f"'{listed}' holds a JSON list, not the reporting" in err
    status, err = predict(tmp_path / "none.json")
    assert (
        status == 2
        and "run `kedro run --pipelines reporting` first (with the --env and --params the "
        "classifier was trained with), or pass --metrics"
        in err
    )
    status, err = predict(other, tmp_path / "none.pt")
    assert status == 2 and "no checkpoint at" in err and "pass --checkpoint PATH" in err
    # --checkpoint alone: the metrics of its own data folder, not of data/ (which holds none
    # here: the run before looked there and said to run reporting).
    assert main(["predict", image, "--checkpoint", str(checkpoint)]) == 0
    assert "melanoma" not in capsys.readouterr().err
    # --csv and --rejects naming one file: refused before any work (the rejects overwrote
    # the predictions).
    same = tmp_path / "same.csv"
    outputs = ["--csv", str(same), "--rejects", str(tmp_path / "." / "same.csv")]
    status = main(["predict", image, "--checkpoint", str(checkpoint), *outputs])
    assert status == 2 and not same.exists()
    assert "--csv and --rejects both name" in capsys.readouterr().err


def fusion_inference_agrees_with_reporting(project, tmp_path, device="auto", atol=1e-4):
    """Train a metadata-fusion classifier on ``device`` (TTA off), classify its test images
    through the inference pipeline with the whole HAM10000 table (most of whose rows name
    other images) and Grad-CAM on, and check that the predictions equal what reporting
    computed for the same images, calibrated. Returns the paths and figures later checks use.
    """
    run_kedro(
        project,
        device=device,
        reporting={"tta": "none"},
        classifier_training={"metadata_fusion": True},
    )
    root = project / "data" / "test"
    raw = root / "01_raw" / "HAM10000"
    table = raw / "HAM10000_metadata.csv"
    test = pd.read_csv(root / "07_model_output" / "test_predictions.csv")
    folder = tmp_path / "new"
    folder.mkdir()
    for image_id in test["image_id"]:
        shutil.copy(next(raw.rglob(f"{image_id}.jpg")), folder / f"{image_id}.jpg")
    run_kedro(
        project,
        "inference",
        device=device,
        inference={"input_dir": str(folder), "metadata": str(table), "gradcam": True},
    )
    out = pd.read_csv(root / "07_model_output" / "inference_predictions.csv")
    assert (out["metadata"] == "given").all()
    assert len(list((root / "07_model_output" / "inference_gradcam").iterdir())) == len(test)
    point = json.loads((root / "08_reporting" / "test_metrics.json").read_text())["operating_point"]
    expected = apply_temperature(test[[f"p_{c}" for c in CLASSES]].to_numpy(), point["temperature"])
    probs = [f"p_{c}" for c in CLASSES]
    out = out.set_index(out["image"].str.replace(".jpg", "", regex=False)).loc[test["image_id"]]
    np.testing.assert_allclose(out[probs].to_numpy(), expected, atol=atol)
    return {"root": root, "table": table, "test": test, "folder": folder, "expected": expected}


def test_a_metadata_fusion_classifier_reads_the_metadata_table(kedro_project, tmp_path, capsys):
    ran = fusion_inference_agrees_with_reporting(kedro_project, tmp_path)
    root, table, test, folder = ran["root"], ran["table"], ran["test"], ran["folder"]
    expected, probs = ran["expected"], [f"p_{c}" for c in CLASSES]

    with pytest.raises(ValueError, match=r"fuses metadata.*--params inference\.metadata=PATH"):
        run_kedro(kedro_project, "inference", inference={"input_dir": str(folder)})
    with pytest.raises(DatasetError, match=r"Inference metadata table not found: '.*absent\.csv'"):
        run_kedro(
            kedro_project,
            "inference",
            inference={"input_dir": str(folder), "metadata": str(tmp_path / "absent.csv")},
        )
    # The checkpoint records the limits metadata validation trained under, for inference.
    limits = load_checkpoint(root / "06_models" / "classifier.pt")["params"]["settings"]
    assert limits["metadata_validation"] == {
        "sexes": ["male", "female", "unknown"],
        "min_age": 0.0,
        "max_age": 120.0,
    }
    # One body site the model never saw is encoded once for the predictions and Grad-CAM
    # alike, so warned once.
    odd = tmp_path / "odd.csv"
    ham = pd.read_csv(table, dtype=str, keep_default_na=False)
    ham.loc[ham["image_id"] == test["image_id"].iloc[0], "localization"] = "elbow"
    # An unreadable image with an odd row: rejected, so not named among the classified.
    unreadable = ham.iloc[[0]].assign(image_id="ISIC_unreadable", localization="moon")
    pd.concat([ham, unreadable]).to_csv(odd, index=False)
    (folder / "ISIC_unreadable.jpg").write_bytes(b"not a jpeg")
    with caplog_at_warning() as records:
        run_kedro(
            kedro_project,
            "inference",
            inference={"input_dir": str(folder), "metadata": str(odd), "gradcam": True},
        )
    (folder / "ISIC_unreadable.jpg").unlink()
    assert not any("moon" in r.getMessage() for r in records)
    warned = [r.getMessage() for r in records if "localization value(s) outside" in r.getMessage()]
    assert len(warned) == 1 and "'elbow': 1" in warned[0] and "(image(s) " in warned[0]
    assert test["image_id"].iloc[0] in warned[0]  # which image, not only how many
    # A sidecar file of an image's name (left out of a folder) and an unreadable image are
    # rejected; neither stops the run as "two images share a file name", nor counts as an
    # image without a metadata row (the table was matched to every file before decoding).
    sidecar = folder / f"{test['image_id'].iloc[0]}.json"
    sidecar.write_text("{}")
    broken = folder / "ISIC_not_an_image.jpg"
    broken.write_bytes(b"not a jpeg")
    with caplog_at_warning() as records:
        run_kedro(
            kedro_project, "inference", inference={"input_dir": str(folder), "metadata": str(table)}
        )
    rejects = pd.read_csv(root / "07_model_output" / "inference_rejects.csv")
    assert list(rejects["image"]) == sorted([sidecar.name, broken.name])  # by name
    assert not any("no row in the metadata table" in r.getMessage() for r in records)
    # The sidecar is warned about once, as left out, not again as an image that failed.
    messages = [r.getMessage() for r in records]
    assert sum(sidecar.name in m for m in messages) == 1
    assert any("1 of " in m and "images failed" in m and broken.name in m for m in messages)
    sidecar.unlink()
    broken.unlink()
    # Kaggle's layout holds every image twice: an identical copy in another folder is
    # classified once (the copy listed in the rejects), as data_processing uses it once; a
    # different file of the same name still stops a fusion run (whose row would it be?).
    first_file = folder / f"{test['image_id'].iloc[0]}.jpg"
    copies = folder / "ham10000_images_part_1"
    copies.mkdir()
    shutil.copy(first_file, copies / first_file.name)
    run_kedro(
        kedro_project, "inference", inference={"input_dir": str(folder), "metadata": str(table)}
    )
    out = pd.read_csv(root / "07_model_output" / "inference_predictions.csv")
    assert sorted(out["image"]) == sorted(f"{i}.jpg" for i in test["image_id"])
    rejects = pd.read_csv(root / "07_model_output" / "inference_rejects.csv")
    assert rejects.to_dict("list") == {
        "image": [f"ham10000_images_part_1/{first_file.name}"],
        "reason": [f"identical copy of {first_file.name}; not used"],
    }
    (copies / first_file.name).write_bytes(first_file.read_bytes() + b"\0")
    with pytest.raises(ValueError, match=r"2 images share a file name"):
        run_kedro(
            kedro_project, "inference", inference={"input_dir": str(folder), "metadata": str(table)}
        )
    shutil.rmtree(copies)
    capsys.readouterr()  # that run's log, not the command's table below

    # The command, with a table that lacks the first image: that one is classified with its
    # metadata unknown, and says so; the others keep their probabilities.
    first = test["image_id"].iloc[0]
    partial = tmp_path / "partial.csv"
    full = pd.read_csv(table, dtype=str, keep_default_na=False)
    full[full["image_id"] != first].to_csv(partial, index=False)
    csv = tmp_path / "out.csv"
    options = ["--checkpoint", str(root / "06_models" / "classifier.pt")]
    options += ["--metrics", str(root / "08_reporting" / "test_metrics.json"), "--csv", str(csv)]
    assert main(["predict", str(folder), "--metadata", str(partial), *options]) == 0
    table = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(table) if line.split()[:1] == ["image"])
    assert table[header].split()[-1] == "metadata"
    assert sorted(line.split()[-1] for line in table[header + 1 :]) == ["given"] * (
        len(test) - 1
    ) + ["missing"]
    again = pd.read_csv(csv)
    again = again.set_index(again["image"].str.rsplit("/", n=1).str[-1].str[:-4])
    again = again.loc[test["image_id"]]
    assert list(again["metadata"]) == ["missing"] + ["given"] * (len(test) - 1)
    np.testing.assert_allclose(again[probs].to_numpy()[1:], expected[1:], atol=1e-4)
    assert np.abs(again[probs].to_numpy()[0] - expected[0]).max() > 1e-6
    # Without a table, the command says what to give.
    assert main(["predict", str(folder), *options]) == 2
    assert "fuses metadata" in capsys.readouterr().err
