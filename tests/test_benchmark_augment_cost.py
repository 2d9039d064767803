"""The augmentation benchmarks (cost a batch, hue strength) on small generated data, on the CPU."""

import json
from pathlib import Path

import numpy as np
import pytest
from benchmarks import augment_cost, hue_strength
from PIL import Image

from skin_lesion.host_memory import _reason_to_leave_alone


def test_augment_cost_records_both_pipelines_for_both_stages(tmp_path: Path) -> None:
    argv = ["--batch=6", "--cache=40x48", "--crop=32", "--device=cpu", "--repeats=2"]

    augment_cost.main([*argv, f"--results-dir={tmp_path}"])

    result = json.loads((tmp_path / "augment-cost-cpu-6x32.json").read_text())
    assert result["settings"] == {"batch": 6, "cache": "40x48", "crop": 32, "repeats": 2}
    for stage in ("supcon", "classifier"):
        ours, kornia = result["stages"][stage]["ours"], result["stages"][stage]["kornia"]
        # Ours: the same ops whatever the batch size, none waiting for the device.
        assert ours["aten_ops"] == ours["aten_ops_at_2_images"]
        assert ours["syncs"] == 0
        assert ours["aten_ops"] < kornia["aten_ops"]
        assert ours["device_ms"] > 0 and kornia["device_ms"] > 0
    table = (tmp_path / "augment-cost-cpu-6x32.md").read_text()
    assert "| classifier | ours |" in table and "| supcon | kornia |" in table
    # Under the allocator a kedro run uses, where glibc lets it be set; the caption says so.
    assert result["malloc_kept"] is (_reason_to_leave_alone() is None)
    assert ("malloc keeping freed memory" in table) is result["malloc_kept"]


def test_augment_cost_refuses_a_malformed_cache_size(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        augment_cost.parse_args(["--cache=256by341"])

    assert exc.value.code == 2
    assert "--cache must look like 256x341" in capsys.readouterr().err


def test_hue_strength_compares_both_hue_shifts(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    for i in range(3):
        pixels = generator.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"ISIC_{i:07d}.jpg")

    rows = hue_strength.main([f"--data={tmp_path}", "--images=3"])

    assert [r["strength"] for r in rows] == list(hue_strength.STRENGTHS)
    assert all(r["hsv"] > 0 and r["yiq"] > 0 for r in rows)
    # Both grow with the strength.
    assert [r["yiq"] for r in rows] == sorted(r["yiq"] for r in rows)
    assert [r["hsv"] for r in rows] == sorted(r["hsv"] for r in rows)


def test_hue_strength_refuses_a_folder_without_jpegs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no \.jpg files under"):
        hue_strength.main([f"--data={tmp_path}"])
