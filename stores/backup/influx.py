"""InfluxDB's part of a backup, through its HTTP backup and restore API (InfluxDB 2.1+).

Backup: ``GET /api/v2/backup/metadata`` answers one multipart body with the instance's
key-value store (``kv``: orgs, users, tokens, tasks, dashboards), its SQLite store (``sql``)
and the manifest of every bucket's shards (``buckets``); ``GET /api/v2/backup/shards/{id}``
answers one shard's TSM files as a tar, after InfluxDB has flushed its in-memory points.

Restore is per bucket: ``POST /api/v2/restore/bucketMetadata`` creates the bucket from its
manifest entry (retention, shard groups) and answers which new shard id stands for each old
one; ``POST /api/v2/restore/shards/{id}`` then loads a shard's tar. The key-value and SQL
snapshots are kept in the backup but never loaded (``/api/v2/restore/kv`` and ``/sql``
would replace the target's users and tokens with the backup's); see :func:`restore_buckets`.

Every endpoint needs the operator token (the one InfluxDB's set-up created), not only an
organisation's all-access token.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Self

import httpx

from fleetwatch.settings import InfluxSettings
from stores.backup.errors import BackupError
from stores.backup.multipart import boundary_of, split_parts
from stores.errors import StoreError, StoreUnavailableError

__all__ = [
    "BUCKETS_FILE",
    "INFLUX_DIR",
    "BucketEntry",
    "InfluxBackupApi",
    "backup_buckets",
    "restore_buckets",
    "shard_ids",
]

logger = logging.getLogger(__name__)

INFLUX_DIR = "influxdb"
BUCKETS_FILE = f"{INFLUX_DIR}/buckets.json"
"""The manifest entries of the backed-up buckets, as InfluxDB describes them."""
SHARDS_DIR = f"{INFLUX_DIR}/shards"

# The instance's own stores, as the metadata answer names its parts.
_METADATA_FILES = {"kv": f"{INFLUX_DIR}/kv.bolt", "sql": f"{INFLUX_DIR}/sql.sqlite"}

# A large shard is flushed and linked before its first byte: allow minutes between reads.
_TIMEOUT = httpx.Timeout(30.0, read=900.0)
_CHUNK = 1 << 20
_FAR_FUTURE = "2200-01-01T00:00:00Z"  # a range's default stop is now()

BucketEntry = dict[str, Any]
"""One bucket of InfluxDB's backup manifest (``BucketMetadataManifest`` in its API)."""


class InfluxBackupApi:
    """The few InfluxDB endpoints a backup and a restore use, on one HTTP connection.

    Use it as a context manager. Raises StoreUnavailableError when InfluxDB does not answer
    (or answers 5xx/429) and StoreError when it refuses.
    """

    def __init__(self, settings: InfluxSettings) -> None:
        self.url = settings.influx_url
        self.org = settings.influx_org
        token = settings.influx_token.get_secret_value()
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Token {token}"}, timeout=_TIMEOUT
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def version(self) -> str:
        """The server's version (``/health``); the first call, so an unreachable InfluxDB is
        reported before anything else happens."""
        with self._errors("health check"):
            answer = self._http.get("/health")
            _check(answer, "the health check")
            return str(answer.json().get("version", "unknown"))

    def org_id(self) -> str:
        """The id of the configured organisation; raises StoreError when it is missing."""
        with self._errors(f"looking up organisation {self.org!r}"):
            answer = self._http.get("/api/v2/orgs", params={"org": self.org})
            orgs = answer.json().get("orgs", []) if answer.status_code == 200 else []
            if answer.status_code not in (200, 404):
                _check(answer, f"looking up organisation {self.org!r}")
        if not orgs:
            raise StoreError(
                f"InfluxDB at {self.url} has no organisation {self.org!r}: set the instance up "
                "with it first (its onboarding, e.g. DOCKER_INFLUXDB_INIT_ORG)"
            )
        return str(orgs[0]["id"])

    def find_bucket(self, org_id: str, name: str) -> BucketEntry | None:
        """The bucket ``name`` of the organisation, or None."""
        with self._errors(f"looking up bucket {name!r}"):
            answer = self._http.get("/api/v2/buckets", params={"orgID": org_id, "name": name})
            if answer.status_code == 404:  # asked by name, InfluxDB says 404 rather than []
                return None
            _check(answer, f"looking up bucket {name!r}")
        found: list[BucketEntry] = answer.json().get("buckets", [])
        return found[0] if found else None

    def bucket_has_data(self, name: str) -> bool:
        """True when the bucket holds at least one point (of any time, future ones too: a
        device clock a little ahead stamps them)."""
        flux = (
            f"from(bucket: {_flux_string(name)}) |> range(start: 0, stop: {_FAR_FUTURE})"
            " |> limit(n: 1)"
            ' |> keep(columns: ["_time"]) |> group() |> limit(n: 1)'
        )
        doing = f"looking into bucket {name!r}"
        with self._errors(doing):
            answer = self._http.post(
                "/api/v2/query",
                params={"org": self.org},
                json={"query": flux, "type": "flux", "dialect": {"annotations": []}},
                headers={"Accept": "application/csv"},
            )
            _check(answer, doing)
        rows = [line for line in answer.text.splitlines() if line.strip()]
        return len(rows) > 1  # a header line, then the point

    def delete_bucket(self, bucket: BucketEntry) -> None:
        """Delete a bucket and its points."""
        doing = f"deleting bucket {bucket['name']!r}"
        with self._errors(doing):
            _check(self._http.delete(f"/api/v2/buckets/{bucket['id']}"), doing)
        logger.info("deleted bucket %s of the target", bucket["name"])

    def download_metadata(self, root: Path) -> list[BucketEntry]:
        """Save the key-value and SQL snapshots under ``root``; the bucket manifest."""
        doing = "the metadata backup"
        files = _PartFiles(root)
        with self._errors(doing), self._http.stream("GET", "/api/v2/backup/metadata") as answer:
            _check(answer, doing)
            boundary = boundary_of(answer.headers.get("content-type", ""))
            with files:
                names = split_parts(answer.iter_bytes(_CHUNK), boundary, files.open)
        if "buckets" not in names:
            raise BackupError(f"InfluxDB's metadata backup had no bucket manifest ({names})")
        entries: list[BucketEntry] = json.loads(files.manifest.getvalue())
        return entries

    def download_shard(self, shard_id: int, target: Path) -> bool:
        """Save one shard's tar, gzipped, to ``target``; False when the shard is gone (its
        retention removed it since the manifest was read)."""
        doing = f"backing up shard {shard_id}"
        path = f"/api/v2/backup/shards/{shard_id}"
        # InfluxDB would gzip the tar at its default level: 6 s per 100 MB shard on one core,
        # against 1 s at level 1 here, for a file 15 % larger (TSM is compressed already).
        headers = {"Accept-Encoding": "identity"}
        with self._errors(doing), self._http.stream("GET", path, headers=headers) as answer:
            if answer.status_code == 404:
                logger.warning("shard %d was removed during the backup; skipped", shard_id)
                return False
            _check(answer, doing)
            with (
                target.open("wb") as out,
                gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as packed,
            ):
                for chunk in answer.iter_bytes(_CHUNK):
                    packed.write(chunk)
        return True

    def restore_bucket(self, entry: BucketEntry) -> dict[int, int]:
        """Create a bucket from its manifest entry; each old shard id's new id."""
        doing = f"restoring bucket {entry['bucketName']!r}"
        with self._errors(doing):
            answer = self._http.post("/api/v2/restore/bucketMetadata", json=entry)
            _check(answer, doing)
        mappings = answer.json().get("shardMappings") or []
        return {int(m["oldId"]): int(m["newId"]) for m in mappings}

    def upload_shard(self, shard_id: int, source: Path) -> None:
        """Load a gzipped shard tar into the (new, empty) shard ``shard_id``."""
        doing = f"restoring shard {shard_id}"
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
        with self._errors(doing):
            answer = self._http.post(
                f"/api/v2/restore/shards/{shard_id}", content=_read_chunks(source), headers=headers
            )
            _check(answer, doing)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """httpx's transport errors as StoreUnavailableError, naming what was being done."""
        try:
            yield
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise StoreUnavailableError(
                f"InfluxDB unreachable at {self.url} ({doing}): {reason}"
            ) from exc


def backup_buckets(api: InfluxBackupApi, buckets: Mapping[str, str], root: Path) -> dict[str, str]:
    """Back up the instance's metadata and the shards of ``buckets`` (role -> name) under
    ``root``; the roles and names of the buckets found (a bucket never created is left out).
    """
    began = time.perf_counter()
    (root / SHARDS_DIR).mkdir(parents=True)
    entries = api.download_metadata(root)
    kept: list[BucketEntry] = []
    found: dict[str, str] = {}
    for role, name in buckets.items():
        entry = _entry_named(entries, api.org, name)
        if entry is None:
            logger.warning("bucket %s (%s) does not exist in InfluxDB; not backed up", name, role)
            continue
        saved = {
            shard
            for shard in shard_ids(entry)
            if api.download_shard(shard, root / SHARDS_DIR / f"{shard}.tar.gz")
        }
        kept.append(_only_shards(entry, saved))
        found[role] = name
        logger.info("bucket %s (%s): %d shards backed up", name, role, len(saved))
    (root / BUCKETS_FILE).write_text(json.dumps(kept, indent=2) + "\n", encoding="utf-8")
    logger.info("InfluxDB backed up in %.1f s", time.perf_counter() - began)
    return found


def restore_buckets(
    api: InfluxBackupApi,
    root: Path,
    backed_up: Mapping[str, str],
    targets: Mapping[str, str],
) -> None:
    """Recreate each backed-up bucket (role -> name then) under its target name (role ->
    name now) in the configured organisation, and load its shards.

    Only buckets are restored, never the backup's key-value and SQL snapshots: those would
    replace the target's users, tokens and tasks with the backup's, and a target set up with
    the same organisation and operator token as the original already has what fleetwatch
    needs, the rest being re-created by ``fleetwatch migrate``. The target buckets must not
    exist (see :func:`stores.backup.restore`).
    """
    org_id = api.org_id()
    entries: list[BucketEntry] = json.loads((root / BUCKETS_FILE).read_text(encoding="utf-8"))
    for role, source_name in backed_up.items():
        began = time.perf_counter()
        entry = next((e for e in entries if e.get("bucketName") == source_name), None)
        if entry is None:
            raise BackupError(f"{BUCKETS_FILE} has no bucket {source_name!r} ({role})")
        target = targets[role]
        renamed = entry | {
            "organizationID": org_id,
            "organizationName": api.org,
            "bucketName": target,
        }
        new_ids = api.restore_bucket(renamed)
        for old_id in shard_ids(entry):
            if old_id not in new_ids:
                raise BackupError(f"InfluxDB made no shard for shard {old_id} of {target!r}")
            api.upload_shard(new_ids[old_id], root / SHARDS_DIR / f"{old_id}.tar.gz")
        logger.info(
            "bucket %s restored as %s (%s): %d shards in %.1f s",
            source_name,
            target,
            role,
            len(new_ids),
            time.perf_counter() - began,
        )


def shard_ids(entry: BucketEntry) -> list[int]:
    """Every shard id of a bucket's manifest entry."""
    return [
        int(shard["id"])
        for policy in entry.get("retentionPolicies") or []
        for group in policy.get("shardGroups") or []
        for shard in group.get("shards") or []
    ]


def _entry_named(entries: list[BucketEntry], org: str, name: str) -> BucketEntry | None:
    return next(
        (e for e in entries if e.get("organizationName") == org and e.get("bucketName") == name),
        None,
    )


def _only_shards(entry: BucketEntry, kept: set[int]) -> BucketEntry:
    """The entry without the shards that were not saved, nor the groups left without any:
    a restore must not recreate shards it has no data for."""
    policies = []
    for policy in entry.get("retentionPolicies") or []:
        groups = []
        for group in policy.get("shardGroups") or []:
            shards = [s for s in group.get("shards") or [] if int(s["id"]) in kept]
            if shards:
                groups.append(group | {"shards": shards})
        policies.append(policy | {"shardGroups": groups})
    return entry | {"retentionPolicies": policies}


class _PartFiles:
    """Opens the file each metadata part goes to; the bucket manifest (small JSON) is kept
    in memory."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self.manifest = io.BytesIO()
        self._open: list[BinaryIO] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        for stream in self._open:
            stream.close()

    def open(self, name: str) -> BinaryIO | None:
        if name == "buckets":
            return self.manifest
        relative = _METADATA_FILES.get(name)
        if relative is None:
            logger.warning("InfluxDB's metadata backup has an unknown part %r; skipped", name)
            return None
        stream = (self._root / relative).open("wb")
        self._open.append(stream)
        return stream


def _check(answer: httpx.Response, doing: str) -> None:
    """Raise for an error answer: StoreUnavailableError for 5xx and 429, else StoreError
    with InfluxDB's own message (and a hint when the token lacks the rights)."""
    if answer.is_success:
        return
    answer.read()
    try:
        message = str(answer.json().get("message", answer.text))
    except ValueError:
        message = answer.text
    status = answer.status_code
    where = f"InfluxDB at {answer.request.url.host}:{answer.request.url.port}"
    if status >= 500 or status == 429:
        raise StoreUnavailableError(f"{where} failed ({doing}, HTTP {status}): {message}")
    hint = ""
    if status in (401, 403):
        hint = (
            "; backups and restores need the instance's operator token "
            "(FLEETWATCH_INFLUX_TOKEN), not an organisation's all-access token"
        )
    raise StoreError(f"{where} refused ({doing}, HTTP {status}): {message}{hint}")


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            yield chunk


def _flux_string(value: str) -> str:
    """``value`` as a Flux string literal (JSON's escapes, and no interpolation)."""
    return json.dumps(value).replace("${", "\\${")
