"""Configuration from ``FLEETWATCH_*`` environment variables and an optional ``.env`` file.

Every part reads only the group it needs (a dashboard has no use for broker credentials),
and a bad value stops start-up with a message naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, PostgresDsn, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FLEETWATCH_"
ENV_FILE = Path(".env")


class SettingsError(RuntimeError):
    """One or more settings are missing or malformed."""


def _config() -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )


class PostgresSettings(BaseSettings):
    """Where the relational store lives."""

    model_config = _config()

    database_url: PostgresDsn = Field(
        default=PostgresDsn("postgresql://fleetwatch:fleetwatch@127.0.0.1:5432/fleetwatch"),
        description="PostgreSQL connection URL",
    )

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
        url = str(self.database_url)
        scheme, rest = url.split("://", 1)
        return f"postgresql+psycopg://{rest}" if "+" not in scheme else url


class MqttSettings(BaseSettings):
    """Where the broker lives and which topics belong to the fleet."""

    model_config = _config()

    mqtt_host: str = Field(default="127.0.0.1", min_length=1, description="MQTT broker host")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port")
    mqtt_username: str | None = Field(default=None, description="MQTT user, if the broker asks")
    mqtt_password: SecretStr | None = Field(default=None, description="MQTT password")
    mqtt_client_id: str = Field(
        default="fleetwatch-ingest",
        min_length=1,
        description="client id; fixed so the broker keeps the persistent session",
    )
    topic_prefix: str = Field(
        default="fleet", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", description="topic root"
    )


class KafkaSettings(BaseSettings):
    """Where the Kafka cluster of a scaled-out deployment lives, and what ingest uses of it.

    Only the bridge and ``fleetwatch ingest --source kafka`` read these: the default
    deployment has no Kafka.
    """

    model_config = _config()

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", min_length=1, description="Kafka bootstrap servers, host:port,…"
    )
    kafka_topic: str = Field(
        default="fleetwatch.device-messages",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="topic the bridges write device messages to, keyed by device",
    )
    kafka_partitions: int = Field(
        default=12,
        ge=1,
        le=10_000,
        description="partitions of the topic when the bridge creates it (the most workers that "
        "can share the load)",
    )
    kafka_replication: int = Field(
        default=1, ge=1, le=16, description="replicas of the topic when the bridge creates it"
    )
    kafka_group: str = Field(
        default="fleetwatch-ingest",
        min_length=1,
        description="consumer group of the ingest workers (their offsets live in PostgreSQL)",
    )


class InfluxSettings(BaseSettings):
    """Where the time-series store lives."""

    model_config = _config()

    influx_url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB 2.x URL")
    influx_token: SecretStr = Field(
        default=SecretStr("fleetwatch-operator-token"), description="InfluxDB API token"
    )
    influx_org: str = Field(default="fleetwatch", min_length=1, description="InfluxDB org")
    influx_bucket: str = Field(
        default="heartbeats", min_length=1, description="bucket of raw heartbeat points"
    )

    @field_validator("influx_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class RetentionSettings(BaseSettings):
    """How long each kind of history is kept, and where the hourly downsample goes."""

    model_config = _config()

    retention_alarm_events_days: int = Field(
        default=180, ge=1, description="days a resolved alarm event is kept (open ones: forever)"
    )
    retention_commands_days: int = Field(
        default=30,
        ge=1,
        description="days a finished command (no retry pending) is kept in command_log",
    )
    retention_dead_letters_days: int = Field(
        default=30, ge=1, description="days a rejected message is kept in dead_letters"
    )
    retention_connection_log_days: int = Field(
        default=90, ge=1, description="days a connect/disconnect is kept in device_connection_log"
    )
    retention_alarm_sequences_days: int = Field(
        default=7,
        ge=1,
        description="days an accepted alarm sequence is kept to recognise its redelivery",
    )
    retention_heartbeat_counts_days: int = Field(
        default=35, ge=2, description="days the hourly heartbeat counts are kept"
    )
    retention_heartbeat_daily_days: int = Field(
        default=400, ge=1, description="days the daily heartbeat counts are kept"
    )
    retention_audit_days: int = Field(
        default=365, ge=1, description="days an audit row (system_logs) is kept"
    )
    retention_state_snapshots_days: int = Field(
        default=90, ge=1, description="days a WebSocket device's state snapshot is kept"
    )
    retention_message_ids_days: int = Field(
        default=7,
        ge=1,
        description="days a WebSocket frame's id is kept to recognise its resending",
    )
    influx_raw_retention_days: int = Field(
        default=30, ge=1, description="retention of the raw heartbeat bucket in InfluxDB (days)"
    )
    influx_hourly_bucket: str = Field(
        default="heartbeats_hourly",
        min_length=1,
        description="bucket of the hourly downsample (device_hourly_stats)",
    )
    influx_hourly_retention_days: int = Field(
        default=730, ge=1, description="retention of the hourly bucket in InfluxDB (days)"
    )
    housekeeping_interval_s: int = Field(
        default=3600, ge=60, description="seconds between two scheduled housekeeping runs"
    )


class IngestSettings(BaseSettings):
    """How the ingest service runs."""

    model_config = _config()

    health_host: str = Field(
        default="127.0.0.1", description="address of /healthz, /readyz and /metrics"
    )
    health_port: int = Field(
        default=9108, ge=0, le=65535, description="port of /healthz, /readyz and /metrics (0: off)"
    )
    offline_after_s: float = Field(
        default=90.0, gt=0, description="silence after which a device is taken offline"
    )


class AlertSettings(BaseSettings):
    """How events reach people: the channels' endpoints and the delivery worker."""

    model_config = _config()

    public_url: str = Field(
        default="http://127.0.0.1:8501/events",
        description="the dashboard's Events page as people reach it ({link} in messages)",
    )
    rules_sweep_s: float = Field(
        default=5.0, gt=0, description="seconds between two checks of rules' pending durations"
    )
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server for email")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port")
    smtp_starttls: bool = Field(default=False, description="upgrade the SMTP session to TLS")
    smtp_username: str | None = Field(default=None, description="SMTP login, if the server asks")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_from: str = Field(default="fleetwatch@localhost", description="sender address")
    smtp_timeout_s: float = Field(default=15.0, gt=0, description="SMTP timeout per message")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="key of the HMAC-SHA256 signature header of webhook requests (unset: none)",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="webhook request timeout")
    sms_url: str | None = Field(default=None, description="the SMS gateway's HTTP endpoint")
    sms_method: Literal["POST", "GET", "PUT"] = Field(default="POST", description="its method")
    sms_body: str = Field(
        default='{"to": "{to}", "text": "{message}"}',
        description="request body with {to} and {message} ({name} too), escaped for its type",
    )
    sms_content_type: str = Field(
        default="application/json", description="the body's type (JSON or form-encoded)"
    )
    sms_auth_header: SecretStr | None = Field(
        default=None, description="Authorization header sent to the gateway"
    )
    sms_timeout_s: float = Field(default=10.0, gt=0, description="SMS gateway request timeout")
    notify_concurrency: int = Field(
        default=4, ge=1, le=64, description="deliveries a worker sends at once per channel"
    )
    notify_lease_s: float = Field(
        default=60.0, gt=0, description="how long a worker holds a delivery it is sending"
    )
    notify_poll_s: float = Field(
        default=1.0, gt=0, description="longest wait for new deliveries between two looks"
    )
    report_template: str = Field(
        default="reports",
        description="notification template whose email recipients get the scheduled reports",
    )
    notify_max_per_hour: int = Field(
        default=120,
        ge=0,
        description="messages of warning or info events one recipient gets in an hour at most "
        "(0: any); critical ones always go",
    )


class DashboardSettings(BaseSettings):
    """How the Streamlit dashboard runs, and the read-only credentials it uses.

    The dashboard only reads: give it a PostgreSQL role limited to SELECT
    (``stores.postgres.roles.ensure_readonly_role``) and an InfluxDB read token, which
    ``fleetwatch migrate`` creates when these settings are set. InfluxDB generates the
    token, so migrate writes it to FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE for the dashboard
    to read. Unset, the dashboard falls back to the service credentials
    (FLEETWATCH_DATABASE_URL, FLEETWATCH_INFLUX_TOKEN).
    """

    model_config = _config()

    dashboard_database_url: PostgresDsn | None = Field(
        default=None,
        description="read-only PostgreSQL URL for the dashboard (default: DATABASE_URL)",
    )
    dashboard_actions_database_url: PostgresDsn | None = Field(
        default=None,
        description="PostgreSQL URL of the dashboard's write path: sign-in, audit rows and "
        "operator actions; migrate grants its role only those writes (default: DATABASE_URL)",
    )
    dashboard_session_idle_minutes: float = Field(
        default=30.0, gt=0, description="minutes without a click after which a sign-in expires"
    )
    dashboard_session_hours: float = Field(
        default=12.0, gt=0, description="hours after which a sign-in expires however busy"
    )
    dashboard_oidc: bool = Field(
        default=False,
        description="sign in through the OIDC provider of Streamlit's [auth] secrets (st.login) "
        "instead of passwords; the provider's email names the fleetwatch user",
    )
    dashboard_influx_token: SecretStr | None = Field(
        default=None,
        description="read-only InfluxDB token for the dashboard (default: INFLUX_TOKEN)",
    )
    dashboard_influx_token_file: Path | None = Field(
        default=None,
        description="file holding the dashboard's InfluxDB read token, written by migrate "
        "(DASHBOARD_INFLUX_TOKEN wins)",
    )
    dashboard_port: int = Field(default=8501, ge=1, le=65535, description="dashboard HTTP port")
    dashboard_address: str = Field(
        default="127.0.0.1", min_length=1, description="address the dashboard listens on"
    )
    dashboard_flux_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds an engineer's own Flux query on the dashboard may run before it "
        "is cancelled",
    )
    dashboard_flux_max_rows: int = Field(
        default=100_000,
        gt=0,
        description="rows of an engineer's own Flux query the dashboard reads at most (the "
        "rest is not read)",
    )

    def postgres(self, fallback: PostgresSettings) -> PostgresSettings:
        """``fallback`` with the dashboard's own database URL, when one is set."""
        if self.dashboard_database_url is None:
            return fallback
        return fallback.model_copy(update={"database_url": self.dashboard_database_url})

    def influx(self, fallback: InfluxSettings) -> InfluxSettings:
        """``fallback`` with the dashboard's own InfluxDB token, when one is set.

        Raises:
            SettingsError: the token file is set but cannot be read, or is empty.
        """
        token = self.influx_token()
        if token is None:
            return fallback
        return fallback.model_copy(update={"influx_token": token})

    def influx_token(self) -> SecretStr | None:
        """The dashboard's own InfluxDB token: DASHBOARD_INFLUX_TOKEN, else the stripped
        content of DASHBOARD_INFLUX_TOKEN_FILE (read now, so a renewed token is picked up),
        else None.

        Raises:
            SettingsError: the token file is set but cannot be read, or is empty.
        """
        if self.dashboard_influx_token is not None:
            return self.dashboard_influx_token
        path = self.dashboard_influx_token_file
        if path is None:
            return None
        name = f"{ENV_PREFIX}DASHBOARD_INFLUX_TOKEN_FILE"
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SettingsError(
                f"{name}: cannot read {path} ({reason}); `fleetwatch migrate` writes it"
            ) from exc
        if not token:
            raise SettingsError(f"{name}: {path} is empty; `fleetwatch migrate` writes it")
        return SecretStr(token)


class ApiSettings(BaseSettings):
    """How the HTTP API (``fleetwatch api``) runs, and what it lets one caller do."""

    model_config = _config()

    api_host: str = Field(default="127.0.0.1", min_length=1, description="address it listens on")
    api_port: int = Field(default=8600, ge=1, le=65535, description="HTTP port")
    api_rate_per_minute: int = Field(
        default=600, ge=1, description="requests one token may make per minute (then 429)"
    )
    api_max_body_bytes: int = Field(
        default=65_536, ge=1024, description="largest request body accepted (then 413)"
    )
    api_pool_size: int = Field(default=8, ge=1, description="PostgreSQL connections it keeps")
    api_websocket_devices: bool = Field(
        default=True, description="serve WebSocket devices at /ws/{device_id} (seed 003)"
    )
    ws_idle_timeout_s: float = Field(
        default=90.0, gt=0, description="a device socket silent this long is closed (timeout)"
    )
    ws_rate_per_s: float = Field(
        default=20.0, gt=0, description="frames one device may send per second on average"
    )
    ws_burst: int = Field(default=200, ge=1, description="frames one device may send at once")
    ws_max_frame_bytes: int = Field(
        default=16_384, ge=256, description="larger frames are kept as dead letters"
    )
    ws_hard_max_bytes: int = Field(
        default=1_048_576, ge=1024, description="larger frames close the socket (1009)"
    )


class LogSettings(BaseSettings):
    """How the services log."""

    model_config = _config()

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="log level"
    )
    log_format: Literal["text", "json"] = Field(default="text", description="log line format")


SettingsT = TypeVar("SettingsT", bound=BaseSettings)

SETTINGS_GROUPS: tuple[type[BaseSettings], ...] = (
    PostgresSettings,
    MqttSettings,
    InfluxSettings,
    RetentionSettings,
    IngestSettings,
    KafkaSettings,
    AlertSettings,
    DashboardSettings,
    ApiSettings,
    LogSettings,
)


def load(group: type[SettingsT]) -> SettingsT:
    """Read one settings group, turning validation errors into one readable message."""
    try:
        return group()
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from exc


def describe_errors(exc: ValidationError) -> str:
    """One line per bad variable: its name, what is wrong, and the value seen."""
    lines = ["invalid configuration:"]
    for error in exc.errors():
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        seen = error.get("input")
        shown = f" (got {seen!r})" if isinstance(seen, str | int | float) else ""
        lines.append(f"  {name}: {error['msg']}{shown}")
    return "\n".join(lines)
