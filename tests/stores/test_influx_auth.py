"""The dashboard's read token reads its two buckets, writes nothing, and is made only once."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from pydantic import SecretStr

from fleetwatch.settings import InfluxSettings
from stores.errors import StoreError
from stores.influx import ensure_bucket, ensure_read_token, make_client, write_token_file
from stores.influx.auth import read_authorizations, read_token_description
from stores.influx.buckets import find_bucket
from tests.conftest import unique_name


@dataclass(frozen=True, slots=True)
class Buckets:
    """Raw, hourly and an unrelated bucket of the test's own, each holding one point."""

    raw: str
    hourly: str
    other: str

    @property
    def read(self) -> tuple[str, str]:
        """The two buckets the token reads."""
        return self.raw, self.hourly


@pytest.fixture
def buckets(client: InfluxDBClient, org: str) -> Iterator[Buckets]:
    """Three fresh buckets with a point each; they and their read tokens are deleted after."""
    prefix = unique_name("auth")
    made = Buckets(f"{prefix}_raw", f"{prefix}_hourly", f"{prefix}_other")
    names = (made.raw, made.hourly, made.other)
    writer = client.write_api(write_options=SYNCHRONOUS)
    for name in names:
        ensure_bucket(client, name, org, 1)
        writer.write(bucket=name, org=org, record=f"probe,bucket={name} value=1i")
    try:
        yield made
    finally:
        for auth in read_authorizations(client, org, made.read):
            client.authorizations_api().delete_authorization(auth.id)
        for name in names:
            bucket = find_bucket(client, name, org)
            if bucket is not None:
                client.buckets_api().delete_bucket(bucket)


ReaderFactory = Callable[[str], InfluxDBClient]


@pytest.fixture
def reader(influx_service: InfluxSettings) -> Iterator[ReaderFactory]:
    """Makes clients holding a given token instead of the operator's; closes them after."""
    opened: list[InfluxDBClient] = []

    def make(token: str) -> InfluxDBClient:
        settings = influx_service.model_copy(update={"influx_token": SecretStr(token)})
        opened.append(make_client(settings))
        return opened[-1]

    yield make
    for client in opened:
        client.close()


def _count(client: InfluxDBClient, bucket: str) -> int:
    """Points in ``bucket`` over the last day, by a Flux query."""
    flux = f'from(bucket: "{bucket}") |> range(start: -1d) |> count() |> yield(name: "n")'
    tables = client.query_api().query(flux)
    return sum(int(record.get_value()) for table in tables for record in table.records)


def test_read_token_queries_its_buckets_and_nothing_else(
    client: InfluxDBClient, org: str, buckets: Buckets, reader: ReaderFactory
) -> None:
    """Flux on both buckets works; a write is refused (403) and another bucket is not found."""
    token = ensure_read_token(client, org, buckets.read)
    dashboard = reader(token)
    assert _count(dashboard, buckets.raw) == 1
    assert _count(dashboard, buckets.hourly) == 1
    writer = dashboard.write_api(write_options=SYNCHRONOUS)
    with pytest.raises(ApiException) as refused:
        writer.write(bucket=buckets.raw, org=org, record="probe value=2i")
    assert refused.value.status in (401, 403)
    with pytest.raises(InfluxDBError, match="could not find bucket"):
        _count(dashboard, buckets.other)
    assert _count(client, buckets.raw) == 1, "the refused write must not have landed"


def test_ensure_read_token_is_idempotent(
    client: InfluxDBClient, org: str, buckets: Buckets
) -> None:
    """A second call returns the same token; one authorization exists, reading both buckets."""
    first = ensure_read_token(client, org, buckets.read)
    assert ensure_read_token(client, org, buckets.read) == first
    (auth,) = read_authorizations(client, org, buckets.read)
    assert auth.token == first
    assert auth.description == read_token_description(buckets.read)
    found = [find_bucket(client, name, org) for name in buckets.read]
    ids = {str(bucket.id) for bucket in found if bucket is not None}
    assert len(ids) == 2
    granted = {(p.action, p.resource.type, p.resource.id) for p in auth.permissions}
    assert granted == {("read", "buckets", bucket_id) for bucket_id in ids}


def test_ensure_read_token_replaces_a_stale_authorization(
    client: InfluxDBClient, org: str, buckets: Buckets, reader: ReaderFactory
) -> None:
    """A bucket recreated under its name gets a new token that reads it; the old one is gone."""
    old = ensure_read_token(client, org, buckets.read)
    hourly = find_bucket(client, buckets.hourly, org)
    assert hourly is not None
    client.buckets_api().delete_bucket(hourly)
    ensure_bucket(client, buckets.hourly, org, 1)
    new = ensure_read_token(client, org, buckets.read)
    assert new != old
    assert [auth.token for auth in read_authorizations(client, org, buckets.read)] == [new]
    assert _count(reader(new), buckets.hourly) == 0  # readable, though empty


def test_ensure_read_token_refuses_a_missing_bucket(
    client: InfluxDBClient, org: str, buckets: Buckets
) -> None:
    """A bucket that does not exist is named in the error, and no token is created."""
    missing = unique_name("missing")
    with pytest.raises(StoreError, match=f"bucket '{missing}' does not exist"):
        ensure_read_token(client, org, (buckets.raw, missing))
    assert read_authorizations(client, org, (buckets.raw, missing)) == []


def test_write_token_file_is_private_and_replaced(tmp_path: Path) -> None:
    """The file is created with its directory, mode 0600, and rewritten whole."""
    path = tmp_path / "state" / "dashboard-token"
    write_token_file(path, "first")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    write_token_file(path, "second")
    assert path.read_text(encoding="utf-8") == "second\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["dashboard-token"]
