"""How simulated panels answer commands, checked on the generator without a broker."""

from __future__ import annotations

import uuid

from ingest.contract import TopicScheme, pb
from simulator import Behaviour, Emission, Fleet, FleetOptions, Outcome
from tests.simulator.conftest import START_MS, kind_of

Response = pb.CommandResponse
HOST = "ESG_ALARM_0002"
COMMAND_TOPIC = f"fleet/{HOST}/command"
AT_MS = START_MS + 20_000  # every panel is connected by then
RELIABLE = Behaviour(command_silence=0.0, command_failure=0.0)


def envelope(kind: str, auth_level: int = 2, **values: object) -> pb.CommandEnvelope:
    """A CommandEnvelope with a fresh request id."""
    types = {
        "reboot": pb.CommandEnvelope.SYSTEM,
        "set_device_id": pb.CommandEnvelope.SYSTEM,
        "output_control": pb.CommandEnvelope.OUTPUT,
        "diagnostic": pb.CommandEnvelope.DIAGNOSTIC,
    }
    message = pb.CommandEnvelope(
        request_id=str(uuid.uuid4()),
        sequence=7,
        timestamp=AT_MS,
        type=types[kind],
        auth_level=auth_level,
    )
    getattr(message, kind).SetInParent()
    for name, value in values.items():
        setattr(getattr(message, kind), name, value)
    return message


def answer(
    command: pb.CommandEnvelope, behaviour: Behaviour = RELIABLE, after_s: float = 120
) -> tuple[Outcome | None, list[Emission]]:
    """Deliver ``command`` to HOST at AT_MS; its outcome and HOST's messages that follow."""
    fleet = Fleet(FleetOptions(devices=3, seed=11, behaviour=behaviour), TopicScheme(), START_MS)
    list(fleet.stream(AT_MS))
    outcome = fleet.deliver_command(COMMAND_TOPIC, command.SerializeToString(), AT_MS)
    after = fleet.stream(AT_MS + round(after_s * 1000))
    return outcome, [e for e in after if kind_of(e)[0] == HOST]


def responses(emissions: list[Emission]) -> list[tuple[int, Response]]:
    """(time, response) of the response messages among ``emissions``."""
    return [
        (e.at_ms, Response.FromString(e.payload)) for e in emissions if kind_of(e)[1] == "response"
    ]


def test_acknowledged_then_completed() -> None:
    """A command is acknowledged within 300 ms, then completed with its ids echoed."""
    command = envelope("diagnostic", action="self_test")
    outcome, emissions = answer(command)
    (ack_at, ack), (done_at, done) = responses(emissions)
    assert outcome is Outcome.ANSWERED
    assert (ack.stage, done.stage) == (Response.ACKNOWLEDGED, Response.COMPLETED)
    assert {ack.request_id, done.request_id} == {command.request_id}
    assert ack.sequence == done.sequence == 7
    assert AT_MS < ack_at <= AT_MS + 300 < done_at
    assert done.success
    assert done.data["result"] == "pass"


def test_failure_is_a_completed_with_an_error() -> None:
    """A failing command is acknowledged, then COMPLETED with success false, code and error."""
    outcome, emissions = answer(
        envelope("reboot"), Behaviour(command_silence=0.0, command_failure=1.0)
    )
    (_, ack), (_, done) = responses(emissions)
    assert outcome is Outcome.FAILED
    assert ack.stage == Response.ACKNOWLEDGED
    assert (done.stage, done.success) == (Response.COMPLETED, False)
    assert done.response_code != 0
    assert done.error_message
    assert "lwt" not in {kind_of(e)[1] for e in emissions}  # it did not reboot


def test_lost_command_gets_no_answer() -> None:
    """A lost command produces no response at all."""
    outcome, emissions = answer(
        envelope("reboot"), Behaviour(command_silence=1.0, command_failure=0.0)
    )
    assert outcome is Outcome.SILENT
    assert responses(emissions) == []


def test_insufficient_level_is_refused() -> None:
    """A reboot below authorisation level 2 is refused with 403."""
    _, emissions = answer(envelope("reboot", auth_level=1))
    (_, done) = responses(emissions)[-1]
    assert (done.success, done.response_code) == (False, 403)


def test_reboot_drops_and_comes_back_with_a_new_boot() -> None:
    """After COMPLETED a rebooted panel's will goes out, then a status with boot_count + 1."""
    fleet_before = Fleet(FleetOptions(devices=3, seed=11), TopicScheme(), START_MS)
    boot_count = fleet_before.panels[1].boot_count
    _, emissions = answer(envelope("reboot", delay_ms=500))
    kinds = [kind_of(e)[1] for e in emissions]
    completed = kinds.index("response", kinds.index("response") + 1)
    will = kinds.index("lwt")
    status = kinds.index("status", will)
    assert completed < will < status
    assert "heartbeat" not in kinds[will:status]
    rebooted = pb.StatusMessage.FromString(emissions[status].payload)
    assert rebooted.boot_count == boot_count + 1
    assert rebooted.uptime < 60


def test_output_control_runs_a_pattern() -> None:
    """Switching the siren on for 10 s gives STARTING, ACTIVE, STOPPING, INACTIVE."""
    command = envelope(
        "output_control", auth_level=1, output=1, pattern=2, duration_seconds=10, on=True
    )
    _, emissions = answer(command)
    events = [pb.AlarmEvent.FromString(e.payload) for e in emissions if kind_of(e)[1] == "alarm"]
    sirens = [e for e in events if e.type == pb.AlarmEvent.OUTPUT_EVENT and e.output_type == 1]
    assert [e.state for e in sirens] == [
        pb.AlarmEvent.STARTING,
        pb.AlarmEvent.ACTIVE,
        pb.AlarmEvent.STOPPING,
        pb.AlarmEvent.INACTIVE,
    ]
    assert {(e.pattern_type, e.duration_seconds) for e in sirens} == {(2, 10)}


def test_set_device_id_is_adopted() -> None:
    """After SET_DEVICE_ID the panel's heartbeats carry the new id."""
    _, emissions = answer(envelope("set_device_id", device_db_id=321))
    beats = [pb.Heartbeat.FromString(e.payload) for e in emissions if kind_of(e)[1] == "heartbeat"]
    assert beats[-1].device_db_id == 321


def test_answer_does_not_depend_on_arrival_time() -> None:
    """The same command gets the same kind of answer whenever it arrives."""
    behaviour = Behaviour(command_silence=0.3, command_failure=0.3)
    outcomes = set()
    for _ in range(20):
        command = envelope("diagnostic", action="self_test")
        fleet = Fleet(
            FleetOptions(devices=3, seed=11, behaviour=behaviour), TopicScheme(), START_MS
        )
        other = Fleet(
            FleetOptions(devices=3, seed=11, behaviour=behaviour), TopicScheme(), START_MS
        )
        list(fleet.stream(AT_MS))
        list(other.stream(AT_MS + 5000))
        payload = command.SerializeToString()
        first = fleet.deliver_command(COMMAND_TOPIC, payload, AT_MS)
        assert first == other.deliver_command(COMMAND_TOPIC, payload, AT_MS + 5000)
        outcomes.add(first)
    assert outcomes == {Outcome.ANSWERED, Outcome.FAILED, Outcome.SILENT}


def test_undecodable_and_foreign_commands() -> None:
    """Garbage on a panel's command topic is reported undecodable; other topics are ignored."""
    fleet = Fleet(FleetOptions(devices=3, seed=11), TopicScheme(), START_MS)
    list(fleet.stream(AT_MS))
    assert fleet.deliver_command(COMMAND_TOPIC, b"\xff\xff\xff", AT_MS) is Outcome.UNDECODABLE
    assert fleet.deliver_command("fleet/ESG_ALARM_9999/command", b"", AT_MS) is None


def test_offline_panel_hears_nothing() -> None:
    """A command arriving before the panel has connected is lost."""
    fleet = Fleet(FleetOptions(devices=3, seed=11), TopicScheme(), START_MS)
    payload = envelope("reboot").SerializeToString()
    assert fleet.deliver_command(COMMAND_TOPIC, payload, START_MS) is Outcome.OFFLINE
