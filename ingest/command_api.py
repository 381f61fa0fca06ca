"""The operators' entry point for commands: issue, list, show, cancel.

Issuing only records PENDING commands in PostgreSQL; the ingest service's dispatcher
publishes them (within a second while it runs) and tracks them to the end, so the caller
needs no broker connection and a command survives any restart in between.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from fleetwatch.settings import PostgresSettings
from ingest.commands import CommandError, CommandRefused, CommandSpec, CommandTiming, authorise
from stores.errors import StoreUnavailableError
from stores.postgres import commands_store
from stores.postgres.commands_store import CommandRow, NewCommand, TargetFilter

logger = logging.getLogger(__name__)


class CommandApi:
    """Commands against one PostgreSQL database."""

    def __init__(self, settings: PostgresSettings, timing: CommandTiming | None = None) -> None:
        self._conninfo = str(settings.database_url)
        self._timing = timing or CommandTiming()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._conninfo, connect_timeout=5, autocommit=False)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(f"PostgreSQL unreachable: {exc}") from exc

    def send(
        self,
        spec: CommandSpec,
        target: TargetFilter,
        *,
        caller_level: int,
        initiated_by: str,
        max_retries: int | None = None,
        expires_in: timedelta | None = None,
    ) -> list[CommandRow]:
        """Queue ``spec`` for every matching device; one command_log row each.

        Raises CommandRefused if ``caller_level`` is too low, CommandError if no device matches.
        """
        try:
            authorise(spec, caller_level)
        except CommandRefused as exc:
            logger.warning("command refused for %s: %s", initiated_by, exc)
            raise
        with self._connect() as conn, conn.transaction():
            rows = queue_commands(
                conn,
                spec,
                target,
                caller_level=caller_level,
                initiated_by=initiated_by,
                timing=self._timing,
                max_retries=max_retries,
                expires_in=expires_in,
            )
        logger.info("%s queued %s for %d device(s)", initiated_by, spec.kind, len(rows))
        return rows

    def recent(
        self, *, status: str | None = None, hostname: str | None = None, limit: int = 50
    ) -> list[CommandRow]:
        """The newest commands, optionally of one status or device."""
        with self._connect() as conn:
            return commands_store.recent(conn, status=status, hostname=hostname, limit=limit)

    def show(self, request_id: str) -> CommandRow | None:
        """One command by request id."""
        with self._connect() as conn:
            return commands_store.by_request_ids(conn, [request_id]).get(request_id)

    def cancel(self, request_ids: Sequence[str], *, by: str) -> list[str]:
        """Cancel open commands; returns those actually cancelled."""
        with self._connect() as conn, conn.transaction():
            done = commands_store.cancel(conn, request_ids, datetime.now(UTC), by)
        logger.info("%s cancelled %d command(s)", by, len(done))
        return done


def queue_commands(
    conn: psycopg.Connection[Any],
    spec: CommandSpec,
    target: TargetFilter,
    *,
    caller_level: int,
    initiated_by: str,
    timing: CommandTiming | None = None,
    max_retries: int | None = None,
    expires_in: timedelta | None = None,
) -> list[CommandRow]:
    """Queue ``spec`` for every matching device in ``conn``'s transaction; one row each,
    all with one new ``fanout_id`` (seed 003's command_id), by which the request's progress
    over its devices is read back.

    Raises CommandRefused if ``caller_level`` is too low, CommandError if no device matches.
    """
    authorise(spec, caller_level)
    timing = timing or CommandTiming()
    now = datetime.now(UTC)
    expires_at = now + (expires_in or timing.offline_expiry)
    retries = timing.max_retries if max_retries is None else max_retries
    device_ids = commands_store.select_targets(conn, target)
    if not device_ids:
        raise CommandError(f"no active device matches {target}")
    fanout_id = uuid.uuid4()
    new = [
        NewCommand(
            device_id=device_id,
            command_type=spec.command_type,
            command_data=spec.as_json(),
            auth_level=caller_level,
            initiated_by=initiated_by,
            max_retries=retries,
            expires_at=expires_at,
            fanout_id=fanout_id,
        )
        for device_id in device_ids
    ]
    return commands_store.create(conn, new, now)
