"""The deliveries a transport received and ingest has not yet taken into a batch.

Every transport gathers batches the same way: wait for one delivery, then take what else
arrives for a short while. A bounded queue gives back-pressure: a full inbox blocks ``put``,
so a transport that awaits it stops reading from its connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ingest.transports.base import Delivery
from ingest.transports.errors import TransportError


class Inbox:
    """A bounded queue of deliveries with batched reads, fed while a connection is open.

    ``open`` starts a connection's intake, naming the task that feeds it (if any): when that
    task ends, ``next_batch`` raises its error, or ``TransportError`` if it ended quietly.
    ``close`` drops what was not taken: unacknowledged, it is delivered again by its sender.
    """

    def __init__(self, name: str, size: int = 20_000) -> None:
        if size < 1:
            raise ValueError("an inbox holds at least one delivery")
        self._name = name
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=size)
        self._feeder: asyncio.Future[Any] | None = None
        self._getter: asyncio.Future[Delivery] | None = None

    def open(self, feeder: asyncio.Future[Any] | None = None) -> None:
        """Take deliveries of a new connection; ``feeder`` ending ends its stream."""
        self._feeder = feeder

    def close(self) -> int:
        """Stop the connection's intake and drop what was not taken; returns how many."""
        if self._getter is not None:
            self._getter.cancel()
            self._getter = None
        self._feeder = None
        dropped = self._queue.qsize()
        while not self._queue.empty():
            self._queue.get_nowait()
        return dropped

    async def put(self, delivery: Delivery) -> None:
        """Add one delivery, waiting while the inbox is full."""
        await self._queue.put(delivery)

    @property
    def backlog(self) -> int:
        """Deliveries received but not yet taken into a batch."""
        return self._queue.qsize()

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        """Wait for one delivery, then gather more for up to ``max_wait_s`` or ``max_size``."""
        first = await self._next(None)
        assert first is not None
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        while len(batch) < max_size:
            while not self._queue.empty() and len(batch) < max_size:
                batch.append(self._queue.get_nowait())
            remaining = deadline - loop.time()
            if remaining <= 0 or len(batch) >= max_size:
                break
            delivery = await self._next(remaining)
            if delivery is None:
                break
            batch.append(delivery)
        return batch

    async def _next(self, timeout_s: float | None) -> Delivery | None:
        """The next delivery, or None after ``timeout_s``.

        The pending queue read survives a timeout and is reused by the next call: cancelling
        it could lose a message it had already taken off the queue.
        """
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._queue.get())
        waiting: set[asyncio.Future[Any]] = {self._getter}
        if self._feeder is not None:
            waiting.add(self._feeder)
        done, _ = await asyncio.wait(
            waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if self._getter in done:
            getter, self._getter = self._getter, None
            return getter.result()
        if self._feeder is not None and self._feeder in done:
            self._feeder.result()  # re-raises the connection's TransportError
            raise TransportError(f"{self._name}: message stream ended")
        return None
