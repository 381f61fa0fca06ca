"""``fleetwatch api``: serve the HTTP API, or print its OpenAPI document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetwatch.running import run_until_signalled
from fleetwatch.settings import (
    AlertSettings,
    ApiSettings,
    InfluxSettings,
    IngestSettings,
    PostgresSettings,
    load,
)

if TYPE_CHECKING:
    from api.devices import DeviceIngest


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``api`` command to the top-level parser."""
    api = sub.add_parser(
        "api",
        help="serve the HTTP API for integrators (FLEETWATCH_API_HOST/_PORT)",
        description="Requests carry a personal API token: fleetwatch users token create.",
    )
    api.add_argument("--host", help="address to listen on (default: FLEETWATCH_API_HOST)")
    api.add_argument("--port", type=int, help="port (default: FLEETWATCH_API_PORT)")
    api.add_argument(
        "--openapi",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the OpenAPI document (to FILE, or stdout) and stop",
    )
    api.set_defaults(handler=_api)
    boards = sub.add_parser(
        "simulate-ws",
        help="play seed 003 boards over WebSocket (the demo's ESP32s and ESP32-CAMs)",
        description="Each board holds its socket to the API, reports its state and readings, "
        "answers commands and reconnects when the server goes away.",
    )
    boards.add_argument(
        "--tokens", type=Path, required=True, help="a file of lines SERIAL DEVICE_TYPE TOKEN"
    )
    boards.add_argument(
        "--api", default="", help="the API's URL (default: FLEETWATCH_API_HOST/_PORT)"
    )
    boards.set_defaults(handler=_simulate_ws)


def document() -> dict[str, Any]:
    """The API's OpenAPI document (no database needed)."""
    from api import create_app  # noqa: PLC0415 - heavy imports

    pg = PostgresSettings.model_validate({"database_url": "postgresql://u:p@localhost/fleetwatch"})
    schema: dict[str, Any] = create_app(pg, ApiSettings()).openapi()
    return schema


def _api(args: argparse.Namespace) -> int:
    if args.openapi is not None:
        text = json.dumps(document(), indent=2, sort_keys=True) + "\n"
        if args.openapi == "-":
            sys.stdout.write(text)
        else:
            Path(args.openapi).write_text(text, encoding="utf-8")
        return 0
    import uvicorn  # noqa: PLC0415

    from api import create_app  # noqa: PLC0415

    settings = load(ApiSettings)
    devices = device_ingest(settings) if settings.api_websocket_devices else None
    app = create_app(load(PostgresSettings), settings, devices)
    uvicorn.run(
        app,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,  # fleetwatch's own logging
        server_header=False,
        ws_max_size=settings.ws_hard_max_bytes,
        # No keepalive pings: a device's liveness is its frames (FLEETWATCH_WS_IDLE_TIMEOUT_S).
        # While ingest holds a socket's reading back (a full inbox), a ping's answer goes
        # unread and uvicorn would close a live device for it (1011), which then reconnects
        # and resends: the costliest thing it could do to a server that is behind.
        ws_ping_interval=None,
    )
    return 0


def device_ingest(settings: ApiSettings) -> DeviceIngest:
    """How the API runs its WebSocket devices' ingest, from the settings."""
    from datetime import timedelta  # noqa: PLC0415

    from api.devices import DeviceIngest  # noqa: PLC0415
    from ingest.decoding import DecodeLimits  # noqa: PLC0415
    from ingest.service import IngestOptions  # noqa: PLC0415
    from ingest.transports.websocket import WebSocketOptions  # noqa: PLC0415

    ingest, alerts = load(IngestSettings), load(AlertSettings)
    options = IngestOptions(
        fleet_loops=False,  # the ingest service runs them
        client_id=None,
        event_link=alerts.public_url,
        offline_after=timedelta(seconds=ingest.offline_after_s),
        limits=DecodeLimits(max_payload_bytes=settings.ws_max_frame_bytes),
    )
    sockets = WebSocketOptions(
        idle_timeout_s=settings.ws_idle_timeout_s,
        rate_per_s=settings.ws_rate_per_s,
        burst=settings.ws_burst,
    )
    return DeviceIngest(load(InfluxSettings), options, sockets)


def _simulate_ws(args: argparse.Namespace) -> int:

    from simulator.errors import SimulatorConfigError  # noqa: PLC0415
    from simulator.ws_fleet import read_boards, run_boards  # noqa: PLC0415

    try:
        boards = read_boards(args.tokens)
    except (OSError, SimulatorConfigError) as exc:
        sys.stderr.write(f"fleetwatch simulate-ws: {exc}\n")
        return 2
    settings = load(ApiSettings)
    url = args.api or f"http://{settings.api_host}:{settings.api_port}"

    run_until_signalled(lambda stop: run_boards(boards, url, stop))
    return 0
