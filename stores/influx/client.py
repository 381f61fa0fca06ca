"""InfluxDB 2.x client construction and health."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.flux_csv_parser import FluxQueryException
from influxdb_client.client.influxdb_client import InfluxDBClient
from urllib3.exceptions import HTTPError

from fleetwatch.settings import InfluxSettings
from stores.errors import StoreError, StoreUnavailableError

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


@contextmanager
def api_errors(client: InfluxDBClient, doing: str) -> Iterator[None]:
    """Convert influxdb-client errors raised while ``doing`` something into store errors.

    No answer, a 5xx or a 429 is StoreUnavailableError (worth retrying later); any other
    refusal (bad Flux, unknown bucket, no permission) is StoreError with the server's reason.
    """
    try:
        yield
    except InfluxDBError as exc:
        status = getattr(exc.response, "status", None)
        reason = exc.message
        if status is None or int(status) >= 500 or int(status) == 429:
            where = client.url
            raise StoreUnavailableError(f"InfluxDB at {where} failed {doing}: {reason}") from exc
        raise StoreError(f"InfluxDB refused {doing}: {reason}") from exc
    except FluxQueryException as exc:
        raise StoreError(f"InfluxDB failed {doing}: {exc.message}") from exc
    except (HTTPError, OSError) as exc:
        raise StoreUnavailableError(f"InfluxDB unreachable at {client.url}: {exc}") from exc
