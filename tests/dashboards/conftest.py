"""Fixtures running the dashboard against stores of its own, through a read-only role."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import streamlit as st
from sqlalchemy import text

from fleetwatch.settings import InfluxSettings, PostgresSettings
from stores.influx import ensure_bucket, ensure_read_token, make_client
from stores.influx.auth import read_authorizations
from stores.influx.buckets import find_bucket
from stores.postgres import make_engine
from stores.postgres.migrate import upgrade
from stores.postgres.roles import ensure_actions_role, ensure_readonly_role
from tests.conftest import unique_name
from tests.dashboards.dataset import fill_alerting, fill_influx, fill_postgres
from tests.support.dashboard_server import serve_dashboard
from tests.support.people import add_people


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Every test starts and ends with empty Streamlit caches (connections closed)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def dashboard_env(
    pg_settings: PostgresSettings,
    influx_settings: InfluxSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[datetime]:
    """Stores filled with the small fleet of ``dataset``; the dashboard's settings point at
    them, PostgreSQL through a read-only role and InfluxDB through a read token on the
    test's raw and (empty) hourly buckets. Yields the moment the data was built around."""
    now = datetime.now(UTC)
    upgrade(pg_settings)
    engine = make_engine(pg_settings, pool_size=1)
    role, password = unique_name("ro"), unique_name("pw")
    writer = unique_name("act")
    hourly = unique_name("hourly")
    try:
        fill_postgres(engine, now)
        fill_alerting(str(pg_settings.database_url), now)
        with psycopg.connect(str(pg_settings.database_url), autocommit=True) as conn:
            add_people(conn)
        ensure_readonly_role(engine, role, password)
        ensure_actions_role(engine, writer, password)
        with make_client(influx_settings) as client:
            fill_influx(client, influx_settings.influx_bucket, now)
            org = influx_settings.influx_org
            ensure_bucket(client, hourly, org, 30)
            reader = ensure_read_token(client, org, [influx_settings.influx_bucket, hourly])
        host = pg_settings.database_url.hosts()[0]
        database = (pg_settings.database_url.path or "").lstrip("/")
        env = {
            "FLEETWATCH_DASHBOARD_DATABASE_URL": (
                f"postgresql://{role}:{password}@{host['host']}:{host['port']}/{database}"
            ),
            # Sign-in, audit rows and operator actions go through a role of their own.
            "FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL": (
                f"postgresql://{writer}:{password}@{host['host']}:{host['port']}/{database}"
            ),
            "FLEETWATCH_INFLUX_URL": influx_settings.influx_url,
            "FLEETWATCH_INFLUX_TOKEN": influx_settings.influx_token.get_secret_value(),
            "FLEETWATCH_INFLUX_ORG": influx_settings.influx_org,
            "FLEETWATCH_INFLUX_BUCKET": influx_settings.influx_bucket,
            "FLEETWATCH_INFLUX_HOURLY_BUCKET": hourly,
            # The dashboard reads InfluxDB with a token that may only read the two buckets.
            "FLEETWATCH_DASHBOARD_INFLUX_TOKEN": reader,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE", raising=False)
        yield now
    finally:
        st.cache_resource.clear()  # the dashboard's engine lets go of the role first
        with make_client(influx_settings) as client:
            buckets = [influx_settings.influx_bucket, hourly]
            for auth in read_authorizations(client, influx_settings.influx_org, buckets):
                client.authorizations_api().delete_authorization(auth)
            bucket = find_bucket(client, hourly, influx_settings.influx_org)
            if bucket is not None:
                client.buckets_api().delete_bucket(bucket)
        with engine.begin() as conn:
            for name in (role, writer):
                conn.execute(text(f'DROP OWNED BY "{name}"'))
                conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        engine.dispose()


@pytest.fixture
def dashboard_url(dashboard_env: datetime, tmp_path: Path) -> Iterator[str]:
    """``fleetwatch dashboard`` serving ``dataset`` as a real process; yields its base URL."""
    with serve_dashboard(os.environ, tmp_path / "dashboard.log") as url:
        yield url
