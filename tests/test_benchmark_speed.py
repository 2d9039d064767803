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
        "--steps=3",
        "--workers=2",
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
    # Recorded, so that a run with other threads or malloc is refused over this one.
    assert result["settings"]["threads"] == 1
    assert result["settings"]["malloc_kept"] is malloc_settable
    for stage in ("supcon", "classifier"):
        feeds = result["stages"][stage]
        for feed in ("limit", "conventional", "ours"):
            assert feeds[feed]["img_per_s"] > 0, (stage, feed)
            assert feeds[feed]["host_peak_rss_mib"] > 0
            assert feeds[feed]["gpu_peak_mib"] is None
            # Every feed under the allocator a kedro run uses (where glibc lets it be set).
            assert feeds[feed]["malloc_kept"] is malloc_settable
        # The conventional feed ran its DataLoader workers; the others have none.
        assert feeds["conventional"]["workers"] == 2
        assert feeds["ours"]["workers"] == 0
        # Timed over whole rounds of its two workers: 4 steps for the 3 asked.
        assert [feeds[f]["timed_steps"] for f in ("limit", "conventional", "ours")] == [3, 4, 3]
        ratio = feeds["ours"]["img_per_s"] / feeds["limit"]["img_per_s"]
        assert feeds["ours_fraction_of_limit"] == pytest.approx(ratio, abs=1e-3)
    table = (tmp_path / "speed-cpu-test_efficientnet-32.md").read_text()
    assert table in done.stdout
    assert "| SupCon pretraining (2 views/image) |" in table
    assert "3 timed steps (conventional: 4, whole rounds of its workers);" in table
    assert ("malloc keeping freed memory as the pipelines" in table) is malloc_settable


def _planned(**changes) -> dict:
    import argparse

    from benchmarks import speed

    args = argparse.Namespace(
        batch=32,
        cache="150x200",
        steps=30,
        workers=2,
        threads=0,
        data=Path("/d/ham10000_200x150"),
        cudnn_benchmark=False,
    )
    return speed.planned_settings(argparse.Namespace(**{**vars(args), **changes}), 10015, True)


def test_a_trial_with_other_settings_does_not_overwrite_a_measurement(tmp_path: Path) -> None:
    from benchmarks import speed
    from benchmarks.overwrite import check_not_overwriting

    def check(planned: dict) -> None:
        check_not_overwriting(
            path, planned, flag="--results-dir", recorded=speed.comparable_settings
        )

    path = tmp_path / "speed-cpu-lite0-96.json"
    check(_planned())  # nothing there yet
    settings = _planned() | {"data": "/elsewhere/ham10000_200x150"}  # recorded as given
    path.write_text(json.dumps({"settings": settings}))
    check(_planned())  # the same measurement again, the same folder at another path
    with pytest.raises(SystemExit, match=r"images 10015 there, 200 now\); pass another"):
        check(_planned() | {"images": 200})
    # Threads, malloc and the data folder are settings too (they were not compared).
    with pytest.raises(SystemExit, match=r"threads 0 there, 1 now\); pass another --results-dir"):
        check(_planned(threads=1))
    with pytest.raises(SystemExit, match=r"malloc_kept True there, False now"):
        check(_planned() | {"malloc_kept": False})
    with pytest.raises(SystemExit, match=r"data 'ham10000_200x150' there, 'demo' now"):
        check(_planned(data=Path("/d/demo")))
    assert json.loads(path.read_text())["settings"] == settings


def test_an_older_result_is_compared_on_what_it_records() -> None:
    """Files from before threads and malloc were settings: a key they lack is unknown, and
    malloc is read from their feeds where each records it."""
    from benchmarks import speed
    from benchmarks.overwrite import check_not_overwriting

    committed = ROOT / "benchmarks" / "results" / "speed-cpu-tf_efficientnet_lite0-128.json"
    before = committed.read_bytes()
    result = json.loads(before)
    assert "threads" not in result["settings"] and "malloc_kept" not in result["settings"]
    planned = _planned() | {"steps": 30, "images": 10015}

    def check(planned: dict) -> None:
        check_not_overwriting(
            committed, planned, flag="--results-dir", recorded=speed.comparable_settings
        )

    check(planned)  # the same settings may measure it again
    with pytest.raises(SystemExit, match=r"malloc_kept True there, False now"):
        check(planned | {"malloc_kept": False})  # every feed recorded malloc kept
    assert committed.read_bytes() == before
    # Feeds without a malloc record (older still): unknown, not refused.
    unknown = speed.comparable_settings(
        json.loads((committed.parent / "speed-cpu-tf_efficientnet_lite0-96.json").read_text())
    )
    assert "malloc_kept" not in unknown and unknown["data"] == "ham10000_200x150"


def test_a_run_with_other_threads_is_refused_before_it_measures(
    demo_raw_dir: Path, tmp_path: Path
) -> None:
    argv = ["--encoder=test_efficientnet", "--crop=32", "--batch=4", "--cache=40x48"]
    argv += ["--steps=2", "--workers=1", "--images=24", "--device=cpu", f"--data={demo_raw_dir}"]
    # Measured with --threads 1; malloc not recorded (unknown there: not held against the run).
    settings = {"batch": 4, "cache": "40x48", "steps": 2, "workers": 1, "threads": 1}
    settings |= {"data": str(demo_raw_dir), "images": 24}
    result = tmp_path / "speed-cpu-test_efficientnet-32.json"
    result.write_text(json.dumps({"settings": settings}))
    command = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), *argv, "--threads=2"]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [*command, f"--results-dir={tmp_path}"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "threads 1 there, 2 now); pass another --results-dir" in done.stderr
    assert "decoded into the cache" not in done.stderr  # refused before any work
    assert json.loads(result.read_text()) == {"settings": settings}


@pytest.mark.parametrize("cache", ["64", "64x", "axb", "0x64", "1x2x3"])
def test_a_malformed_cache_size_is_refused_by_the_parser(
    cache: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import speed

    # Accepted here, it failed in build_cache, after the images were listed.
    monkeypatch.setattr(sys, "argv", ["speed.py", f"--cache={cache}"])
    with pytest.raises(SystemExit) as exc:
        speed.parse_args()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--cache must" in err and repr(cache) in err


def test_a_diagnosis_outside_the_classes_is_named_with_its_csv(tmp_path: Path) -> None:
    csv = tmp_path / "HAM10000_metadata.csv"
    csv.write_text("image_id,dx\nISIC_1,mel\nISIC_2,BKL\n")
    (tmp_path / "ISIC_1.jpg").write_bytes(b"x")
    (tmp_path / "ISIC_2.jpg").write_bytes(b"x")
    command = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--device=cpu"]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [*command, f"--data={tmp_path}", f"--results-dir={tmp_path / 'r'}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1
    assert f"{csv}: diagnoses outside the classes" in done.stderr
    assert "['BKL']" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


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


def test_a_failed_measurement_keeps_the_finished_ones(
    demo_raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One child failing (a DataLoader worker out of shared memory, say) threw away every
    finished measurement: minutes of GPU time, the results written only at the end."""
    from benchmarks import speed

    def measured(args, stage: str, feed: str) -> dict:
        if (stage, feed) == ("classifier", "conventional"):
            raise subprocess.CalledProcessError(-9, ["child"])
        return {"img_per_s": 10.0, "stage": stage, "feed": feed}

    monkeypatch.setattr(speed, "run_isolated", measured)
    argv = ["--encoder=test_efficientnet", "--crop=32", "--batch=4", "--cache=40x48"]
    argv += ["--steps=2", "--workers=1", "--images=24", "--device=cpu", "--threads=1"]
    argv += [f"--data={demo_raw_dir}", f"--results-dir={tmp_path}"]
    with pytest.raises(SystemExit, match=r"classifier / conventional failed \(exit -9\)"):
        speed.main(argv)
    partial = json.loads((tmp_path / "speed-cpu-test_efficientnet-32-partial.json").read_text())
    assert {"limit", "conventional", "ours"} <= set(partial["stages"]["supcon"])
    assert set(partial["stages"]["classifier"]) == {"limit"}
    assert partial["settings"]["batch"] == 4 and partial["settings"]["steps"] == 2
    assert not (tmp_path / "speed-cpu-test_efficientnet-32.json").exists()


def test_cudnn_autotuning_is_passed_to_every_feed_and_recorded_only_when_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An A/B for a GPU session: the option reaches each measuring process and is recorded
    (a run with it cannot replace one without), while older results compare as before."""
    from benchmarks import speed

    assert "cudnn_benchmark" not in _planned()
    assert _planned(cudnn_benchmark=True)["cudnn_benchmark"] is True
    commands = []

    def run(command, check):
        commands.append(command)
        (tmp_path / "result-supcon-ours.json").write_text("{}")

    monkeypatch.setattr(speed.subprocess, "run", run)
    for flag in ([], ["--cudnn-benchmark"]):
        args = speed.parse_args(["--device=cpu", *flag])
        args.cache_dir = tmp_path
        speed.run_isolated(args, "supcon", "ours")
    assert ["--cudnn-benchmark" in c for c in commands] == [False, True]
    assert speed.parse_args(["--child=supcon:ours", "--cudnn-benchmark"]).cudnn_benchmark


def test_the_conventional_feed_is_timed_over_whole_rounds_of_its_workers() -> None:
    """Loader-bound, N workers started together deliver their batches in bursts of N: 30
    timed steps of 8 workers were charged four rounds for 3.75 rounds' batches ((b) 6% slow;
    30 of 14 workers, 29%). The conventional feed's timed steps are whole rounds."""
    import argparse

    from benchmarks import speed

    assert speed.timed_steps("conventional", 30, 8) == 32
    assert speed.timed_steps("conventional", 30, 14) == 42
    assert speed.timed_steps("conventional", 30, 15) == 30
    assert speed.timed_steps("conventional", 30, 1) == 30  # one worker: no bursts
    assert speed.timed_steps("conventional", 30, 0) == 30  # loaded in the training process
    for feed in ("limit", "ours"):  # no workers there: the steps asked
        assert speed.timed_steps(feed, 30, 8) == 30
    # The loader's one epoch holds the rounded steps too (no epoch end inside them).
    args = argparse.Namespace(device="cpu", batch=128, workers=8, steps=30)
    items = {"files": ["unused.jpg"] * 5000, "labels": [0] * 5000}
    prep = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    config = speed.load_stage_config("supcon", 224, 128)
    _, loader = speed.conventional_feed("supcon", config, items, prep, args)
    assert len(loader) >= 2 * args.workers + 32


def test_the_caption_names_the_conventional_feeds_rounded_steps() -> None:
    from benchmarks import speed

    def result(timed: int | None) -> dict:
        feed = {"timed_steps": timed} if timed is not None else {}
        stage = {"limit": {}, "conventional": feed, "ours": {}}
        return {"settings": {"steps": 30}, "stages": {"supcon": stage, "classifier": stage}}

    assert (
        speed._conventional_steps(result(32)) == " (conventional: 32, whole rounds of its workers)"
    )
    assert speed._conventional_steps(result(30)) == ""
    assert speed._conventional_steps(result(None)) == ""  # files from before: as they were


def test_the_conventional_loader_takes_every_core_but_one_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """min(8, cores) left half of a 16-core GPU host idle while (b), decoding and augmenting
    on the CPU, was the bottleneck: the baseline was handicapped and ours' multiple inflated."""
    from benchmarks import speed

    monkeypatch.setattr(speed.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert speed.parse_args([]).workers == 15
    monkeypatch.setattr(speed.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert speed.parse_args([]).workers == 1
    assert speed.parse_args(["--workers=4"]).workers == 4


def test_an_image_count_that_leaves_a_class_out_is_refused_before_measuring(
    tmp_path: Path,
) -> None:
    """`--images 64` of HAM10000 drew no df image: the classifier's first measurement failed
    in its loss (inverse class weights) after SupCon's three had run."""
    from benchmarks import speed

    rows = [("ISIC_1", "mel"), ("ISIC_2", "nv"), ("ISIC_3", "df")]
    csv = "image_id,dx\n" + "".join(f"{i},{dx}\n" for i, dx in rows)
    (tmp_path / "HAM10000_metadata.csv").write_text(csv)
    for image_id, _ in rows:
        (tmp_path / f"{image_id}.jpg").write_bytes(b"x")
    classes = ["mel", "nv", "df"]
    assert len(speed.list_images(tmp_path, 0, classes)) == 3
    with pytest.raises(ValueError, match=r"the 2 images drawn \(--images 2\) hold no \['"):
        speed.list_images(tmp_path, 2, classes)  # one class of three left out, whichever
    with pytest.raises(ValueError, match=r"the images hold no \['akiec'\]"):
        speed.list_images(tmp_path, 0, [*classes, "akiec"])


def test_the_conventional_augmentation_rotates_bilinearly_as_ours_does() -> None:
    """torchvision's RandomRotation defaults to nearest-neighbour, cheaper than the bilinear
    resampling of ours (one grid_sample): the baseline did less work than ours."""
    import torchvision.transforms as T
    from benchmarks import speed

    config = speed.load_stage_config("classifier", 224, 32)
    compose = speed.torchvision_augment(config.augment, [0.5] * 3, [0.5] * 3)
    rotations = [
        t
        for op in compose.transforms
        if isinstance(op, T.RandomApply)
        for t in op.transforms
        if isinstance(t, T.RandomRotation)
    ]
    assert len(rotations) == 1
    assert rotations[0].interpolation == T.InterpolationMode.BILINEAR
