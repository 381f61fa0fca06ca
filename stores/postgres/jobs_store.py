"""Robots' jobs in PostgreSQL beyond what ingest merges from their reports."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg


def fail_silent_jobs(conn: psycopg.Connection[Any], now: datetime, silence: timedelta) -> int:
    """Active jobs whose robot has not reported on them for ``silence``: failed, with the
    reason and the end time; returns how many."""
    seconds = int(silence.total_seconds())
    return conn.execute(
        "UPDATE jobs SET status = 'failed', end_time = %s, "
        "failure_reason = 'no report for ' || %s || ' s' "
        "WHERE status = 'active' AND last_report_at < %s",
        [now, seconds, now - silence],
    ).rowcount
