"""Answering commands as a panel's firmware does: acknowledge, carry out, report.

Most commands are acknowledged (``ACKNOWLEDGED``) within a few hundred milliseconds and
completed (``COMPLETED``, success) when done; some fail (``COMPLETED`` with success false and
an error), and some are lost (no answer at all), with the probabilities of ``Behaviour``.
Which of these happens to a command is drawn from the seed, the hostname and the request id,
so the answer does not depend on when the command arrived nor disturbs the panel's own
stream of events.

Out-of-sync panels (``Profile.out_of_sync``) model a firmware bug: they acknowledge
SET_DEVICE_ID and report success, but never store the id, so they keep reporting the old one.
That is the case the backend's device-id sync has to catch from the data alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from google.protobuf.message import DecodeError

from ingest.commands import PAYLOAD_TYPES, REQUIRED_LEVEL
from ingest.contract import pb
from simulator.options import Behaviour
from simulator.panel import SIREN, TURRET, Panel
from simulator.schedule import Agenda, Emission

Response = pb.CommandResponse
ACK_DELAY_MS = (20, 300)
FIRMWARE_MAX_CHARS = 16
# Time from acknowledgement to completion, per payload, and what a failure of it says.
WORK_MS: Mapping[str, tuple[int, int]] = {
    "set_device_id": (50, 400),
    "reboot": (100, 300),
    "output_control": (100, 800),
    "config_update": (100, 1000),
    "ota_update": (20_000, 90_000),
    "diagnostic": (500, 3000),
}
FAILURES: Mapping[str, tuple[int, str]] = {
    "set_device_id": (500, "nvs write failed"),
    "reboot": (409, "reboot refused: output test running"),
    "output_control": (500, "output driver fault"),
    "config_update": (400, "invalid configuration key"),
    "ota_update": (502, "download failed: HTTP 404"),
    "diagnostic": (500, "self-test failed: sensor timeout"),
}


class Outcome(StrEnum):
    """What became of a received command."""

    ANSWERED = "answered"  # acknowledged, completed with success
    FAILED = "failed"  # acknowledged, completed with an error
    SILENT = "silent"  # lost: no answer
    OFFLINE = "offline"  # the panel was not connected to hear it
    UNDECODABLE = "undecodable"  # not a CommandEnvelope


@dataclass(frozen=True, slots=True)
class _Plan:
    """A decided answer: completion time, result and the effect to apply on success."""

    done_ms: int
    code: int = 0
    error: str = ""
    data: Mapping[str, str] | None = None
    effect: Callable[[int], None] | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    """A command being carried out: who, what, and when it was acknowledged and is done."""

    panel: Panel
    envelope: pb.CommandEnvelope
    ack_ms: int
    done_ms: int
    rng: random.Random


class CommandAnswerer:
    """Decides and schedules each panel's answers to the commands it receives."""

    def __init__(self, seed: int, behaviour: Behaviour, agenda: Agenda) -> None:
        self._seed = seed
        self._behaviour = behaviour
        self._agenda = agenda
        self._handlers: Mapping[str, Callable[[_Job], _Plan]] = {
            "set_device_id": self._set_device_id,
            "reboot": self._reboot,
            "output_control": self._output,
            "config_update": self._config,
            "ota_update": self._ota,
            "diagnostic": self._diagnostic,
        }

    def receive(self, panel: Panel, payload: bytes, now: int) -> Outcome:
        """Take a CommandEnvelope that reached ``panel`` at ``now``; schedule its answers."""
        if not panel.online:
            return Outcome.OFFLINE
        try:
            envelope = pb.CommandEnvelope.FromString(payload)
        except DecodeError:
            return Outcome.UNDECODABLE
        rng = random.Random(  # noqa: S311 - a simulation
            f"{self._seed}:{panel.profile.hostname}:{envelope.request_id}:{envelope.sequence}"
        )
        kind = envelope.WhichOneof("payload")
        quirk = kind == "set_device_id" and panel.profile.out_of_sync
        roll = rng.random()
        silence, failure = self._behaviour.command_silence, self._behaviour.command_failure
        if roll < silence and not quirk:
            return Outcome.SILENT
        ack_ms = now + rng.randint(*ACK_DELAY_MS)
        ack = _response(envelope, ack_ms, Response.ACKNOWLEDGED)
        self._agenda.at(ack_ms, partial(self._send, panel, panel.epoch, ack))
        if kind is None:
            plan = _Plan(ack_ms + 10, 400, "command has no payload")
        else:
            done_ms = ack_ms + rng.randint(*WORK_MS[kind])
            refusal = self._refusal(envelope, kind, ack_ms)
            if refusal is not None:
                plan = refusal
            elif roll < silence + failure and not quirk:
                code, error = FAILURES[kind]
                plan = _Plan(done_ms, code, error)
            else:
                plan = self._handlers[kind](_Job(panel, envelope, ack_ms, done_ms, rng))
        panel.busy += 1
        self._agenda.at(plan.done_ms, partial(self._complete, panel, envelope, plan, panel.epoch))
        return Outcome.FAILED if plan.error else Outcome.ANSWERED

    def _refusal(self, envelope: pb.CommandEnvelope, kind: str, ack_ms: int) -> _Plan | None:
        """The firmware's own checks: the payload is of the declared type, and authorised."""
        type_name = pb.CommandEnvelope.CommandType.Name(envelope.type)
        if type_name != PAYLOAD_TYPES[kind]:
            return _Plan(ack_ms + 10, 400, f"{kind} is not a {type_name} command")
        if envelope.auth_level < REQUIRED_LEVEL[type_name]:
            return _Plan(
                ack_ms + 10,
                403,
                f"{type_name} needs authorisation level {REQUIRED_LEVEL[type_name]}",
            )
        return None

    def _set_device_id(self, job: _Job) -> _Plan:
        device_id = job.envelope.set_device_id.device_db_id
        data = {"device_db_id": str(device_id)}
        if job.panel.profile.out_of_sync:
            return _Plan(job.done_ms, data=data)  # reports success, stores nothing
        return _Plan(job.done_ms, data=data, effect=lambda _: job.panel.adopt_device_id(device_id))

    def _reboot(self, job: _Job) -> _Plan:
        panel = job.panel
        delay_ms, down_ms = job.envelope.reboot.delay_ms, job.rng.randint(8000, 20000)
        return _Plan(
            job.done_ms,
            data={"boot_count": str(panel.boot_count + 1)},
            effect=lambda now: self._restart(now + delay_ms, panel, down_ms),
        )

    def _output(self, job: _Job) -> _Plan:
        control, panel = job.envelope.output_control, job.panel
        if control.output == pb.OutputControl.OUTPUT_KIND_UNSPECIFIED:
            return _Plan(job.done_ms, 400, "no output named")
        output = TURRET if control.output == pb.OutputControl.TURRET else SIREN
        name = pb.OutputControl.OutputKind.Name(control.output)
        data = {"output": name, "state": "on" if control.on else "off"}
        pattern, duration = control.pattern or 1, control.duration_seconds

        def effect(now: int) -> None:
            if control.on:
                panel.start_output(now, output, pattern, duration)
            else:
                panel.stop_output(now, output)

        return _Plan(job.done_ms, data=data, effect=effect)

    def _config(self, job: _Job) -> _Plan:
        return _Plan(job.done_ms, data={"applied": str(len(job.envelope.config_update.values))})

    def _ota(self, job: _Job) -> _Plan:
        update, panel = job.envelope.ota_update, job.panel
        version = update.version
        if not version or len(version) > FIRMWARE_MAX_CHARS or not update.url:
            return _Plan(job.ack_ms + 10, 400, "ota_update needs a url and a 1-16 char version")
        panel.set_maintenance(job.ack_ms, on=True)  # downloading until done_ms
        down_ms = job.rng.randint(10_000, 25_000)

        def effect(now: int) -> None:
            panel.set_maintenance(now, on=False)
            panel.install_firmware(version)
            self._restart(now + 500, panel, down_ms)

        return _Plan(job.done_ms, data={"version": version}, effect=effect)

    def _diagnostic(self, job: _Job) -> _Plan:
        action = job.envelope.diagnostic.action or "report_status"
        if action == "report_status":
            return _Plan(job.done_ms, data={"action": action}, effect=job.panel.emit_status_now)
        temperature, humidity, fan = job.panel.sensors.read(job.done_ms)
        data = {
            "action": action,
            "result": "pass",
            "temperature": f"{temperature:.2f}",
            "humidity": f"{humidity:.1f}",
            "fan_pwm_duty": str(fan),
        }
        return _Plan(job.done_ms, data=data)

    def _restart(self, at_ms: int, panel: Panel, down_ms: int) -> None:
        """Restart ``panel`` at ``at_ms``, after its COMPLETED went out."""
        epoch = panel.epoch

        def restart(now: int) -> None:
            if panel.epoch == epoch:
                panel.shut_down(now, down_ms)

        self._agenda.at(max(at_ms, 0), restart)

    def _send(self, panel: Panel, epoch: int, payload: bytes, now: int) -> None:
        if epoch == panel.epoch:  # a restart in between: the answer died with the panel
            panel.emit(Emission(now, panel.topics.response, payload))

    def _complete(
        self, panel: Panel, envelope: pb.CommandEnvelope, plan: _Plan, epoch: int, now: int
    ) -> None:
        if epoch != panel.epoch:
            return
        panel.busy = max(0, panel.busy - 1)
        completed = _response(
            envelope, now, Response.COMPLETED, code=plan.code, error=plan.error, data=plan.data
        )
        panel.emit(Emission(now, panel.topics.response, completed))
        if plan.effect is not None and not plan.error:
            plan.effect(now)


def _response(
    envelope: pb.CommandEnvelope,
    at_ms: int,
    stage: pb.CommandResponse.Stage,
    *,
    code: int = 0,
    error: str = "",
    data: Mapping[str, str] | None = None,
) -> bytes:
    """A serialised CommandResponse echoing the envelope's request id and sequence."""
    response = pb.CommandResponse(
        request_id=envelope.request_id,
        sequence=envelope.sequence,
        timestamp=at_ms,
        stage=stage,
        success=not error,
        response_code=code,
        error_message=error,
        data=dict(data or {}),
    )
    return response.SerializeToString()
