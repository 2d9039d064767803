"""glibc's malloc keeps freed memory for the next batch in a run, unless told not to."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from skin_lesion import host_memory

ROOT = Path(__file__).resolve().parents[1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Touch 256 MiB in one allocation, free it, and report how much of it the process still holds.
PROBE = """
import json, re, sys
from pathlib import Path
import torch
from skin_lesion.host_memory import keep_freed_memory

def rss():
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmRSS:\\s+(\\d+) kB", text, re.MULTILINE).group(1)) / 1024

applied = keep_freed_memory()
before = rss()
block = torch.ones(64 * 2**20)  # 256 MiB of float32, every page written
del block
print(json.dumps({"applied": applied, "held_mib": rss() - before}))
"""


def _probe(env_extra: dict[str, str]) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("SKIN_LESION_MALLOC", None)
    env["PYTHONPATH"] = str(ROOT / "src")
    env.update(env_extra)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_memory_stays_for_reuse_and_the_opt_out_gives_it_back() -> None:
    kept = _probe({})
    assert kept["applied"] is True
    assert kept["held_mib"] > 200, kept  # still mapped: the next batch reuses it
    system = _probe({"SKIN_LESION_MALLOC": "system"})
    assert system["applied"] is False
    assert system["held_mib"] < 50, system  # unmapped at once: faulted in again next time


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SKIN_LESION_MALLOC", "system", "SKIN_LESION_MALLOC=system"),
        ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "LD_PRELOAD="),
        ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0", "GLIBC_TUNABLES"),
        ("MALLOC_ARENA_MAX", "2", "MALLOC_"),
    ],
)
def test_another_choice_of_allocator_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(host_memory, "_APPLIED", False)
    assert reason in (host_memory._reason_to_leave_alone() or "")
    assert host_memory.keep_freed_memory() is False


def test_a_kedro_run_and_the_cli_apply_it(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from skin_lesion import command
    from tests.conftest import run_kedro

    calls: list[str] = []
    monkeypatch.setattr(host_memory, "keep_freed_memory", lambda: calls.append("applied"))
    run_kedro(kedro_project, "data_processing")
    assert calls == ["applied"]  # before the first node
    # Refused (no checkpoint there), but only after the setting.
    assert command.main(["predict", str(tmp_path), "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert calls == ["applied", "applied"]
