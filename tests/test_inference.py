"""Which local files ``skin-lesion predict`` reads, and what it says about the others."""

import logging
from pathlib import Path

import pytest

from skin_lesion.images import ImageDecodeError
from skin_lesion.inference import file_loaders


def test_a_folder_gives_its_images_and_names_what_it_leaves_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.PNG", "c.jpeg", "scan.tif", "sub/deep/notes.txt", ".DS_Store"):
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        loaders = file_loaders([str(tmp_path)])
    names = [Path(k).relative_to(tmp_path).as_posix() for k in loaders]
    assert names == ["a.jpg", "c.jpeg", "sub/b.PNG", "scan.tif", "sub/deep/notes.txt"]
    assert (
        "2 file(s) not .jpg/.jpeg/.png left out (listed in the rejects): scan.tif, " in caplog.text
    )
    assert "sub/deep/notes.txt" in caplog.text and ".DS_Store" not in caplog.text
    # The files left out fail when read, with the reason the rejects report gives.
    with pytest.raises(
        ImageDecodeError,
        match=r"^not a \.jpg/\.jpeg/\.png file: left out \(rename it, or name the file itself",
    ):
        loaders[str(tmp_path / "scan.tif")]()
    assert loaders[str(tmp_path / "a.jpg")]() == b"x"
    # Named directly, a .tif is read (the decoder decides what it can use).
    assert list(file_loaders([str(tmp_path / "scan.tif")])) == [(tmp_path / "scan.tif").as_posix()]


def test_a_folder_without_images_and_a_missing_path_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "scan.tif").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"no \.jpg/\.jpeg/\.png image in folder '.*empty'"):
        file_loaders([str(tmp_path / "empty")])
    with pytest.raises(FileNotFoundError, match=r"no such image or folder: 'absent\.jpg'"):
        file_loaders(["absent.jpg"])


def _table(**columns):
    import pandas as pd

    base = {
        "image_id": ["a", "b", "c"],
        "age": ["40", "", "65"],
        "sex": ["male", "female", "unknown"],
        "localization": ["back", "face", ""],
    }
    return pd.DataFrame({**base, **columns})


def test_metadata_rows_are_matched_by_file_name_and_missing_ones_are_named(caplog) -> None:
    from skin_lesion.inference import match_metadata

    # Extra rows (here "c") are ignored: the whole HAM10000 table may be given for a few images.
    names = ["part_1/b.jpg", "a.png", "new/z.jpeg"]
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        rows, given = match_metadata(names, _table(image_id=[" a", "b.JPG ", "c"]))
    assert list(rows.index) == names
    assert list(rows["image_id"]) == ["b", "a", "z"]
    assert list(rows["sex"].fillna("?")) == ["female", "male", "?"]
    assert list(rows["age"].fillna("?")) == ["", "40", "?"]
    assert list(given) == [True, True, False]
    assert "1 of 3 image(s) have no row in the metadata table" in caplog.text
    assert "new/z.jpeg" in caplog.text


def test_metadata_tables_that_cannot_be_matched_are_errors() -> None:
    from skin_lesion.inference import match_metadata

    with pytest.raises(ValueError, match=r"lacks column\(s\) \['age'\].*found \['image_id', 'sex'"):
        match_metadata(["a.jpg"], _table().drop(columns="age"))
    with pytest.raises(ValueError, match=r"more than one row for 1 image_id\(s\).*: a$"):
        match_metadata(["a.jpg"], _table(image_id=["a", "a.png", "c"]))
    with pytest.raises(ValueError, match=r"2 images share a file name.*x/a\.jpg, y/a\.png"):
        match_metadata(["x/a.jpg", "y/a.png", "b.jpg"], _table())
    # One file name in two folders (p1/1.jpg, p2/1.jpg) with no row of that name is not
    # ambiguous: both are classified without metadata, as any image without a row.
    _, given = match_metadata(["p1/1.jpg", "p2/1.jpg", "a.jpg"], _table())
    assert list(given) == [False, False, True]


def test_unknown_metadata_encodes_as_unknown_and_bad_ages_name_their_image(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from skin_lesion.inference import match_metadata
    from skin_lesion.tabular import fit_metadata_encoder

    encoder = fit_metadata_encoder(_table())
    rows, _ = match_metadata(["a.jpg", "z.jpg"], _table())
    features = dict(zip(encoder.feature_names, encoder.transform(rows).T, strict=True))
    # z has no row: age missing (imputed at the mean), sex and localization unknown.
    assert list(features["age_missing"]) == [0, 1]
    assert list(features["sex=unknown"]) == [0, 1]
    assert list(features["localization=unknown"]) == [0, 1]
    # A sex or site training never saw counts as unknown, with a warning naming the image.
    rows, _ = match_metadata(["b.jpg", "a.jpg"], _table(sex=["female", "other", "male"]))
    with caplog.at_level(logging.WARNING, logger="skin_lesion.tabular"):
        features = dict(zip(encoder.feature_names, encoder.transform(rows).T, strict=True))
    assert list(features["sex=unknown"]) == [1, 0]
    assert (
        "1 sex value(s) outside" in caplog.text and "{'other': 1} (image(s) b.jpg)" in caplog.text
    )
    rows, _ = match_metadata(["b.jpg"], _table(age=["40", "forty", "1"]))
    with pytest.raises(ValueError, match=r"row b\.jpg: 'forty'"):
        encoder.transform(rows)
    # Ages training's validation would have rejected are refused, naming the image.
    with pytest.raises(ValueError, match=r"1 age\(s\) outside 0-120 years.*: c\.jpg: '210'"):
        match_metadata(["a.jpg", "c.jpg"], _table(age=["120", "", "210"]))


def test_the_batch_size_defaults_to_the_devices_fastest() -> None:
    import torch

    from skin_lesion.inference import InferenceConfig, batch_size_for

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert batch_size_for(InferenceConfig(), cpu) == 16
    assert batch_size_for(InferenceConfig(), cuda) == 64
    assert batch_size_for(InferenceConfig(batch_size=7), cpu) == 7
    assert batch_size_for(InferenceConfig(batch_size=7), cuda) == 7
    with pytest.raises(ValueError, match="batch_size"):
        InferenceConfig(batch_size=0)


def test_ages_are_held_to_the_limits_the_classifier_trained_under() -> None:
    from skin_lesion.inference import match_metadata, metadata_limits

    recorded = {"sexes": ["male", "female"], "min_age": 18, "max_age": 90}
    checkpoint = {"params": {"settings": {"metadata_validation": recorded}}}
    limits = metadata_limits(checkpoint)
    assert (limits.min_age, limits.max_age, limits.sexes) == (18, 90, ("male", "female"))
    outside = r"2 age\(s\) outside 18-90 years.*a\.jpg: '95', c\.jpg: '5'"
    with pytest.raises(ValueError, match=outside):
        match_metadata(["a.jpg", "b.jpg", "c.jpg"], _table(age=["95", "", "5"]), limits)
    rows, _ = match_metadata(["a.jpg"], _table(age=["90", "", "5"]), limits)
    assert rows.loc["a.jpg", "age"] == "90"
    # A checkpoint from before the limits were recorded: the defaults (0-120 years).
    for old in ({"params": {"settings": {}}}, {"params": None}, {}):
        assert (metadata_limits(old).min_age, metadata_limits(old).max_age) == (0, 120)
    with pytest.raises(ValueError, match=r"metadata_validation\.max_age"):
        metadata_limits({"params": {"settings": {"metadata_validation": {"max_age": "old"}}}})


def test_the_command_finds_an_environments_outputs(tmp_path: Path, monkeypatch, capsys) -> None:
    from skin_lesion.command import data_dir, main

    conf = tmp_path / "conf"
    for env, text in [("base", "data_dir: data\n"), ("cpu_quick", "data_dir: data/cpu_quick\n")]:
        (conf / env).mkdir(parents=True)
        (conf / env / "globals.yml").write_text(text)
    (conf / "demo").mkdir()  # an environment without globals keeps base's
    assert data_dir(None, conf) == Path("data")
    assert data_dir("cpu_quick", conf) == Path("data/cpu_quick")
    assert data_dir("demo", conf) == Path("data")
    (conf / "local").mkdir()
    (conf / "local" / "globals.yml").write_text("data_dir: /scratch/runs\n")
    assert data_dir(None, conf) == Path("/scratch/runs")  # as plain `kedro run` reads it
    with pytest.raises(FileNotFoundError, match=r"no environment 'gpu' in .*\(there are: base, "):
        data_dir("gpu", conf)
    with pytest.raises(FileNotFoundError, match=r"'dmeo' in .*\(did you mean 'demo'\? there are"):
        data_dir("dmeo", conf)
    assert data_dir(None, tmp_path / "nowhere") == Path("data")

    # The command looks where the environment (or $KEDRO_ENV) writes, and says so.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert main(["predict", "a.jpg", "--env", "cpu_quick"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint at 'data/cpu_quick/06_models/classifier.pt'" in err
    assert "`kedro run --env cpu_quick`" in err
    monkeypatch.setenv("KEDRO_ENV", "cpu_quick")
    assert main(["predict", "a.jpg"]) == 2
    assert "'data/cpu_quick/06_models/classifier.pt'" in capsys.readouterr().err
    monkeypatch.delenv("KEDRO_ENV")
    assert main(["predict", "a.jpg", "--env", "cpu"]) == 2
    assert "no environment 'cpu'" in capsys.readouterr().err
    # From a subfolder of the project, as kedro finds it (pyproject.toml's [tool.kedro]): the
    # project's conf/ and data, not "no conf/ folder here".
    (tmp_path / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "x"\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert data_dir("cpu_quick") == tmp_path / "data" / "cpu_quick"
    assert main(["predict", "../a.jpg", "--env", "cpu_quick"]) == 2
    assert f"no checkpoint at '{tmp_path}/data/cpu_quick/06_models" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert data_dir("cpu_quick") == Path("data/cpu_quick")  # at the root: as before
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert main(["predict", str(tmp_path / "a.jpg"), "--env", "cpu_quick"]) == 2
    assert "--env cpu_quick: no Kedro project here or above" in capsys.readouterr().err


def test_ages_outside_the_training_range_are_named(caplog) -> None:
    from skin_lesion.inference import match_metadata, warn_unseen_ages
    from skin_lesion.tabular import MetadataEncoder, fit_metadata_encoder

    encoder = fit_metadata_encoder(_table())  # known training ages 40 and 65
    assert (encoder.age_min, encoder.age_max) == (40.0, 65.0)
    rows, _ = match_metadata(["a.jpg", "b.jpg", "c.jpg"], _table(age=["39", "", "65"]))
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        warn_unseen_ages(rows, encoder)
    assert "1 image(s) have an age outside the training ages (40-65 years)" in caplog.text
    assert "a.jpg: 39" in caplog.text and "c.jpg" not in caplog.text
    # An encoder from before the range was recorded says nothing.
    old = {k: v for k, v in encoder.to_dict().items() if k not in ("age_min", "age_max")}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        warn_unseen_ages(rows, MetadataEncoder.from_dict(old))
    assert caplog.text == ""


def test_symlinked_subfolders_broken_links_and_names_that_are_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.jpg").write_bytes(b"x")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"a")
    (folder / "linked").symlink_to(tmp_path / "other", target_is_directory=True)
    (folder / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    latin1 = bytes(folder) + b"/caf\xe9.jpg"
    with open(latin1, "wb") as file:
        file.write(b"c")

    loaders = file_loaders([str(folder)])

    names = [Path(k).relative_to(folder).as_posix() for k in loaders]
    assert names == ["a.jpg", "broken.jpg", "caf\\xe9.jpg", "linked/x.jpg"]
    assert loaders[f"{folder}/linked/x.jpg"]() == b"x"
    assert loaders[f"{folder}/caf\\xe9.jpg"]() == b"c"  # read from the real name
    with pytest.raises(FileNotFoundError):
        loaders[f"{folder}/broken.jpg"]()  # decoding reports it: "cannot read file"
    assert list(file_loaders([str(folder / "broken.jpg")])) == [f"{folder}/broken.jpg"]


def test_one_file_given_twice_is_classified_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "dir").mkdir()
    image = tmp_path / "dir" / "x.jpg"
    image.write_bytes(b"x")
    other = tmp_path / "dir" / "y.jpg"
    other.write_bytes(b"y")
    again = tmp_path / "dir" / ".." / "dir" / "x.jpg"

    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        loaders = file_loaders([str(image), str(again), str(tmp_path / "dir")])

    assert list(loaders) == [str(image), str(other)]
    # One warning of them all: another spelling, and the same spelling again (here: named,
    # then found in its folder).
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "2 file(s) given more than once (by name, under another spelling, or in a folder also "
        f"given) are classified once: {again.as_posix()} (= {image}), {image}"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        assert list(file_loaders([str(tmp_path / "dir")] * 2)) == [str(image), str(other)]
    assert len(caplog.records) == 1 and "2 file(s) given more than once" in caplog.text


def test_a_symlink_beside_its_target_in_one_folder_is_an_image_of_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As the inference pipeline reads the folder: the command dropped alias.jpg as "given
    more than once" (though one folder was given), and no rejects row said so."""
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "alias.jpg").symlink_to(tmp_path / "a.jpg")
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        loaders = file_loaders([str(tmp_path)])
    assert list(loaders) == [str(tmp_path / "a.jpg"), str(tmp_path / "alias.jpg")]
    assert not caplog.records
    # Given again as a path of its own, it is a repeat.
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        loaders = file_loaders([str(tmp_path), str(tmp_path / "a.jpg")])
    assert len(loaders) == 2 and "1 file(s) given more than once" in caplog.text


def test_lazy_gradcam_computes_a_batch_when_asked_and_holds_one(monkeypatch) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from skin_lesion import inference

    calls, built = [], []

    def fake_panels(checkpoint, images, predictions, meta, *, device, tta, model):
        assert tta == "dihedral"  # the TTA the predictions were made with, passed on
        assert model is built[0]  # the classifier built once, for every batch
        calls.append(list(predictions["image"]))
        assert len(images) == len(predictions)  # the batch's own rows of the cache
        return {
            name: {"image": image, "title": name}
            for name, image in zip(predictions["image"], images)
        }

    monkeypatch.setattr(inference, "gradcam_panels", fake_panels)
    monkeypatch.setattr(
        inference, "gradcam_model", lambda checkpoint, device: built.append(object()) or built[-1]
    )
    names = ["b/1.jpg", "a.jpg", "b__0.jpg", "c.jpg", "b/0.jpg"]
    images = np.arange(len(names))
    predictions = pd.DataFrame({"image": names})
    lazy = inference.LazyGradcam(
        {}, images, predictions, None, device=torch.device("cpu"), batch_size=2, tta="dihedral"
    )

    panels = lazy.panels()
    assert calls == []  # nothing computed until asked
    # Asked in the order the overlays are saved (sorted file names), batch after batch.
    order = sorted(names, key=lambda n: inference.overlay_names(names)[n])
    assert order == ["a.jpg", "b__0.jpg", "b/0.jpg", "b/1.jpg", "c.jpg"]
    got = {name: panels[name]() for name in order}
    assert calls == [["a.jpg", "b__0.jpg"], ["b/0.jpg", "b/1.jpg"], ["c.jpg"]]
    assert len(built) == 1  # not rebuilt for each batch
    assert all(got[name]["image"] == names.index(name) for name in names)
    assert len(lazy._held) == 1  # only the last batch is held


def test_lazy_gradcam_names_an_image_it_cannot_read_again_instead_of_failing(
    monkeypatch, caplog
) -> None:
    # With several parts Grad-CAM decodes its batches again; a file gone since then failed
    # every panel of its batch (and the run), though the image had been classified.
    import numpy as np
    import pandas as pd
    import torch

    from skin_lesion import inference

    def fake_panels(checkpoint, images, predictions, meta, *, device, tta, model):
        return {
            name: {"image": image, "heatmap": np.ones((2, 2)), "title": name}
            for name, image in zip(predictions["image"], images)
        }

    monkeypatch.setattr(inference, "gradcam_panels", fake_panels)
    monkeypatch.setattr(inference, "gradcam_model", lambda checkpoint, device: None)
    names = ["a.jpg", "b.jpg", "c.jpg"]

    def decode_again(rows):
        pixels = np.stack([np.full((2, 2, 3), r, np.uint8) for r in rows])
        return pixels, {r: "cannot read file: gone" for r in rows if names[r] == "b.jpg"}

    lazy = inference.LazyGradcam(
        {}, decode_again, pd.DataFrame({"image": names}), None, device=torch.device("cpu")
    )
    with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
        panels = {name: make() for name, make in lazy.panels().items()}
    assert panels["b.jpg"]["title"] == "b.jpg: not read again for Grad-CAM"
    assert not panels["b.jpg"]["heatmap"].any() and panels["a.jpg"]["heatmap"].all()
    assert panels["c.jpg"]["image"].max() == 2  # the others as decoded
    assert "Grad-CAM of b.jpg: cannot read file: gone" in caplog.text


def test_the_metrics_beside_a_checkpoint_are_found_however_it_is_named(
    tmp_path: Path, monkeypatch
) -> None:
    from skin_lesion.command import _metrics_beside

    models, reporting = tmp_path / "data" / "06_models", tmp_path / "data" / "08_reporting"
    models.mkdir(parents=True)
    assert _metrics_beside(str(models / "classifier.pt")) is None  # no metrics there yet
    reporting.mkdir()
    (reporting / "test_metrics.json").write_text("{}")
    expected = reporting / "test_metrics.json"
    assert _metrics_beside(str(models / "classifier.pt")) == expected
    monkeypatch.chdir(models)  # a bare name (its parent is "."), and ./name
    assert _metrics_beside("classifier.pt") == expected
    assert _metrics_beside("./classifier.pt") == expected
    monkeypatch.chdir(tmp_path)
    assert _metrics_beside("data/06_models/classifier.pt") == expected
    assert _metrics_beside("elsewhere/classifier.pt") is None


def test_a_file_named_directly_is_read_whatever_order_its_folder_comes_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Named before its folder, a .tif was replaced by the folder's left-out entry."""
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "scan.tif").write_bytes(b"t")
    (tmp_path / "notes.txt").write_bytes(b"n")
    tif = str(tmp_path / "scan.tif")
    for paths in ([tif, str(tmp_path)], [str(tmp_path), tif]):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="skin_lesion.inference"):
            loaders = file_loaders(paths)
        assert loaders[tif]() == b"t", paths
        with pytest.raises(ImageDecodeError, match="left out"):
            loaders[str(tmp_path / "notes.txt")]()
        # Only the file not named is said to be left out.
        assert "1 file(s) not .jpg/.jpeg/.png left out (listed in the rejects): notes.txt" in (
            caplog.text
        ), paths


def test_a_control_character_in_a_file_name_is_shown_escaped(tmp_path: Path) -> None:
    """A bare carriage return is legal in a POSIX file name; pandas does not quote it, so it
    split the name over two rows of the predictions CSV."""
    import io

    import pandas as pd

    (tmp_path / "scan\r2.jpg").write_bytes(b"x")
    (tmp_path / "tab\t.jpg").write_bytes(b"y")
    loaders = file_loaders([str(tmp_path)])
    assert sorted(Path(k).name for k in loaders) == ["scan\\r2.jpg", "tab\\t.jpg"]
    assert loaders[f"{tmp_path}/scan\\r2.jpg"]() == b"x"  # read from the real name
    text = pd.DataFrame({"image": list(loaders), "p": [0.5, 0.5]}).to_csv(index=False)
    assert len(pd.read_csv(io.StringIO(text))) == 2


def test_overlay_names_fit_a_file_systems_limit() -> None:
    from skin_lesion.inference import MAX_NAME_BYTES, overlay_names

    deep = "/".join(f"clinic_2024_a_long_folder_name_for_batch_{i:02d}" for i in range(6))
    images = [f"{deep}/ISIC_1.jpg", f"{deep}/ISIC_2.jpg", "é" * 130 + ".jpg", "a/b.jpg"]
    names = overlay_names(images)
    assert all(len(name.encode()) <= MAX_NAME_BYTES for name in names.values())
    assert len(set(names.values())) == len(images)
    # The file's own name is kept at the end, after a hash of its path; short names as before.
    assert names[images[0]].endswith("batch_05__ISIC_1.jpg.png")
    assert names[images[0]].startswith("~") and names[images[0]][13] == "~"
    assert names[images[2]].endswith("éé.jpg.png")
    assert names["a/b.jpg"] == "a__b.jpg.png"
    assert overlay_names(["a__b.jpg", "a/b.jpg"])["a/b.jpg"] == "a__b.jpg~2.png"


def test_two_files_whose_names_show_alike_are_both_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As in the pipeline's folder: one of the two was dropped, with no reject row."""
    with open(bytes(tmp_path) + b"/caf\xe9.jpg", "wb") as file:
        file.write(b"latin-1")
    (tmp_path / "caf\\xe9.jpg").write_bytes(b"literal")
    with caplog.at_level(logging.WARNING, logger="skin_lesion.files"):
        loaders = file_loaders([str(tmp_path)])
    assert sorted(Path(k).name for k in loaders) == ["caf\\xe9.jpg", "caf\\xe9.jpg~2"]
    assert sorted(load() for load in loaders.values()) == [b"latin-1", b"literal"]
    assert "1 file(s) whose names show like another file's" in caplog.text


def test_a_subfolder_that_cannot_be_listed_is_named(tmp_path: Path, monkeypatch) -> None:
    """os.walk skipped it without a word: its images went unclassified and unreported."""
    import os

    from skin_lesion.files import UnreadableFolderError

    (tmp_path / "locked").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"x")
    scandir = os.scandir

    def denied(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(UnreadableFolderError, match=r"locked': Permission denied"):
        file_loaders([str(tmp_path)])


def test_a_metadata_table_that_matches_no_image_is_refused():
    """image_ids that are not the file names (a renamed export) gave every image unknown
    metadata, under a melanoma threshold validated with it, and exit 0."""
    from skin_lesion.inference import match_metadata

    with pytest.raises(ValueError, match=r"matches none of the 2 image\(s\): its image_id values"):
        match_metadata(["x/ISIC_1.jpg", "ISIC_2.jpg"], _table(image_id=["a", "b", "c"]))
    _, given = match_metadata(["a.jpg", "z.jpg"], _table())  # one match: a warning only
    assert given.tolist() == [True, False]


@pytest.mark.parametrize(
    ("changed", "match"),
    [
        ({"melanoma_threshold": float("nan")}, r"melanoma_threshold is nan, not a finite"),
        ({"melanoma_threshold": 2.0}, r"melanoma_threshold is 2.0; it must lie in \[0, 1\]"),
        ({"melanoma_threshold": None}, r"melanoma_threshold is None, not a finite number"),
        ({"temperature": 0.0}, r"temperature is 0.0; it must be above 0"),
        ({"temperature": "hot"}, r"temperature is 'hot', not a finite number"),
    ],
)
def test_an_operating_point_out_of_range_is_refused_before_decoding(changed, match):
    """A NaN or 2.0 threshold turned every melanoma flag off without a word."""
    from skin_lesion.inference import check_operating_point

    point = {"temperature": 1.3, "melanoma_threshold": 0.1375}
    assert check_operating_point(point) == (1.3, 0.1375)
    with pytest.raises(ValueError, match=match):
        check_operating_point({**point, **changed})


def test_a_folder_without_images_names_its_other_files(tmp_path):
    (tmp_path / "d.tif").write_bytes(b"II*\x00")
    with pytest.raises(FileNotFoundError, match=r"1 other file\(s\): d.tif; a file named on its"):
        file_loaders([str(tmp_path)])


def test_the_command_reads_the_latest_version_of_a_versioned_checkpoint(tmp_path: Path) -> None:
    """catalog.yml suggests `versioned: true` for the checkpoints; `skin-lesion predict` then
    found a folder at 06_models/classifier.pt and said "no checkpoint ...: train one"."""
    from skin_lesion.command import latest_version

    plain = tmp_path / "classifier.pt"
    assert latest_version(str(plain)) == str(plain)  # not there: left for the caller's message
    plain.write_bytes(b"x")
    assert latest_version(str(plain)) == str(plain)
    plain.unlink()
    for version in ("2026-12-07T04.47.20.129Z", "2026-12-07T05.01.00.000Z"):
        (plain / version).mkdir(parents=True)
        (plain / version / "classifier.pt").write_bytes(b"x")
    assert latest_version(str(plain)) == str(plain / "2026-12-07T05.01.00.000Z" / "classifier.pt")
