"""What routes depend on: a pooled database connection and the person calling; for the
reports of ``analytics``, an SQLAlchemy engine on the same database and an InfluxDB client."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Header, Request
from influxdb_client.client.influxdb_client import InfluxDBClient
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlalchemy import Engine

from access import Identity, SignInError, identify_token
from analytics.load import InfluxBuckets
from api.limits import RateLimiter
from fleetwatch.settings import InfluxSettings, PostgresSettings, RetentionSettings, load
from stores.errors import StoreUnavailableError
from stores.influx import make_client
from stores.postgres import make_engine

__all__ = ["Caller", "Conn", "Influx", "Reports", "connection", "engine", "influx", "person"]


def connection(request: Request) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection from the app's pool, returned after the request."""
    pool: ConnectionPool[psycopg.Connection[Any]] = request.app.state.pool
    try:
        with pool.connection(timeout=10) as conn:
            yield conn
    except PoolTimeout as exc:
        raise StoreUnavailableError(f"no database connection: {exc}") from exc


Conn = Annotated[psycopg.Connection[Any], Depends(connection)]


def person(
    request: Request,
    conn: Conn,
    authorization: Annotated[str | None, Header()] = None,
) -> Identity:
    """The person whose personal API token authorises the request (rate-limited per person).

    Raises:
        SignInError: no bearer token, or not a live one of an active person (recorded).
        ApiError: 429, the person's requests per minute are spent.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignInError("send a personal API token: Authorization: Bearer fwt_...")
    source = request.client.host if request.client else None
    who = identify_token(conn, token.strip(), source=source)
    limiter: RateLimiter = request.app.state.limiter
    limiter.take(str(who.user_id))
    return who


Caller = Annotated[Identity, Depends(person)]


@functools.lru_cache(maxsize=8)
def _engine(conninfo: str) -> Engine:
    # Without a pool of its own: the API's connections are the psycopg pool's, and an engine
    # that keeps none needs no disposing when the app stops.
    return make_engine(PostgresSettings.model_validate({"database_url": conninfo}), pooled=False)


def engine(request: Request) -> Engine:
    """An SQLAlchemy engine on the API's database, which the ``analytics.load`` loaders take."""
    pool: ConnectionPool[psycopg.Connection[Any]] = request.app.state.pool
    return _engine(pool.conninfo)


Reports = Annotated[Engine, Depends(engine)]


@dataclass(frozen=True, slots=True)
class InfluxSource:
    """Where the heartbeat and telemetry history is: a client, its buckets and org."""

    client: InfluxDBClient
    buckets: InfluxBuckets
    org: str


def influx() -> Iterator[InfluxSource]:
    """A client on InfluxDB as configured now (FLEETWATCH_INFLUX_*, the hourly bucket from
    FLEETWATCH_INFLUX_HOURLY_BUCKET), closed after the request; SettingsError when the
    settings are bad."""
    settings = load(InfluxSettings)
    buckets = InfluxBuckets(
        raw=settings.influx_bucket, hourly=load(RetentionSettings).influx_hourly_bucket
    )
    with make_client(settings) as client:
        yield InfluxSource(client, buckets, settings.influx_org)


Influx = Annotated[InfluxSource, Depends(influx)]
