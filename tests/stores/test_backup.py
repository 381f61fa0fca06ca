"""Backups of a system under load, restored into fresh stores, and what a restore refuses.

The source is a real ingest fed by a simulated fleet through the broker; the backup runs
while both keep going. The database is dumped at a snapshot the test exported itself, so the
restored tables can be compared with exactly what the dump saw. The restore target is a new
database on the same server and a second, freshly set-up InfluxDB.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from influxdb_client import Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from psycopg import sql
from pydantic import PostgresDsn

from fleetwatch.cli import main
from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from simulator import FleetOptions
from simulator.run import RunOptions
from stores.backup import (
    BackupOptions,
    DamagedBackupError,
    Manifest,
    Stores,
    TargetNotEmptyError,
    backup,
    restore,
)
from stores.backup.postgres import relations_in
from stores.influx import ensure_bucket, make_client
from stores.influx.buckets import find_bucket, retention_seconds
from stores.postgres import upgrade
from tests.conftest import unique_name
from tests.ingest.conftest import running_ingest
from tests.services import (  # the container: when the run's InfluxDB is one, so is this
    ServiceUnavailableError,
    _influx_container,
    influx_ready,
    wait_until,
)
from tests.simulator.conftest import BUSY, running_simulator

REPO = Path(__file__).resolve().parents[2]
PANELS = 40
SPEED = 60  # simulated seconds a second: alarms and sensor drift within seconds
SAMPLED = 5
POINTS_EACH = 3
# Both the set-up's bucket and the hourly one under their usual names: the restore maps the
# source's own names (unique to this run) onto these by role.
TARGET_BUCKETS = ("heartbeats", "heartbeats_hourly")

Rows = dict[str, tuple[int, str]]
Points = list[tuple[datetime, str, Any]]


@dataclass(frozen=True, slots=True)
class BackedUp:
    """A source system, its backup, and what the backup must hold."""

    source: Stores
    directory: Path
    manifest: Manifest
    tables: Rows  # every table's row count and digest at the dump's snapshot
    sampled: tuple[str, ...]  # hostnames
    flushed: dict[str, datetime]  # each sampled device's last point before the backup


# --- the source system, backed up under load --------------------------------------------------


@contextmanager
def new_database(admin: PostgresSettings) -> Iterator[PostgresSettings]:
    """An empty database of its own on the test server, dropped afterwards."""
    name = unique_name("db")
    url = str(admin.database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    host = admin.database_url.hosts()[0]
    own = f"postgresql://{host['username']}:{host['password']}@{host['host']}:{host['port']}/{name}"
    try:
        yield PostgresSettings(database_url=PostgresDsn(own))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def own_buckets(influx: InfluxSettings) -> Iterator[tuple[InfluxSettings, str]]:
    """Raw and hourly buckets of the test's own on the run's InfluxDB, deleted afterwards:
    the settings naming the raw one, and the hourly one's name."""
    prefix = unique_name("bk")
    raw, hourly = f"{prefix}_raw", f"{prefix}_hourly"
    with make_client(influx) as client:
        ensure_bucket(client, raw, influx.influx_org, 30)
        ensure_bucket(client, hourly, influx.influx_org, 730)
        try:
            yield influx.model_copy(update={"influx_bucket": raw}), hourly
        finally:
            for name in (raw, hourly):
                bucket = find_bucket(client, name, influx.influx_org)
                if bucket is not None:
                    client.buckets_api().delete_bucket(bucket)


@pytest.fixture(scope="module")
def backed_up(
    postgres_service: PostgresSettings,
    mqtt_service: MqttSettings,
    influx_service: InfluxSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BackedUp]:
    """A fleet ingested into stores of the test's own, backed up while it keeps publishing."""
    directory = tmp_path_factory.mktemp("backup") / "fleet"
    with new_database(postgres_service) as pg, own_buckets(influx_service) as (influx, hourly):
        upgrade(pg)
        source = Stores(postgres=pg, influx=influx, hourly_bucket=hourly)
        mqtt = mqtt_service.model_copy(update={"topic_prefix": unique_name("fleet")})
        yield asyncio.run(_back_up_under_load(source, mqtt, directory))


async def _back_up_under_load(source: Stores, mqtt: MqttSettings, directory: Path) -> BackedUp:
    """Run ingest and a simulated fleet, back up while they run, then stop them."""
    client_id = f"ingest-{uuid.uuid4().hex[:10]}"
    fleet = FleetOptions(devices=PANELS, seed=11, behaviour=BUSY)
    async with (
        running_ingest(source.postgres, mqtt, source.influx, client_id) as service,
        running_simulator(mqtt, fleet, RunOptions(speed=SPEED)),
    ):
        sampled = await asyncio.to_thread(_wait_for_history, source)
        with psycopg.connect(str(source.postgres.database_url)) as snapshot:
            snapshot.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            exported = _scalar(snapshot, "SELECT pg_export_snapshot()")
            tables = _table_rows(snapshot)
            # Every point up to these was in InfluxDB before its backup began.
            flushed = {name: _points(source.influx, name)[-1][0] for name in sampled}
            _write_hourly_rows(source, sampled)
            options = BackupOptions(jobs=2, pg_snapshot=str(exported))
            # The fleet keeps publishing and ingest keeps writing all through the backup.
            before = service.pipeline.totals.device_messages
            manifest = await asyncio.to_thread(backup, directory, source, options)
            assert service.pipeline.totals.device_messages > before, "no load during the backup"
    return BackedUp(source, directory, manifest, tables, sampled, flushed)


def _wait_for_history(source: Stores) -> tuple[str, ...]:
    """The sampled devices, once the whole fleet is registered and each sampled device has
    a few points in InfluxDB (its first, then periodic and sensor points)."""
    url = str(source.postgres.database_url)

    def registered() -> bool:
        with psycopg.connect(url, autocommit=True) as conn:
            return _scalar(conn, "SELECT count(*) FROM devices") == PANELS

    wait_until("the simulated fleet's registration", registered, timeout_s=30)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT hostname FROM devices ORDER BY hostname LIMIT %s", (SAMPLED,))
        sampled = tuple(str(row[0]) for row in rows)

    def histories() -> bool:
        return all(
            len({when for when, _, _ in _points(source.influx, name)}) >= POINTS_EACH
            for name in sampled
        )

    wait_until("a few points of each sampled device", histories, timeout_s=30)
    return sampled


def _write_hourly_rows(source: Stores, hostnames: tuple[str, ...]) -> None:
    """A few downsampled rows, so the hourly bucket has a shard to back up too."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    rows = [
        Point("device_hourly_stats").tag("hostname", name).field("sample_count", n).time(hour)
        for n, name in enumerate(hostnames, start=1)
    ]
    with make_client(source.influx) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=source.hourly_bucket, record=rows, write_precision=WritePrecision.S
        )


# --- reading both stores -------------------------------------------------------------------


def _scalar(conn: psycopg.Connection[Any], query: str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _table_rows(conn: psycopg.Connection[Any]) -> Rows:
    """Every table's row count and a digest of all its rows (in their text form, sorted)."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
        )
    ]
    found: Rows = {}
    for table in tables:
        query = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            "FROM {} t"
        ).format(sql.Identifier(table))
        row = conn.execute(query).fetchone()
        assert row is not None
        found[table] = (int(row[0]), str(row[1]))
    return found


def _points(influx: InfluxSettings, hostname: str) -> Points:
    """A device's heartbeat points: (time, field, value), sorted."""
    flux = f"""
from(bucket: "{influx.influx_bucket}")
  |> range(start: 0, stop: 2200-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "heartbeat" and r.hostname == "{hostname}")
  |> keep(columns: ["_time", "_field", "_value"])
"""
    with make_client(influx) as client:
        tables = client.query_api().query(flux)
    return sorted(
        (record.get_time(), record.get_field(), record.get_value())
        for table in tables
        for record in table.records
    )


def _outbox_points(conn: psycopg.Connection[Any], hostname: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM influx_outbox WHERE line LIKE 'heartbeat,%%' AND line LIKE %s",
        (f"%hostname={hostname}%",),
    ).fetchone()
    assert row is not None
    return int(row[0])


# --- a second InfluxDB, set up like a new installation -------------------------------------


@pytest.fixture
def fresh_influx(influx_service: InfluxSettings, tmp_path: Path) -> Iterator[InfluxSettings]:
    """A new InfluxDB set up with the run's organisation and operator token, and nothing
    else but the set-up's ``heartbeats`` bucket; stopped afterwards."""
    if "FLEETWATCH_INFLUX_URL" not in os.environ:  # the run's InfluxDB is a container
        with _influx_container() as settings:
            yield settings
        return
    port = _free_port()
    settings = influx_service.model_copy(update={"influx_url": f"http://127.0.0.1:{port}"})
    with _influxd(_influxd_binary(), port, tmp_path / "influxd"):
        _set_up(settings)
        yield settings


def _influxd_binary() -> str:
    """The influxd the local services run (built once and cached by the services script)."""
    done = subprocess.run(
        [str(REPO / "scripts" / "services.sh"), "influxd"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        pytest.fail(
            "no influxd binary for a second InfluxDB: `scripts/services.sh influxd` failed "
            f"({done.stderr.strip()[-300:]}); run `scripts/services.sh up` first",
            pytrace=False,
        )
    return lines[-1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _influxd(binary: str, port: int, state: Path) -> Iterator[None]:
    """An influxd on ``port`` keeping its state in ``state``; stopped afterwards."""
    state.mkdir()
    log = (state / "influxd.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--http-bind-address=127.0.0.1:{port}",
            f"--bolt-path={state / 'influxd.bolt'}",
            f"--engine-path={state / 'engine'}",
            f"--sqlite-path={state / 'influxd.sqlite'}",
            "--reporting-disabled",
            "--log-level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        probe = InfluxSettings(influx_url=url)
        try:
            wait_until("the second InfluxDB", lambda: influx_ready(probe), timeout_s=30)
        except ServiceUnavailableError as exc:
            pytest.fail(f"{exc}: {(state / 'influxd.log').read_text()[-500:]}", pytrace=False)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _set_up(settings: InfluxSettings) -> None:
    """InfluxDB's onboarding, as compose and the services script do it."""
    answer = httpx.post(
        f"{settings.influx_url}/api/v2/setup",
        json={
            "username": "fleetwatch",
            "password": "fleetwatch-admin",
            "org": settings.influx_org,
            "bucket": TARGET_BUCKETS[0],
            "token": settings.influx_token.get_secret_value(),
        },
    )
    answer.raise_for_status()


# --- the tests -----------------------------------------------------------------------------


def test_backup_under_load_restores_into_fresh_stores(
    backed_up: BackedUp, postgres_service: PostgresSettings, fresh_influx: InfluxSettings
) -> None:
    """A backup taken while a fleet publishes restores into a new database and a new
    InfluxDB: every table as the dump's snapshot saw it, the sampled devices' points, the
    hourly bucket, and no committed point lost between the two stores."""
    manifest = backed_up.manifest
    assert manifest.buckets == {
        "raw": backed_up.source.influx.influx_bucket,
        "hourly": backed_up.source.hourly_bucket,
    }
    assert manifest.versions.schema_revision is not None
    assert manifest.versions.pg_dump.startswith("pg_dump (PostgreSQL)")
    assert any(entry.path.startswith("influxdb/shards/") for entry in manifest.files)
    with new_database(postgres_service) as pg:
        target = Stores(
            postgres=pg,
            influx=fresh_influx.model_copy(update={"influx_bucket": TARGET_BUCKETS[0]}),
            hourly_bucket=TARGET_BUCKETS[1],
        )
        report = restore(backed_up.directory, target)
        assert report.schema_note is None
        assert report.cleared == ("InfluxDB bucket heartbeats deleted (empty)",)
        with psycopg.connect(str(pg.database_url), autocommit=True) as restored:
            assert _table_rows(restored) == backed_up.tables
            for hostname in backed_up.sampled:
                _assert_points_restored(backed_up, target, hostname, restored)
    with make_client(target.influx) as client:
        hourly = find_bucket(client, TARGET_BUCKETS[1], target.influx.influx_org)
        assert hourly is not None
        assert retention_seconds(hourly) == 730 * 86_400
        rows = client.query_api().query(
            f'from(bucket: "{TARGET_BUCKETS[1]}") |> range(start: -1d) |> count()'
        )
        assert sum(record.get_value() for table in rows for record in table.records) == SAMPLED


def _assert_points_restored(
    backed_up: BackedUp, target: Stores, hostname: str, restored: psycopg.Connection[Any]
) -> None:
    """The device's points before the backup are all back, and none that never existed."""
    source_points = _points(backed_up.source.influx, hostname)
    restored_points = _points(target.influx, hostname)
    cut = backed_up.flushed[hostname]
    before = [point for point in source_points if point[0] <= cut]
    assert before, hostname
    assert [point for point in restored_points if point[0] <= cut] == before
    assert set(restored_points) <= set(source_points)
    # Every point PostgreSQL had committed is in InfluxDB's part or in the outbox to replay.
    written = restored.execute(
        "SELECT coalesce(sum(c.written), 0) FROM heartbeat_counts c "
        "JOIN devices d ON d.id = c.device_id WHERE d.hostname = %s",
        (hostname,),
    ).fetchone()
    assert written is not None
    stored = len({when for when, _, _ in restored_points})
    assert stored + _outbox_points(restored, hostname) >= written[0] > 0


def test_restore_refuses_stores_that_hold_data(backed_up: BackedUp) -> None:
    """Restoring over the source itself is refused, naming the database and both buckets,
    and changes nothing."""
    relations_before = relations_in(backed_up.source.postgres)
    with pytest.raises(TargetNotEmptyError) as refused:
        restore(backed_up.directory, backed_up.source)
    message = str(refused.value)
    database = (backed_up.source.postgres.database_url.path or "").lstrip("/")
    assert f"PostgreSQL database {database} holds" in message
    assert f"InfluxDB bucket {backed_up.source.influx.influx_bucket} holds points" in message
    assert f"InfluxDB bucket {backed_up.source.hourly_bucket} holds points" in message
    assert "--replace" in message
    assert relations_in(backed_up.source.postgres) == relations_before
    assert _points(backed_up.source.influx, backed_up.sampled[0])


def test_restore_refuses_an_altered_file_before_touching_anything(
    backed_up: BackedUp, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """One byte changed in a shard: the restore names that file and leaves the empty target
    database as it was."""
    copy = tmp_path / "copy"
    shutil.copytree(backed_up.directory, copy)
    shard = max(
        (entry for entry in backed_up.manifest.files if entry.path.endswith(".tar.gz")),
        key=lambda entry: entry.size,
    )
    with (copy / shard.path).open("r+b") as stream:
        stream.seek(shard.size // 2)
        byte = stream.read(1)
        stream.seek(shard.size // 2)
        stream.write(bytes([byte[0] ^ 0xFF]))
    target = Stores(
        postgres=pg_settings,
        influx=backed_up.source.influx.model_copy(update={"influx_bucket": unique_name("no")}),
        hourly_bucket=unique_name("no"),
    )
    with pytest.raises(DamagedBackupError, match=shard.path):
        restore(copy, target)
    assert relations_in(pg_settings) == 0


@pytest.mark.usefixtures("restore_root_logging")
def test_cli_says_why_without_a_traceback(
    postgres_service: PostgresSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A directory that is no backup, a non-empty backup directory, an unreachable InfluxDB
    and a missing pg_dump each end with one line and their exit status."""
    monkeypatch.setenv("FLEETWATCH_DATABASE_URL", str(postgres_service.database_url))
    monkeypatch.setenv("FLEETWATCH_INFLUX_URL", f"http://127.0.0.1:{_free_port()}")
    assert main(["restore", str(tmp_path)]) == 2
    assert "holds no manifest.json: not a fleetwatch backup" in capsys.readouterr().err
    (tmp_path / "something").write_text("kept")
    assert main(["backup", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["backup", str(tmp_path / "new")]) == 1
    assert "InfluxDB unreachable" in capsys.readouterr().err
    assert main(["backup", "--pg-bin", str(tmp_path), str(tmp_path / "new")]) == 1
    err = capsys.readouterr().err
    assert f"pg_dump not found in {tmp_path}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "new").exists()
