"""One batch through ingest: decode, handle in one PostgreSQL transaction, flush to InfluxDB.

Deliveries of any transport go through the same steps: each is decoded by its transport's
decoder (which reads that transport's addresses), and from there on nothing depends on how
the message arrived.

Blocking by design (psycopg, influxdb-client): the service runs it in a worker thread so the
event loop keeps receiving. Points reach InfluxDB through the PostgreSQL outbox: they are
committed with the batch, written after the commit and deleted once InfluxDB confirms them.
If InfluxDB is down they wait in the outbox and ``drain_outbox`` replays them later.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from ingest.flusher import PointFlusher, flush_points
from ingest.handling import BatchHandler, Item, Outcome
from ingest.messages import Rejected, RejectReason
from ingest.metrics import IngestMetrics, kind_of
from ingest.partitioning import DeviceShare
from ingest.transports import Delivery, MessageDecoder
from ingest.transports.positions import Claim, StreamPositions
from stores.errors import StoreUnavailableError
from stores.influx.writer import LineWriter
from stores.postgres.ingest_store import IngestStore

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Totals:
    """Running counts since start-up, for logs and metrics."""

    messages: int = 0
    ignored: int = 0  # fleetwatch's own commands seen on the wildcard subscription
    accepted: int = 0
    duplicates: int = 0
    points: int = 0
    batches: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    @property
    def device_messages(self) -> int:
        """Messages from devices (everything received but fleetwatch's own commands)."""
        return self.messages - self.ignored

    def add(self, received: int, outcome: Outcome) -> None:
        self.messages += received
        self.ignored += outcome.ignored
        self.accepted += outcome.accepted
        self.duplicates += outcome.duplicates
        self.points += outcome.points_written
        self.batches += 1
        self.dead_letters.update(outcome.dead_letters)

    def summary(self, rate: float) -> str:
        """One line for the periodic report; ``rate`` is messages per second lately."""
        dead = dict(self.dead_letters) or "none"
        return (
            f"{self.messages} messages ({rate:.0f}/s), {self.points} points, "
            f"{self.duplicates} duplicates, dead letters {dead}"
        )


class Pipeline:
    """Decoders (one per transport, by its name), handler and InfluxDB writer for one ingest
    process."""

    def __init__(
        self,
        decoders: Mapping[str, MessageDecoder],
        handler: BatchHandler,
        store: IngestStore,
        writer: LineWriter,
    ) -> None:
        if not decoders:
            raise ValueError("a pipeline needs the decoder of at least one transport")
        self._decoders = dict(decoders)
        self._handler = handler
        self._store = store
        self._writer = writer
        self.totals = Totals()
        self.influx_backlog = False
        # Committed batches' points go to InfluxDB beside the next batches, on a connection
        # of their own (see ingest.flusher).
        self.flusher = PointFlusher(writer, store.sibling(), self._backlogged)
        self.metrics = IngestMetrics()

    def decode(self, delivery: Delivery) -> Item:
        """The decoded item, or the item carrying its rejection."""
        # A delivery comes from one of the service's transports, each of which has a decoder.
        decoder = self._decoders[delivery.transport]
        try:
            message = decoder.decode(delivery.address, delivery.payload, delivery.received_at)
        except Rejected as exc:
            return Item(
                delivery.address,
                delivery.payload,
                delivery.received_at,
                None,
                exc,
                delivery.redelivered,
            )
        return Item(delivery.address, delivery.payload, delivery.received_at, message)

    def decode_all(self, deliveries: Sequence[Delivery]) -> list[Item]:
        """A batch's items, in its order."""
        return [self.decode(delivery) for delivery in deliveries]

    def process(
        self,
        deliveries: Sequence[Delivery],
        items: Sequence[Item] | None = None,
        positions: StreamPositions | None = None,
    ) -> Outcome:
        """Commit one batch, then try to flush its points; StoreUnavailableError = retry.

        ``items`` are the deliveries already decoded (``decode_all``), when they were. With
        the ``positions`` of a partitioned stream, only the deliveries still this worker's
        are handled, and the positions move past them in the batch's transaction.
        """
        started = time.perf_counter()
        if items is None:
            items = self.decode_all(deliveries)
        if positions is None:
            outcome = self._handle(items)
        else:
            with positions.claim(deliveries) as claim:
                items = [items[i] for i in claim.kept]
                outcome = self._handle(items, claim) if items else nothing()
            deliveries = [deliveries[i] for i in claim.kept]
        self.totals.add(len(deliveries), outcome)
        kinds = Counter(kind_of(item) for item in items)
        self.metrics.observe_batch(kinds, outcome, len(items), time.perf_counter() - started)
        if outcome.lines and not self.influx_backlog:
            self.flusher.submit(outcome.point_ids, outcome.lines)
        return outcome

    def close(self) -> None:
        """Write the points still queued, then stop the flusher."""
        self.flusher.close()

    def sweep_silent(
        self,
        now: datetime,
        silence: timedelta,
        transports: Sequence[str] | None = None,
        share: DeviceShare | None = None,
    ) -> Outcome:
        """Take silent devices (of ``transports``, or all; of a worker's ``share``, or all)
        offline, then flush their CONNECTION points."""
        outcome = self._handler.sweep_silent(now, silence, transports=transports, share=share)
        if outcome.lines and not self.influx_backlog:
            self._flush(outcome.point_ids, outcome.lines)
        return outcome

    def _handle(self, items: Sequence[Item], claim: Claim | None = None) -> Outcome:
        try:
            outcome = self._handler.handle(items, None if claim is None else claim.save)
        except StoreUnavailableError:
            raise
        except psycopg.Error as exc:
            # A value the database refuses must not block the stream: find it by handling the
            # items one at a time, keep it as a dead letter, and commit the rest.
            logger.warning("batch refused by PostgreSQL (%s); retrying item by item", exc)
            return _merge([self._handle_alone(item, n, claim) for n, item in enumerate(items, 1)])
        if claim is not None:
            claim.committed()
        return outcome

    def _handle_alone(self, item: Item, upto: int, claim: Claim | None) -> Outcome:
        """Handle the ``upto``-th item of a batch in a transaction of its own (which moves
        the stream positions past it)."""
        within = None if claim is None else functools.partial(claim.save, upto=upto)
        try:
            outcome = self._handler.handle([item], within)
        except StoreUnavailableError:
            raise
        except psycopg.Error as exc:
            rejection = Rejected(RejectReason.STORE_REJECTED, str(exc).splitlines()[0][:300])
            dead = Item(
                item.address, item.payload, item.received_at, None, rejection, item.redelivered
            )
            outcome = self._handler.handle([dead], within)
        if claim is not None:
            claim.committed(upto)
        return outcome

    def _flush(self, ids: Sequence[int], lines: Sequence[str]) -> bool:
        """Write committed points and forget them now; False (and a backlog) if that failed."""
        if flush_points(self._writer, self._store, ids, lines):
            return True
        self.influx_backlog = True
        return False

    def _backlogged(self) -> None:
        self.influx_backlog = True

    def drain_outbox(self, chunk: int = 10_000) -> int:
        """Replay outbox points to InfluxDB until it is empty or fails; returns points sent."""
        sent = 0
        while True:
            rows = self._store.pending_points(chunk)
            if not rows:
                if self.influx_backlog:
                    logger.info("InfluxDB outbox drained (%d points replayed)", sent)
                self.influx_backlog = False
                return sent
            if not self._flush([r[0] for r in rows], [r[1] for r in rows]):
                return sent
            sent += len(rows)


def nothing() -> Outcome:
    """The outcome of handling nothing."""
    return _merge([])


def _merge(outcomes: Sequence[Outcome]) -> Outcome:
    reasons: Counter[str] = Counter()
    for outcome in outcomes:
        reasons.update(outcome.dead_letters)
    return Outcome(
        accepted=sum(o.accepted for o in outcomes),
        duplicates=sum(o.duplicates for o in outcomes),
        dead_letters=reasons,
        points_written=sum(o.points_written for o in outcomes),
        point_ids=[i for o in outcomes for i in o.point_ids],
        lines=[line for o in outcomes for line in o.lines],
        ignored=sum(o.ignored for o in outcomes),
        heartbeats_received=sum(o.heartbeats_received for o in outcomes),
        heartbeat_points=sum(o.heartbeat_points for o in outcomes),
        verdicts=tuple(v for o in outcomes for v in o.verdicts),
    )
