"""``fleetwatch`` commands as child processes of a test: a kill is a real SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO


@contextmanager
def child(args: list[str], env: dict[str, str], ready: str) -> Iterator[subprocess.Popen[str]]:
    """``fleetwatch ARGS`` as a child process, returned once it logged ``ready``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetwatch", *args], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    drain = threading.Thread(target=_drain, args=(process.stderr,), daemon=True)
    try:
        said: list[str] = []
        for line in process.stderr:  # blocks until the child logs; ends if it dies
            said = [*said[-30:], line]
            if ready in line:
                break
        else:
            tail = "".join(said)
            raise AssertionError(f"fleetwatch {args[0]} exited with {process.wait()}:\n{tail}")
        drain.start()  # keep reading, or a full pipe would block the child's logging
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        if drain.is_alive():
            drain.join(timeout=5)
        process.stderr.close()


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass
