"""The HTTP API against real PostgreSQL through a running server: authentication, each
role's reads and actions, error bodies, limits, and the committed OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fleetwatch.api_cli import document
from fleetwatch.settings import ApiSettings, PostgresSettings
from tests.api.conftest import Api, serve

OPENAPI = Path(__file__).resolve().parents[2] / "api" / "openapi.json"


def _last_audit(db: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT level, username, category, message FROM system_logs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_every_request_needs_a_live_token(api: Api) -> None:
    """No token, a made-up one, or a revoked one: 401 with the error body and a challenge."""
    with api.client(None) as anonymous:
        answer = anonymous.get("/devices")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"]["code"] == "unauthorized"
    with api.client(None) as forger:
        answer = forger.get("/devices", headers={"Authorization": "Bearer fwt_" + "x" * 43})
    assert answer.status_code == 401
    assert _last_audit(api.db)[3].startswith("token refused")


def test_devices_filter_and_page(api: Api) -> None:
    """A viewer lists devices by zone and online, pages through them, and reads one."""
    with api.client("vic") as viewer:
        zone = viewer.get("/devices", params={"zone": 3}).json()
        online = viewer.get("/devices", params={"zone": 3, "online": True}).json()
        first = viewer.get("/devices", params={"limit": 2}).json()
        second = viewer.get("/devices", params={"limit": 2, "offset": 2}).json()
        one = viewer.get("/devices/ESG_ALARM_0001").json()
        missing = viewer.get("/devices/NOPE")
        history = viewer.get("/device-connection-history/ESG_ALARM_0002").json()
    assert [d["hostname"] for d in zone["items"]] == ["ESG_ALARM_0001", "ESG_ALARM_0002"]
    assert [d["hostname"] for d in online["items"]] == ["ESG_ALARM_0001"]
    names = [d["hostname"] for d in first["items"] + second["items"]]
    assert names == ["ESG_ALARM_0001", "ESG_ALARM_0002", "ESG_ALARM_0003"]
    assert (one["open_alarms"], one["zone"]) == (1, 3)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert [e["event"] for e in history] == ["connected"]


@pytest.mark.parametrize(("person", "status"), [("vic", 403), ("ana", 200)])
def test_acknowledging_an_alarm_needs_an_operator(api: Api, person: str, status: int) -> None:
    """A viewer's acknowledgement is refused (403, recorded); an operator's is stored."""
    with api.client(person) as client:
        (alarm,) = client.get("/alarms").json()["items"]
        answer = client.post(f"/alarms/{alarm['id']}/acknowledge", json={"note": "on it"})
    assert answer.status_code == status
    level, actor, category, _ = _last_audit(api.db)
    assert (actor, category) == (person, "alarm")
    if status == 403:
        assert "needs the operator role" in answer.json()["error"]["message"]
        assert level == "WARNING"
    else:
        assert answer.json() == {"changed": True}
        stored = api.db.execute("SELECT acknowledged_by, notes FROM alarm_events").fetchone()
        assert stored == ("ana", "on it")


def test_commands_follow_the_role(api: Api) -> None:
    """An operator queues a diagnostic for a zone (level 1, two devices) but not a reboot;
    an admin reboots and cancels; the command logs list them."""
    diagnostic = {"kind": "diagnostic", "payload": {"action": "ping"}, "target": {"zone": 3}}
    reboot = {"kind": "reboot", "payload": {}, "target": {"hostnames": ["ESG_ALARM_0003"]}}
    with api.client("ana") as operator, api.client("ada") as admin:
        sent = operator.post("/command", json=diagnostic)
        refused = operator.post("/command", json=reboot)
        rebooted = admin.post("/command", json=reboot)
        request_id = rebooted.json()["commands"][0]["request_id"]
        cancelled = admin.post("/commands/cancel", json={"request_ids": [request_id]})
        logs = operator.get("/command-logs", params={"command_type": "SYSTEM"}).json()
    assert sent.status_code == 201
    assert sent.json()["target_device_count"] == 2
    assert {c["auth_level"] for c in sent.json()["commands"]} == {1}
    assert refused.status_code == 403
    assert rebooted.json()["commands"][0]["auth_level"] == 2
    assert cancelled.json() == {"cancelled": [request_id]}
    assert [(c["request_id"], c["status"]) for c in logs["items"]] == [(request_id, "CANCELLED")]


def test_bad_requests_get_clear_errors(api: Api) -> None:
    """Unknown command kinds, bad payloads, no target, bad ids, bad paging: 422 with a
    message each, never a 500."""
    cases = [
        ("/command", {"kind": "explode", "target": {"zone": 3}}, "unknown command"),
        ("/command", {"kind": "reboot", "payload": {"delayMs": "soon"}, "target": {"zone": 3}},
         "invalid reboot payload"),
        ("/command", {"kind": "diagnostic", "target": {}}, "name devices"),
        ("/commands/cancel", {"request_ids": ["not-a-uuid"]}, "not a request id"),
        ("/command", {"kind": "diagnostic"}, "target"),
    ]  # fmt: skip
    with api.client("ada") as admin:
        for path, body, message in cases:
            answer = admin.post(path, json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert message in answer.json()["error"]["message"], answer.text
        paging = admin.get("/devices", params={"limit": 0})
        junk = admin.post(
            "/command", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert paging.status_code == 422
    assert "limit" in paging.json()["error"]["message"]
    assert junk.status_code == 422


def test_oversized_bodies_and_floods_are_refused(pg_settings: PostgresSettings, api: Api) -> None:
    """A body over the limit gets 413; a person over their rate gets 429 with Retry-After,
    while another person is still served."""
    settings = ApiSettings(api_rate_per_minute=5, api_max_body_bytes=2048)
    for url in serve(pg_settings, settings):
        limited = Api(url, api.tokens, api.db)
        with limited.client("ana") as ana, limited.client("bo") as bo:
            big = ana.post(
                "/command", content=b"x" * 5000, headers={"content-type": "application/json"}
            )
            answers = [ana.get("/devices").status_code for _ in range(6)]
            flooded = ana.get("/devices")
            other = bo.get("/devices")
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "too_large"
    assert answers.count(429) >= 1
    assert flooded.status_code == 429
    assert int(flooded.headers["retry-after"]) >= 1
    assert other.status_code == 200


def test_openapi_document_is_committed_and_current() -> None:
    """api/openapi.json is what the code serves: regenerate it with
    `fleetwatch api --openapi api/openapi.json` after changing the API."""
    assert json.loads(OPENAPI.read_text(encoding="utf-8")) == json.loads(json.dumps(document()))
