"""The deliveries a transport received and ingest has not yet taken into a batch.

Every transport gathers batches the same way: wait for one delivery, then take what else
arrives for a short while. The inbox is bounded, which gives back-pressure: ``put`` waits
while it is full, and a transport that hands over whole reads at once (``extend``) is told
to stop reading until a batch made room (its ``on_room`` callback).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ingest.transports.base import Delivery
from ingest.transports.errors import TransportError


class Inbox:
    """A bounded queue of deliveries with batched reads, fed while a connection is open.

    ``open`` starts a connection's intake, naming the future that ends with it (if any):
    when it completes, ``next_batch`` raises its error, or ``TransportError`` if it ended
    quietly. ``close`` drops what was not taken: unacknowledged, it is delivered again by its
    sender.
    """

    def __init__(self, name: str, size: int = 20_000) -> None:
        if size < 1:
            raise ValueError("an inbox holds at least one delivery")
        self._name = name
        self._size = size
        self._items: deque[Delivery] = deque()
        self._feeder: asyncio.Future[Any] | None = None
        self._arrival: asyncio.Future[None] | None = None  # set by the next delivery
        self._room: asyncio.Event | None = None  # set while below the bound
        self._on_room: Callable[[], None] | None = None

    def open(
        self, feeder: asyncio.Future[Any] | None = None, on_room: Callable[[], None] | None = None
    ) -> None:
        """Take deliveries of a new connection; ``feeder`` ending ends its stream;
        ``on_room`` is called when the inbox is below its bound again after ``extend``
        filled it."""
        self._feeder = feeder
        self._on_room = on_room

    def close(self) -> int:
        """Stop the connection's intake and drop what was not taken; returns how many."""
        self._feeder = None
        self._on_room = None
        dropped = len(self._items)
        self._items.clear()
        self._wake()
        if self._room is not None:
            self._room.set()
        return dropped

    def extend(self, deliveries: Iterable[Delivery]) -> bool:
        """Add deliveries without waiting; False once the inbox is at its bound (the
        caller should stop reading until ``on_room`` is called)."""
        self._items.extend(deliveries)
        self._wake()
        return len(self._items) < self._size

    async def put(self, delivery: Delivery) -> None:
        """Add one delivery, waiting while the inbox is full."""
        while len(self._items) >= self._size:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()
        self._items.append(delivery)
        self._wake()

    @property
    def backlog(self) -> int:
        """Deliveries received but not yet taken into a batch."""
        return len(self._items)

    async def next_batch(self, max_size: int, max_wait_s: float) -> list[Delivery]:
        """Wait for one delivery, then gather more for up to ``max_wait_s`` or ``max_size``."""
        while not self._items:
            await self._await_arrival(None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        while len(self._items) < max_size:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._await_arrival(remaining):
                break
        items = self._items
        batch = [items.popleft() for _ in range(min(max_size, len(items)))]
        if len(items) < self._size:
            if self._room is not None:
                self._room.set()
            if self._on_room is not None:
                self._on_room()
        return batch

    def _wake(self) -> None:
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)

    async def _await_arrival(self, timeout_s: float | None) -> bool:
        """Wait for more deliveries; False after ``timeout_s`` without any. Raises when the
        connection's stream ended."""
        self._arrival = asyncio.get_running_loop().create_future()
        waiting: set[asyncio.Future[Any]] = {self._arrival}
        if self._feeder is not None:
            waiting.add(self._feeder)
        done, _ = await asyncio.wait(
            waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        arrived = self._arrival in done
        self._arrival = None
        if self._feeder is not None and self._feeder in done:
            self._feeder.result()  # re-raises the connection's TransportError
            raise TransportError(f"{self._name}: message stream ended")
        return arrived
