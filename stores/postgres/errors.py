"""PostgreSQL errors as the store errors callers handle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.exc import DBAPIError, OperationalError

from stores.errors import StoreError, StoreUnavailableError

__all__ = ["sql_errors"]


@contextmanager
def sql_errors(doing: str) -> Iterator[None]:
    """Raise StoreUnavailableError when PostgreSQL fails to answer while ``doing`` (lost
    connection, server down) and StoreError when it refuses; from SQLAlchemy and from the
    driver's own connection alike (COPY runs on the latter, unwrapped)."""
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL failed {doing}: {exc.orig}") from exc
    except DBAPIError as exc:
        raise StoreError(f"PostgreSQL refused {doing}: {exc.orig}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL failed {doing}: {exc}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL refused {doing}: {exc}") from exc
