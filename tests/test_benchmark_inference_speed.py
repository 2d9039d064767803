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


def test_inference_speed_passes_a_batch_size_on(kedro_project: Path) -> None:
    run_kedro(kedro_project)
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
