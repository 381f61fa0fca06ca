"""Real PostgreSQL, Mosquitto and InfluxDB for the tests.

Each service comes from its ``FLEETWATCH_*`` environment variables when they are set (the
project's ``scripts/services.sh`` prints them), or else from a testcontainers container of the
official image. There is no fake: when neither is possible the test run fails and says how
to start the service.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import PostgresDsn, SecretStr

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings

POSTGRES_IMAGE = "postgres:16.6-alpine"
MOSQUITTO_IMAGE = "eclipse-mosquitto:2.0.20"
INFLUXDB_IMAGE = "influxdb:2.7.12-alpine"
CONTAINER_INFLUX_TOKEN = "fleetwatch-test-token"
HOW_TO_START = (
    "start the local services with `scripts/services.sh up` and export their settings with "
    '`eval "$(scripts/services.sh env)"`, or run the tests where a Docker engine answers'
)


class ServiceUnavailableError(RuntimeError):
    """A service the tests need is neither configured nor startable."""


def docker_available() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False
    return True


def wait_until(what: str, ready: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``ready`` until it is true or fail after ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise ServiceUnavailableError(f"{what} did not become ready in {timeout_s:.0f}s")
        time.sleep(0.25)


def postgres_ready(settings: PostgresSettings) -> bool:
    import psycopg

    try:
        with psycopg.connect(str(settings.database_url), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def mqtt_ready(settings: MqttSettings) -> bool:
    from ingest.broker import BrokerUnavailableError, probe

    try:
        asyncio.run(probe(settings))
    except BrokerUnavailableError:
        return False
    return True


def influx_ready(settings: InfluxSettings) -> bool:
    try:
        with urllib.request.urlopen(f"{settings.influx_url}/health", timeout=3) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _require(name: str, variable: str, settings: object, ready: Callable[[], bool]) -> None:
    if not ready():
        raise ServiceUnavailableError(
            f"{name} is configured by {variable} but does not answer ({settings!r}); {HOW_TO_START}"
        )


@contextmanager
def _postgres_container() -> Iterator[PostgresSettings]:
    from testcontainers.core.container import DockerContainer

    env = {"POSTGRES_USER": "fleetwatch", "POSTGRES_PASSWORD": "fleetwatch"}
    with DockerContainer(POSTGRES_IMAGE, env=env, ports=[5432]) as container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(5432)
        url = f"postgresql://fleetwatch:fleetwatch@{host}:{port}/fleetwatch"
        settings = PostgresSettings(database_url=PostgresDsn(url))
        wait_until("PostgreSQL container", lambda: postgres_ready(settings))
        yield settings


@contextmanager
def _mosquitto_container() -> Iterator[MqttSettings]:
    from testcontainers.core.container import DockerContainer

    command = "mosquitto -c /mosquitto-no-auth.conf"
    with DockerContainer(MOSQUITTO_IMAGE, command=command, ports=[1883]) as container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(1883)
        settings = MqttSettings(mqtt_host=host, mqtt_port=int(port))
        wait_until("Mosquitto container", lambda: mqtt_ready(settings))
        yield settings


@contextmanager
def _influx_container() -> Iterator[InfluxSettings]:
    from testcontainers.core.container import DockerContainer

    env = {
        "DOCKER_INFLUXDB_INIT_MODE": "setup",
        "DOCKER_INFLUXDB_INIT_USERNAME": "fleetwatch",
        "DOCKER_INFLUXDB_INIT_PASSWORD": "fleetwatch-admin",
        "DOCKER_INFLUXDB_INIT_ORG": "fleetwatch",
        "DOCKER_INFLUXDB_INIT_BUCKET": "heartbeats",
        "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": CONTAINER_INFLUX_TOKEN,
    }
    with DockerContainer(INFLUXDB_IMAGE, env=env, ports=[8086]) as container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(8086)
        settings = InfluxSettings(
            influx_url=f"http://{host}:{port}",
            influx_token=SecretStr(CONTAINER_INFLUX_TOKEN),
            influx_org="fleetwatch",
        )
        wait_until("InfluxDB container", lambda: influx_ready(settings))
        yield settings


def _configured(variable: str, name: str) -> bool:
    """True when the environment names the service; else a container must be possible."""
    if variable in os.environ:
        return True
    if not docker_available():
        raise ServiceUnavailableError(
            f"{name}: {variable} is not set and no Docker engine answers for testcontainers; "
            f"{HOW_TO_START}"
        )
    return False


@contextmanager
def provide_postgres() -> Iterator[PostgresSettings]:
    """PostgreSQL from FLEETWATCH_DATABASE_URL, or a container."""
    if not _configured("FLEETWATCH_DATABASE_URL", "PostgreSQL"):
        with _postgres_container() as settings:
            yield settings
        return
    settings = PostgresSettings()
    _require(
        "PostgreSQL",
        "FLEETWATCH_DATABASE_URL",
        settings.database_url,
        lambda: postgres_ready(settings),
    )
    yield settings


@contextmanager
def provide_mqtt() -> Iterator[MqttSettings]:
    """The broker from FLEETWATCH_MQTT_HOST/PORT, or a container."""
    if not _configured("FLEETWATCH_MQTT_HOST", "The MQTT broker"):
        with _mosquitto_container() as settings:
            yield settings
        return
    settings = MqttSettings()
    where = f"{settings.mqtt_host}:{settings.mqtt_port}"
    _require("The MQTT broker", "FLEETWATCH_MQTT_HOST/PORT", where, lambda: mqtt_ready(settings))
    yield settings


@contextmanager
def provide_influx() -> Iterator[InfluxSettings]:
    """InfluxDB from FLEETWATCH_INFLUX_URL (and token/org), or a container."""
    if not _configured("FLEETWATCH_INFLUX_URL", "InfluxDB"):
        with _influx_container() as settings:
            yield settings
        return
    settings = InfluxSettings()
    _require(
        "InfluxDB", "FLEETWATCH_INFLUX_URL", settings.influx_url, lambda: influx_ready(settings)
    )
    yield settings
