"""Sends due commands and moves overdue ones on; runs inside the ingest service.

Each tick: advance timers (expiry, acknowledgement and completion deadlines, retry backoff),
then claim the commands that may be sent now (PENDING, or TIMEOUT whose backoff elapsed, to
online devices) with ``FOR UPDATE SKIP LOCKED``, send them, and mark them SENT in the same
transaction. A crash between sending and commit re-sends the command later with the same
request id and sequence, which a device recognises; two ingest processes never claim the
same command at once.

Commands are sent by device and message kind (``Send``): which transport carries them and how
it addresses the device (MQTT: the device's command topic, at QoS 1) is not decided here. A
device its transport cannot reach now keeps its command for a later tick; one it can never
address has its command failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from ingest.commands import CommandError, CommandSpec, CommandTiming
from ingest.contract import TopicKind
from ingest.transports import AddressError, DeviceUnreachableError
from stores.errors import StoreUnavailableError
from stores.postgres import commands_store
from stores.postgres.commands_store import CommandRow

logger = logging.getLogger(__name__)

# Sends one message of a kind to a device (by hostname): ``Transports.send``.
Send = Callable[[str, TopicKind, bytes], Awaitable[None]]

# Kinds that speak JSON to take commands (panels speak protobuf): robots, and devices of
# declared types (over WebSocket the transport reshapes the JSON into seed 003's frame).
JSON_COMMAND_KINDS = frozenset({"robot", "telemetry"})


class CommandDispatcher:
    """One PostgreSQL connection of its own, so a claim can stay open across the sends."""

    def __init__(
        self,
        conninfo: str,
        timing: CommandTiming,
        batch: int = 500,
        *,
        transports: Sequence[str] | None = None,
    ) -> None:
        self._conninfo = conninfo
        # Only commands to devices of these transports (``devices.transport``) are claimed.
        self._transports = None if transports is None else list(transports)
        self._timing = timing
        self._batch = batch
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self._conninfo, connect_timeout=5, application_name="fleetwatch-dispatcher"
                )
            except psycopg.OperationalError as exc:
                raise StoreUnavailableError(f"PostgreSQL unreachable: {exc}") from exc
        return self._conn

    def advance_timers(self, now: datetime) -> dict[str, int]:
        """Expire, time out and fail overdue commands (one transaction)."""
        try:
            with self._connection().transaction():
                counts = commands_store.expire_and_time_out(
                    self._connection(),
                    now,
                    self._timing.backoff_base,
                    self._timing.backoff_max,
                    self._timing.ack_timeout,
                )
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailableError(f"command timers: {exc}") from exc
        moved = {k: v for k, v in counts.items() if v}
        if moved:
            logger.info("commands advanced: %s", moved)
        return counts

    async def send_due(self, send: Send, now: datetime | None = None) -> int:
        """Claim, send and mark SENT the commands due now; returns how many were sent."""
        when = now or datetime.now(UTC)
        conn = await asyncio.to_thread(self._connection)
        await asyncio.to_thread(self._begin, conn)
        try:
            rows = await asyncio.to_thread(
                commands_store.claim_sendable, conn, when, self._batch, self._transports
            )
            messages, unsendable = self._encode(rows)
            sent, waiting, unaddressable = await self._send(send, messages)
            unsendable.update(unaddressable)
            sent_at = now or datetime.now(UTC)
            await asyncio.to_thread(
                commands_store.mark_sent, conn, sent, sent_at, self._timing.ack_timeout
            )
            await asyncio.to_thread(commands_store.mark_unsendable, conn, unsendable, sent_at)
            await asyncio.to_thread(conn.commit)
        except BaseException:
            await asyncio.to_thread(self._rollback)
            raise
        if sent:
            logger.info("sent %d command(s)", len(sent))
        if waiting:
            logger.info("%d command(s) wait for their device to be reachable", waiting)
        return len(sent)

    @staticmethod
    async def _send(
        send: Send, messages: dict[int, tuple[str, bytes]]
    ) -> tuple[list[int], int, dict[int, str]]:
        """Send each message: the ids sent, how many wait for their device to be reachable,
        and the reason of each whose device can never be addressed."""
        sent: list[int] = []
        waiting = 0
        unsendable: dict[int, str] = {}
        for command_id, (device, payload) in messages.items():
            try:
                await send(device, TopicKind.COMMAND, payload)
            except DeviceUnreachableError as exc:
                logger.debug("command %d to %s waits: %s", command_id, device, exc)
                waiting += 1
                continue
            except AddressError as exc:
                reason = str(exc)[:300] or type(exc).__name__
                logger.error("command (id %d) cannot be sent: %s", command_id, reason)
                unsendable[command_id] = reason
                continue
            sent.append(command_id)
        return sent, waiting, unsendable

    def _encode(
        self, rows: list[CommandRow]
    ) -> tuple[dict[int, tuple[str, bytes]], dict[int, str]]:
        """The device (hostname) and payload of each claimed command by id, and the reason
        each of the others can never be sent. Such a row (its stored payload no longer
        encodes, or its device has no hostname) is failed rather than claimed again on every
        tick."""
        messages: dict[int, tuple[str, bytes]] = {}
        unsendable: dict[int, str] = {}
        for row in rows:
            try:
                if not row.hostname:
                    raise CommandError("its device has no hostname to address")
                messages[row.id] = (row.hostname, self._payload(row))
            except (CommandError, TypeError, ValueError) as exc:
                reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                logger.error(
                    "command %s (id %d) cannot be sent: %s", row.request_id, row.id, reason
                )
                unsendable[row.id] = reason
        return messages, unsendable

    @staticmethod
    def _begin(conn: psycopg.Connection[Any]) -> None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()

    def _rollback(self) -> None:
        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.rollback()
        except psycopg.Error:
            self.close()

    @staticmethod
    def _payload(row: CommandRow) -> bytes:
        spec = CommandSpec.from_json(row.command_data)
        stamp = int(time.time() * 1000)
        if row.kind in JSON_COMMAND_KINDS:
            return spec.json_envelope(row.request_id, row.sequence or 0, stamp, row.auth_level or 0)
        envelope = spec.envelope(row.request_id, row.sequence or 0, stamp, row.auth_level or 0)
        return envelope.SerializeToString()

    def close(self) -> None:
        """Drop the connection."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except psycopg.Error:
                logger.debug("ignoring error while closing the dispatcher connection")
