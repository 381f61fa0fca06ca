"""The dashboard as ``fleetwatch dashboard`` serves it: a real process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

STOP_TIMEOUT_S = 10.0


class DashboardStartError(RuntimeError):
    """The dashboard process exited or stayed silent instead of serving."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    """Poll Streamlit's health endpoint; Streamlit signals readiness no other way."""
    deadline = time.monotonic() + timeout_s
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            state = "exited" if process.returncode is not None else f"silent for {timeout_s:.0f}s"
            tail = log.read_text(errors="replace")[-2000:]
            raise DashboardStartError(f"dashboard {state} before serving {url}:\n{tail}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the whole process group (Streamlit and anything it started)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def serve_dashboard(env: Mapping[str, str], log: Path, timeout_s: float = 30.0) -> Iterator[str]:
    """Run ``fleetwatch dashboard`` with ``env`` until the block ends; yields its base URL.

    The process's output goes to ``log``, quoted when it fails to start.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "fleetwatch", "dashboard", "--port", str(port)]
    # No file watcher: nothing is edited while the test runs, and CI's inotify limits are low.
    child_env = {
        **env,
        "FLEETWATCH_DASHBOARD_ADDRESS": "127.0.0.1",
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(  # its own group, so stopping it leaves no stray child
            argv, env=child_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_healthy(process, url, log, timeout_s)
            yield url
        finally:
            _stop(process)
