"""The devices' side of the server: ``/ws/{device_id}``, and the ingest that serves it.

A device (seed 003) opens ``/ws/{device_id}`` with its own token (``Authorization: Bearer
fwd_...``, or ``?token=`` for clients that cannot set headers). The token is checked
against the device it names before anything is read; a refusal is sent as an ``error``
frame and a close code (4401 no live token, 4403 another device's), and kept in the audit
trail. From then on the socket belongs to the WebSocket transport of an ingest service that
runs inside this process (``DeviceIngest``): the same pipeline, CDC, rules and command
lifecycle as the MQTT devices', without their broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, WebSocket
from psycopg_pool import ConnectionPool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from access.devices import ConnectingDevice, DeviceRefused, identify_device
from fleetwatch.settings import InfluxSettings, PostgresSettings
from ingest.service import IngestOptions, IngestService
from ingest.transports.websocket import TRY_LATER, WebSocketOptions, WebSocketTransport

__all__ = ["DeviceIngest", "device_socket", "running_ingest"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceIngest:
    """How the API process runs the ingest of its WebSocket devices."""

    influx: InfluxSettings
    options: IngestOptions = field(default_factory=lambda: IngestOptions(fleet_loops=False))
    sockets: WebSocketOptions = field(default_factory=WebSocketOptions)


@asynccontextmanager
async def running_ingest(
    app: FastAPI, pg: PostgresSettings, devices: DeviceIngest
) -> AsyncIterator[IngestService]:
    """Run the WebSocket devices' ingest service while the app serves."""
    transport = WebSocketTransport(devices.sockets)
    service = IngestService(pg, None, devices.influx, devices.options, transports=[transport])
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop), name="websocket ingest")
    task.add_done_callback(_report_end)
    app.state.devices = transport
    app.state.ingest = service
    # Serve requests once devices can be taken (or after a while without: sockets are then
    # told to try again later until ingest is up).
    ready = asyncio.ensure_future(service.connected.wait())
    await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if not transport.connected:
        logger.warning("the WebSocket devices' ingest is not serving yet")
    try:
        yield service
    finally:
        stop.set()
        with contextlib.suppress(Exception):  # reported when it ended
            await task


def _report_end(task: asyncio.Task[None]) -> None:
    """Say at once when the devices' ingest ends on its own: sockets are refused (1013)
    from then on, while the HTTP API goes on."""
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "the WebSocket devices' ingest stopped; devices are refused until a restart",
            exc_info=task.exception(),
        )


class _Peer:
    """A Starlette WebSocket as the transport's ``Peer``."""

    def __init__(self, socket: WebSocket) -> None:
        self._socket = socket

    async def receive(self) -> bytes | None:
        try:
            message = await self._socket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("bytes") is not None:
            data: bytes = message["bytes"]
            return data
        return str(message.get("text") or "").encode()

    async def send_text(self, text: str) -> None:
        await self._socket.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        if self._socket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(RuntimeError):  # closed by the other side meanwhile
                await self._socket.close(code, reason)


def _token(socket: WebSocket) -> str:
    scheme, _, token = socket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return socket.query_params.get("token", "")


def _identify(
    pool: ConnectionPool[Any], device_id: str, token: str, source: str | None
) -> ConnectingDevice:
    with pool.connection(timeout=10) as conn:
        return identify_device(conn, device_id, token, source=source)


async def device_socket(websocket: WebSocket, device_id: str) -> None:
    """One device's socket: authenticate it, then hand it to the transport until it ends."""
    transport: WebSocketTransport | None = getattr(websocket.app.state, "devices", None)
    if transport is None or not transport.connected:
        await websocket.accept()
        await websocket.close(TRY_LATER, "device ingest is not running; try again later")
        return
    source = websocket.client.host if websocket.client else None
    try:
        device = await asyncio.to_thread(
            _identify, websocket.app.state.pool, device_id, _token(websocket), source
        )
    except DeviceRefused as refused:
        await websocket.accept()
        await websocket.send_text(json.dumps({"type": "error", "error": str(refused)}))
        await websocket.close(refused.code, str(refused)[:120])
        return
    await websocket.accept()
    await transport.converse(device.hostname, device.device_type, _Peer(websocket))
