"""The ``fleetwatch`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from pydantic import PostgresDsn, SecretStr
from pydantic_settings import BaseSettings

from fleetwatch import (
    __version__,
    alerting_cli,
    api_cli,
    backup_cli,
    bridge_cli,
    command_cli,
    dashboard_cli,
    device_types_cli,
    flux_cli,
    logs,
    users_cli,
)
from fleetwatch.running import run_until_signalled
from fleetwatch.settings import (
    ENV_PREFIX,
    SETTINGS_GROUPS,
    AlertSettings,
    DashboardSettings,
    InfluxSettings,
    IngestSettings,
    KafkaSettings,
    LogSettings,
    MqttSettings,
    PostgresSettings,
    RetentionSettings,
    SettingsError,
    load,
)

if TYPE_CHECKING:
    from influxdb_client.client.influxdb_client import InfluxDBClient

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]

DOWNSAMPLE_TIMEOUT_MS = 3_600_000
"""How long one query of a backfill may take (24 hours of 10,000 devices: about 23 min)."""


def _cmd_config(_: argparse.Namespace) -> int:
    """Print every setting with its effective value (secrets masked)."""
    loaded, errors = [], []
    for group in SETTINGS_GROUPS:
        try:
            loaded.append(load(group))
        except SettingsError as exc:
            errors.append(str(exc))
    if errors:
        raise SettingsError("\n".join(errors))
    for settings in loaded:
        _print_group(settings)
    return 0


def _print_group(settings: BaseSettings) -> None:
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        shown = "********" if isinstance(value, SecretStr) else ("" if value is None else value)
        sys.stdout.write(f"{ENV_PREFIX}{name.upper()}={shown}  # {field.description}\n")


def _cmd_check(args: argparse.Namespace) -> int:
    """Reach each service once and say which are up."""
    from ingest.broker import BrokerUnavailableError, probe  # noqa: PLC0415 - heavy imports
    from stores import (  # noqa: PLC0415
        StoreUnavailableError,
        influx,
        postgres,
    )

    failures = 0

    def report(name: str, check: Callable[[], str]) -> None:
        nonlocal failures
        try:
            sys.stdout.write(f"{name}: ok ({check()})\n")
        except (StoreUnavailableError, BrokerUnavailableError, ConnectionError) as exc:
            failures += 1
            sys.stdout.write(f"{name}: FAILED - {exc}\n")

    def check_postgres() -> str:
        engine = postgres.make_engine(load(PostgresSettings), pool_size=1)
        try:
            return f"PostgreSQL {postgres.server_version(engine)}"
        finally:
            engine.dispose()

    def check_mqtt() -> str:
        settings = load(MqttSettings)
        asyncio.run(probe(settings))
        return f"{settings.mqtt_host}:{settings.mqtt_port}"

    def check_influx() -> str:
        with influx.make_client(load(InfluxSettings)) as client:
            return f"InfluxDB {influx.server_version(client)}"

    report("postgresql", check_postgres)
    report("mqtt", check_mqtt)
    report("influxdb", check_influx)
    if args.kafka:
        report("kafka", _check_kafka)
    if failures:
        sys.stdout.write("start the local services with: scripts/services.sh up\n")
    return 1 if failures else 0


def _check_kafka() -> str:
    """The brokers of a scaled-out deployment answer; what they hold of the topic."""
    from confluent_kafka import KafkaException  # noqa: PLC0415 - loads a C library

    from ingest.transports.kafka import admin_client  # noqa: PLC0415

    settings = load(KafkaSettings)
    admin = admin_client(settings)  # librdkafka's lines go to the log, not the terminal
    try:
        metadata = admin.list_topics(settings.kafka_topic, timeout=5)
    except KafkaException as exc:
        raise ConnectionError(f"{settings.kafka_bootstrap_servers}: {exc}") from exc
    topic = metadata.topics[settings.kafka_topic]
    held = (
        "not created yet (the bridge or a worker creates it)"
        if topic.error is not None
        else f"{len(topic.partitions)} partitions"
    )
    return f"{len(metadata.brokers)} broker(s); topic {settings.kafka_topic}: {held}"


def _install_builtin_rules(settings: PostgresSettings) -> None:
    """Add the built-in notification template, rules and device types that are missing
    (edits are kept)."""
    import psycopg  # noqa: PLC0415

    from alerting import builtin  # noqa: PLC0415 - heavy imports
    from ingest.kinds import builtin_types  # noqa: PLC0415

    with psycopg.connect(str(settings.database_url)) as conn:
        added = builtin.install(conn)
        added += [f"device type {name}" for name in builtin_types.install(conn)]
    for name in added:
        sys.stdout.write(f"postgresql: built-in {name} installed\n")


def _cmd_migrate(_: argparse.Namespace) -> int:
    """Bring PostgreSQL to the schema this version needs, then InfluxDB's buckets and task;
    with the dashboard's settings, also its read-only role and read token."""
    from stores import StoreError, postgres  # noqa: PLC0415 - heavy imports

    settings = load(PostgresSettings)
    influx_settings, retention = load(InfluxSettings), load(RetentionSettings)
    dashboard = load(DashboardSettings)
    if retention.influx_hourly_bucket == influx_settings.influx_bucket:
        raise SettingsError(
            f"{ENV_PREFIX}INFLUX_HOURLY_BUCKET must name another bucket than "
            f"{ENV_PREFIX}INFLUX_BUCKET (both are {influx_settings.influx_bucket!r})"
        )
    role = _dashboard_role(dashboard.dashboard_database_url, "DASHBOARD_DATABASE_URL", settings)
    actions_role = _dashboard_role(
        dashboard.dashboard_actions_database_url, "DASHBOARD_ACTIONS_DATABASE_URL", settings
    )
    if role is not None and actions_role is not None and role[0] == actions_role[0]:
        raise SettingsError(
            f"{ENV_PREFIX}DASHBOARD_DATABASE_URL and {ENV_PREFIX}DASHBOARD_ACTIONS_DATABASE_URL "
            "must name two roles: one only reads, the other takes people's actions"
        )
    engine = postgres.make_engine(settings, pool_size=1)
    try:
        before = postgres.current_revision(engine)
        postgres.upgrade(settings)
        after = postgres.current_revision(engine)
    except StoreError as exc:
        sys.stderr.write(f"fleetwatch migrate: {exc}\n")
        return 1
    finally:
        engine.dispose()
    if before == after:
        sys.stdout.write(f"postgresql: already at revision {after}\n")
    else:
        sys.stdout.write(f"postgresql: migrated from revision {before or 'none'} to {after}\n")
    _install_builtin_rules(settings)
    try:
        if role is not None:
            _ensure_dashboard_role(settings, *role, actions=False)
        if actions_role is not None:
            _ensure_dashboard_role(settings, *actions_role, actions=True)
    except StoreError as exc:
        sys.stderr.write(f"fleetwatch migrate: {exc}\n")
        return 1
    try:
        _migrate_influx(influx_settings, retention, dashboard.dashboard_influx_token_file)
    except StoreError as exc:
        sys.stderr.write(
            f"fleetwatch migrate: {exc}\n"
            "fleetwatch migrate: PostgreSQL is migrated, InfluxDB is not: run `fleetwatch "
            "migrate` again once InfluxDB answers\n"
        )
        return 1
    return 0


def _dashboard_role(
    url: PostgresDsn | None, setting: str, owner: PostgresSettings
) -> tuple[str, str] | None:
    """The role name and password of the dashboard's URL ``setting``, if set and sound.

    Raises:
        SettingsError: the URL names another database than FLEETWATCH_DATABASE_URL (the
            grants would miss it), no password, or the migrating user itself (which the
            dashboard's role would strip of its rights).
    """
    if url is None:
        return None
    name = f"{ENV_PREFIX}{setting}"
    user, owner_user = url.hosts()[0], owner.database_url.hosts()[0]
    role, password = unquote(user["username"] or ""), unquote(user["password"] or "")
    if url.path != owner.database_url.path:
        raise SettingsError(
            f"{name} must name the database of {ENV_PREFIX}DATABASE_URL "
            f"({owner.database_url.path!r}), got {url.path!r}"
        )
    if not password:
        raise SettingsError(f"{name} needs a password: migrate gives it to the role")
    if role == unquote(owner_user["username"] or ""):
        raise SettingsError(
            f"{name} must name a role of its own, not {ENV_PREFIX}DATABASE_URL's user {role!r}"
        )
    return role, password


def _ensure_dashboard_role(
    settings: PostgresSettings, role: str, password: str, *, actions: bool
) -> None:
    """Create or renew a dashboard role: the reader (SELECT only, also on tables created
    later, secrets aside) or the actions role (people's actions only)."""
    from stores import postgres  # noqa: PLC0415 - heavy imports
    from stores.postgres.roles import ensure_actions_role, ensure_readonly_role  # noqa: PLC0415

    engine = postgres.make_engine(settings, pool_size=1)
    try:
        (ensure_actions_role if actions else ensure_readonly_role)(engine, role, password)
    finally:
        engine.dispose()
    what = "people's actions only" if actions else "SELECT only"
    sys.stdout.write(f"postgresql: dashboard role {role}: {what}, password set\n")


def _migrate_influx(
    settings: InfluxSettings, retention: RetentionSettings, token_file: Path | None
) -> None:
    """Ensure the raw and hourly buckets with their retention, and the downsampling task;
    with ``token_file``, the dashboard's read token on both buckets, written there."""
    from ingest.kinds import metric_measurements  # noqa: PLC0415 - heavy imports
    from stores import influx  # noqa: PLC0415
    from stores.influx import buckets, tasks  # noqa: PLC0415

    org = settings.influx_org
    with influx.make_client(settings) as client:
        influx.server_version(client)  # a clear "unreachable" before anything else
        for name, days in (
            (settings.influx_bucket, retention.influx_raw_retention_days),
            (retention.influx_hourly_bucket, retention.influx_hourly_retention_days),
        ):
            before = buckets.find_bucket(client, name, org)
            influx.ensure_bucket(client, name, org, days)
            if before is None:
                done = f"created, retention {days} days"
            elif buckets.retention_seconds(before) != days * buckets.SECONDS_PER_DAY:
                done = f"retention changed to {days} days"
            else:
                done = f"already keeps {days} days"
            sys.stdout.write(f"influxdb: bucket {name}: {done}\n")
        raw, hourly = settings.influx_bucket, retention.influx_hourly_bucket
        existing = tasks.find_tasks(client, org, tasks.task_name(hourly))
        task = influx.ensure_hourly_task(client, org, raw, hourly, metric_measurements())
        if not existing:
            done = f"created (every {task.every}, offset {task.offset}, {raw} -> {hourly})"
        elif existing[0].flux != task.flux or len(existing) > 1:
            done = f"updated ({raw} -> {hourly})"
        else:
            done = "already up to date"
        sys.stdout.write(f"influxdb: task {task.name}: {done}\n")
        if token_file is not None:
            _ensure_dashboard_token(client, org, (raw, hourly), token_file)


def _ensure_dashboard_token(
    client: InfluxDBClient, org: str, buckets: tuple[str, ...], token_file: Path
) -> None:
    """Ensure the read token on ``buckets`` and write it to ``token_file`` (0600)."""
    from stores.influx import auth  # noqa: PLC0415 - heavy imports

    before = {str(found.token) for found in auth.read_authorizations(client, org, buckets)}
    token = auth.ensure_read_token(client, org, buckets)
    try:
        auth.write_token_file(token_file, token)
    except OSError as exc:
        raise SettingsError(
            f"{ENV_PREFIX}DASHBOARD_INFLUX_TOKEN_FILE: cannot write {token_file}: {exc}"
        ) from exc
    done = "kept" if token in before else ("replaced" if before else "created")
    sys.stdout.write(
        f"influxdb: dashboard read token on {', '.join(buckets)}: {done}, written to {token_file}\n"
    )


def _cmd_housekeeping(_: argparse.Namespace) -> int:
    """Purge the PostgreSQL history older than its retention now; print what went."""
    from stores import StoreError, postgres  # noqa: PLC0415 - heavy imports
    from stores.postgres import retention  # noqa: PLC0415

    settings, limits = load(PostgresSettings), load(RetentionSettings)
    engine = postgres.make_engine(settings, pool_size=1)
    try:
        postgres.require_current(engine)
        removed = postgres.purge(engine, limits, datetime.now(UTC))
    except StoreError as exc:
        sys.stderr.write(f"fleetwatch housekeeping: {exc}\n")
        return 1
    finally:
        engine.dispose()
    for rule in retention.rules(limits):
        table = rule.table.name
        sys.stdout.write(
            f"postgresql: {table}: {removed[table]} rows removed (older than {rule.days} days)\n"
        )
    return 0


def _cmd_downsample(args: argparse.Namespace) -> int:
    """Recompute the hourly downsample (device rows, per-zone rollup and the metric
    histories' per-metric rows) of past hours now."""
    from ingest.kinds import metric_measurements  # noqa: PLC0415 - heavy imports
    from stores import StoreError  # noqa: PLC0415
    from stores.influx import make_client, run_hourly_stats  # noqa: PLC0415

    influx, retention = load(InfluxSettings), load(RetentionSettings)
    stop = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = stop - timedelta(hours=args.hours)
    # A day of a large fleet takes minutes of Flux: far longer than a query's usual timeout.
    with make_client(influx, timeout_ms=DOWNSAMPLE_TIMEOUT_MS) as client:
        try:
            written = run_hourly_stats(
                client,
                influx.influx_org,
                influx.influx_bucket,
                retention.influx_hourly_bucket,
                start=start,
                stop=stop,
                metric_measurements=metric_measurements(),
            )
        except StoreError as exc:
            sys.stderr.write(f"fleetwatch downsample: {exc}\n")
            return 1
    sys.stdout.write(
        f"influxdb: {args.hours} hours from {start:%Y-%m-%d %H:%M} UTC downsampled into "
        f"{retention.influx_hourly_bucket}: {written} device-hours\n"
    )
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    """Run the ingest service until SIGINT/SIGTERM."""

    from ingest.health import HealthPortError  # noqa: PLC0415
    from ingest.service import IngestOptions, IngestService  # noqa: PLC0415
    from stores import SchemaError, StoreUnavailableError  # noqa: PLC0415

    ingest_settings, alerts = load(IngestSettings), load(AlertSettings)
    options = IngestOptions(
        rules_sweep_s=alerts.rules_sweep_s,
        event_link=alerts.public_url,
        batch_size=args.batch_size,
        batch_wait_s=args.batch_wait_ms / 1000,
        offline_after=timedelta(seconds=ingest_settings.offline_after_s),
        health_host=ingest_settings.health_host,
        health_port=ingest_settings.health_port or None,
    )
    pg, mqtt = load(PostgresSettings), load(MqttSettings)
    if args.source == "kafka":
        from ingest.transports.kafka import KafkaTransport  # noqa: PLC0415

        # A worker of the consumer group: its share of the bridged stream, commands out
        # through the broker.
        stream = KafkaTransport(load(KafkaSettings), mqtt, str(pg.database_url), worker=args.worker)
        service = IngestService(
            pg,
            None,
            load(InfluxSettings),
            options,
            retention=load(RetentionSettings),
            transports=[stream],
        )
    else:
        service = IngestService(
            pg, mqtt, load(InfluxSettings), options, retention=load(RetentionSettings)
        )

    try:
        run_until_signalled(service.run)
    except (SchemaError, StoreUnavailableError, HealthPortError) as exc:
        sys.stderr.write(f"fleetwatch ingest: {exc}\n")
        return 2
    logger.info("ingest stopped")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    """Publish a simulated fleet's messages until the duration is over or SIGINT/SIGTERM."""

    from simulator import (  # noqa: PLC0415 - heavy imports
        FleetOptions,
        RunOptions,
        Simulator,
        SimulatorError,
    )

    try:
        counts = _kind_counts(args.kind, args.devices)
        fleet = FleetOptions(
            devices=counts.get("panel", 0),
            telemetry=counts.get("telemetry", 0),
            robots=counts.get("robot", 0),
            seed=args.seed,
            heartbeat_interval_s=args.heartbeat_interval,
            status_interval_s=args.status_interval,
            telemetry_interval_s=args.telemetry_interval,
        )
        options = RunOptions(speed=args.speed, duration_s=args.duration)
    except SimulatorError as exc:
        sys.stderr.write(f"fleetwatch simulate: {exc}\n")
        return 2
    simulator = Simulator(load(MqttSettings), fleet, options)

    try:
        run_until_signalled(simulator.run)
    except SimulatorError as exc:
        sys.stderr.write(f"fleetwatch simulate: {exc}\n")
        return 1
    sys.stdout.write(f"simulate: {simulator.stats.summary()}\n")
    return 0


SIMULATED_KINDS = ("panel", "telemetry", "robot")


def _kind_counts(kinds: Sequence[str], devices: int | None) -> dict[str, int]:
    """How many devices of each kind ``--kind KIND[=COUNT]`` asks for (COUNT: --devices);
    panels only, ``--devices`` of them, when no kind is named."""
    from simulator import SimulatorConfigError  # noqa: PLC0415

    if not kinds:
        kinds = ["panel"]
    counts: dict[str, int] = {}
    for entry in kinds:
        kind, _, count = entry.partition("=")
        if kind not in SIMULATED_KINDS:
            raise SimulatorConfigError(f"--kind {kind!r}: one of {', '.join(SIMULATED_KINDS)}")
        if not count and devices is None:
            raise SimulatorConfigError(f"--kind {kind}: give {kind}=COUNT or --devices")
        try:
            counts[kind] = int(count) if count else int(devices or 0)
        except ValueError:
            raise SimulatorConfigError(f"--kind {entry!r}: COUNT must be a number") from None
    return counts


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="fleetwatch",
        description=(
            "Ingest, store and report on fleets of MQTT field devices. Settings come from "
            f"{ENV_PREFIX}* environment variables or a .env file (see 'fleetwatch config')."
        ),
    )
    parser.add_argument("--version", action="version", version=f"fleetwatch {__version__}")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands: Sequence[tuple[str, str, Handler]] = (
        ("config", "show the effective settings and validate them", _cmd_config),
        ("check", "check that PostgreSQL, the MQTT broker and InfluxDB answer", _cmd_check),
        (
            "migrate",
            "create or upgrade the PostgreSQL schema, InfluxDB buckets and downsampling task",
            _cmd_migrate,
        ),
        (
            "housekeeping",
            "delete the PostgreSQL history older than its retention, once, now",
            _cmd_housekeeping,
        ),
        (
            "downsample",
            "recompute the hourly InfluxDB downsample of past hours (a backfill), once, now",
            _cmd_downsample,
        ),
        ("ingest", "receive device messages from MQTT into PostgreSQL and InfluxDB", _cmd_ingest),
        (
            "simulate",
            "publish a simulated fleet (alarm panels, telemetry devices) and answer its commands",
            _cmd_simulate,
        ),
    )
    parsers = {}
    for name, help_text, handler in commands:
        parsers[name] = sub.add_parser(name, help=help_text, description=help_text)
        parsers[name].set_defaults(handler=handler)
    command_cli.register(sub)
    device_types_cli.register(sub)
    flux_cli.register(sub)
    dashboard_cli.register(sub)
    alerting_cli.register(sub)
    users_cli.register(sub)
    api_cli.register(sub)
    backup_cli.register(sub)
    bridge_cli.register(sub)
    parsers["check"].add_argument(
        "--kafka",
        action="store_true",
        help="also check Kafka (FLEETWATCH_KAFKA_*), when scaled out",
    )
    ingest = parsers["ingest"]
    ingest.add_argument("--batch-size", type=int, default=2000, help="messages per transaction")
    ingest.add_argument(
        "--batch-wait-ms", type=float, default=50, help="longest wait to fill a batch"
    )
    ingest.add_argument(
        "--source",
        choices=("mqtt", "kafka"),
        default="mqtt",
        help="mqtt: subscribe to the broker (one process); kafka: be one of the workers "
        "sharing the stream the bridges write (FLEETWATCH_KAFKA_*)",
    )
    ingest.add_argument(
        "--worker", default=None, help="this worker's name in logs and client ids (kafka)"
    )
    parsers["downsample"].add_argument(
        "--hours",
        type=int,
        default=24,
        choices=range(1, 24 * 366),
        metavar="N",
        help="the last N finished hours (default 24; the raw bucket keeps 30 days)",
    )
    simulate = parsers["simulate"]
    simulate.add_argument(
        "--devices", type=int, help="simulated devices (of each --kind without a COUNT)"
    )
    simulate.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND[=COUNT]",
        help=f"simulate devices of this kind, one of {', '.join(SIMULATED_KINDS)}; repeat to "
        "mix kinds (default: panels)",
    )
    simulate.add_argument(
        "--telemetry-interval", type=float, default=10.0, help="seconds between readings"
    )
    simulate.add_argument(
        "--seed", type=int, default=1, help="the same seed gives the same fleet and stream"
    )
    simulate.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second"
    )
    simulate.add_argument(
        "--duration",
        type=float,
        default=None,
        help="simulated seconds to run (default: until Ctrl-C)",
    )
    simulate.add_argument(
        "--heartbeat-interval", type=float, default=10.0, help="seconds between heartbeats"
    )
    simulate.add_argument(
        "--status-interval", type=float, default=300.0, help="seconds between status messages"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        log_settings = load(LogSettings)
        logs.configure(log_settings.log_level, "json" if args.log_json else log_settings.log_format)
        handler: Handler = args.handler
        return handler(args)
    except SettingsError as exc:
        sys.stderr.write(f"fleetwatch: {exc}\n")
        return 2
