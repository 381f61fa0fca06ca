"""Device kinds, declared once: their metrics drive validation, CDC, points and reports.

``declare`` holds the vocabulary (``Metric``, ``DeviceKind``), ``registry`` the kinds known
by name; each built-in kind is a module that declares and registers itself (``panel``).
"""

from ingest.kinds.declare import (
    DEFAULT_PERIODIC,
    ChangeType,
    DeclarationError,
    DeviceKind,
    Metric,
    MetricType,
    Scalar,
)
from ingest.kinds.registry import all_kinds, metric_measurements, register, registered

__all__ = [
    "DEFAULT_PERIODIC",
    "ChangeType",
    "DeclarationError",
    "DeviceKind",
    "Metric",
    "MetricType",
    "Scalar",
    "all_kinds",
    "metric_measurements",
    "register",
    "registered",
]

# The built-in kinds register themselves when imported.
from ingest.kinds import panel, robot  # noqa: F401
