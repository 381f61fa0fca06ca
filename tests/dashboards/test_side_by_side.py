"""An ESP32-CAM over WebSocket and an alarm panel over MQTT, side by side: both take a command
through the same lifecycle, both are listed by the API, and the dashboard (in headless
Chromium) shows them in one fleet and the camera's reported states on its page.

Everything is real: ``fleetwatch ingest``'s service on the broker, ``fleetwatch api`` with
its WebSocket devices, the dashboard process, PostgreSQL and InfluxDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
from playwright.sync_api import expect, sync_playwright

from access import sign_in
from access.devices import issue_token
from access.tokens import new_token
from api.devices import DeviceIngest
from fleetwatch.settings import ApiSettings, InfluxSettings, MqttSettings, PostgresSettings
from ingest.contract import TopicKind
from ingest.kinds import builtin_types
from ingest.service import IngestOptions
from simulator.websocket import WsDevice
from stores.postgres import device_types, people_store
from tests.api.conftest import serve
from tests.conftest import unique_name
from tests.dashboards.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    _open,
    _screenshot,
    _sign_in,
    _wait_rendered,
)
from tests.ingest.conftest import forget_session, start_ingest
from tests.support.dashboard_server import serve_dashboard
from tests.support.devices import FakePanel
from tests.support.fake_device import FakeDevice, fake_device
from tests.support.people import password_of

PANEL = FakePanel(77)
CAMERA = "cam-77"


async def answer_everything(panel: FakeDevice) -> None:
    """The panel acknowledges and completes every command it gets (its id sync too)."""
    while True:
        envelope = await panel.inbox.get()
        await panel.respond(envelope, "ACKNOWLEDGED")
        await panel.respond(envelope, "COMPLETED", data={"done": "yes"})


def statuses(db: psycopg.Connection[Any], kind: str) -> list[tuple[str, str]]:
    """(hostname, status) of the ``kind`` commands."""
    return sorted(
        db.execute(
            "SELECT d.hostname, c.status::text FROM command_log c "
            "JOIN devices d ON d.id = c.device_id WHERE c.command_data ? %s",
            [kind],
        ).fetchall()
    )


def look_in_a_browser(url: str, screenshots: str) -> None:
    """The Fleet page broken down by transport, then the camera's page."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(20_000)
            _sign_in(page, url, "vic", 30_000)
            page.get_by_test_id("stButtonGroup").get_by_text("Transport", exact=True).click()
            _wait_rendered(page, "Fleet", 20_000)
            chart = page.get_by_test_id("stVegaLiteChart").first
            for transport in ("websocket", "mqtt"):
                expect(chart.get_by_text(transport, exact=True).first).to_be_visible()
            _screenshot(page, f"{screenshots}-fleet")
            _open(page, "Device", 20_000)
            picker = page.get_by_test_id("stMain").get_by_test_id("stSelectbox").first
            picker.click()
            picker.locator("input").fill(CAMERA)
            page.keyboard.press("Enter")
            _wait_rendered(page, "Device", 20_000)
            expect(page.get_by_role("heading", name="Reported states")).to_be_visible()
            expect(page.get_by_text("ESP32-CAM").first).to_be_visible()
            # The grid draws its cells on a canvas: an empty one says so in the page's text.
            snapshots = page.get_by_test_id("stDataFrame").last
            expect(snapshots).to_contain_text("state_data")
            expect(snapshots).not_to_contain_text("empty")
            _screenshot(page, f"{screenshots}-camera")
        finally:
            browser.close()


async def test_a_websocket_camera_and_an_mqtt_panel_side_by_side(
    dashboard_env: datetime,
    pg_settings: PostgresSettings,
    mqtt_settings: MqttSettings,
    influx_settings: InfluxSettings,
    tmp_path: Path,
) -> None:
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as db:
        builtin_types.install(db)
        type_id = device_types.by_name(db, ["ESP32-CAM"])["ESP32-CAM"].id
        assert type_id is not None
        device_types.add_device(db, "telemetry", CAMERA, type_id)
        ada = sign_in(db, "ada", password_of("ada"), source="test")
        token = issue_token(db, ada, CAMERA)
        operator = sign_in(db, "ana", password_of("ana"), source="test")
        assert operator.user_id is not None
        client_id = unique_name("ingest")
        service, stop, task = await start_ingest(
            pg_settings, mqtt_settings, influx_settings, client_id, command_tick_s=0.2
        )
        devices = DeviceIngest(
            influx_settings,
            IngestOptions(fleet_loops=False, batch_wait_s=0.02, command_tick_s=0.2),
        )
        try:
            async with fake_device(mqtt_settings, PANEL) as panel:
                answering = asyncio.create_task(answer_everything(panel))
                await panel.send(TopicKind.STATUS, PANEL.status())
                await panel.send(TopicKind.HEARTBEAT, PANEL.heartbeat())
                for url in serve(pg_settings, ApiSettings(), devices):
                    camera = WsDevice(url, CAMERA, token, "ESP32-CAM")
                    await camera.connect()
                    await camera.wait_acked(
                        [
                            await camera.status(
                                {"temperature": 41.0, "fps": 15.0, "lens": "OV2640"}
                            ),
                            await camera.heartbeat(temperature=41.5, streaming=True),
                        ]
                    )
                    # The API lists both, and one request commands both.
                    person_token = _person_token(db, operator.user_id)
                    headers = {"Authorization": f"Bearer {person_token}"}
                    async with httpx.AsyncClient(base_url=url, headers=headers) as http:
                        listed = (await http.get("/devices", params={"limit": 500})).json()
                        kinds = {d["hostname"]: d["kind"] for d in listed["items"]}
                        assert kinds[CAMERA] == "telemetry"
                        assert kinds[PANEL.hostname] == "panel"
                        sent = await http.post(
                            "/command",
                            json={
                                "kind": "diagnostic",
                                "payload": {},
                                "target": {"hostnames": [CAMERA, PANEL.hostname]},
                            },
                        )
                        assert sent.status_code == 201, sent.text
                    done = sorted([(CAMERA, "COMPLETED"), (PANEL.hostname, "COMPLETED")])
                    for _ in range(200):
                        if statuses(db, "diagnostic") == done:
                            break
                        await asyncio.sleep(0.1)
                    assert statuses(db, "diagnostic") == done
                    await asyncio.to_thread(_browse, tmp_path)
                    await camera.close()
                answering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await answering
        finally:
            stop.set()
            await task
            await forget_session(mqtt_settings, client_id)
    assert service.failure is None


def _person_token(db: psycopg.Connection[Any], user_id: UUID) -> str:
    """A fresh personal API token of the person ``user_id``."""
    made = new_token()
    people_store.add_token(
        db, user_id, "side-by-side", prefix=made.prefix, token_hash=made.digest,
        expires_at=datetime.now().astimezone() + timedelta(hours=1),
    )  # fmt: skip
    return made.secret


def _browse(tmp_path: Path) -> None:
    with serve_dashboard(os.environ, tmp_path / "dashboard.log") as url:
        look_in_a_browser(url, "side-by-side")
