"""WebSocket devices for the API tests: the server with its device ingest, four registered
devices of seed 003's types with their tokens (the ``fleet`` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from access import identify_token
from access.devices import issue_token
from api.devices import DeviceIngest
from fleetwatch.settings import ApiSettings, InfluxSettings, PostgresSettings
from ingest.decoding import DecodeLimits
from ingest.kinds import builtin_types
from ingest.service import IngestOptions
from ingest.transports.websocket import WebSocketOptions
from simulator.websocket import WsDevice
from stores.postgres import device_types
from stores.postgres.migrate import upgrade
from tests.api.conftest import serve
from tests.support.people import add_people

# name -> type; cam-2 gets a token but never connects
DEVICES = {"cam-1": "ESP32-CAM", "cam-2": "ESP32-CAM", "board-1": "ESP32", "board-2": "ESP32"}
MAX_FRAME = 2048


@dataclass(frozen=True, slots=True)
class Fleet:
    """The server, people's API tokens, device tokens and the owner's connection."""

    url: str
    tokens: dict[str, str]
    device_tokens: dict[str, str]
    db: psycopg.Connection[Any]

    def device(self, name: str, **options: Any) -> WsDevice:  # noqa: ANN401
        return WsDevice(self.url, name, self.device_tokens[name], DEVICES[name], **options)

    def http(self, person: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[person]}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    def one(self, query: str, *params: object) -> Any:  # noqa: ANN401
        row = self.db.execute(query, list(params)).fetchone()
        return None if row is None else row[0]

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        return self.db.execute(query, list(params)).fetchall()


@pytest.fixture
def fleet(pg_settings: PostgresSettings, influx_settings: InfluxSettings) -> Iterator[Fleet]:
    """The API with WebSocket devices: four registered devices with tokens."""
    upgrade(pg_settings)
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as conn:
        builtin_types.install(conn)
        tokens = add_people(conn)
        admin = identify_token(conn, tokens["ada"])
        found = device_types.by_name(conn, set(DEVICES.values()))
        for name, type_name in DEVICES.items():
            type_id = found[type_name].id
            assert type_id is not None
            device_types.add_device(conn, "telemetry", name, type_id)
        device_tokens = {name: issue_token(conn, admin, name) for name in DEVICES}
        options = IngestOptions(
            fleet_loops=False,
            batch_wait_s=0.02,
            command_tick_s=0.2,
            liveness_interval_s=0.5,
            offline_after=timedelta(seconds=60),
            limits=DecodeLimits(max_payload_bytes=MAX_FRAME),
        )
        sockets = WebSocketOptions(idle_timeout_s=3.0, rate_per_s=50.0, burst=60)
        settings = ApiSettings(api_rate_per_minute=6000, ws_hard_max_bytes=64 * 1024)
        devices = DeviceIngest(influx_settings, options, sockets)
        for url in serve(pg_settings, settings, devices):
            yield Fleet(url, tokens, device_tokens, conn)


@pytest.fixture
async def cam(fleet: Fleet) -> AsyncIterator[WsDevice]:
    device = fleet.device("cam-1")
    await device.connect()
    yield device
    await device.close()


async def until(check: Any, what: str, timeout_s: float = 15.0) -> None:  # noqa: ANN401
    """Poll ``check`` (the database) until it is true."""
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - the database has no event to wait on
            await asyncio.sleep(0.05)
    assert check(), what
