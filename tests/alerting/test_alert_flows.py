"""A panel's panic press reaches people: MQTT -> ingest -> rule -> event -> notify worker
-> a real webhook server, SMTP server and SMS gateway, each asserting what it received."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import psycopg

from alerting import builtin
from alerting.recipients import Recipient
from alerting.rules import Action, Rule
from alerting.templates import Template
from ingest.contract import TopicKind, pb
from ingest.service import IngestService
from tests.alerting.conftest import SECRET, RunWorker, add_rule, add_template, alert_settings
from tests.support import robots
from tests.support.devices import FakePanel, Publisher
from tests.support.receivers import http_receiver, smtp_server, wait_until

PANEL = FakePanel(7)


def _rows(db: psycopg.Connection[Any], query: str, *params: object) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db.execute(query, params).fetchall()]


async def _press(ingest: IngestService, device: Publisher, *, end: bool = False) -> None:
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await device.send(PANEL, TopicKind.ALARM, PANEL.alarm(1))
    expected = 2
    if end:
        await device.send(
            PANEL,
            TopicKind.ALARM,
            PANEL.alarm(2, state=pb.AlarmEvent.INACTIVE, physical_state=False),
        )
        expected = 3
    await ingest.wait_processed(expected)


async def test_panic_press_reaches_the_webhook_signed_and_its_end_resolves(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
    run_worker: RunWorker,
) -> None:
    """The built-in PANIC1 rule opens a critical event whose webhook is signed; the alarm's
    end resolves it and sends the resolution too."""
    builtin.install(db)
    with http_receiver() as hook:
        add_template(db, Template(name="operators", message=builtin.OPERATORS.message,
                                  recipients=(Recipient("webhook", hook.url),)))  # fmt: skip
        run_worker(alert_settings(), channels=["webhook"])
        await _press(ingest, device, end=True)
        first, second = await _wait(hook, 2)

    opened = json.loads(first.body)
    assert opened["trigger"] == "opened"
    assert opened["event"]["rule"] == "Panel alarm PANIC1"
    assert opened["event"]["severity"] == "critical"
    assert opened["event"]["hostname"] == PANEL.hostname
    assert PANEL.hostname in opened["message"]
    assert "http://dashboard.test/events?event=" in opened["message"]
    timestamp = first.headers["X-Fleetwatch-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + first.body, hashlib.sha256)
    assert first.headers["X-Fleetwatch-Signature"] == f"sha256={expected.hexdigest()}"
    assert json.loads(second.body)["trigger"] == "resolved"
    events = _rows(db, "SELECT status, severity, resolved_by FROM events")
    assert events == [("resolved", "critical", "rule")]
    deliveries = _rows(
        db, "SELECT trigger, status, attempt_count FROM notification_deliveries ORDER BY id"
    )
    assert deliveries == [("opened", "sent", 1), ("resolved", "sent", 1)]


async def _wait(hook: Any, count: int) -> list[Any]:  # noqa: ANN401
    return await asyncio.to_thread(hook.wait_for, count)


async def test_email_and_sms_reach_their_servers(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
    run_worker: RunWorker,
) -> None:
    """One event, one email to the SMTP server and one text through the SMS gateway."""
    with smtp_server() as (mailbox, port), http_receiver() as gateway:
        add_template(
            db,
            Template(
                name="oncall",
                subject="{severity}: {rule} on {device}",
                message="{message} (zone {zone})",
                recipients=(
                    Recipient("email", "oncall@example.com", "On call"),
                    Recipient("sms", "+34600000001"),
                ),
                # A loaded machine's SMTP test server now and then drops a first connection:
                # the delivery is then tried again after a second, as a real one would be.
                retry_delay_minutes=0.02,
            ),
        )
        add_rule(db, Rule(name="panic", kind="panel", metric="alarm_panic1", operator="eq",  # type: ignore[arg-type]
                          critical=1.0, actions=(Action(template="oncall"),)))  # fmt: skip
        settings = alert_settings(smtp_port=port, sms_url=gateway.url)
        run_worker(settings)
        await _press(ingest, device)
        ((sender, recipients, email),) = mailbox.wait_for(1)
        (text,) = await _wait(gateway, 1)

    assert recipients == ["oncall@example.com"]
    assert sender == settings.smtp_from
    assert email["Subject"] == f"critical: panic on {PANEL.hostname}"
    assert "zone 3" in email.get_payload()
    sms = json.loads(text.body)
    assert sms["to"] == "+34600000001"
    assert sms["text"].startswith(f"panic: alarm_panic1 = 1 on {PANEL.hostname}")
    wait_until(
        lambda: (
            _rows(db, "SELECT count(*) FROM notification_deliveries WHERE status = 'sent'")
            == [(2,)]
        ),
        what="both deliveries recorded as sent",
    )


async def test_offline_for_a_while_opens_without_a_new_value_and_return_resolves(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """A last will starts the offline rule's `for`; the sweep opens the event when it runs
    out, though nothing more arrives; the device's return resolves it."""
    add_rule(db, Rule(name="gone", kind="device", metric="online", operator="eq",  # type: ignore[arg-type]
                      warning=0.0, for_seconds=1, cooldown_minutes=0.0))  # fmt: skip
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await device.send(PANEL, TopicKind.LWT, b"")
    await ingest.wait_processed(2)
    assert _rows(db, "SELECT count(*) FROM events") == [(0,)]
    await asyncio.to_thread(
        wait_until,
        lambda: (
            _rows(db, "SELECT status, severity, subject FROM events") == [("new", "warning", "1")]
        ),
        10.0,
        "the offline event",
    )
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat())
    await ingest.wait_processed(3)
    assert _rows(db, "SELECT status, resolved_by FROM events") == [("resolved", "rule")]


async def test_a_servo_too_hot_is_an_event_of_that_servo(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """The built-in servo rule watches each servo apart: servo_2 at 78 °C is critical, named
    by its part; servo_1 at 45 °C raises nothing."""
    builtin.install(db)
    db.execute("UPDATE rules SET for_seconds = 0 WHERE name = 'Robot servo temperature'")
    servos = {
        "servo_1": {"position": 2048, "temperature": 45.0, "load": 20.0, "voltage": 7.4,
                    "speed": 0},
        "servo_2": {"position": 1000, "temperature": 78.0, "load": 90.0, "voltage": 7.4,
                    "speed": 0},
    }  # fmt: skip
    topic = f"{ingest.topic_prefix}/{robots.ROBOT}/robot"
    await device.raw(topic, robots.state(servos=servos))
    await ingest.wait_processed(1)
    events = _rows(db, "SELECT severity, source, subject, value FROM events")
    assert events == [("critical", "servos/servo_2", "1/servos/servo_2", 78.0)]
