"""The wire contract: generated code is current, enums match the design, topics parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.contract import TopicError, TopicKind, TopicScheme, pb
from ingest.contract.codegen import GENERATED_NAMES, contract_dir, generate


def test_committed_bindings_match_the_proto(tmp_path: Path) -> None:
    """Regenerating from the .proto reproduces the committed bindings exactly."""
    for fresh in generate(tmp_path):
        committed = contract_dir() / fresh.name
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"{fresh.name} is stale: run python -m ingest.contract.codegen"
        )
    assert {p.name for p in tmp_path.iterdir()} == set(GENERATED_NAMES)


@pytest.mark.parametrize(
    ("enum", "expected"),
    [
        (
            pb.AlarmEvent.AlarmType,
            {
                "UNKNOWN": 0,
                "PANIC1": 1,
                "PANIC2": 2,
                "TAMPER": 3,
                "FIRE": 4,
                "INTRUSION": 5,
                "MEDICAL": 6,
                "DURESS": 7,
                "OUTPUT_EVENT": 10,
            },
        ),
        (
            pb.AlarmEvent.EventState,
            {"INACTIVE": 0, "ACTIVE": 1, "TEST": 2, "STARTING": 3, "STOPPING": 4},
        ),
        (pb.AlarmEvent.Priority, {"LOW": 0, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 3}),
        (
            pb.StatusMessage.NetworkType,
            {"NETWORK_WIFI": 0, "NETWORK_ETHERNET": 1, "NETWORK_NONE": 2},
        ),
        (
            pb.CommandEnvelope.CommandType,
            {"UNKNOWN": 0, "SYSTEM": 1, "CONFIG": 2, "OUTPUT": 3, "DIAGNOSTIC": 4, "OTA": 5},
        ),
    ],
)
def test_enum_values_follow_the_design(enum: object, expected: dict[str, int]) -> None:
    """Enum names and numbers are the ones the database design fixes."""
    assert dict(enum.items()) == expected  # type: ignore[attr-defined]


def test_device_states_are_the_designed_set() -> None:
    """DeviceState holds exactly the states device_status.device_state accepts."""
    assert set(pb.StatusMessage.DeviceState.keys()) == {
        "BOOT",
        "INIT",
        "CONNECTING",
        "NORMAL",
        "ALARM",
        "MAINTENANCE",
        "ERROR",
        "CRITICAL",
        "OFFLINE",
        "UNKNOWN",
    }


def test_status_message_carries_every_designed_field() -> None:
    """StatusMessage has every field the design sources from it."""
    fields = set(pb.StatusMessage.DESCRIPTOR.fields_by_name)
    assert fields == {
        "mac_address",
        "device_db_id",
        "hostname",
        "firmware",
        "partition",
        "ota_validated",
        "uptime",
        "boot_count",
        "state",
        "state_duration",
        "free_heap",
        "min_heap",
        "network",
        "ip_address",
        "rssi",
        "connected",
        "has_ip",
        "mqtt_connected",
        "ntp_synced",
        "last_ntp_sync",
        "panic1",
        "panic2",
        "box_sw",
        "siren",
        "turret",
        "panic1_count",
        "panic2_count",
        "tamper_count",
        "wifi_disconnects",
        "mqtt_disconnects",
        "error_count",
        "temperature",
        "humidity",
        "error_flags",
        "country",
        "zone",
        "latitude",
        "longitude",
        "timestamp",
    }


def test_command_envelope_round_trips_its_payload() -> None:
    """A command serialises and parses back with the same oneof payload."""
    envelope = pb.CommandEnvelope(
        request_id="6f1c8f5e-3d6a-4c1e-9a53-0a8f3c2b1d11",
        sequence=12,
        timestamp=1_767_225_600_000,
        type=pb.CommandEnvelope.OUTPUT,
        auth_level=1,
        output_control=pb.OutputControl(
            output=pb.OutputControl.SIREN, pattern=2, duration_seconds=30, on=True
        ),
    )
    parsed = pb.CommandEnvelope.FromString(envelope.SerializeToString())
    assert parsed.WhichOneof("payload") == "output_control"
    assert parsed == envelope


def test_timestamps_are_64_bit_milliseconds() -> None:
    """Epoch milliseconds beyond 2038 fit every timestamp field."""
    far = 4_102_444_800_000  # 2100-01-01
    for message in (pb.StatusMessage, pb.Heartbeat, pb.AlarmEvent, pb.CommandResponse):
        assert message.FromString(message(timestamp=far).SerializeToString()).timestamp == far


def test_topics_build_and_parse() -> None:
    """Topics follow prefix/hostname/kind and parse back into their parts."""
    scheme = TopicScheme("site/fleet")
    topic = scheme.topic("ESG_ALARM_0001", TopicKind.ALARM)
    assert topic == "site/fleet/ESG_ALARM_0001/alarm"
    parsed = scheme.parse(topic)
    assert (parsed.hostname, parsed.kind) == ("ESG_ALARM_0001", TopicKind.ALARM)
    assert scheme.subscription(TopicKind.STATUS) == "site/fleet/+/status"


@pytest.mark.parametrize(
    "topic",
    [
        "other/ESG_ALARM_0001/status",
        "fleet/ESG_ALARM_0001/firmware",
        "fleet/ESG_ALARM_0001/status/extra",
        "fleet/status",
        "fleet/bad host/status",
    ],
)
def test_foreign_topics_are_rejected(topic: str) -> None:
    """Topics outside the layout raise TopicError instead of being guessed at."""
    with pytest.raises(TopicError):
        TopicScheme("fleet").parse(topic)
