"""A message its sender flags as possibly delivered before (MQTT's DUP) is not dead-lettered
twice: the flag reaches the store with the delivery, which keeps the first dead letter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.service import IngestService
from ingest.transports import Delivery


def bad(topic: str, payload: bytes, *, redelivered: bool, at: datetime) -> Delivery:
    return Delivery(
        transport="mqtt", address=topic, payload=payload, received_at=at, redelivered=redelivered
    )


def test_a_redelivered_bad_message_keeps_one_dead_letter(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    db: psycopg.Connection[Any],
) -> None:
    service = IngestService(migrated_pg, mqtt_settings, influx_settings)
    topic = f"{mqtt_settings.topic_prefix}/ESG_ALARM_0001/heartbeat"
    now = datetime.now(UTC)
    try:
        process = service.pipeline.process
        process([bad(topic, b"\xff first", redelivered=False, at=now)])
        # The same message again, flagged: its first delivery's dead letter stands for it.
        process([bad(topic, b"\xff first", redelivered=True, at=now + timedelta(seconds=1))])
        # Not flagged: a device that sent the same bad bytes twice sent two messages.
        process([bad(topic, b"\xff first", redelivered=False, at=now + timedelta(seconds=2))])
        # Flagged, but nothing like it was dead-lettered: its first delivery never was.
        process([bad(topic, b"\xff other", redelivered=True, at=now + timedelta(seconds=3))])
        # Flagged, and alike only to a dead letter older than a day: kept.
        process([bad(topic, b"\xff first", redelivered=True, at=now + timedelta(days=2))])
    finally:
        service._close()
    rows = db.execute("SELECT payload FROM dead_letters ORDER BY received_at").fetchall()
    assert [bytes(r[0]) for r in rows] == [
        b"\xff first",
        b"\xff first",
        b"\xff other",
        b"\xff first",
    ]
