"""The CDC decision engine: thresholds, categories, periodic points, redelivery, restarts."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.cdc import CdcState, CdcTracker, ChangeType, Decision, decide
from ingest.kinds import DeviceKind
from ingest.kinds.panel import PANEL
from ingest.kinds.panel import PanelReading as Reading

DEFAULT_THRESHOLDS = PANEL

T0 = datetime(2025, 1, 1, tzinfo=UTC)
BASE = Reading(
    received_at=T0,
    device_ts=T0,
    temperature=20.0,
    humidity=50.0,
    fan_pwm_duty=40,
    panic1=False,
    panic2=False,
    box_sw=False,
    siren=False,
    turret=False,
    device_state="NORMAL",
)
DISCRETE = ("panic1", "panic2", "box_sw", "siren", "turret", "device_state", "is_online")
FLIPPABLE = ("panic1", "panic2", "box_sw", "siren", "turret", "is_online")
DEVICE_STATES = ("NORMAL", "ALARM", "MAINTENANCE")


def at(seconds: float) -> datetime:
    """The instant ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def tick(seconds: float) -> Reading:
    """BASE's values, received and stamped by the device ``seconds`` after T0."""
    return replace(BASE, received_at=at(seconds), device_ts=at(seconds))


def float32(value: float) -> float:
    """``value`` as a device sends it: rounded to float32."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def started() -> CdcState:
    """The state after BASE was written at T0."""
    return CdcState.from_reading(BASE)


def band(kind: DeviceKind, name: str) -> float:
    """The declared dead band of metric ``name``."""
    return kind.metric(name).threshold


def run(readings: Sequence[Reading], thresholds: DeviceKind = DEFAULT_THRESHOLDS) -> list[Decision]:
    """Feed ``readings`` to decide() in order, threading the state."""
    state: CdcState | None = None
    decisions = []
    for reading in readings:
        decision = decide(state, reading, thresholds)
        state = decision.state
        decisions.append(decision)
    return decisions


# --- first reading -------------------------------------------------------------------------


def test_first_reading_is_written_as_periodic_marked_first() -> None:
    """A device without state gets its first reading written: PERIODIC, changes {"first": True}."""
    decision = decide(None, BASE)
    assert decision.write
    assert not decision.duplicate
    assert decision.change_type is ChangeType.PERIODIC
    assert decision.changes == {"first": True}
    assert decision.state == CdcState(reference=BASE, last_device_ts=BASE.device_ts)


# --- sensor dead band ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "written"),
    [
        ("temperature", 20.5, True),
        ("temperature", 19.5, True),
        ("temperature", 20.49, False),
        ("temperature", 19.51, False),
        ("humidity", 52.0, True),
        ("humidity", 48.0, True),
        ("humidity", 51.99, False),
        ("humidity", 48.01, False),
        ("fan_pwm_duty", 45, True),
        ("fan_pwm_duty", 35, True),
        ("fan_pwm_duty", 44, False),
        ("fan_pwm_duty", 36, False),
    ],
)
def test_sensor_threshold_boundary(field: str, value: float, written: bool) -> None:
    """A move of exactly the threshold, up or down, writes SENSOR_DATA; just below does not."""
    decision = decide(started(), replace(tick(10), **{field: value}))
    assert decision.write is written
    assert decision.change_type is (ChangeType.SENSOR_DATA if written else None)


def test_float32_move_of_exactly_the_threshold_writes() -> None:
    """15.8 -> 16.3 sent as float32 (0.4999990 apart in float64) still counts as 0.5."""
    state = CdcState.from_reading(replace(BASE, temperature=float32(15.8)))
    assert float32(16.3) - float32(15.8) < 0.5
    decision = decide(state, replace(tick(10), temperature=float32(16.3)))
    assert decision.change_type is ChangeType.SENSOR_DATA


def test_slow_drift_is_compared_with_the_written_value() -> None:
    """+0.1 °C per reading for 20 readings writes every 5th: the band is around the stored value."""
    readings = [replace(tick(10 * i), temperature=20.0 + 0.1 * i) for i in range(21)]
    written = [i for i, decision in enumerate(run(readings)) if decision.write]
    assert written == [0, 5, 10, 15, 20]


def test_written_point_makes_every_current_value_the_reference() -> None:
    """A point stores the whole state: sub-threshold drift it carries becomes the new reference."""
    state = decide(started(), replace(tick(300), temperature=20.3)).state  # PERIODIC point
    assert state.reference.temperature == 20.3
    assert not decide(state, replace(tick(310), temperature=20.7)).write  # 0.4 from 20.3
    assert decide(state, replace(tick(310), temperature=20.8)).write


# --- periodic ------------------------------------------------------------------------------


def test_periodic_point_after_five_quiet_minutes() -> None:
    """Unchanged readings are skipped for 299 s; the one at 300 s is written as PERIODIC."""
    assert not decide(started(), tick(299)).write
    decision = decide(started(), tick(300))
    assert decision.write
    assert decision.change_type is ChangeType.PERIODIC
    assert decision.changes == {"periodic": True}
    assert decision.state.written_at == at(300)


def test_periodic_clock_restarts_at_every_written_point() -> None:
    """After a change is written at 100 s, the next periodic point is due at 400 s, not 300 s."""
    state = decide(started(), replace(tick(100), panic1=True)).state
    assert state.written_at == at(100)
    assert not decide(state, replace(tick(399), panic1=True)).write
    assert decide(state, replace(tick(400), panic1=True)).change_type is ChangeType.PERIODIC


def test_periodic_interval_is_configurable() -> None:
    """With periodic=60 s, a quiet reading at 60 s is written."""
    thresholds = PANEL.with_dead_bands(periodic=timedelta(seconds=60))
    assert not decide(started(), tick(59), thresholds).write
    assert decide(started(), tick(60), thresholds).change_type is ChangeType.PERIODIC


# --- categories ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "change_type"),
    [
        ("panic1", True, ChangeType.ALARM),
        ("panic2", True, ChangeType.ALARM),
        ("box_sw", True, ChangeType.ALARM),
        ("siren", True, ChangeType.ALARM),
        ("turret", True, ChangeType.ALARM),
        ("device_state", "ALARM", ChangeType.STATE_CHANGE),
        ("device_state", None, ChangeType.STATE_CHANGE),
        ("is_online", False, ChangeType.CONNECTION),
        ("temperature", 21.0, ChangeType.SENSOR_DATA),
    ],
)
def test_single_change_writes_its_category(
    field: str, value: object, change_type: ChangeType
) -> None:
    """Any change of one I/O, state or connection field writes, typed by its category."""
    decision = decide(started(), replace(tick(1), **{field: value}))
    assert decision.write
    assert decision.change_type is change_type
    assert decision.categories == (change_type,)
    assert set(decision.changes) == {field}


def test_several_fields_of_one_category_keep_that_category() -> None:
    """panic1 and siren changing together is still one category: ALARM."""
    decision = decide(started(), replace(tick(1), panic1=True, siren=True))
    assert decision.change_type is ChangeType.ALARM
    assert set(decision.changes) == {"panic1", "siren"}


@pytest.mark.parametrize(
    ("changed", "categories"),
    [
        ({"panic1": True, "temperature": 25.0}, (ChangeType.ALARM, ChangeType.SENSOR_DATA)),
        (
            {"is_online": False, "device_state": "OFFLINE"},
            (ChangeType.STATE_CHANGE, ChangeType.CONNECTION),
        ),
        (
            {"fan_pwm_duty": 90, "is_online": False, "device_state": "ERROR", "box_sw": True},
            (
                ChangeType.ALARM,
                ChangeType.STATE_CHANGE,
                ChangeType.CONNECTION,
                ChangeType.SENSOR_DATA,
            ),
        ),
    ],
)
def test_several_categories_are_multiple_in_priority_order(
    changed: dict[str, object], categories: tuple[ChangeType, ...]
) -> None:
    """Changes in two or more categories write MULTIPLE, listing them ALARM first."""
    decision = decide(started(), replace(tick(1), **changed))
    assert decision.change_type is ChangeType.MULTIPLE
    assert decision.categories == categories
    assert set(decision.changes) == set(changed)


def test_quiet_reading_keeps_the_reference_and_advances_the_guard() -> None:
    """A reading without reason to write yields no point, same reference, newer last_device_ts."""
    decision = decide(started(), replace(tick(10), temperature=20.2))
    assert decision == Decision(
        write=False,
        change_type=None,
        changes={},
        state=CdcState(reference=BASE, last_device_ts=at(10)),
    )


# --- changes -------------------------------------------------------------------------------


def test_changes_record_old_new_and_numeric_diff() -> None:
    """changes holds old/new for every triggering field and diff for numbers only, as JSON."""
    reading = replace(tick(1), temperature=20.5, fan_pwm_duty=30, panic1=True, device_state="ALARM")
    decision = decide(started(), reading)
    expected = {
        "temperature": {"old": 20.0, "new": 20.5, "diff": 0.5},
        "fan_pwm_duty": {"old": 40, "new": 30, "diff": -10},
        "panic1": {"old": False, "new": True},
        "device_state": {"old": "NORMAL", "new": "ALARM"},
    }
    assert decision.changes == expected
    assert json.loads(json.dumps(decision.changes)) == expected


def test_float32_diff_is_rounded_for_readability() -> None:
    """diff of float32 values is rounded to 6 decimals; old and new stay exact."""
    state = CdcState.from_reading(replace(BASE, temperature=float32(20.1)))
    decision = decide(state, replace(tick(1), temperature=float32(20.7)))
    change = decision.changes["temperature"]
    assert change == {"old": float32(20.1), "new": float32(20.7), "diff": 0.6}


def test_every_kind_of_changes_is_json_serialisable() -> None:
    """first, periodic and field changes all pass through json.dumps."""
    for decision in (
        decide(None, BASE),
        decide(started(), tick(300)),
        decide(started(), replace(tick(1), humidity=60.0, device_state=None, turret=True)),
    ):
        assert json.loads(json.dumps(decision.changes)) == decision.changes


# --- redelivery guard ----------------------------------------------------------------------


@pytest.mark.parametrize("device_seconds", [0, -5])
def test_redelivered_or_older_reading_is_a_duplicate(device_seconds: float) -> None:
    """A device_ts equal to or older than the newest seen: duplicate, no point, same state."""
    state = started()
    reading = replace(tick(60), device_ts=at(device_seconds), panic1=True)
    decision = decide(state, reading)
    assert decision.duplicate
    assert not decision.write
    assert decision.change_type is None
    assert decision.changes == {}
    assert decision.state is state


def test_guard_remembers_readings_that_were_not_written() -> None:
    """A late reading older than a processed-but-skipped one is a duplicate, even with news."""
    state = decide(started(), tick(10)).state
    assert state.reference == BASE
    late = replace(tick(20), device_ts=at(5), panic1=True)
    assert decide(state, late).duplicate


def test_readings_without_device_ts_are_not_guarded() -> None:
    """device_ts None is always processed and leaves the newest device_ts as it was."""
    state = decide(started(), tick(10)).state
    decision = decide(state, replace(tick(20), device_ts=None, siren=True))
    assert decision.write
    assert not decision.duplicate
    assert decision.state.last_device_ts == at(10)
    assert decide(decision.state, replace(tick(30), device_ts=at(10))).duplicate


# --- validation ----------------------------------------------------------------------------


def test_naive_datetimes_are_rejected() -> None:
    """received_at, device_ts and last_device_ts must be timezone-aware."""
    naive = T0.replace(tzinfo=None)
    with pytest.raises(ValueError, match="received_at"):
        replace(BASE, received_at=naive)
    with pytest.raises(ValueError, match="device_ts"):
        replace(BASE, device_ts=naive)
    with pytest.raises(ValueError, match="last_device_ts"):
        CdcState(reference=BASE, last_device_ts=naive)


@pytest.mark.parametrize("field", ["temperature", "humidity"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_sensor_values_are_rejected(field: str, value: float) -> None:
    """NaN or infinite temperature/humidity would defeat the dead band, so they are refused."""
    with pytest.raises(ValueError, match=field):
        replace(BASE, **{field: value})


@pytest.mark.parametrize(
    "changed",
    [
        {"temperature": 0.0},
        {"humidity": -1.0},
        {"fan_pwm_duty": 0},
        {"temperature": math.nan},
        {"humidity": math.inf},
        {"periodic": timedelta(0)},
        {"periodic": timedelta(seconds=-1)},
    ],
)
def test_thresholds_must_be_positive(changed: dict[str, object]) -> None:
    """Zero, negative or non-finite thresholds fail at construction."""
    ((name, value),) = changed.items()
    if isinstance(value, timedelta):
        with pytest.raises(ValueError, match="periodic must be positive"):
            PANEL.with_dead_bands(periodic=value)
    else:
        with pytest.raises(ValueError, match="dead band must be a positive"):
            PANEL.with_dead_bands([(name, float(value))])  # type: ignore[arg-type]


def test_default_thresholds_are_the_design_values() -> None:
    """Defaults: 0.5 °C, 2 % RH, 5 % fan, 300 s."""
    assert [(metric.name, metric.dead_band) for metric in PANEL.numeric] == [
        ("temperature", 0.5),
        ("humidity", 2.0),
        ("fan_pwm_duty", 5),
    ]
    assert PANEL.periodic == timedelta(seconds=300)


# --- tracker -------------------------------------------------------------------------------


def test_tracker_keeps_devices_apart() -> None:
    """Each device has its own reference: one device's first point and changes leave others be."""
    tracker = CdcTracker()
    assert tracker.observe(1, BASE).changes == {"first": True}
    assert tracker.observe(2, tick(1)).changes == {"first": True}
    assert tracker.observe(1, replace(tick(2), panic1=True)).change_type is ChangeType.ALARM
    assert not tracker.observe(2, tick(3)).write
    assert tracker.snapshot([1, 2, 3]) == {
        1: CdcState.from_reading(replace(tick(2), panic1=True)),
        2: CdcState(reference=tick(1), last_device_ts=at(3)),
    }


def test_restarted_tracker_treats_redelivered_messages_as_duplicates() -> None:
    """Seeded from a snapshot, a new tracker drops the broker's redeliveries and goes on."""
    old = CdcTracker()
    stream = [tick(0), replace(tick(10), panic1=True), tick(20)]
    for reading in stream:
        old.observe(7, reading)
    new = CdcTracker()
    new.seed(old.snapshot([7]))
    for reading in stream[1:]:
        assert new.observe(7, replace(reading, received_at=at(25))).duplicate
    assert new.observe(7, replace(tick(30), panic1=True)).change_type is ChangeType.ALARM


# --- properties ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """How one reading differs from the one before."""

    interval: int
    temperature: float
    humidity: float
    fan: int
    flips: frozenset[str]
    device_state: str | None  # None: unchanged
    has_device_ts: bool


steps_strategy = st.lists(
    st.builds(
        Step,
        interval=st.integers(1, 120),
        temperature=st.floats(-0.8, 0.8),
        humidity=st.floats(-3.0, 3.0),
        fan=st.integers(-7, 7),
        flips=st.frozensets(st.sampled_from(FLIPPABLE), max_size=2),
        device_state=st.none() | st.sampled_from(DEVICE_STATES),
        has_device_ts=st.booleans(),
    ),
    min_size=1,
    max_size=60,
)


def walk(steps: Sequence[Step], *, device_ts: bool = False) -> list[Reading]:
    """A device's readings: BASE, then random walks of the sensors and flips of the I/O.

    Sensor values are float32 as devices send them; the device clock runs 2 s behind.
    With ``device_ts`` every reading is stamped, otherwise only the steps that say so.
    """
    readings = [replace(BASE, device_ts=at(-2))]
    for step in steps:
        previous = readings[-1]
        received_at = previous.received_at + timedelta(seconds=step.interval)
        stamped = device_ts or step.has_device_ts
        readings.append(
            replace(
                previous,
                received_at=received_at,
                device_ts=received_at - timedelta(seconds=2) if stamped else None,
                temperature=float32(previous.temperature + step.temperature),
                humidity=float32(min(100.0, max(0.0, previous.humidity + step.humidity))),
                fan_pwm_duty=min(100, max(0, previous.fan_pwm_duty + step.fan)),
                device_state=step.device_state or previous.device_state,
                **{name: not getattr(previous, name) for name in step.flips},
            )
        )
    return readings


def had_reason(stored: Reading, reading: Reading, thresholds: DeviceKind) -> bool:
    """Whether a reason to write ``reading`` over ``stored`` exists (see ingest.cdc)."""
    discrete = any(getattr(stored, name) != getattr(reading, name) for name in DISCRETE)
    moved = any(
        abs(getattr(reading, name) - getattr(stored, name)) >= limit
        or math.isclose(abs(getattr(reading, name) - getattr(stored, name)), limit, rel_tol=1e-4)
        for name, limit in (
            ("temperature", band(thresholds, "temperature")),
            ("humidity", band(thresholds, "humidity")),
            ("fan_pwm_duty", band(thresholds, "fan_pwm_duty")),
        )
    )
    due = reading.received_at - stored.received_at >= thresholds.periodic
    return discrete or moved or due


@settings(max_examples=200, deadline=None)
@given(steps=steps_strategy)
def test_stored_history_stays_within_the_thresholds_of_every_reading(
    steps: list[Step],
) -> None:
    """Proves, for any stream (intervals 1-120 s), reading the points as a step function.

    At every reading R, with P the latest point written up to and including R:
    |P - R| < threshold for temperature, humidity and fan; every I/O, device_state and
    is_online value of P equals R's (no transition is missed); R.received_at - P.received_at
    < periodic. Hence consecutive points are less than periodic + the interval before the
    later one apart. Conversely every point but the first had a reason (no flood), and the
    first reading is always written.
    """
    thresholds = DEFAULT_THRESHOLDS
    readings = walk(steps)
    decisions = run(readings, thresholds)
    assert decisions[0].write
    stored = readings[0]
    for previous, reading, decision in zip(readings[:-1], readings[1:], decisions[1:], strict=True):
        assert not decision.duplicate
        if decision.write:
            assert decision.state.reference == reading
            assert had_reason(stored, reading, thresholds)
            assert reading.received_at - stored.received_at < (
                thresholds.periodic + (reading.received_at - previous.received_at)
            )
            stored = reading
        assert abs(stored.temperature - reading.temperature) < band(thresholds, "temperature")
        assert abs(stored.humidity - reading.humidity) < band(thresholds, "humidity")
        assert abs(stored.fan_pwm_duty - reading.fan_pwm_duty) < band(thresholds, "fan_pwm_duty")
        for name in DISCRETE:
            assert getattr(stored, name) == getattr(reading, name)
        assert reading.received_at - stored.received_at < thresholds.periodic


@settings(max_examples=200, deadline=None)
@given(
    steps=steps_strategy,
    replays=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=20),
)
def test_redeliveries_change_nothing(steps: list[Step], replays: list[tuple[int, int]]) -> None:
    """Replaying earlier stamped readings anywhere in a stream: all duplicates, same points."""
    readings = walk(steps, device_ts=True)
    noisy: list[tuple[Reading, bool]] = []
    for index, reading in enumerate(readings):
        noisy.append((reading, False))
        for after, which in replays:
            if after % len(readings) == index:
                late = reading.received_at + timedelta(milliseconds=500)
                noisy.append((replace(readings[which % (index + 1)], received_at=late), True))
    decisions = run([reading for reading, _ in noisy])
    for (_, replayed), decision in zip(noisy, decisions, strict=True):
        assert decision.duplicate is replayed
    fresh = [
        decision for (_, replayed), decision in zip(noisy, decisions, strict=True) if not replayed
    ]
    assert fresh == run(readings)


@settings(max_examples=200, deadline=None)
@given(first=steps_strategy, second=steps_strategy, split=st.integers(0, 122))
def test_restart_from_snapshot_continues_exactly(
    first: list[Step], second: list[Step], split: int
) -> None:
    """A tracker seeded mid-stream from another's snapshot decides exactly as one never stopped."""
    stream = sorted(
        [(reading.received_at, 1, reading) for reading in walk(first)]
        + [(reading.received_at, 2, reading) for reading in walk(second)],
        key=lambda item: (item[0], item[1]),
    )
    split %= len(stream) + 1
    uninterrupted = CdcTracker()
    expected = [uninterrupted.observe(device, reading) for _, device, reading in stream]
    before = CdcTracker()
    decisions = [before.observe(device, reading) for _, device, reading in stream[:split]]
    after = CdcTracker()
    after.seed(before.snapshot([1, 2]))
    decisions += [after.observe(device, reading) for _, device, reading in stream[split:]]
    assert decisions == expected
    assert after.snapshot([1, 2]) == uninterrupted.snapshot([1, 2])
