"""benchmarks/host_allocator.py on a tiny model, on the CPU."""

import json
import platform
from pathlib import Path

import pytest
from benchmarks import host_allocator

ROOT = Path(__file__).resolve().parents[1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.slow
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


def test_a_result_made_with_other_settings_is_refused_before_any_measurement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file name holds the crop alone: another encoder replaced the measurement silently.
    def run_child(*args):
        raise AssertionError("measured before the check")

    monkeypatch.setattr(host_allocator, "run_child", run_child)
    committed = ROOT / "benchmarks" / "results" / "host-allocator-cpu-128px.json"
    before = committed.read_bytes()
    argv = [f"--results-dir={committed.parent}"]
    with pytest.raises(SystemExit, match=r"encoder 'tf_efficientnet_lite0' there, 'x' now"):
        host_allocator.main([*argv, "--encoder=x"])
    # Batches read from an older file's tasks; a setting it does not record is not refused.
    with pytest.raises(SystemExit, match=r"train_batches \[32, 128\] there, \[32\] now.*--results"):
        host_allocator.main([*argv, "--train-batches=32"])
    with pytest.raises(SystemExit, match=r"rounds 3 there, 1 now"):
        host_allocator.main([*argv, "--rounds=1"])
    assert committed.read_bytes() == before
    assert host_allocator.comparable_settings(json.loads(before))["train_batches"] == [32, 128]
    # The committed settings themselves pass the check (they would measure it again).
    host_allocator.check_not_overwriting(
        committed,
        host_allocator.settings_of(host_allocator.parse_args([])),
        flag="--results-dir",
        recorded=host_allocator.comparable_settings,
    )
