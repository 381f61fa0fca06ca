"""The delivery worker against failing receivers: retries, Retry-After, failure with the
error, a killed worker, escalation stopped by an acknowledgement, a failing channel."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alerting.recipients import Recipient
from alerting.rules import Action, Rule, RuleOperator
from alerting.templates import Template
from fleetwatch.settings import PostgresSettings
from stores.postgres import alerting_store as store
from tests.alerting.conftest import RunWorker, add_rule, add_template, alert_settings
from tests.support.receivers import free_port, http_receiver, smtp_server, wait_until

pytestmark = []


def _device(db: psycopg.Connection[Any]) -> int:
    row = db.execute(
        "INSERT INTO devices (hostname, kind, mac_address) "
        "VALUES ('ESG_ALARM_0042', 'panel', 'aa:bb:cc:00:00:42') RETURNING id"
    ).fetchone()
    assert row is not None
    return int(row[0])


def _event(db: psycopg.Connection[Any], template: Template, *actions: Action) -> int:
    """An open event of a rule whose actions are ``actions``, its deliveries queued the way
    the engine queues them."""
    from alerting.book import RuleBook, Subject, rule_from_row, template_from_row
    from alerting.engine import Observation, apply

    add_template(db, template)
    rule = add_rule(
        db,
        Rule(name="hot", kind="panel", metric="temperature", operator=RuleOperator.GT,
             warning=30.0, cooldown_minutes=0.0, actions=actions),
    )  # fmt: skip
    device_id = _device(db)
    book = RuleBook(
        [rule_from_row(store.rule_named(db, rule.name))],
        [template_from_row(row) for row in store.load_templates(db)],
    )
    with db.transaction():
        effects = apply(
            db,
            book,
            [Observation("panel", Subject(device_id, hostname="ESG_ALARM_0042", zone=3,
                                          device_kind="panel"),
                         datetime.now(UTC), {"temperature": 31.5})],
        )  # fmt: skip
    (event_id,) = effects.opened
    return event_id


def _deliveries(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in db.execute(
            "SELECT status, attempt_count, error_message FROM notification_deliveries ORDER BY id"
        ).fetchall()
    ]


def _quick(name: str, recipient: Recipient, retries: int = 2) -> Template:
    return Template(name=name, message="{message}", recipients=(recipient,),
                    retry_count=retries, retry_delay_minutes=0.01)  # fmt: skip


async def test_webhook_500_then_200_is_sent_on_the_retry(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """A 500 is retried after the template's delay; the 200 that follows marks it sent."""
    with http_receiver([(500, {}), (200, {})]) as hook:
        _event(db, _quick("ops", Recipient("webhook", hook.url)), Action(template="ops"))
        run_worker(alert_settings(), channels=["webhook"])
        first, second = await asyncio.to_thread(hook.wait_for, 2)
        await asyncio.to_thread(
            wait_until, lambda: _deliveries(db)[0][0] == "sent", 10.0, "sent recorded"
        )
    assert (first.status, second.status) == (500, 200)
    assert first.headers["X-Fleetwatch-Delivery"] == second.headers["X-Fleetwatch-Delivery"]
    assert _deliveries(db) == [("sent", 2, None)]


async def test_429_retry_after_is_honoured(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """A 429 with Retry-After: 2 is tried again no sooner than 2 s later."""
    with http_receiver([(429, {"Retry-After": "2"}), (200, {})]) as hook:
        _event(db, _quick("ops", Recipient("webhook", hook.url)), Action(template="ops"))
        run_worker(alert_settings(), channels=["webhook"])
        first, second = await asyncio.to_thread(hook.wait_for, 2, 30.0)
    assert second.at - first.at >= 2.0
    assert second.status == 200


async def test_smtp_down_retries_then_fails_with_the_error(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """No SMTP server: each attempt fails, and after the retries the delivery is failed
    with the error; the built-in channel rule then raises an event operators see."""
    from alerting import builtin

    builtin.install(db)
    port = free_port()  # nothing listens there
    _event(db, _quick("mail", Recipient("email", "ops@example.com"), retries=2),
           Action(template="mail"))  # fmt: skip
    run_worker(alert_settings(smtp_port=port, smtp_timeout_s=2.0), channels=["email"])
    await asyncio.to_thread(
        wait_until, lambda: _deliveries(db)[0][0] == "failed", 30.0, "delivery failed"
    )
    status, attempts, error = _deliveries(db)[0]
    assert (status, attempts) == ("failed", 3)
    assert f"127.0.0.1:{port}" in error
    await asyncio.to_thread(
        wait_until,
        lambda: (
            db.execute(
                "SELECT count(*) FROM events e JOIN rules r ON r.id = e.rule_id "
                "WHERE r.name = 'Notification channel failing' AND e.subject = 'channel/email'"
            ).fetchone()
            == (1,)
        ),
        10.0,
        "the channel-failing event",
    )
    # It is then delivered, once the server is there: an operator's retry.
    with smtp_server(port) as (mailbox, _):
        store.retry_delivery(db, 1)
        (message,) = await asyncio.to_thread(mailbox.wait_for, 1)
    assert message[1] == ["ops@example.com"]


async def test_escalation_is_cancelled_by_an_acknowledgement(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """A step due after 0.05 min is sent if nobody acknowledged; acknowledged first, it is
    cancelled and never sent."""
    with http_receiver() as first_line, http_receiver() as manager:
        add_template(db, _quick("manager", Recipient("webhook", manager.url)))
        event_id = _event(
            db,
            _quick("first", Recipient("webhook", first_line.url)),
            Action(template="first"),
            Action(template="manager", after_minutes=0.05),
        )
        assert store.acknowledge_event(db, event_id, "ana", "on my way")
        run_worker(alert_settings(), channels=["webhook"])
        await asyncio.to_thread(first_line.wait_for, 1)
        await asyncio.to_thread(
            wait_until,
            lambda: [r[0] for r in _deliveries(db)] == ["sent", "cancelled"],
            15.0,
            "the escalation cancelled",
        )
        assert manager.received == []
    acked = db.execute("SELECT acknowledged_by, acknowledge_note FROM events").fetchone()
    assert acked == ("ana", "on my way")


async def test_a_worker_killed_mid_send_loses_nothing(
    db: psycopg.Connection[Any], migrated_pg: PostgresSettings, run_worker: RunWorker
) -> None:
    """kill -9 of a worker while its webhook request hangs: the lease lapses, another worker
    sends the delivery, and it is recorded as sent once."""
    with http_receiver(delay_s=3.0) as hook:
        _event(db, _quick("ops", Recipient("webhook", hook.url)), Action(template="ops"))
        env = {
            **os.environ,
            "FLEETWATCH_DATABASE_URL": str(migrated_pg.database_url),
            "FLEETWATCH_NOTIFY_LEASE_S": "2",
            "FLEETWATCH_NOTIFY_POLL_S": "0.2",
        }
        doomed = subprocess.Popen(  # noqa: ASYNC220 - killed below, never waited on in the loop
            [sys.executable, "-m", "fleetwatch", "notify", "--channel", "webhook"], env=env
        )
        try:
            await asyncio.to_thread(
                wait_until,
                lambda: _deliveries(db)[0][1] == 1,
                20.0,
                "the first worker's claim",
            )
            time.sleep(0.5)  # noqa: ASYNC251 - the request is on its way to the receiver
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
        run_worker(alert_settings(notify_lease_s=10.0), channels=["webhook"])
        await asyncio.to_thread(
            wait_until, lambda: _deliveries(db)[0][0] == "sent", 30.0, "sent by the second worker"
        )
    status, attempts, _ = _deliveries(db)[0]
    assert (status, attempts) == ("sent", 2)
    sent = db.execute("SELECT sent_at FROM notification_deliveries").fetchone()
    assert sent is not None
    assert sent[0] <= datetime.now(UTC) + timedelta(seconds=1)
