"""Silences hold notifications (released or dropped when they end), a zone's alarm storm
becomes one notification, and a recipient gets no more than its hourly fill."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alerting.book import RuleBook, Subject, rule_from_row, template_from_row
from alerting.engine import Observation, apply
from alerting.recipients import Recipient
from alerting.rules import Action, Rule, RuleOperator
from alerting.templates import Template
from stores.postgres import alerting_store as store
from tests.alerting.conftest import RunWorker, add_rule, add_template, alert_settings
from tests.support.receivers import http_receiver, wait_until


def _devices(db: psycopg.Connection[Any], count: int, zone: int = 4) -> list[Subject]:
    subjects = []
    for n in range(count):
        hostname = f"ESG_ALARM_{100 + n:04d}"
        row = db.execute(
            "INSERT INTO devices (hostname, kind, mac_address, zone) VALUES (%s, 'panel', %s, %s) "
            "RETURNING id",
            [hostname, f"aa:bb:cc:00:01:{n:02x}", zone],
        ).fetchone()
        assert row is not None
        subjects.append(Subject(int(row[0]), hostname=hostname, zone=zone, device_kind="panel"))
    return subjects


def _setup(db: psycopg.Connection[Any], url: str, **action: Any) -> RuleBook:  # noqa: ANN401
    """A rule "hot" (temperature above 30) notifying a webhook at ``url``."""
    add_template(db, Template(name="ops", message="{device} at {value}",
                              recipients=(Recipient("webhook", url),)))  # fmt: skip
    add_rule(db, Rule(name="hot", kind="panel", metric="temperature", operator=RuleOperator.GT,
                      warning=30.0, actions=(Action(template="ops", **action),)))  # fmt: skip
    return RuleBook(
        [rule_from_row(store.rule_named(db, "hot"))],
        [template_from_row(row) for row in store.load_templates(db)],
    )


def _heat(db: psycopg.Connection[Any], book: RuleBook, subjects: list[Subject]) -> list[int]:
    with db.transaction():
        effects = apply(
            db,
            book,
            [Observation("panel", s, datetime.now(UTC), {"temperature": 35.0}) for s in subjects],
        )
    return effects.opened


def _statuses(db: psycopg.Connection[Any]) -> list[str]:
    rows = db.execute("SELECT status FROM notification_deliveries ORDER BY id").fetchall()
    return [str(row[0]) for row in rows]


async def test_a_silence_holds_then_releases(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """During a zone's silence the event is recorded and its notification held; ended, the
    notification goes out."""
    with http_receiver() as hook:
        book = _setup(db, hook.url)
        (subject,) = _devices(db, 1)
        now = datetime.now(UTC)
        silence = store.add_silence(db, {
            "scope_type": "zone", "scope_value": "4", "starts_at": now - timedelta(minutes=1),
            "ends_at": now + timedelta(hours=1), "on_end": "release", "reason": "works",
            "created_by": "ana"})  # fmt: skip
        assert len(_heat(db, book, [subject])) == 1
        run_worker(alert_settings(), channels=["webhook"])
        await asyncio.sleep(1.0)
        assert _statuses(db) == ["held"]
        assert hook.received == []
        assert store.list_silences(db)[0]["held"] == 1
        store.end_silence(db, silence, "ana")
        (request,) = await asyncio.to_thread(hook.wait_for, 1)
    assert json.loads(request.body)["message"] == f"{subject.hostname} at 35"
    await asyncio.to_thread(wait_until, lambda: _statuses(db) == ["sent"], 10.0, "sent")


async def test_a_silence_that_drops_cancels_what_it_held(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """A device's silence ending with 'drop' cancels its held notification, saying why."""
    with http_receiver() as hook:
        book = _setup(db, hook.url)
        (subject,) = _devices(db, 1)
        now = datetime.now(UTC)
        silence = store.add_silence(db, {
            "scope_type": "device", "scope_value": subject.hostname,
            "starts_at": now - timedelta(minutes=1), "ends_at": now + timedelta(hours=1),
            "on_end": "drop", "reason": None, "created_by": "ana"})  # fmt: skip
        _heat(db, book, [subject])
        run_worker(alert_settings(), channels=["webhook"])
        store.end_silence(db, silence, "bo")
        await asyncio.to_thread(wait_until, lambda: _statuses(db) == ["cancelled"], 10.0, "drop")
        assert hook.received == []
    error = db.execute("SELECT error_message FROM notification_deliveries").fetchone()
    assert error == ("dropped: held by a silence",)


async def test_an_alarm_storm_in_a_zone_is_one_notification(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """Five devices of a zone breaching within the group wait: five events, five
    deliveries, one webhook request listing the five devices."""
    with http_receiver() as hook:
        book = _setup(db, hook.url, group_seconds=1.0)
        subjects = _devices(db, 5)
        assert len(_heat(db, book, subjects)) == 5
        run_worker(alert_settings(), channels=["webhook"])
        (request,) = await asyncio.to_thread(hook.wait_for, 1)
        await asyncio.to_thread(wait_until, lambda: _statuses(db) == ["sent"] * 5, 10.0, "sent")
        await asyncio.sleep(0.5)
        assert len(hook.received) == 1
    message = json.loads(request.body)["message"]
    assert message.startswith("5 events together (")
    for subject in subjects:
        assert f"- {subject.hostname} at 35" in message


async def test_a_recipient_gets_no_more_than_its_hourly_fill(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """With at most 2 messages an hour, the third waits, saying why, its attempt uncounted."""
    with http_receiver() as hook:
        book = _setup(db, hook.url)
        _heat(db, book, _devices(db, 3))
        run_worker(alert_settings(notify_max_per_hour=2), channels=["webhook"])
        await asyncio.to_thread(hook.wait_for, 2)
        await asyncio.to_thread(
            wait_until, lambda: sorted(_statuses(db)) == ["pending", "sent", "sent"], 10.0, "2"
        )
        await asyncio.sleep(0.5)
        assert len(hook.received) == 2
    waiting = db.execute(
        "SELECT attempt_count, error_message, next_attempt_at > now() + interval '4 minutes' "
        "FROM notification_deliveries WHERE status = 'pending'"
    ).fetchone()
    assert waiting is not None
    assert waiting[0] == 0
    assert "rate limited: 2 messages" in waiting[1]
    assert waiting[2] is True


async def test_a_notification_repeats_until_acknowledged(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """Repeated every 3 s while nobody acknowledges: it comes again; acknowledged, the
    next repeat is cancelled and nothing more arrives."""
    with http_receiver() as hook:
        book = _setup(db, hook.url, repeat_minutes=0.05)
        (event_id,) = _heat(db, book, _devices(db, 1))
        run_worker(alert_settings(), channels=["webhook"])
        first, second = await asyncio.to_thread(hook.wait_for, 2, 20.0)
        assert second.at - first.at >= 2.5
        await asyncio.to_thread(
            wait_until, lambda: _statuses(db) == ["sent", "sent", "pending"], 10.0, "#2 queued"
        )
        assert store.acknowledge_event(db, event_id, "ana", None)
        await asyncio.to_thread(
            wait_until, lambda: "cancelled" in _statuses(db), 15.0, "the repeat cancelled"
        )
        count = len(hook.received)
        await asyncio.sleep(4.0)
        assert len(hook.received) == count
    triggers = [row[0] for row in db.execute(
        "SELECT trigger FROM notification_deliveries ORDER BY id").fetchall()]  # fmt: skip
    assert triggers[:3] == ["opened", "opened#1", "opened#2"]


async def test_a_mute_timing_holds_only_inside_its_window(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """A nightly window around now holds the notification; outside its window, a mute
    timing holds nothing; when the window closes, what it held goes out."""
    with http_receiver() as hook:
        book = _setup(db, hook.url)
        inside, outside = _devices(db, 2)
        now = datetime.now(UTC)
        window = {"window_start": (now - timedelta(minutes=30)).time(),
                  "window_end": (now + timedelta(minutes=30)).time()}  # fmt: skip
        elsewhere = {"window_start": (now + timedelta(hours=2)).time(),
                     "window_end": (now + timedelta(hours=3)).time()}  # fmt: skip
        day = {"starts_at": now - timedelta(days=1), "ends_at": now + timedelta(days=7),
               "on_end": "release", "reason": "nights", "created_by": "ana"}  # fmt: skip
        held_by = store.add_silence(
            db, {"scope_type": "device", "scope_value": inside.hostname, **day, **window}
        )
        store.add_silence(db, {"scope_type": "device", "scope_value": outside.hostname, **day,
                               **elsewhere})  # fmt: skip
        _heat(db, book, [inside, outside])
        run_worker(alert_settings(), channels=["webhook"])
        (request,) = await asyncio.to_thread(hook.wait_for, 1)
        assert outside.hostname in json.loads(request.body)["message"]
        await asyncio.to_thread(
            wait_until, lambda: sorted(_statuses(db)) == ["held", "sent"], 10.0, "one held"
        )
        # The window closes (moved to end a minute ago): the held notification goes out.
        db.execute(
            "UPDATE silences SET window_end = %s WHERE id = %s",
            [(now - timedelta(minutes=1)).time(), held_by],
        )
        await asyncio.to_thread(hook.wait_for, 2)
        await asyncio.to_thread(
            wait_until, lambda: _statuses(db) == ["sent", "sent"], 10.0, "both sent"
        )


async def test_critical_events_are_never_rate_limited(
    db: psycopg.Connection[Any], run_worker: RunWorker
) -> None:
    """With at most 1 message an hour, three critical events still all go out."""
    with http_receiver() as hook:
        add_template(db, Template(name="ops", message="{device}",
                                  recipients=(Recipient("webhook", hook.url),)))  # fmt: skip
        add_rule(db, Rule(name="very hot", kind="panel", metric="temperature",
                          operator=RuleOperator.GT, critical=30.0,
                          actions=(Action(template="ops"),)))  # fmt: skip
        book = RuleBook(
            [rule_from_row(store.rule_named(db, "very hot"))],
            [template_from_row(row) for row in store.load_templates(db)],
        )
        _heat(db, book, _devices(db, 3))
        run_worker(alert_settings(notify_max_per_hour=1), channels=["webhook"])
        await asyncio.to_thread(hook.wait_for, 3)
    await asyncio.to_thread(wait_until, lambda: _statuses(db) == ["sent"] * 3, 10.0, "sent")
