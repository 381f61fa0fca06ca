"""WebSocket devices lose nothing when the API process is killed: ``fleetwatch api`` as a
child process, SIGKILLed mid-stream and started again; the devices reconnect and resend what
was not acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
from websockets.exceptions import ConnectionClosed, InvalidStatus

from access import identify_token
from access.devices import issue_token
from fleetwatch.settings import InfluxSettings, PostgresSettings
from ingest.kinds import builtin_types
from simulator.websocket import WsDevice
from stores.postgres import device_types
from stores.postgres.migrate import upgrade
from tests.support.dashboard_server import free_port
from tests.support.people import add_people

DEVICES = [f"esp-{n:02d}" for n in range(12)]
FRAMES = 30


@contextmanager
def api_process(
    pg: PostgresSettings, influx: InfluxSettings, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """``fleetwatch api`` as a child process, returned once it answers HTTP (its device
    ingest is serving by then)."""
    env = {
        **os.environ,
        "FLEETWATCH_DATABASE_URL": str(pg.database_url),
        "FLEETWATCH_INFLUX_URL": influx.influx_url,
        "FLEETWATCH_INFLUX_TOKEN": influx.influx_token.get_secret_value(),
        "FLEETWATCH_INFLUX_ORG": influx.influx_org,
        "FLEETWATCH_INFLUX_BUCKET": influx.influx_bucket,
        "FLEETWATCH_LOG_LEVEL": "WARNING",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "fleetwatch", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            if child.poll() is not None:
                raise AssertionError(f"fleetwatch api exited with {child.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("fleetwatch api did not answer within 30 s")
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait(15)


async def play(device: WsDevice, stop_after: int) -> None:
    """Send ``stop_after`` status frames, reconnecting whenever the server is gone; then
    wait until every one is acknowledged."""
    sent = 0
    while sent < stop_after or device.unacked:
        if not device.connected:
            try:
                await device.connect(resend=True)
            except (OSError, InvalidStatus, TimeoutError):
                await asyncio.sleep(0.2)
                continue
        try:
            if sent < stop_after:
                sent += 1  # the frame is kept (and resent) even if this send fails
                await device.status({"reading": sent})
                await asyncio.sleep(0.03)
            else:
                await device.wait_for("acks", lambda: not device.unacked or not device.connected)
        except (ConnectionClosed, RuntimeError):
            await device.drop()
    await device.close()


def stored(db: psycopg.Connection[Any]) -> list[tuple[str, int, int]]:
    """(device, snapshots, distinct readings) per device."""
    return db.execute(
        "SELECT d.hostname, count(*)::int, count(DISTINCT s.state_data->>'reading')::int "
        "FROM device_state_snapshots s JOIN devices d ON d.id = s.device_id "
        "GROUP BY d.hostname ORDER BY d.hostname"
    ).fetchall()


async def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    pg_settings: PostgresSettings, influx_settings: InfluxSettings
) -> None:
    upgrade(pg_settings)
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as db:
        builtin_types.install(db)
        admin = identify_token(db, add_people(db)["ada"])
        type_id = device_types.by_name(db, ["ESP32"])["ESP32"].id
        assert type_id is not None
        tokens = {}
        for name in DEVICES:
            device_types.add_device(db, "telemetry", name, type_id)
            tokens[name] = issue_token(db, admin, name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        devices = [WsDevice(url, name, tokens[name], "ESP32") for name in DEVICES]
        with api_process(pg_settings, influx_settings, port) as first:
            players = asyncio.gather(*(play(d, FRAMES) for d in devices))
            async with asyncio.timeout(30):
                while sum(n for _, n, _ in stored(db)) < len(DEVICES) * FRAMES // 4:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        killed_at = sum(n for _, n, _ in stored(db))
        with api_process(pg_settings, influx_settings, port):
            async with asyncio.timeout(90):
                await players
        assert killed_at < len(DEVICES) * FRAMES  # the kill came mid-stream
        assert stored(db) == [(name, FRAMES, FRAMES) for name in DEVICES]
        # Every device came online (it stayed online across the kill, which sent no close).
        events: dict[str, int] = dict(
            db.execute(
                "SELECT event::text, count(*)::int FROM device_connection_log GROUP BY 1"
            ).fetchall()
        )
        assert events["connected"] >= len(DEVICES)
