"""PostgreSQL layer: engine, schema and intent-named operations."""

from stores.postgres.engine import make_engine, server_version

__all__ = ["make_engine", "server_version"]
