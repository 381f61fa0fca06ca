"""``fleetwatch api``: serve the HTTP API, or print its OpenAPI document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleetwatch.settings import ApiSettings, PostgresSettings, load


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
    app = create_app(load(PostgresSettings), settings)
    uvicorn.run(
        app,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,  # fleetwatch's own logging
        server_header=False,
    )
    return 0
