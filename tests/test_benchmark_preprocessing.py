"""The preprocessing benchmark on generated images: its rows, and no silent loss of real ones."""

import json
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
