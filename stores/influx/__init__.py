"""InfluxDB layer: client, buckets, writes, Flux queries, the hourly downsampling task and
the dashboard's read token."""

from stores.influx.auth import ensure_read_token, write_token_file
from stores.influx.buckets import ensure_bucket
from stores.influx.client import make_client, server_version
from stores.influx.tasks import ensure_hourly_task, run_hourly_stats

__all__ = [
    "ensure_bucket",
    "ensure_hourly_task",
    "ensure_read_token",
    "make_client",
    "run_hourly_stats",
    "server_version",
    "write_token_file",
]
