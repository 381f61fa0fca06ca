"""Which reports are due, making them once, and emailing them.

The daily report covers the UTC day before, the weekly one the ISO week before (Monday to
Monday); each is due from ``DUE_AFTER`` past its period's end, so that the last batches and
deliveries of the period are in. Several workers may look at once: the database keeps one
scheduled report per type and period, and a transaction-scoped advisory lock lets only one
of them build it.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Final

import aiosmtplib
import psycopg

from alerting.channels.email import smtp_send
from fleetwatch.settings import AlertSettings
from reports.content import KINDS, Report, ReportKind, gather
from reports.pdf import render
from stores.postgres import alerting_store, reports_store

logger = logging.getLogger(__name__)

__all__ = ["DUE_AFTER", "last_period", "make", "run_due", "send"]

DUE_AFTER: Final = timedelta(minutes=10)


def last_period(kind: ReportKind, now: datetime) -> tuple[datetime, datetime]:
    """The last complete period of ``kind`` before ``now``: [start, end)."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "daily":
        return today - timedelta(days=1), today
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(days=7), monday


def make(
    conn: psycopg.Connection[Any],
    kind: ReportKind,
    start: datetime,
    end: datetime,
    *,
    by: str,
    scheduled: bool,
) -> tuple[int | None, Report, bytes]:
    """Gather, render and store the report of [start, end); (id or None if a scheduled one
    exists already, the report, its PDF)."""
    report = gather(conn, kind, start, end, datetime.now(UTC))
    pdf = render(report)
    report_id = reports_store.save_report(
        conn,
        {
            "title": report.title,
            "description": f"{kind} report of fleet, alarms, events, notifications, commands "
            "and storage",
            "report_type": kind,
            "data": report.to_json(),
            "created_by": by,
            "period_start": start,
            "period_end": end,
            "scheduled": scheduled,
            "pdf": pdf,
        },
    )
    return report_id, report, pdf


async def send(
    settings: AlertSettings, report: Report, pdf: bytes, recipients: list[str]
) -> str | None:
    """Email the report with its PDF attached to ``recipients``; the error, or None."""
    if not recipients:
        return "no email recipients in the report template"
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message["Subject"] = report.title
    message.set_content(
        f"{report.title}\nPeriod {report.start:%Y-%m-%d %H:%M} to "
        f"{report.end:%Y-%m-%d %H:%M} UTC. The report is attached as a PDF."
    )
    filename = f"fleetwatch-{report.kind}-{report.start:%Y%m%d}.pdf"
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    try:
        await smtp_send(settings, message)
    except (aiosmtplib.SMTPException, OSError) as exc:
        return f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}"
    return None


def report_recipients(conn: psycopg.Connection[Any], template: str) -> list[str]:
    """The email recipients of the notification template ``template``."""
    try:
        row = alerting_store.template_named(conn, template)
    except alerting_store.NotFoundError:
        return []
    return [r["address"] for r in row["recipients"] or [] if r.get("type") == "email"]


def run_due(conninfo: str, settings: AlertSettings, now: datetime) -> list[int]:
    """Make and email every scheduled report that is due and not made yet; their ids."""
    made = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for kind in KINDS:
            start, end = last_period(kind, now)
            if now < end + DUE_AFTER or reports_store.scheduled_exists(conn, kind, start):
                continue
            with conn.transaction():
                key = zlib.crc32(f"fleetwatch report {kind} {start.isoformat()}".encode())
                locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", [key]).fetchone()
                if not (locked and locked[0]):
                    continue  # another worker is making it
                report_id, report, pdf = make(conn, kind, start, end, by="schedule", scheduled=True)
            if report_id is None:
                continue
            recipients = report_recipients(conn, settings.report_template)
            error = asyncio.run(send(settings, report, pdf, recipients))
            reports_store.mark_sent(conn, report_id, [] if error else recipients, error)
            logger.info("%s report %d made; %s", kind, report_id, error or "emailed")
            made.append(report_id)
    return made
