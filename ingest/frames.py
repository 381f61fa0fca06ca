"""Seed 003's WebSocket frames, validated into the pipeline's messages.

A device connected at ``/ws/{device_id}`` sends JSON objects, each with a ``type``:

- ``hello``: opens the conversation, carrying the ``device_type`` (any first frame may carry it
  instead); it changes nothing else.
- ``status``: the device's state (``state_data``, any JSON object), kept whole as a snapshot;
  the numbers and flags its device type declares in it are readings, through the same CDC
  and rules as any telemetry.
- ``heartbeat``: proof of life, optionally with ``metrics``.
- ``telemetry``: readings (``metrics``), as seed 002's JSON telemetry.
- ``command_ack``: a command's result: ``command_id`` (the request id it was sent with),
  ``status`` ``ack_success`` or ``ack_error``, optional ``response`` and ``error``.

Every frame may carry an ``id`` (up to 64 characters, unique per device): the server
acknowledges the frame under that id once it is committed, and a frame resent under an id
already taken is recognised as a duplicate. ``timestamp`` is epoch milliseconds.

Frames arrive addressed ``ws/{device_id}/frame`` (``frame_address``; the device is the last
but one level, as in an MQTT topic, so dead letters are found by device the same way): the
socket they came on names the device, which authenticated with its own token, so a frame
cannot speak for another. The server's own notice that a socket ended comes under
``ws-server/{device_id}/notice`` (``notice_address``), which no device can send to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final

from ingest.decoding import (
    Context,
    DecodeLimits,
    device_stamp,
    json_document,
    json_object,
    only_keys,
)
from ingest.messages import (
    CommandReply,
    DeviceMessage,
    LastWill,
    Rejected,
    RejectReason,
    StateSnapshot,
    TelemetryReport,
)

__all__ = [
    "ADDRESS_PREFIX",
    "FRAME_TYPES",
    "FrameDecoder",
    "FrameHead",
    "disconnect_frame",
    "frame_address",
    "notice_address",
    "read_head",
]

ADDRESS_PREFIX: Final = "ws/"
NOTICE_PREFIX: Final = "ws-server/"
_FRAME: Final = "/frame"
_NOTICE: Final = "/notice"
# The device's own frame types; "disconnect" is the server's, written when a socket ends.
FRAME_TYPES: Final = frozenset({"hello", "status", "heartbeat", "telemetry", "command_ack"})
_DISCONNECT: Final = "disconnect"
MAX_ID_CHARS: Final = 64
ACK_STATUSES: Final = {"ack_success": True, "ack_error": False}

_COMMON = frozenset({"type", "id", "timestamp", "device_type", "device_id"})
_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "hello": _COMMON | {"firmware"},
    "status": _COMMON | {"state_data"},
    "heartbeat": _COMMON | {"metrics"},
    "telemetry": _COMMON | {"metrics", "version"},
    "command_ack": _COMMON | {"command_id", "status", "response", "error"},
    _DISCONNECT: frozenset({"type", "reason", "code"}),
}


def frame_address(device: str) -> str:
    """The address frames of ``device`` are delivered under (and dead letters kept under)."""
    return ADDRESS_PREFIX + device + _FRAME


def notice_address(device: str) -> str:
    """The address of the server's notices about ``device``'s socket."""
    return NOTICE_PREFIX + device + _NOTICE


def _device_of(address: str, prefix: str, suffix: str) -> str | None:
    """The device an address of ``prefix``{device}``suffix`` names, if it is one."""
    if not (address.startswith(prefix) and address.endswith(suffix)):
        return None
    device = address[len(prefix) : len(address) - len(suffix)]
    return device if device and "/" not in device else None


class FrameHead:
    """What the transport reads of a frame before the pipeline decodes it: its type, id and
    announced device type; each None when the frame does not say (or is not JSON)."""

    __slots__ = ("device_type", "frame_id", "kind")

    def __init__(self, kind: str | None, frame_id: str | None, device_type: str | None) -> None:
        self.kind = kind
        self.frame_id = frame_id
        self.device_type = device_type


def read_head(payload: bytes) -> FrameHead:
    """The head of a frame, leniently: validation is the decoder's, in the pipeline."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return FrameHead(None, None, None)
    if not isinstance(body, dict):
        return FrameHead(None, None, None)
    kind, frame_id, device_type = body.get("type"), body.get("id"), body.get("device_type")
    return FrameHead(
        kind if isinstance(kind, str) else None,
        _id_text(frame_id),
        device_type if isinstance(device_type, str) else None,
    )


def disconnect_frame(reason: str, code: int | None) -> bytes:
    """The server's own frame saying a device's socket ended (``reason``: closed, timeout,
    replaced, error); decoded like any frame so the offline change is one of the batch's."""
    return json.dumps({"type": _DISCONNECT, "reason": reason, "code": code}).encode()


def _id_text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= MAX_ID_CHARS else None


class FrameDecoder:
    """Turns (``ws/{device}/frame``, frame) into validated messages (the WebSocket transport's
    decoder; ``ingest.decoding.Decoder`` is MQTT's)."""

    def __init__(self, limits: DecodeLimits | None = None) -> None:
        self._limits = limits or DecodeLimits()
        self._by_type: dict[str, Callable[[dict[str, object], Context], DeviceMessage | None]] = {
            "hello": _hello,
            "status": _status,
            "heartbeat": _heartbeat,
            "telemetry": _telemetry,
            "command_ack": _command_ack,
        }

    def decode(self, address: str, payload: bytes, received_at: datetime) -> DeviceMessage | None:
        """The validated message (None for a ``hello``, which only opens the conversation).

        Raises Rejected with the reason the frame must be dead-lettered.
        """
        noticed = _device_of(address, NOTICE_PREFIX, _NOTICE)
        if noticed is not None:
            body = json_object(payload, _KEYS[_DISCONNECT])
            return _disconnect(body, Context(noticed, received_at, self._limits))
        device = _device_of(address, ADDRESS_PREFIX, _FRAME)
        if device is None:
            raise Rejected(RejectReason.BAD_TOPIC, f"{address[:80]!r} is not ws/<device>/frame")
        if len(payload) > self._limits.max_payload_bytes:
            raise Rejected(
                RejectReason.TOO_LARGE,
                f"{len(payload)} bytes exceeds {self._limits.max_payload_bytes}",
            )
        body = json_document(payload)  # parsed once, then checked for its type's keys
        kind = body.get("type")
        if not isinstance(kind, str) or kind not in self._by_type:
            if not isinstance(kind, str):
                only_keys(body, frozenset({"type"}))  # says what else is wrong with it
            detail = (
                f"unknown frame type {kind[:40]!r}"
                if isinstance(kind, str) and kind
                else "a frame needs a type"
            )
            raise Rejected(RejectReason.MALFORMED_JSON, f"{detail}; one of {sorted(FRAME_TYPES)}")
        only_keys(body, _KEYS[kind])
        claimed = body.get("device_id")
        if claimed is not None and claimed != device:
            raise Rejected(
                RejectReason.HOSTNAME_MISMATCH,
                f"frame names device {str(claimed)[:40]!r} on the socket of {device!r}",
            )
        if "id" in body and _id_text(body["id"]) is None:
            raise Rejected(
                RejectReason.MALFORMED_JSON, f"id must be a string or number of 1-{MAX_ID_CHARS}"
            )
        return self._by_type[kind](body, Context(device, received_at, self._limits))


def _common(body: Mapping[str, object], ctx: Context) -> dict[str, object]:
    """The fields every message takes from a frame."""
    return {
        "hostname": ctx.hostname,
        "received_at": ctx.received_at,
        "device_ts": device_stamp(dict(body), ctx),
        "message_id": _id_text(body.get("id")),
    }


def _hello(body: dict[str, object], _ctx: Context) -> None:
    if not isinstance(body.get("device_type"), str):
        raise Rejected(RejectReason.MALFORMED_JSON, "hello carries the device_type")


def _status(body: dict[str, object], ctx: Context) -> StateSnapshot:
    state, device_type = body.get("state_data"), body.get("device_type")
    if not isinstance(state, dict):
        raise Rejected(RejectReason.MALFORMED_JSON, "status carries state_data, a JSON object")
    return StateSnapshot(
        **_common(body, ctx),  # type: ignore[arg-type]
        device_type=device_type if isinstance(device_type, str) else "",
        state=state,
        metrics={
            str(name): value
            for name, value in state.items()
            if isinstance(value, bool | int | float)
        },
    )


def _metrics(body: Mapping[str, object], *, required: bool) -> dict[str, bool | int | float]:
    metrics = body.get("metrics", None if required else {})
    if not isinstance(metrics, dict) or (required and not metrics):
        raise Rejected(RejectReason.MALFORMED_JSON, "metrics must be a non-empty object")
    for name, value in metrics.items():
        if not isinstance(value, bool | int | float):
            raise Rejected(
                RejectReason.WRONG_TYPE, f"metric {str(name)[:40]!r} is not a number or a flag"
            )
    return metrics


def _heartbeat(body: dict[str, object], ctx: Context) -> TelemetryReport:
    """Proof of life: a reading, empty unless the device sent metrics with it."""
    return TelemetryReport(
        **_common(body, ctx),  # type: ignore[arg-type]
        version="",
        metrics=_metrics(body, required=False),
        device_type=None,
    )


def _telemetry(body: dict[str, object], ctx: Context) -> TelemetryReport:
    version = body.get("version", "")
    if not isinstance(version, str):
        raise Rejected(RejectReason.MALFORMED_JSON, "version must be a string")
    return TelemetryReport(
        **_common(body, ctx),  # type: ignore[arg-type]
        version=version,
        metrics=_metrics(body, required=True),
        device_type=None,
    )


def _command_ack(body: dict[str, object], ctx: Context) -> CommandReply:
    """A command's result: seed 003's ack_success / ack_error completes the command."""
    command_id, status = body.get("command_id"), body.get("status")
    if not isinstance(command_id, str) or status not in ACK_STATUSES:
        raise Rejected(
            RejectReason.MALFORMED_JSON,
            f"command_ack needs command_id and status ({' or '.join(ACK_STATUSES)})",
        )
    try:
        request_id = str(uuid.UUID(command_id))
    except ValueError as exc:
        raise Rejected(
            RejectReason.OUT_OF_RANGE, f"command_id {command_id[:40]!r} is not a UUID"
        ) from exc
    response, error = body.get("response", {}), body.get("error", "")
    if not isinstance(response, dict) or not isinstance(error, str):
        raise Rejected(RejectReason.WRONG_TYPE, "response must be an object, error a string")
    success = ACK_STATUSES[str(status)]
    return CommandReply(
        **_common(body, ctx),  # type: ignore[arg-type]
        request_id=request_id,
        sequence=0,
        stage="COMPLETED",
        success=success,
        response_code=0 if success else 1,
        error_message=error,
        data={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in response.items()},
    )


def _disconnect(body: dict[str, object], ctx: Context) -> LastWill:
    reason = body.get("reason")
    if not isinstance(reason, str):
        raise Rejected(RejectReason.MALFORMED_JSON, "disconnect carries a reason")
    return LastWill(
        hostname=ctx.hostname,
        received_at=ctx.received_at,
        device_ts=None,
        via=f"websocket {reason}"[:40],
        timed_out=reason == "timeout",
    )
