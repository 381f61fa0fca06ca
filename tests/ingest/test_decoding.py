"""Decoding turns bytes into validated messages or a precise dead-letter reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.contract import TopicKind, TopicScheme, pb
from ingest.decoding import DecodeLimits, Decoder
from ingest.messages import (
    AlarmReport,
    CommandReply,
    HeartbeatReport,
    LastWill,
    Rejected,
    RejectReason,
    StatusReport,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
HOST = "ESG_ALARM_0001"
SCHEME = TopicScheme("fleet")


def topic(kind: TopicKind, host: str = HOST) -> str:
    return SCHEME.topic(host, kind)


def heartbeat(**changes: object) -> pb.Heartbeat:
    values: dict[str, object] = {
        "mac_address": "AA:BB:CC:DD:EE:01",
        "device_db_id": 1,
        "firmware": "2.1.0",
        "uptime": 100,
        "temperature": 22.5,
        "humidity": 45.0,
        "fan_pwm_duty": 30,
        "eth_interface": 1,
        "timestamp": NOW_MS,
    }
    values.update(changes)
    return pb.Heartbeat(**values)  # type: ignore[arg-type]


def status(**changes: object) -> pb.StatusMessage:
    values: dict[str, object] = {
        "mac_address": "aa-bb-cc-dd-ee-01",
        "hostname": HOST,
        "firmware": "2.1.0",
        "state": pb.StatusMessage.NORMAL,
        "network": pb.StatusMessage.NETWORK_ETHERNET,
        "ip_address": "10.1.2.3",
        "rssi": -60,
        "temperature": 21.0,
        "humidity": 40.0,
        "country": "es",
        "zone": 3,
        "latitude": 40.4168,
        "longitude": -3.7038,
        "timestamp": NOW_MS,
    }
    values.update(changes)
    return pb.StatusMessage(**values)  # type: ignore[arg-type]


def decode(kind: TopicKind, message: bytes, host: str = HOST) -> object:
    return Decoder(SCHEME).decode(topic(kind, host), message, NOW)


def rejection(kind: TopicKind, payload: bytes, host: str = HOST) -> RejectReason:
    with pytest.raises(Rejected) as caught:
        decode(kind, payload, host)
    return caught.value.reason


def test_heartbeat_is_decoded_with_network_and_times() -> None:
    """A valid heartbeat keeps its values, maps eth_interface and keeps a plausible clock."""
    got = decode(TopicKind.HEARTBEAT, heartbeat().SerializeToString())
    assert isinstance(got, HeartbeatReport)
    assert (got.mac, got.network_type, got.fan_pwm_duty) == ("aa:bb:cc:dd:ee:01", "ethernet", 30)
    assert got.device_ts == NOW
    assert got.received_at == NOW


def test_status_is_normalised() -> None:
    """A status message gets a canonical MAC, the state name, upper-case country, location."""
    got = decode(TopicKind.STATUS, status().SerializeToString())
    assert isinstance(got, StatusReport)
    assert got.mac == "aa:bb:cc:dd:ee:01"
    assert (got.device_state, got.network_type, got.country) == ("NORMAL", "ethernet", "ES")
    assert (got.latitude, got.longitude) == (40.4168, -3.7038)


def test_status_without_location_has_none() -> None:
    """0/0 coordinates mean 'no location', not a point in the Gulf of Guinea."""
    got = decode(TopicKind.STATUS, status(latitude=0.0, longitude=0.0).SerializeToString())
    assert isinstance(got, StatusReport)
    assert got.latitude is None


def test_implausible_device_clock_is_dropped() -> None:
    """A device clock far from the server's is not kept; an unset one is None."""
    skewed = heartbeat(timestamp=NOW_MS - int(timedelta(days=400).total_seconds() * 1000))
    got = decode(TopicKind.HEARTBEAT, skewed.SerializeToString())
    assert isinstance(got, HeartbeatReport)
    assert got.device_ts is None
    unset = decode(TopicKind.HEARTBEAT, heartbeat(timestamp=0).SerializeToString())
    assert isinstance(unset, HeartbeatReport)
    assert unset.device_ts is None


def test_alarm_event_names_and_digest() -> None:
    """An alarm carries enum names, output fields only for outputs, and a payload digest."""
    event = pb.AlarmEvent(
        mac_address="AA:BB:CC:DD:EE:01",
        sequence=5,
        timestamp=NOW_MS,
        type=pb.AlarmEvent.PANIC1,
        state=pb.AlarmEvent.ACTIVE,
        priority=pb.AlarmEvent.CRITICAL,
        output_type=2,
    )
    got = decode(TopicKind.ALARM, event.SerializeToString())
    assert isinstance(got, AlarmReport)
    assert (got.alarm_type, got.event_state, got.priority) == ("PANIC1", "ACTIVE", "CRITICAL")
    assert got.output_type is None
    assert len(got.digest) == 16


def test_command_response_and_last_will() -> None:
    """Responses need a UUID and a stage; a last will needs nothing but its topic."""
    reply = pb.CommandResponse(
        request_id="6f1c8f5e-3d6a-4c1e-9a53-0a8f3c2b1d11",
        stage=pb.CommandResponse.COMPLETED,
        success=True,
        data={"k": "v"},
    )
    got = decode(TopicKind.RESPONSE, reply.SerializeToString())
    assert isinstance(got, CommandReply)
    assert (got.stage, got.data) == ("COMPLETED", {"k": "v"})
    will = decode(TopicKind.LWT, b"offline")
    assert isinstance(will, LastWill)
    assert will.hostname == HOST


@pytest.mark.parametrize(
    ("kind", "payload", "host", "reason"),
    [
        (TopicKind.HEARTBEAT, b"\xff\xff\xff", HOST, RejectReason.UNDECODABLE),
        (TopicKind.HEARTBEAT, b"x" * 5000, HOST, RejectReason.TOO_LARGE),
        (
            TopicKind.HEARTBEAT,
            heartbeat(humidity=140.0).SerializeToString(),
            HOST,
            RejectReason.OUT_OF_RANGE,
        ),
        (
            TopicKind.HEARTBEAT,
            heartbeat(fan_pwm_duty=250).SerializeToString(),
            HOST,
            RejectReason.OUT_OF_RANGE,
        ),
        (
            TopicKind.HEARTBEAT,
            heartbeat(temperature=float("nan")).SerializeToString(),
            HOST,
            RejectReason.OUT_OF_RANGE,
        ),
        (
            TopicKind.HEARTBEAT,
            heartbeat(eth_interface=7).SerializeToString(),
            HOST,
            RejectReason.OUT_OF_RANGE,
        ),
        (
            TopicKind.HEARTBEAT,
            heartbeat(mac_address="not-a-mac").SerializeToString(),
            HOST,
            RejectReason.BAD_MAC,
        ),
        (
            TopicKind.HEARTBEAT,
            heartbeat(mac_address="").SerializeToString(),
            HOST,
            RejectReason.BAD_MAC,
        ),
        (
            TopicKind.HEARTBEAT,
            heartbeat(mac_address="00:00:00:00:00:00").SerializeToString(),
            HOST,
            RejectReason.BAD_MAC,
        ),
        (
            TopicKind.STATUS,
            status(hostname="ESG_ALARM_0002").SerializeToString(),
            HOST,
            RejectReason.HOSTNAME_MISMATCH,
        ),
        (TopicKind.STATUS, status(state=42).SerializeToString(), HOST, RejectReason.OUT_OF_RANGE),
        (
            TopicKind.STATUS,
            status(latitude=91.0).SerializeToString(),
            HOST,
            RejectReason.OUT_OF_RANGE,
        ),
        (
            TopicKind.STATUS,
            status(ip_address="300.1.1.1").SerializeToString(),
            HOST,
            RejectReason.OUT_OF_RANGE,
        ),
        (
            TopicKind.ALARM,
            pb.AlarmEvent(mac_address="AA:BB:CC:DD:EE:01", type=9).SerializeToString(),
            HOST,
            RejectReason.OUT_OF_RANGE,
        ),
        (
            TopicKind.RESPONSE,
            pb.CommandResponse(request_id="nope", stage=1).SerializeToString(),
            HOST,
            RejectReason.OUT_OF_RANGE,
        ),
    ],
)
def test_bad_input_gets_a_precise_reason(
    kind: TopicKind, payload: bytes, host: str, reason: RejectReason
) -> None:
    """Each kind of bad input is rejected with its own reason."""
    assert rejection(kind, payload, host) == reason


@pytest.mark.parametrize(
    "bad_topic", ["fleet/ESG_ALARM_0001", "other/ESG_ALARM_0001/heartbeat", "fleet/a b/status"]
)
def test_bad_topics_are_rejected(bad_topic: str) -> None:
    """Topics outside the contract are rejected as bad_topic."""
    with pytest.raises(Rejected) as caught:
        Decoder(SCHEME).decode(bad_topic, heartbeat().SerializeToString(), NOW)
    assert caught.value.reason == RejectReason.BAD_TOPIC


def test_own_commands_are_not_input() -> None:
    """A command published by fleetwatch, seen on the prefix wildcard, decodes to None."""
    assert decode(TopicKind.COMMAND, pb.CommandEnvelope().SerializeToString()) is None


def test_limits_validate() -> None:
    """Nonsense limits fail at construction."""
    with pytest.raises(ValueError, match="positive"):
        DecodeLimits(max_payload_bytes=0)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=600), kind=st.sampled_from(list(TopicKind)))
def test_random_bytes_never_escape_as_other_errors(payload: bytes, kind: TopicKind) -> None:
    """Whatever the bytes, decoding returns a message or raises Rejected, nothing else."""
    outcome: object
    try:
        outcome = Decoder(SCHEME).decode(topic(kind), payload, NOW)
    except Rejected as exc:
        outcome = exc.reason
    assert isinstance(
        outcome,
        RejectReason
        | HeartbeatReport
        | StatusReport
        | AlarmReport
        | CommandReply
        | LastWill
        | None,
    )
