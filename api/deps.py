"""What every route depends on: a pooled database connection and the person calling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Header, Request
from psycopg_pool import ConnectionPool, PoolTimeout

from access import Identity, SignInError, identify_token
from api.limits import RateLimiter
from stores.errors import StoreUnavailableError

__all__ = ["Caller", "Conn", "connection", "person"]


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
