"""Seed 003 devices over WebSocket, against the running API server with its device ingest:
real sockets (the ``websockets`` client), real PostgreSQL and InfluxDB."""

from __future__ import annotations

import asyncio
import json

from simulator.websocket import WsDevice
from tests.api.ws_fleet import MAX_FRAME, Fleet, until


async def test_every_message_type_is_stored_and_acknowledged(fleet: Fleet, cam: WsDevice) -> None:
    state = {"temperature": 31.5, "fps": 15.0, "streaming": True, "lens": "wide", "rssi": -60}
    ids = [
        await cam.status(state),
        await cam.heartbeat(),
        await cam.send("telemetry", metrics={"temperature": 35.0, "fps": 12.0}),
    ]
    await cam.wait_acked(ids)
    assert all("dead_letter" not in cam.acks[i] for i in ids), cam.acks
    snapshot = fleet.rows(
        "SELECT s.device_type, s.state_data FROM device_state_snapshots s "
        "JOIN devices d ON d.id = s.device_id WHERE d.hostname = 'cam-1'"
    )
    assert snapshot == [("ESP32-CAM", state)]
    status = fleet.rows(
        "SELECT s.is_online, c.event, c.details->>'via' FROM device_status s "
        "JOIN devices d ON d.id = s.device_id "
        "JOIN device_connection_log c ON c.device_id = d.id WHERE d.hostname = 'cam-1'"
    )
    assert status == [(True, "connected", "telemetry")]
    # The declared values went through the CDC: the stored reference holds the newest.
    reference = fleet.one(
        "SELECT c.values FROM device_cdc_state c JOIN devices d ON d.id = c.device_id "
        "WHERE d.hostname = 'cam-1'"
    )
    assert reference["temperature"] == 35.0
    assert reference["streaming"] is True
    assert "lens" not in reference
    # A command takes the same lifecycle as an MQTT device's: PENDING, SENT, COMPLETED.
    async with fleet.http("ana") as http:
        sent = await http.post(
            "/command",
            json={"kind": "diagnostic", "payload": {}, "target": {"hostnames": ["cam-1"]}},
        )
    assert sent.status_code == 201, sent.text
    await cam.wait_for("command", lambda: cam.commands)
    command = cam.commands[0]
    assert (command["command_name"], command["command_type"]) == ("diagnostic", "DIAGNOSTIC")
    await until(
        lambda: fleet.one("SELECT status FROM command_log") == "COMPLETED", "command completed"
    )
    assert fleet.one("SELECT response_data->>'ok' FROM command_log") == "yes"


async def test_disconnect_marks_offline_at_once_and_silence_times_out(fleet: Fleet) -> None:
    cam, board = fleet.device("cam-1"), fleet.device("board-1")
    await cam.connect()
    await board.connect()
    await cam.wait_acked([await cam.heartbeat()])
    await board.wait_acked([await board.heartbeat()])
    await cam.close()

    def events(name: str) -> list[str]:
        return [
            row[0]
            for row in fleet.rows(
                "SELECT c.event FROM device_connection_log c JOIN devices d ON d.id = c.device_id "
                "WHERE d.hostname = %s ORDER BY c.id",
                name,
            )
        ]

    await until(lambda: events("cam-1") == ["connected", "disconnected"], "cam-1 disconnected")
    assert (
        fleet.one(
            "SELECT s.is_online FROM device_status s JOIN devices d ON d.id = s.device_id "
            "WHERE d.hostname = 'cam-1'"
        )
        is False
    )
    # board-1 says nothing more: after the idle timeout (3 s here) the server closes it.
    assert await board.wait_closed(timeout_s=10) == 1001
    await until(lambda: events("board-1") == ["connected", "timeout"], "board-1 timed out")


async def test_a_reconnecting_device_resends_what_was_not_acknowledged(fleet: Fleet) -> None:
    cam = fleet.device("cam-1")
    await cam.connect()
    first = await cam.status({"temperature": 20.0})
    await cam.wait_acked([first])
    # Frames sent, then the connection is cut before any of their acks could arrive.
    pending = [await cam.status({"temperature": 20.0 + n}) for n in range(1, 4)]
    await cam.drop()
    await cam.connect(resend=True)
    await cam.wait_acked(pending)
    # A frame committed and acknowledged, sent again under its id (its ack was lost): it is
    # acknowledged again and not taken twice.
    again = json.dumps({"type": "status", "id": first, "state_data": {"temperature": 20.0}})
    del cam.acks[first]
    await cam.send_raw(again)
    await cam.wait_acked([first])
    assert fleet.one("SELECT count(*) FROM device_state_snapshots") == 4
    assert fleet.one("SELECT count(*) FROM device_message_ids") == 4
    # Whether the first send was committed before the cut or not: each is stored once.
    temperatures = [
        row[0]
        for row in fleet.rows(
            "SELECT (state_data->>'temperature')::float FROM device_state_snapshots ORDER BY id"
        )
    ]
    assert sorted(temperatures) == [20.0, 21.0, 22.0, 23.0]
    await cam.close()


async def test_a_device_using_another_devices_token_is_refused_and_audited(
    fleet: Fleet,
) -> None:
    impostor = WsDevice(fleet.url, "cam-1", fleet.device_tokens["board-1"], "ESP32-CAM")
    await impostor.connect(hello=False)
    assert await impostor.wait_closed() == 4403
    assert "another device" in impostor.errors[0]["error"]
    nobody = WsDevice(fleet.url, "cam-1", "fwd_" + "x" * 43, "ESP32-CAM", use_header=False)
    await nobody.connect(hello=False)
    assert await nobody.wait_closed() == 4401
    audit = fleet.rows(
        "SELECT level, device, details->>'credentials_of' FROM system_logs "
        "WHERE category = 'device' AND message LIKE 'refused%%' ORDER BY id"
    )
    assert audit == [("WARNING", "cam-1", "board-1"), ("WARNING", "cam-1", None)]
    assert fleet.one("SELECT count(*) FROM device_connection_log") == 0
    # The device's own token through the query string works.
    cam = WsDevice(fleet.url, "cam-1", fleet.device_tokens["cam-1"], "ESP32-CAM", use_header=False)
    await cam.connect()
    await cam.wait_acked([await cam.heartbeat()])
    await cam.close()


async def test_a_first_frame_of_another_device_type_is_refused(fleet: Fleet) -> None:
    liar = WsDevice(fleet.url, "cam-1", fleet.device_tokens["cam-1"], "ESP32")
    await liar.connect()
    assert await liar.wait_closed() == 4400
    assert "device_type 'ESP32-CAM'" in liar.errors[0]["error"]


async def test_bad_frames_are_dead_lettered_and_the_other_devices_go_on(fleet: Fleet) -> None:
    cam, board = fleet.device("cam-1"), fleet.device("board-1")
    await cam.connect()
    await board.connect()
    await cam.send_raw("{not json")
    unknown = await cam.send("selfie", quality=9)
    oversized = await cam.status({"blob": "x" * MAX_FRAME})
    wrong = await cam.send("telemetry", metrics={"no_such_metric": 1.0})
    fine = await cam.heartbeat(temperature=30.0)
    await cam.wait_acked([unknown, oversized, wrong, fine])
    assert cam.acks[unknown]["dead_letter"].startswith("malformed_json: unknown frame type")
    assert cam.acks[oversized]["dead_letter"].startswith("too_large")
    assert cam.acks[wrong]["dead_letter"].startswith("unknown_metric")
    assert "dead_letter" not in cam.acks[fine]
    await cam.wait_for("error", lambda: cam.errors)
    assert cam.errors[0]["error"].startswith("dead-lettered: malformed_json")
    letters = fleet.rows("SELECT topic, reason FROM dead_letters ORDER BY id")
    assert letters == [
        ("ws/cam-1/frame", "malformed_json"),
        ("ws/cam-1/frame", "malformed_json"),
        ("ws/cam-1/frame", "too_large"),
        ("ws/cam-1/frame", "unknown_metric"),
    ]
    # A flood: far past the rate, the excess is refused (not taken, to be resent) ...
    flood = [await cam.heartbeat() for _ in range(150)]
    await cam.wait_for("rate limit", lambda: any("rate_limited" in e["error"] for e in cam.errors))
    # ... while the other device is served as before.
    await board.wait_acked([await board.heartbeat(temperature=21.0)], timeout_s=5)
    await cam.wait_for("acks", lambda: len(cam.acks) >= 60)
    refused = [e for e in cam.errors if "rate_limited" in e["error"]]
    assert {e["id"] for e in refused} <= set(flood)
    assert len(refused) + sum(1 for i in flood if i in cam.acks) <= len(flood)
    await cam.close()
    await board.close()


async def test_a_command_to_every_connected_device_of_a_type_counts_its_successes(
    fleet: Fleet,
) -> None:
    """Seed 003's fan-out: the two connected ESP32s get it (the ESP32-CAM and the ESP32
    that never connected do not); one succeeds, one fails: ack_error, 1 of 2."""
    first = fleet.device("board-1", answer_commands="ack_success")
    second = fleet.device("board-2", answer_commands=None)
    camera = fleet.device("cam-1")
    for device in (first, second, camera):
        await device.connect()
        await device.wait_acked([await device.heartbeat()])
    async with fleet.http("ana") as http:
        sent = await http.post(
            "/command",
            json={
                "kind": "diagnostic",
                "payload": {},
                "target": {"device_type": "ESP32", "online": True},
            },
        )
        assert sent.status_code == 201, sent.text
        queued = sent.json()
        assert queued["target_device_count"] == 2
        command_id = queued["command_id"]
        summary = (await http.get(f"/commands/{command_id}")).json()
        assert (summary["status"], summary["device_type"]) == ("created", "ESP32")
        await second.wait_for("the command", lambda: second.commands)
        await second.answer(second.commands[0], "ack_error", error="lens cap on")
        await first.wait_for("the command", lambda: first.commands)

        async def finished() -> dict[str, object]:
            return dict((await http.get(f"/commands/{command_id}")).json())

        for _ in range(100):
            summary = await finished()
            if summary["status"] in ("ack_success", "ack_error"):
                break
            await asyncio.sleep(0.1)
    assert (summary["status"], summary["target_device_count"], summary["success_count"]) == (
        "ack_error",
        2,
        1,
    )
    assert summary["completed_at"] is not None
    assert camera.commands == []
    rows = {c["hostname"]: c for c in summary["commands"]["items"]}
    assert (rows["board-1"]["status"], rows["board-2"]["status"]) == ("COMPLETED", "FAILED")
    assert rows["board-2"]["error_message"] == "lens cap on"
    for device in (first, second, camera):
        await device.close()
