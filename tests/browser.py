"""Headless Chromium for tests: find or install it, screenshot a page, dump its DOM.

The flags switch off everything that reaches for the network in the background (sync,
component updates, QUIC, ...): on a machine with no network Chromium otherwise waits on those
connections and the run hangs until its timeout. ``--no-sandbox`` is needed to run as root
(containers, CI). Each run gets a fresh profile directory, removed afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_TIMEOUT_S = 300
RUN_TIMEOUT_S = 60


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome executable on ``PATH``, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    """Chromium's path; installs Debian's ``chromium`` when missing and running as root.

    Skips the calling test (``pytest.skip``) with the reason when there is no Chromium and
    it cannot be installed.
    """
    path = find_chromium()
    if path:
        return path
    why = _install_chromium()
    path = find_chromium()
    if path:
        return path
    pytest.skip(f"chromium not installed and could not be installed: {why}")


def _install_chromium() -> str:
    """Try ``apt-get install chromium``; returns why it did not (or did) work."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root (install it with: apt-get install chromium)"
    apt = shutil.which("apt-get")
    if apt is None:
        return "apt-get not found (not a Debian/Ubuntu system)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    logger.info("Installing chromium with apt-get (up to %d s)", INSTALL_TIMEOUT_S)
    for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "chromium"]):
        remaining = max(deadline - time.monotonic(), 1.0)
        try:
            subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=remaining, check=True
            )
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} timed out after {INSTALL_TIMEOUT_S} s in all"
        except subprocess.CalledProcessError as error:
            tail = (error.stderr or error.stdout or "").strip()[-500:]
            return f"{' '.join(command)} exited with {error.returncode}: {tail}"
        except OSError as error:
            return f"{' '.join(command)} could not start: {error}"
    return "apt-get install chromium succeeded but no executable named " + (
        ", ".join(CHROMIUM_NAMES) + " is on PATH"
    )


def chromium_flags(user_data_dir: str | Path | None = None) -> list[str]:
    """Flags for a headless, offline, root-safe run with a fresh profile.

    Args:
        user_data_dir: Profile directory; a new temporary one when None (the caller owns it).
    """
    if user_data_dir is None:
        user_data_dir = tempfile.mkdtemp(prefix="chromium-profile-")
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-breakpad",
        "--mute-audio",
        "--hide-scrollbars",
        f"--user-data-dir={user_data_dir}",
    ]


def screenshot(
    html_path: str | Path, png_path: str | Path, width: int = 1200, height: int = 3000
) -> Path:
    """Render ``html_path`` headless and save a ``width`` x ``height`` PNG to ``png_path``.

    Raises:
        RuntimeError: If Chromium fails, times out, or writes no file.
    """
    png_path = Path(png_path).resolve()
    _run_chromium([f"--screenshot={png_path}", f"--window-size={width},{height}"], html_path)
    if not png_path.is_file():
        raise RuntimeError(f"chromium exited cleanly but wrote no screenshot at {png_path}")
    return png_path


def dump_dom(html_path: str | Path, *, virtual_time_budget_ms: int = 3000) -> str:
    """The DOM of ``html_path`` after load (scripts run) as serialized HTML.

    ``--virtual-time-budget`` lets the page's load handlers and timers run before the dump.
    """
    return _run_chromium(
        ["--dump-dom", f"--virtual-time-budget={virtual_time_budget_ms}"], html_path
    )


def _run_chromium(args: list[str], html_path: str | Path) -> str:
    """Run Chromium on a file:// URL; kills its whole process group on timeout."""
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [ensure_chromium(), *chromium_flags(profile), *args, url]
        # Chromium forks zygote/renderer/GPU helpers; a session of its own lets a timeout
        # kill all of them, not just the parent.
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(
                f"chromium timed out after {RUN_TIMEOUT_S} s: {' '.join(command)}"
            ) from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"chromium exited with {proc.returncode}: {' '.join(command)}\n{stderr[-2000:]}"
        )
    return stdout
