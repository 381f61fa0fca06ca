"""``fleetwatch dashboard`` starts Streamlit on the configured address, headless."""

from __future__ import annotations

import sys

import pytest

from fleetwatch import dashboard_cli
from fleetwatch.cli import main
from fleetwatch.settings import DashboardSettings, InfluxSettings, PostgresSettings, load


class Exec:
    """Records the execvpe call instead of replacing the test process."""

    def __init__(self) -> None:
        self.argv: list[str] = []
        self.env: dict[str, str] = {}

    def __call__(self, file: str, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, dict(env)


@pytest.fixture
def execvpe(monkeypatch: pytest.MonkeyPatch) -> Exec:
    """execvpe replaced by a recorder."""
    recorder = Exec()
    monkeypatch.setattr(dashboard_cli.os, "execvpe", recorder)
    return recorder


def test_dashboard_runs_streamlit_from_settings(
    monkeypatch: pytest.MonkeyPatch, execvpe: Exec
) -> None:
    """Port and address come from the settings; Streamlit runs headless, without telemetry."""
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_PORT", "8765")
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_ADDRESS", raising=False)
    assert main(["dashboard"]) == 0
    assert execvpe.argv[:5] == [sys.executable, "-m", "streamlit", "run", str(dashboard_cli.APP)]
    flags = execvpe.argv[5:]
    assert dict(zip(flags[::2], flags[1::2], strict=True)) == {
        "--server.port": "8765",
        "--server.address": "127.0.0.1",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
    }
    assert execvpe.env["FLEETWATCH_DASHBOARD_PORT"] == "8765"


def test_dashboard_flags_override_settings(monkeypatch: pytest.MonkeyPatch, execvpe: Exec) -> None:
    """--port and --address win over the environment and reach the app's environment."""
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_PORT", "8765")
    assert main(["dashboard", "--port", "9000", "--address", "0.0.0.0"]) == 0
    assert execvpe.argv[execvpe.argv.index("--server.port") + 1] == "9000"
    assert execvpe.env["FLEETWATCH_DASHBOARD_ADDRESS"] == "0.0.0.0"


def test_dashboard_rejects_a_bad_port(execvpe: Exec, capsys: pytest.CaptureFixture[str]) -> None:
    """A port out of range exits 2 naming the variable, without starting anything."""
    assert main(["dashboard", "--port", "70000"]) == 2
    assert "FLEETWATCH_DASHBOARD_PORT" in capsys.readouterr().err
    assert execvpe.argv == []


def test_dashboard_credentials_fall_back_to_the_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without dashboard credentials the service's are used; with them, theirs."""
    monkeypatch.setenv("FLEETWATCH_DATABASE_URL", "postgresql://rw:pw@db:5432/fleet")
    monkeypatch.setenv("FLEETWATCH_INFLUX_TOKEN", "operator")
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN", raising=False)
    pg, influx = load(PostgresSettings), load(InfluxSettings)
    fallback = load(DashboardSettings)
    assert fallback.postgres(pg).database_url == pg.database_url
    assert fallback.influx(influx).influx_token.get_secret_value() == "operator"
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_DATABASE_URL", "postgresql://ro:pw@db:5432/fleet")
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN", "reader")
    own = load(DashboardSettings)
    assert str(own.postgres(pg).database_url) == "postgresql://ro:pw@db:5432/fleet"
    assert own.influx(influx).influx_token.get_secret_value() == "reader"
