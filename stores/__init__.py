"""The stores: PostgreSQL for entities and current state, InfluxDB for history."""

from stores.errors import SchemaError, StoreError, StoreUnavailableError

__all__ = ["SchemaError", "StoreError", "StoreUnavailableError"]
