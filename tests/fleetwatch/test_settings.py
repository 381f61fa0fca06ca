"""Settings are read from the environment and bad values are named clearly."""

from __future__ import annotations

import pytest

from fleetwatch.cli import main
from fleetwatch.settings import (
    DashboardSettings,
    InfluxSettings,
    MqttSettings,
    PostgresSettings,
    SettingsError,
    load,
)


def test_defaults_point_at_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing set, every service is expected on 127.0.0.1."""
    for name in ("FLEETWATCH_DATABASE_URL", "FLEETWATCH_MQTT_HOST", "FLEETWATCH_INFLUX_URL"):
        monkeypatch.delenv(name, raising=False)
    assert load(PostgresSettings).database_url.hosts()[0]["host"] == "127.0.0.1"
    assert load(MqttSettings).mqtt_host == "127.0.0.1"
    assert load(InfluxSettings).influx_url == "http://127.0.0.1:8086"


def test_malformed_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad port names the variable and the value seen."""
    monkeypatch.setenv("FLEETWATCH_MQTT_PORT", "eighteen83")
    with pytest.raises(SettingsError, match=r"FLEETWATCH_MQTT_PORT: .*'eighteen83'"):
        load(MqttSettings)


def test_sqlalchemy_url_names_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQLAlchemy URL selects the psycopg 3 driver."""
    monkeypatch.setenv("FLEETWATCH_DATABASE_URL", "postgresql://u:p@db:5432/fleet")
    assert load(PostgresSettings).sqlalchemy_url == "postgresql+psycopg://u:p@db:5432/fleet"


def test_cli_config_reports_every_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """'fleetwatch config' exits 2 and lists each malformed variable."""
    monkeypatch.setenv("FLEETWATCH_MQTT_PORT", "0")
    monkeypatch.setenv("FLEETWATCH_INFLUX_URL", "influx:8086")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "FLEETWATCH_MQTT_PORT" in err
    assert "FLEETWATCH_INFLUX_URL" in err


def test_cli_config_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Secrets never appear in 'fleetwatch config' output."""
    monkeypatch.setenv("FLEETWATCH_INFLUX_TOKEN", "s3cret-token-value")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-token-value" not in out
    assert "FLEETWATCH_INFLUX_TOKEN=********" in out


def test_dashboard_flux_limits_default_and_must_be_positive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An engineer's Flux gets 30 s and 100,000 rows unless set; zero is refused by name."""
    for name in ("FLEETWATCH_DASHBOARD_FLUX_TIMEOUT_S", "FLEETWATCH_DASHBOARD_FLUX_MAX_ROWS"):
        monkeypatch.delenv(name, raising=False)
    settings = load(DashboardSettings)
    assert (settings.dashboard_flux_timeout_s, settings.dashboard_flux_max_rows) == (30, 100_000)
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_FLUX_TIMEOUT_S", "0")
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_FLUX_MAX_ROWS", "0")
    with pytest.raises(SettingsError) as refused:
        load(DashboardSettings)
    assert "FLEETWATCH_DASHBOARD_FLUX_TIMEOUT_S" in str(refused.value)
    assert "FLEETWATCH_DASHBOARD_FLUX_MAX_ROWS" in str(refused.value)
