"""What a backup or a restore works on, and how."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from fleetwatch.settings import InfluxSettings, PostgresSettings
from stores.backup.manifest import Manifest
from stores.backup.postgres import PgTools

__all__ = ["BackupOptions", "RestoreOptions", "RestoreReport", "Stores", "default_jobs"]

MAX_DEFAULT_JOBS = 4
"""More parallel jobs than this rarely help: a few large tables dominate the dump."""


def default_jobs() -> int:
    """Parallel pg_dump/pg_restore jobs by default: one per core, at most four."""
    return max(1, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


@dataclass(frozen=True, kw_only=True, slots=True)
class Stores:
    """The stores a backup reads or a restore writes.

    Attributes:
        postgres: the database.
        influx: the InfluxDB instance, its organisation and the raw bucket's name.
        hourly_bucket: the name of the hourly downsample's bucket.
    """

    postgres: PostgresSettings
    influx: InfluxSettings
    hourly_bucket: str

    @property
    def buckets(self) -> dict[str, str]:
        """fleetwatch's buckets by role: a restore maps the backup's onto these names."""
        return {"raw": self.influx.influx_bucket, "hourly": self.hourly_bucket}


def _check_jobs(jobs: int) -> None:
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")


@dataclass(frozen=True, kw_only=True, slots=True)
class BackupOptions:
    """How to back up.

    Attributes:
        jobs: parallel pg_dump jobs (a table each).
        tools: where pg_dump is.
        pg_snapshot: dump as the transaction that exported this snapshot
            (``pg_export_snapshot()``) sees the database, to compare against it exactly.
    """

    jobs: int = field(default_factory=default_jobs)
    tools: PgTools = field(default_factory=PgTools)
    pg_snapshot: str | None = None

    def __post_init__(self) -> None:
        _check_jobs(self.jobs)


@dataclass(frozen=True, kw_only=True, slots=True)
class RestoreOptions:
    """How to restore.

    Attributes:
        jobs: parallel pg_restore jobs.
        tools: where pg_restore is.
        replace: empty a database and delete buckets that hold data, instead of refusing.
    """

    jobs: int = field(default_factory=default_jobs)
    tools: PgTools = field(default_factory=PgTools)
    replace: bool = False

    def __post_init__(self) -> None:
        _check_jobs(self.jobs)


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore did.

    Attributes:
        manifest: the backup restored.
        cleared: what was emptied or deleted in the target first.
        schema_note: None when the restored database is at the revision this fleetwatch
            needs; else what to do about it (``fleetwatch migrate``, or a newer fleetwatch).
    """

    manifest: Manifest
    cleared: tuple[str, ...]
    schema_note: str | None
