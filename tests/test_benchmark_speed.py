"""The speed benchmark end to end on generated images: every stage and feed, in child processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skin_lesion.host_memory import _reason_to_leave_alone

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_speed_command_measures_every_stage_and_feed(demo_raw_dir: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "speed.py"),
        "--encoder=test_efficientnet",
        "--crop=32",
        "--batch=4",
        "--cache=40x48",
        "--steps=2",
        "--workers=1",
        "--images=24",
        "--threads=1",
        "--device=cpu",
        f"--data={demo_raw_dir}",
        f"--results-dir={tmp_path}",
    ]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "speed-cpu-test_efficientnet-32.json").read_text())
    malloc_settable = _reason_to_leave_alone() is None
    assert result["settings"]["images"] == 24
    assert result["settings"]["precision"] == "fp32"
    for stage in ("supcon", "classifier"):
        feeds = result["stages"][stage]
        for feed in ("limit", "conventional", "ours"):
            assert feeds[feed]["img_per_s"] > 0, (stage, feed)
            assert feeds[feed]["host_peak_rss_mib"] > 0
            assert feeds[feed]["gpu_peak_mib"] is None
            # Every feed under the allocator a kedro run uses (where glibc lets it be set).
            assert feeds[feed]["malloc_kept"] is malloc_settable
        # The conventional feed ran its DataLoader worker; the others have none.
        assert feeds["conventional"]["workers"] == 1
        assert feeds["ours"]["workers"] == 0
        ratio = feeds["ours"]["img_per_s"] / feeds["limit"]["img_per_s"]
        assert feeds["ours_fraction_of_limit"] == pytest.approx(ratio, abs=1e-3)
    table = (tmp_path / "speed-cpu-test_efficientnet-32.md").read_text()
    assert table in done.stdout
    assert "| SupCon pretraining (2 views/image) |" in table
    assert ("malloc keeping freed memory as the pipelines" in table) is malloc_settable


def test_a_trial_with_other_settings_does_not_overwrite_a_measurement(tmp_path: Path) -> None:
    from benchmarks import speed

    path = tmp_path / "speed-cpu-lite0-96.json"
    speed.check_not_overwriting(path, {"images": 200})  # nothing there yet
    settings = {"batch": 32, "cache": "120x160", "steps": 10, "workers": 2, "images": 10015}
    path.write_text(json.dumps({"settings": settings}))
    speed.check_not_overwriting(path, settings)  # the same measurement again
    with pytest.raises(SystemExit, match=r"images 10015 there, 200 now\); pass another"):
        speed.check_not_overwriting(path, settings | {"images": 200})
    assert json.loads(path.read_text())["settings"] == settings


def test_list_images_takes_every_image_suffix_and_names_unknown_files(tmp_path: Path) -> None:
    from benchmarks import speed

    (tmp_path / "HAM10000_metadata.csv").write_text("image_id,dx\nISIC_1,mel\nISIC_2,nv\n")
    (tmp_path / "ISIC_1.JPG").write_bytes(b"x")
    (tmp_path / "ISIC_2.png").write_bytes(b"x")
    table = speed.list_images(tmp_path, 0, ["mel", "nv"])
    assert list(table["image_id"]) == ["ISIC_1", "ISIC_2"] and list(table["label"]) == [0, 1]
    (tmp_path / "ISIC_3.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"1 of 3 images without a metadata row: \['ISIC_3.jpg'\]"):
        speed.list_images(tmp_path, 0, ["mel", "nv"])


def test_the_conventional_loader_reaches_no_epoch_end_inside_the_timed_steps() -> None:
    # The H200 run (5,000 images, batch 128: 39 batches an epoch) timed steps 17-46 of the
    # DataLoader, across an epoch end where persistent workers stall.
    import argparse

    from benchmarks import speed

    args = argparse.Namespace(device="cpu", batch=128, workers=8, steps=30)
    items = {"files": ["unused.jpg"] * 5000, "labels": [0] * 5000}
    prep = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    config = speed.load_stage_config("supcon", 224, 128)
    _, loader = speed.conventional_feed("supcon", config, items, prep, args)
    assert len(loader) >= max(speed.WARMUP_STEPS, 2 * args.workers) + args.steps
    order = list(loader.sampler)
    assert sorted(order[:5000]) == list(range(5000))  # each image once per pass
