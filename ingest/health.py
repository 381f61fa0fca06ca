"""Liveness, readiness and metrics over HTTP for orchestrators and Prometheus.

``/healthz``: the process and its loops are alive. ``/readyz``: every transport connected
(the ``broker`` check), PostgreSQL and InfluxDB answer, the schema is current. ``/metrics``:
Prometheus text. A tiny asyncio server: three fixed GET routes need no web framework.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_REQUEST_LINE = 4096


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP response."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[], Awaitable[Reply]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def json_reply(ok: bool, detail: dict[str, object]) -> Reply:
    """200 or 503 with a JSON body."""
    body = json.dumps({"ok": ok, **detail}).encode()
    return Reply(200 if ok else 503, body, "application/json")


class HealthPortError(RuntimeError):
    """The health endpoints' address cannot be bound (another process has the port)."""


class HealthServer:
    """Serves the given routes on ``host:port`` until closed."""

    def __init__(self, routes: Mapping[str, Route], host: str, port: int) -> None:
        self._routes = routes
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for any free one)."""
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start serving; HealthPortError says what to do when the port is taken."""
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        except OSError as exc:
            raise HealthPortError(
                f"cannot serve /healthz on {self._host}:{self._port} ({exc.strerror}): another "
                "process (another ingest?) has the port; stop it, or set FLEETWATCH_HEALTH_PORT "
                "to a free port (0 turns the endpoints off)"
            ) from exc
        logger.info("health and metrics on http://%s:%d", self._host, self.port)

    async def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers are not needed
            reply = await self._route(line[:MAX_REQUEST_LINE])
        except (TimeoutError, ConnectionError):
            writer.close()
            return
        head = (
            f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, '')}\r\n"
            f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + reply.body)
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _route(self, line: bytes) -> Reply:
        parts = line.decode("latin-1").split()
        if len(parts) < 2:
            return Reply(405, b"bad request\n")
        method, path = parts[0], parts[1].split("?", 1)[0]
        if method != "GET":
            return Reply(405, b"GET only\n")
        route = self._routes.get(path)
        if route is None:
            return Reply(404, b"not found\n")
        return await route()
