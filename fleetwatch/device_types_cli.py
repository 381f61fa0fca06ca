"""``fleetwatch device-types`` and ``fleetwatch devices``: declare device types, add devices.

A metric on the command line is ``name:unit:type:min:max:dead_band`` (empty parts left
out): ``vibration:mm/s:float:0:100:0.5``, ``running::bool``. A file (TOML or YAML) declares
several types at once, see ``simulator/device_types.toml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import yaml

from fleetwatch.acting import acts, add_identity
from fleetwatch.settings import PostgresSettings, load

if TYPE_CHECKING:
    from access import Identity


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add ``device-types`` and ``devices`` to the top-level parser."""
    types = sub.add_parser(
        "device-types",
        help="declare the types of telemetry devices and their metrics",
        description="A type's metrics (unit, range, dead band) drive validation and the CDC.",
    )
    actions = types.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="declare a new device type")
    add.add_argument("name")
    _type_options(add, metrics_required=True)
    add.set_defaults(handler=_add)
    edit = actions.add_parser("edit", help="change a device type (metrics given replace all)")
    edit.add_argument("name")
    edit.add_argument("--rename", help="a new name")
    _type_options(edit, metrics_required=False)
    edit.set_defaults(handler=_edit)
    listing = actions.add_parser("list", help="every device type")
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one device type in full (YAML)")
    show.add_argument("name")
    show.set_defaults(handler=_show)
    load_file = actions.add_parser("load", help="create or replace the types of a file")
    source = load_file.add_mutually_exclusive_group(required=True)
    source.add_argument("file", type=Path, nargs="?", help="a .toml, .yaml or .yml file")
    source.add_argument(
        "--demo", action="store_true", help="the types the simulator's telemetry devices are of"
    )
    load_file.set_defaults(handler=_load)
    delete = actions.add_parser("delete", help="remove a device type that has no devices")
    delete.add_argument("name")
    delete.set_defaults(handler=_delete)

    devices = sub.add_parser("devices", help="add and list devices of declared types")
    device_actions = devices.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_device = device_actions.add_parser("add", help="add a device of a declared type")
    add_device.add_argument("serial", help="serial number; also its MQTT topic level")
    add_device.add_argument("--type", required=True, dest="device_type")
    add_device.add_argument("--name", help="what people call it (default: the serial)")
    add_device.add_argument("--location", help="where it is, e.g. Workshop A")
    add_device.set_defaults(handler=_add_device)
    list_devices = device_actions.add_parser("list", help="devices of declared types")
    list_devices.add_argument("--type", dest="device_type")
    list_devices.set_defaults(handler=_list_devices)
    token = device_actions.add_parser(
        "token",
        help="issue a device's WebSocket token (admins; printed once)",
        description="The device then connects to /ws/SERIAL with it; earlier tokens stay "
        "live until revoked.",
    )
    token.add_argument("serial")
    token.add_argument("--revoke", action="store_true", help="revoke its tokens instead")
    add_identity(token)
    token.set_defaults(handler=acts(_device_token))


def _type_options(parser: argparse.ArgumentParser, *, metrics_required: bool) -> None:
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        required=metrics_required,
        metavar="NAME:UNIT:TYPE:MIN:MAX:DEAD_BAND",
        help="one metric; repeat for several",
    )
    parser.add_argument("--description")
    parser.add_argument(
        "--auto-register",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let unknown serials that announce this type become devices of it",
    )


def parse_metric(text: str) -> Any:  # noqa: ANN401 - ingest.kinds.Metric, imported lazily
    """A metric from ``name:unit:type:min:max:dead_band``."""
    from ingest.kinds.telemetry import metric  # noqa: PLC0415

    parts = [*text.split(":"), "", "", "", "", ""][:6]
    if len(text.split(":")) > 6:
        raise ValueError(f"{text!r}: at most six parts name:unit:type:min:max:dead_band")
    name, unit, kind, low, high, band = parts
    return metric(
        name,
        unit=unit,
        type=kind or "float",
        minimum=float(low) if low else None,
        maximum=float(high) if high else None,
        dead_band=float(band) if band else None,
    )


def _connect() -> psycopg.Connection[Any]:
    return psycopg.connect(str(load(PostgresSettings).database_url), autocommit=True)


def _fail(message: str) -> int:
    sys.stderr.write(f"fleetwatch: {message}\n")
    return 1


def _add(args: argparse.Namespace) -> int:
    from ingest.kinds import DeclarationError  # noqa: PLC0415
    from ingest.kinds.telemetry import DeviceType, to_row  # noqa: PLC0415
    from stores.errors import StoreError  # noqa: PLC0415
    from stores.postgres import device_types  # noqa: PLC0415

    try:
        declared = DeviceType(
            name=args.name,
            description=args.description or "",
            auto_register=bool(args.auto_register),
            metrics=tuple(parse_metric(text) for text in args.metric),
        )
        with _connect() as conn:
            device_types.create(conn, to_row(declared))
    except (DeclarationError, ValueError, StoreError) as exc:
        return _fail(str(exc))
    sys.stdout.write(f"device type {declared.name}: {len(declared.metrics)} metrics\n")
    return 0


def _edit(args: argparse.Namespace) -> int:
    from dataclasses import replace  # noqa: PLC0415

    from ingest.kinds import DeclarationError  # noqa: PLC0415
    from ingest.kinds.telemetry import from_row, to_row  # noqa: PLC0415
    from stores.postgres import device_types  # noqa: PLC0415

    try:
        with _connect() as conn:
            stored = device_types.find(conn, args.name)
            if stored is None:
                return _fail(f"no device type {args.name!r}")
            current = from_row(stored)
            changed = replace(
                current,
                name=args.rename or current.name,
                description=current.description if args.description is None else args.description,
                auto_register=current.auto_register
                if args.auto_register is None
                else args.auto_register,
                metrics=tuple(parse_metric(t) for t in args.metric)
                if args.metric
                else current.metrics,
            )
            device_types.replace(conn, args.name, to_row(changed))
    except (DeclarationError, ValueError, psycopg.errors.UniqueViolation) as exc:
        return _fail(str(exc).splitlines()[0])
    sys.stdout.write(f"device type {changed.name}: updated\n")
    return 0


def _list(_: argparse.Namespace) -> int:
    from stores.postgres import device_types  # noqa: PLC0415

    with _connect() as conn:
        rows = device_types.load(conn)
        counts = dict(
            conn.execute(
                "SELECT device_type_id, count(*) FROM devices WHERE device_type_id IS NOT NULL "
                "GROUP BY device_type_id"
            ).fetchall()
        )
    sys.stdout.write(f"{'type':<30} {'devices':>8}  metrics\n")
    for row in rows:
        names = ", ".join(f"{m.name} ({m.unit})" if m.unit else m.name for m in row.metrics)
        sys.stdout.write(f"{row.name:<30} {counts.get(row.id, 0):>8}  {names}\n")
    return 0


def _show(args: argparse.Namespace) -> int:
    from ingest.kinds.telemetry import from_row, to_mapping  # noqa: PLC0415
    from stores.postgres import device_types  # noqa: PLC0415

    with _connect() as conn:
        stored = device_types.find(conn, args.name)
    if stored is None:
        return _fail(f"no device type {args.name!r}")
    text = yaml.safe_dump(to_mapping(from_row(stored)), sort_keys=False, allow_unicode=True)
    sys.stdout.write(text)
    return 0


def _load(args: argparse.Namespace) -> int:
    from ingest.kinds import DeclarationError  # noqa: PLC0415
    from ingest.kinds.telemetry import load_file, to_row  # noqa: PLC0415
    from stores.postgres import device_types  # noqa: PLC0415

    if args.demo:
        from simulator.telemetry import TYPES_FILE  # noqa: PLC0415

        args.file = TYPES_FILE
    try:
        declared = load_file(args.file)
    except (DeclarationError, OSError) as exc:
        return _fail(str(exc))
    with _connect() as conn, conn.transaction():
        for device_type in declared:
            row = to_row(device_type)
            verb = "replaced" if device_types.replace(conn, device_type.name, row) else "created"
            if verb == "created":
                device_types.create(conn, row)
            sys.stdout.write(f"device type {device_type.name}: {verb}\n")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from stores.errors import StoreError  # noqa: PLC0415
    from stores.postgres import device_types  # noqa: PLC0415

    try:
        with _connect() as conn:
            if not device_types.delete(conn, args.name):
                return _fail(f"no device type {args.name!r}")
    except StoreError as exc:
        return _fail(str(exc))
    sys.stdout.write(f"device type {args.name}: deleted\n")
    return 0


def _add_device(args: argparse.Namespace) -> int:
    from ingest.contract.topics import HOSTNAME_PATTERN  # noqa: PLC0415
    from ingest.kinds.telemetry import KIND  # noqa: PLC0415
    from stores.errors import StoreError  # noqa: PLC0415
    from stores.postgres import device_types  # noqa: PLC0415

    if not HOSTNAME_PATTERN.fullmatch(args.serial):
        return _fail(
            f"serial {args.serial!r} must match {HOSTNAME_PATTERN.pattern} (a topic level)"
        )
    try:
        with _connect() as conn:
            stored = device_types.find(conn, args.device_type)
            if stored is None or stored.id is None:
                return _fail(f"no device type {args.device_type!r}")
            device_id = device_types.add_device(
                conn, KIND, args.serial, stored.id, name=args.name, location=args.location
            )
    except StoreError as exc:
        return _fail(str(exc))
    sys.stdout.write(f"device {args.serial} ({args.device_type}): id {device_id}\n")
    return 0


def _list_devices(args: argparse.Namespace) -> int:
    from stores.postgres import device_types  # noqa: PLC0415

    with _connect() as conn:
        rows = device_types.typed_devices(conn, args.device_type)
    sys.stdout.write(f"{'serial':<24} {'type':<24} {'status':<9} {'online':<7} last seen\n")
    for d in rows:
        seen = d.last_seen.isoformat(timespec="seconds") if d.last_seen else "never"
        online = "yes" if d.is_online else "no"
        sys.stdout.write(
            f"{d.serial_number:<24} {d.device_type:<24} {d.status:<9} {online:<7} {seen}\n"
        )
    return 0


def _device_token(args: argparse.Namespace, conn: psycopg.Connection[Any], who: Identity) -> int:
    from access.devices import issue_token, revoke_tokens  # noqa: PLC0415

    try:
        if args.revoke:
            revoked = revoke_tokens(conn, who, args.serial)
            sys.stdout.write(f"{revoked} token(s) of {args.serial} revoked\n")
            return 0
        secret = issue_token(conn, who, args.serial)
    except LookupError as exc:
        return _fail(str(exc).strip("'\""))
    sys.stderr.write(f"device token of {args.serial}; it is shown this once:\n")
    sys.stdout.write(f"{secret}\n")
    return 0
