"""InfluxDB layer: client, buckets, writes and Flux queries."""

from stores.influx.client import make_client, server_version

__all__ = ["make_client", "server_version"]
