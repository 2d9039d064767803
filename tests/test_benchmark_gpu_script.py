"""benchmarks/gpu.sh, driven by a stand-in Python that logs its arguments instead of running.

The script's job is order, arguments and failure handling: which commands a GPU session runs,
with which seeds and data, that a failed step does not stop the later ones, and that bad
input stops it before any GPU time is spent. A stand-in interpreter lets that be checked on a
CPU without running (or, on a GPU machine, accidentally launching) any benchmark.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"

# Logs each call's arguments on one line; answers the CUDA probe with $FAKE_CUDA (0 = yes)
# and fails any call whose arguments contain $FAKE_FAIL (exit status $FAKE_FAIL_STATUS, 3 by
# default); one whose arguments contain $FAKE_SLOW first sleeps 30 s in a child process (as a
# benchmark's workers would), logging its pid; with $FAKE_SLOW_EXIT set, the call itself
# sleeps, logs its own pid, and takes 2 s to stop after a signal (as a run saving its state
# would).
# With $FAKE_BARRIER set, each ablation waits (up to 20 s) until $FAKE_BARRIER_N ablations have
# started: only runs started together get past it. Each call also logs its OMP_NUM_THREADS.
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
echo "${OMP_NUM_THREADS:-unset} $*" >> "$FAKE_LOG.threads"
if [[ "$*" == *cuda.is_available* ]]; then exit "$FAKE_CUDA"; fi
if [[ -n "${FAKE_BARRIER:-}" && "$*" == *--ablation* ]]; then
    touch "$FAKE_BARRIER/$$"
    for _ in $(seq 200); do
        (( $(ls "$FAKE_BARRIER" | wc -l) >= FAKE_BARRIER_N )) && break
        sleep 0.1
    done
    (( $(ls "$FAKE_BARRIER" | wc -l) >= FAKE_BARRIER_N )) || exit 4
    echo "output of $*"
fi
if [[ -n "${FAKE_SLOW:-}" && "$*" == *"$FAKE_SLOW"* && -n "${FAKE_SLOW_EXIT:-}" ]]; then
    trap 'kill $!; sleep 2; exit 1' INT TERM HUP
    echo $$ >> "$FAKE_LOG.slow"
    sleep 30 &
    wait
elif [[ -n "${FAKE_SLOW:-}" && "$*" == *"$FAKE_SLOW"* ]]; then
    bash -c 'echo $$ >> "$FAKE_LOG.slow"; exec sleep 30'
fi
if [[ -n "${FAKE_FAIL:-}" && "$*" == *"$FAKE_FAIL"* ]]; then exit "${FAKE_FAIL_STATUS:-3}"; fi
exit 0
"""


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, Path]:
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    data = tmp_path / "ham"
    data.mkdir()
    (data / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n")
    return {"python": python, "data": data, "log": tmp_path / "calls.log"}


def run_script(fake: dict[str, Path], **env: str) -> tuple[subprocess.CompletedProcess, list]:
    environment = {
        **os.environ,
        "PYTHON": str(fake["python"]),
        "DATA": str(fake["data"]),
        "FAKE_LOG": str(fake["log"]),
        "FAKE_CUDA": "0",
        **env,
    }
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60
    )
    calls = fake["log"].read_text().splitlines() if fake["log"].exists() else []
    # The dependency check runs right after the CUDA probe, every time; left out of the calls
    # the tests compare (test_the_dependencies_are_checked_first checks it).
    probe = next((i for i, call in enumerate(calls) if "cuda.is_available" in call), None)
    if probe is not None and calls[probe + 1 : probe + 2] == [CHECK]:
        del calls[probe + 1]
    return result, calls


CHECK = "benchmarks/check_dependencies.py"


def _nvidia_smi(tmp_path: Path, script: str) -> str:
    """A PATH whose nvidia-smi runs ``script`` (this machine's own, if any, is not asked)."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    smi = tools / "nvidia-smi"
    smi.write_text(f"#!/usr/bin/env bash\n{script}\n")
    smi.chmod(0o755)
    return f"{tools}:{os.environ['PATH']}"


def test_the_dependencies_are_checked_first_and_a_misfit_is_reported_not_fatal(
    fake: dict[str, Path],
) -> None:
    result, _ = run_script(fake, STEPS="speed", FAKE_FAIL="check_dependencies")
    assert result.returncode == 0, result.stderr
    logged = fake["log"].read_text().splitlines()
    assert logged[1] == CHECK and logged[2] == "benchmarks/augment_cost.py"
    assert "dependencies missing or out of range (above); going on" in result.stderr


def test_runs_every_step_in_order_with_the_seeds_and_data(
    fake: dict[str, Path], tmp_path: Path
) -> None:
    path = _nvidia_smi(tmp_path, "echo 'NVIDIA H200'")
    result, calls = run_script(fake, SEEDS="0 1", PATH=path)
    assert result.returncode == 0, result.stderr
    data = fake["data"]
    accuracy = f"benchmarks/accuracy.py --setting gpu-full --data {data} --seeds 0 1"
    assert calls == [
        calls[0],  # the CUDA probe
        "-m pytest -q -m gpu tests/test_gpu.py tests/test_augment.py tests/test_batches.py",
        "benchmarks/augment_cost.py",
        f"benchmarks/speed.py --data {data}",
        accuracy,
        "benchmarks/inference_speed.py --data-dir data/benchmarks/gpu-full/data/gpu_full "
        f"--images {data} --metadata {data}/HAM10000_metadata.csv "
        "--out benchmarks/results/inference_speed-h200.json",
        *(
            f"benchmarks/accuracy.py --setting gpu-full --ablation {name} --data {data} --seeds 0 1"
            for name in ("no-contrastive", "metadata-fusion", "cross-entropy", "weighted-sampling")
        ),
        "benchmarks/accuracy.py --setting gpu-full --compare",
    ]
    assert "cuda.is_available" in calls[0]


def test_speed_args_reach_the_speed_benchmark_only(fake: dict[str, Path]) -> None:
    result, calls = run_script(fake, STEPS="speed gpu-full", SPEED_ARGS="--workers 8 --steps 60")
    assert result.returncode == 0, result.stderr
    data = fake["data"]
    # Read by speed.py's parser first (gpu_settings.py), before the CUDA probe.
    assert calls[0] == "benchmarks/gpu_settings.py --speed-args=--workers 8 --steps 60"
    assert "cuda.is_available" in calls[1]
    assert calls[2:] == [
        "benchmarks/augment_cost.py",
        f"benchmarks/speed.py --data {data} --workers 8 --steps 60",
        f"benchmarks/accuracy.py --setting gpu-full --data {data} --seeds 0",
    ]


@pytest.mark.parametrize(
    ("smi", "out"),
    [
        ("echo 'NVIDIA H100 80GB HBM3'", "inference_speed-h100-80gb-hbm3.json"),
        ("exit 9", "inference_speed-gpu.json"),  # nvidia-smi does not answer
    ],
)
def test_inference_results_are_named_after_the_gpu(
    smi: str, out: str, fake: dict[str, Path], tmp_path: Path
) -> None:
    # A fixed inference_speed-gpu.json: an H100 session overwrote an H200's figures (and is
    # now refused by inference_speed.py's check, losing the step).
    result, calls = run_script(fake, STEPS="inference", PATH=_nvidia_smi(tmp_path, smi))
    assert result.returncode == 0, result.stderr
    assert calls[1].startswith("benchmarks/inference_speed.py ")
    assert calls[1].endswith(f" --out benchmarks/results/{out}")


def test_a_failed_step_does_not_stop_the_rest_and_is_named(fake: dict[str, Path]) -> None:
    result, calls = run_script(fake, FAKE_FAIL="--ablation cross-entropy")
    assert result.returncode == 1
    assert "failed: cross-entropy" in result.stderr
    assert any("weighted-sampling" in call for call in calls)
    assert calls[-1].endswith("--compare")


def test_step_timeout_stops_a_command_and_its_children_and_goes_on(
    fake: dict[str, Path],
) -> None:
    start = time.monotonic()
    result, calls = run_script(
        fake,
        STEPS="speed gpu-full ablations",
        STEP_TIMEOUT="1",
        FAKE_SLOW="speed.py",
        ABLATIONS="no-contrastive cross-entropy",
    )
    assert time.monotonic() - start < 20  # not the 30 s the stand-in sleeps
    assert result.returncode == 1
    assert "failed: speed (stopped at STEP_TIMEOUT=1); results so far" in result.stderr
    assert [call.split()[0] for call in calls if "gpu_settings" not in call][1:] == [
        "benchmarks/augment_cost.py",
        "benchmarks/speed.py",
        *["benchmarks/accuracy.py"] * 3,
    ]
    (sleeper,) = Path(f"{fake['log']}.slow").read_text().split()
    assert not Path(f"/proc/{sleeper}").exists() or "zombie" in _state(sleeper)


def _default_signals() -> None:
    """Give INT, TERM and HUP their default actions (in the child, before it runs bash)."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def _state(pid: str) -> str:
    """A process's state as /proc reads it ("zombie", "sleeping", ...), "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (FileNotFoundError, IndexError):
        return ""


def test_step_timeout_applies_to_each_ablation_and_is_named_with_its_step(
    fake: dict[str, Path],
) -> None:
    result, _ = run_script(
        fake,
        STEPS="ablations",
        STEP_TIMEOUT="1s",
        FAKE_SLOW="--ablation cross-entropy",
        FAKE_FAIL="--ablation weighted-sampling",
    )
    assert result.returncode == 1
    assert (
        "failed: cross-entropy (stopped at STEP_TIMEOUT=1s), weighted-sampling; results"
        in result.stderr
    )


def test_a_command_s_own_exit_status_124_or_137_is_not_called_a_timeout(
    fake: dict[str, Path],
) -> None:
    for status in ("124", "137"):
        result, _ = run_script(
            fake, STEPS="speed", STEP_TIMEOUT="1h", FAKE_FAIL="speed.py", FAKE_FAIL_STATUS=status
        )
        assert result.returncode == 1
        assert "failed: speed; results so far" in result.stderr
        assert f"speed.py exited with status {status} before STEP_TIMEOUT" in result.stderr


PARALLEL_PAIR = {"STEPS": "ablations", "PARALLEL": "1", "ABLATIONS": "cross-entropy contrastive"}


@pytest.mark.parametrize(
    ("env", "signal_to", "sleepers", "status"),
    [
        # Ctrl-C at a terminal: INT to the script's process group (timeout's is another).
        ({"STEPS": "speed"}, "group-INT", 1, 130),
        # A wrapper's TERM (coreutils timeout, a scheduler) to the script alone.
        ({"STEPS": "speed"}, "script-TERM", 1, 143),
        # A terminal's hangup: HUP to its foreground process group.
        ({"STEPS": "speed"}, "group-HUP", 1, 129),
        (PARALLEL_PAIR, "group-INT", 2, 130),
        (PARALLEL_PAIR, "group-TERM", 2, 143),
        (PARALLEL_PAIR, "script-TERM", 2, 143),
        (PARALLEL_PAIR, "group-HUP", 2, 129),
    ],
)
def test_a_signal_to_the_script_stops_the_command_under_step_timeout(
    env: dict[str, str], signal_to: str, sleepers: int, status: int, fake: dict[str, Path]
) -> None:
    environment = {
        **os.environ,
        "PYTHON": str(fake["python"]),
        "DATA": str(fake["data"]),
        "FAKE_LOG": str(fake["log"]),
        "FAKE_CUDA": "0",
        "STEP_TIMEOUT": "5m",
        "FAKE_SLOW": "speed.py" if env["STEPS"] == "speed" else "--setting gpu-full --ablation",
        # The commands take 2 s to stop: the script must not return before they have.
        "FAKE_SLOW_EXIT": "1",
        **env,
    }
    script = subprocess.Popen(
        ["bash", str(SCRIPT)],
        env=environment,
        start_new_session=True,
        # As at a terminal: a shell cannot trap a signal ignored when it starts, and pytest
        # may run with INT or HUP ignored (started in the background, or under nohup).
        preexec_fn=_default_signals,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    slow = Path(f"{fake['log']}.slow")
    try:
        for _ in range(200):
            if slow.exists() and len(slow.read_text().split()) == sleepers:
                break
            time.sleep(0.1)
        pids = slow.read_text().split()
        assert len(pids) == sleepers
        where, name = signal_to.split("-")
        number = getattr(signal, f"SIG{name}")
        if where == "group":
            os.killpg(script.pid, number)
        else:
            script.send_signal(number)
        returned = script.wait(timeout=20)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    assert returned == status
    assert all(not _state(pid) or "zombie" in _state(pid) for pid in pids)


def test_steps_select_and_order_the_work(fake: dict[str, Path]) -> None:
    result, calls = run_script(fake, STEPS="speed tests")
    assert result.returncode == 0, result.stderr
    assert [call.split()[0] for call in calls[1:]] == [
        "benchmarks/augment_cost.py",
        "benchmarks/speed.py",
        "-m",
    ]


def test_resume_finishes_the_accuracy_runs_only(fake: dict[str, Path]) -> None:
    result, calls = run_script(fake, RESUME="1", STEPS="speed gpu-full ablations")
    assert result.returncode == 0, result.stderr
    accuracy = [call for call in calls if call.startswith("benchmarks/accuracy.py")]
    assert len(accuracy) == 5 and all(call.endswith(" --resume") for call in accuracy)
    assert not any("--resume" in call for call in calls if call not in accuracy)
    fake["log"].unlink()
    _, calls = run_script(fake, RESUME="0", STEPS="gpu-full")
    assert any(call.startswith("benchmarks/accuracy.py") for call in calls)
    assert not any("--resume" in call for call in calls)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RESUME": "yes"}, "RESUME=yes: expected 1"),
        ({"STEP_TIMEOUT": "25 min"}, "STEP_TIMEOUT=25 min: expected a duration"),
        ({"STEPS": "tests sped"}, "unknown step 'sped'"),
        ({"FAKE_CUDA": "1"}, "no CUDA device"),
        ({"DATA": "/nonexistent/ham"}, "/nonexistent/ham has no HAM10000_metadata.csv"),
    ],
)
def test_bad_input_stops_before_any_benchmark(
    fake: dict[str, Path], env: dict[str, str], message: str
) -> None:
    result, calls = run_script(fake, **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert all("benchmarks/" not in call and "pytest" not in call for call in calls)


def _kept_encoders(work: Path, seeds: tuple[int, ...]) -> None:
    for seed in seeds:
        encoder = work / "gpu-full" / "kept" / f"seed{seed}" / "06_models" / "pretrained_encoder.pt"
        encoder.parent.mkdir(parents=True)
        encoder.write_text("kept")


def test_classifier_ablations_reuse_the_kept_pretraining(
    fake: dict[str, Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    _kept_encoders(work, (0, 1))
    result, calls = run_script(fake, SEEDS="0 1", STEPS="gpu-full ablations", WORK_DIR=str(work))
    assert result.returncode == 0, result.stderr
    data = fake["data"]
    tail = f"--data {data} --seeds 0 1 --work-dir {work}"
    assert calls[1:] == [
        f"benchmarks/accuracy.py --setting gpu-full {tail}",
        # SupCon off: nothing to take.
        f"benchmarks/accuracy.py --setting gpu-full --ablation no-contrastive {tail}",
        *(
            f"benchmarks/accuracy.py --setting gpu-full --ablation {name} {tail} "
            "--pretraining-from gpu-full"
            for name in ("metadata-fusion", "cross-entropy", "weighted-sampling")
        ),
    ]
    assert "(--pretraining-from gpu-full)" in result.stderr


@pytest.mark.parametrize(
    ("kept", "env"),
    [
        ((0,), {}),  # seed 1's pretraining is not on this machine: each trains its own
        ((0, 1), {"REUSE_PRETRAINING": "0"}),  # asked not to
    ],
)
def test_ablations_train_their_own_pretraining_otherwise(
    kept: tuple, env: dict, fake: dict[str, Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    _kept_encoders(work, kept)
    result, calls = run_script(fake, SEEDS="0 1", STEPS="ablations", WORK_DIR=str(work), **env)
    assert result.returncode == 0, result.stderr
    assert len(calls) == 5 and not any("--pretraining-from" in call for call in calls)


def test_a_bad_reuse_setting_stops_before_any_benchmark(fake: dict[str, Path]) -> None:
    result, calls = run_script(fake, REUSE_PRETRAINING="yes")
    assert result.returncode == 2
    assert "REUSE_PRETRAINING=yes: expected 1 or 0" in result.stderr
    assert calls == []


ABLATIONS = ("no-contrastive", "metadata-fusion", "cross-entropy", "weighted-sampling")


@pytest.mark.parametrize("failing", [None, "--ablation cross-entropy"])
def test_parallel_starts_every_ablation_together_with_its_own_log(
    failing: str | None, fake: dict[str, Path], tmp_path: Path
) -> None:
    barrier, logs = tmp_path / "barrier", tmp_path / "logs"
    barrier.mkdir()
    env = {"PARALLEL": "1", "STEPS": "ablations compare", "LOG_DIR": str(logs)}
    env |= {"FAKE_BARRIER": str(barrier), "FAKE_BARRIER_N": "4"}
    env |= {"FAKE_FAIL": failing} if failing else {}
    result, calls = run_script(fake, **env)
    # Run one after another, the first ablation would wait at the barrier alone and fail.
    assert result.returncode == (1 if failing else 0), result.stderr
    if failing:
        assert "failed: cross-entropy" in result.stderr
    data = fake["data"]
    ablations = sorted(c for c in calls if "--ablation" in c)
    assert ablations == sorted(
        f"benchmarks/accuracy.py --setting gpu-full --ablation {name} --data {data} --seeds 0 "
        "--concurrent 4"
        for name in ABLATIONS
    )
    assert calls[-1] == "benchmarks/accuracy.py --setting gpu-full --compare"  # after them all
    for name in ABLATIONS:
        assert f"--ablation {name} " in (logs / f"{name}.log").read_text()
    # The CPU threads are shared out among the runs.
    threads = Path(f"{fake['log']}.threads").read_text().splitlines()
    share = str(max(1, (os.cpu_count() or 1) // 4))
    assert {line.split()[0] for line in threads if "--ablation" in line} == {share}


def test_parallel_reuses_the_kept_pretraining_like_the_sequential_runs(
    fake: dict[str, Path], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    _kept_encoders(work, (0,))
    env = {"PARALLEL": "1", "STEPS": "ablations", "WORK_DIR": str(work)}
    result, calls = run_script(fake, ABLATIONS="no-contrastive cross-entropy", **env)
    assert result.returncode == 0, result.stderr
    reused = [c for c in calls if "--pretraining-from gpu-full" in c]
    assert len(reused) == 1 and "--ablation cross-entropy" in reused[0]
    assert calls[0] == "benchmarks/gpu_settings.py --ablations=no-contrastive cross-entropy"
    assert all("--concurrent 2" in c for c in calls[2:])
    assert (work / "logs" / "no-contrastive.log").exists()  # LOG_DIR defaults under WORK_DIR


def test_parallel_falls_back_to_one_at_a_time_on_an_exclusive_gpu(
    fake: dict[str, Path], tmp_path: Path
) -> None:
    path = _nvidia_smi(tmp_path, "echo Exclusive_Process")
    result, calls = run_script(fake, PARALLEL="1", STEPS="ablations", PATH=path)
    assert result.returncode == 0, result.stderr
    assert "Exclusive_Process" in result.stderr
    assert len(calls) == 5 and not any("--concurrent" in c for c in calls)


def test_a_bad_parallel_setting_stops_before_any_benchmark(fake: dict[str, Path]) -> None:
    result, calls = run_script(fake, PARALLEL="yes")
    assert result.returncode == 2
    assert "PARALLEL=yes: expected 1 or 0" in result.stderr
    assert calls == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ABLATIONS": "cross-entropy crossentropy", "STEPS": "ablations"},
            "ABLATIONS: unknown ablation(s) crossentropy (known: contrastive cross-entropy",
        ),
        (
            {"SPEED_ARGS": "--workers eight", "STEPS": "tests speed"},
            "argument --workers: invalid int value: 'eight'\nbenchmarks/gpu.sh: SPEED_ARGS="
            "--workers eight: refused by benchmarks/speed.py",
        ),
    ],
)
def test_ablations_and_speed_args_are_read_before_any_gpu_work(
    env: dict[str, str], message: str, fake: dict[str, Path]
) -> None:
    """They reached accuracy.py and speed.py only at their steps, minutes into a session.
    Here the real interpreter reads them (the CUDA probe, after, fails on a CPU)."""
    result, _ = run_script(fake, PYTHON=sys.executable, **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "no CUDA device" not in result.stderr  # refused before the probe


def test_valid_ablations_and_speed_args_pass_the_check(fake: dict[str, Path]) -> None:
    from benchmarks import gpu_settings

    assert gpu_settings.check("cross-entropy weighted-sampling", "--workers 8 --steps 60") == []
    assert gpu_settings.check(None, None) == []
    assert gpu_settings.check("crossentropy", None)  # the same reader refuses a typo
    # Read only where their step is asked for (and ABLATIONS only where set).
    for env in ({"ABLATIONS": "crossentropy", "STEPS": "speed"}, {"SPEED_ARGS": "-x"}):
        result, calls = run_script(fake, **{"STEPS": "tests", **env})
        assert result.returncode == 0, result.stderr
        assert not any("gpu_settings" in call for call in calls)


@pytest.mark.parametrize("speed_args", ["--cudnn-benchmark", "--workers=8"])
def test_speed_args_of_one_word_pass_the_check(speed_args: str, fake: dict[str, Path]) -> None:
    """A SPEED_ARGS of one word that starts with "-" was taken for an option of
    gpu_settings.py's own (``--speed-args: expected one argument``): refused though valid.
    The real interpreter reads it; no CUDA device is visible to it, so the probe after stops."""
    result, _ = run_script(
        fake, PYTHON=sys.executable, SPEED_ARGS=speed_args, STEPS="speed", CUDA_VISIBLE_DEVICES=""
    )
    assert "expected one argument" not in result.stderr
    assert "no CUDA device" in result.stderr  # past the check, stopped at the probe


def test_speed_args_are_split_as_gpu_sh_splits_them() -> None:
    from benchmarks import gpu_settings

    # gpu.sh passes $SPEED_ARGS unquoted: speed.py gets "'/tmp/a" and "b'", and refuses them.
    assert gpu_settings.check(None, "--results-dir '/tmp/a b'")
    assert gpu_settings.check(None, "--results-dir it's") == []  # no shlex error either


def test_the_check_leaves_sys_argv_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """It named speed.py in argparse's usage line by setting sys.argv[0], and left it so: the
    test process's later parsers, and run_lock's record of the command, said speed.py."""
    from benchmarks import gpu_settings

    monkeypatch.setattr(sys, "argv", ["pytest", "-q"])
    gpu_settings.check(None, "--workers 8")
    gpu_settings.check(None, "--workers eight")
    assert sys.argv == ["pytest", "-q"]
