"""Reports loaded from a real PostgreSQL filled with rows of known values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Table, create_engine, insert

from analytics.alarms import active_alarms, alarm_counts, response_times
from analytics.commands import command_success
from analytics.fleet import fleet_breakdown, fleet_summary
from analytics.load import (
    load_active_alarms,
    load_alarm_events,
    load_commands,
    load_devices,
    load_heartbeat_counts,
    load_heartbeat_totals,
)
from analytics.selection import Period, ReportFilter
from analytics.storage import cdc_savings
from stores.errors import StoreUnavailableError
from stores.postgres.rollups import roll_up_daily_counts, rolled_up_until
from stores.postgres.schema import (
    alarm_events,
    command_log,
    device_connection_log,
    device_status,
    devices,
    heartbeat_counts,
)

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = Period(NOW - timedelta(days=1), NOW)
S = timedelta(seconds=1)


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows that set different columns (one statement each)."""
    for row in rows:
        conn.execute(insert(table).values(**row))


def _fill(engine: Engine) -> dict[str, int]:
    """Three active devices (zone 3 ES, zone 3 ES, zone 5 PT) and an inactive one."""
    names = ["ESG_ALARM_0001", "ESG_ALARM_0002", "ESG_ALARM_0003", "ESG_ALARM_0004"]
    places = [(3, "ES"), (3, "ES"), (5, "PT"), (3, "ES")]
    with engine.begin() as conn:
        ids = {
            name: conn.execute(
                insert(devices)
                .values(
                    mac_address=f"aa:bb:cc:00:00:{n:02x}",
                    hostname=name,
                    zone=zone,
                    country=country,
                    active=n != 4,
                )
                .returning(devices.c.id)
            ).scalar_one()
            for n, (name, (zone, country)) in enumerate(zip(names, places, strict=True), start=1)
        }
        a, b, c, d = (ids[name] for name in names)
        _insert(
            conn,
            device_status,
            [
                {
                    "device_id": a,
                    "is_online": True,
                    "last_seen": NOW,
                    "device_synced": True,
                    "firmware_version": "2.1.0",
                    "device_state": "NORMAL",
                    "rssi": -60,
                    "min_heap": 90_000,
                    "boot_count": 3,
                },
                {
                    "device_id": b,
                    "is_online": True,
                    "last_seen": NOW,
                    "device_synced": False,
                    "firmware_version": "2.1.0",
                    "device_state": "ALARM",
                    "rssi": -82,
                    "min_heap": 50_000,
                    "boot_count": 4,
                    "error_flags": 6,
                },
                {
                    "device_id": c,
                    "is_online": False,
                    "last_seen": NOW - timedelta(hours=5),
                    "device_synced": True,
                    "firmware_version": "2.0.0",
                    "device_state": "OFFLINE",
                    "boot_count": 1,
                },
                {"device_id": d, "is_online": True, "last_seen": NOW, "device_synced": True},
            ],
        )
        _insert(
            conn,
            device_connection_log,
            [
                {"device_id": c, "event": "timeout", "timestamp": NOW - timedelta(hours=5)},
                {"device_id": c, "event": "connected", "timestamp": NOW - timedelta(hours=6)},
                {"device_id": c, "event": "disconnected", "timestamp": NOW - timedelta(days=3)},
                {"device_id": b, "event": "disconnected", "timestamp": NOW - timedelta(hours=1)},
            ],
        )
        _insert(
            conn,
            alarm_events,
            [
                # in the day: a resolved panic (20 s, acknowledged after 5 s), an open tamper
                {
                    "device_id": a,
                    "alarm_type": "PANIC1",
                    "event_state": "INACTIVE",
                    "priority": "CRITICAL",
                    "timestamp": NOW - timedelta(hours=2),
                    "resolved_at": NOW - timedelta(hours=2) + 20 * S,
                    "acknowledged_at": NOW - timedelta(hours=2) + 5 * S,
                },
                {
                    "device_id": b,
                    "alarm_type": "TAMPER",
                    "event_state": "ACTIVE",
                    "priority": "HIGH",
                    "timestamp": NOW - timedelta(hours=1),
                },
                # days ago: a panic still open (active, outside the period) and a resolved one
                {
                    "device_id": c,
                    "alarm_type": "PANIC2",
                    "event_state": "ACTIVE",
                    "priority": "CRITICAL",
                    "timestamp": NOW - timedelta(days=3),
                },
                {
                    "device_id": a,
                    "alarm_type": "PANIC1",
                    "event_state": "INACTIVE",
                    "priority": "CRITICAL",
                    "timestamp": NOW - timedelta(days=3),
                    "resolved_at": NOW - timedelta(days=3) + 5 * S,
                },
            ],
        )
        sent = NOW - timedelta(hours=3)
        _insert(
            conn,
            command_log,
            [
                {
                    "device_id": a,
                    "request_id": uuid.uuid4(),
                    "command_type": "SYSTEM",
                    "status": "COMPLETED",
                    "timestamp": sent,
                    "sent_at": sent,
                    "acknowledged_at": sent + 1 * S,
                    "completed_at": sent + 3 * S,
                },
                {
                    "device_id": b,
                    "request_id": uuid.uuid4(),
                    "command_type": "OUTPUT",
                    "status": "FAILED",
                    "timestamp": sent,
                    "sent_at": sent,
                    "retry_count": 2,
                    "failed_at": sent + 60 * S,
                },
                {
                    "device_id": c,
                    "request_id": uuid.uuid4(),
                    "command_type": "SYSTEM",
                    "status": "PENDING",
                    "timestamp": sent,
                },
                {
                    "device_id": a,
                    "request_id": uuid.uuid4(),
                    "command_type": "SYSTEM",
                    "status": "COMPLETED",
                    "timestamp": NOW - timedelta(days=2),
                },
            ],
        )
        hour = NOW.replace(minute=0, second=0) - timedelta(hours=2)
        _insert(
            conn,
            heartbeat_counts,
            [
                {"device_id": a, "hour": hour, "received": 360, "written": 14},
                {"device_id": b, "hour": hour, "received": 360, "written": 36},
                {"device_id": a, "hour": hour - timedelta(days=2), "received": 99, "written": 9},
            ],
        )
    return ids


def test_fleet_from_the_database(engine: Engine) -> None:
    """Active devices with status and the period's disconnections; filters narrow them."""
    _fill(engine)
    frame = load_devices(engine, DAY)
    assert frame["hostname"].to_list() == ["ESG_ALARM_0001", "ESG_ALARM_0002", "ESG_ALARM_0003"]
    assert frame["disconnects"].to_list() == [0, 1, 1]  # the 3-day-old one is outside
    summary = fleet_summary(frame, now=NOW).row(0, named=True)
    assert (summary["devices"], summary["online"], summary["not_synced"]) == (3, 2, 1)
    assert (summary["weak_rssi"], summary["with_errors"], summary["min_free_heap"]) == (
        1,
        1,
        50_000,
    )
    assert (summary["stale"], summary["reboots"], summary["disconnects"]) == (1, 8, 2)
    zones = fleet_breakdown(frame, "zone").select("zone", "devices").rows()
    assert zones == [(3, 2), (5, 1)]
    pt = load_devices(engine, DAY, ReportFilter(country="PT"))
    assert pt["hostname"].to_list() == ["ESG_ALARM_0003"]
    named = load_devices(engine, DAY, ReportFilter(zone=3, hostnames=("ESG_ALARM_0002",)))
    assert named["hostname"].to_list() == ["ESG_ALARM_0002"]


def test_alarms_from_the_database(engine: Engine) -> None:
    """The period's events, the open ones however old, and their response times."""
    _fill(engine)
    events = load_alarm_events(engine, DAY)
    assert events.select("alarm_type", "priority").rows() == [
        ("PANIC1", "CRITICAL"),
        ("TAMPER", "HIGH"),
    ]
    times = response_times(events).row(0, named=True)
    assert (times["resolve_p50_s"], times["ack_p50_s"]) == (20.0, 5.0)
    assert alarm_counts(events, "zone").select("zone", "events").rows() == [(3, 2)]
    active = active_alarms(load_active_alarms(engine), now=NOW)
    assert active.select("alarm_type", "hostname").rows() == [
        ("PANIC2", "ESG_ALARM_0003"),  # CRITICAL first
        ("TAMPER", "ESG_ALARM_0002"),
    ]
    assert active["age_seconds"].to_list() == [3 * 86_400.0, 3_600.0]
    assert load_active_alarms(engine, ReportFilter(country="ES")).height == 1
    week = load_alarm_events(engine, Period(NOW - timedelta(days=7), NOW))
    assert week.height == 4


def test_commands_from_the_database(engine: Engine) -> None:
    """The period's commands with their outcomes and latencies."""
    _fill(engine)
    commands = load_commands(engine, DAY)
    row = command_success(commands).row(0, named=True)
    assert (row["total"], row["completed"], row["failed"], row["in_flight"]) == (3, 1, 1, 1)
    assert (row["success_rate"], row["ack_p50_s"], row["complete_p50_s"]) == (0.5, 1.0, 3.0)
    assert row["retries_per_command"] == pytest.approx(2 / 3)
    by_type = command_success(commands, "command_type").select("command_type", "total").rows()
    assert by_type == [("OUTPUT", 1), ("SYSTEM", 2)]
    assert len(commands["request_id"][0]) == 36


def test_heartbeat_counts_from_the_database(engine: Engine) -> None:
    """Hours in the period, received against written."""
    _fill(engine)
    counts = load_heartbeat_counts(engine, DAY)
    row = cdc_savings(counts, bytes_per_point=300).row(0, named=True)
    assert (row["received"], row["written"], row["reduction"]) == (
        720,
        50,
        pytest.approx(670 / 720),
    )
    assert row["saved_bytes"] == 670 * 300
    only_b = load_heartbeat_counts(engine, DAY, ReportFilter(hostnames=("ESG_ALARM_0002",)))
    assert only_b["written"].to_list() == [36]


def test_empty_database_gives_empty_typed_frames(engine: Engine) -> None:
    """No rows: frames with the report schema, and reports of zeros."""
    frame = load_devices(engine, DAY)
    assert frame.is_empty()
    assert fleet_summary(frame, now=NOW).row(0, named=True)["devices"] == 0
    assert load_alarm_events(engine, DAY).is_empty()
    assert command_success(load_commands(engine, DAY))["total"].item() == 0


def test_unreachable_database_is_a_store_error() -> None:
    """A database that does not answer raises StoreUnavailableError."""
    engine = create_engine(
        "postgresql+psycopg://nobody:nothing@127.0.0.1:9/none", connect_args={"connect_timeout": 2}
    )
    try:
        with pytest.raises(StoreUnavailableError, match="PostgreSQL failed loading commands"):
            load_commands(engine, DAY)
    finally:
        engine.dispose()


def test_heartbeat_totals_match_the_hourly_counts_with_days_rolled_up(engine: Engine) -> None:
    """Per day and per device, the database's sums (rolled-up days, remaining hours binned)
    give the same CDC savings as the hourly rows, before and after a roll-up, for a period
    that starts and ends mid-day."""
    ids = _fill(engine)
    start = datetime(2026, 5, 28, 6, 30, tzinfo=UTC)
    hours = [start - timedelta(minutes=30) + timedelta(hours=n) for n in range(0, 60, 3)]
    with engine.begin() as conn:
        _insert(
            conn,
            heartbeat_counts,
            [
                {"device_id": ids[name], "hour": hour, "received": 100 + k, "written": 1 + k % 7}
                for k, hour in enumerate(hours)
                for name in ("ESG_ALARM_0001", "ESG_ALARM_0002")
            ],
        )
    period = Period(start, start + timedelta(hours=50))

    def totals() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        days = load_heartbeat_totals(engine, period, by="day")
        devices = load_heartbeat_totals(engine, period, by="device")
        assert devices["hour"].to_list() == [period.start] * devices.height
        return (
            cdc_savings(days, "day").rows(),
            cdc_savings(devices, "device").rows(),
        )

    hourly = load_heartbeat_counts(engine, period)
    expected = (cdc_savings(hourly, "day").rows(), cdc_savings(hourly, "device").rows())
    assert len(expected[0]) == 3  # a part day, a whole day, a part day
    assert totals() == expected
    roll_up_daily_counts(engine, period.end + timedelta(days=1))
    assert rolled_up_until(engine) is not None
    assert totals() == expected
    only_b = load_heartbeat_totals(
        engine, period, ReportFilter(hostnames=("ESG_ALARM_0002",)), by="device"
    )
    assert only_b["hostname"].to_list() == ["ESG_ALARM_0002"]


def test_fleet_of_several_kinds_filters_by_kind_and_type(engine: Engine) -> None:
    """Telemetry devices join the fleet with their kind and type; the filters pick a kind or
    a type, and only panels count as not synced (the others take no id from fleetwatch)."""
    from ingest.kinds.telemetry import KIND
    from stores.postgres import device_types as type_store
    from tests.support.telemetry import VIBRATION, declare

    _fill(engine)
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        conn.autocommit = True
        type_id = declare(conn, VIBRATION)
        type_store.add_device(conn, KIND, "VIB-SN-001", type_id)
        type_store.add_device(conn, KIND, "VIB-SN-002", type_id)
    finally:
        raw.close()
    frame = load_devices(engine, DAY)
    kinds = fleet_breakdown(frame, "kind").select("kind", "devices").rows()
    assert kinds == [("panel", 3), ("telemetry", 2)]  # most devices first
    by_type = dict(fleet_breakdown(frame, "device_type").select("device_type", "devices").rows())
    assert by_type == {None: 3, "vibration_sensor": 2}
    assert fleet_summary(frame, now=NOW)["not_synced"].item() == 1  # the one panel
    telemetry = load_devices(engine, DAY, ReportFilter(kind="telemetry"))
    assert telemetry["hostname"].to_list() == ["VIB-SN-001", "VIB-SN-002"]
    typed = load_devices(engine, DAY, ReportFilter(device_type="vibration_sensor"))
    assert typed["device_type"].to_list() == ["vibration_sensor", "vibration_sensor"]
    assert load_devices(engine, DAY, ReportFilter(device_type="nothing")).height == 0
