"""Reports in PostgreSQL (``reports``): stored with their PDF, listed, marked sent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from stores.errors import StoreError

__all__ = ["ReportNotFoundError", "list_reports", "mark_sent", "pdf_of", "save_report"]


class ReportNotFoundError(StoreError):
    """No report of that id."""


def save_report(conn: psycopg.Connection[Any], row: Mapping[str, Any]) -> int | None:
    """Store a report; its id, or None when it is a scheduled one that exists already."""
    found = conn.execute(
        "INSERT INTO reports (title, description, report_type, data, created_by, period_start, "
        "period_end, scheduled, pdf) VALUES (%(title)s, %(description)s, %(report_type)s, "
        "%(data)s, %(created_by)s, %(period_start)s, %(period_end)s, %(scheduled)s, %(pdf)s) "
        "ON CONFLICT (report_type, period_start) WHERE scheduled DO NOTHING RETURNING id",
        {**row, "data": Jsonb(row["data"])},
    ).fetchone()
    return None if found is None else int(found[0])


def scheduled_exists(conn: psycopg.Connection[Any], report_type: str, start: datetime) -> bool:
    """True when the scheduled report of that type and period was made."""
    return (
        conn.execute(
            "SELECT 1 FROM reports WHERE scheduled AND report_type = %s AND period_start = %s",
            [report_type, start],
        ).fetchone()
        is not None
    )


def mark_sent(
    conn: psycopg.Connection[Any], report_id: int, sent_to: list[str], error: str | None
) -> None:
    """Record whom the report was emailed to, or why it was not."""
    conn.execute(
        "UPDATE reports SET sent_to = %s, sent_at = CASE WHEN %s::text IS NULL THEN now() END, "
        "send_error = %s WHERE id = %s",
        [Jsonb(sent_to), error, error, report_id],
    )


def list_reports(conn: psycopg.Connection[Any], limit: int = 100) -> list[dict[str, Any]]:
    """The newest reports, without their PDF."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, title, report_type, period_start, period_end, created_at, created_by, "
            "scheduled, sent_to, sent_at, send_error, octet_length(pdf) AS pdf_bytes "
            "FROM reports ORDER BY id DESC LIMIT %s",
            [limit],
        )
        return list(cur.fetchall())


def pdf_of(conn: psycopg.Connection[Any], report_id: int) -> tuple[str, bytes]:
    """A report's title and PDF; ReportNotFoundError when there is none."""
    row = conn.execute("SELECT title, pdf FROM reports WHERE id = %s", [report_id]).fetchone()
    if row is None or row[1] is None:
        raise ReportNotFoundError(f"no report {report_id} with a PDF")
    return str(row[0]), bytes(row[1])
