"""The delivery worker (``fleetwatch notify``): takes due deliveries, sends them, records
the outcome, retries with the template's count and delay, then fails them with the error.

Each channel has its own loop and its own database connection, so a slow SMTP server never
holds up a webhook. A loop claims up to ``notify_concurrency`` due deliveries at once
(``FOR UPDATE SKIP LOCKED``, so several workers share the queue) under a lease, sends them
concurrently and records each outcome only while it still holds the lease. A worker killed
mid-send loses nothing: its lease lapses and another worker sends the delivery again; one
recorded as sent is never sent again. Workers wake on the ``NOTIFY`` that queuing
deliveries sends, and look anyway every ``notify_poll_s``.

A delivery that fails for good is an observation of the built-in ``system`` rule
``delivery_failed`` on its channel; one sent clears it: operators see a failing channel as
an event of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import psycopg

from alerting import engine
from alerting.book import RuleCache, Subject
from alerting.channels import Channel, Outgoing, build, names
from alerting.errors import DeliveryError
from alerting.values import SYSTEM
from fleetwatch.settings import AlertSettings
from stores.postgres import alerting_store as store

logger = logging.getLogger(__name__)

__all__ = ["DeliveryWorker"]

T = TypeVar("T")


class _Database:
    """One connection, one operation at a time (the sends run concurrently, their
    bookkeeping takes turns)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` on the connection (opened again if it was lost)."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self._conninfo, autocommit=True, application_name="fleetwatch-notify"
                )
            try:
                return work(self._conn)
            except psycopg.OperationalError:
                self._conn.close()
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


class DeliveryWorker:
    """Sends due deliveries on every registered channel until stopped."""

    def __init__(
        self,
        conninfo: str,
        settings: AlertSettings,
        channels: Sequence[str] | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._settings = settings
        self._names = tuple(channels) if channels is not None else names()
        self._wake = asyncio.Event()
        self._rules = RuleCache()
        self.sent = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; sends in progress finish first."""
        listener = asyncio.create_task(self._listen(stop))
        loops = [asyncio.create_task(self._channel(name, stop)) for name in self._names]
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopping, *loops], return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                task.result()  # a channel loop that ended on its own failed: say why
        finally:
            stop.set()
            stopping.cancel()
            self._wake.set()
            await asyncio.gather(*loops, return_exceptions=True)
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake the channel loops on each NOTIFY; reconnect when the connection drops."""
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {store.DELIVERY_CHANNEL}")
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.OperationalError as exc:
                logger.warning("notify listener: %s; polling meanwhile", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.notify_poll_s * 5)

    async def _channel(self, name: str, stop: asyncio.Event) -> None:
        channel = build(name, self._settings)
        db = _Database(self._conninfo)
        lease = timedelta(seconds=self._settings.notify_lease_s)
        limit = self._settings.notify_concurrency
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    claimed = await asyncio.to_thread(
                        db.run, partial(store.claim_due, channel=name, limit=limit, lease=lease)
                    )
                    if claimed:
                        ids = [row["event_id"] for row in claimed]
                        events = await asyncio.to_thread(
                            db.run, partial(store.event_summaries, event_ids=ids)
                        )
                        await asyncio.gather(
                            *(self._deliver(channel, db, row, events) for row in claimed)
                        )
                        continue  # there may be more due
                except psycopg.OperationalError as exc:
                    logger.warning("%s deliveries: PostgreSQL unreachable: %s", name, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.notify_poll_s)
        finally:
            await channel.aclose()
            await asyncio.to_thread(db.close)

    async def _deliver(
        self,
        channel: Channel,
        db: _Database,
        row: Mapping[str, Any],
        events: Mapping[int, Mapping[str, Any]],
    ) -> None:
        outgoing = Outgoing(
            delivery_id=row["id"],
            event_id=row["event_id"],
            address=row["recipient_address"],
            name=row["recipient_name"] or "",
            subject=row["subject"] or "",
            message=row["rendered_message"],
            trigger=row["trigger"],
            attempt=row["attempt_count"],
            event=events.get(row["event_id"], {}),
        )
        error: str | None = None
        retry_at: datetime | None = None
        try:
            await channel.send(outgoing)
        except DeliveryError as exc:
            error = str(exc)
            retry_at = _retry_at(row, exc)
        except Exception as exc:  # a channel's bug fails the delivery, not the worker
            logger.exception("%s channel failed on delivery %s", channel.name, row["id"])
            error = f"{type(exc).__name__}: {exc}"
            retry_at = _retry_at(row, DeliveryError(error))
        status = await asyncio.to_thread(
            db.run,
            lambda c: store.finish_delivery(
                c, row["id"], row["claimed_until"], error=error, retry_at=retry_at
            ),
        )
        if status == "sent":
            self.sent += 1
            logger.info("delivery %s sent by %s to %s", row["id"], channel.name, outgoing.address)
        elif status is None:
            logger.warning("delivery %s: lease lapsed while sending; not recorded", row["id"])
        else:
            logger.warning("delivery %s (%s): %s", row["id"], status, error)
        if status == "failed":
            self.failed += 1
        if status in ("sent", "failed"):
            failed = status == "failed"
            await asyncio.to_thread(db.run, lambda c: self._channel_health(c, channel.name, failed))

    def _channel_health(self, conn: psycopg.Connection[Any], name: str, failed: bool) -> None:
        """Tell the rules whether the channel's last delivery failed for good."""
        with conn.transaction():
            book = self._rules.book(conn)
            if not book.watches(SYSTEM, "delivery_failed"):
                return
            observation = engine.Observation(
                SYSTEM,
                Subject(None, source=name),
                datetime.now(UTC),
                {"delivery_failed": failed},
            )
            engine.apply(conn, book, [observation], link=self._settings.public_url)


def _retry_at(row: Mapping[str, Any], exc: DeliveryError) -> datetime | None:
    """When to try again, or None to fail: attempts left and not refused for good; the
    receiver's Retry-After when it is longer than the template's delay."""
    if exc.permanent or row["attempt_count"] >= row["max_attempts"]:
        return None
    delay = float(row["retry_delay_seconds"])
    if exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    return datetime.now(UTC) + timedelta(seconds=delay)
