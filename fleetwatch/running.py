"""Running a long-lived command (ingest, the bridge, the notifier, simulators) until told to
stop: SIGINT or SIGTERM sets the ``stop`` event the service watches, so it finishes what it
has in hand instead of dying mid-batch."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


def run_until_signalled(service: Callable[[asyncio.Event], Awaitable[object]]) -> None:
    """Run ``service(stop)`` in a new event loop; SIGINT and SIGTERM set ``stop``."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service(stop)

    asyncio.run(run())
