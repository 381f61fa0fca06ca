"""``manifest.json``: what a backup holds, made by which versions, and every file's checksum.

The manifest is written last, so a directory without one is a backup that did not finish.
A restore reads it first and checks every file against it before touching any store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from stores.backup.errors import BackupDirectoryError, DamagedBackupError

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "FileEntry",
    "Manifest",
    "Versions",
    "describe_files",
    "read_manifest",
    "verify_files",
    "write_manifest",
]

FORMAT = 1
"""The layout version; a restore refuses a backup of a layout it does not know."""

MANIFEST_NAME = "manifest.json"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the backup: its path inside the backup directory, size and SHA-256."""

    path: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        # A manifest is input too: its paths must never lead out of the backup directory.
        parts = PurePosixPath(self.path).parts
        if not parts or PurePosixPath(self.path).is_absolute() or ".." in parts:
            raise ValueError(f"file path {self.path!r} is not inside the backup")
        if self.size < 0:
            raise ValueError(f"{self.path}: negative size {self.size}")
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"{self.path}: {self.sha256!r} is not a SHA-256 digest")


@dataclass(frozen=True, slots=True)
class Versions:
    """What made the backup: restoring into other versions is possible, but worth knowing.

    Attributes:
        fleetwatch: the fleetwatch package.
        postgresql: the PostgreSQL server dumped.
        pg_dump: the ``pg_dump --version`` line of the dumping client.
        influxdb: the InfluxDB server.
        schema_revision: the Alembic revision of the database (None: never migrated).
    """

    fleetwatch: str
    postgresql: str
    pg_dump: str
    influxdb: str
    schema_revision: str | None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A finished backup.

    Attributes:
        started_at: when the backup began (UTC).
        finished_at: when its last file was written (UTC).
        versions: what made it.
        database: the name of the PostgreSQL database dumped.
        influx_org: the InfluxDB organisation its buckets belonged to.
        buckets: each fleetwatch bucket's role (``raw``, ``hourly``) and its name then.
        files: every file of the backup but the manifest.
        format: the layout version.
    """

    started_at: datetime
    finished_at: datetime
    versions: Versions
    database: str
    influx_org: str
    buckets: Mapping[str, str]
    files: tuple[FileEntry, ...]
    format: int = field(default=FORMAT)

    def __post_init__(self) -> None:
        if self.started_at.tzinfo is None or self.finished_at.tzinfo is None:
            raise ValueError("manifest times must be timezone-aware")
        if self.finished_at < self.started_at:
            raise ValueError("a backup cannot finish before it starts")

    @property
    def total_bytes(self) -> int:
        """The size of every file together."""
        return sum(entry.size for entry in self.files)

    def to_json(self) -> str:
        """The manifest as indented JSON."""
        document = asdict(self)
        document["buckets"] = dict(self.buckets)
        document["started_at"] = self.started_at.isoformat()
        document["finished_at"] = self.finished_at.isoformat()
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; raises DamagedBackupError when it is not one."""
        try:
            document: dict[str, Any] = json.loads(text)
            if document.get("format") != FORMAT:
                raise BackupDirectoryError(
                    f"{MANIFEST_NAME}: layout {document.get('format')!r} is not the one this "
                    f"fleetwatch reads ({FORMAT})"
                )
            return cls(
                started_at=datetime.fromisoformat(document["started_at"]),
                finished_at=datetime.fromisoformat(document["finished_at"]),
                versions=Versions(**document["versions"]),
                database=str(document["database"]),
                influx_org=str(document["influx_org"]),
                buckets={str(k): str(v) for k, v in document["buckets"].items()},
                files=tuple(FileEntry(**entry) for entry in document["files"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DamagedBackupError(f"{MANIFEST_NAME} is damaged: {exc}") from exc


def checksum(path: Path) -> FileEntry:
    """The entry of ``path`` with its size and SHA-256, read in chunks (shards are large)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileEntry(path=path.name, size=size, sha256=digest.hexdigest())


def describe_files(root: Path) -> tuple[FileEntry, ...]:
    """Every file under ``root`` (the manifest aside), with its checksum, sorted by path."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative == MANIFEST_NAME:
            continue
        summed = checksum(path)
        entries.append(FileEntry(path=relative, size=summed.size, sha256=summed.sha256))
    return tuple(entries)


def write_manifest(root: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``root`` in one step (written aside, then renamed), so no
    reader ever sees half of it."""
    target = root / MANIFEST_NAME
    partial = root / f".{MANIFEST_NAME}.partial"
    partial.write_text(manifest.to_json(), encoding="utf-8")
    os.chmod(partial, 0o600)
    partial.replace(target)
    return target


def read_manifest(root: Path) -> Manifest:
    """The manifest of the backup in ``root``.

    Raises:
        BackupDirectoryError: ``root`` is not a directory, or holds no manifest (not a backup, or
            one that did not finish).
        DamagedBackupError: the manifest cannot be read as one.
    """
    if not root.is_dir():
        raise BackupDirectoryError(f"{root} is not a directory")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BackupDirectoryError(
            f"{root} holds no {MANIFEST_NAME}: not a fleetwatch backup, or one that did not finish"
        )
    return Manifest.from_json(path.read_text(encoding="utf-8"))


def verify_files(root: Path, manifest: Manifest) -> None:
    """Check every file against the manifest: present, of its size, of its SHA-256.

    Raises DamagedBackupError naming the first file that does not match.
    """
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            raise DamagedBackupError(f"damaged backup: {entry.path} is missing")
        size = path.stat().st_size
        if size != entry.size:
            raise DamagedBackupError(
                f"damaged backup: {entry.path} has {size} bytes, the manifest says {entry.size}"
            )
        if checksum(path).sha256 != entry.sha256:
            raise DamagedBackupError(
                f"damaged backup: {entry.path} does not match its SHA-256 in the manifest "
                "(altered or corrupted)"
            )
