"""Background loops of ingest survive faults, say so in logs and metrics, and are reported
by /readyz and /healthz when one stops; a command that can never be sent is failed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings, RetentionSettings
from ingest.command_api import CommandApi
from ingest.commands import CommandSpec, CommandTiming
from ingest.contract import TopicKind
from ingest.pipeline import Totals
from ingest.service import IngestService
from stores.postgres.commands_store import TargetFilter
from tests.ingest.conftest import forget_session, start_ingest
from tests.ingest.test_health import get
from tests.support.devices import FakePanel
from tests.support.fake_device import FakeDevice, fake_device

PANEL = FakePanel(31)
TICK_S = 0.05
TIMING = CommandTiming(ack_timeout=timedelta(seconds=30))


class InjectedFault(RuntimeError):
    """The fault a test puts into one tick of a loop."""


def fail_once(original: Callable[..., Any], what: str) -> Callable[..., Any]:
    """``original``, except that its first call raises InjectedFault."""
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - stands in for anything
        nonlocal calls
        calls += 1
        if calls == 1:
            raise InjectedFault(f"fault injected into {what}")
        return original(*args, **kwargs)

    return wrapper


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - loop state has no event to wait on
            await asyncio.sleep(0.02)


@pytest.fixture
async def service(
    migrated_pg: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    ingest_client_id: str,
) -> AsyncIterator[IngestService]:
    """Ingest with every loop ticking fast (housekeeping included) and its HTTP endpoints."""
    retention = RetentionSettings().model_copy(update={"housekeeping_interval_s": 0.2})
    running, stop, task = await start_ingest(
        migrated_pg,
        mqtt_settings,
        influx_settings,
        ingest_client_id,
        retention,
        health_port=0,
        outbox_drain_interval_s=TICK_S,
        report_interval_s=TICK_S,
        command_tick_s=TICK_S,
        liveness_interval_s=TICK_S,
        gauges_interval_s=TICK_S,
        job_check_interval_s=TICK_S,
        rules_sweep_s=TICK_S,
        timing=TIMING,
    )
    try:
        yield running
    finally:
        stop.set()
        await task
        await forget_session(mqtt_settings, ingest_client_id)


def inject(service: IngestService, loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next tick of ``loop`` fail inside what the tick calls."""
    targets: dict[str, tuple[object, str]] = {
        "outbox": (service.pipeline, "drain_outbox"),
        "report": (Totals, "summary"),
        "dispatch": (service._dispatcher, "advance_timers"),
        "liveness": (service.pipeline, "sweep_silent"),
        "gauges": (service._store, "fleet_gauges"),
        "housekeeping": (service, "_purge"),
        "jobs": (service._store, "fail_silent_jobs"),
        "rules": (service._handler, "sweep_rules"),
    }
    owner, name = targets[loop]
    monkeypatch.setattr(owner, name, fail_once(getattr(owner, name), f"{loop}: {name}"))
    if loop == "outbox":
        service.pipeline.influx_backlog = True  # the drainer only runs with a backlog


@pytest.mark.parametrize(
    "loop",
    ["outbox", "report", "dispatch", "liveness", "gauges", "housekeeping", "jobs", "rules"],
)
async def test_loop_logs_counts_and_carries_on_after_a_fault(
    service: IngestService,
    loop: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unexpected exception in a tick is logged with its traceback and counted; the loop
    backs off and its next tick runs normally; /readyz stays ready."""
    state = service.loops.state(loop)
    caplog.set_level(logging.ERROR, logger="ingest.loops")
    inject(service, loop, monkeypatch)
    await until(lambda: state.errors == 1)
    failed_at = state.ticks
    await until(lambda: state.ticks > failed_at and state.failing == 0)
    assert state.running
    assert state.last_error is not None
    assert state.last_error.startswith("InjectedFault: fault injected into")
    records = [r for r in caplog.records if r.name == "ingest.loops" and loop in r.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is InjectedFault
    assert service.health is not None
    status, body = await asyncio.to_thread(get, service.health.port, "/metrics")
    assert status == 200
    assert f'fleetwatch_loop_errors_total{{kind="error",loop="{loop}"}} 1.0' in body.decode()
    assert f'fleetwatch_loop_running{{loop="{loop}"}} 1.0' in body.decode()
    status, body = await asyncio.to_thread(get, service.health.port, "/readyz")
    reply = json.loads(body)
    assert status == 200, reply
    assert reply["loops"][loop]["running"] is True
    assert reply["loops"][loop]["errors"] == 1


async def test_a_stopped_loop_fails_readiness_and_liveness(service: IngestService) -> None:
    """A loop that is no longer running turns /readyz and /healthz to 503 and names it."""
    assert service.health is not None
    port = service.health.port
    assert (await asyncio.to_thread(get, port, "/readyz"))[0] == 200
    task = service.loops.state("dispatch").task
    assert task is not None
    task.cancel()
    await until(task.done)
    status, body = await asyncio.to_thread(get, port, "/readyz")
    reply = json.loads(body)
    assert status == 503
    assert reply["checks"]["loops"] is False
    assert reply["loops"]["dispatch"]["running"] is False
    assert reply["loops"]["liveness"]["running"] is True
    status, body = await asyncio.to_thread(get, port, "/healthz")
    assert (status, json.loads(body)["loops_stopped"]) == (503, ["dispatch"])
    _, metrics = await asyncio.to_thread(get, port, "/metrics")
    assert 'fleetwatch_loop_running{loop="dispatch"} 0.0' in metrics.decode()


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param({"reboot": {"delayMs": "soon"}}, id="bad-value"),
        pytest.param({"self_destruct": {}}, id="unknown-command"),
        pytest.param({"reboot": {}, "ping": {}}, id="two-payloads"),
        pytest.param([1, 2], id="not-an-object"),
        pytest.param(None, id="null"),
    ],
)
async def test_command_that_cannot_be_encoded_is_failed_and_the_rest_are_sent(
    service: IngestService,
    migrated_pg: PostgresSettings,
    db: psycopg.Connection[Any],
    mqtt_settings: MqttSettings,
    stored: object,
) -> None:
    """A command_log row whose payload no longer encodes is FAILED with the reason; the
    dispatcher goes on sending the commands queued after it."""
    async with fake_device(mqtt_settings, PANEL) as device:
        await device.send(TopicKind.STATUS, PANEL.status())
        await service.wait_processed(1)
        sync = await device.next_command()  # the device-id sync, sent by the running loop
        assert sync.WhichOneof("payload") == "set_device_id"
        broken, good = (queue(migrated_pg) for _ in range(2))
        # A row edited by hand (or by an older version) that no longer decodes.
        value = None if stored is None else Jsonb(stored)
        db.execute(
            "UPDATE command_log SET command_data = %s WHERE request_id = %s", [value, broken]
        )
        envelope = await next_reboot(device)
        assert envelope.request_id == good

    def status(request_id: str) -> tuple[str, str | None, bool]:
        row = db.execute(
            "SELECT status::text, error_message, failed_at IS NOT NULL FROM command_log "
            "WHERE request_id = %s",
            [request_id],
        ).fetchone()
        assert row is not None
        return row[0], row[1], row[2]

    # The device may hear the good command before the dispatcher's transaction commits.
    await until(lambda: status(good)[0] == "SENT")
    state, error, failed_at = status(broken)
    assert (state, failed_at) == ("FAILED", True)
    assert error is not None
    assert error.startswith("cannot be sent: ")
    dispatch = service.loops.state("dispatch")
    assert (dispatch.errors, dispatch.running) == (0, True)


def queue(pg: PostgresSettings) -> str:
    rows = CommandApi(pg, TIMING).send(
        CommandSpec("reboot", {"delayMs": 100}),
        TargetFilter(hostnames=[PANEL.hostname]),
        caller_level=2,
        initiated_by="test",
    )
    assert len(rows) == 1
    return rows[0].request_id


async def next_reboot(device: FakeDevice) -> Any:  # noqa: ANN401 - a protobuf message
    """The next reboot command the device receives (a resent sync is skipped)."""
    while (envelope := await device.next_command()).WhichOneof("payload") != "reboot":
        pass
    return envelope
