"""The dashboard's InfluxDB token can come from a file, which the token variable overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetwatch import dashboard_cli
from fleetwatch.cli import main
from fleetwatch.settings import DashboardSettings, InfluxSettings, SettingsError, load


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE naming a file (not yet written) of the test's."""
    path = tmp_path / "dashboard-influx-token"
    monkeypatch.setenv("FLEETWATCH_INFLUX_TOKEN", "operator")
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE", str(path))
    monkeypatch.delenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN", raising=False)
    return path


def _token() -> str:
    """The token the dashboard would read InfluxDB with."""
    influx = load(DashboardSettings).influx(load(InfluxSettings))
    return influx.influx_token.get_secret_value()


def test_token_file_content_is_the_token(token_env: Path) -> None:
    """The file's content, stripped of surrounding white space, replaces the operator token."""
    token_env.write_text("  reader-token==\n", encoding="utf-8")
    assert _token() == "reader-token=="
    token_env.write_text("renewed\n", encoding="utf-8")
    assert _token() == "renewed", "the file is read again, not remembered"


def test_token_variable_wins_over_the_file(
    token_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLEETWATCH_DASHBOARD_INFLUX_TOKEN is used even when the file holds another token."""
    token_env.write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("FLEETWATCH_DASHBOARD_INFLUX_TOKEN", "from-variable")
    assert _token() == "from-variable"


@pytest.mark.parametrize(("content", "problem"), [(None, "cannot read"), ("\n", "is empty")])
def test_missing_or_empty_token_file_is_named(
    token_env: Path, content: str | None, problem: str
) -> None:
    """A missing or empty file is a settings error naming the variable, never a fallback."""
    if content is not None:
        token_env.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError, match=f"FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE: .*{problem}"):
        _token()


def test_dashboard_does_not_start_without_its_token_file(
    token_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """'fleetwatch dashboard' exits 2 naming the file, before Streamlit is started."""
    started: list[list[str]] = []
    monkeypatch.setattr(dashboard_cli.os, "execvpe", lambda _f, argv, _e: started.append(argv))
    assert main(["dashboard"]) == 2
    assert f"cannot read {token_env}" in capsys.readouterr().err
    assert started == []
    token_env.write_text("reader\n", encoding="utf-8")
    assert main(["dashboard"]) == 0
    assert len(started) == 1
