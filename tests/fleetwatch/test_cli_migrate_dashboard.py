"""'fleetwatch migrate' gives the dashboard its read-only role and read token, on real stores."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from pydantic import PostgresDsn

from fleetwatch.cli import main
from fleetwatch.settings import DashboardSettings, InfluxSettings, PostgresSettings, load
from stores.influx import make_client
from stores.influx.auth import read_authorizations
from tests.conftest import unique_name
from tests.support.influx_env import InfluxEnv, own_influx_env

# Running the CLI installs root-logger handlers: undo them after each test.
pytestmark = pytest.mark.usefixtures("restore_root_logging")

TOKEN_LINE = "influxdb: dashboard read token on"


@pytest.fixture
def influx_env(
    influx_service: InfluxSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InfluxEnv]:
    """Buckets of the test's own; they, their task and their read tokens are removed after."""
    with own_influx_env(influx_service, monkeypatch, unique_name("ro")) as env:
        try:
            yield env
        finally:
            buckets = (env.raw_bucket, env.hourly_bucket)
            for auth in read_authorizations(env.client, env.org, buckets):
                env.client.authorizations_api().delete_authorization(auth.id)


@pytest.fixture
def dashboard_url(pg_env: PostgresSettings) -> Iterator[PostgresDsn]:
    """A URL of a role of the test's own on its database; the role is dropped after."""
    yield from _own_role_url(pg_env, "dash")


@pytest.fixture
def actions_url(pg_env: PostgresSettings) -> Iterator[PostgresDsn]:
    """A URL of another role of the test's own (the dashboard's write path)."""
    yield from _own_role_url(pg_env, "act")


def _own_role_url(pg_env: PostgresSettings, kind: str) -> Iterator[PostgresDsn]:
    role = unique_name(kind)
    host = pg_env.database_url.hosts()[0]
    database = (pg_env.database_url.path or "").lstrip("/")
    url = f"postgresql://{role}:pa%40ss-w0rd@{host['host']}:{host['port']}/{database}"
    try:
        yield PostgresDsn(url)
    finally:
        with psycopg.connect(str(pg_env.database_url), autocommit=True) as owner:
            if owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                owner.execute(f'DROP OWNED BY "{role}"')
                owner.execute(f'DROP ROLE "{role}"')


def test_migrate_provisions_the_dashboard_credentials(
    pg_env: PostgresSettings,
    influx_env: InfluxEnv,
    dashboard_url: PostgresDsn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The role reads and cannot write; the 0600 token file is what the dashboard reads with."""
    token_file = tmp_path / "secrets" / "dashboard-influx-token"
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_DATABASE_URL", str(dashboard_url))
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE", str(token_file))
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN", raising=False)
    role = dashboard_url.hosts()[0]["username"]

    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert f"postgresql: dashboard role {role}: SELECT only" in out
    assert f"{TOKEN_LINE} {influx_env.raw_bucket}, {influx_env.hourly_bucket}: created" in out
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    with psycopg.connect(str(dashboard_url), autocommit=True) as conn:  # the password decoded
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (0,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("INSERT INTO devices (mac_address) VALUES ('aa:bb:cc:00:00:09')")

    dashboard = load(DashboardSettings)
    influx = dashboard.influx(load(InfluxSettings))
    token = token_file.read_text(encoding="utf-8").strip()
    assert influx.influx_token.get_secret_value() == token
    assert dashboard.postgres(load(PostgresSettings)).database_url == dashboard_url
    with make_client(influx) as reader:
        for bucket in (influx_env.raw_bucket, influx_env.hourly_bucket):
            flux = f'from(bucket: "{bucket}") |> range(start: -1h) |> count()'
            assert reader.query_api().query(flux) == []  # allowed, and empty

    assert main(["migrate"]) == 0
    assert f"{influx_env.hourly_bucket}: kept" in capsys.readouterr().out
    assert token_file.read_text(encoding="utf-8").strip() == token
    buckets = (influx_env.raw_bucket, influx_env.hourly_bucket)
    assert len(read_authorizations(influx_env.client, influx_env.org, buckets)) == 1


def test_migrate_provisions_the_actions_role_apart(
    pg_env: PostgresSettings,
    dashboard_url: PostgresDsn,
    actions_url: PostgresDsn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With both URLs, the reader only reads and the actions role may write an audit row but
    no device; one role for both is refused."""
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_DATABASE_URL", str(dashboard_url))
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL", str(actions_url))
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE", raising=False)
    assert main(["migrate"]) == 0
    role = actions_url.hosts()[0]["username"]
    assert f"postgresql: dashboard role {role}: people's actions only" in capsys.readouterr().out
    audit = "INSERT INTO system_logs (level, category, message) VALUES ('INFO', 'auth', 'x')"
    with psycopg.connect(str(actions_url), autocommit=True) as conn:
        conn.execute(audit)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("INSERT INTO devices (mac_address) VALUES ('aa:bb:cc:00:00:09')")
    with (
        psycopg.connect(str(dashboard_url), autocommit=True) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute(audit)
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL", str(dashboard_url))
    assert main(["migrate"]) == 2
    assert "must name two roles" in capsys.readouterr().err


def test_migrate_without_dashboard_settings_makes_no_credentials(
    pg_env: PostgresSettings,
    influx_env: InfluxEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Unset, migrate neither creates a role nor a token, and says nothing about them."""
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL", raising=False)
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE", raising=False)
    assert main(["migrate"]) == 0
    assert "dashboard" not in capsys.readouterr().out
    buckets = (influx_env.raw_bucket, influx_env.hourly_bucket)
    assert read_authorizations(influx_env.client, influx_env.org, buckets) == []


@pytest.mark.parametrize(
    ("user", "database", "complaint"),
    [
        ("{owner}:pw", "{db}", "must name a role of its own"),
        ("t_ro_nopw", "{db}", "needs a password"),
        ("t_ro_other:pw", "elsewhere", "must name the database of FLEETWATCH_DATABASE_URL"),
    ],
)
def test_migrate_refuses_an_unsound_dashboard_url(
    pg_env: PostgresSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    user: str,
    database: str,
    complaint: str,
) -> None:
    """The owner's own user, no password or another database stop migrate before it starts."""
    host = pg_env.database_url.hosts()[0]
    db = (pg_env.database_url.path or "").lstrip("/")
    userinfo = user.format(owner=host["username"])
    url = f"postgresql://{userinfo}@{host['host']}:{host['port']}/{database.format(db=db)}"
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_DATABASE_URL", url)
    assert main(["migrate"]) == 2
    assert complaint in capsys.readouterr().err
    with psycopg.connect(str(pg_env.database_url), autocommit=True) as owner:
        assert owner.execute("SELECT to_regclass('devices')").fetchone() == (None,)
