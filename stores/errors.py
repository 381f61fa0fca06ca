"""Errors the store layers raise; library errors are converted at this boundary."""


class StoreError(RuntimeError):
    """Base of every store failure."""


class StoreUnavailableError(StoreError):
    """The store could not be reached (down, refused, timed out, bad credentials)."""


class SchemaError(StoreError):
    """The store is reachable but not in the shape fleetwatch needs (e.g. unmigrated)."""
