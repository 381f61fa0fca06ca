"""The API application: routes, error bodies, limits, the connection pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from api import errors
from api.devices import DeviceIngest, device_socket, running_ingest
from api.limits import BodyLimit, RateLimiter
from api.routes import router
from fleetwatch import __version__
from fleetwatch.settings import ApiSettings, PostgresSettings

__all__ = ["create_app"]


def create_app(
    pg: PostgresSettings, settings: ApiSettings, devices: DeviceIngest | None = None
) -> FastAPI:
    """The API over ``pg``'s database, with ``settings``' limits; with ``devices``, also the
    WebSocket devices' endpoint and their ingest."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: ConnectionPool[Any] = ConnectionPool(
            str(pg.database_url),
            min_size=1,
            max_size=settings.api_pool_size,
            kwargs={"autocommit": True},
            open=False,
        )
        pool.open()
        app.state.pool = pool
        try:
            if devices is None:
                yield
            else:
                async with running_ingest(app, pg, devices):
                    yield
        finally:
            pool.close()

    app = FastAPI(
        title="fleetwatch",
        version=__version__,
        summary="The fleet, its alarms, events and commands, for integrators.",
        description=(
            "Every request carries a personal API token (`Authorization: Bearer fwt_...`, made "
            "with `fleetwatch users token create`) and acts with its person's role. Errors "
            'are `{"error": {"status", "code", "message"}}`.'
        ),
        lifespan=lifespan,
    )
    app.state.limiter = RateLimiter(settings.api_rate_per_minute)
    errors.install(app)
    app.include_router(router)
    if devices is not None:
        app.add_api_websocket_route("/ws/{device_id}", device_socket)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    return app
