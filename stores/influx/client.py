"""InfluxDB 2.x client construction and health."""

from __future__ import annotations

from influxdb_client.client.influxdb_client import InfluxDBClient
from urllib3.exceptions import HTTPError

from fleetwatch.settings import InfluxSettings
from stores.errors import StoreUnavailableError

DEFAULT_TIMEOUT_MS = 10_000


def make_client(
    settings: InfluxSettings, *, timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> InfluxDBClient:
    """A client bound to the configured org; close it (or use ``with``) when done."""
    return InfluxDBClient(
        url=settings.influx_url,
        token=settings.influx_token.get_secret_value(),
        org=settings.influx_org,
        timeout=timeout_ms,
    )


def server_version(client: InfluxDBClient) -> str:
    """The server's version; raises StoreUnavailableError when it does not answer."""
    if not client.ping():
        raise StoreUnavailableError(f"InfluxDB unreachable at {client.url}")
    try:
        return str(client.version())
    except (HTTPError, OSError) as exc:
        raise StoreUnavailableError(f"InfluxDB unreachable at {client.url}: {exc}") from exc
