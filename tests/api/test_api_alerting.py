"""Rules and silences over the HTTP API, against real PostgreSQL: everyone lists them, an
operator changes them through ``access.actions`` (checked, audited), a viewer is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.helpers import last_audit

HOT = {
    "name": "Zone 3 too hot",
    "kind": "panel",
    "metric": "temperature",
    "operator": "gt",
    "warning": 30,
    "critical": 35,
    "scope": "zone",
    "scope_value": "3",
    "actions": [{"template": "operators", "recipients": [
        {"type": "email", "address": "ops@example.com"}]}],
}  # fmt: skip


def test_everyone_lists_rules_with_filters_and_pages(api: Api) -> None:
    """A viewer pages through the built-in rules by name and filters them."""
    with api.client("vic") as viewer:
        first = viewer.get("/rules", params={"limit": 2}).json()
        rest = viewer.get("/rules", params={"limit": 1000, "offset": 2}).json()
        offline = viewer.get("/rules", params={"kind": "device"}).json()
        disabled = viewer.get("/rules", params={"enabled": False}).json()
        one = viewer.get("/rules/Device offline")
        missing = viewer.get("/rules/No such rule")
    names = [r["name"] for r in first["items"] + rest["items"]]
    assert names == sorted(names)
    assert len(names) == len(set(names)) > 2
    assert [r["name"] for r in offline["items"]] == ["Device offline"]
    assert offline["items"][0]["condition"].startswith("device.online eq 0")
    assert offline["items"][0]["builtin"] is True
    assert disabled["items"] == []
    assert one.json()["for_seconds"] == 600
    assert missing.status_code == 404


@pytest.mark.parametrize(("person", "status"), [("vic", 403), ("ana", 201)])
def test_creating_a_rule_needs_an_operator(api: Api, person: str, status: int) -> None:
    """An operator's rule is checked, stored and audited; a viewer's is refused, recorded."""
    with api.client(person) as client:
        answer = client.post("/rules", json=HOT)
    assert answer.status_code == status, answer.text
    level, actor, category, message = last_audit(api.db)
    assert (actor, category) == (person, "rule")
    stored: Any = api.db.execute("SELECT count(*) FROM rules WHERE name = %s", [HOT["name"]])
    if status == 403:
        assert level == "WARNING"
        assert stored.fetchone() == (0,)
        return
    rule = answer.json()
    assert (level, message) == ("INFO", "add rule Zone 3 too hot")
    assert rule["condition"] == "panel.temperature gt 30 (warning), 35 (critical)"
    assert (rule["updated_by"], rule["enabled"], rule["builtin"]) == ("ana", True, False)
    assert rule["actions"][0]["recipients"] == [
        {"type": "email", "address": "ops@example.com", "name": ""}
    ]
    assert stored.fetchone() == (1,)


def test_rules_that_cannot_work_are_refused(api: Api) -> None:
    """A taken name is 409; an unknown metric, a missing template or a bad recipient 422 with
    the reason; replacing a rule that does not exist 404."""
    cases = [
        (HOT | {"metric": "pressure"}, 422, "panel has no metric 'pressure'"),
        (HOT | {"actions": [{"template": "nobody"}]}, 422, "no notification template nobody"),
        (HOT | {"actions": [{"template": "operators", "recipients": [
            {"type": "sms", "address": "call me"}]}]}, 422, "'call me'"),
        (HOT | {"warning": None, "critical": None}, 422, "give a warning or a critical"),
        (HOT | {"name": "Device offline"}, 409, "exists already"),
    ]  # fmt: skip
    with api.client("ana") as operator:
        for body, status, message in cases:
            answer = operator.post("/rules", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert message in answer.json()["error"]["message"], answer.text
        missing = operator.put("/rules/No such rule", json=HOT)
    assert missing.status_code == 404


def test_an_operator_edits_renames_disables_and_enables_a_rule(api: Api) -> None:
    """PUT replaces the rule whole (here renamed, warmer; a rule as read goes back as it is);
    disable and enable answer with the stored rule; a viewer may do neither."""
    with api.client("ana") as operator, api.client("vic") as viewer:
        operator.post("/rules", json=HOT)
        edited = operator.put(
            f"/rules/{HOT['name']}", json=HOT | {"name": "Zone 3 hot", "warning": 32}
        )
        refused = viewer.post("/rules/Zone 3 hot/disable")
        disabled = operator.post("/rules/Zone 3 hot/disable")
        listed = viewer.get("/rules", params={"enabled": False}).json()
        enabled = operator.post("/rules/Zone 3 hot/enable")
        sent_back = operator.put("/rules/Zone 3 hot", json=enabled.json())  # as read
        gone = operator.post("/rules/Zone 3 too hot/enable")
    assert edited.status_code == 200, edited.text
    assert (edited.json()["name"], edited.json()["warning"]) == ("Zone 3 hot", 32)
    assert refused.status_code == 403
    assert disabled.json()["enabled"] is False
    assert [r["name"] for r in listed["items"]] == ["Zone 3 hot"]
    assert enabled.json()["enabled"] is True
    assert sent_back.status_code == 200, sent_back.text
    assert sent_back.json()["actions"] == enabled.json()["actions"]
    assert gone.status_code == 404
    # What did not happen leaves no row: the audit is written in the action's transaction.
    assert last_audit(api.db)[1:] == ("ana", "rule", "edit rule Zone 3 hot")


def test_an_operator_silences_a_device_and_ends_it(api: Api) -> None:
    """A maintenance window on a device, weekends at night: stored as asked, listed for a
    viewer, ended by the operator (then listed only among all), not twice."""
    body = {"scope_type": "device", "scope_value": "ESG_ALARM_0001", "minutes": 90,
            "weekdays": ["sun", "sat"], "window_start": "22:00:00", "window_end": "06:00:00",
            "on_end": "drop", "reason": "firmware upgrade"}  # fmt: skip
    with api.client("ana") as operator, api.client("vic") as viewer:
        added = operator.post("/silences", json=body)
        silence_id = added.json()["id"]
        current = viewer.get("/silences").json()
        refused = viewer.post(f"/silences/{silence_id}/end")
        ended = operator.post(f"/silences/{silence_id}/end")
        after = viewer.get("/silences").json()
        every = viewer.get("/silences", params={"current": False, "scope_type": "device"}).json()
        again = operator.post(f"/silences/{silence_id}/end")
    assert added.status_code == 201, added.text
    silence = added.json()
    assert silence["weekdays"] == ["sat", "sun"]
    assert (silence["window_start"], silence["window_end"]) == ("22:00:00", "06:00:00")
    assert (silence["on_end"], silence["created_by"], silence["held"]) == ("drop", "ana", 0)
    starts = datetime.fromisoformat(silence["starts_at"])
    assert datetime.fromisoformat(silence["ends_at"]) - starts == timedelta(minutes=90)
    assert [s["id"] for s in current["items"]] == [silence_id]
    assert refused.status_code == 403
    assert ended.status_code == 200, ended.text
    assert ended.json()["ended_by"] == "ana"
    assert datetime.fromisoformat(ended.json()["ends_at"]) <= datetime.now(UTC)
    assert after["items"] == []
    assert [s["id"] for s in every["items"]] == [silence_id]
    assert again.status_code == 404
    assert last_audit(api.db)[1:] == ("ana", "silence", f"end silence {silence_id}")


def test_silences_that_cannot_be_are_refused(api: Api) -> None:
    """Unknown devices and rules are 404; a silence over already, without an end, with two
    ends, half a window or a zone that is not a number is 422; a viewer's is 403."""
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    base = {"scope_type": "zone", "scope_value": "3"}
    cases = [
        ({"scope_type": "device", "scope_value": "NOPE", "minutes": 5}, 404, "no device"),
        ({"scope_type": "rule", "scope_value": "NOPE", "minutes": 5}, 404, "no rule"),
        (base | {"ends_at": past}, 422, "over already"),
        (base | {"starts_at": soon, "ends_at": soon}, 422, "ends after it starts"),
        (base, 422, "give ends_at or minutes"),
        (base | {"minutes": 5, "ends_at": soon}, 422, "give ends_at or minutes"),
        (base | {"minutes": 5, "window_start": "22:00"}, 422, "a start and an end"),
        (base | {"minutes": 5, "scope_value": "north"}, 422, "a zone is a number"),
        (base | {"ends_at": "2030-01-01T00:00:00"}, 422, "timezone"),
    ]
    with api.client("ana") as operator:
        for body, status, message in cases:
            answer = operator.post("/silences", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert message in answer.json()["error"]["message"], (body, answer.text)
    with api.client("vic") as viewer:
        refused = viewer.post("/silences", json=base | {"minutes": 5})
    assert refused.status_code == 403
    assert last_audit(api.db)[:3] == ("WARNING", "vic", "silence")
