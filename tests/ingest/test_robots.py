"""Robots (seed 004): state messages, per-part CDC histories, jobs, liveness, bad input."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.contract import TopicKind, TopicScheme
from ingest.decoding import Decoder
from ingest.messages import Rejected, RejectReason, RobotReport
from ingest.service import IngestService
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.devices import Publisher, now_ms
from tests.support.outbox import outbox_drained
from tests.support.robots import FULL, ROBOT, job, state
from tests.support.stored import stored_points

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEME = TopicScheme("fleet")


def decode(payload: bytes, robot: str = ROBOT, kind: TopicKind = TopicKind.ROBOT) -> object:
    return Decoder(SCHEME).decode(SCHEME.topic(robot, kind), payload, NOW)


def test_full_state_decodes_into_its_parts() -> None:
    """Seed 004's sections become one part each, a servo or sensor one per instance."""
    got = decode(state(**FULL))
    assert isinstance(got, RobotReport)
    streams = sorted((p.section, p.instance) for p in got.parts)
    assert streams == [
        ("battery", None),
        ("imu", None),
        ("performance", None),
        ("sensors", "temperature"),
        ("servos", "servo_1"),
        ("servos", "servo_2"),
    ]
    assert got.location == {"x": 1.0, "y": 2.0, "z": 0.0, "heading": 90.0}
    assert got.ip_address == "192.0.2.40"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"not json", RejectReason.MALFORMED_JSON),
        (state(), RejectReason.MALFORMED_JSON),  # no section at all
        (state(colour="red"), RejectReason.MALFORMED_JSON),
        (state(robot="tonypi_99", battery={"voltage": 12.0}), RejectReason.HOSTNAME_MISMATCH),
        (state(battery={"voltage": 99.0}), RejectReason.OUT_OF_RANGE),
        (state(battery={"charge": 1.0}), RejectReason.UNKNOWN_METRIC),
        (state(battery={"charging": "yes"}), RejectReason.WRONG_TYPE),
        (state(servos={"servo_1": {"position": 2048.5}}), RejectReason.WRONG_TYPE),
        (state(servos={"bad servo": {"position": 1}}), RejectReason.MALFORMED_JSON),
        (state(servos={f"s{i}": {"load": 1.0} for i in range(33)}), RejectReason.OUT_OF_RANGE),
        (state(sensors=[{"unit": "C", "value": 1.0}]), RejectReason.MALFORMED_JSON),
        (state(imu={"accel_x": 1e6}), RejectReason.OUT_OF_RANGE),
        (state(status="sleeping", battery={"voltage": 12.0}), RejectReason.OUT_OF_RANGE),
        (state(location={"x": "left"}), RejectReason.WRONG_TYPE),
    ],
)
def test_bad_states_get_their_reason(payload: bytes, expected: RejectReason) -> None:
    """Each fault of a robot state is named, checked against its part's declaration."""
    with pytest.raises(Rejected) as raised:
        decode(payload)
    assert raised.value.reason is expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (job("", done=1), RejectReason.MALFORMED_JSON),
        (job("J-1", done=-1), RejectReason.OUT_OF_RANGE),
        (job("J-1", done=1, status="paused"), RejectReason.OUT_OF_RANGE),
        (b'{"robot_id": "tonypi_01", "job_id": "J-1", "items_done": 1.5}', RejectReason.WRONG_TYPE),
        (job("J-1", robot="tonypi_02", done=1), RejectReason.HOSTNAME_MISMATCH),
    ],
)
def test_bad_job_reports_get_their_reason(payload: bytes, expected: RejectReason) -> None:
    """A job report with an empty id, negative count, unknown status or wrong type is refused."""
    with pytest.raises(Rejected) as raised:
        decode(payload, kind=TopicKind.JOB)
    assert raised.value.reason is expected


def robot_topic(service: IngestService, kind: str = "robot", robot: str = ROBOT) -> str:
    return f"{service.topic_prefix}/{robot}/{kind}"


def points(influx: InfluxSettings, measurement: str) -> list[dict[str, Any]]:
    return stored_points(influx, measurement)


async def test_robot_registers_and_each_part_is_its_own_history(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
    influx_settings: InfluxSettings,
) -> None:
    """A robot's first state registers it (seed 004's robots row); each part is thinned by
    its own dead bands and written to its measurement, servos tagged by servo_id."""
    await device.raw(robot_topic(ingest), state(**FULL))
    await device.raw(
        robot_topic(ingest),
        state(
            battery={"voltage": 12.35, "percentage": 85.0},  # within 0.1 V and 1 %
            servos={"servo_1": {"temperature": 47.0}},  # 1.8 °C past 45.2: a point
        ),
    )
    await ingest.wait_processed(2)
    await outbox_drained(db)
    row = db.execute(
        "SELECT r.status, r.location, r.ip_address, d.kind, d.hostname, s.is_online "
        "FROM robots r JOIN devices d ON d.id = r.device_id "
        "JOIN device_status s ON s.device_id = r.device_id WHERE r.robot_id = %s",
        [ROBOT],
    ).fetchone()
    assert row == ("online", FULL["location"], "192.0.2.40", "robot", ROBOT, True)
    battery = points(influx_settings, "battery")
    assert [(p["voltage"], p["charging"]) for p in battery] == [(12.3, False)]
    servos = points(influx_settings, "servos")
    by_servo = sorted((p["servo_id"], p["temperature"]) for p in servos)
    assert by_servo == [("servo_1", 45.2), ("servo_1", 47.0), ("servo_2", 40.0)]
    assert {p["sensor_type"] for p in points(influx_settings, "sensors")} == {"temperature"}
    assert len(points(influx_settings, "imu")) == 1
    assert len(points(influx_settings, "performance")) == 1
    streams = [s for (s,) in db.execute("SELECT stream FROM device_cdc_state ORDER BY stream")]
    assert streams == [
        "battery",
        "imu",
        "performance",
        "sensors/temperature",
        "servos/servo_1",
        "servos/servo_2",
    ]


async def test_jobs_progress_finish_and_ignore_late_reports(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A job starts at its first report, only moves forward (a late or redelivered report
    changes nothing), and ends completed with its end time; a report on a finished job
    changes nothing either."""
    await device.raw(robot_topic(ingest), state(battery={"voltage": 12.0}))
    reports = [
        job("J-1", done=2, item={"sku": "A"}),
        job("J-1", done=5, item={"sku": "B"}),
        job("J-1", done=3, item={"sku": "late"}),  # late: items never go back
        job("J-1", done=10, status="completed"),
        job("J-1", done=10, status="failed", item={"sku": "after"}),  # finished: ignored
    ]
    for report in reports:
        await device.raw(robot_topic(ingest, "job"), report)
    await ingest.wait_processed(1 + len(reports))
    row = db.execute(
        "SELECT items_done, items_total, percent_complete, status, last_item, "
        "end_time IS NOT NULL, start_time <= end_time FROM jobs WHERE job_key = 'J-1'"
    ).fetchone()
    assert row == (10, 10, 100.0, "completed", {"sku": "B"}, True, True)


async def test_a_job_that_stops_reporting_is_failed(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """An active job not reported on for job_silence is failed with the reason."""
    service, stop, task = await start_ingest(
        migrated_pg,
        mqtt_settings,
        influx_settings,
        ingest_client_id,
        job_check_interval_s=0.1,
        job_silence=timedelta(seconds=1),
    )
    try:
        await device.raw(robot_topic(service), state(battery={"voltage": 12.0}))
        await device.raw(robot_topic(service, "job"), job("J-9", done=1))
        await device.raw(robot_topic(service, "job"), job("J-10", done=3, status="completed"))
        await service.wait_processed(3)
        async with asyncio.timeout(10):
            while job_status(db, "J-9")[0] != "failed":  # noqa: ASYNC110 - another loop's work
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, ingest_client_id)
    status, reason, ended = job_status(db, "J-9")
    assert (status, reason, ended) == ("failed", "no report for 1 s", True)
    assert job_status(db, "J-10")[0] == "completed"


def job_status(db: psycopg.Connection[Any], key: str) -> tuple[str, str | None, bool]:
    row = db.execute(
        "SELECT status, failure_reason, end_time IS NOT NULL FROM jobs WHERE job_key = %s", [key]
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


async def test_silent_robot_goes_offline_and_comes_back(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """Liveness works for robots: silence takes one offline (robots.status too), its next
    state brings it back."""
    await device.raw(robot_topic(ingest), state(battery={"voltage": 12.0}))
    await ingest.wait_processed(1)
    await ingest.sweep_now(datetime.now(UTC) + timedelta(minutes=5))
    assert robot_status(db) == ("offline", False)
    await device.raw(robot_topic(ingest), state(battery={"voltage": 12.0}, status="maintenance"))
    await ingest.wait_processed(2)
    assert robot_status(db) == ("maintenance", True)
    events = [e for (e,) in db.execute("SELECT event::text FROM device_connection_log ORDER BY id")]
    assert events == ["connected", "timeout", "connected"]


def robot_status(db: psycopg.Connection[Any]) -> tuple[str, bool]:
    row = db.execute(
        "SELECT r.status, s.is_online FROM robots r JOIN device_status s USING (device_id)"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


async def test_redelivered_state_is_a_duplicate_and_unknown_robots_jobs_are_refused(
    ingest: IngestService, device: Publisher, db: psycopg.Connection[Any]
) -> None:
    """A stamped state seen again changes nothing; a job of a robot never seen is a dead
    letter (its state message registers a robot, a job report does not)."""
    stamp = now_ms()
    first = state(timestamp=stamp, battery={"voltage": 12.0})
    await device.raw(robot_topic(ingest), first)
    await device.raw(robot_topic(ingest), state(timestamp=stamp + 1000, battery={"voltage": 13.0}))
    await device.raw(robot_topic(ingest), first)
    await device.raw(robot_topic(ingest, "job", "tonypi_77"), job("J-1", "tonypi_77", done=1))
    await ingest.wait_processed(4)
    assert ingest.pipeline.totals.duplicates == 1
    assert db.execute("SELECT reason FROM dead_letters").fetchall() == [("unregistered",)]
    (received,) = db.execute("SELECT sum(received) FROM heartbeat_counts").fetchone() or (0,)
    assert received == 2


def test_state_json_round_trip_of_the_fixture() -> None:
    """The test fixture itself is seed 004's shape (guards the other tests)."""
    assert set(json.loads(state(**FULL))) >= {"robot_id", "battery", "servos", "imu", "sensors"}


async def test_commands_reach_a_robot_in_json_and_its_json_answers_complete_them(
    ingest: IngestService,
    device: Publisher,
    db: psycopg.Connection[Any],
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
) -> None:
    """The command lifecycle for robots: queued for its robot_id, sent as JSON on its
    command topic, acknowledged and completed by JSON responses."""
    from ingest.broker import make_client
    from ingest.command_api import CommandApi
    from ingest.commands import CommandSpec
    from stores.postgres.commands_store import TargetFilter

    await device.raw(robot_topic(ingest), state(battery={"voltage": 12.0}))
    await ingest.wait_processed(1)
    async with make_client(mqtt_settings) as robot:
        await robot.subscribe(robot_topic(ingest, "command"), qos=1)
        (row,) = CommandApi(migrated_pg).send(
            CommandSpec("reboot", {"delayMs": 250}),
            TargetFilter(hostnames=[ROBOT]),
            caller_level=2,
            initiated_by="test",
        )
        assert await ingest.dispatch_now() == 1
        async with asyncio.timeout(10):
            message = await anext(aiter(robot.messages))
        assert isinstance(message.payload, bytes)
        sent = json.loads(message.payload)
        assert sent["request_id"] == row.request_id
        assert sent["command"] == {"reboot": {"delayMs": 250}}
        assert sent["type"] == "SYSTEM"
        for stage in ("ACKNOWLEDGED", "COMPLETED"):
            reply = {
                "request_id": sent["request_id"],
                "sequence": sent["sequence"],
                "stage": stage,
                "success": True,
                "response_code": 200,
                "data": {"rebooting": "yes"},
            }
            await device.raw(robot_topic(ingest, "response"), json.dumps(reply).encode())
    await ingest.wait_processed(3)
    done = db.execute(
        "SELECT status::text, response_code, response_data FROM command_log WHERE request_id = %s",
        [row.request_id],
    ).fetchone()
    assert done == ("COMPLETED", 200, {"rebooting": "yes"})


async def test_restart_continues_each_stream_from_its_stored_reference(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,
    device: Publisher,
    db: psycopg.Connection[Any],
) -> None:
    """After a restart a robot's parts within their dead bands write nothing: every
    stream's reference survives in PostgreSQL (no flood of first points)."""
    states = [
        state(battery={"percentage": 80.0}, servos={"servo_1": {"temperature": 40.0}}),
        state(battery={"percentage": 80.4}, servos={"servo_1": {"temperature": 40.5}}),
    ]
    for payload in states:
        service, stop, task = await start_ingest(
            migrated_pg, mqtt_settings, influx_settings, ingest_client_id
        )
        try:
            await device.raw(robot_topic(service), payload)
            await service.wait_processed(1)
        finally:
            stop.set()
            await task
    await forget_session(mqtt_settings, ingest_client_id)
    received, written = db.execute(
        "SELECT sum(received), sum(written) FROM heartbeat_counts"
    ).fetchone() or (0, 0)
    assert (received, written) == (4, 2)  # two parts, twice; only the first of each stored
