"""A small fleet of known numbers for the dashboard's pages, in PostgreSQL and InfluxDB.

Three active devices: ESG_ALARM_0001 (zone 3, ES, online), ESG_ALARM_0002 (zone 3, ES, online,
not synced) and ESG_ALARM_0003 (zone 5, PT, offline, silent for 5 hours). In the last 24
hours: two input alarms (a resolved PANIC1, an active TAMPER) and a siren run, three commands
(completed, failed, pending), 720 heartbeats received and 50 points written. An older PANIC2
is still active. InfluxDB holds two hours of heartbeats of devices 1 and 2, at a steady 20.0
and 24.0 °C.

Two telemetry devices of the type ``vibration_sensor``, VIB-T001 and VIB-T002, both online,
with two hours of readings at a steady 2.0 and 4.0 mm/s. Two robots, both online: tonypi_01
(battery 85 %, servos at most 45 °C, a job 40 % done) and tonypi_02 (battery 15 %: low; a servo
at 72 °C: warning), which completed one job and failed another.

The panels are placed (Madrid, Barcelona, Lisbon); the telemetry devices and robots have no
position. The connection log has ESG_ALARM_0002 dropping and reconnecting 90 minutes ago and
ESG_ALARM_0003 timing out 5 hours ago. Two dead letters: an undecodable heartbeat of
ESG_ALARM_0002 and a status of an unregistered UNKNOWN_0099.

Alerting (``fill_alerting``): the built-in rules, two open events and a resolved one, three
deliveries of which one failed; yesterday's daily report, emailed.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
from influxdb_client.client.influxdb_client import InfluxDBClient
from sqlalchemy import Connection, Engine, Table, insert

from alerting import builtin
from ingest.kinds.telemetry import KIND, to_row
from reports import schedule
from stores.influx.points import TELEMETRY, MetricPoint, metric_line
from stores.postgres import device_types, reports_store
from stores.postgres.schema import (
    alarm_events,
    command_log,
    dead_letters,
    device_cdc_state,
    device_connection_log,
    device_status,
    devices,
    heartbeat_counts,
    jobs,
    robots,
)
from tests.support.history import heartbeat, tags, write
from tests.support.telemetry import VIBRATION

S = timedelta(seconds=1)
TEMPERATURES = {1: 20.0, 2: 24.0}
VIBRATIONS = {"VIB-T001": 2.0, "VIB-T002": 4.0}
# The telemetry devices' ids in the test's fresh database (after the three panels): their
# readings are tagged with them, as ingest tags them.
TELEMETRY_IDS = {"VIB-T001": 4, "VIB-T002": 5}
PLACES = {1: (40.4168, -3.7038), 2: (41.3874, 2.1686), 3: (38.7223, -9.1393)}
"""Latitude and longitude of each panel."""


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        conn.execute(insert(table).values(**row))


def fill_postgres(engine: Engine, now: datetime) -> None:
    """The three devices, their status, alarms, commands and heartbeat counts."""
    places = {1: (3, "ES"), 2: (3, "ES"), 3: (5, "PT")}
    with engine.begin() as conn:
        ids = {
            n: conn.execute(
                insert(devices)
                .values(
                    mac_address=f"aa:bb:cc:00:00:{n:02x}",
                    hostname=f"ESG_ALARM_{n:04d}",
                    zone=zone,
                    country=country,
                    latitude=PLACES[n][0],
                    longitude=PLACES[n][1],
                )
                .returning(devices.c.id)
            ).scalar_one()
            for n, (zone, country) in places.items()
        }
        a, b, c = ids[1], ids[2], ids[3]
        online = {"is_online": True, "last_seen": now, "device_state": "NORMAL", "rssi": -60}
        _insert(
            conn,
            device_status,
            [
                {"device_id": a, **online, "device_synced": True, "min_heap": 90_000},
                {"device_id": b, **online, "device_synced": False, "min_heap": 50_000},
                {
                    "device_id": c,
                    "is_online": False,
                    "last_seen": now - timedelta(hours=5),
                    "device_synced": True,
                    "device_state": "OFFLINE",
                },
            ],
        )
        raised = now - timedelta(hours=2)
        _insert(
            conn,
            alarm_events,
            [
                {
                    "device_id": a,
                    "alarm_type": "PANIC1",
                    "event_state": "INACTIVE",
                    "priority": "CRITICAL",
                    "timestamp": raised,
                    "resolved_at": raised + 20 * S,
                    "acknowledged_at": raised + 5 * S,
                },
                {
                    "device_id": b,
                    "alarm_type": "TAMPER",
                    "event_state": "ACTIVE",
                    "priority": "HIGH",
                    "timestamp": now - timedelta(hours=1),
                },
                {
                    "device_id": a,
                    "alarm_type": "OUTPUT_EVENT",
                    "event_state": "INACTIVE",
                    "priority": "LOW",
                    "output_type": 1,
                    "elapsed_seconds": 30,
                    "timestamp": raised,
                    "resolved_at": raised + 30 * S,
                },
                {
                    "device_id": c,
                    "alarm_type": "PANIC2",
                    "event_state": "ACTIVE",
                    "priority": "CRITICAL",
                    "timestamp": now - timedelta(days=3),
                },
            ],
        )
        sent = now - timedelta(hours=3)
        command = {"command_type": "SYSTEM", "timestamp": sent}
        _insert(
            conn,
            command_log,
            [
                {
                    **command,
                    "device_id": a,
                    "request_id": uuid.uuid4(),
                    "status": "COMPLETED",
                    "sent_at": sent,
                    "acknowledged_at": sent + 1 * S,
                    "completed_at": sent + 3 * S,
                },
                {
                    **command,
                    "device_id": b,
                    "request_id": uuid.uuid4(),
                    "status": "FAILED",
                    "sent_at": sent,
                    "failed_at": sent + 60 * S,
                    "retry_count": 2,
                },
                {**command, "device_id": c, "request_id": uuid.uuid4(), "status": "PENDING"},
            ],
        )
        dropped = now - timedelta(minutes=90)
        _insert(
            conn,
            device_connection_log,
            [
                {"device_id": b, "event": "disconnected", "timestamp": dropped},
                {"device_id": b, "event": "connected", "timestamp": dropped + 30 * S},
                {"device_id": c, "event": "timeout", "timestamp": now - timedelta(hours=5)},
            ],
        )
        _insert(
            conn,
            dead_letters,
            [
                {
                    "topic": "fleet/ESG_ALARM_0002/heartbeat",
                    "payload": b"\x08\x96\x01\xff",
                    "reason": "undecodable",
                    "detail": "protobuf: truncated message",
                    "received_at": now - timedelta(minutes=30),
                },
                {
                    "topic": "fleet/UNKNOWN_0099/status",
                    "payload": b"{}",
                    "reason": "unregistered",
                    "detail": "no device UNKNOWN_0099",
                    "received_at": now - timedelta(minutes=20),
                },
            ],
        )
        hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        _insert(
            conn,
            heartbeat_counts,
            [
                {"device_id": a, "hour": hour, "received": 360, "written": 14},
                {"device_id": b, "hour": hour, "received": 360, "written": 36},
            ],
        )
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        driver.autocommit = True
        type_id = device_types.create(driver, to_row(VIBRATION))
        for serial in VIBRATIONS:
            device_id = device_types.add_device(driver, KIND, serial, type_id)
            assert device_id == TELEMETRY_IDS[serial], "the readings' device_id tags are wrong"
            driver.execute(
                "UPDATE device_status SET (is_online, last_seen) = (true, %s) WHERE device_id = %s",
                [now, device_id],
            )
    finally:
        raw.close()
    fill_robots(engine, now)


def fill_robots(engine: Engine, now: datetime) -> None:
    """The two robots, their stored battery and servo states, and three jobs."""
    condition = {"tonypi_01": (85.0, (45.0, 40.0)), "tonypi_02": (15.0, (72.0, 50.0))}
    with engine.begin() as conn:
        for name, (battery, servos) in condition.items():
            device_id = conn.execute(
                insert(devices)
                .values(kind="robot", hostname=name, name=name)
                .returning(devices.c.id)
            ).scalar_one()
            conn.execute(
                insert(device_status).values(device_id=device_id, is_online=True, last_seen=now)
            )
            conn.execute(
                insert(robots).values(
                    device_id=device_id, robot_id=name, name=name, status="online", last_seen=now
                )
            )
            states = [("battery", {"percentage": battery, "voltage": 12.0, "charging": False})]
            states += [(f"servos/servo_{n}", {"temperature": t}) for n, t in enumerate(servos, 1)]
            for stream, values in states:
                conn.execute(
                    insert(device_cdc_state).values(
                        device_id=device_id,
                        stream=stream,
                        written_at=now,
                        values=values,
                        is_online=True,
                    )
                )
            ids = {name: device_id}
            hour = timedelta(hours=1)
            rows = {
                "tonypi_01": [("J-1", "active", 4, None, None)],
                "tonypi_02": [
                    ("J-2", "completed", 10, now - 2 * hour, now - hour),
                    ("J-3", "failed", 3, now - hour, now - hour / 2),
                ],
            }[name]
            for key, status, done, start, end in rows:
                conn.execute(
                    insert(jobs).values(
                        device_id=ids[name],
                        robot_id=name,
                        job_key=key,
                        start_time=start or now - hour,
                        end_time=end,
                        items_total=10,
                        items_done=done,
                        percent_complete=done * 10.0,
                        status=status,
                        last_report_at=end or now,
                    )
                )


def fill_influx(client: InfluxDBClient, bucket: str, now: datetime) -> None:
    """Two hours of heartbeats of devices 1 and 2, one every five minutes, the last two
    minutes ago (the dashboard's periods end at the start of the current minute)."""
    start = now - timedelta(hours=2, minutes=2)  # all before the dashboard's minute
    write(
        client,
        bucket,
        (
            heartbeat(tags(n), start + k * timedelta(minutes=5), temperature=temperature)
            for n, temperature in TEMPERATURES.items()
            for k in range(25)
        ),
    )
    write(
        client,
        bucket,
        (
            metric_line(
                MetricPoint(
                    measurement=TELEMETRY,
                    tags={
                        "device_id": str(TELEMETRY_IDS[serial]),
                        "hostname": serial,
                        "device_type": VIBRATION.name,
                    },
                    time=start + k * timedelta(minutes=5),
                    values={"vibration": value, "temperature": 40.0, "running": True},
                    is_online=True,
                    change_type="PERIODIC",
                    changes={"periodic": True},
                    device_time=None,
                )
            )
            for serial, value in VIBRATIONS.items()
            for k in range(25)
        ),
    )


def fill_alerting(database_url: str, now: datetime) -> None:
    """The built-in rules and template; open: ESG_ALARM_0003 offline for 4 hours (warning,
    new) and the TAMPER of ESG_ALARM_0002 (critical, acknowledged by ana); resolved: a sync
    failure of ESG_ALARM_0001. Deliveries: two sent (webhook, SMS), one email failed."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        builtin.install(conn)
        rule = dict(conn.execute("SELECT name, id FROM rules").fetchall())
        host = dict(conn.execute("SELECT hostname, id FROM devices").fetchall())
        (template,) = conn.execute(
            "SELECT id FROM notification_templates WHERE name = 'operators'"
        ).fetchone() or (0,)

        def event(name: str, hostname: str, severity: str, status: str, age: timedelta,
                  **extra: object) -> int:  # fmt: skip
            device_id = host[hostname]
            row = conn.execute(
                "INSERT INTO events (rule_id, device_id, subject, timestamp, severity, message, "
                "status, acknowledged_by, resolved_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                "%s) RETURNING id",
                [rule[name], device_id, str(device_id), now - age, severity,
                 f"{name} on {hostname}", status, extra.get("by"), extra.get("resolved")],
            ).fetchone()  # fmt: skip
            assert row is not None
            return int(row[0])

        offline = event("Device offline", "ESG_ALARM_0003", "warning", "new", timedelta(hours=4))
        tamper = event("Panel alarm TAMPER", "ESG_ALARM_0002", "critical", "acknowledged",
                       timedelta(hours=1), by="ana")  # fmt: skip
        event("Device id sync failed", "ESG_ALARM_0001", "warning", "resolved",
              timedelta(hours=6), resolved=now - timedelta(hours=5))  # fmt: skip
        for event_id, kind, address, status, attempts, error in (
            (offline, "webhook", "https://hooks.example.com/ops", "sent", 1, None),
            (offline, "email", "ops@example.com", "failed", 4, "SMTP 127.0.0.1:25: refused"),
            (tamper, "sms", "+34600000001", "sent", 1, None),
        ):
            conn.execute(
                "INSERT INTO notification_deliveries (event_id, template_id, trigger, "
                "recipient_type, recipient_address, rendered_message, status, attempt_count, "
                "error_message, sent_at) VALUES (%s, %s, 'opened', %s, %s, 'm', %s, %s, %s, %s)",
                [event_id, template, kind, address, status, attempts, error,
                 now if status == "sent" else None],
            )  # fmt: skip
        start, end = schedule.last_period("daily", now)
        report_id, _, _ = schedule.make(conn, "daily", start, end, by="schedule", scheduled=True)
        assert report_id is not None
        reports_store.mark_sent(conn, report_id, ["ops@example.com"], None)
