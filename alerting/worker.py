"""The delivery worker (``fleetwatch notify``): takes due deliveries, sends them, records
the outcome, retries with the template's count and delay, then fails them with the error.

Each channel has its own loop and its own database connection, so a slow SMTP server never
holds up a webhook; a recipient's messages about one event go out in the order they were
queued. A loop claims up to ``notify_concurrency`` due deliveries at once
(``FOR UPDATE SKIP LOCKED``, so several workers share the queue) under a lease, sends them
concurrently and records each outcome only while it still holds the lease. A worker killed
mid-send loses nothing: its lease lapses and another worker sends the delivery again; one
recorded as sent is never sent again. Workers wake on the ``NOTIFY`` that queuing
deliveries sends, and look anyway every ``notify_poll_s``.

A delivery that fails for good is an observation of the built-in ``system`` rule
``delivery_failed`` on its channel; one sent clears it: operators see a failing channel as
an event of its own. The worker also makes and emails the daily and weekly reports when
they are due (``reports.schedule``).
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
from reports import schedule
from stores.postgres import alerting_store as store

logger = logging.getLogger(__name__)

__all__ = ["DeliveryWorker"]

_HOUR = timedelta(hours=1)
_RATE_PAUSE = timedelta(minutes=5)  # how long a rate-limited delivery waits to look again
_REPORT_CHECK_S = 60.0  # how often the worker looks for a due report

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
        *,
        reports: bool = True,
    ) -> None:
        self._conninfo = conninfo
        self._reports = reports
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
        loops.append(asyncio.create_task(self._settle(stop)))
        if self._reports:
            loops.append(asyncio.create_task(self._scheduled_reports(stop)))
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

    async def _settle(self, stop: asyncio.Event) -> None:
        """Release or drop the deliveries held by silences that ended."""
        db = _Database(self._conninfo)
        try:
            while not stop.is_set():
                try:
                    released, dropped = await asyncio.to_thread(db.run, store.settle_silences)
                    if released or dropped:
                        logger.info("silences ended: %d released, %d dropped", released, dropped)
                except psycopg.OperationalError as exc:
                    logger.warning("silences: PostgreSQL unreachable: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.notify_poll_s)
        finally:
            await asyncio.to_thread(db.close)

    async def _scheduled_reports(self, stop: asyncio.Event) -> None:
        """Make and email the daily and weekly reports once they are due."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(
                    schedule.run_due, self._conninfo, self._settings, datetime.now(UTC)
                )
            except psycopg.OperationalError as exc:
                logger.warning("reports: PostgreSQL unreachable: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _REPORT_CHECK_S)

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
                        batches = await self._batches(db, claimed, lease)
                        ids = [row["event_id"] for batch in batches for row in batch]
                        events = await asyncio.to_thread(
                            db.run, partial(store.event_summaries, event_ids=ids)
                        )
                        await asyncio.gather(
                            *(self._in_order(channel, db, chain, events)
                              for chain in _chains(batches))
                        )  # fmt: skip
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
        batch: Sequence[Mapping[str, Any]],
        events: Mapping[int, Mapping[str, Any]],
    ) -> None:
        """Send one delivery, or a group's as one message, and record the outcome of each."""
        row = batch[0]
        address = row["recipient_address"]
        severity = events.get(row["event_id"], {}).get("severity")
        if severity != "critical" and await self._rate_limited(db, batch):
            return
        outgoing = Outgoing(
            delivery_id=row["id"],
            event_id=row["event_id"],
            address=address,
            name=row["recipient_name"] or "",
            subject=_grouped_subject(batch),
            message=_grouped_message(batch),
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
        statuses = [
            await asyncio.to_thread(
                db.run,
                partial(
                    store.finish_delivery,
                    delivery_id=member["id"],
                    claimed_until=member["claimed_until"],
                    error=error,
                    retry_at=retry_at,
                ),
            )
            for member in batch
        ]
        status = statuses[0]
        ids = ", ".join(str(member["id"]) for member in batch)
        if status == "sent":
            self.sent += len(batch)
            logger.info("delivery %s sent by %s to %s", ids, channel.name, address)
            for member in batch:
                if member["repeat_seconds"]:
                    await asyncio.to_thread(
                        db.run, partial(store.repeat_delivery, delivery_id=member["id"])
                    )
        elif status is None:
            logger.warning("delivery %s: lease lapsed while sending; not recorded", ids)
        else:
            logger.warning("delivery %s (%s): %s", ids, status, error)
        if status == "failed":
            self.failed += len(batch)
        if status in ("sent", "failed"):
            failed = status == "failed"
            await asyncio.to_thread(db.run, lambda c: self._channel_health(c, channel.name, failed))

    async def _in_order(
        self,
        channel: Channel,
        db: _Database,
        chain: Sequence[Sequence[Mapping[str, Any]]],
        events: Mapping[int, Mapping[str, Any]],
    ) -> None:
        """Send one recipient's messages about one event one after the other."""
        for batch in chain:
            await self._deliver(channel, db, batch, events)

    async def _batches(
        self, db: _Database, claimed: Sequence[dict[str, Any]], lease: timedelta
    ) -> list[list[dict[str, Any]]]:
        """The claimed deliveries as sends: one each, and a group's (to one recipient) as
        one, with its members that were not claimed yet."""
        batches: dict[object, list[dict[str, Any]]] = {}
        for row in claimed:
            key = (
                (row["group_key"], row["recipient_type"], row["recipient_address"])
                if row["group_key"]
                else row["id"]
            )
            batches.setdefault(key, []).append(row)
        for key, batch in batches.items():
            if isinstance(key, tuple):
                known = {row["id"] for row in batch}
                extra = await asyncio.to_thread(
                    db.run, partial(store.claim_group, leader=batch[0], lease=lease)
                )
                batch.extend(row for row in extra if row["id"] not in known)
        return list(batches.values())

    async def _rate_limited(self, db: _Database, batch: Sequence[Mapping[str, Any]]) -> bool:
        """Give the batch back for a while when its recipient had its hour's fill (critical
        events are never held back: a panic press always goes out)."""
        limit = self._settings.notify_max_per_hour
        if not limit:
            return False
        address = batch[0]["recipient_address"]
        sent = await asyncio.to_thread(
            db.run,
            partial(store.sent_recently, address=address, within=_HOUR, before_id=batch[0]["id"]),
        )
        if sent < limit:
            return False
        until = datetime.now(UTC) + _RATE_PAUSE
        reason = f"rate limited: {sent} messages to {address} in the last hour (limit {limit})"
        for member in batch:
            await asyncio.to_thread(
                db.run,
                partial(store.postpone, delivery_id=member["id"],
                        claimed_until=member["claimed_until"], until=until, reason=reason),
            )  # fmt: skip
        logger.warning("%s; postponed until %s", reason, until.isoformat(timespec="seconds"))
        return True

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


def _chains(batches: list[list[dict[str, Any]]]) -> list[list[list[dict[str, Any]]]]:
    """The sends by recipient and event, each in the order they were queued: an event's
    resolution never reaches someone before its opening."""
    chains: dict[tuple[object, ...], list[list[dict[str, Any]]]] = {}
    for batch in sorted(batches, key=lambda b: b[0]["id"]):
        leader = batch[0]
        chains.setdefault((leader["recipient_address"], leader["event_id"]), []).append(batch)
    return list(chains.values())


def _grouped_subject(batch: Sequence[Mapping[str, Any]]) -> str:
    subject = str(batch[0]["subject"] or "")
    return subject if len(batch) == 1 else f"{subject} (+{len(batch) - 1} more)"


def _grouped_message(batch: Sequence[Mapping[str, Any]]) -> str:
    """One delivery's message; a group's as one, listing every device's."""
    if len(batch) == 1:
        return str(batch[0]["rendered_message"])
    devices = ", ".join(str(member["device_label"] or "?") for member in batch)
    lines = [f"{len(batch)} events together ({devices}):"]
    lines += [f"- {member['rendered_message']}" for member in batch]
    return "\n".join(lines)


def _retry_at(row: Mapping[str, Any], exc: DeliveryError) -> datetime | None:
    """When to try again, or None to fail: attempts left and not refused for good; the
    receiver's Retry-After when it is longer than the template's delay."""
    if exc.permanent or row["attempt_count"] >= row["max_attempts"]:
        return None
    delay = float(row["retry_delay_seconds"])
    if exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    return datetime.now(UTC) + timedelta(seconds=delay)
