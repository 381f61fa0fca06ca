"""Backups of both stores into one directory, and their restore into empty stores.

A backup directory holds::

    manifest.json          versions, times, the buckets by role, every file's size and SHA-256
    postgres/              pg_dump --format=directory (restored with pg_restore)
    influxdb/kv.bolt       InfluxDB's key-value store (kept for the record, never restored)
    influxdb/sql.sqlite    InfluxDB's SQL store (idem)
    influxdb/buckets.json  the backed-up buckets' retention, shard groups and shards
    influxdb/shards/ID.tar.gz   each shard's TSM files

PostgreSQL is dumped first, InfluxDB second. Ingest commits a CDC point to PostgreSQL's
outbox before it writes it to InfluxDB, and deletes it from the outbox only once InfluxDB has
it; so every point the dump counts as committed is either still in the dumped outbox (ingest
replays it after the restore; a replay writes the same series and time, never a duplicate)
or was already in InfluxDB when its backup began. The other order could lose the points that
moved from the outbox to InfluxDB between the two.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleetwatch import __version__
from fleetwatch.settings import PostgresSettings
from stores.backup.errors import (
    BackupDirectoryError,
    BackupError,
    DamagedBackupError,
    TargetNotEmptyError,
)
from stores.backup.influx import (
    INFLUX_DIR,
    BucketEntry,
    InfluxBackupApi,
    backup_buckets,
    restore_buckets,
)
from stores.backup.manifest import (
    MANIFEST_NAME,
    Manifest,
    Versions,
    describe_files,
    read_manifest,
    verify_files,
    write_manifest,
)
from stores.backup.options import BackupOptions, RestoreOptions, RestoreReport, Stores
from stores.backup.postgres import (
    PG_DIR,
    PgTools,
    clear_database,
    describe_server,
    dump,
    relations_in,
    restore_dump,
)
from stores.errors import SchemaError
from stores.postgres import make_engine, require_current

__all__ = [
    "BackupDirectoryError",
    "BackupError",
    "BackupOptions",
    "DamagedBackupError",
    "Manifest",
    "PgTools",
    "RestoreOptions",
    "RestoreReport",
    "Stores",
    "TargetNotEmptyError",
    "backup",
    "read_manifest",
    "restore",
]

logger = logging.getLogger(__name__)


def backup(directory: Path, stores: Stores, options: BackupOptions | None = None) -> Manifest:
    """Back up both stores into ``directory`` (new, or empty); the manifest written last.

    Every service and tool is checked before the first file is written; on failure what was
    written is removed, so a directory is either a whole backup or none.

    Raises:
        BackupDirectoryError: the directory exists and is not empty, or cannot be made.
        BackupError: pg_dump is missing or fails.
        StoreUnavailableError: PostgreSQL or InfluxDB does not answer.
        StoreError: InfluxDB refuses (a token without the operator's rights).
    """
    options = options or BackupOptions()
    started = datetime.now(UTC)
    _check_directory(directory)
    server = describe_server(stores.postgres)
    pg_dump_version = options.tools.version("pg_dump")
    with InfluxBackupApi(stores.influx) as api:
        versions = Versions(
            fleetwatch=__version__,
            postgresql=server.version,
            pg_dump=pg_dump_version,
            influxdb=api.version(),
            schema_revision=server.schema_revision,
        )
        created = _prepare(directory)
        try:
            buckets = _copy_stores(directory, stores, options, api)
            manifest = Manifest(
                started_at=started,
                finished_at=datetime.now(UTC),
                versions=versions,
                database=server.database,
                influx_org=stores.influx.influx_org,
                buckets=buckets,
                files=describe_files(directory),
            )
            write_manifest(directory, manifest)
        except BaseException:
            _discard(directory, created=created)
            raise
    return manifest


def _copy_stores(
    directory: Path, stores: Stores, options: BackupOptions, api: InfluxBackupApi
) -> dict[str, str]:
    """PostgreSQL first, InfluxDB second (the module's docstring says why); the buckets
    backed up by role."""
    dump(
        stores.postgres,
        directory / PG_DIR,
        tools=options.tools,
        jobs=options.jobs,
        snapshot=options.pg_snapshot,
    )
    return backup_buckets(api, stores.buckets, directory)


def restore(
    directory: Path, stores: Stores, options: RestoreOptions | None = None
) -> RestoreReport:
    """Restore the backup in ``directory`` into empty stores.

    The files are checked against the manifest first, then every target: nothing is
    written unless the backup is whole, the database has no tables and no target bucket
    holds points (or ``options.replace``). A bucket that exists but holds nothing (InfluxDB's
    set-up creates one) is replaced without asking.

    Raises:
        BackupDirectoryError: ``directory`` is not a backup (of a layout this code reads).
        DamagedBackupError: a file is missing or does not match its checksum.
        BackupError: pg_restore is missing or fails.
        TargetNotEmptyError: the target holds data and ``options.replace`` is not set.
        StoreUnavailableError: PostgreSQL or InfluxDB does not answer.
    """
    options = options or RestoreOptions()
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    unknown = set(manifest.buckets) - set(stores.buckets)
    if unknown:
        raise BackupDirectoryError(
            f"the backup has buckets this fleetwatch does not know: {unknown}"
        )
    options.tools.path("pg_restore")  # missing: say so before touching anything
    with InfluxBackupApi(stores.influx) as api:
        target = _inspect(stores, manifest, api)
        if target.problems() and not options.replace:
            raise TargetNotEmptyError(
                f"refusing to restore over data: {'; '.join(target.problems())}. Restore into "
                "a new database and an InfluxDB without these buckets, or give --replace to "
                "drop what they hold"
            )
        cleared = _clear(target, stores.postgres, api)
        restore_dump(stores.postgres, directory / PG_DIR, tools=options.tools, jobs=options.jobs)
        restore_buckets(api, directory, manifest.buckets, stores.buckets)
    return RestoreReport(manifest, cleared, _schema_note(stores.postgres))


@dataclass(frozen=True, slots=True)
class _Target:
    """What the restore's target holds already."""

    database: str
    relations: int  # tables, views and sequences
    buckets: tuple[BucketEntry, ...]  # those named like a bucket to restore
    holding: frozenset[str]  # the names of those with points

    def problems(self) -> list[str]:
        """What makes the target not empty, in words."""
        found = [f"InfluxDB bucket {name} holds points" for name in sorted(self.holding)]
        if self.relations:
            found.insert(
                0,
                f"PostgreSQL database {self.database} holds {self.relations} tables, views "
                "or sequences",
            )
        return found


def _inspect(stores: Stores, manifest: Manifest, api: InfluxBackupApi) -> _Target:
    """Look at the target: reaching both stores, so neither is written while one is down."""
    relations = relations_in(stores.postgres)
    api.version()
    org_id = api.org_id()
    names = [stores.buckets[role] for role in manifest.buckets]
    buckets = tuple(found for name in names if (found := api.find_bucket(org_id, name)))
    return _Target(
        database=(stores.postgres.database_url.path or "").lstrip("/"),
        relations=relations,
        buckets=buckets,
        holding=frozenset(b["name"] for b in buckets if api.bucket_has_data(b["name"])),
    )


def _clear(target: _Target, postgres: PostgresSettings, api: InfluxBackupApi) -> tuple[str, ...]:
    """Empty the database and delete the buckets in the way; what was done, in words."""
    cleared = []
    if target.relations:
        clear_database(postgres)
        cleared.append(f"PostgreSQL database {target.database} emptied")
    for bucket in target.buckets:
        api.delete_bucket(bucket)
        held = "it held points" if bucket["name"] in target.holding else "empty"
        cleared.append(f"InfluxDB bucket {bucket['name']} deleted ({held})")
    return tuple(cleared)


def _check_directory(directory: Path) -> None:
    """Refuse a ``directory`` that exists and is not an empty directory."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise BackupDirectoryError(f"{directory} exists and is not a directory")
    if any(directory.iterdir()):
        raise BackupDirectoryError(
            f"{directory} is not empty: back up into a new or empty directory"
        )


def _prepare(directory: Path) -> bool:
    """Make ``directory`` ready for a backup; True when it was created here."""
    _check_directory(directory)
    if directory.exists():
        created = False
    else:
        try:
            directory.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise BackupDirectoryError(f"cannot create {directory}: {exc}") from exc
        created = True
    # The backup holds InfluxDB's tokens and the database's password hashes.
    directory.chmod(0o700)
    (directory / INFLUX_DIR).mkdir()
    return created


def _discard(directory: Path, *, created: bool) -> None:
    """Remove what an unfinished backup wrote (only that)."""
    for name in (PG_DIR, INFLUX_DIR, f".{MANIFEST_NAME}.partial", MANIFEST_NAME):
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if created:
        shutil.rmtree(directory, ignore_errors=True)
    logger.warning("backup into %s did not finish; what it wrote was removed", directory)


def _schema_note(settings: PostgresSettings) -> str | None:
    """None when the restored database is at the revision this code needs, else why not."""
    engine = make_engine(settings, pooled=False)
    try:
        require_current(engine)
    except SchemaError as exc:
        return str(exc)
    finally:
        engine.dispose()
    return None
