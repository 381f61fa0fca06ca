"""A partitioned stream's read positions, owned by one worker and committed with its batches.

A worker of a consumer group owns some partitions of the stream at a time. For each it holds
the next offset to read, as last committed in PostgreSQL. Each batch claims the deliveries
that are still the worker's to handle (of a partition it owns now, in the same assignment
they were read in, not before the committed position), and its transaction moves the
positions past them (``stores.postgres.partitions``). Because the move is made from the
position the worker last saw, two workers that both believe they own a partition cannot
both commit: the second finds the position moved and its batch fails with
``PositionLost``, and its transport reconnects and reads from the committed position.

Rebalances are handed over cleanly: ``revoke`` stops claims on the revoked partitions, waits
for the batch in progress to commit or fail, and drops the CDC states (``release``); a new
``assign`` reads the committed positions (waiting for the previous owner's last batch) and
loads the states of the devices of the new share (``adopt``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from ingest.partitioning import DeviceShare
from ingest.transports.base import Delivery
from ingest.transports.errors import TransportError
from stores.postgres.partitions import advance_positions, read_positions

logger = logging.getLogger(__name__)

# What identifies a delivery read from the stream: the assignment it was read in, its
# partition and its offset.
StreamReceipt = tuple[int, int, int]


class PositionLost(TransportError):
    """Another worker moved a partition's position: this one no longer owns it."""


@dataclass(slots=True)
class _Owned:
    generation: int
    next_offset: int | None  # None: nothing committed yet, read from the start


class Claim:
    """A batch's deliveries still this worker's to handle, and how to save their positions.

    ``kept`` are their indexes in the batch, in order. ``save`` (in the batch's transaction)
    moves the positions past the first ``upto`` of them; ``committed`` records that the
    transaction committed, so the next batch moves on from there.
    """

    def __init__(
        self,
        positions: StreamPositions,
        deliveries: Sequence[Delivery],
        kept: list[int],
        expected: dict[int, int | None],
        generations: dict[int, int],
    ) -> None:
        self._positions = positions
        self._deliveries = deliveries
        self.kept = kept
        self._expected = expected
        self._generations = generations
        self._after: tuple[int, dict[int, int]] | None = None

    def _next(self, upto: int) -> dict[int, int]:
        """The next offset of each partition after the first ``upto`` kept deliveries (kept
        for ``committed``, which asks for what ``save`` just saved)."""
        if self._after is not None and self._after[0] == upto:
            return self._after[1]
        after: dict[int, int] = {}
        for index in self.kept[:upto]:
            _, partition, offset = _receipt(self._deliveries[index])
            after[partition] = offset + 1
        self._after = (upto, after)
        return after

    def save(self, conn: psycopg.Connection[Any], upto: int | None = None) -> None:
        """Move the positions past the first ``upto`` (all) kept deliveries; raises
        ``PositionLost`` (rolling the batch back) if another worker moved one first."""
        after = self._next(len(self.kept) if upto is None else upto)
        moves = {p: (self._expected.get(p), n) for p, n in after.items()}
        lost = self._positions.advance(conn, moves)
        if lost:
            raise PositionLost(f"partitions {sorted(lost)} were taken over by another worker")

    def committed(self, upto: int | None = None) -> None:
        """The transaction that saved the first ``upto`` (all) kept deliveries committed."""
        after = self._next(len(self.kept) if upto is None else upto)
        self._expected.update(after)
        self._positions.moved(after, self._generations)


class StreamPositions:
    """The partitions a worker owns, their committed positions, and the claims on them.

    ``assign`` and ``revoke`` are called by the stream consumer's thread when the group
    rebalances; ``claim`` by the batch thread. ``on_handover`` names what loads and drops
    the devices' CDC states.
    """

    def __init__(self, conninfo: str, group: str, topic: str) -> None:
        self._conninfo = conninfo
        self.group = group
        self.topic = topic
        self._lock = threading.Condition()
        self._owned: dict[int, _Owned] = {}
        self._count = 0
        self._generation = 0
        self._claims = 0
        self._adopt: Callable[[DeviceShare], object] | None = None
        self._release: Callable[[], object] | None = None

    def on_handover(
        self, adopt: Callable[[DeviceShare], object], release: Callable[[], object]
    ) -> None:
        """``adopt(share)`` after an assignment, ``release()`` before partitions go."""
        self._adopt, self._release = adopt, release

    @property
    def share(self) -> DeviceShare | None:
        """The devices this worker owns now; None while it owns no partition."""
        with self._lock:
            if not self._owned:
                return None
            return DeviceShare.of(self._count, self._owned)

    def stamps(self) -> dict[int, int]:
        """The assignment each owned partition was assigned in, to stamp deliveries with."""
        with self._lock:
            return {p: owned.generation for p, owned in self._owned.items()}

    def committed(self) -> dict[int, int]:
        """The committed position of each owned partition that has one."""
        with self._lock:
            return {p: o.next_offset for p, o in self._owned.items() if o.next_offset is not None}

    def assign(self, count: int, partitions: Sequence[int]) -> dict[int, int | None]:
        """Own ``partitions`` of ``count``; returns where to read each (None: the start)."""
        with psycopg.connect(self._conninfo, connect_timeout=10) as conn:
            stored = read_positions(conn, self.group, self.topic, partitions)
        with self._lock:
            self._generation += 1
            for partition in partitions:
                self._owned[partition] = _Owned(self._generation, stored.get(partition))
            self._count = count
            share = DeviceShare.of(count, self._owned)
        if self._adopt is not None:
            self._adopt(share)
        logger.info(
            "assigned partitions %s of %d (%d with committed positions)",
            sorted(partitions),
            count,
            len(stored),
        )
        return {p: stored.get(p) for p in partitions}

    def revoke(self, partitions: Sequence[int], timeout_s: float = 120.0) -> None:
        """Give up ``partitions``: no new claims on them, the batch in progress finishes,
        and every CDC state is dropped (the partitions kept are adopted again)."""
        with self._lock:
            for partition in partitions:
                self._owned.pop(partition, None)
            if not self._lock.wait_for(lambda: self._claims == 0, timeout_s):
                logger.error("a batch did not finish within %.0fs of a revocation", timeout_s)
            remaining = DeviceShare.of(self._count, self._owned) if self._owned else None
        if self._release is not None:
            self._release()
        if remaining is not None and self._adopt is not None:
            self._adopt(remaining)
        logger.info("revoked partitions %s", sorted(partitions))

    @contextmanager
    def claim(self, deliveries: Sequence[Delivery]) -> Iterator[Claim]:
        """The deliveries of ``deliveries`` still this worker's, while their batch runs."""
        kept: list[int] = []
        expected: dict[int, int | None] = {}
        generations: dict[int, int] = {}
        last: dict[int, int] = {}  # the next offset of each partition after those kept
        with self._lock:
            for index, delivery in enumerate(deliveries):
                generation, partition, offset = _receipt(delivery)
                owned = self._owned.get(partition)
                if owned is None or owned.generation != generation:
                    continue  # read before a rebalance: the new owner reads it again
                if partition not in expected:
                    expected[partition] = owned.next_offset
                    generations[partition] = generation
                floor = last.get(partition, expected[partition])
                if floor is not None and offset < floor:
                    continue  # committed already (read again after a seek)
                last[partition] = offset + 1
                kept.append(index)
            self._claims += 1
        try:
            yield Claim(self, deliveries, kept, expected, generations)
        finally:
            with self._lock:
                self._claims -= 1
                self._lock.notify_all()

    def advance(
        self, conn: psycopg.Connection[Any], moves: dict[int, tuple[int | None, int]]
    ) -> set[int]:
        """Save ``moves`` in the transaction of ``conn``; the partitions moved by others."""
        return advance_positions(conn, self.group, self.topic, moves)

    def moved(self, after: dict[int, int], generations: dict[int, int]) -> None:
        """Committed positions, remembered for the partitions still owned in the same
        assignment."""
        with self._lock:
            for partition, offset in after.items():
                owned = self._owned.get(partition)
                if owned is not None and owned.generation == generations.get(partition):
                    owned.next_offset = offset


def _receipt(delivery: Delivery) -> StreamReceipt:
    receipt = delivery.receipt
    if not isinstance(receipt, tuple) or len(receipt) != 3:
        raise TypeError(f"not a stream delivery: receipt {receipt!r}")
    return receipt
