"""``fleetwatch backup`` and ``fleetwatch restore``: both stores into one directory and back."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetwatch.settings import InfluxSettings, PostgresSettings, RetentionSettings, load
from stores.errors import StoreError

if TYPE_CHECKING:
    from stores.backup import Manifest, Stores

EXIT_FAILED = 1
"""A store did not answer or refused, or pg_dump/pg_restore is missing or failed."""
EXIT_REFUSED = 2
"""Nothing was done: DIR is not usable (or not a whole backup), or the target holds data."""

_EXIT_STATUS = """\
exit status: 0 done; 1 failed (a store unreachable or refusing, pg_dump or pg_restore
missing or failing); 2 refused before starting (DIR not usable, not a backup or damaged,
the restore's target not empty, bad settings)
"""

BACKUP_HELP = """\
Backs up PostgreSQL with pg_dump (directory format, --jobs tables at a time) and
InfluxDB's raw and hourly buckets through its backup API, into DIR (new or empty), with
manifest.json: versions, start and end times, every file's size and SHA-256. Ingest may
keep running: the dump is one consistent snapshot, taken before InfluxDB's part, so every
point PostgreSQL has committed is in the backup (in InfluxDB's part or in the dumped
outbox, which ingest replays after a restore). Needs pg_dump of the server's major
version or newer, and InfluxDB's operator token (FLEETWATCH_INFLUX_TOKEN).
"""

RESTORE_HELP = """\
Checks every file of DIR against its manifest, then restores into empty stores:
FLEETWATCH_DATABASE_URL must name a database without tables (create it with CREATE
DATABASE, do not migrate it), and no bucket named FLEETWATCH_INFLUX_BUCKET or
FLEETWATCH_INFLUX_HOURLY_BUCKET may hold points; --replace drops what they hold instead.

InfluxDB: set the instance up (onboard it) with the organisation FLEETWATCH_INFLUX_ORG
and an operator token first, as a new installation is. The restore recreates the buckets
there, with their retention, under the configured names, and keeps the instance's own
users and tokens: loading the backup's whole InfluxDB metadata would replace them with the
old instance's. Owners and grants are left out of the database as well.

Then run `fleetwatch migrate`: it brings the schema to this version, and re-creates the
downsampling task, the dashboard's roles and grants and its read token. Start ingest last:
it writes the points the backup's outbox still held.
"""


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``backup`` and ``restore`` commands to the top-level parser."""
    backup = sub.add_parser(
        "backup",
        help="back up PostgreSQL and InfluxDB into a directory, with a manifest",
        description=BACKUP_HELP,
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backup.add_argument("directory", type=Path, metavar="DIR", help="a new or empty directory")
    _tool_options(backup, "pg_dump")
    backup.set_defaults(handler=_backup)
    restore = sub.add_parser(
        "restore",
        help="restore a backup into an empty database and InfluxDB",
        description=RESTORE_HELP,
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    restore.add_argument("directory", type=Path, metavar="DIR", help="a backup's directory")
    _tool_options(restore, "pg_restore")
    restore.add_argument(
        "--replace",
        action="store_true",
        help="empty a database that has tables and delete buckets that hold points, "
        "instead of refusing",
    )
    restore.set_defaults(handler=_restore)


def _tool_options(parser: argparse.ArgumentParser, tool: str) -> None:
    parser.add_argument(
        "--jobs",
        type=int,
        choices=range(1, 65),
        metavar="N",
        help=f"parallel {tool} jobs, a table each (default: one per core, at most 4)",
    )
    parser.add_argument(
        "--pg-bin",
        type=Path,
        metavar="BINDIR",
        help=f"the directory of {tool} (default: the PATH), e.g. /usr/lib/postgresql/16/bin",
    )


def _stores() -> Stores:
    from stores.backup import Stores  # noqa: PLC0415 - heavy imports

    # One INFO line per HTTP request (a shard each) would bury what the backup says.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return Stores(
        postgres=load(PostgresSettings),
        influx=load(InfluxSettings),
        hourly_bucket=load(RetentionSettings).influx_hourly_bucket,
    )


def _backup(args: argparse.Namespace) -> int:
    from stores.backup import BackupOptions, PgTools, backup  # noqa: PLC0415 - heavy imports
    from stores.backup.options import default_jobs  # noqa: PLC0415

    options = BackupOptions(jobs=args.jobs or default_jobs(), tools=PgTools(args.pg_bin))
    try:
        manifest = backup(args.directory, _stores(), options)
    except StoreError as exc:
        return _exit_status("backup", exc)
    seconds = (manifest.finished_at - manifest.started_at).total_seconds()
    _summary(f"backed up into {args.directory}: {_size(manifest)} in {seconds:.1f} s", manifest)
    return 0


def _restore(args: argparse.Namespace) -> int:
    from stores.backup import PgTools, RestoreOptions, restore  # noqa: PLC0415 - heavy imports
    from stores.backup.options import default_jobs  # noqa: PLC0415

    jobs = args.jobs or default_jobs()
    options = RestoreOptions(jobs=jobs, tools=PgTools(args.pg_bin), replace=args.replace)
    began = time.monotonic()
    try:
        report = restore(args.directory, _stores(), options)
    except StoreError as exc:
        return _exit_status("restore", exc)
    for done in report.cleared:
        sys.stdout.write(f"first: {done}\n")
    made = f"{report.manifest.started_at:%Y-%m-%d %H:%M:%S} UTC"
    _summary(
        f"restored {args.directory} (backup of {made}, {_size(report.manifest)}) in "
        f"{time.monotonic() - began:.1f} s",
        report.manifest,
    )
    if report.schema_note is None:
        sys.stdout.write("next: run `fleetwatch migrate` (task, dashboard roles and token)\n")
    else:
        sys.stdout.write(f"next: {report.schema_note}\n")
    return 0


def _exit_status(command: str, exc: StoreError) -> int:
    """Say why ``command`` stopped; its exit status."""
    from stores.backup import BackupDirectoryError, TargetNotEmptyError  # noqa: PLC0415

    sys.stderr.write(f"fleetwatch {command}: {exc}\n")
    refused = isinstance(exc, BackupDirectoryError | TargetNotEmptyError)
    return EXIT_REFUSED if refused else EXIT_FAILED


def _summary(headline: str, manifest: Manifest) -> None:
    versions = manifest.versions
    buckets = ", ".join(f"{name} ({role})" for role, name in manifest.buckets.items()) or "none"
    sys.stdout.write(
        f"{headline}\n"
        f"postgresql: database {manifest.database}, server {versions.postgresql}, "
        f"schema revision {versions.schema_revision or 'none'}\n"
        f"influxdb: {versions.influxdb}, org {manifest.influx_org}, buckets {buckets}\n"
    )


def _size(manifest: Manifest) -> str:
    return f"{len(manifest.files)} files, {manifest.total_bytes / 1e6:.1f} MB"
