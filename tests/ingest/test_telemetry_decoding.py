"""JSON telemetry: each kind of bad reading gets its own dead-letter reason; good ones decode."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.contract import TopicKind, TopicScheme
from ingest.decoding import Decoder
from ingest.kinds.telemetry import DeviceType, checked_values, metric
from ingest.messages import Rejected, RejectReason, TelemetryReport

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
SERIAL = "VIB-SN-001"
SCHEME = TopicScheme("fleet")
VIBRATION = DeviceType(
    name="vibration_sensor",
    metrics=(
        metric("vibration", unit="mm/s", minimum=0, maximum=100, dead_band=0.5),
        metric("operating_hours", unit="h", type="int", minimum=0, maximum=10**6, dead_band=1),
        metric("running", type="bool"),
    ),
)


def body(**changes: object) -> bytes:
    values: dict[str, object] = {
        "version": "0.0.1",
        "serial_number": SERIAL,
        "metrics": {"vibration": 5.2, "operating_hours": 1250},
    }
    values.update(changes)
    return json.dumps(values).encode()


def decode(payload: bytes, serial: str = SERIAL) -> object:
    return Decoder(SCHEME).decode(SCHEME.topic(serial, TopicKind.TELEMETRY), payload, NOW)


def reason(payload: bytes, serial: str = SERIAL) -> RejectReason:
    with pytest.raises(Rejected) as raised:
        decode(payload, serial)
    return raised.value.reason


def test_seed_payload_decodes() -> None:
    """Seed 002's example becomes a TelemetryReport of the topic's serial, at server time."""
    got = decode(body())
    assert isinstance(got, TelemetryReport)
    assert (got.hostname, got.version, got.device_type) == (SERIAL, "0.0.1", None)
    assert got.metrics == {"vibration": 5.2, "operating_hours": 1250}
    assert (got.received_at, got.device_ts) == (NOW, None)


def test_device_timestamp_and_announced_type_are_kept() -> None:
    """An optional epoch-ms timestamp and device_type travel with the reading."""
    got = decode(body(timestamp=NOW_MS - 1000, device_type="vibration_sensor"))
    assert isinstance(got, TelemetryReport)
    assert got.device_ts is not None
    assert got.device_ts.timestamp() == NOW.timestamp() - 1
    assert got.device_type == "vibration_sensor"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"{not json", RejectReason.MALFORMED_JSON),
        (b"{\xff\xfe}", RejectReason.MALFORMED_JSON),
        (b"[1, 2]", RejectReason.UNDECODABLE),  # not '{': read as the protobuf form
        (
            b'{"version": "0.0.1", "serial_number": "VIB-SN-001", "metrics": {"v": NaN}}',
            RejectReason.MALFORMED_JSON,
        ),
        (body(extra=1), RejectReason.MALFORMED_JSON),
        (body(version=1), RejectReason.MALFORMED_JSON),
        (body(metrics=[]), RejectReason.MALFORMED_JSON),
        (body(metrics={}), RejectReason.MALFORMED_JSON),
        (body(timestamp="yesterday"), RejectReason.MALFORMED_JSON),
        (body(device_type=7), RejectReason.MALFORMED_JSON),
        (body(metrics={"vibration": "high"}), RejectReason.WRONG_TYPE),
        (body(metrics={"vibration": None}), RejectReason.WRONG_TYPE),
        (body(metrics={"vibration": {"rms": 1}}), RejectReason.WRONG_TYPE),
        (body(serial_number="VIB-SN-002"), RejectReason.HOSTNAME_MISMATCH),
        (body(metrics={f"m{i}": i for i in range(500)}), RejectReason.TOO_LARGE),
    ],
)
def test_malformed_readings_get_their_reason(payload: bytes, expected: RejectReason) -> None:
    """Each structural fault is named: malformed JSON, wrong value type, serial mismatch,
    payload over the size limit."""
    assert reason(payload) is expected


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"acceleration": 1.0}, RejectReason.UNKNOWN_METRIC),
        ({"vibration": True}, RejectReason.WRONG_TYPE),
        ({"running": 1}, RejectReason.WRONG_TYPE),
        ({"operating_hours": 12.5}, RejectReason.WRONG_TYPE),
        ({"vibration": -0.1}, RejectReason.OUT_OF_RANGE),
        ({"vibration": 100.5}, RejectReason.OUT_OF_RANGE),
        ({"operating_hours": 2**70}, RejectReason.OUT_OF_RANGE),
        ({"vibration": 10**400}, RejectReason.OUT_OF_RANGE),
    ],
)
def test_values_are_checked_against_the_type(
    metrics: dict[str, object], expected: RejectReason
) -> None:
    """Against the device type: unknown metric, wrong type, out of the declared range."""
    with pytest.raises(Rejected) as raised:
        checked_values(VIBRATION, metrics)
    assert raised.value.reason is expected


def test_checked_values_keep_each_metric_in_its_declared_type() -> None:
    """JSON's 5 for a float metric is stored as 5.0, an integral 1250.0 as the int 1250."""
    values = checked_values(VIBRATION, {"vibration": 5, "operating_hours": 1250.0, "running": True})
    assert values == {"vibration": 5.0, "operating_hours": 1250, "running": True}
    assert isinstance(values["vibration"], float)
    assert isinstance(values["operating_hours"], int)


@settings(max_examples=300, deadline=None)
@given(
    data=st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_any_json_document_decodes_or_is_rejected(data: object) -> None:
    """Fuzzed JSON of any shape, with the real keys mixed in: a report or Rejected, nothing
    else escapes, and every accepted metric has passed the type check or is rejected there."""
    payloads = [json.dumps(data).encode()]
    if isinstance(data, dict):
        payloads.append(body(metrics=data))
    for payload in payloads:
        try:
            got = decode(payload)
        except Rejected:
            continue
        assert isinstance(got, TelemetryReport)
        refused: RejectReason | None = None
        try:
            checked_values(VIBRATION, got.metrics)
        except Rejected as exc:
            refused = exc.reason
        assert refused in {
            None,
            RejectReason.UNKNOWN_METRIC,
            RejectReason.WRONG_TYPE,
            RejectReason.OUT_OF_RANGE,
        }


def protobuf(serial: str = SERIAL, **metrics: object) -> bytes:
    from ingest.contract import telemetry_pb2

    reading = telemetry_pb2.TelemetryReading(
        version="0.0.1", serial_number=serial, timestamp=NOW_MS - 1000
    )
    for name, value in metrics.items():
        slot = reading.metrics[name]
        if isinstance(value, bool):
            slot.flag = value
        elif isinstance(value, int):
            slot.integer = value
        else:
            slot.number = float(value)  # type: ignore[arg-type]
    return reading.SerializeToString()


def test_protobuf_reading_decodes_as_its_json_twin() -> None:
    """The protobuf form on the same topic gives the same report as the JSON one."""
    got = decode(protobuf(vibration=5.2, operating_hours=1250, running=True))
    twin = decode(
        body(
            metrics={"vibration": 5.2, "operating_hours": 1250, "running": True},
            timestamp=NOW_MS - 1000,
        )
    )
    assert isinstance(got, TelemetryReport)
    assert got == twin
    assert checked_values(VIBRATION, got.metrics) == {
        "vibration": 5.2,
        "operating_hours": 1250,
        "running": True,
    }


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\xff\xff\xff", RejectReason.UNDECODABLE),
        (protobuf(), RejectReason.UNDECODABLE),  # no metrics
        (protobuf("VIB-SN-002", vibration=1.0), RejectReason.HOSTNAME_MISMATCH),
    ],
)
def test_bad_protobuf_readings_get_their_reason(payload: bytes, expected: RejectReason) -> None:
    """Corrupt bytes, a reading without metrics, another serial: each named."""
    assert reason(payload) is expected
