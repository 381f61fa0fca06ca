"""Daily and weekly reports: the figures of the period, a PDF, stored once per period
however many workers make it, emailed with the PDF to a real SMTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from alerting import builtin
from alerting.book import template_to_row
from alerting.recipients import Recipient
from alerting.templates import Template
from fleetwatch.cli import main
from fleetwatch.settings import AlertSettings, PostgresSettings
from reports import schedule
from stores.postgres import alerting_store, reports_store
from stores.postgres.migrate import upgrade
from tests.support.people import add_people
from tests.support.receivers import smtp_server

NOW = datetime(2026, 12, 9, 8, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def db(pg_settings: PostgresSettings) -> Iterator[psycopg.Connection[Any]]:
    """A migrated database with a panel, a day of its alarms, events and counts."""
    upgrade(pg_settings)
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as conn:
        builtin.install(conn)
        device = conn.execute(
            "INSERT INTO devices (hostname, mac_address, zone) "
            "VALUES ('ESG_ALARM_0001', 'aa:bb:cc:00:00:01', 3) RETURNING id"
        ).fetchone()
        assert device is not None
        yesterday = NOW - timedelta(days=1)
        for alarm_type, hours, resolved in (("PANIC1", 2, 3), ("PANIC1", 5, None),
                                            ("TAMPER", 9, None)):  # fmt: skip
            conn.execute(
                "INSERT INTO alarm_events (device_id, timestamp, alarm_type, event_state, "
                "priority, resolved_at) VALUES (%s, %s, %s, 'ACTIVE', 'CRITICAL', %s)",
                [device[0], yesterday.replace(hour=hours), alarm_type,
                 resolved and yesterday.replace(hour=resolved)],
            )  # fmt: skip
        conn.execute(
            "INSERT INTO heartbeat_counts (device_id, hour, received, written) "
            "VALUES (%s, %s, 720, 18)",
            [device[0], yesterday.replace(hour=4)],
        )
        yield conn


def _sections(data: dict[str, Any]) -> dict[str, list[list[Any]]]:
    return {section["title"]: section["rows"] for section in data["sections"]}


def test_the_daily_report_holds_the_day_before(db: psycopg.Connection[Any]) -> None:
    """Yesterday's alarms and the CDC savings, in the stored figures and a real PDF."""
    start, end = schedule.last_period("daily", NOW)
    assert (start, end) == (datetime(2026, 12, 8, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC))
    report_id, report, pdf = schedule.make(db, "daily", start, end, by="test", scheduled=False)
    assert report_id is not None
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 1000
    data = db.execute("SELECT data FROM reports WHERE id = %s", [report_id]).fetchone()
    assert data is not None
    sections = _sections(data[0])
    assert sections["Panel alarms"] == [["PANIC1", 2, 0, 1], ["TAMPER", 1, 0, 1]]
    assert sections["Storage savings (change data capture)"] == [["panel", 720, 18, "97.5 %"]]
    assert sections["Fleet"] == [["panel", 1, 0, 0]]
    assert report.title == "fleetwatch daily report, 2026-12-08"


def test_the_weekly_report_covers_the_iso_week_before() -> None:
    """On a Wednesday, the week before is Monday to Monday."""
    start, end = schedule.last_period("weekly", NOW)
    assert (start.isoformat(), end.isoformat()) == (
        "2026-11-30T00:00:00+00:00",
        "2026-12-07T00:00:00+00:00",
    )


def test_due_reports_are_made_once_by_concurrent_workers(
    db: psycopg.Connection[Any], pg_settings: PostgresSettings
) -> None:
    """At 00:05 only the week before is due (the day before is, 10 minutes past its end);
    later, four workers looking at once make one daily report. Without recipients, it
    says so."""
    url = str(pg_settings.database_url)
    settings = AlertSettings()
    too_early = datetime(2026, 12, 9, 0, 5, tzinfo=UTC)
    assert len(schedule.run_due(url, settings, too_early)) == 1
    assert [row["report_type"] for row in reports_store.list_reports(db)] == ["weekly"]
    made: list[list[int]] = []
    threads = [
        threading.Thread(target=lambda: made.append(schedule.run_due(url, settings, NOW)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(len(ids) for ids in made) == 1
    rows = reports_store.list_reports(db)
    assert sorted(row["report_type"] for row in rows) == ["daily", "weekly"]
    assert {row["send_error"] for row in rows} == {"no email recipients in the report template"}
    assert schedule.run_due(url, settings, NOW) == []


def test_report_send_emails_the_pdf(
    db: psycopg.Connection[Any], pg_settings: PostgresSettings,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`fleetwatch report send daily` emails the PDF to the report template's addresses
    and records whom."""
    alerting_store.save_template(
        db,
        template_to_row(Template(name="reports", message="{rule}", recipients=(
            Recipient("email", "manager@example.com"), Recipient("sms", "+34600000003")))),
        "test",
        replace=True,  # the built-in one has no recipients
    )  # fmt: skip
    with smtp_server() as (mailbox, port):
        monkeypatch.setenv("FLEETWATCH_SMTP_PORT", str(port))
        monkeypatch.setenv("FLEETWATCH_DATABASE_URL", str(pg_settings.database_url))
        monkeypatch.setenv("FLEETWATCH_TOKEN", add_people(db)["ana"])
        assert main(["report", "send", "daily"]) == 0
        ((_, recipients, message),) = mailbox.wait_for(1)
    assert recipients == ["manager@example.com"]
    assert message["Subject"].startswith("fleetwatch daily report, ")
    (attachment,) = [part for part in message.walk() if part.get_filename()]
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.startswith(b"%PDF-")
    assert "emailed to manager@example.com" in capsys.readouterr().out
    row = db.execute("SELECT sent_to, created_by, scheduled FROM reports").fetchone()
    assert row == (["manager@example.com"], "ana", False)
    audit = db.execute("SELECT username, category, message FROM system_logs ORDER BY id DESC")
    assert audit.fetchone() == ("ana", "report", "send the daily report")
