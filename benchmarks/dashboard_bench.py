"""Dashboard benchmark: how fast every page renders with a large fleet and a month of history.

    python -m benchmarks.dashboard_bench --devices 10000 --days 30

Fills a database and two buckets of its own with ``benchmarks.fleet_history`` (kept, and
reused by later runs with the same size unless ``--fresh``), then renders every page with
Streamlit's AppTest, as the dashboard process would: once with empty caches (cold: every
query runs) and once more (warm: cached frames), for each period asked. Prints a table of
seconds. ``--drop`` removes the dataset.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import streamlit as st
from psycopg import sql
from pydantic import PostgresDsn
from streamlit.testing.v1 import AppTest

from access.users import reset_demo_users
from benchmarks.fleet_history import HistoryShape, fill_influx, fill_postgres, hostname
from benchmarks.sandbox import database_url, drop_database
from fleetwatch.dashboard_cli import APP
from fleetwatch.settings import InfluxSettings, PostgresSettings
from fleetwatch.settings import load as load_settings
from stores.influx import ensure_bucket, make_client
from stores.influx.buckets import find_bucket
from stores.postgres import make_engine
from stores.postgres.migrate import upgrade
from stores.postgres.rollups import roll_up_daily_counts

logger = logging.getLogger("benchmarks.dashboard")

PAGES = ("fleet", "alarms", "commands", "trends", "storage", "events", "map", "device")
VIEWER = "demo-viewer"
TIMEOUT_S = 300


@dataclass(frozen=True, slots=True)
class Dataset:
    """Where a benchmark fleet lives."""

    pg: PostgresSettings
    influx: InfluxSettings
    raw_bucket: str
    hourly_bucket: str


def _names(devices: int) -> tuple[str, str, str]:
    base = f"dash_bench_{devices}"
    return base, f"{base}_raw", f"{base}_hourly"


def _settings(admin: PostgresSettings, database: str) -> PostgresSettings:
    return PostgresSettings(database_url=PostgresDsn(database_url(admin, database)))


def _database_exists(admin: PostgresSettings, name: str) -> bool:
    with psycopg.connect(str(admin.database_url), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def drop(admin: PostgresSettings, influx: InfluxSettings, devices: int) -> None:
    """Remove the dataset of ``devices`` devices, if there is one."""
    database, *buckets = _names(devices)
    drop_database(admin, database)
    with make_client(influx) as client:
        for name in buckets:
            bucket = find_bucket(client, name, influx.influx_org)
            if bucket is not None:
                client.buckets_api().delete_bucket(bucket)
    logger.info("dropped %s and its buckets", database)


def prepare(
    admin: PostgresSettings, influx: InfluxSettings, shape: HistoryShape, *, fresh: bool
) -> Dataset:
    """The dataset of ``shape``: reused when it exists (and not ``fresh``), else generated."""
    database, raw, hourly = _names(shape.devices)
    dataset = Dataset(_settings(admin, database), influx, raw, hourly)
    if fresh:
        drop(admin, influx, shape.devices)
    if _database_exists(admin, database):
        logger.info("reusing %s (run with --fresh to regenerate)", database)
        upgrade(dataset.pg)
        _roll_up(dataset)
        return dataset
    now = datetime.now(UTC)
    # Writing and downsampling a large fleet takes longer than a dashboard query may.
    with make_client(influx, timeout_ms=900_000) as client:
        ensure_bucket(client, raw, influx.influx_org, 30)
        ensure_bucket(client, hourly, influx.influx_org, 730)
        timings = fill_influx(
            client,
            org=influx.influx_org,
            raw_bucket=raw,
            hourly_bucket=hourly,
            shape=shape,
            now=now,
        )
    # The database last: its existence marks a complete dataset.
    with psycopg.connect(str(admin.database_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    upgrade(dataset.pg)
    timings |= fill_postgres(str(dataset.pg.database_url), shape, now)
    timings["daily roll-up of the counts"] = _roll_up(dataset)
    for part, seconds in timings.items():
        print(f"generated {part:<32} {seconds:8.1f} s")
    return dataset


def _roll_up(dataset: Dataset) -> float:
    """Housekeeping's roll-up of the hourly heartbeat counts into days; seconds taken."""
    engine = make_engine(dataset.pg, pool_size=1)
    try:
        began = time.perf_counter()
        roll_up_daily_counts(engine, datetime.now(UTC))
        return time.perf_counter() - began
    finally:
        engine.dispose()


def _environment(dataset: Dataset) -> None:
    os.environ |= {
        "FLEETWATCH_DATABASE_URL": str(dataset.pg.database_url),
        "FLEETWATCH_INFLUX_URL": dataset.influx.influx_url,
        "FLEETWATCH_INFLUX_TOKEN": dataset.influx.influx_token.get_secret_value(),
        "FLEETWATCH_INFLUX_ORG": dataset.influx.influx_org,
        "FLEETWATCH_INFLUX_BUCKET": dataset.raw_bucket,
        "FLEETWATCH_INFLUX_HOURLY_BUCKET": dataset.hourly_bucket,
    }
    for name in (
        "FLEETWATCH_DASHBOARD_DATABASE_URL",
        "FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL",
        "FLEETWATCH_DASHBOARD_INFLUX_TOKEN",
    ):
        os.environ.pop(name, None)


def _viewer(dataset: Dataset) -> str:
    """The demo users, reset; returns demo-viewer's new password (pages render alike for
    every role: only the controls' notes differ)."""
    with psycopg.connect(str(dataset.pg.database_url), autocommit=True) as conn:
        return reset_demo_users(conn)[VIEWER]


def _signed_in(password: str) -> tuple[AppTest, float]:
    """The app after signing in as demo-viewer; the seconds from submitting the form to the
    first page drawn (argon2id's check included)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    at.text_input(key="sign_in_username").input(VIEWER)
    at.text_input(key="sign_in_password").input(password)
    at.button[0].click()
    return at, _timed_run(at, "sign-in")


def measure_sign_in(password: str, times: int = 5) -> list[float]:
    """Seconds of ``times`` sign-ins, each into a fresh session."""
    return [_signed_in(password)[1] for _ in range(times)]


def _page(page: str, period: str, picked: list[str], password: str) -> AppTest:
    """The app on ``page`` with the sidebar set, after one untimed run that draws it."""
    at, _ = _signed_in(password)
    if page != "fleet":
        at.switch_page(f"app_pages/{page}.py").run()
    at.selectbox(key="filter_period").set_value(period)
    if picked:
        at.multiselect(key="filter_devices").set_value(picked)
    return at


def _timed_run(at: AppTest, what: str) -> float:
    began = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - began
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise RuntimeError(f"{what} failed: {problems}")
    return elapsed


def measure(
    periods: list[str], picked: list[str], password: str
) -> list[tuple[str, str, str, float, float]]:
    """(page, period, selection, cold s, warm s) for every page and period: cold empties
    the caches first (every query runs, the sidebar's device list included), warm reruns."""
    results = []
    selections: list[tuple[str, list[str]]] = [("fleet", [])] + (
        [("picked", picked)] if picked else []
    )
    for period in periods:
        for label, devices in selections:
            for page in PAGES:
                at = _page(page, period, devices, password)
                st.cache_data.clear()
                what = f"{page} ({period}, {label})"
                cold = _timed_run(at, what)
                warm = _timed_run(at, what)
                results.append((page, period, label, cold, warm))
                print(f"{page:<9} {period:<14} {label:<7} cold {cold:6.2f} s  warm {warm:6.2f} s")
    return results


def main() -> None:
    """Parse the arguments, prepare the dataset and print the render times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--fresh", action="store_true", help="regenerate the dataset")
    parser.add_argument("--drop", action="store_true", help="remove the dataset and stop")
    parser.add_argument(
        "--period",
        action="append",
        help="sidebar period to measure (repeatable; default: Last 24 hours, Last 30 days)",
    )
    parser.add_argument("--pick", type=int, default=10, help="devices picked in the sidebar")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    admin, influx = load_settings(PostgresSettings), load_settings(InfluxSettings)
    if args.drop:
        drop(admin, influx, args.devices)
        return
    shape = HistoryShape(devices=args.devices, days=args.days)
    dataset = prepare(admin, influx, shape, fresh=args.fresh)
    _environment(dataset)
    picked = [hostname(n) for n in range(1, min(args.pick, shape.picked) + 1)]
    periods = args.period or ["Last 24 hours", "Last 30 days"]
    password = _viewer(dataset)
    signs = measure_sign_in(password)
    print(
        f"\nsign-in to the first page drawn: median {statistics.median(signs):.2f} s, "
        f"max {max(signs):.2f} s over {len(signs)}"
    )
    print(f"\n{args.devices} devices, {args.days} days; cold = empty caches, warm = cached")
    measure(periods, picked, password)


if __name__ == "__main__":
    main()
