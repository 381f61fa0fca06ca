"""Telemetry devices of declared types through the real broker into the real stores."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.service import IngestService
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.devices import Publisher, now_ms
from tests.support.outbox import outbox_drained
from tests.support.telemetry import VIBRATION, add_device, declare, reading, telemetry_points

SERIAL = "VIB-SN-001"


def topic(service: IngestService, serial: str = SERIAL, kind: str = "telemetry") -> str:
    return f"{service.topic_prefix}/{serial}/{kind}"


def counts(db: psycopg.Connection[Any], serial: str = SERIAL) -> tuple[int, int]:
    row = db.execute(
        "SELECT coalesce(sum(received), 0), coalesce(sum(written), 0) FROM heartbeat_counts c "
        "JOIN devices d ON d.id = c.device_id WHERE d.serial_number = %s",
        [serial],
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def publish(device: Publisher, service: IngestService, *payloads: bytes) -> None:
    for payload in payloads:
        await device.raw(topic(service), payload)


async def test_readings_are_thinned_by_each_metrics_dead_band(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
    influx_settings: InfluxSettings,
) -> None:
    """A device of a declared type: its first reading, a move past one metric's dead band and
    a flag's change are stored; moves within every dead band are not; the device is online."""
    add_device(db, SERIAL, declare(db))
    await publish(
        device,
        ingest,
        reading(SERIAL, vibration=5.2, temperature=45.3, running=True),  # first: stored
        reading(SERIAL, vibration=5.5, temperature=45.6),  # within both bands
        reading(SERIAL, vibration=5.8, temperature=45.6),  # vibration 0.6 from 5.2: stored
        reading(SERIAL, vibration=5.9, temperature=45.7),  # within both bands again
        reading(SERIAL, running=False),  # a flag: stored, the others carried as stored
    )
    await ingest.wait_processed(5)
    await outbox_drained(db)
    assert counts(db) == (5, 3)
    points = telemetry_points(influx_settings, SERIAL)
    assert [(p["vibration"], p["temperature"], p["running"]) for p in points] == [
        (5.2, 45.3, True),
        (5.8, 45.6, True),
        (5.8, 45.6, False),
    ]
    assert [p["change_type"] for p in points] == ["PERIODIC", "SENSOR_DATA", "STATE_CHANGE"]
    assert {p["device_type"] for p in points} == {"vibration_sensor"}
    online, last_seen = db.execute(
        "SELECT s.is_online, s.last_seen FROM device_status s JOIN devices d ON d.id = s.device_id "
        "WHERE d.serial_number = %s",
        [SERIAL],
    ).fetchone() or (None, None)
    assert online is True
    assert last_seen is not None


async def test_bad_readings_are_dead_lettered_with_their_reason(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """Unknown serial, unknown metric, wrong type, out of range, malformed JSON, oversize:
    each kept with its own reason, and the good reading among them is stored."""
    add_device(db, SERIAL, declare(db))
    await publish(
        device,
        ingest,
        reading(SERIAL, vibration=5.0),
        reading(SERIAL, acceleration=1.0),
        reading(SERIAL, running=3),
        reading(SERIAL, vibration=101.0),
        b'{"version": "0.0.1", "serial_number": "VIB-SN-001", "metrics":',
        reading(SERIAL, **{f"m{i}": float(i) for i in range(400)}),
    )
    await device.raw(topic(ingest, "VIB-SN-404"), reading("VIB-SN-404", vibration=1.0))
    await ingest.wait_processed(7)
    reasons = sorted(r for (r,) in db.execute("SELECT reason FROM dead_letters").fetchall())
    assert reasons == [
        "malformed_json",
        "out_of_range",
        "too_large",
        "unknown_metric",
        "unknown_serial",
        "wrong_type",
    ]
    assert counts(db) == (1, 1)


async def test_unknown_serial_registers_itself_only_where_its_type_allows(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A serial announcing a type with auto_register becomes a device of it; one announcing
    a type without it is a dead letter."""
    from dataclasses import replace

    declare(db, replace(VIBRATION, auto_register=True))
    declare(db, replace(VIBRATION, name="closed_type"))
    body = reading("VIB-SN-NEW", vibration=2.0)
    announced = body.replace(b'"metrics"', b'"device_type": "vibration_sensor", "metrics"')
    refused = body.replace(b'"metrics"', b'"device_type": "closed_type", "metrics"')
    await device.raw(topic(ingest, "VIB-SN-NEW"), announced)
    await device.raw(topic(ingest, "VIB-SN-SHUT"), refused.replace(b"VIB-SN-NEW", b"VIB-SN-SHUT"))
    await ingest.wait_processed(2)
    rows = db.execute(
        "SELECT d.serial_number, d.kind, d.hostname, t.name FROM devices d "
        "JOIN device_types t ON t.id = d.device_type_id"
    ).fetchall()
    assert rows == [("VIB-SN-NEW", "telemetry", "VIB-SN-NEW", "vibration_sensor")]
    assert db.execute("SELECT reason FROM dead_letters").fetchall() == [("unknown_serial",)]
    assert counts(db, "VIB-SN-NEW") == (1, 1)


async def test_redelivered_readings_are_duplicates(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A reading stamped no later than one already processed changes nothing."""
    add_device(db, SERIAL, declare(db))
    stamp = now_ms()
    first = reading(SERIAL, timestamp=stamp, vibration=1.0)
    await publish(device, ingest, first, reading(SERIAL, timestamp=stamp + 1000, vibration=9.0))
    await publish(device, ingest, first)
    await ingest.wait_processed(3)
    assert ingest.pipeline.totals.duplicates == 1
    assert counts(db) == (2, 2)


async def test_restart_continues_from_the_stored_reference(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """After a restart a reading within the dead band is not a new first point: the CDC
    reference of a telemetry device survives in PostgreSQL."""
    add_device(db, SERIAL, declare(db))
    for value in (3.0, 3.2):
        service, stop, task = await start_ingest(
            migrated_pg, mqtt_settings, influx_settings, ingest_client_id
        )
        try:
            await publish(device, service, reading(SERIAL, vibration=value, temperature=20.0))
            await service.wait_processed(1)
        finally:
            stop.set()
            await task
    await forget_session(mqtt_settings, ingest_client_id)
    assert counts(db) == (2, 1)
    (values,) = db.execute("SELECT values FROM device_cdc_state").fetchone() or (None,)
    assert values == {"vibration": 3.0, "temperature": 20.0, "running": None}


async def test_silent_device_goes_offline_with_a_connection_point(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
    influx_settings: InfluxSettings,
) -> None:
    """Liveness works for telemetry devices: silence takes one offline (log row and a
    CONNECTION point carrying its last values); its next reading brings it back."""
    add_device(db, SERIAL, declare(db))
    await publish(device, ingest, reading(SERIAL, vibration=4.0, temperature=30.0))
    await ingest.wait_processed(1)
    await ingest.sweep_now(datetime.now(UTC) + timedelta(minutes=5))
    await publish(device, ingest, reading(SERIAL, vibration=4.1))
    await ingest.wait_processed(2)
    await outbox_drained(db)
    events = [e for (e,) in db.execute("SELECT event::text FROM device_connection_log ORDER BY id")]
    assert events == ["connected", "timeout", "connected"]
    points = telemetry_points(influx_settings, SERIAL)
    assert [(p["change_type"], p["is_online"], p["vibration"]) for p in points] == [
        ("PERIODIC", True, 4.0),
        ("CONNECTION", False, 4.0),
        ("CONNECTION", True, 4.1),
    ]


async def test_last_will_of_a_telemetry_device(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """The broker's last will on {prefix}/{serial}/lwt takes the device offline at once."""
    add_device(db, SERIAL, declare(db))
    await publish(device, ingest, reading(SERIAL, vibration=4.0))
    await ingest.wait_processed(1)
    await device.raw(topic(ingest, kind="lwt"), b"")
    await ingest.wait_processed(2)
    row = db.execute(
        "SELECT s.is_online FROM device_status s JOIN devices d ON d.id = s.device_id "
        "WHERE d.serial_number = %s",
        [SERIAL],
    ).fetchone()
    assert row == (False,)


@pytest.mark.parametrize("devices", [25])
async def test_many_devices_of_several_types_in_one_stream(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any], devices: int
) -> None:
    """Two types, many devices, readings interleaved: every reading counted once, each device
    judged by its own type's metrics."""
    from dataclasses import replace

    from ingest.kinds.telemetry import metric

    vibration = declare(db)
    pressure = declare(
        db,
        replace(
            VIBRATION,
            name="pressure_sensor",
            metrics=(metric("pressure", unit="bar", minimum=0, maximum=400, dead_band=0.1),),
        ),
    )
    for n in range(devices):
        add_device(db, f"VIB-{n:03d}", vibration)
        add_device(db, f"PRS-{n:03d}", pressure)
    for step in range(4):
        for n in range(devices):
            await device.raw(
                f"{ingest.topic_prefix}/VIB-{n:03d}/telemetry",
                reading(f"VIB-{n:03d}", vibration=1.0 + step),
            )
            await device.raw(
                f"{ingest.topic_prefix}/PRS-{n:03d}/telemetry",
                reading(f"PRS-{n:03d}", pressure=10.0 + step * 0.01),
            )
    await ingest.wait_processed(8 * devices, timeout_s=30)
    await asyncio.sleep(0)
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
    by_type = dict(
        db.execute(
            "SELECT t.name, sum(c.written) FROM heartbeat_counts c JOIN devices d "
            "ON d.id = c.device_id JOIN device_types t ON t.id = d.device_type_id GROUP BY t.name"
        ).fetchall()
    )
    # Vibration moves 1.0 each step (past 0.5): every reading stored; pressure 0.01 (within
    # 0.1): only the first.
    assert by_type == {"vibration_sensor": 4 * devices, "pressure_sensor": devices}
