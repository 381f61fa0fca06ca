"""``fleetwatch command send|list|show|cancel``: operators' commands to devices."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from fleetwatch.acting import acts, add_identity
from fleetwatch.settings import PostgresSettings, load

if TYPE_CHECKING:
    from access import Identity

KINDS_HELP = (
    "reboot {delayMs}, output_control {output: SIREN|TURRET, pattern, durationSeconds, on}, "
    "config_update {values: {k: v}}, ota_update {url, version, sha256}, "
    "diagnostic {action}, set_device_id {deviceDbId}"
)


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``command`` subcommand and its actions to the top-level parser."""
    command = sub.add_parser(
        "command",
        help="send commands to devices and follow them",
        description="Commands are queued in PostgreSQL and sent by the running ingest service. "
        "Sending and cancelling act as a person (FLEETWATCH_TOKEN or --as): the authorisation "
        "level comes from their role.",
    )
    actions = command.add_subparsers(dest="action", metavar="ACTION", required=True)

    send = actions.add_parser("send", help="queue a command for one or more devices")
    send.add_argument("kind", help=f"payload kind: {KINDS_HELP}")
    send.add_argument("--payload", default="{}", help="payload fields as JSON")
    send.add_argument("--device", action="append", default=[], metavar="HOSTNAME")
    send.add_argument("--zone", type=int)
    send.add_argument("--country")
    send.add_argument("--firmware")
    send.add_argument("--online", action="store_true", help="only devices online now")
    send.add_argument("--all", action="store_true", help="every active device")
    add_identity(send)
    send.add_argument("--max-retries", type=int)
    send.add_argument("--expires-in", type=float, help="seconds to wait for an offline device")
    send.set_defaults(handler=acts(_send))

    listing = actions.add_parser("list", help="the newest commands")
    listing.add_argument("--status")
    listing.add_argument("--device", metavar="HOSTNAME")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="one command in full")
    show.add_argument("request_id")
    show.set_defaults(handler=_show)

    cancel = actions.add_parser("cancel", help="stop commands that are not finished")
    cancel.add_argument("request_ids", nargs="+")
    add_identity(cancel)
    cancel.set_defaults(handler=acts(_cancel))


def _api() -> Any:  # noqa: ANN401 - imported lazily to keep `fleetwatch --help` fast
    from ingest.command_api import CommandApi  # noqa: PLC0415

    return CommandApi(load(PostgresSettings))


def _send(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415
    from ingest.commands import CommandError, CommandSpec  # noqa: PLC0415
    from stores.postgres.commands_store import TargetFilter  # noqa: PLC0415

    try:
        spec = CommandSpec(args.kind, json.loads(args.payload))
        target = TargetFilter(
            hostnames=args.device,
            zone=args.zone,
            country=args.country,
            firmware=args.firmware,
            online=True if args.online else None,
            every_device=args.all,
        )
        expires = timedelta(seconds=args.expires_in) if args.expires_in else None
        rows = actions.send_command(
            conn, who, spec, target, max_retries=args.max_retries, expires_in=expires
        )
    except (CommandError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for row in rows:
        sys.stdout.write(f"{row.request_id}  {row.hostname}  {row.command_type}  {row.status}\n")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = _api().recent(status=args.status, hostname=args.device, limit=args.limit)
    sys.stdout.write(f"{'request_id':36}  {'device':16} {'type':10} {'status':12} retries  sent\n")
    for r in rows:
        sent = r.sent_at.isoformat(timespec="seconds") if r.sent_at else "-"
        sys.stdout.write(
            f"{r.request_id:36}  {r.hostname or '?':16} {r.command_type:10} {r.status:12} "
            f"{r.retry_count}/{r.max_retries:<5} {sent}\n"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    row = _api().show(args.request_id)
    if row is None:
        sys.stderr.write(f"no command {args.request_id}\n")
        return 1
    for name in row.__dataclass_fields__:
        value = getattr(row, name)
        shown = json.dumps(value) if isinstance(value, dict) else value
        sys.stdout.write(f"{name:16} {shown}\n")
    return 0


def _cancel(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access import actions  # noqa: PLC0415

    done = actions.cancel_commands(conn, who, args.request_ids)
    for request_id in done:
        sys.stdout.write(f"cancelled {request_id}\n")
    missing = set(args.request_ids) - set(done)
    for request_id in sorted(missing):
        sys.stderr.write(f"not cancelled (unknown or already finished): {request_id}\n")
    return 0 if not missing else 1
