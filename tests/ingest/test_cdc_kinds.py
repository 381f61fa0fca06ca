"""The CDC guarantee holds for every declared kind, read from its declaration alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.cdc import CdcState, ChangeType, MetricReading, decide
from ingest.kinds import DeclarationError, DeviceKind, Metric, Scalar, all_kinds

T0 = datetime(2025, 1, 1, tzinfo=UTC)
WORDS = ("A", "B", "C")
KINDS = {kind.name: kind for kind in all_kinds()}


def start_value(metric: Metric) -> Scalar:
    if metric.type == "bool":
        return False
    if metric.type == "str":
        return WORDS[0]
    if metric.valid is not None:
        low, high = metric.valid
        middle = (low + high) / 2
        return round(middle) if metric.type == "int" else middle
    return 0 if metric.type == "int" else 0.0


def step_value(metric: Metric, old: Scalar, draw: float) -> Scalar:
    """The metric's next value: a move of up to 1.6 dead bands, a flip or another word."""
    if metric.type == "bool":
        return (not old) if draw > 0.7 else old
    if metric.type == "str":
        return WORDS[int(abs(draw) * 10) % len(WORDS)] if draw > 0.7 else old
    assert isinstance(old, int | float)
    new = old + draw * 1.6 * metric.threshold
    if metric.valid is not None:
        new = min(max(new, metric.valid[0]), metric.valid[1])
    return round(new) if metric.type == "int" else new


def walk(kind: DeviceKind, draws: Sequence[tuple[int, list[float], bool]]) -> list[MetricReading]:
    values = {metric.name: start_value(metric) for metric in kind.metrics}
    readings = [MetricReading(kind.name, T0, None, dict(values))]
    for interval, moves, flip_online in draws:
        previous = readings[-1]
        for metric, draw in zip(kind.metrics, moves, strict=False):
            values[metric.name] = step_value(metric, values[metric.name], draw)
        online = (not previous.is_online) if flip_online else previous.is_online
        at = previous.received_at + timedelta(seconds=interval)
        readings.append(MetricReading(kind.name, at, None, dict(values), online))
    return readings


@pytest.mark.parametrize("name", sorted(KINDS))
@settings(max_examples=150, deadline=None)
@given(
    draws=st.lists(
        st.tuples(
            st.integers(1, 120),
            st.lists(st.floats(-1.0, 1.0), min_size=40, max_size=40),
            st.integers(0, 9).map(lambda n: n == 0),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_step_history_stays_within_every_declared_dead_band(
    name: str, draws: list[tuple[int, list[float], bool]]
) -> None:
    """Any stream of a kind: at every reading the last point is within each number's dead
    band, equal in every flag, word and is_online, and less than ``periodic`` old; every
    point after the first had a reason."""
    kind = KINDS[name]
    readings = walk(kind, draws)
    state: CdcState | None = None
    stored = readings[0]
    for index, reading in enumerate(readings):
        decision = decide(state, reading, kind)
        state = decision.state
        if index == 0:
            assert decision.write
            assert decision.changes == {"first": True}
            continue
        if decision.write:
            assert decision.change_type is not None
            due = reading.received_at - stored.received_at >= kind.periodic
            assert decision.changes or due
            assert (decision.change_type is ChangeType.PERIODIC) == (not decision.categories)
            stored = reading
        for metric in kind.numeric:
            old, new = stored.value(metric.name), reading.value(metric.name)
            assert isinstance(old, int | float)
            assert isinstance(new, int | float)
            assert abs(old - new) < metric.threshold
        for metric in kind.discrete:
            assert stored.value(metric.name) == reading.value(metric.name)
        assert stored.is_online == reading.is_online
        assert reading.received_at - stored.received_at < kind.periodic


def test_every_kind_declares_usable_metrics() -> None:
    """Each registered kind has metrics, numbers with dead bands and valid ranges that hold
    their starting values."""
    assert "panel" in KINDS
    for kind in KINDS.values():
        assert kind.metrics
        for metric in kind.numeric:
            assert metric.threshold > 0
            assert math.isfinite(metric.threshold)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "Bad Name"}, "must match"),
        ({"name": "x", "type": "float"}, "needs a dead band"),
        ({"name": "x", "type": "bool", "dead_band": 1.0}, "only numbers"),
        ({"name": "x", "dead_band": -1.0}, "positive finite"),
        ({"name": "x", "dead_band": 1.0, "valid": (2.0, 1.0)}, "not usable"),
        ({"name": "x", "dead_band": 1.0, "category": ChangeType.PERIODIC}, "not a category"),
    ],
)
def test_impossible_metric_declarations_are_refused(
    arguments: dict[str, object], message: str
) -> None:
    """A metric that the CDC could not work with fails where it is declared."""
    with pytest.raises(DeclarationError, match=message):
        Metric(**arguments)  # type: ignore[arg-type]


def test_a_kind_cannot_declare_a_metric_twice() -> None:
    """Two metrics of one name, or one called is_online, are refused."""
    metric = Metric(name="level", dead_band=1.0)
    with pytest.raises(DeclarationError, match="declared twice"):
        DeviceKind(name="tank", title="Tank", metrics=(metric, metric))
    with pytest.raises(DeclarationError, match="is_online"):
        DeviceKind(name="tank", title="Tank", metrics=(Metric(name="is_online", type="bool"),))
