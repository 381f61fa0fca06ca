"""The API served by a real uvicorn server on a free port, over a migrated database with
people (tokens per role) and a few devices."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from alerting import builtin
from api import create_app
from api.devices import DeviceIngest
from fleetwatch.settings import ApiSettings, PostgresSettings
from stores.postgres.migrate import upgrade
from tests.support.dashboard_server import free_port
from tests.support.people import add_people
from tests.support.receivers import wait_until


@dataclass(frozen=True, slots=True)
class Api:
    """A running API: its URL, each person's token, and the owner's connection."""

    url: str
    tokens: dict[str, str]
    db: psycopg.Connection[Any]

    def client(self, person: str | None) -> httpx.Client:
        """An HTTP client authenticated as ``person`` (None: no token)."""
        headers = {"Authorization": f"Bearer {self.tokens[person]}"} if person else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def _fill(conn: psycopg.Connection[Any]) -> None:
    """Three panels (zone 3: two, one offline), one open PANIC1 alarm, the built-in rules."""
    builtin.install(conn)
    for n, zone, online in ((1, 3, True), (2, 3, False), (3, 5, True)):
        row: Any = conn.execute(
            "INSERT INTO devices (mac_address, hostname, zone, country) "
            "VALUES (%s, %s, %s, 'PT') RETURNING id",
            [f"aa:bb:cc:00:00:0{n}", f"ESG_ALARM_000{n}", zone],
        ).fetchone()
        conn.execute(
            "INSERT INTO device_status (device_id, is_online) VALUES (%s, %s)", [row[0], online]
        )
        conn.execute(
            "INSERT INTO device_connection_log (device_id, event) VALUES (%s, 'connected')",
            [row[0]],
        )
    conn.execute(
        "INSERT INTO alarm_events (device_id, alarm_type, event_state, priority, timestamp) "
        "SELECT id, 'PANIC1', 'ACTIVE', 'CRITICAL', now() FROM devices "
        "WHERE hostname = 'ESG_ALARM_0001'"
    )


def serve(
    pg: PostgresSettings, settings: ApiSettings, devices: DeviceIngest | None = None
) -> Iterator[str]:
    """Run the API (with ``devices``: and its WebSocket devices' ingest) in a thread until
    the caller is done; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(pg, settings, devices),
        host="127.0.0.1",
        port=port,
        log_config=None,
        ws_max_size=settings.ws_hard_max_bytes,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout_s=20, what="the API to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def api(pg_settings: PostgresSettings) -> Iterator[Api]:
    """The API over a filled database."""
    upgrade(pg_settings)
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as conn:
        _fill(conn)
        tokens = add_people(conn)
        for url in serve(pg_settings, ApiSettings(api_rate_per_minute=600)):
            yield Api(url, tokens, conn)


# The WebSocket devices' fixtures live beside their helpers.
from tests.api.ws_fleet import cam, fleet  # noqa: E402, F401
