"""State of the benchmark's own: a fresh database, bucket, topic prefix and client ids.

Nothing another process uses is touched, so a benchmark can run next to the test suite or a
running ingest. Everything is removed at the end, unless ``keep`` asks to leave the database
and the bucket for inspection.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import paho.mqtt.client as paho
import psycopg
from influxdb_client.client.exceptions import InfluxDBError
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql
from pydantic import PostgresDsn
from pydantic_settings import BaseSettings
from urllib3.exceptions import HTTPError

from fleetwatch.settings import ENV_PREFIX, InfluxSettings, MqttSettings, PostgresSettings
from stores.influx import make_client
from stores.postgres.migrate import upgrade

logger = logging.getLogger(__name__)


class SandboxError(RuntimeError):
    """The benchmark's database or bucket could not be created."""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Settings pointing at the benchmark's own state."""

    run_id: str
    pg: PostgresSettings
    mqtt: MqttSettings  # topic prefix and ingest client id of this run
    influx: InfluxSettings
    publisher_id: str
    bridge_id: str  # the MQTT client id of a run's bridge to Kafka

    @property
    def database_url(self) -> str:
        return str(self.pg.database_url)


def process_env(*groups: BaseSettings) -> dict[str, str]:
    """The environment that makes a fleetwatch process use these settings (and no other
    FLEETWATCH_* of ours), without a health endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for group in groups:
        for name, value in group.model_dump().items():
            if value is None:
                continue
            text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            env[f"{ENV_PREFIX}{name}".upper()] = str(text)
    env[f"{ENV_PREFIX}HEALTH_PORT"] = "0"
    return env


def database_url(admin: PostgresSettings, name: str) -> str:
    """The URL of database ``name`` on ``admin``'s server, with ``admin``'s credentials."""
    host = admin.database_url.hosts()[0]
    user = host["username"] or ""
    password = f":{host['password']}" if host["password"] else ""
    return f"postgresql://{user}{password}@{host['host']}:{host['port']}/{name}"


@contextmanager
def _database(admin: PostgresSettings, name: str, *, keep: bool) -> Iterator[PostgresSettings]:
    """A new, migrated database; dropped on exit unless ``keep``."""
    try:
        with psycopg.connect(str(admin.database_url), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise SandboxError(f"cannot create database {name}: {exc}") from exc
    try:
        settings = PostgresSettings(database_url=PostgresDsn(database_url(admin, name)))
        upgrade(settings)
        logger.info("database %s created and migrated", name)
        yield settings
    finally:
        if keep:
            logger.info("kept database %s", name)
        else:
            drop_database(admin, name)


def drop_database(admin: PostgresSettings, name: str) -> None:
    """Drop database ``name`` if it exists, its sessions included; a failure is logged."""
    try:
        with psycopg.connect(str(admin.database_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error:
        logger.exception("could not drop database %s; drop it by hand", name)


@contextmanager
def _bucket(influx: InfluxSettings, name: str, *, keep: bool) -> Iterator[InfluxSettings]:
    """A new InfluxDB bucket; deleted on exit unless ``keep``."""
    with make_client(influx) as client:
        buckets = client.buckets_api()
        try:
            bucket = buckets.create_bucket(bucket_name=name, org=influx.influx_org)
        except (InfluxDBError, HTTPError, OSError) as exc:
            raise SandboxError(f"cannot create InfluxDB bucket {name}: {exc}") from exc
        try:
            yield influx.model_copy(update={"influx_bucket": name})
        finally:
            if keep:
                logger.info("kept bucket %s", name)
            else:
                try:
                    buckets.delete_bucket(bucket)
                except (InfluxDBError, HTTPError, OSError):
                    logger.exception("could not delete bucket %s", name)


def forget_session(settings: MqttSettings, client_id: str) -> None:
    """Drop the broker's persistent session of ``client_id`` (connect once with a clean one)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if settings.mqtt_username:
        password = settings.mqtt_password
        client.username_pw_set(
            settings.mqtt_username, password.get_secret_value() if password else None
        )
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port)
        client.loop(timeout=1.0)  # reads CONNACK: the broker has replaced the session
        client.disconnect()
    except OSError:
        logger.exception("could not clear the MQTT session of %s", client_id)


def _declare_device_types(pg: PostgresSettings) -> None:
    """The simulator's device types, so simulated telemetry devices register themselves."""
    from ingest.kinds.telemetry import to_row  # noqa: PLC0415
    from simulator.telemetry import shipped_types  # noqa: PLC0415
    from stores.postgres import device_types  # noqa: PLC0415

    with psycopg.connect(str(pg.database_url), autocommit=True) as conn:
        for device_type in shipped_types():
            device_types.create(conn, to_row(device_type))


def register_panels(box: Sandbox, registrations: Sequence[tuple[str, str]]) -> None:
    """Register panels (hostname, MAC) in the run's fresh database, numbered 1, 2, ... in
    the order given, as ingest would on their first status messages arriving in that order;
    raises if the ids came out otherwise."""
    hostnames = [hostname for hostname, _ in registrations]
    try:
        with psycopg.connect(box.database_url) as conn:
            conn.execute(
                """
                WITH added AS (
                  INSERT INTO devices (mac_address, hostname)
                  SELECT mac, hostname
                    FROM unnest(%s::macaddr[], %s::varchar[]) WITH ORDINALITY AS r(mac, hostname, n)
                   ORDER BY n
                  RETURNING id)
                INSERT INTO device_status (device_id) SELECT id FROM added
                """,
                [[mac for _, mac in registrations], hostnames],
            )
            ids: dict[str, int] = dict(conn.execute("SELECT hostname, id FROM devices").fetchall())
    except psycopg.Error as exc:
        raise SandboxError(f"cannot register the panels: {exc}") from exc
    wrong = sum(ids.get(hostname) != n for n, hostname in enumerate(hostnames, start=1))
    if wrong or len(ids) != len(hostnames):
        raise SandboxError(f"{wrong} of {len(hostnames)} panels registered with another id")
    logger.info("%d panels registered ahead of their messages", len(hostnames))


@contextmanager
def sandbox(
    pg: PostgresSettings, mqtt: MqttSettings, influx: InfluxSettings, *, keep: bool
) -> Iterator[Sandbox]:
    """Create the run's database (migrated) and bucket; remove them afterwards."""
    run_id = uuid.uuid4().hex[:10]
    with ExitStack() as stack:
        pg_run = stack.enter_context(_database(pg, f"bench_{run_id}", keep=keep))
        _declare_device_types(pg_run)
        influx_run = stack.enter_context(_bucket(influx, f"bench_{run_id}", keep=keep))
        mqtt_run = mqtt.model_copy(
            update={"topic_prefix": f"bench-{run_id}", "mqtt_client_id": f"bench-ingest-{run_id}"}
        )
        # Ingest's and the bridge's sessions are persistent: the broker would keep them (and
        # queue for them) forever.
        bridge_id = f"bench-bridge-{run_id}"
        stack.callback(forget_session, mqtt_run, mqtt_run.mqtt_client_id)
        stack.callback(forget_session, mqtt_run, bridge_id)
        yield Sandbox(
            run_id=run_id,
            pg=pg_run,
            mqtt=mqtt_run,
            influx=influx_run,
            publisher_id=f"bench-publisher-{run_id}",
            bridge_id=bridge_id,
        )
