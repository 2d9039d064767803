"""benchmarks/host_allocator.py on a tiny model, on the CPU."""

import json
import platform
from pathlib import Path

import pytest
from benchmarks import host_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_both_variants_are_measured_in_fresh_processes(tmp_path: Path) -> None:
    argv = [
        "--encoder=test_efficientnet",
        "--crop=32",
        "--train-batches=4",
        "--eval-batch=4",
        "--steps=1",
        "--eval-steps=1",
        "--warmup=0",
        "--rounds=1",
    ]
    host_allocator.main([*argv, f"--results-dir={tmp_path}"])

    result = json.loads((tmp_path / "host-allocator-cpu-32px.json").read_text())
    assert set(result["tasks"]) == {"train:4", "eval"}
    for task in result["tasks"].values():
        # Each child says whether the setting took: only the kept one applies it.
        assert [run["applied"] for run in task["system"]["runs"]] == [False]
        assert [run["applied"] for run in task["kept"]["runs"]] == [True]
        for variant in ("system", "kept"):
            assert task[variant]["img_per_s"] > 0
            assert task[variant]["peak_host_mib"] > 0
    table = (tmp_path / "host-allocator-cpu-32px.md").read_text()
    assert "| train, batch 4 |" in table and "| eval, batch 4 |" in table


def test_bad_settings_are_refused(capsys: pytest.CaptureFixture) -> None:
    for bad in (["--train-batches=32,x"], ["--rounds=0"], ["--train-batches=0"]):
        with pytest.raises(SystemExit) as exc:
            host_allocator.parse_args(bad)
        assert exc.value.code == 2
    assert "--train-batches must be integers" in capsys.readouterr().err
