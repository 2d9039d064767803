"""Headless Chromium for tests: find or install it, serve a folder, screenshot, dump the DOM.

The flags switch off everything that reaches for the network in the background (sync,
component updates, QUIC, ...): on a machine with no network Chromium otherwise waits on those
connections and the run hangs until its timeout. Host names do not resolve (only 127.0.0.1 is
reachable), so a page's external resources, such as kedro-viz's web fonts, fail at once instead
of waiting. ``--no-sandbox`` is needed to run as root (containers, CI). Each run gets a fresh
profile directory, removed afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
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
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--no-pings",
        # Only the local test server resolves: nothing else on the network can be reached.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--mute-audio",
        "--hide-scrollbars",
        f"--user-data-dir={user_data_dir}",
    ]


def screenshot(
    page: str | Path,
    png_path: str | Path,
    width: int = 1200,
    height: int = 3000,
    *,
    virtual_time_budget_ms: int | None = None,
    scale: float = 1.0,
) -> Path:
    """Render ``page`` headless and save a ``width`` x ``height`` window as a PNG.

    Args:
        page: An HTML file, or an ``http://`` URL (e.g. from :func:`serve_directory`).
        png_path: Where the PNG goes.
        width: Window width in CSS pixels.
        height: Window height in CSS pixels.
        virtual_time_budget_ms: Let the page's scripts, fetches and timers run this long (in
            virtual time) before the capture; pages that render after load need it.
        scale: Device scale factor: the PNG is ``scale`` times the window size.

    Raises:
        RuntimeError: If Chromium fails, times out, or writes no file.
    """
    png_path = Path(png_path).resolve()
    _run_chromium(_screenshot_args(png_path, width, height, virtual_time_budget_ms, scale), page)
    if not png_path.is_file():
        raise RuntimeError(f"chromium exited cleanly but wrote no screenshot at {png_path}")
    return png_path


def render(
    page: str | Path,
    png_path: str | Path,
    width: int,
    height: int,
    *,
    virtual_time_budget_ms: int,
    scale: float = 1.0,
) -> str:
    """One Chromium run: screenshot ``page`` to ``png_path`` and return its DOM, serialized.

    Same arguments as :func:`screenshot`; for pages slow to render, one run instead of two.

    Raises:
        RuntimeError: If Chromium fails, times out, or writes no file.
    """
    png_path = Path(png_path).resolve()
    args = _screenshot_args(png_path, width, height, virtual_time_budget_ms, scale)
    dom = _run_chromium(["--dump-dom", *args], page)
    if not png_path.is_file():
        raise RuntimeError(f"chromium exited cleanly but wrote no screenshot at {png_path}")
    return dom


def _screenshot_args(
    png_path: Path, width: int, height: int, virtual_time_budget_ms: int | None, scale: float
) -> list[str]:
    args = [f"--screenshot={png_path}", f"--window-size={width},{height}"]
    if virtual_time_budget_ms is not None:
        args.append(f"--virtual-time-budget={virtual_time_budget_ms}")
    if scale != 1.0:
        args.append(f"--force-device-scale-factor={scale}")
    return args


def dump_dom(page: str | Path, *, virtual_time_budget_ms: int = 3000) -> str:
    """The DOM of ``page`` (an HTML file or an ``http://`` URL) after load, serialized.

    ``--virtual-time-budget`` lets the page's load handlers and timers run before the dump.
    """
    return _run_chromium(["--dump-dom", f"--virtual-time-budget={virtual_time_budget_ms}"], page)


@contextlib.contextmanager
def serve_directory(root: str | Path, extra_pages: dict[str, str] | None = None) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) in a thread; yields the base URL.

    Pages that fetch their data (single-page apps such as a kedro-viz build) do not work from
    ``file://``. ``extra_pages`` maps a path (``"/prepare.html"``) to HTML served from memory,
    so nothing is written into ``root``.
    """
    pages = {path: html.encode() for path, html in (extra_pages or {}).items()}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?", 1)[0])
            if body is None:
                super().do_GET()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            logger.debug("%s: " + format, self.address_string(), *args)

    handler = functools.partial(Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="serve_directory", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run_chromium(args: list[str], page: str | Path) -> str:
    """Run Chromium on a file or an http(s) URL; kills its whole process group on timeout."""
    is_url = isinstance(page, str) and page.startswith(("http://", "https://"))
    url = page if is_url else Path(page).resolve().as_uri()
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
