"""The preprocessing benchmark on generated images: its rows, and no silent loss of real ones."""

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks import preprocessing_speed

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / "preprocessing_speed.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_measures_real_upscaled_and_demo_images(demo_raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pre.json"
    done = _run(
        f"--real={demo_raw_dir}", "--images=84", "--repeats=1", "--cache=32x40", f"--out={out}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["data"] for r in rows] == [
        "HAM10000 (real)",
        "HAM10000 upscaled x3",
        "demo generator",
    ]
    assert all(r["images"] == 84 for r in rows)
    for row in rows:
        assert row["ours_img_per_s"] > 0 and row["pil_loop_img_per_s"] > 0, row
    assert "| HAM10000 upscaled x3 | 84 | 600x450 |" in out.with_suffix(".md").read_text()


def test_a_missing_real_folder_is_an_error_not_a_smaller_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "pre.json"
    for real in (tmp_path / "absent", tmp_path):  # missing, and a folder without JPEGs
        script = ["preprocessing_speed.py", f"--real={real}", f"--out={out}"]
        monkeypatch.setattr(sys, "argv", script)
        with pytest.raises(
            SystemExit, match=rf"--real {re.escape(str(real))}: no \.jpg.*--no-real"
        ):
            preprocessing_speed.main()
        assert not out.exists()
    done = _run("--no-real", "--images=84", "--repeats=1", "--cache=32x40", f"--out={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["data"] for r in json.loads(out.read_text())["rows"]] == ["demo generator"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Below the demo generator's minimum: failed after the real rows were measured.
        (["--images=83"], "--images must be at least 84 (the demo generator's minimum"),
        (["--images=0"], "--images must be at least 84"),  # blamed --real: no .jpg files
        (["--repeats=0"], "--repeats must be at least 1, got 0"),
        (["--cache=64"], "--cache must look like 256x341 (HxW), got '64'"),
    ],
)
def test_bad_settings_are_refused_before_any_measurement(
    argv: list[str],
    message: str,
    demo_raw_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "pre.json"
    script = ["preprocessing_speed.py", f"--real={demo_raw_dir}", f"--out={out}", *argv]
    monkeypatch.setattr(sys, "argv", script)
    with pytest.raises(SystemExit) as exc:
        preprocessing_speed.main()
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_result_with_other_settings_is_refused_before_any_measurement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skin_lesion.provenance import cpu_name

    def measure(*args):
        raise AssertionError("measured before the check")

    monkeypatch.setattr(preprocessing_speed, "measure", measure)
    out = tmp_path / "pre.json"
    row = {"data": "demo generator", "images": 84, "cache_size": "32x40", "repeats": 3}
    out.write_text(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "rows": [row]}))
    before = out.read_bytes()
    argv = ["--no-real", "--cache=32x40", f"--out={out}"]
    for changed, expected in [
        (["--images=84", "--repeats=1"], r"repeats 3 there, 1 now"),
        (
            ["--images=100", "--repeats=3"],
            r"images \{'demo generator': 84\} there, \{'demo generator': 100\} now",
        ),
    ]:
        with pytest.raises(SystemExit, match=rf"{expected}\); pass another --out"):
            preprocessing_speed.main([*argv, *changed])
    with pytest.raises(AssertionError, match="measured"):  # the same settings measure again
        preprocessing_speed.main([*argv, "--images=84", "--repeats=3"])
    assert out.read_bytes() == before
    # The committed result's settings as its rows record them.
    committed = json.loads((ROOT / "benchmarks/results/preprocessing.json").read_text())
    assert preprocessing_speed.comparable_settings(committed) | {"cpu": None} == {
        "cpu": None,
        "cores": 2,
        "images": {"HAM10000 (real)": 2000, "HAM10000 upscaled x3": 1000, "demo generator": 1000},
        "cache": "256x341",
        "repeats": 3,
    }


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="glibc's malloc (the benchmark fixes its mmap threshold) and /proc's VmHWM",
)
def test_the_peak_memory_of_a_small_run_counts_its_output_array(tmp_path: Path) -> None:
    """glibc raised its mmap threshold to the largest block freed (a measurement's own array
    among them), so the later runs' arrays came from heap memory an earlier one left
    resident: peaks of 0 MiB for a 3 MiB array."""
    out = tmp_path / "pre.json"
    done = _run("--no-real", "--images=84", "--repeats=3", "--cache=96x128", f"--out={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    array_mib = 84 * 96 * 128 * 3 / 2**20  # the uint8 array both methods fill: 2.95 MiB
    assert row["ours_peak_mib"] >= round(array_mib) - 1, row
    assert row["pil_loop_peak_mib"] >= round(array_mib) - 1, row
