"""Alerting in PostgreSQL: rules, their states, events, templates and deliveries.

Rows in, rows out (dicts keyed by column): what a rule means is ``alerting``'s business.
The functions take a psycopg connection and run in the caller's transaction, so ingest
writes events and deliveries in the very transaction that stores the values behind them: a
crash loses or duplicates neither. The database keeps one open event per rule and subject
(``uq_events_open``) and one delivery per event, template, trigger and recipient, so two
processes evaluating the same value cannot both notify.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from stores.errors import StoreError

Row = dict[str, Any]
DELIVERY_CHANNEL = "fleetwatch_deliveries"
"""The NOTIFY channel that wakes delivery workers when deliveries are added."""


class NotFoundError(StoreError):
    """The rule, template, event or delivery named does not exist."""


class NameTakenError(StoreError):
    """A rule or template of that name exists already."""


def _rows(
    conn: psycopg.Connection[Any],
    query: str,
    params: Sequence[object] | Mapping[str, object] | None = None,
) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


# --- rules and templates ------------------------------------------------------------------

_RULE_COLUMNS = (
    "name",
    "description",
    "scope_type",
    "scope_value",
    "device_id",
    "kind",
    "metric",
    "operator",
    "warning_threshold",
    "critical_threshold",
    "clear_threshold",
    "for_seconds",
    "clear_for_seconds",
    "cooldown_minutes",
    "is_enabled",
    "is_builtin",
    "action_config",
)
_TEMPLATE_COLUMNS = (
    "name",
    "description",
    "subject_template",
    "message_template",
    "recipients",
    "priority",
    "retry_count",
    "retry_delay_minutes",
    "is_active",
)


def _json(row: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {
        name: Jsonb(row[name]) if isinstance(row[name], list | dict) else row[name]
        for name in names
        if name in row
    }


def _insert(table: str, columns: Iterable[str]) -> str:
    """``INSERT INTO table (a, b) VALUES (%(a)s, %(b)s)`` for named parameters."""
    names = list(columns)
    marks = ", ".join(f"%({name})s" for name in names)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608


def rules_version(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """Changes whenever a rule or template is added, edited or removed."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM rules), (SELECT max(updated_at) FROM rules), "
        "(SELECT count(*) FROM notification_templates), "
        "(SELECT max(updated_at) FROM notification_templates)"
    ).fetchone()
    return tuple(row or ())


def load_rules(conn: psycopg.Connection[Any], *, enabled_only: bool = False) -> list[Row]:
    """Every rule (or every enabled one), by name."""
    where = "WHERE is_enabled" if enabled_only else ""
    return _rows(conn, f"SELECT * FROM rules {where} ORDER BY name")  # noqa: S608


def rule_named(conn: psycopg.Connection[Any], name: str) -> Row:
    """The rule called ``name``; NotFoundError when there is none."""
    rows = _rows(conn, "SELECT * FROM rules WHERE name = %s", [name])
    if not rows:
        raise NotFoundError(f"no rule named {name!r}")
    return rows[0]


def insert_rule(conn: psycopg.Connection[Any], row: Mapping[str, Any], by: str) -> UUID:
    """Store a new rule; NameTakenError when the name is in use."""
    values = _json(row, _RULE_COLUMNS) | {"created_by": by, "updated_by": by}
    try:
        with conn.transaction():
            found = conn.execute(
                _insert("rules", values) + " RETURNING id",
                values,
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise NameTakenError(f"a rule named {row['name']!r} exists already") from exc
    assert found is not None
    return UUID(str(found[0]))


def insert_rule_if_missing(conn: psycopg.Connection[Any], row: Mapping[str, Any], by: str) -> bool:
    """Store a rule unless one of its name exists (edits to it are kept); True if added."""
    values = _json(row, _RULE_COLUMNS) | {"created_by": by, "updated_by": by}
    return (
        conn.execute(
            _insert("rules", values) + " ON CONFLICT (name) DO NOTHING",
            values,
        ).rowcount
        == 1
    )


def update_rule(
    conn: psycopg.Connection[Any], name: str, changes: Mapping[str, Any], by: str
) -> None:
    """Change columns of the rule ``name``; NotFoundError, NameTakenError."""
    values = _json(changes, _RULE_COLUMNS) | {"updated_by": by}
    sets = ", ".join(f"{column} = %({column})s" for column in values)
    try:
        with conn.transaction():
            done = conn.execute(
                f"UPDATE rules SET {sets} WHERE name = %(__name)s",  # noqa: S608
                values | {"__name": name},
            ).rowcount
    except psycopg.errors.UniqueViolation as exc:
        raise NameTakenError(f"a rule named {changes.get('name')!r} exists already") from exc
    if not done:
        raise NotFoundError(f"no rule named {name!r}")


def load_templates(conn: psycopg.Connection[Any]) -> list[Row]:
    """Every notification template, by name."""
    return _rows(conn, "SELECT * FROM notification_templates ORDER BY name")


def template_named(conn: psycopg.Connection[Any], name: str) -> Row:
    """The template called ``name``; NotFoundError when there is none."""
    rows = _rows(conn, "SELECT * FROM notification_templates WHERE name = %s", [name])
    if not rows:
        raise NotFoundError(f"no notification template named {name!r}")
    return rows[0]


def save_template(
    conn: psycopg.Connection[Any], row: Mapping[str, Any], by: str, *, replace: bool
) -> int:
    """Store a template (``replace``: overwrite the one of that name); its id.
    NameTakenError when it exists and ``replace`` is false."""
    values = _json(row, _TEMPLATE_COLUMNS) | {"created_by": by, "updated_by": by}
    updates = ", ".join(
        f"{name} = EXCLUDED.{name}" for name in values if name not in ("name", "created_by")
    )
    conflict = f"DO UPDATE SET {updates}" if replace else "DO NOTHING"
    found = conn.execute(
        _insert("notification_templates", values) + f" ON CONFLICT (name) {conflict} RETURNING id",
        values,
    ).fetchone()
    if found is None:
        raise NameTakenError(f"a notification template named {row['name']!r} exists already")
    return int(found[0])


# --- rule states and events (the evaluation's writes) ------------------------------------

_STATE_COLUMNS = (
    "rule_id",
    "subject",
    "device_id",
    "last_value",
    "last_seen_at",
    "pending_since",
    "pending_severity",
    "clear_since",
    "event_id",
    "event_severity",
    "last_triggered_at",
)


def lock_states(
    conn: psycopg.Connection[Any], device_ids: Iterable[int], subjects: Iterable[str] = ()
) -> list[Row]:
    """The states of these devices' (and these other subjects') rules, locked until commit."""
    others = sorted(set(subjects))
    where = "device_id = ANY(%s)" + (" OR subject = ANY(%s)" if others else "")
    return _rows(
        conn,
        f"SELECT * FROM rule_states WHERE {where} ORDER BY rule_id, subject FOR UPDATE",  # noqa: S608
        [sorted(set(device_ids)), *([others] if others else [])],
    )


def waiting_states(conn: psycopg.Connection[Any], limit: int) -> list[Row]:
    """States whose duration runs (pending or clearing), locked; those another transaction
    holds are skipped (it is evaluating them already)."""
    return _rows(
        conn,
        "SELECT s.*, d.hostname, d.zone, d.country, d.kind AS device_kind "
        "FROM rule_states s LEFT JOIN devices d ON d.id = s.device_id "
        "WHERE s.pending_since IS NOT NULL OR s.clear_since IS NOT NULL "
        "ORDER BY s.rule_id, s.subject LIMIT %s FOR UPDATE OF s SKIP LOCKED",
        [limit],
    )


def save_states(conn: psycopg.Connection[Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or replace these states."""
    if not rows:
        return
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in _STATE_COLUMNS[2:])
    with conn.cursor() as cur:
        cur.executemany(
            _insert("rule_states", _STATE_COLUMNS)
            + f" ON CONFLICT (rule_id, subject) DO UPDATE SET {updates}",
            rows,
        )


def open_event(conn: psycopg.Connection[Any], row: Mapping[str, Any]) -> int | None:
    """Insert an open event; its id, or None when the rule and subject have one open
    already (another process opened it: it notifies, this one does not)."""
    values = _json(
        row,
        (
            "rule_id",
            "device_id",
            "subject",
            "source",
            "timestamp",
            "severity",
            "message",
            "value",
            "threshold",
            "execution_results",
            "metadata",
        ),
    )
    found = conn.execute(
        _insert("events", values)
        + " ON CONFLICT (rule_id, subject) WHERE status <> 'resolved' DO NOTHING RETURNING id",
        values,
    ).fetchone()
    return None if found is None else int(found[0])


def open_event_id(conn: psycopg.Connection[Any], rule_id: UUID, subject: str) -> int | None:
    """The id of the rule's open event for ``subject``, if any."""
    found = conn.execute(
        "SELECT id FROM events WHERE rule_id = %s AND subject = %s AND status <> 'resolved'",
        [rule_id, subject],
    ).fetchone()
    return None if found is None else int(found[0])


def raise_event(
    conn: psycopg.Connection[Any], event_id: int, severity: str, value: float, threshold: float
) -> None:
    """Make an open event more severe, keeping the value that did it."""
    conn.execute(
        "UPDATE events SET severity = %s, value = %s, threshold = %s, "
        "metadata = coalesce(metadata, '{}'::jsonb) || jsonb_build_object('raised_at', now()) "
        "WHERE id = %s AND status <> 'resolved'",
        [severity, value, threshold, event_id],
    )


def resolve_event(
    conn: psycopg.Connection[Any], event_id: int, at: datetime, by: str, note: str | None
) -> bool:
    """Resolve an event that is not resolved yet; True if this call resolved it."""
    return (
        conn.execute(
            "UPDATE events SET status = 'resolved', resolved_at = %s, resolved_by = %s, "
            "resolve_note = %s WHERE id = %s AND status <> 'resolved'",
            [at, by, note, event_id],
        ).rowcount
        == 1
    )


def mark_rules_triggered(conn: psycopg.Connection[Any], triggered: Mapping[UUID, datetime]) -> None:
    """Record when each rule last raised an event (not an edit: updated_at stays)."""
    for rule_id, at in sorted(triggered.items()):
        conn.execute(
            "UPDATE rules SET last_triggered_at = greatest(last_triggered_at, %s) WHERE id = %s",
            [at, rule_id],
        )


def record_results(conn: psycopg.Connection[Any], event_id: int, results: list[Any]) -> None:
    """Append to an event's execution_results (what its actions did)."""
    conn.execute(
        "UPDATE events SET execution_results = execution_results || %s WHERE id = %s",
        [Jsonb(results), event_id],
    )


# --- deliveries ---------------------------------------------------------------------------

_DELIVERY_COLUMNS = (
    "event_id",
    "template_id",
    "trigger",
    "recipient_type",
    "recipient_address",
    "recipient_name",
    "subject",
    "rendered_message",
    "status",
    "priority",
    "max_attempts",
    "retry_delay_seconds",
    "cancel_on_ack",
    "next_attempt_at",
    "group_key",
    "device_label",
    "repeat_seconds",
    "held_by",
)


def add_deliveries(conn: psycopg.Connection[Any], rows: Sequence[Mapping[str, Any]]) -> int:
    """Queue deliveries (one per event, template, trigger and recipient: a repeat is
    ignored) and wake the workers when the transaction commits; how many were added."""
    if not rows:
        return 0
    added = 0
    with conn.cursor() as cur:
        for row in rows:
            cur.execute(
                _insert("notification_deliveries", _DELIVERY_COLUMNS)
                + " ON CONFLICT ON CONSTRAINT uq_notification_deliveries_event_id DO NOTHING",
                row,
            )
            added += cur.rowcount
    if added:
        conn.execute(f"NOTIFY {DELIVERY_CHANNEL}")
    return added


def claim_due(
    conn: psycopg.Connection[Any], channel: str, limit: int, lease: timedelta
) -> list[Row]:
    """Claim up to ``limit`` due deliveries of ``channel`` for ``lease``: counted as an
    attempt, invisible to other workers until the lease lapses (a worker killed while
    sending loses nothing: another takes the delivery over). Escalation steps whose event
    was acknowledged or resolved meanwhile are cancelled instead. Commits."""
    with conn.transaction():
        conn.execute(
            "UPDATE notification_deliveries d SET status = 'cancelled', "
            "error_message = 'event ' || e.status || ' before this step was due', "
            "claimed_until = NULL FROM events e "
            "WHERE d.event_id = e.id AND d.cancel_on_ack AND d.status = 'pending' "
            "AND d.recipient_type = %s AND e.status <> 'new'",
            [channel],
        )
        return _rows(
            conn,
            "UPDATE notification_deliveries SET attempt_count = attempt_count + 1, "
            "last_attempt_at = now(), claimed_until = now() + %s "
            "WHERE id IN (SELECT id FROM notification_deliveries "
            "  WHERE status = 'pending' AND recipient_type = %s AND next_attempt_at <= now() "
            "  AND (claimed_until IS NULL OR claimed_until < now()) "
            "  ORDER BY priority, next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING *",
            [lease, channel, limit],
        )


def finish_delivery(
    conn: psycopg.Connection[Any],
    delivery_id: int,
    claimed_until: datetime,
    *,
    error: str | None,
    retry_at: datetime | None,
) -> str | None:
    """Record the outcome of a claimed attempt: sent (no error), pending again until
    ``retry_at``, or failed (an error and no retry). Only the claim's holder may: a worker
    whose lease lapsed and was taken over records nothing. The status written, or None."""
    if error is None:
        status, query = (
            "sent",
            "UPDATE notification_deliveries SET status = 'sent', sent_at = now(), "
            "claimed_until = NULL, error_message = NULL "
            "WHERE id = %(id)s AND claimed_until = %(claim)s AND status = 'pending'",
        )
    else:
        status = "pending" if retry_at is not None else "failed"
        query = (
            "UPDATE notification_deliveries SET status = %(status)s, claimed_until = NULL, "
            "error_message = %(error)s, next_attempt_at = coalesce(%(retry)s, next_attempt_at) "
            "WHERE id = %(id)s AND claimed_until = %(claim)s AND status = 'pending'"
        )
    with conn.transaction():
        done = conn.execute(
            query,
            {
                "id": delivery_id,
                "claim": claimed_until,
                "status": status,
                "error": error,
                "retry": retry_at,
            },
        ).rowcount
    return status if done else None


def retry_delivery(conn: psycopg.Connection[Any], delivery_id: int) -> None:
    """Queue a failed (or cancelled) delivery again, now, with a fresh attempt budget."""
    done = conn.execute(
        "UPDATE notification_deliveries SET status = 'pending', next_attempt_at = now(), "
        "max_attempts = attempt_count + greatest(max_attempts - attempt_count, 1), "
        "claimed_until = NULL WHERE id = %s AND status IN ('failed', 'cancelled', 'held')",
        [delivery_id],
    ).rowcount
    if not done:
        raise NotFoundError(f"no failed, held or cancelled delivery {delivery_id}")
    conn.execute(f"NOTIFY {DELIVERY_CHANNEL}")


def list_deliveries(
    conn: psycopg.Connection[Any], *, status: str | None = None, limit: int = 100
) -> list[Row]:
    """The newest deliveries (of a status), with their event's rule and severity."""
    return _rows(
        conn,
        "SELECT d.*, r.name AS rule, e.severity, e.status AS event_status "
        "FROM notification_deliveries d JOIN events e ON e.id = d.event_id "
        "JOIN rules r ON r.id = e.rule_id "
        "WHERE %(status)s::text IS NULL OR d.status = %(status)s "
        "ORDER BY d.id DESC LIMIT %(limit)s",
        {"status": status, "limit": limit},
    )


# --- events for people --------------------------------------------------------------------


def list_events(
    conn: psycopg.Connection[Any], *, open_only: bool = False, limit: int = 100
) -> list[Row]:
    """The newest events (or those not resolved), with their rule and device."""
    return _rows(
        conn,
        "SELECT e.*, r.name AS rule, r.kind, r.metric, dv.hostname, dv.zone "
        "FROM events e JOIN rules r ON r.id = e.rule_id "
        "LEFT JOIN devices dv ON dv.id = e.device_id "
        "WHERE NOT %(open)s OR e.status <> 'resolved' "
        "ORDER BY e.id DESC LIMIT %(limit)s",
        {"open": open_only, "limit": limit},
    )


def event(conn: psycopg.Connection[Any], event_id: int) -> Row:
    """One event; NotFoundError when there is none."""
    rows = _rows(conn, "SELECT * FROM events WHERE id = %s", [event_id])
    if not rows:
        raise NotFoundError(f"no event {event_id}")
    return rows[0]


def acknowledge_event(
    conn: psycopg.Connection[Any], event_id: int, by: str, note: str | None
) -> bool:
    """Acknowledge a new event (who, when, why), and the panel alarm an input alarm rule
    raised it for (so it is not asked for again once over); False if it was not new."""
    event(conn, event_id)
    done = (
        conn.execute(
            "UPDATE events SET status = 'acknowledged', acknowledged_by = %s, "
            "acknowledged_at = now(), acknowledge_note = %s WHERE id = %s AND status = 'new'",
            [by, note, event_id],
        ).rowcount
        == 1
    )
    if done:
        # The alarm behind it: same panel and type, raised by the event's time, still open
        # then; its type is the rule's metric without "alarm_" (alarm_panic1 -> PANIC1).
        conn.execute(
            "UPDATE alarm_events a SET acknowledged = true, acknowledged_by = %s, "
            "acknowledged_at = now(), notes = coalesce(%s, a.notes) "
            "FROM events e JOIN rules r ON r.id = e.rule_id "
            "WHERE e.id = %s AND r.kind = 'panel' AND r.metric LIKE 'alarm\\_%%' "
            "AND a.device_id = e.device_id "
            "AND a.alarm_type::text = upper(substr(r.metric, 7)) AND NOT a.acknowledged "
            "AND a.timestamp <= e.timestamp "
            "AND (a.resolved_at IS NULL OR a.resolved_at >= e.timestamp)",
            [by, note, event_id],
        )
    return done


def resolve_by_person(
    conn: psycopg.Connection[Any], event_id: int, by: str, note: str | None
) -> bool:
    """Resolve an event by hand, and free its rule's state so that the condition can raise a
    new one; False if it was resolved already."""
    row = event(conn, event_id)
    conn.execute(
        "SELECT 1 FROM rule_states WHERE rule_id = %s AND subject = %s FOR UPDATE",
        [row["rule_id"], row["subject"]],
    )
    done = conn.execute(
        "UPDATE events SET status = 'resolved', resolved_at = now(), resolved_by = %s, "
        "resolve_note = %s WHERE id = %s AND status <> 'resolved'",
        [by, note, event_id],
    ).rowcount
    conn.execute(
        "UPDATE rule_states SET event_id = NULL, event_severity = NULL, clear_since = NULL "
        "WHERE rule_id = %s AND subject = %s AND event_id = %s",
        [row["rule_id"], row["subject"], event_id],
    )
    return done == 1


def event_summaries(conn: psycopg.Connection[Any], event_ids: Iterable[int]) -> dict[int, Row]:
    """What a webhook tells of each event: rule, severity, status, device, value, time."""
    rows = _rows(
        conn,
        "SELECT e.id, e.timestamp, e.severity, e.status, e.value, e.threshold, e.subject, "
        "e.source, e.message, r.name AS rule, r.kind, r.metric, dv.hostname, dv.zone "
        "FROM events e JOIN rules r ON r.id = e.rule_id "
        "LEFT JOIN devices dv ON dv.id = e.device_id WHERE e.id = ANY(%s)",
        [sorted(set(event_ids))],
    )
    return {int(row["id"]): row for row in rows}


def acknowledge_alarm(
    conn: psycopg.Connection[Any], alarm_id: int, by: str, note: str | None
) -> bool:
    """Acknowledge an open panel alarm (who, when, note), and the new event its input alarm
    rule raised for it, which stops that event's escalation; False if it was acknowledged."""
    found = conn.execute(
        "UPDATE alarm_events SET acknowledged = true, acknowledged_by = %s, "
        "acknowledged_at = now(), notes = coalesce(%s, notes) "
        "WHERE id = %s AND NOT acknowledged RETURNING device_id, alarm_type::text",
        [by, note, alarm_id],
    ).fetchone()
    if found is None:
        return False
    device_id, alarm_type = found
    conn.execute(
        "UPDATE events e SET status = 'acknowledged', acknowledged_by = %s, "
        "acknowledged_at = now(), acknowledge_note = %s FROM rules r "
        "WHERE r.id = e.rule_id AND e.device_id = %s AND r.kind = 'panel' "
        "AND r.metric = %s AND e.status = 'new'",
        [by, note, device_id, f"alarm_{alarm_type.lower()}"],
    )
    return True


def resolve_alarm(conn: psycopg.Connection[Any], alarm_id: int, by: str, note: str | None) -> bool:
    """Close an open panel alarm by hand (a panel replaced, an alarm stuck open), marking it
    acknowledged as well; False if it was closed already. A later report opens a new one."""
    return (
        conn.execute(
            "UPDATE alarm_events SET resolved_at = now(), acknowledged = true, "
            "acknowledged_by = coalesce(acknowledged_by, %s), "
            "acknowledged_at = coalesce(acknowledged_at, now()), notes = coalesce(%s, notes) "
            "WHERE id = %s AND resolved_at IS NULL",
            [by, note, alarm_id],
        ).rowcount
        == 1
    )


# --- silences -----------------------------------------------------------------------------


def _active(at: str) -> str:
    """SQL: silence ``s`` holds notifications at ``at`` (its range, and its daily window and
    weekdays in UTC when it has them; a window may run past midnight)."""
    local = f"({at} AT TIME ZONE 'UTC')"
    return (
        f"s.starts_at <= {at} AND s.ends_at > {at} AND (s.weekdays IS NULL OR "
        f"(s.weekdays >> (extract(isodow FROM {local})::int - 1)) & 1 = 1) AND "
        "(s.window_start IS NULL OR CASE WHEN s.window_start < s.window_end "
        f"THEN {local}::time >= s.window_start AND {local}::time < s.window_end "
        f"ELSE {local}::time >= s.window_start OR {local}::time < s.window_end END)"
    )


def _matches(hostname: str, zone: str, rule: str) -> str:
    """SQL: silence ``s`` is about this device, zone or rule."""
    return (
        f"((s.scope_type = 'device' AND s.scope_value = {hostname}) OR "
        f"(s.scope_type = 'zone' AND s.scope_value = {zone}::text) OR "
        f"(s.scope_type = 'rule' AND s.scope_value = {rule}))"
    )


def silenced(
    conn: psycopg.Connection[Any], rule: str, hostname: str | None, zone: int | None, at: datetime
) -> int | None:
    """The silence that holds notifications of ``rule`` about this device at ``at``, if any."""
    query = (
        "SELECT s.id FROM silences s WHERE "  # noqa: S608 - fixed SQL text
        + _active("%(at)s")
        + " AND "
        + _matches("%(hostname)s", "%(zone)s", "%(rule)s")
        + " ORDER BY s.id LIMIT 1"
    )
    found = conn.execute(
        query,
        {"at": at, "hostname": hostname, "zone": zone, "rule": rule},
    ).fetchone()
    return None if found is None else int(found[0])


def add_silence(conn: psycopg.Connection[Any], row: Mapping[str, Any]) -> int:
    """Store a silence; its id. NotFoundError when its device or rule does not exist."""
    scope, value = row["scope_type"], str(row["scope_value"])
    if (
        scope == "device"
        and not conn.execute("SELECT 1 FROM devices WHERE hostname = %s", [value]).fetchone()
    ):
        raise NotFoundError(f"no device {value!r}")
    if scope == "rule":
        rule_named(conn, value)
    if scope == "zone" and not value.isdigit():
        raise NotFoundError(f"a zone is a number, got {value!r}")
    found = conn.execute(
        "INSERT INTO silences (scope_type, scope_value, starts_at, ends_at, on_end, reason, "
        "created_by, weekdays, window_start, window_end) VALUES (%(scope_type)s, "
        "%(scope_value)s, %(starts_at)s, %(ends_at)s, %(on_end)s, %(reason)s, %(created_by)s, "
        "%(weekdays)s, %(window_start)s, %(window_end)s) RETURNING id",
        {"weekdays": None, "window_start": None, "window_end": None, **row, "scope_value": value},
    ).fetchone()
    assert found is not None
    return int(found[0])


def list_silences(
    conn: psycopg.Connection[Any],
    *,
    current_only: bool = True,
    scope_type: str | None = None,
    silence_id: int | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Row]:
    """Silences not over yet (or every one), soonest ending first, with what they hold;
    of one scope type or one id, a page of ``limit`` from ``offset`` (None: all)."""
    return _rows(
        conn,
        "SELECT s.*, (SELECT count(*) FROM notification_deliveries d "
        "WHERE d.status = 'held' AND d.held_by = s.id) AS held "
        "FROM silences s WHERE (NOT %(current)s OR s.ends_at > now()) "
        "AND (%(scope)s::text IS NULL OR s.scope_type = %(scope)s) "
        "AND (%(id)s::bigint IS NULL OR s.id = %(id)s) "
        "ORDER BY s.ends_at, s.id LIMIT %(limit)s OFFSET %(offset)s",
        {"current": current_only, "scope": scope_type, "id": silence_id, "limit": limit,
         "offset": offset},
    )  # fmt: skip


def end_silence(conn: psycopg.Connection[Any], silence_id: int, by: str) -> None:
    """End a silence now (its held deliveries are settled by the next worker pass)."""
    done = conn.execute(
        "UPDATE silences SET ends_at = greatest(now(), starts_at + interval '1 microsecond'), "
        "ended_by = %s WHERE id = %s AND ends_at > now()",
        [by, silence_id],
    ).rowcount
    if not done:
        raise NotFoundError(f"no silence {silence_id} still running")


def settle_silences(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Release, or drop as the silence that held them says, the held deliveries that no
    silence holds any more (one ended, or a mute timing's window closed); (released,
    dropped). In one transaction."""
    still = (
        "EXISTS (SELECT 1 FROM silences s WHERE "  # noqa: S608 - fixed SQL text
        + _active("now()")
        + " AND "
        + _matches("dv.hostname", "dv.zone", "r.name")
        + ")"
    )
    with conn.transaction():
        rows = conn.execute(
            "UPDATE notification_deliveries d SET "  # noqa: S608 - fixed SQL text
            "status = CASE WHEN h.on_end = 'drop' THEN 'cancelled' ELSE 'pending' END, "
            "error_message = CASE WHEN h.on_end = 'drop' THEN 'dropped: held by a silence' "
            "END, next_attempt_at = greatest(d.next_attempt_at, now()) "
            "FROM events e JOIN rules r ON r.id = e.rule_id "
            "LEFT JOIN devices dv ON dv.id = e.device_id, silences h "
            "WHERE d.event_id = e.id AND h.id = d.held_by AND d.status = 'held' AND NOT "
            + still
            + " RETURNING d.status",
        ).fetchall()
        conn.execute(
            "UPDATE silences SET settled_at = now() WHERE ends_at <= now() AND settled_at IS NULL"
        )
        released = sum(1 for (status,) in rows if status == "pending")
        if released:
            conn.execute(f"NOTIFY {DELIVERY_CHANNEL}")
    return released, len(rows) - released


def repeat_delivery(conn: psycopg.Connection[Any], delivery_id: int) -> bool:
    """Queue the next repeat of a sent delivery that repeats, while its event is new (nobody
    acknowledged it); True if one was queued."""
    return (
        conn.execute(
            "INSERT INTO notification_deliveries (event_id, template_id, trigger, "
            "recipient_type, recipient_address, recipient_name, subject, rendered_message, "
            "priority, max_attempts, retry_delay_seconds, cancel_on_ack, next_attempt_at, "
            "device_label, repeat_seconds) SELECT d.event_id, d.template_id, "
            "split_part(d.trigger, '#', 1) || '#' || "
            "(coalesce(nullif(split_part(d.trigger, '#', 2), ''), '0')::int + 1), "
            "d.recipient_type, d.recipient_address, d.recipient_name, d.subject, "
            "d.rendered_message, d.priority, d.max_attempts, d.retry_delay_seconds, true, "
            "now() + d.repeat_seconds * interval '1 second', d.device_label, d.repeat_seconds "
            "FROM notification_deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.id = %s AND d.repeat_seconds > 0 AND e.status = 'new' "
            "ON CONFLICT ON CONSTRAINT uq_notification_deliveries_event_id DO NOTHING",
            [delivery_id],
        ).rowcount
        == 1
    )


# --- groups and rate limits (the worker's) -----------------------------------------------


def claim_group(
    conn: psycopg.Connection[Any], leader: Mapping[str, Any], lease: timedelta
) -> list[Row]:
    """The other pending deliveries of ``leader``'s group to the same recipient, claimed
    with it (whether due or not: they go in its one message). Commits."""
    with conn.transaction():
        return _rows(
            conn,
            "UPDATE notification_deliveries SET attempt_count = attempt_count + 1, "
            "last_attempt_at = now(), claimed_until = %(claim)s "
            "WHERE id IN (SELECT id FROM notification_deliveries WHERE status = 'pending' "
            "  AND group_key = %(group)s AND recipient_type = %(type)s "
            "  AND recipient_address = %(address)s AND claimed_until IS DISTINCT FROM %(claim)s "
            "  AND (claimed_until IS NULL OR claimed_until < now()) "
            "  ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING *",
            {
                "claim": leader["claimed_until"],
                "group": leader["group_key"],
                "type": leader["recipient_type"],
                "address": leader["recipient_address"],
            },
        )


def sent_recently(
    conn: psycopg.Connection[Any], address: str, within: timedelta, before_id: int
) -> int:
    """Deliveries sent to ``address`` in the last ``within``, and those being sent to it now
    that were queued before ``before_id`` (so that concurrent sends count each other)."""
    row = conn.execute(
        "SELECT count(*) FROM notification_deliveries WHERE recipient_address = %s AND ("
        "(status = 'sent' AND sent_at > now() - %s) OR "
        "(status = 'pending' AND claimed_until > now() AND id < %s))",
        [address, within, before_id],
    ).fetchone()
    return int(row[0]) if row else 0


def postpone(
    conn: psycopg.Connection[Any], delivery_id: int, claimed_until: datetime, until: datetime,
    reason: str,
) -> bool:  # fmt: skip
    """Give a claimed delivery back until ``until`` without counting the attempt."""
    with conn.transaction():
        return (
            conn.execute(
                "UPDATE notification_deliveries SET attempt_count = attempt_count - 1, "
                "claimed_until = NULL, next_attempt_at = %s, error_message = %s "
                "WHERE id = %s AND claimed_until = %s AND status = 'pending'",
                [until, reason, delivery_id, claimed_until],
            ).rowcount
            == 1
        )
