"""InfluxDB layer: client, buckets, writes, Flux queries and the hourly downsampling task."""

from stores.influx.buckets import ensure_bucket
from stores.influx.client import make_client, server_version
from stores.influx.tasks import ensure_hourly_task, run_hourly_stats

__all__ = [
    "ensure_bucket",
    "ensure_hourly_task",
    "make_client",
    "run_hourly_stats",
    "server_version",
]
