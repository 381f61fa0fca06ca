"""The kinds this process knows, by name: each kind's module registers itself on import."""

from __future__ import annotations

from ingest.kinds.declare import DeclarationError, DeviceKind

_KINDS: dict[str, DeviceKind] = {}


def register(kind: DeviceKind) -> DeviceKind:
    """Make ``kind`` known by its name; the same declaration again is a no-op."""
    known = _KINDS.get(kind.name)
    if known is not None and known != kind:
        raise DeclarationError(f"kind {kind.name!r} is already registered differently")
    _KINDS[kind.name] = kind
    return kind


def registered(name: str) -> DeviceKind:
    """The kind called ``name``; KeyError lists the known ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"no device kind {name!r}; known: {sorted(_KINDS)}") from None


def all_kinds() -> tuple[DeviceKind, ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS.values())


def metric_measurements() -> tuple[str, ...]:
    """Every measurement written as a metric history, sorted: the registered kinds' and
    telemetry's (whose kinds are device types, declared at run time, never registered)."""
    from ingest.kinds.telemetry import MEASUREMENT  # noqa: PLC0415 - it reads the stores

    declared = {kind.measurement for kind in _KINDS.values() if kind.measurement is not None}
    return tuple(sorted(declared | {MEASUREMENT}))
