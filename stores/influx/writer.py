"""Writing line protocol to InfluxDB, with library errors converted at the boundary."""

from __future__ import annotations

from collections.abc import Sequence

from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from urllib3.exceptions import HTTPError

from stores.errors import StoreError, StoreUnavailableError


class LineWriter:
    """Synchronous, batched writes of millisecond line protocol into one bucket."""

    def __init__(self, client: InfluxDBClient, bucket: str, *, chunk: int = 5000) -> None:
        self._api = client.write_api(write_options=SYNCHRONOUS)
        self._bucket = bucket
        self._chunk = chunk

    def write(self, lines: Sequence[str]) -> None:
        """Write every line or raise; a retry of the same lines is harmless (same keys)."""
        for start in range(0, len(lines), self._chunk):
            part = list(lines[start : start + self._chunk])
            try:
                self._api.write(bucket=self._bucket, record=part, write_precision=WritePrecision.MS)  # type: ignore[arg-type]
            except InfluxDBError as exc:
                status = getattr(exc.response, "status", None)
                if status is not None and int(status) < 500 and int(status) != 429:
                    raise StoreError(f"InfluxDB rejected {len(part)} points: {exc}") from exc
                raise StoreUnavailableError(f"InfluxDB write failed: {exc}") from exc
            except (HTTPError, OSError) as exc:
                raise StoreUnavailableError(f"InfluxDB unreachable: {exc}") from exc
