"""The dashboard's InfluxDB token: read-only on the heartbeat buckets, created idempotently.

InfluxDB 2.x generates every token itself (``POST /api/v2/authorizations`` ignores a
``token`` field), so the token cannot be fixed in advance like a password: whoever
provisions it hands it over, here through a file only its owner can read.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.domain.authorization import Authorization
from influxdb_client.domain.permission import Permission
from influxdb_client.domain.permission_resource import PermissionResource

from stores.errors import StoreError
from stores.influx.buckets import find_bucket
from stores.influx.client import api_errors

__all__ = [
    "READ_AUTHORIZATION_LABEL",
    "ensure_read_token",
    "read_authorizations",
    "read_token_description",
    "write_token_file",
]

logger = logging.getLogger(__name__)

READ_AUTHORIZATION_LABEL: Final = "fleetwatch dashboard (read-only)"
"""How the dashboard's authorizations begin their description, so a person can spot them."""

_Grant = tuple[str, str, str]  # (action, resource type, resource id)


def read_token_description(buckets: Sequence[str]) -> str:
    """The description that identifies the read token on ``buckets``.

    The bucket names are part of it, so two fleetwatch installations (or test runs) sharing
    an organisation with buckets of their own never take each other's token for theirs.
    """
    return f"{READ_AUTHORIZATION_LABEL}: {', '.join(buckets)}"


def read_authorizations(
    client: InfluxDBClient, org: str, buckets: Sequence[str]
) -> list[Authorization]:
    """The authorizations in ``org`` described as the read token on ``buckets``, oldest first."""
    description = read_token_description(buckets)
    with api_errors(client, "listing authorizations"):
        found = client.authorizations_api().find_authorizations(org=org) or []
    mine = [auth for auth in found if auth.description == description]
    return sorted(mine, key=lambda auth: (str(auth.created_at), str(auth.id)))


def ensure_read_token(client: InfluxDBClient, org: str, buckets: Sequence[str]) -> str:
    """The token of an active authorization that may only read ``buckets``; idempotent.

    ``client`` needs the operator token (it lists, creates and deletes authorizations).
    An existing authorization with exactly these read permissions is kept and its token
    returned again; one that no longer fits (a bucket recreated, the token deactivated or
    hidden) is deleted and replaced, as are duplicates left by two concurrent runs. A Flux
    query names the org, which needs no permission of its own: read on the buckets suffices.

    Raises:
        ValueError: no bucket given.
        StoreError: a bucket does not exist, or InfluxDB refused (StoreUnavailableError when
            it does not answer).
    """
    if not buckets:
        raise ValueError("the read token needs at least one bucket")
    org_id, wanted = _read_grants(client, org, buckets)
    existing = read_authorizations(client, org, buckets)
    keep = next((auth for auth in existing if _fits(auth, wanted)), None)
    for stale in existing:
        if stale is not keep:
            _delete(client, stale)
    if keep is not None:
        logger.debug("read token on %s already exists", ", ".join(buckets))
        return str(keep.token)
    return _create(client, org_id, wanted, read_token_description(buckets))


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path``, readable by its owner only (0600), replacing it atomically.

    A missing parent directory is created (0700). A reader never sees a half-written file:
    the token goes to a temporary file beside it, which then takes its name.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(token + "\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_grants(
    client: InfluxDBClient, org: str, buckets: Sequence[str]
) -> tuple[str, frozenset[_Grant]]:
    """The org's id and a read grant on each bucket (by id: permissions never name buckets)."""
    org_ids, grants = set(), set()
    for name in buckets:
        bucket = find_bucket(client, name, org)
        if bucket is None:
            raise StoreError(
                f"bucket {name!r} does not exist in org {org!r}: run `fleetwatch migrate`"
            )
        org_ids.add(str(bucket.org_id))
        grants.add(("read", "buckets", str(bucket.id)))
    (org_id,) = org_ids  # buckets found in one org belong to it
    return org_id, frozenset(grants)


def _fits(auth: Authorization, wanted: frozenset[_Grant]) -> bool:
    granted = {
        (perm.action, perm.resource.type, perm.resource.id) for perm in auth.permissions or []
    }
    return auth.status == "active" and bool(auth.token) and granted == wanted


def _create(
    client: InfluxDBClient, org_id: str, grants: frozenset[_Grant], description: str
) -> str:
    permissions = [
        Permission(action=action, resource=PermissionResource(type=kind, id=id_, org_id=org_id))
        for action, kind, id_ in sorted(grants)
    ]
    request = Authorization(org_id=org_id, permissions=permissions, description=description)
    with api_errors(client, "creating the read token"):
        created = client.authorizations_api().create_authorization(authorization=request)
    logger.info("created InfluxDB authorization %s (%s)", created.id, description)
    return str(created.token)


def _delete(client: InfluxDBClient, auth: Authorization) -> None:
    with api_errors(client, f"deleting authorization {auth.id}"):
        client.authorizations_api().delete_authorization(auth.id)
    logger.info("deleted stale InfluxDB authorization %s (%s)", auth.id, auth.description)
