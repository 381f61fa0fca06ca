"""``fleetwatch dashboard``: the Streamlit app managers and engineers read."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from fleetwatch.settings import ENV_PREFIX, DashboardSettings, SettingsError, describe_errors

APP: Final = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
"""The Streamlit entry point ``streamlit run`` is given."""


def register(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``dashboard`` subcommand to the top-level parser."""
    dashboard = sub.add_parser(
        "dashboard",
        help="serve the Streamlit dashboard (fleet, alarms, commands, trends, storage)",
        description=(
            "Serve the dashboard with Streamlit. It reads with "
            f"{ENV_PREFIX}DASHBOARD_DATABASE_URL and {ENV_PREFIX}DASHBOARD_INFLUX_TOKEN or "
            f"the token in {ENV_PREFIX}DASHBOARD_INFLUX_TOKEN_FILE (read-only credentials, "
            f"made by 'fleetwatch migrate'), falling back to {ENV_PREFIX}DATABASE_URL and "
            f"{ENV_PREFIX}INFLUX_TOKEN."
        ),
    )
    dashboard.add_argument(
        "--port", type=int, default=None, help=f"HTTP port (default {ENV_PREFIX}DASHBOARD_PORT)"
    )
    dashboard.add_argument(
        "--address", default=None, help=f"listen address (default {ENV_PREFIX}DASHBOARD_ADDRESS)"
    )
    dashboard.set_defaults(handler=_run)


def streamlit_argv(port: int, address: str, app: Path = APP) -> list[str]:
    """The command line that serves ``app``: headless, no usage statistics, this Python's
    Streamlit."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


def _run(args: argparse.Namespace) -> int:
    """Replace this process with Streamlit serving the app (returns only in tests)."""
    given: dict[str, Any] = {}  # validated by the settings model below
    if args.port is not None:
        given["dashboard_port"] = args.port
    if args.address is not None:
        given["dashboard_address"] = args.address
    try:  # validated here, so a bad value stops with a message naming it, not in the app
        settings = DashboardSettings(**given)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from exc
    settings.influx_token()  # an unreadable token file stops here, not on every page
    port, address = settings.dashboard_port, settings.dashboard_address
    env = os.environ | {
        f"{ENV_PREFIX}DASHBOARD_PORT": str(port),
        f"{ENV_PREFIX}DASHBOARD_ADDRESS": address,
    }
    argv = streamlit_argv(port, address)
    sys.stdout.write(f"fleetwatch dashboard: serving http://{address}:{port}\n")
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)  # noqa: S606 - our own interpreter, fixed arguments
    return 0  # pragma: no cover - execvpe does not return
