"""Health, readiness and metrics endpoints of a running ingest, against real services."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings
from ingest.contract import TopicKind
from ingest.service import IngestService
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.devices import FakePanel, Publisher

PANEL = FakePanel(21)


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
async def served(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,
) -> AsyncIterator[IngestService]:
    """Ingest with its HTTP endpoints on a free port."""
    service, stop, task = await start_ingest(
        migrated_pg, mqtt_settings, influx_settings, ingest_client_id, health_port=0
    )
    try:
        yield service
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, ingest_client_id)


async def test_health_and_readiness(served: IngestService) -> None:
    """/healthz and /readyz answer 200 with every readiness check passing."""
    assert served.health is not None
    port = served.health.port
    status, body = await asyncio.to_thread(get, port, "/healthz")
    assert (status, json.loads(body)["ok"]) == (200, True)
    status, body = await asyncio.to_thread(get, port, "/readyz")
    checks = json.loads(body)["checks"]
    assert status == 200, checks
    assert checks == {
        "broker": True,
        "schema": True,
        "postgresql": True,
        "influxdb": True,
        "accepting": True,
        "loops": True,
    }
    loops = json.loads(body)["loops"]
    assert set(loops) == {
        "collector",
        "outbox",
        "report",
        "dispatch",
        "liveness",
        "gauges",
        "jobs",
        "rules",
    }
    assert all(state["running"] for state in loops.values())
    assert (await asyncio.to_thread(get, port, "/nope"))[0] == 404


async def test_metrics_count_messages_and_dead_letters(
    served: IngestService, device: Publisher
) -> None:
    """/metrics reports messages by kind, dead letters by reason and CDC outcomes."""
    await device.send(PANEL, TopicKind.STATUS, PANEL.status())
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat())
    await device.send(PANEL, TopicKind.HEARTBEAT, PANEL.heartbeat())
    await device.raw(f"{served.topic_prefix}/{PANEL.hostname}/heartbeat", b"\xff")
    await served.wait_processed(4)
    assert served.health is not None
    status, body = await asyncio.to_thread(get, served.health.port, "/metrics")
    text = body.decode()
    assert status == 200
    assert 'fleetwatch_messages_total{kind="heartbeat"} 2.0' in text
    assert 'fleetwatch_messages_total{kind="status"} 1.0' in text
    assert 'fleetwatch_dead_letters_total{reason="undecodable"} 1.0' in text
    assert 'fleetwatch_cdc_heartbeats_total{outcome="written"} 1.0' in text
    assert 'fleetwatch_cdc_heartbeats_total{outcome="skipped"} 1.0' in text
    assert "fleetwatch_batch_seconds_bucket" in text


async def test_a_taken_health_port_is_named_with_the_fix() -> None:
    """Another process on the port: a clear error naming it and the setting, no traceback."""
    from ingest.health import HealthPortError, HealthServer

    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(taken.sockets[0].getsockname()[1])
    try:
        server = HealthServer({}, "127.0.0.1", port)
        with pytest.raises(HealthPortError, match=rf"127\.0\.0\.1:{port}.*FLEETWATCH_HEALTH_PORT"):
            await server.start()
    finally:
        taken.close()
        await taken.wait_closed()
