"""What the alerting pages read, over PostgreSQL with the dashboard's read-only role.

Reads are cached briefly like every report; an action (``dashboards.operate``) clears them
so the page shows its effect at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Final, TypeVar

import polars as pl
import psycopg
import streamlit as st

from analytics.alerts import EVENTS_SCHEMA
from dashboards.data import Sources
from stores.errors import StoreUnavailableError
from stores.postgres import alerting_store as store

T = TypeVar("T")
TTL: Final = timedelta(seconds=15)


@contextmanager
def connect(src: Sources) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection with the dashboard's credentials (autocommit)."""
    url = src.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"PostgreSQL unreachable: {exc}") from exc
    with conn:
        yield conn


@st.cache_data(ttl=TTL, show_spinner="Loading events…")
def events(src: Sources, open_only: bool, limit: int = 500) -> pl.DataFrame:
    """Rule events, newest first (:data:`analytics.alerts.EVENTS_SCHEMA`)."""
    with connect(src) as conn:
        rows = store.list_events(conn, open_only=open_only, limit=limit)
    return pl.DataFrame(
        [{name: row.get(name) for name in EVENTS_SCHEMA.names()} for row in rows],
        schema=EVENTS_SCHEMA,
    )


@st.cache_data(ttl=TTL, show_spinner="Loading rules…")
def rules(src: Sources) -> list[dict[str, Any]]:
    """Every rule's row."""
    with connect(src) as conn:
        return store.load_rules(conn)


@st.cache_data(ttl=TTL, show_spinner="Loading templates…")
def templates(src: Sources) -> list[str]:
    """The notification templates' names."""
    with connect(src) as conn:
        return [row["name"] for row in store.load_templates(conn)]


@st.cache_data(ttl=TTL, show_spinner="Loading deliveries…")
def deliveries(src: Sources, status: str | None, limit: int = 500) -> pl.DataFrame:
    """Notification deliveries, newest first, with their rule and event."""
    columns = {
        "id": pl.Int64(), "event_id": pl.Int64(), "rule": pl.String(),
        "recipient_type": pl.String(), "recipient_address": pl.String(),
        "trigger": pl.String(), "status": pl.String(), "attempt_count": pl.Int64(),
        "created_at": pl.Datetime("us", "UTC"), "sent_at": pl.Datetime("us", "UTC"),
        "next_attempt_at": pl.Datetime("us", "UTC"), "error_message": pl.String(),
    }  # fmt: skip
    with connect(src) as conn:
        rows = store.list_deliveries(conn, status=status, limit=limit)
    return pl.DataFrame([{name: row.get(name) for name in columns} for row in rows], schema=columns)
