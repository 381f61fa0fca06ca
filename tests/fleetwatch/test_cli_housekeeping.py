"""'fleetwatch housekeeping' purges PostgreSQL; 'fleetwatch migrate' also prepares InfluxDB;
'fleetwatch downsample' backfills the hourly data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from fleetwatch.cli import main
from fleetwatch.settings import InfluxSettings, PostgresSettings
from ingest.kinds import metric_measurements
from stores.influx import ensure_bucket
from stores.influx.buckets import find_bucket, retention_seconds
from stores.influx.flux_library import run_flux
from stores.influx.tasks import find_tasks, task_flux, task_name
from stores.postgres import current_revision, head_revision, make_engine, upgrade
from stores.postgres import schema as s
from tests.conftest import unique_name
from tests.support.history import heartbeat, tags, write
from tests.support.influx_env import InfluxEnv, own_influx_env

# Running the CLI installs root-logger handlers: undo them after each test.
pytestmark = pytest.mark.usefixtures("restore_root_logging")

DAY_S = 86_400


@pytest.fixture
def influx_env(
    influx_service: InfluxSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InfluxEnv]:
    """FLEETWATCH_INFLUX_* naming raw and hourly buckets of the test's own, removed after."""
    with own_influx_env(influx_service, monkeypatch, unique_name("cli")) as env:
        yield env


def test_housekeeping_prints_rows_removed_per_table(
    pg_env: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old dead letters are purged and every table's count is printed."""
    upgrade(pg_env)
    old = datetime.now(UTC) - timedelta(days=31)
    letter = {"topic": "t", "payload": b"x", "reason": "bad_topic", "received_at": old}
    engine = make_engine(pg_env, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(insert(s.dead_letters), [letter] * 3)

        assert main(["housekeeping"]) == 0

        with engine.connect() as conn:
            left = conn.execute(select(func.count()).select_from(s.dead_letters)).scalar_one()
    finally:
        engine.dispose()
    out = capsys.readouterr().out
    assert left == 0
    assert "postgresql: dead_letters: 3 rows removed (older than 30 days)" in out
    assert "postgresql: alarm_events: 0 rows removed (older than 180 days)" in out
    assert out.count("rows removed") == 10  # system_logs, state snapshots, frame ids too


def test_housekeeping_refuses_an_unmigrated_database(
    pg_env: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """On an empty database it exits 1 and says to run 'fleetwatch migrate'."""
    assert main(["housekeeping"]) == 1
    assert "run `fleetwatch migrate`" in capsys.readouterr().err


def test_migrate_creates_buckets_and_task_once(
    pg_env: PostgresSettings,
    influx_env: InfluxEnv,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Migrate creates both buckets with their retention and the task; a rerun changes nothing."""
    client, org = influx_env.client, influx_env.org
    raw, hourly = influx_env.raw_bucket, influx_env.hourly_bucket

    assert main(["migrate"]) == 0
    first = capsys.readouterr().out
    assert main(["migrate"]) == 0
    second = capsys.readouterr().out

    raw_bucket, hourly_bucket = find_bucket(client, raw, org), find_bucket(client, hourly, org)
    assert raw_bucket is not None
    assert hourly_bucket is not None
    assert retention_seconds(raw_bucket) == 30 * DAY_S
    assert retention_seconds(hourly_bucket) == 730 * DAY_S
    tasks = find_tasks(client, org, task_name(hourly))
    assert len(tasks) == 1
    assert tasks[0].flux == task_flux(org, raw, hourly, metric_measurements())
    assert f"influxdb: bucket {raw}: created, retention 30 days" in first
    assert f"influxdb: bucket {hourly}: created, retention 730 days" in first
    assert f"influxdb: task {task_name(hourly)}: created" in first
    assert f"influxdb: bucket {raw}: already keeps 30 days" in second
    assert f"influxdb: task {task_name(hourly)}: already up to date" in second


def test_migrate_corrects_the_raw_bucket_retention(
    pg_env: PostgresSettings,
    influx_env: InfluxEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A changed FLEETWATCH_INFLUX_RAW_RETENTION_DAYS is applied to the existing bucket."""
    client, raw = influx_env.client, influx_env.raw_bucket
    assert main(["migrate"]) == 0
    monkeypatch.setenv("FLEETWATCH_INFLUX_RAW_RETENTION_DAYS", "7")

    assert main(["migrate"]) == 0

    bucket = find_bucket(client, raw, influx_env.org)
    assert bucket is not None
    assert retention_seconds(bucket) == 7 * DAY_S
    assert f"influxdb: bucket {raw}: retention changed to 7 days" in capsys.readouterr().out


def test_migrate_without_influxdb_fails_after_postgres(
    pg_env: PostgresSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """InfluxDB down: PostgreSQL is migrated, then migrate says InfluxDB is unreachable, exit 1."""
    monkeypatch.setenv("FLEETWATCH_INFLUX_URL", "http://127.0.0.1:9")

    assert main(["migrate"]) == 1

    engine = make_engine(pg_env, pool_size=1)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    captured = capsys.readouterr()
    assert "postgresql: migrated from revision none" in captured.out
    assert "InfluxDB unreachable at http://127.0.0.1:9" in captured.err


def test_migrate_refuses_one_bucket_for_raw_and_hourly(
    pg_env: PostgresSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The hourly bucket may not be the raw one: a settings error (exit 2) before any change."""
    monkeypatch.setenv("FLEETWATCH_INFLUX_BUCKET", "same")
    monkeypatch.setenv("FLEETWATCH_INFLUX_HOURLY_BUCKET", "same")

    assert main(["migrate"]) == 2

    engine = make_engine(pg_env, pool_size=1)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()
    assert "FLEETWATCH_INFLUX_HOURLY_BUCKET" in capsys.readouterr().err


def test_downsample_backfills_the_hourly_data(
    influx_env: InfluxEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """'fleetwatch downsample --hours N' writes the device rows and the per-zone rollup of
    the last N finished hours from the raw points, and says how many device-hours."""
    client, org = influx_env.client, influx_env.org
    for name in (influx_env.raw_bucket, influx_env.hourly_bucket):
        ensure_bucket(client, name, org, 30)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    write(
        client,
        influx_env.raw_bucket,
        [heartbeat(tags(n), hour + timedelta(minutes=m)) for n in (1, 2) for m in range(0, 60, 5)],
    )

    assert main(["downsample", "--hours", "3"]) == 0

    out = capsys.readouterr().out
    assert f"3 hours from {hour - timedelta(hours=1):%Y-%m-%d %H:%M} UTC" in out
    # Each device's hour, and the next one: its :55 value holds on (no offline marker).
    assert out.rstrip().endswith(": 4 device-hours")
    rollup = run_flux(
        client,
        f'from(bucket: "{influx_env.hourly_bucket}") |> range(start: -1d) '
        '|> filter(fn: (r) => r._measurement == "group_hourly_stats" and r._field == "devices")',
    )
    assert rollup["_value"].to_list() == [2, 2]
