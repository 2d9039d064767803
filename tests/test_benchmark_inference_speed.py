"""benchmarks/inference_speed.py on a generated project: what it records, and its errors."""

import json
from pathlib import Path

import pytest
from benchmarks import inference_speed

from tests.conftest import run_kedro

pytestmark = pytest.mark.slow


def test_inference_speed_records_each_tta_of_a_fusion_classifier(kedro_project: Path) -> None:
    run_kedro(kedro_project, classifier_training={"metadata_fusion": True})
    raw = kedro_project / "data" / "test" / "01_raw" / "HAM10000"
    images = sorted(raw.rglob("*.jpg"))
    out = kedro_project / "results" / "speed.json"
    argv = ["--data-dir", str(kedro_project / "data" / "test"), "--images", str(raw)]
    argv += ["--metadata", str(raw / "HAM10000_metadata.csv"), "--out", str(out)]
    assert inference_speed.main([*argv, "--tta", "default", "dihedral", "--repeats", "1"]) == 0
    result = json.loads(out.read_text())
    checkpoint = result["classifier_sha256"]
    assert len(checkpoint) == 64 and result["encoder"] == "test_efficientnet"
    default, dihedral = result["rows"]
    assert default["asked"] == "default" and default["tta"] == result["operating_point_tta"]
    assert dihedral["tta"] == "dihedral"
    for row in result["rows"]:
        assert row["images"] == len(images) and row["rejected"] == 0 and row["metadata"]
        assert row["img_per_s"] == pytest.approx(len(images) / row["classify_s"], rel=0.05)
        assert row["decode_s"] <= row["classify_s"] < row["end_to_end_s"]
        # The benchmark's own decode pass, which predict does not make, is not in end to end.
        assert row["end_to_end_s"] == pytest.approx(row["process_s"] - row["decode_s"], abs=0.02)
        assert row["host_peak_mib"] > 100 and row["gpu_peak_mib"] is None
        assert row["batch_size"] == 16  # predict's own default on a CPU
    assert result["batch_size"] is None
    table = out.with_suffix(".md").read_text().splitlines()
    assert f"classifier `{checkpoint[:12]}`, metadata fusion" in table[0]
    assert ", batch 16, decoded and classified 2,048 at a time; fastest of 1 runs" in table[0]
    assert table[2].startswith("| TTA (views) | classify s | img/s |")
    assert "| end to end s (start-up incl., decode pass excl.) |" in table[2]
    assert table[4].startswith(f"| {default['tta']} (the operating point's), ")
    assert table[5].startswith(f"| dihedral, 8 | {dihedral['classify_s']} |")


def test_inference_speed_passes_a_batch_size_on(after_full_run: Path) -> None:
    kedro_project = after_full_run
    raw = kedro_project / "data" / "test" / "01_raw" / "HAM10000"
    out = kedro_project / "results" / "speed.json"
    argv = [
        "--data-dir",
        str(kedro_project / "data" / "test"),
        "--images",
        str(raw),
        "--out",
        str(out),
    ]
    assert (
        inference_speed.main(
            [*argv, "--tta", "none", "--repeats", "1", "--batch-size", "5", "--chunk-size", "7"]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["batch_size"] == 5 and result["rows"][0]["batch_size"] == 5
    assert result["rows"][0]["chunk_size"] == 7
    assert (
        ", batch 5, decoded and classified 7 at a time; fastest"
        in out.with_suffix(".md").read_text()
    )


def test_inference_speed_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no classifier checkpoint at '.*classifier\.pt'"):
        inference_speed.main(["--data-dir", str(tmp_path), "--images", str(tmp_path)])


def test_fewer_than_one_repeat_is_refused_by_the_parser(capsys: pytest.CaptureFixture) -> None:
    # min() of no runs failed after the first TTA setting's processes had run.
    with pytest.raises(SystemExit) as exc:
        inference_speed.main(["--repeats", "0"])
    assert exc.value.code == 2
    assert "--repeats must be at least 1, got 0" in capsys.readouterr().err


def test_a_failing_measurement_is_named_by_its_error_not_a_traceback(tmp_path: Path) -> None:
    import argparse

    args = argparse.Namespace(
        data_dir=tmp_path,  # no classifier there: the child process fails on loading it
        images=tmp_path,
        metadata=tmp_path / "HAM10000_metadata.csv",
        device="cpu",
        chunk_size=0,
        batch_size=None,
    )
    with pytest.raises(SystemExit) as exc:
        inference_speed.run_isolated(args, "none")
    message = str(exc.value)
    assert message.startswith("inference_speed.py: the --tta none run failed (exit 1): ")
    assert message.endswith(
        f"FileNotFoundError: No checkpoint at '{tmp_path}/06_models/classifier.pt'"
    )


COMMITTED = Path(inference_speed.OUT)


@pytest.fixture
def committed_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A run of the committed result's settings, with its description as recorded; argv."""
    recorded = json.loads(COMMITTED.read_text())

    def describe(args):
        described = {k: v for k, v in recorded.items() if k != "rows"}
        return described | {"repeats": args.repeats, "batch_size": args.batch_size}

    def run_isolated(args, tta):
        raise RuntimeError("measuring")

    monkeypatch.setattr(inference_speed, "describe", describe)
    monkeypatch.setattr(inference_speed, "run_isolated", run_isolated)
    monkeypatch.setattr("skin_lesion.host_memory.keep_freed_memory", lambda: True)
    data = tmp_path / "data"
    for needed in ("06_models/classifier.pt", "08_reporting/test_metrics.json"):
        (data / needed).parent.mkdir(parents=True, exist_ok=True)
        (data / needed).write_text("")
    images = tmp_path / "HAM10000_images_part_1"
    images.mkdir()
    return ["--data-dir", str(data), "--images", str(images), "--device", "cpu"]


def test_a_trial_is_refused_before_it_replaces_the_committed_result(
    committed_settings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = COMMITTED.read_bytes()
    # The committed settings would measure it again (the images folder at another path).
    with pytest.raises(RuntimeError, match="measuring"):
        inference_speed.main(committed_settings)
    for changed, message in [
        (["--repeats", "1"], r"repeats 2 there, 1 now"),
        (["--tta", "none"], r"tta \['default', 'none'\] there, \['none'\] now"),
        (["--chunk-size", "0"], r"chunk_size 2048 there, None now"),
        (["--batch-size", "64"], r"batch_size None there, 64 now"),
    ]:
        with pytest.raises(SystemExit, match=rf"{message}\); pass another --out"):
            inference_speed.main([*committed_settings, *changed])
    monkeypatch.setattr("skin_lesion.host_memory.keep_freed_memory", lambda: False)
    with pytest.raises(SystemExit, match=r"malloc_kept True there, False now"):
        inference_speed.main(committed_settings)
    assert COMMITTED.read_bytes() == before
