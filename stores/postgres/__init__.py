"""PostgreSQL layer: engine, schema and intent-named operations."""

from stores.postgres.engine import make_engine, server_version
from stores.postgres.migrate import (
    current_revision,
    downgrade,
    head_revision,
    require_current,
    upgrade,
)
from stores.postgres.retention import purge

__all__ = [
    "current_revision",
    "downgrade",
    "head_revision",
    "make_engine",
    "purge",
    "require_current",
    "server_version",
    "upgrade",
]
