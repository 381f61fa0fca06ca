"""Seed 003's commands over the HTTP API, against real PostgreSQL: one request fans out to
many devices under one command_id, whose status is read back over all of them; the command
logs filter by declared device type or kind and by request."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.api.conftest import Api
from tests.api.helpers import add_boards, last_audit

BOARDS = {
    "esp-1": ("ESP32", True),
    "esp-2": ("ESP32", True),
    "esp-3": ("ESP32", False),
    "s3-1": ("ESP32-S3", True),
}
PING = {"kind": "diagnostic", "payload": {"action": "ping"}}


@pytest.fixture
def boards(api: Api) -> dict[str, int]:
    """Four boards beside the conftest's panels: three ESP32 (one offline), one ESP32-S3."""
    return add_boards(api.db, BOARDS)


def _set(db: psycopg.Connection[Any], hostname: str, status: str, column: str | None) -> None:
    """Move the device's command on as the dispatcher and the device would."""
    stamp = f", {column} = now()" if column else ""
    db.execute(
        f"UPDATE command_log c SET status = %s{stamp} FROM devices d "
        "WHERE d.id = c.device_id AND d.hostname = %s",
        [status, hostname],
    )


@pytest.mark.usefixtures("boards")
def test_a_command_to_every_connected_device_of_a_type(api: Api) -> None:
    """device_type with online: the type's connected boards only, one command_id for all,
    and seed 003's command log read back by it (created, nothing sent yet)."""
    with api.client("ana") as operator, api.client("vic") as viewer:
        sent = operator.post("/command", json=PING | {"target": {"device_type": "ESP32",
                                                                 "online": True}})  # fmt: skip
        command_id = sent.json()["command_id"]
        shown = viewer.get(f"/commands/{command_id}")
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["target_device_count"] == 2
    assert sorted(c["hostname"] for c in body["commands"]) == ["esp-1", "esp-2"]
    assert {c["command_id"] for c in body["commands"]} == {str(uuid.UUID(command_id))}
    assert shown.status_code == 200
    log = shown.json()
    assert {k: log[k] for k in ("command_id", "device_type", "command_name", "payload",
                                "status", "target_device_count", "success_count",
                                "executed_at", "completed_at")} == {
        "command_id": command_id, "device_type": "ESP32", "command_name": "diagnostic",
        "payload": {"action": "ping"}, "status": "created", "target_device_count": 2,
        "success_count": 0, "executed_at": None, "completed_at": None,
    }  # fmt: skip
    assert sorted(c["hostname"] for c in log["commands"]["items"]) == ["esp-1", "esp-2"]
    audit: Any = api.db.execute(
        "SELECT details->>'command_id' FROM system_logs WHERE category = 'command'"
    ).fetchone()
    assert audit == (command_id,)


def test_the_status_follows_every_device(api: Api) -> None:
    """created → sent (one on its way, or one done while the other waits) → ack_error when
    one failed, ack_success when all completed; executed_at is the first send, completed_at
    the last finish; a request to mixed devices has no device_type."""
    with api.client("ana") as operator:
        sent = operator.post("/command", json=PING | {"target": {"zone": 3}}).json()

        def status() -> dict[str, Any]:
            answer = operator.get(f"/commands/{sent['command_id']}", params={"limit": 1})
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        created = status()
        _set(api.db, "ESG_ALARM_0001", "SENT", "sent_at")
        on_its_way = status()
        _set(api.db, "ESG_ALARM_0001", "COMPLETED", "completed_at")
        half_done = status()
        _set(api.db, "ESG_ALARM_0002", "FAILED", "failed_at")
        failed = status()
        _set(api.db, "ESG_ALARM_0002", "COMPLETED", "completed_at")
        succeeded = status()
    assert created["status"] == "created"
    assert created["device_type"] is None  # panels have no declared type
    assert (on_its_way["status"], on_its_way["completed_at"]) == ("sent", None)
    assert on_its_way["executed_at"] is not None
    assert (half_done["status"], half_done["success_count"]) == ("sent", 1)
    assert (failed["status"], failed["success_count"]) == ("ack_error", 1)
    assert failed["completed_at"] is not None
    assert (succeeded["status"], succeeded["success_count"]) == ("ack_success", 2)
    assert succeeded["completed_at"] >= failed["completed_at"]
    assert len(succeeded["commands"]["items"]) == 1  # a page of the devices' commands
    assert succeeded["target_device_count"] == 2


@pytest.mark.usefixtures("boards")
def test_command_logs_filter_by_device_type_kind_and_request(api: Api) -> None:
    """device_type matches a declared type's name or a kind; command_id one request; each
    row names its request."""
    with api.client("ana") as operator:
        first = operator.post("/command", json=PING | {"target": {"device_type": "ESP32-S3"}})
        operator.post("/command", json=PING | {"target": {"hostnames": ["ESG_ALARM_0001"]}})
        by_type = operator.get("/command-logs", params={"device_type": "ESP32-S3"}).json()
        by_kind = operator.get("/command-logs", params={"device_type": "panel"}).json()
        by_request = operator.get(
            "/command-logs", params={"command_id": first.json()["command_id"]}
        ).json()
        every = operator.get("/command-logs").json()
    assert [c["hostname"] for c in by_type["items"]] == ["s3-1"]
    assert [c["hostname"] for c in by_kind["items"]] == ["ESG_ALARM_0001"]
    assert [c["hostname"] for c in by_request["items"]] == ["s3-1"]
    assert all(c["command_id"] for c in every["items"])
    assert len({c["command_id"] for c in every["items"]}) == 2


@pytest.mark.usefixtures("boards")
@pytest.mark.parametrize(("person", "status"), [("vic", 403), ("ana", 403), ("ada", 201)])
def test_rebooting_a_device_type_needs_an_admin(api: Api, person: str, status: int) -> None:
    """A reboot (SYSTEM) to every ESP32 is an admin's; a viewer and an operator are refused,
    recorded, and nothing is queued."""
    reboot = {"kind": "reboot", "payload": {}, "target": {"device_type": "ESP32"}}
    with api.client(person) as client:
        answer = client.post("/command", json=reboot)
    assert answer.status_code == status, answer.text
    level, actor, category, _ = last_audit(api.db)
    assert (actor, category) == (person, "command")
    queued: Any = api.db.execute("SELECT count(*) FROM command_log").fetchone()
    if status == 201:
        assert (answer.json()["target_device_count"], queued[0], level) == (3, 3, "INFO")
    else:
        assert answer.json()["error"]["code"] == "forbidden"
        assert (queued[0], level) == (0, "WARNING")


def test_an_unknown_command_or_device_type(api: Api) -> None:
    """An unknown command_id is 404, a malformed one 422; a device type without devices
    matches nothing (422, as any target that matches no device)."""
    with api.client("vic") as viewer, api.client("ana") as operator:
        unknown = viewer.get(f"/commands/{uuid.uuid4()}")
        malformed = viewer.get("/commands/not-a-uuid")
        nobody = operator.post("/command", json=PING | {"target": {"device_type": "ESP32"}})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert malformed.status_code == 422
    assert nobody.status_code == 422
    assert "no active device matches" in nobody.json()["error"]["message"]
