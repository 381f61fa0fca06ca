"""Who may do what on the dashboard, through Streamlit's AppTest against the real stores:
signing in, each role's actions allowed or refused (refusals recorded), and a viewer's
crafted click on a control it is shown disabled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.session import SESSION_KEY
from fleetwatch.dashboard_cli import APP
from fleetwatch.settings import PostgresSettings
from tests.dashboards.signin import TIMEOUT_S, sign_in, signed_in_app
from tests.support.people import password_of

pytestmark = pytest.mark.usefixtures("dashboard_env")


@pytest.fixture
def db(pg_settings: PostgresSettings) -> Iterator[psycopg.Connection[Any]]:
    """The owner's view of the dashboard's database, to check what actions wrote."""
    with psycopg.connect(str(pg_settings.database_url), autocommit=True) as conn:
        yield conn


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _last_audit(db: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT level, username, category, message FROM system_logs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return tuple(row)


def _page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _refused_click(at: AppTest, key: str) -> AppTest:
    """Click a control the page marks as not the person's to use."""
    button = at.button(key=key)
    assert "may not do this" in button.help
    button.click()
    return at.run()


def _pick_alarm(at: AppTest) -> None:
    item = at.selectbox(key="events_item")
    (alarm,) = [o for o in item.options if o.startswith("alarm ")]
    item.set_value(alarm)


def test_every_page_needs_a_sign_in(db: psycopg.Connection[Any]) -> None:
    """Unsigned, the app shows only the sign-in form; a wrong password is refused without
    saying which half was wrong, and recorded with no password in the record."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert [t.value for t in at.title] == ["fleetwatch"]
    assert not at.metric  # no page ran
    at = sign_in(at, "ana", "not-anas-password")
    assert _errors(at) == ["wrong username or password"]
    assert _last_audit(db) == ("WARNING", "ana", "auth", "sign-in failed: wrong password")
    dump = str(db.execute("SELECT * FROM system_logs").fetchall())
    assert "not-anas-password" not in dump
    at = sign_in(at, "ana")
    assert at.title[0].value == "Fleet"
    assert _last_audit(db)[:4] == ("INFO", "ana", "auth", "signed in")


def test_lock_out_holds_in_the_dashboard(db: psycopg.Connection[Any]) -> None:
    """After repeated failures even the right password is refused for now."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    for attempt in range(4):
        at = sign_in(at, "vic", f"wrong-guess-{attempt}")
    at = sign_in(at, "vic")
    assert any("too many failed sign-ins" in e for e in _errors(at))
    assert not at.metric
    assert _last_audit(db)[3] == "sign-in refused: too many failures"


def test_viewer_reads_but_every_action_is_refused(db: psycopg.Connection[Any]) -> None:
    """A viewer's controls say they are not theirs; a click is refused with the reason and
    an audit row, and nothing changes."""
    at = _page(signed_in_app("vic"), "events")
    _pick_alarm(at)
    _refused_click(at, "FormSubmitter:events_attention-Acknowledge")
    assert any("vic is a viewer and may not acknowledge alarm" in e for e in _errors(at))
    assert _last_audit(db)[:3] == ("WARNING", "vic", "alarm")
    assert db.execute("SELECT count(*) FROM alarm_events WHERE acknowledged").fetchone() == (0,)

    at = _page(at, "commands")
    at.selectbox(key="commands_kind").set_value("diagnostic")
    at.text_area(key="commands_payload").input('{"action": "ping"}')
    at.multiselect(key="commands_devices").set_value(["ESG_ALARM_0001"])
    _refused_click(at, "FormSubmitter:commands_command-Send")
    assert any("needs the operator role" in e for e in _errors(at))
    assert db.execute("SELECT count(*) FROM command_log WHERE initiated_by = 'vic'").fetchone() == (
        0,
    )
    assert _last_audit(db)[:3] == ("WARNING", "vic", "command")


@pytest.mark.parametrize(
    ("page", "what"), [("audit", "read the audit trail"), ("users", "manage users")]
)
def test_admin_pages_are_neither_offered_nor_reachable(
    db: psycopg.Connection[Any], page: str, what: str
) -> None:
    """An operator is not offered Audit or Users; run directly with the operator's session,
    the page itself refuses, says why and records it."""
    at = signed_in_app("ana")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"app_pages/{page}.py").run()
    direct = AppTest.from_file(
        str(APP.parent / "app_pages" / f"{page}.py"), default_timeout=TIMEOUT_S
    )
    direct.session_state[SESSION_KEY] = at.session_state[SESSION_KEY]
    direct.run()
    assert _errors(direct) == [f"ana is an operator and may not {what}: that needs the admin role"]
    assert not direct.dataframe
    assert _last_audit(db) == ("WARNING", "ana", "page", f"refused: {what}")


def test_operator_acknowledges_and_sends_everyday_commands(db: psycopg.Connection[Any]) -> None:
    """An operator acknowledges the open alarm (recorded with their name and note) and sends
    a diagnostic at level 1; a reboot is refused."""
    at = _page(signed_in_app("ana"), "events")
    _pick_alarm(at)
    at.text_input(key="events_note").input("patrol sent")
    at.button(key="FormSubmitter:events_attention-Acknowledge").click().run()
    assert not _errors(at)
    row = db.execute(
        "SELECT acknowledged_by, notes FROM alarm_events WHERE acknowledged_by = 'ana'"
    ).fetchone()
    assert row == ("ana", "patrol sent")
    assert _last_audit(db)[:3] == ("INFO", "ana", "alarm")

    at = _page(at, "commands")
    at.selectbox(key="commands_kind").set_value("diagnostic")
    at.text_area(key="commands_payload").input('{"action": "ping"}')
    at.multiselect(key="commands_devices").set_value(["ESG_ALARM_0001", "ESG_ALARM_0002"])
    at.button(key="FormSubmitter:commands_command-Send").click().run()
    assert not _errors(at)
    sent = db.execute(
        "SELECT auth_level, count(*) FROM command_log WHERE initiated_by = 'ana' GROUP BY 1"
    ).fetchall()
    assert sent == [(1, 2)]
    at.selectbox(key="commands_kind").set_value("reboot")
    at.text_area(key="commands_payload").input("{}")
    at.checkbox(key="commands_confirm").check()
    at.button(key="FormSubmitter:commands_command-Send").click().run()
    assert any("that needs the admin role" in e for e in _errors(at))
    assert _last_audit(db)[:3] == ("WARNING", "ana", "command")


def test_admin_reboots_only_after_confirming(db: psycopg.Connection[Any]) -> None:
    """An admin's reboot waits for the confirmation, then goes out at level 2."""
    at = _page(signed_in_app("ada"), "commands")
    at.selectbox(key="commands_kind").set_value("reboot")
    at.text_area(key="commands_payload").input('{"delayMs": 0}')
    at.multiselect(key="commands_devices").set_value(["ESG_ALARM_0003"])
    at.button(key="FormSubmitter:commands_command-Send").click().run()
    assert any("tick the confirmation" in w.value for w in at.warning)
    assert db.execute("SELECT count(*) FROM command_log WHERE initiated_by = 'ada'").fetchone() == (
        0,
    )
    at.checkbox(key="commands_confirm").check()
    at.button(key="FormSubmitter:commands_command-Send").click().run()
    assert not _errors(at)
    assert db.execute(
        "SELECT auth_level, command_type::text FROM command_log WHERE initiated_by = 'ada'"
    ).fetchall() == [(2, "SYSTEM")]


def test_admin_reads_the_audit_and_manages_people(db: psycopg.Connection[Any]) -> None:
    """The Audit page lists the sign-ins; the Users page adds an operator who can sign in."""
    at = _page(signed_in_app("ada"), "audit")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Sign-ins"]) >= 1
    assert len(at.get("download_button")) == 1
    at = _page(at, "users")
    at.text_input(key="new_username").input("olga")
    at.text_input(key="new_email").input("olga@example.com")
    at.selectbox(key="new_role").set_value("operator")
    at.text_input(key="new_password").input("olga-first-passphrase")
    at.button(key="FormSubmitter:user_add-Add").click().run()
    assert not _errors(at)
    assert db.execute("SELECT role FROM users WHERE username = 'olga'").fetchone() == ("operator",)
    assert "olga-first-passphrase" not in str(db.execute("SELECT * FROM system_logs").fetchall())
    fresh = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert sign_in(fresh, "olga", "olga-first-passphrase").title[0].value == "Fleet"


def test_sign_out_and_expiry_bring_back_the_form(
    db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing out returns to the form (recorded); an idle sign-in expires."""
    at = signed_in_app("bo")
    at.button(key="sign_out").click().run()
    assert [t.value for t in at.title] == ["fleetwatch"]
    assert _last_audit(db) == ("INFO", "bo", "auth", "signed out")
    at = sign_in(at, "bo")
    assert at.title[0].value == "Fleet"
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_SESSION_IDLE_MINUTES", "0.00001")
    at.run()
    assert [t.value for t in at.title] == ["fleetwatch"]
    assert any("expired" in i.value for i in at.info)
    assert _last_audit(db) == ("INFO", "bo", "auth", "sign-in expired")
    assert password_of("bo") not in str(db.execute("SELECT * FROM system_logs").fetchall())


def test_operator_acts_from_the_device_page(db: psycopg.Connection[Any]) -> None:
    """On the page of the device with the open PANIC2 alarm an operator acknowledges it and
    sends the device a command; both are recorded against the device."""
    found = db.execute(
        "SELECT d.hostname FROM alarm_events a JOIN devices d ON d.id = a.device_id "
        "WHERE a.alarm_type = 'PANIC2' AND a.resolved_at IS NULL"
    ).fetchone()
    assert found is not None
    hostname = found[0]
    at = signed_in_app("bo")
    at.switch_page("app_pages/device.py").run()
    at.selectbox(key="device_pick").set_value(hostname).run()
    item = at.selectbox(key="device_item")
    item.set_value(next(o for o in item.options if o.startswith("alarm ")))
    at.button(key="FormSubmitter:device_attention-Acknowledge").click().run()
    assert not _errors(at)
    assert _last_audit(db)[:3] == ("INFO", "bo", "alarm")
    at.selectbox(key="device_kind").set_value("diagnostic")
    at.text_area(key="device_payload").input('{"action": "ping"}')
    at.button(key="FormSubmitter:device_command-Send").click().run()
    assert not _errors(at)
    device = db.execute(
        "SELECT d.hostname FROM command_log c JOIN devices d ON d.id = c.device_id "
        "WHERE c.initiated_by = 'bo'"
    ).fetchall()
    assert device == [(hostname,)]
    rows = db.execute("SELECT device FROM system_logs ORDER BY id DESC LIMIT 2").fetchall()
    assert rows == [(hostname,), (hostname,)]  # the command, the acknowledgement


def test_a_panic_over_but_never_acknowledged_still_needs_attention(
    db: psycopg.Connection[Any],
) -> None:
    """A panic pressed and released ten minutes ago, unacknowledged, is on the attention list
    until an operator acknowledges it; then it leaves the list."""
    row = db.execute(
        "INSERT INTO alarm_events (device_id, alarm_type, event_state, priority, timestamp, "
        "resolved_at) SELECT id, 'PANIC1', 'INACTIVE', 'CRITICAL', now() - interval '10 min', "
        "now() - interval '9 min' FROM devices WHERE hostname = 'ESG_ALARM_0003' RETURNING id"
    ).fetchone()
    assert row is not None
    label = f"alarm {row[0]}: PANIC1 alarm (INACTIVE) (ESG_ALARM_0003)"
    at = _page(signed_in_app("cy"), "events")
    item = at.selectbox(key="events_item")
    assert label in item.options
    item.set_value(label)
    at.button(key="FormSubmitter:events_attention-Acknowledge").click().run()
    assert not _errors(at)
    assert label not in at.selectbox(key="events_item").options
    assert db.execute(
        "SELECT acknowledged, acknowledged_by FROM alarm_events WHERE id = %s", row
    ).fetchone() == (True, "cy")


def test_own_flux_is_for_engineers(db: psycopg.Connection[Any]) -> None:
    """Trends shows a viewer its chart and Flux but no editor or Run; an operator gets the
    editor and runs Flux within the dashboard's limits."""
    viewer = _page(signed_in_app("vic"), "trends")
    assert not viewer.text_area
    assert not [b for b in viewer.button if b.label.startswith("Run")]
    assert viewer.get("code")
    operator = _page(signed_in_app("ana"), "trends")
    assert len(operator.text_area) == 1
    operator.button(key="run_trend_flux").click().run()
    assert not _errors(operator)
    assert any(c.value.endswith("rows") for c in operator.caption)


def test_rules_are_an_operators_to_switch(db: psycopg.Connection[Any]) -> None:
    """A viewer's Disable is refused and recorded; an operator's disables the rule, says so
    and records who."""
    at = _page(signed_in_app("vic"), "rules")
    at.selectbox(key="toggle_rule").set_value("Device offline")
    _refused_click(at, "FormSubmitter:rule_toggle-Disable")
    assert any("vic is a viewer and may not disable rule Device offline" in e for e in _errors(at))
    at = _page(signed_in_app("bo"), "rules")
    at.selectbox(key="toggle_rule").set_value("Device offline")
    at.button(key="FormSubmitter:rule_toggle-Disable").click().run()
    assert any("Device offline disabled" in s.value for s in at.success)
    assert db.execute(
        "SELECT is_enabled, updated_by FROM rules WHERE name = 'Device offline'"
    ).fetchone() == (False, "bo")
    assert _last_audit(db) == ("INFO", "bo", "rule", "disable rule Device offline")


def test_commands_target_a_country_like_the_cli(db: psycopg.Connection[Any]) -> None:
    """A command to a country reaches exactly that country's active devices."""
    at = _page(signed_in_app("ana"), "commands")
    at.selectbox(key="commands_kind").set_value("diagnostic")
    at.text_area(key="commands_payload").input('{"action": "ping"}')
    at.selectbox(key="commands_country").set_value("PT")
    at.button(key="FormSubmitter:commands_command-Send").click().run()
    assert not _errors(at)
    sent = db.execute(
        "SELECT DISTINCT d.country FROM command_log c JOIN devices d ON d.id = c.device_id "
        "WHERE c.initiated_by = 'ana'"
    ).fetchall()
    expected = db.execute("SELECT count(*) FROM devices WHERE country = 'PT' AND active").fetchone()
    count = db.execute("SELECT count(*) FROM command_log WHERE initiated_by = 'ana'").fetchone()
    assert (sent, count) == ([("PT",)], expected)
