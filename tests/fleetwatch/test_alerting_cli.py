"""``fleetwatch rules | templates | events | notifications`` against a real PostgreSQL:
what cannot work is refused when it is saved, with the reason."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from alerting import builtin
from fleetwatch.cli import main
from fleetwatch.settings import PostgresSettings
from stores.postgres.migrate import upgrade
from tests.support.people import add_people


@pytest.fixture
def migrated(pg_env: PostgresSettings, monkeypatch: pytest.MonkeyPatch) -> PostgresSettings:
    """A migrated database with the built-in rules and people; commands act as ana."""
    upgrade(pg_env)
    with psycopg.connect(str(pg_env.database_url), autocommit=True) as conn:
        builtin.install(conn)
        TOKENS.clear()
        TOKENS.update(add_people(conn))
    monkeypatch.setenv("FLEETWATCH_TOKEN", TOKENS["ana"])
    return pg_env


TOKENS: dict[str, str] = {}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line, acting as the person named by a trailing ``--by NAME``."""
    args = list(argv)
    if "--by" in args:
        at = args.index("--by")
        name = args[at + 1]
        del args[at : at + 2]
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FLEETWATCH_TOKEN", TOKENS[name])
            code = main(args)
    else:
        code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_built_in_rules_are_listed(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The built-ins are installed once and listed with their conditions."""
    with psycopg.connect(str(migrated.database_url), autocommit=True) as conn:
        assert builtin.install(conn) == []  # a second install adds nothing
    code, out, _ = run(capsys, "rules", "list")
    assert code == 0
    for name in ("Panel alarm DURESS", "Device offline", "Robot battery", "Robot CPU"):
        assert name in out
    assert "robot_battery.percentage lt 20 (warning), 10 (critical), clears at 25" in out
    assert "device.online eq 0 (warning), for 600 s" in out


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--kind", "panel", "--metric", "pressure", "--op", "gt", "--warning", "3"],
         "panel has no metric 'pressure'"),
        (["--kind", "boiler", "--metric", "t", "--op", "gt", "--warning", "3"],
         "no kind 'boiler'"),
        (["--kind", "panel", "--metric", "siren", "--op", "gt", "--warning", "1"],
         "siren is a flag: compare it with eq or neq"),
        (["--kind", "panel", "--metric", "siren", "--op", "eq", "--warning", "3"],
         "its threshold is 1 (true) or 0 (false)"),
        (["--kind", "panel", "--metric", "temperature", "--op", "gt"],
         "give a warning or a critical threshold"),
        (["--kind", "panel", "--metric", "temperature", "--op", "gt", "--warning", "30",
          "--notify", "nobody"], "no notification template nobody"),
        (["--kind", "panel", "--metric", "temperature", "--op", "gt", "--warning", "30",
          "--notify", "operators:email:not-an-address"], "is not an email address"),
        (["--kind", "panel", "--metric", "temperature", "--op", "gt", "--warning", "30",
          "--scope", "device", "--scope-value", "NOPE"], "no device 'NOPE'"),
    ],
)  # fmt: skip
def test_rules_that_cannot_work_are_refused(
    migrated: PostgresSettings,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    reason: str,
) -> None:
    """Each bad rule is refused at creation, naming what is wrong; nothing is stored."""
    code, _, err = run(capsys, "rules", "add", "bad", *argv)
    assert code == 1
    assert reason in err
    assert "bad" not in run(capsys, "rules", "list")[1]


def test_a_threshold_that_is_not_a_number_is_refused(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--warning hot`` stops at the command line."""
    with pytest.raises(SystemExit):
        main(["rules", "add", "x", "--kind", "panel", "--metric", "temperature", "--op", "gt",
              "--warning", "hot"])  # fmt: skip
    assert "'hot' is not a number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--message", "{device} is {temprature}"], "unknown placeholder(s) {temprature}"),
        (["--message", "{value:.2f}"], "without formats"),
        (["--message", "x", "--recipient", "sms:600123"], "international form"),
        (["--message", "x", "--recipient", "webhook:ftp://h/x"], "is not an http(s) URL"),
        (["--message", "x", "--recipient", "pager:123"], "recipient type 'pager' is unknown"),
    ],
)
def test_templates_that_cannot_work_are_refused(
    migrated: PostgresSettings,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    reason: str,
) -> None:
    """Each bad template is refused when it is saved, never at delivery time."""
    code, _, err = run(capsys, "templates", "add", "bad", *argv)
    assert code == 1
    assert reason in err


def test_add_edit_disable_a_rule_and_its_template(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule with a template and an escalation step reads back whole; edits and disabling
    are recorded with who did them."""
    code, out, err = run(
        capsys, "templates", "add", "oncall", "--message", "{rule} on {device}: {value}",
        "--recipient", "email:oncall@example.com=On call", "--recipient",
        "webhook:https://hooks.example.com/a?x=1,2", "--retry-count", "5", "--by", "ana",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == "template oncall saved (2 recipients)\n"
    code, out, err = run(
        capsys, "rules", "add", "boiler hot", "--kind", "panel", "--metric", "temperature",
        "--op", "gt", "--warning", "30", "--critical", "35", "--clear", "28", "--for", "60",
        "--scope", "zone", "--scope-value", "3", "--notify", "oncall",
        "--escalate", "15:operators:sms:+34600000002", "--by", "ana",
    )  # fmt: skip
    assert (code, err) == (0, "")
    shown = json.loads(run(capsys, "rules", "show", "boiler hot")[1])
    assert (shown["warning_threshold"], shown["critical_threshold"]) == (30.0, 35.0)
    assert (shown["clear_threshold"], shown["for_seconds"]) == (28.0, 60)
    assert (shown["scope_type"], shown["scope_value"]) == ("zone", "3")
    assert shown["created_by"] == "ana"
    assert shown["action_config"] == [
        {"type": "notification", "template": "oncall", "on_resolve": True},
        {
            "type": "notification",
            "template": "operators",
            "recipients": [{"type": "sms", "address": "+34600000002"}],
            "after_minutes": 15.0,
        },
    ]
    code, _, err = run(capsys, "rules", "edit", "boiler hot", "--critical", "40", "--by", "bo")
    assert (code, err) == (0, "")
    code, _, _ = run(capsys, "rules", "disable", "boiler hot", "--by", "cy")
    shown = json.loads(run(capsys, "rules", "show", "boiler hot")[1])
    assert (shown["critical_threshold"], shown["is_enabled"]) == (40.0, False)
    assert (shown["updated_by"], shown["action_config"][0]["template"]) == ("cy", "oncall")
    template = json.loads(run(capsys, "templates", "show", "oncall")[1])
    assert template["recipients"][1] == {
        "type": "webhook",
        "address": "https://hooks.example.com/a?x=1,2",
    }
    assert template["retry_count"] == 5


def test_events_are_acknowledged_and_resolved_once(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """ack and resolve record who and why; a second ack or resolve is refused."""
    with psycopg.connect(str(migrated.database_url), autocommit=True) as conn:
        rule_id = conn.execute("SELECT id FROM rules WHERE name = 'Device offline'").fetchone()
        assert rule_id is not None
        row: Any = conn.execute(
            "INSERT INTO events (rule_id, subject, severity, message) "
            "VALUES (%s, '1', 'warning', 'gone') RETURNING id",
            [rule_id[0]],
        ).fetchone()
        event_id = str(row[0])
    assert run(capsys, "events", "ack", event_id, "--by", "ana", "--note", "calling")[0] == 0
    code, _, err = run(capsys, "events", "ack", event_id)
    assert (code, "is not new" in err) == (1, True)
    assert run(capsys, "events", "resolve", event_id, "--by", "bo")[0] == 0
    assert run(capsys, "events", "resolve", event_id)[0] == 1
    code, out, _ = run(capsys, "events", "list", "--open")
    assert (code, out) == (0, "(none)\n")
    with psycopg.connect(str(migrated.database_url)) as conn:
        stored = conn.execute(
            "SELECT status, acknowledged_by, acknowledge_note, resolved_by FROM events"
        ).fetchone()
    assert stored == ("resolved", "ana", "calling", "bo")


def test_silences_and_mute_timings_from_the_command_line(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zone's weekend nights are muted; a bad window, an unknown rule, a silence already
    over are refused; ending one twice is refused the second time."""
    code, out, err = run(
        capsys, "silences", "add", "--zone", "3", "--for", "30d", "--window", "22:00-06:00",
        "--weekdays", "sat,sun", "--reason", "nobody on site", "--by", "ana",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "zone 3 from" in out
    code, out, _ = run(capsys, "silences", "list")
    assert "22:00:00" in out
    assert " 96 " in out  # Saturday and Sunday bits
    for argv, reason in (
        (["--zone", "3", "--for", "1h", "--window", "22-6"], "HH:MM-HH:MM"),
        (["--rule", "nope", "--for", "1h"], "no rule named 'nope'"),
        (["--zone", "3", "--until", "2020-01-01T00:00:00"], "ends after it starts"),
        (["--zone", "3", "--starts", "2020-01-01T00:00:00", "--for", "1h"], "over already"),
        (["--zone", "3", "--for", "1h", "--weekdays", "mon,funday"], "unknown weekdays"),
    ):
        code, _, err = run(capsys, "silences", "add", *argv)
        assert (code, reason in err) == (1, True), err
    silence_id = out.splitlines()[1].split()[0]
    assert run(capsys, "silences", "end", silence_id, "--by", "bo")[0] == 0
    assert run(capsys, "silences", "end", silence_id)[0] == 1


def test_acknowledging_a_panic_event_acknowledges_its_alarm(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The event an input alarm rule raised and the panel alarm behind it are acknowledged
    together, so the alarm is not asked for again once the panel reports it over; another
    panel's alarm is left alone."""
    with psycopg.connect(str(migrated.database_url), autocommit=True) as conn:
        ids = [
            conn.execute(
                "INSERT INTO devices (mac_address, hostname) VALUES (%s, %s) RETURNING id",
                [f"aa:bb:cc:00:00:0{n}", f"ESG_ALARM_000{n}"],
            ).fetchone()[0]  # type: ignore[index]
            for n in (1, 2)
        ]
        for device_id in ids:
            conn.execute(
                "INSERT INTO alarm_events (device_id, alarm_type, event_state, priority, "
                "timestamp) VALUES (%s, 'PANIC1', 'ACTIVE', 'CRITICAL', now() - interval '1 min')",
                [device_id],
            )
        row: Any = conn.execute(
            "INSERT INTO events (rule_id, device_id, subject, timestamp, severity, message) "
            "SELECT id, %s, %s, now() - interval '1 min', 'critical', 'panic' FROM rules "
            "WHERE name = 'Panel alarm PANIC1' RETURNING id",
            [ids[0], str(ids[0])],
        ).fetchone()
    assert run(capsys, "events", "ack", str(row[0]), "--note", "on it")[0] == 0
    with psycopg.connect(str(migrated.database_url)) as conn:
        acked = conn.execute(
            "SELECT d.hostname, a.acknowledged, a.acknowledged_by, a.notes FROM alarm_events a "
            "JOIN devices d ON d.id = a.device_id ORDER BY d.hostname"
        ).fetchall()
    assert acked == [
        ("ESG_ALARM_0001", True, "ana", "on it"),
        ("ESG_ALARM_0002", False, None, None),
    ]
