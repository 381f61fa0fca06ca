"""Status, heartbeat, alarm and bad messages through the real broker into the real stores."""

from __future__ import annotations

from typing import Any

import psycopg

from fleetwatch.settings import InfluxSettings
from ingest.contract import TopicKind, pb
from ingest.service import IngestService
from tests.support.devices import FakePanel, Publisher
from tests.support.stored import stored_points

PANEL = FakePanel(1)


def one(db: psycopg.Connection[Any], query: str, *params: object) -> tuple[Any, ...]:
    row = db.execute(query, params).fetchone()
    assert row is not None, query
    return tuple(row)


def heartbeat_points(influx: InfluxSettings) -> list[dict[str, Any]]:
    return stored_points(influx, "heartbeat")


async def test_status_registers_a_device(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A first StatusMessage creates devices + device_status with the topic's hostname."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await ingest.wait_processed(1)
    device_id, hostname, country, zone = one(
        db, "SELECT id, hostname, country, zone FROM devices WHERE mac_address = %s", PANEL.mac
    )
    assert (hostname, country, zone) == (PANEL.hostname, "ES", 3)
    state, online, fw, synced = one(
        db,
        "SELECT device_state, is_online, firmware_version, device_synced FROM device_status "
        "WHERE device_id = %s",
        device_id,
    )
    assert (state, online, fw, synced) == ("NORMAL", True, "2.1.0", False)


async def test_unknown_heartbeat_is_dead_lettered(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A heartbeat from an unregistered MAC is kept as a dead letter and nothing else."""
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat())
    await ingest.wait_processed(1)
    assert one(db, "SELECT reason FROM dead_letters") == ("unregistered",)
    assert one(db, "SELECT count(*) FROM devices") == (0,)


async def test_heartbeats_update_status_and_cdc_history(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
    influx_settings: InfluxSettings,
) -> None:
    """Heartbeats update device_status; only the first and a change past a threshold are stored."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await ingest.wait_processed(1)
    temperatures = [21.0, 21.2, 21.4, 21.6]  # the last is 0.6 from the first written value
    for temperature in temperatures:
        await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(temperature=temperature))
    await ingest.wait_processed(1 + len(temperatures))
    temp, fan, network = one(
        db, "SELECT temperature, fan_pwm_duty, network_type FROM device_status"
    )
    assert (round(temp, 1), fan, network) == (21.6, 30, "wifi")
    points = heartbeat_points(influx_settings)
    assert [round(p["temperature"], 1) for p in points] == [21.0, 21.6]
    assert [p["change_type"] for p in points] == ["PERIODIC", "SENSOR_DATA"]
    assert points[0]["hostname"] == PANEL.hostname
    assert one(db, "SELECT sum(received), sum(written) FROM heartbeat_counts") == (4, 2)
    assert one(db, "SELECT count(*) FROM influx_outbox") == (0,)


async def test_alarm_opens_and_resolves(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """PANIC1 ACTIVE opens an event and sets the I/O; INACTIVE resolves it."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await device.send(PANEL, TopicKind.ALARM, PANEL.alarm(1))
    await ingest.wait_processed(2)
    assert one(db, "SELECT panic1, alarm_active, panic1_count FROM device_status") == (
        True,
        True,
        1,
    )
    await device.send(PANEL, TopicKind.ALARM, PANEL.alarm(2, state=pb.AlarmEvent.INACTIVE))
    await ingest.wait_processed(3)
    rows = db.execute(
        "SELECT alarm_type::text, event_state::text, priority::text, resolved_at IS NOT NULL "
        "FROM alarm_events"
    ).fetchall()
    assert rows == [("PANIC1", "INACTIVE", "CRITICAL", True)]
    assert one(db, "SELECT panic1, alarm_active FROM device_status") == (False, False)


async def test_replay_is_dead_lettered_but_redelivery_is_idempotent(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A reused sequence with other content is a replay; the same bytes again change nothing."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    first = PANEL.alarm(5).SerializeToString()
    await device.send(PANEL, TopicKind.ALARM, first)
    await device.send(PANEL, TopicKind.ALARM, first)
    await device.send(PANEL, TopicKind.ALARM, PANEL.alarm(5, type=pb.AlarmEvent.PANIC2))
    await ingest.wait_processed(4)
    assert one(db, "SELECT count(*) FROM alarm_events") == (1,)
    assert db.execute("SELECT reason FROM dead_letters").fetchall() == [("replay",)]


async def test_same_batch_double_activation_keeps_one_open_alarm(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """Two ACTIVE messages of one type in one batch leave exactly one open event."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await device.send(PANEL, TopicKind.ALARM, PANEL.alarm(1))
    await device.send(PANEL, TopicKind.ALARM, PANEL.alarm(2))
    await ingest.wait_processed(3)
    assert one(db, "SELECT count(*) FROM alarm_events WHERE resolved_at IS NULL") == (1,)


async def test_output_pattern_lifecycle(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A siren pattern STARTING→ACTIVE→STOPPING→INACTIVE is one event, ending resolved."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    states = [
        pb.AlarmEvent.STARTING,
        pb.AlarmEvent.ACTIVE,
        pb.AlarmEvent.STOPPING,
    ]
    for seq, state in enumerate(states, start=1):
        await device.send(
            PANEL,
            TopicKind.ALARM,
            PANEL.alarm(
                seq,
                type=pb.AlarmEvent.OUTPUT_EVENT,
                state=state,
                output_type=1,
                pattern_type=2,
                duration_seconds=30,
            ),
        )
    await ingest.wait_processed(4)
    assert one(
        db, "SELECT siren, siren_active, siren_pattern, alarm_active FROM device_status"
    ) == (
        True,
        True,
        "2",
        False,
    )
    await device.send(
        PANEL,
        TopicKind.ALARM,
        PANEL.alarm(
            4,
            type=pb.AlarmEvent.OUTPUT_EVENT,
            state=pb.AlarmEvent.INACTIVE,
            output_type=1,
            elapsed_seconds=30,
        ),
    )
    await ingest.wait_processed(5)
    rows = db.execute(
        "SELECT event_state::text, output_type, elapsed_seconds, resolved_at IS NOT NULL "
        "FROM alarm_events"
    ).fetchall()
    assert rows == [("INACTIVE", 1, 30, True)]
    assert one(db, "SELECT siren, siren_active, siren_pattern FROM device_status") == (
        False,
        False,
        None,
    )


async def test_last_will_and_return(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A last will marks the device offline; its next heartbeat brings it back, both logged."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat())
    await device.send(PANEL, TopicKind.LWT, b"")
    await ingest.wait_processed(3)
    assert one(db, "SELECT is_online, device_state FROM device_status") == (False, "OFFLINE")
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat())
    await ingest.wait_processed(4)
    assert one(db, "SELECT is_online FROM device_status") == (True,)
    events = db.execute("SELECT event::text FROM device_connection_log ORDER BY id").fetchall()
    assert events == [("connected",), ("disconnected",), ("connected",)]


async def test_bad_input_is_kept_and_the_stream_goes_on(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """Every kind of bad input becomes a dead letter with its reason; valid messages still land."""
    prefix = ingest.topic_prefix
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await device.raw(f"{prefix}/{PANEL.hostname}/heartbeat", b"\xff\x00garbage")
    await device.raw(f"{prefix}/{PANEL.hostname}/heartbeat", b"\x00" * 10_000)
    await device.raw(f"{prefix}/{PANEL.hostname}/firmware", b"{}")
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(humidity=140.0))
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(fan_pwm_duty=250))
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(mac_address="zz:zz"))
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(temperature=23.0))
    await ingest.wait_processed(8)
    reasons = sorted(r for (r,) in db.execute("SELECT reason FROM dead_letters").fetchall())
    assert reasons == [
        "bad_mac",
        "bad_topic",
        "out_of_range",
        "out_of_range",
        "too_large",
        "undecodable",
    ]
    payload = one(db, "SELECT payload FROM dead_letters WHERE reason = 'undecodable'")[0]
    assert bytes(payload) == b"\xff\x00garbage"
    assert one(db, "SELECT round(temperature::numeric, 1) FROM device_status") == (23.0,)


async def test_remaining_dead_letter_reasons(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """hostname_mismatch, unknown_request and unregistered last wills are dead-lettered."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status(hostname="ESG_ALARM_9999"))
    reply = pb.CommandResponse(
        request_id="6f1c8f5e-3d6a-4c1e-9a53-0a8f3c2b1d11", stage=pb.CommandResponse.COMPLETED
    )
    await device.send(PANEL, TopicKind.RESPONSE, reply)
    await device.send(FakePanel(99), TopicKind.LWT, b"")
    await ingest.wait_processed(3)
    reasons = sorted(r for (r,) in db.execute("SELECT reason FROM dead_letters").fetchall())
    assert reasons == ["hostname_mismatch", "unknown_request", "unregistered"]


async def test_a_value_the_database_refuses_is_isolated(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A message PostgreSQL rejects is dead-lettered alone; its batch-mates are stored."""
    db.execute("ALTER TABLE device_status ADD CONSTRAINT t_uptime CHECK (uptime < 100000)")
    other = FakePanel(2)
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await device.send(other, TopicKind.STATUS, other.status(uptime=500_000))
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat(uptime=99))
    await ingest.wait_processed(3)
    assert db.execute("SELECT reason FROM dead_letters").fetchall() == [("store_rejected",)]
    assert one(
        db,
        "SELECT uptime FROM device_status JOIN devices ON id = device_id WHERE mac_address = %s",
        PANEL.mac,
    ) == (99,)
