"""Values checked against a kind's declaration: the dead-letter reason for each fault."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from ingest.kinds.declare import DeviceKind, Metric, Scalar
from ingest.messages import Rejected, RejectReason

INT64: Final = 2**63


def checked_values(
    kind: DeviceKind, metrics: Mapping[str, object], *, owner: str | None = None
) -> dict[str, Scalar]:
    """The values, each checked against the declaration of ``kind`` (named ``owner`` in
    the reasons, the kind's title by default).

    Raises Rejected: ``unknown_metric`` for a name the kind does not declare, ``wrong_type``
    for a flag where a number belongs or the reverse (or a fraction for an integer), and
    ``out_of_range`` for a number outside the declared range or not finite.
    """
    name_of = owner or kind.title
    values: dict[str, Scalar] = {}
    for name, value in metrics.items():
        try:
            declared = kind.metric(name)
        except KeyError:
            raise Rejected(
                RejectReason.UNKNOWN_METRIC, f"{name_of} declares no metric {name[:40]!r}"
            ) from None
        values[name] = _checked(name_of, declared, value)
    return values


def _checked(type_name: str, declared: Metric, value: object) -> Scalar:
    where = f"{type_name}.{declared.name}"
    if declared.type == "bool":
        if not isinstance(value, bool):
            raise Rejected(RejectReason.WRONG_TYPE, f"{where} is a flag, got {value!r}"[:200])
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(RejectReason.WRONG_TYPE, f"{where} is a number, got {value!r}"[:200])
    if declared.type == "int":
        if isinstance(value, float) and not value.is_integer():
            raise Rejected(RejectReason.WRONG_TYPE, f"{where} is an integer, got {value!r}")
        value = int(value)
        if not -INT64 <= value < INT64:  # InfluxDB would refuse the point (and its batch)
            raise Rejected(RejectReason.OUT_OF_RANGE, f"{where}={value} exceeds 64 bits")
    else:
        try:
            # JSON writes 5.0 as 5: a float metric must stay a float field in InfluxDB.
            value = float(value)
        except OverflowError:
            raise Rejected(RejectReason.OUT_OF_RANGE, f"{where} is too large") from None
    if not math.isfinite(value):
        raise Rejected(RejectReason.OUT_OF_RANGE, f"{where}={value!r} is not finite")
    if declared.valid is not None:
        low, high = declared.valid
        if not low <= value <= high:
            raise Rejected(RejectReason.OUT_OF_RANGE, f"{where}={value!r} outside [{low}, {high}]")
    return value
