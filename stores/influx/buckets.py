"""InfluxDB buckets with the retention fleetwatch wants, created or corrected idempotently."""

from __future__ import annotations

import logging
from datetime import timedelta
from http import HTTPStatus

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.domain.bucket import Bucket
from influxdb_client.domain.bucket_retention_rules import BucketRetentionRules
from influxdb_client.rest import ApiException

from stores.influx.client import api_errors

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400


def find_bucket(client: InfluxDBClient, name: str, org: str) -> Bucket | None:
    """The bucket called ``name`` in ``org``, or None."""
    with api_errors(client, f"looking up bucket {name!r}"):
        try:
            found = client.buckets_api().find_buckets(name=name, org=org).buckets or []
        except ApiException as exc:
            # Asked by name, InfluxDB answers a missing bucket with 404 instead of [].
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise
    return found[0] if found else None


def retention_seconds(bucket: Bucket) -> int:
    """How long the bucket keeps points, in seconds; 0 means forever."""
    expiring = [rule for rule in bucket.retention_rules or [] if rule.type == "expire"]
    return int(expiring[0].every_seconds) if expiring else 0


def ensure_bucket(client: InfluxDBClient, name: str, org: str, retention_days: int) -> Bucket:
    """The bucket ``name`` in ``org``, keeping points ``retention_days``; idempotent.

    Creates the bucket when it is missing and corrects its retention when it differs; a
    bucket already right is left untouched. Raises StoreError (StoreUnavailableError when
    InfluxDB does not answer).
    """
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, got {retention_days}")
    wanted = retention_days * SECONDS_PER_DAY
    api = client.buckets_api()
    bucket = find_bucket(client, name, org)
    if bucket is None:
        with api_errors(client, f"creating bucket {name!r}"):
            bucket = api.create_bucket(bucket_name=name, org=org, retention_rules=_rule(wanted))
        logger.info("created bucket %s (retention %d days)", name, retention_days)
        return bucket
    current = retention_seconds(bucket)
    if current == wanted:
        logger.debug("bucket %s already keeps %d days", name, retention_days)
        return bucket
    bucket.retention_rules = [_rule(wanted)]
    with api_errors(client, f"changing the retention of bucket {name!r}"):
        bucket = api.update_bucket(bucket)
    logger.info(
        "changed retention of bucket %s from %s to %d days",
        name,
        f"{current / SECONDS_PER_DAY:g}" if current else "forever",
        retention_days,
    )
    return bucket


def _rule(every_seconds: int) -> BucketRetentionRules:
    # The shard group duration must not exceed the retention, and InfluxDB keeps the old one
    # on update: give it the duration InfluxDB itself picks for a new bucket.
    return BucketRetentionRules(
        type="expire",
        every_seconds=every_seconds,
        shard_group_duration_seconds=_default_shard_group_seconds(every_seconds),
    )


def _default_shard_group_seconds(retention_s: int) -> int:
    """InfluxDB's default shard group duration for a retention (its ``shardGroupDuration``)."""
    retention = timedelta(seconds=retention_s)
    if retention >= timedelta(days=180):
        return int(timedelta(days=7).total_seconds())
    if retention >= timedelta(days=2):
        return SECONDS_PER_DAY
    return int(timedelta(hours=1).total_seconds())
