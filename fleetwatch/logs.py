"""Log set-up shared by every fleetwatch process: one line per event, text or JSON."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

MAX_MESSAGE_CHARS = 600


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage()[:MAX_MESSAGE_CHARS],
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record, not at set-up."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """StreamHandler assigns its stream once; the current stderr is used instead."""


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Install a single stderr handler on the root logger."""
    handler = StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _quiet_alembic()


class _MigrationNews(logging.Filter):
    """Keeps Alembic's "Running upgrade ..." lines, drops its set-up chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or record.getMessage().startswith("Running")


def _quiet_alembic() -> None:
    """Start-up logs say what an operator needs: Alembic's plugin set-up and context lines
    (a dozen at every start) are not that; the migrations it runs are."""
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(f, _MigrationNews) for f in migration.filters):
        migration.addFilter(_MigrationNews())
