"""``fleetwatch rules | events | notifications | templates | notify``: alerting from a shell.

A rule is ``--kind KIND --metric NAME --op OP`` with ``--warning`` and/or ``--critical``;
``--clear`` sets the hysteresis, ``--for`` how long a breach must hold. Everything is checked
when it is saved: an unknown metric, a threshold of the wrong type, an unknown placeholder
or an address that cannot work is refused with the reason, never found at delivery time.
Recipients are ``email:ops@example.com``, ``sms:+34600000000`` or ``webhook:https://...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import psycopg

from fleetwatch.acting import acts, add_identity
from fleetwatch.running import run_until_signalled
from fleetwatch.settings import AlertSettings, PostgresSettings, load

if TYPE_CHECKING:
    from access import Identity


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the alerting commands to the top-level parser."""
    _rules(sub)
    _templates(sub)
    events = sub.add_parser("events", help="events raised by rules: list, acknowledge, resolve")
    actions = events.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the newest events")
    listing.add_argument("--open", action="store_true", help="only those not resolved")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_events_list)
    for name, handler, text in (
        ("ack", _events_ack, "acknowledge a new event (stops its escalation)"),
        ("resolve", _events_resolve, "resolve an event by hand"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("event_id", type=int)
        add_identity(action)
        action.add_argument("--note", help="why")
        action.set_defaults(handler=acts(handler))

    notes = sub.add_parser("notifications", help="notification deliveries: list, retry")
    actions = notes.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the newest deliveries")
    listing.add_argument("--status", choices=["pending", "held", "sent", "failed", "cancelled"])
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_deliveries_list)
    retry = actions.add_parser("retry", help="send a failed or cancelled delivery again now")
    retry.add_argument("delivery_id", type=int)
    retry.set_defaults(handler=acts(_deliveries_retry))

    _silences(sub)
    _reports(sub)
    _notify_parser(sub)


def _silences(sub: Any) -> None:  # noqa: ANN401
    silences = sub.add_parser(
        "silences",
        help="hold notifications for a device, zone or rule (maintenance windows)",
        description="Events are still recorded; held notifications are released (or dropped "
        "with --drop) when the silence ends.",
    )
    actions = silences.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="a silence, now or later (a maintenance window)")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--device", help="a device's hostname or serial")
    what.add_argument("--zone", type=int)
    what.add_argument("--rule", help="a rule's name")
    add.add_argument("--starts", help="ISO 8601 time (default: now)")
    length = add.add_mutually_exclusive_group(required=True)
    length.add_argument("--until", help="ISO 8601 time it ends")
    length.add_argument("--for", dest="duration", help="how long: 90m, 2h, 1d")
    add.add_argument("--drop", action="store_true", help="drop held notifications at the end")
    add.add_argument(
        "--window",
        metavar="HH:MM-HH:MM",
        help="a mute timing: hold only in this daily window (UTC; may pass midnight)",
    )
    add.add_argument(
        "--weekdays", metavar="mon,tue,...", help="a mute timing: hold only on these days (UTC)"
    )
    add.add_argument("--reason")
    add_identity(add)
    add.set_defaults(handler=acts(_silences_add))
    listing = actions.add_parser("list", help="silences running or to come")
    listing.add_argument("--all", action="store_true", help="ended ones too")
    listing.set_defaults(handler=_silences_list)
    end = actions.add_parser("end", help="end a silence now")
    end.add_argument("silence_id", type=int)
    add_identity(end)
    end.set_defaults(handler=acts(_silences_end))


def _reports(sub: Any) -> None:  # noqa: ANN401
    report = sub.add_parser("report", help="the daily and weekly reports: send one now, list")
    actions = report.add_subparsers(dest="action", metavar="ACTION", required=True)
    send = actions.add_parser("send", help="make the report of the last period and email it")
    send.add_argument("name", choices=["daily", "weekly"])
    send.add_argument("--template", help="whose email recipients get it (default: settings)")
    add_identity(send)
    send.set_defaults(handler=acts(_report_send))
    listing = actions.add_parser("list", help="the newest reports")
    listing.set_defaults(handler=_report_list)


def _notify_parser(sub: Any) -> None:  # noqa: ANN401
    notify = sub.add_parser(
        "notify",
        help="run a delivery worker: send due notifications by email, SMS and webhook",
        description="Several may run: they share the queue without sending anything twice.",
    )
    notify.add_argument(
        "--channel", action="append", help="only these channels (default: every one)"
    )
    notify.set_defaults(handler=_notify)


def _rules(sub: Any) -> None:  # noqa: ANN401
    rules = sub.add_parser("rules", help="rules on device values: list, add, edit, test")
    actions = rules.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every rule")
    listing.set_defaults(handler=_rules_list)
    show = actions.add_parser("show", help="one rule in full (JSON)")
    show.add_argument("name")
    show.set_defaults(handler=_rules_show)
    add = actions.add_parser("add", help="a new rule")
    add.add_argument("name")
    _rule_options(add, required=True)
    add.set_defaults(handler=acts(_rules_add))
    edit = actions.add_parser("edit", help="change a rule (options given replace theirs)")
    edit.add_argument("name")
    edit.add_argument("--rename")
    _rule_options(edit, required=False)
    edit.set_defaults(handler=acts(_rules_edit))
    for name, enabled in (("enable", True), ("disable", False)):
        toggle = actions.add_parser(name, help=f"{name} a rule")
        toggle.add_argument("name")
        add_identity(toggle)
        toggle.set_defaults(handler=acts(_rules_toggle), enabled=enabled)
    test = actions.add_parser("test", help="when the rule would have fired over the stored history")
    test.add_argument("name")
    test.add_argument("--hours", type=float, default=24.0)
    test.set_defaults(handler=_rules_test)


def _rule_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--kind", required=required, help="panel, telemetry, robot_servos, ...")
    parser.add_argument("--metric", required=required, help="a declared metric of the kind")
    parser.add_argument("--op", required=required, choices=["gt", "lt", "gte", "lte", "eq", "neq"])
    parser.add_argument("--warning", type=_number)
    parser.add_argument("--critical", type=_number)
    parser.add_argument("--clear", type=_number, help="clear threshold (hysteresis)")
    parser.add_argument("--for", dest="for_seconds", type=int, help="seconds a breach holds")
    parser.add_argument("--clear-for", type=int, help="seconds the clear condition holds")
    parser.add_argument("--cooldown", type=float, help="minutes between events of a device")
    parser.add_argument(
        "--scope", choices=["device", "kind", "device_type", "zone", "fleet"], help="which devices"
    )
    parser.add_argument("--scope-value", help="the hostname, kind, type or zone of the scope")
    parser.add_argument(
        "--notify",
        action="append",
        metavar="TEMPLATE[:RECIPIENT,...]",
        help="a notification (the template's recipients, or these); repeat for several",
    )
    parser.add_argument(
        "--escalate",
        action="append",
        metavar="MINUTES:TEMPLATE[:RECIPIENT,...]",
        help="sent if nobody acknowledged the event within MINUTES",
    )
    parser.add_argument(
        "--group",
        type=float,
        metavar="SECONDS",
        help="wait this long and send the events of one zone as one notification",
    )
    parser.add_argument(
        "--repeat",
        type=float,
        metavar="MINUTES",
        help="send the notifications again this often until someone acknowledges",
    )
    parser.add_argument("--description")
    add_identity(parser)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        if text.lower() in ("true", "false"):
            return 1.0 if text.lower() == "true" else 0.0
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _templates(sub: Any) -> None:  # noqa: ANN401
    templates = sub.add_parser("templates", help="notification templates: list, add, edit")
    actions = templates.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every template")
    listing.set_defaults(handler=_templates_list)
    show = actions.add_parser("show", help="one template in full (JSON)")
    show.add_argument("name")
    show.set_defaults(handler=_templates_show)
    for name, required in (("add", True), ("edit", False)):
        action = actions.add_parser(name, help=f"{name} a template")
        action.add_argument("name")
        action.add_argument("--message", required=required, help="text with {placeholders}")
        action.add_argument("--subject", help="an email's subject, with {placeholders}")
        action.add_argument(
            "--recipient", action="append", help="TYPE:ADDRESS[=NAME]; repeat (edit: replaces)"
        )
        action.add_argument("--priority", type=int)
        action.add_argument("--retry-count", type=int)
        action.add_argument("--retry-delay", type=float, help="minutes between attempts")
        action.add_argument("--description")
        add_identity(action)
        action.set_defaults(handler=acts(_templates_save), replace=not required)


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(str(load(PostgresSettings).database_url), autocommit=True)


def _fail(message: str) -> int:
    sys.stderr.write(f"fleetwatch: {message}\n")
    return 1


def _print_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> None:
    if not rows:
        sys.stdout.write("(none)\n")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "\n")
    for row in cells:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + "\n")


# --- rules ------------------------------------------------------------------------------


def _rules_list(_: argparse.Namespace) -> int:
    from alerting.book import rule_from_row  # noqa: PLC0415 - heavy imports
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    with _connect() as conn:
        rows = store.load_rules(conn)
    listed = [
        {
            "name": row["name"],
            "enabled": "yes" if row["is_enabled"] else "no",
            "condition": rule_from_row(row).describe(),
            "scope": row["scope_type"] + (f" {row['scope_value']}" if row["scope_value"] else ""),
            "last_triggered": row["last_triggered_at"],
        }
        for row in rows
    ]
    _print_table(listed, ["name", "enabled", "condition", "scope", "last_triggered"])
    return 0


def _show(find: Callable[[psycopg.Connection[Any], str], Mapping[str, object]], name: str) -> int:
    """Print the row ``find`` finds by ``name`` as JSON."""
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    with _connect() as conn:
        try:
            row = find(conn, name)
        except store.NotFoundError as exc:
            return _fail(str(exc))
    sys.stdout.write(json.dumps(row, default=str, indent=2) + "\n")
    return 0


def _rules_show(args: argparse.Namespace) -> int:
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    return _show(store.rule_named, args.name)


def _actions(args: argparse.Namespace) -> tuple[Any, ...] | None:
    """The actions of ``--notify`` and ``--escalate``, or None when neither was given."""
    from alerting.errors import RuleError  # noqa: PLC0415
    from alerting.recipients import Recipient  # noqa: PLC0415
    from alerting.rules import Action  # noqa: PLC0415

    if args.notify is None and args.escalate is None:
        return None
    actions = []
    for text in args.notify or []:
        template, _, recipients = text.partition(":")
        listed = tuple(Recipient.parse(r) for r in _split_recipients(recipients))
        actions.append(
            Action(
                template=template,
                recipients=listed,
                on_resolve=True,
                group_seconds=args.group or 0.0,
                repeat_minutes=args.repeat or 0.0,
            )
        )
    for text in args.escalate or []:
        minutes, _, rest = text.partition(":")
        template, _, recipients = rest.partition(":")
        try:
            after = float(minutes)
        except ValueError:
            raise RuleError(f"--escalate wants MINUTES:TEMPLATE, got {text!r}") from None
        listed = tuple(Recipient.parse(r) for r in _split_recipients(recipients))
        actions.append(Action(template=template, recipients=listed, after_minutes=after))
    return tuple(actions)


def _split_recipients(text: str) -> list[str]:
    """``email:a@x.org,webhook:https://h/p?a=1,b=2`` -> its recipients (a comma starts a new
    one only when a TYPE: follows)."""
    parts: list[str] = []
    for piece in text.split(","):
        if parts and not any(piece.startswith(f"{t}:") for t in ("email", "sms", "webhook")):
            parts[-1] += "," + piece
        elif piece:
            parts.append(piece)
    return parts


def _rule_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "kind": args.kind,
        "metric": args.metric,
        "operator": args.op,
        "warning": args.warning,
        "critical": args.critical,
        "clear": args.clear,
        "for_seconds": args.for_seconds,
        "clear_for_seconds": args.clear_for,
        "cooldown_minutes": args.cooldown,
        "scope": args.scope,
        "scope_value": args.scope_value,
        "description": args.description,
        "actions": _actions(args),
    }
    return {key: value for key, value in changes.items() if value is not None}


def _rules_add(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415
    from alerting import AlertingError  # noqa: PLC0415
    from alerting.rules import Rule  # noqa: PLC0415
    from stores.errors import StoreError  # noqa: PLC0415

    try:
        rule = Rule(name=args.name, **_rule_changes(args))
        actions.save_rule(conn, who, rule)
    except (AlertingError, StoreError, TypeError) as exc:
        return _fail(str(exc))
    sys.stdout.write(f"rule {rule.name} added: {rule.describe()}\n")
    return 0


def _rules_edit(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415
    from alerting import AlertingError  # noqa: PLC0415
    from alerting.book import rule_from_row  # noqa: PLC0415
    from stores.errors import StoreError  # noqa: PLC0415
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    try:
        current = rule_from_row(store.rule_named(conn, args.name))
        changes = _rule_changes(args)
        if args.rename:
            changes["name"] = args.rename
        if "scope" in changes and changes["scope"] == "fleet":
            changes.setdefault("scope_value", None)
        rule = replace(current, device_id=None, **changes)
        actions.save_rule(conn, who, rule, previous=args.name)
    except (AlertingError, StoreError, TypeError) as exc:
        return _fail(str(exc))
    sys.stdout.write(f"rule {rule.name} changed: {rule.describe()}\n")
    return 0


def _rules_toggle(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    try:
        actions.set_rule_enabled(conn, who, args.name, enabled=args.enabled)
    except store.NotFoundError as exc:
        return _fail(str(exc))
    sys.stdout.write(f"rule {args.name} {'enabled' if args.enabled else 'disabled'}\n")
    return 0


def _rules_test(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from alerting.backtest import backtest  # noqa: PLC0415
    from alerting.book import rule_from_row  # noqa: PLC0415
    from fleetwatch.settings import InfluxSettings  # noqa: PLC0415
    from stores import StoreError  # noqa: PLC0415
    from stores.influx import make_client  # noqa: PLC0415
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    stop = datetime.now(UTC)
    start = stop - timedelta(hours=args.hours)
    influx = load(InfluxSettings)
    try:
        with _connect() as conn:
            rule = rule_from_row(store.rule_named(conn, args.name))
        with make_client(influx) as client:
            fired = backtest(
                client, influx.influx_bucket, rule, start=start, stop=stop, org=influx.influx_org
            )
    except (StoreError, store.NotFoundError) as exc:
        return _fail(str(exc))
    sys.stdout.write(
        f"rule {rule.name} ({rule.describe()}) over {args.hours:g} h of stored history: "
        f"{len(fired)} event(s)\n"
    )
    _print_table(
        [
            {"opened": f.opened, "resolved": f.resolved or "", "subject": f.subject,
             "severity": f.severity, "value": f"{f.value:g}"}
            for f in fired
        ],
        ["opened", "resolved", "subject", "severity", "value"],
    )  # fmt: skip
    return 0


# --- templates ----------------------------------------------------------------------------


def _templates_list(_: argparse.Namespace) -> int:
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    with _connect() as conn:
        rows = store.load_templates(conn)
    _print_table(
        [
            {
                **row,
                "recipients": ", ".join(f"{r['type']}:{r['address']}" for r in row["recipients"]),
            }
            for row in rows
        ],
        ["name", "priority", "retry_count", "retry_delay_minutes", "is_active", "recipients"],
    )
    return 0


def _templates_show(args: argparse.Namespace) -> int:
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    return _show(store.template_named, args.name)


def _templates_save(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415
    from alerting import AlertingError  # noqa: PLC0415
    from alerting.book import template_from_row, template_to_row  # noqa: PLC0415
    from alerting.recipients import Recipient  # noqa: PLC0415
    from alerting.templates import Template  # noqa: PLC0415
    from stores.errors import StoreError  # noqa: PLC0415
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    changes: dict[str, Any] = {
        "message": args.message,
        "subject": args.subject,
        "priority": args.priority,
        "retry_count": args.retry_count,
        "retry_delay_minutes": args.retry_delay,
        "description": args.description,
    }
    if args.recipient is not None:
        changes["recipients"] = args.recipient
    changes = {key: value for key, value in changes.items() if value is not None}
    try:
        if "recipients" in changes:
            changes["recipients"] = tuple(Recipient.parse(r) for r in changes["recipients"])
        if args.replace:
            template = replace(template_from_row(store.template_named(conn, args.name)), **changes)
        else:
            template = Template(name=args.name, **changes)
        actions.save_template(conn, who, template_to_row(template), replace=args.replace)
    except (AlertingError, StoreError) as exc:
        return _fail(str(exc))
    sys.stdout.write(f"template {template.name} saved ({len(template.recipients)} recipients)\n")
    return 0


# --- events and deliveries ----------------------------------------------------------------


def _events_list(args: argparse.Namespace) -> int:
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    with _connect() as conn:
        rows = store.list_events(conn, open_only=args.open, limit=args.limit)
    _print_table(
        rows, ["id", "timestamp", "severity", "status", "rule", "hostname", "value", "message"]
    )
    return 0


def _events_ack(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    try:
        done = actions.acknowledge_event(conn, who, args.event_id, args.note)
    except store.NotFoundError as exc:
        return _fail(str(exc))
    if not done:
        return _fail(f"event {args.event_id} is not new (acknowledged or resolved already)")
    sys.stdout.write(f"event {args.event_id} acknowledged by {who.username}\n")
    return 0


def _events_resolve(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    try:
        done = actions.resolve_event(conn, who, args.event_id, args.note)
    except store.NotFoundError as exc:
        return _fail(str(exc))
    if not done:
        return _fail(f"event {args.event_id} is resolved already")
    sys.stdout.write(f"event {args.event_id} resolved by {who.username}\n")
    return 0


def _deliveries_list(args: argparse.Namespace) -> int:
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    with _connect() as conn:
        rows = store.list_deliveries(conn, status=args.status, limit=args.limit)
    _print_table(
        rows,
        ["id", "event_id", "rule", "recipient_type", "recipient_address", "status",
         "attempt_count", "sent_at", "error_message"],
    )  # fmt: skip
    return 0


def _deliveries_retry(
    args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity
) -> int:
    from access import actions  # noqa: PLC0415
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    try:
        actions.retry_delivery(conn, who, args.delivery_id)
    except store.NotFoundError as exc:
        return _fail(str(exc))
    sys.stdout.write(f"delivery {args.delivery_id} queued again\n")
    return 0


def _notify(args: argparse.Namespace) -> int:

    from alerting.worker import DeliveryWorker  # noqa: PLC0415

    settings = load(AlertSettings)
    worker = DeliveryWorker(str(load(PostgresSettings).database_url), settings, args.channel)

    run_until_signalled(worker.run)
    return 0


# --- silences -----------------------------------------------------------------------------


def _moment(text: str) -> Any:  # noqa: ANN401 - a datetime
    from datetime import UTC, datetime  # noqa: PLC0415

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(text: str) -> Any:  # noqa: ANN401 - a timedelta
    from datetime import timedelta  # noqa: PLC0415

    units = {"m": "minutes", "h": "hours", "d": "days"}
    number, unit = text[:-1], text[-1:]
    try:
        return timedelta(**{units[unit]: float(number)})
    except (KeyError, ValueError):
        raise ValueError(f"write a duration as 90m, 2h or 1d, not {text!r}") from None


def _silences_add(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from datetime import UTC, datetime  # noqa: PLC0415

    from access import actions  # noqa: PLC0415
    from stores.errors import StoreError  # noqa: PLC0415

    try:
        starts = _moment(args.starts) if args.starts else datetime.now(UTC)
        ends = _moment(args.until) if args.until else starts + _duration(args.duration)
        if ends <= starts:
            raise ValueError("a silence ends after it starts")
        if ends <= datetime.now(UTC):
            raise ValueError("that silence would be over already")
    except ValueError as exc:
        return _fail(str(exc))
    scope, value = (
        ("device", args.device)
        if args.device
        else ("zone", str(args.zone))
        if args.zone is not None
        else ("rule", args.rule)
    )
    try:
        timing = _mute_timing(args.window, args.weekdays)
    except ValueError as exc:
        return _fail(str(exc))
    row = {
        "scope_type": scope, "scope_value": value, "starts_at": starts, "ends_at": ends,
        "on_end": "drop" if args.drop else "release", "reason": args.reason,
        **timing,
    }  # fmt: skip
    try:
        silence_id = actions.add_silence(conn, who, row)
    except StoreError as exc:
        return _fail(str(exc))
    sys.stdout.write(
        f"silence {silence_id}: {scope} {value} from {starts:%Y-%m-%d %H:%M} to "
        f"{ends:%Y-%m-%d %H:%M} UTC, then {row['on_end']}\n"
    )
    return 0


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _mute_timing(window: str | None, weekdays: str | None) -> dict[str, Any]:
    """The window and weekday columns of ``--window 22:00-06:00 --weekdays sat,sun``."""
    from datetime import time  # noqa: PLC0415

    timing: dict[str, Any] = {"weekdays": None, "window_start": None, "window_end": None}
    if window:
        try:
            start, end = (time.fromisoformat(part) for part in window.split("-", 1))
        except ValueError:
            raise ValueError(f"write a window as HH:MM-HH:MM, not {window!r}") from None
        if start == end:
            raise ValueError("a window's start and end differ")
        timing |= {"window_start": start, "window_end": end}
    if weekdays:
        names = [day.strip().lower()[:3] for day in weekdays.split(",")]
        unknown = [name for name in names if name not in _DAYS]
        if unknown:
            raise ValueError(f"unknown weekdays {unknown}; use {','.join(_DAYS)}")
        timing["weekdays"] = sum(1 << _DAYS.index(name) for name in set(names))
    return timing


def _silences_list(args: argparse.Namespace) -> int:
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    with _connect() as conn:
        rows = store.list_silences(conn, current_only=not args.all)
    _print_table(
        rows,
        ["id", "scope_type", "scope_value", "starts_at", "ends_at", "window_start",
         "window_end", "weekdays", "on_end", "held", "reason", "created_by"],
    )  # fmt: skip
    return 0


def _silences_end(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415
    from stores.postgres import alerting_store as store  # noqa: PLC0415

    try:
        actions.end_silence(conn, who, args.silence_id)
    except store.NotFoundError as exc:
        return _fail(str(exc))
    sys.stdout.write(f"silence {args.silence_id} ended; held notifications are settled next\n")
    return 0


# --- reports ------------------------------------------------------------------------------


def _report_send(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from datetime import UTC, datetime  # noqa: PLC0415

    from access import Permission, acting  # noqa: PLC0415
    from reports import schedule  # noqa: PLC0415
    from stores.postgres import reports_store  # noqa: PLC0415

    settings = load(AlertSettings)
    start, end = schedule.last_period(args.name, datetime.now(UTC))
    what = f"send the {args.name} report"
    with acting(conn, who, Permission.EDIT_RULES, what, category="report"):
        report_id, report, pdf = schedule.make(
            conn, args.name, start, end, by=who.username, scheduled=False
        )
        assert report_id is not None  # only scheduled reports are kept once
        recipients = schedule.report_recipients(conn, args.template or settings.report_template)
        error = asyncio.run(schedule.send(settings, report, pdf, recipients))
        reports_store.mark_sent(conn, report_id, [] if error else recipients, error)
    if error:
        return _fail(f"report {report_id} ({report.title}) stored, not emailed: {error}")
    sys.stdout.write(
        f"report {report_id} ({report.title}, {len(pdf):,} bytes) emailed to "
        f"{', '.join(recipients)}\n"
    )
    return 0


def _report_list(_: argparse.Namespace) -> int:
    from stores.postgres import reports_store  # noqa: PLC0415

    with _connect() as conn:
        rows = reports_store.list_reports(conn)
    _print_table(
        rows, ["id", "title", "report_type", "created_at", "pdf_bytes", "sent_at", "send_error"]
    )
    return 0
